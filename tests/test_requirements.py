"""requirements.txt is what the Space installs: every package the app and the tasks import is pinned there, and every
pin is imported (or marked for the task that is about to use it)."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s#]+)\s*(#.*)?$")


def runtime_pins() -> dict[str, str]:
    """Normalised distribution name → its trailing comment ('' when none)."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = PIN.match(line.strip())
            assert match, f"not an exact pin: {line!r}"
            pins[normalise(match.group(1))] = match.group(3) or ""
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def served_imports() -> set[str]:
    """Top-level modules imported anywhere in app.py and tasks/ (at any depth: lazy imports count)."""
    modules = set()
    for path in [ROOT / "app.py", *(ROOT / "tasks").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"tasks", "app", "__future__"}


def test_every_package_the_app_imports_is_pinned_and_every_pin_is_imported():
    distributions = packages_distributions()
    imported = {normalise(dist) for module in served_imports() for dist in distributions.get(module, [module])}
    pins = runtime_pins()
    assert imported - set(pins) == set(), "imported but not pinned in requirements.txt"
    unused = {name for name in set(pins) - imported if "next" not in pins[name]}
    assert unused == set(), "pinned but imported nowhere in app.py or tasks/ (move it to requirements-dev.txt)"
