"""analysis/compiled.py: the list of kernel modules the runner loads before timing."""

from __future__ import annotations

import ast
from pathlib import Path

from analysis import compiled

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"


def modules_with_warm_up() -> set[str]:
    found = set()
    for path in ANALYSIS.rglob("*.py"):
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.FunctionDef) and node.name == "warm_up" for node in tree.body):
            found.add(".".join(path.relative_to(ANALYSIS.parent).with_suffix("").parts))
    return found - {"analysis.compiled"}


def test_every_module_with_a_warm_up_is_listed():
    assert modules_with_warm_up() == set(compiled.KERNEL_MODULES)


def test_warm_up_loads_every_module():
    compiled.warm_up()
