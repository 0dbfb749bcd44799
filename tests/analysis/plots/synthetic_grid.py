"""Synthetic replicates and summaries of a two-factor sweep, for the plot tests.

A grid of patients per arm × true hazard ratio, as the sweep runner will produce it: a
``condition`` dim whose coordinates are the swept fields. The log-HR estimates are drawn with
the SE a Cox model has at the grid point's events (2 / sqrt(events)), so power rises with the
patients as Schoenfeld says; method ``recommended`` is unbiased, ``paper`` biased by +0.05.
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr
from scipy.special import ndtr

from analysis.performance.summary import summarise_run
from tests.analysis.performance.synthetic_replicates import make_replicates

SIZE = "arms.combination.size"
HAZARD_RATIO = "outcome.treatment.hazard_ratio"
Z_975 = 1.959963984540054


def make_grid_replicates(*, rng: np.random.Generator, sizes=(40, 80, 160), hazard_ratios=(1.0, 0.7),
                         n_replicates: int = 200, covariates=("age", "ecog", "tumour_size")) -> xr.Dataset:
    """The replicates Dataset of the grid ``sizes × hazard_ratios`` (sizes vary slowest)."""
    points = list(itertools.product(sizes, hazard_ratios))
    base = make_replicates(rng=rng, n_conditions=len(points), n_replicates=n_replicates)
    size = np.array([p[0] for p in points], dtype=float)
    log_hr_true = np.log([p[1] for p in points])
    C, R, M, K, E = base.log_hr.shape
    events = (0.7 * 2 * size)[:, None, None, None, None] * np.array([1.0, 0.8])[None, None, None, :, None]
    events = np.broadcast_to(events, (C, R, M, K, E))
    se = 2.0 / np.sqrt(events) * np.exp(rng.normal(0.0, 0.05, (C, R, M, K, E)))
    bias = np.array([0.05, 0.0])[None, None, :, None, None]
    truth = np.broadcast_to(log_hr_true[:, None, None, None, None], (C, R, M, K, E))
    log_hr = truth + bias + se * rng.normal(size=(C, R, M, K, E))
    failed = base.status.values != 0
    log_hr[failed] = np.nan
    se = np.where(failed, np.nan, se)
    p_value = 2.0 * ndtr(-np.abs(log_hr / se))
    cell = ("condition", "replicate", "method", "cohort", "endpoint")
    per_arm = np.rint(events / 2).astype(np.int32)
    data = base.assign(
        log_hr=(cell, log_hr), se=(cell, se), ci_lower=(cell, log_hr - Z_975 * se),
        ci_upper=(cell, log_hr + Z_975 * se), p_value=(cell, p_value), p_logrank=(cell, p_value),
        events_treated=(cell, per_arm), events_control=(cell, per_arm),
        true_log_hr_conditional=(("condition", "endpoint"), np.repeat(log_hr_true[:, None], E, axis=1)),
        true_log_hr_marginal=(("condition", "endpoint"), np.repeat(0.95 * log_hr_true[:, None], E, axis=1)),
    )
    n_arm = np.broadcast_to(size[:, None, None, None], (C, R, M, K)).astype(np.int32)
    smd = np.abs(rng.normal(0.1, 0.05, (C, R, M, K, len(covariates)))) * np.array([2.0, 1.0])[None, None, None, :, None]
    data = data.assign(
        n_treated=(cell[:4], n_arm), n_control=(cell[:4], n_arm),
        smd=(cell[:4] + ("covariate",), smd), max_abs_smd=(cell[:4], smd.max(axis=-1)),
    ).assign_coords(covariate=list(covariates))
    data = data.drop_vars("hazard_ratio").assign_coords({SIZE: ("condition", size.astype(int)),
                                                         HAZARD_RATIO: ("condition", [p[1] for p in points])})
    return data


def make_grid_summary(*, rng: np.random.Generator, **options) -> xr.Dataset:
    """:func:`summarise_run` of :func:`make_grid_replicates`."""
    return summarise_run(make_grid_replicates(rng=rng, **options))
