"""A synthetic replicates Dataset in the results schema, for the summary tests."""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import ndtr

Z_975 = 1.959963984540054
CELL = ("condition", "replicate", "method", "cohort", "endpoint")


def make_replicates(*, rng: np.random.Generator, n_conditions: int = 2, n_replicates: int = 300):
    """A synthetic replicates Dataset in the schema of docs/results_schema.md.

    Condition 0 is null (true log HRs 0); the others have PFS HR 0.6 conditional / 0.65
    marginal and an OS effect. About 5% of analyses fail (status != 0, NaN estimates), 2% of
    log-rank p-values and 10% of treated medians are NaN, 3% of PS fits fail.
    """
    C, R, M, K, E = n_conditions, n_replicates, 2, 2, 2
    shape = (C, R, M, K, E)
    true_conditional = np.zeros((C, E))
    true_marginal = np.zeros((C, E))
    true_conditional[1:] = [np.log(0.6), -0.25]
    true_marginal[1:] = [np.log(0.65), -0.2]
    se = 0.2 * np.exp(rng.normal(0.0, 0.2, shape))
    log_hr = true_marginal[:, None, None, None, :] + 0.03 + rng.normal(0.0, 0.21, shape)
    status = np.where(rng.random(shape) < 0.05, rng.integers(1, 8, shape), 0).astype(np.int8)
    failed = status != 0
    log_hr[failed] = np.nan
    se[failed] = np.nan
    p_value = 2.0 * ndtr(-np.abs(log_hr / se))
    p_logrank = np.clip(p_value * np.exp(rng.normal(0.0, 0.1, shape)), 0.0, 1.0)
    p_logrank[rng.random(shape) < 0.02] = np.nan
    median_treated = 10.0 + rng.normal(0.0, 2.0, shape)
    median_control = 7.0 + rng.normal(0.0, 1.5, shape)
    median_treated[rng.random(shape) < 0.1] = np.nan
    median_treated[failed] = np.nan
    median_control[failed] = np.nan
    n_pairs = rng.integers(25, 45, (C, R, M)).astype(np.int32)
    n_treated = np.empty((C, R, M, K), np.int32)
    n_control = np.empty((C, R, M, K), np.int32)
    n_treated[..., 0] = rng.integers(50, 70, (C, R, M))
    n_control[..., 0] = rng.integers(100, 140, (C, R, M))
    n_treated[..., 1] = n_pairs
    n_control[..., 1] = n_pairs
    max_abs_smd = np.abs(rng.normal(0.1, 0.05, (C, R, M, K)))
    max_abs_smd[..., 0] += 0.05
    max_abs_smd[rng.random(max_abs_smd.shape) < 0.02] = np.nan
    ps_status = np.where(rng.random((C, R, M)) < 0.03, rng.integers(1, 4, (C, R, M)), 0)
    p_orr = rng.random((C, R, M, K)) * 0.2
    p_orr[rng.random(p_orr.shape) < 0.02] = np.nan
    return xr.Dataset(
        {
            "log_hr": (CELL, log_hr),
            "se": (CELL, se),
            "ci_lower": (CELL, log_hr - Z_975 * se),
            "ci_upper": (CELL, log_hr + Z_975 * se),
            "p_value": (CELL, p_value),
            "p_logrank": (CELL, p_logrank),
            "median_treated": (CELL, median_treated),
            "median_control": (CELL, median_control),
            "events_treated": (CELL, rng.integers(20, 60, shape).astype(np.int32)),
            "events_control": (CELL, rng.integers(20, 60, shape).astype(np.int32)),
            "status": (CELL, status),
            "n_treated": (CELL[:4], n_treated),
            "n_control": (CELL[:4], n_control),
            "max_abs_smd": (CELL[:4], max_abs_smd),
            "p_orr": (CELL[:4], p_orr),
            "p_dcr": (CELL[:4], rng.random((C, R, M, K))),
            "n_pairs": (CELL[:3], n_pairs),
            "ps_status": (CELL[:3], ps_status.astype(np.int8)),
            "true_log_hr_conditional": (("condition", "endpoint"), true_conditional),
            "true_log_hr_marginal": (("condition", "endpoint"), true_marginal),
            "true_median_treated": (("condition", "endpoint"), np.full((C, E), 10.5)),
            "true_median_control": (("condition", "endpoint"), np.full((C, E), 7.0)),
        },
        coords={
            "condition": np.arange(C),
            "replicate": np.arange(R),
            "method": ["paper", "recommended"],
            "cohort": ["full", "matched"],
            "endpoint": ["pfs", "os"],
            "hazard_ratio": ("condition", np.r_[1.0, np.full(C - 1, 0.6)]),
        },
        attrs={
            "psmsim_version": "0.1.0",
            "created_at": "2026-01-01T00:00:00+00:00",
            "root_seed": 7,
            "block_size": 100,
            "n_replicates": R,
            "scenario_name": "synthetic",
            "alpha": 0.05,
        },
    )
