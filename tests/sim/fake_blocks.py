"""A stand-in block function for runner/store tests: random arrays in the results schema,
drawn from the block's own generator, so its output depends only on (seed, block)."""

from types import SimpleNamespace

import numpy as np

from sim.run.results import COHORT_VARIABLES, ENDPOINT_VARIABLES, REPLICATE_VARIABLES, block_dataset
from sim.run.runner import block_rng


def fake_result(n, rng):
    values = {}
    for name in ENDPOINT_VARIABLES:
        values[name] = rng.normal(size=(n, 2, 2))
    for name in COHORT_VARIABLES:
        values[name] = rng.normal(size=(n, 2))
    for name in REPLICATE_VARIABLES:
        values[name] = rng.integers(0, 5, size=n)
    values["status"] = rng.integers(0, 3, size=(n, 2, 2))
    values["balance_covariates"] = ("age", "ecog", "tumour_size")
    values["smd"] = rng.normal(size=(n, 2, 3))
    return SimpleNamespace(**values)


def fake_work(task):
    results = {}
    for index, method in enumerate(task.methods):
        results[method] = fake_result(task.key.size, block_rng(task.root_seed, task.key, 1 + index))
    return block_dataset(results, condition=task.key.condition, start=task.key.start)


def failing_work(task):
    if task.key.block == 1:
        raise RuntimeError("boom")
    return fake_work(task)
