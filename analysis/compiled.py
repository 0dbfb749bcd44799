"""The analysis engine's compiled (numba) kernel modules, and loading them all at once.

Each module in :data:`KERNEL_MODULES` has a ``warm_up()`` that loads its kernels from numba's
on-disk cache (or compiles them, on an installation's first use) for the argument types the
engine passes. :func:`warm_up` calls every one, so a process that times its first block
(:func:`sim.run.runner._warm_up`) does not time numba's loading, about 0.2–0.6 s per module.
A test (``tests/analysis/test_compiled.py``) checks that every module of ``analysis/``
defining a ``warm_up`` is listed here, so a new kernel cannot be left out.
"""

from __future__ import annotations

import importlib

#: Every module of the analysis engine whose ``warm_up()`` loads compiled kernels (a kernel
#: module's own, or its caller's where the warm-up runs the caller: no import circle).
KERNEL_MODULES = (
    "analysis.propensity.irls_kernels",
    "analysis.propensity.greedy_kernels",
    "analysis.propensity.fuzzy_kernels",
    "analysis.propensity.matched_sets",
    "analysis.propensity.balance_kernels",
    "analysis.propensity.sample_sums",
    "analysis.survival.risk_sets",
    "analysis.survival.km_kernels",
    "analysis.survival.cox_kernels",
    "analysis.survival.endpoint",
    "analysis.comparisons.table_kernels",
)


def warm_up() -> None:
    """Load every kernel module's kernels (see the module docstring)."""
    for name in KERNEL_MODULES:
        importlib.import_module(name).warm_up()
