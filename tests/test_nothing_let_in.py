"""Nothing let in: weights load only from safetensors or with torch.load(weights_only=True); no pickle, joblib or
remote code anywhere in the project's own code."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE = [path for folder in ("tasks", "bench", "training") for path in sorted((ROOT / folder).rglob("*.py"))] + [
    ROOT / "app.py"]
UNSAFE = {
    "torch.load without weights_only=True": re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)[^)]*\)"),
    "pickle.load / pickle.loads": re.compile(r"\bpickle\.loads?\("),
    "joblib.load": re.compile(r"\bjoblib\.load\("),
    "trust_remote_code=True": re.compile(r"trust_remote_code\s*=\s*True"),
    "numpy allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "dill / cloudpickle / shelve": re.compile(r"^\s*(import|from)\s+(dill|cloudpickle|shelve)\b", re.M),
}


def findings(text: str) -> list[str]:
    return [name for name, pattern in UNSAFE.items() if pattern.search(text)]


def test_the_scan_sees_each_unsafe_call():
    bad = ['torch.load(path)', 'torch.load(path, map_location="cpu")', 'x = pickle.load(f)', 'pickle.loads(data)',
           'joblib.load("m.pkl")', 'from_pretrained(name, trust_remote_code=True)', 'np.load(p, allow_pickle=True)',
           'import dill']
    assert [len(findings(line)) for line in bad] == [1] * len(bad)
    assert findings('torch.load(path, map_location="cpu", weights_only=True)') == []


@pytest.mark.parametrize("path", CODE, ids=[str(path.relative_to(ROOT)) for path in CODE])
def test_no_unsafe_loading_in_the_code(path):
    assert findings(path.read_text()) == [], path
