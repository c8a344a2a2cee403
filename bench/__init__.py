"""Benchmarks: `python -m bench TASK --data DIR --json OUT` (see bench/__main__.py)."""
