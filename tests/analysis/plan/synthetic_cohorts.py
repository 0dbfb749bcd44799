"""Cohort batches for the plan tests, without the simulator: 100 patients, six covariates (three
continuous, two binary, one three-level categorical) acting on the hazards, treatment either
randomised (``confounding=0``) or assigned by a logistic model of the covariates, exponential
PFS and OS (OS >= PFS) with a given treatment log HR, uniform administrative censoring."""

from __future__ import annotations

import numpy as np

from analysis.cohort import CohortBatch

NAMES = ("age", "score", "size", "female", "stage_high", "site")
KINDS = ("continuous", "continuous", "continuous", "binary", "binary", "categorical")
COEFFICIENTS = np.array([0.3, -0.25, 0.2, 0.3, 0.5, 0.25])


def synthetic_batch(n_replicates: int, *, rng: np.random.Generator, n_patients: int = 100, log_hr: float = 0.0,
                    confounding: float = 0.0, treated_share: float = 0.35, ties: bool = False) -> CohortBatch:
    shape = (n_replicates, n_patients)
    continuous = rng.normal(size=shape + (3,))
    binary = (rng.random(shape + (2,)) < np.array([0.45, 0.3])).astype(float)
    site = rng.choice(3, shape, p=[0.5, 0.3, 0.2]).astype(float)
    covariates = np.concatenate([continuous, binary, site[:, :, None]], axis=2)
    prognosis = (covariates[:, :, :5] @ COEFFICIENTS[:5]) + COEFFICIENTS[5] * (site == 2)
    intercept = np.log(treated_share / (1 - treated_share))
    treated = rng.random(shape) < 1 / (1 + np.exp(-(intercept + confounding * prognosis)))
    treated[:, 0], treated[:, 1] = True, False
    hazard = 0.1 * np.exp(prognosis + log_hr * treated)
    pfs = rng.exponential(1.0, shape) / hazard
    os_ = pfs + rng.exponential(1.0, shape) / (1.5 * hazard)
    follow_up = rng.uniform(6.0, 36.0, shape)
    if ties:
        pfs, os_ = np.ceil(pfs * 2) / 2, np.ceil(os_ * 2) / 2
    return CohortBatch(
        treated=treated, covariates=covariates, covariate_names=NAMES, covariate_kinds=KINDS,
        entry_month=36.0 - follow_up,
        pfs_months=np.minimum(pfs, follow_up), pfs_event=pfs <= follow_up,
        os_months=np.minimum(os_, follow_up), os_event=os_ <= follow_up,
        best_response=rng.choice(4, shape, p=[0.05, 0.15, 0.5, 0.3]).astype(np.int8),
        ae_grade=rng.choice(5, shape + (2,), p=[0.5, 0.2, 0.15, 0.1, 0.05]).astype(np.int8),
        ae_names=("rash", "fatigue"),
        patient_id=np.broadcast_to(np.arange(1, n_patients + 1), shape).copy(),
    )
