"""Small random cohorts with confounded arms, for the Kaplan–Meier and love-plot tests."""

from __future__ import annotations

import numpy as np

from analysis.cohort import CohortBatch

NAMES = ("age", "tumour_size", "male", "macrovascular_invasion")
KINDS = ("continuous", "continuous", "binary", "binary")


def random_batch(rng: np.random.Generator, *, n_replicates: int = 3, n_treated: int = 30, n_control: int = 50,
                 censoring: float = 0.3) -> CohortBatch:
    """Cohorts whose treated arm is younger with smaller tumours; PFS <= OS; exponential
    censoring of about ``censoring`` of the PFS times; times rounded to 0.1 month (some ties)."""
    n = n_treated + n_control
    shape = (n_replicates, n)
    treated = np.argsort(rng.random(shape), axis=1) < n_treated
    shift = treated.astype(float)
    age = rng.normal(60.0 - 4.0 * shift, 9.0)
    size = np.exp(rng.normal(1.8 - 0.3 * shift, 0.5))
    male = (rng.random(shape) < 0.8 - 0.1 * shift).astype(float)
    macro = (rng.random(shape) < 0.4 - 0.15 * shift).astype(float)
    log_hazard = 0.02 * (age - 60) + 0.3 * np.log(size) + 0.4 * macro - 0.5 * shift
    pfs = rng.exponential(1.0, shape) / (0.1 * np.exp(log_hazard))
    os_ = pfs + rng.exponential(1.0, shape) / (0.15 * np.exp(log_hazard))
    censor = rng.exponential(1.0, shape) / (0.1 * censoring / (1.0 - censoring))

    def observe(true_time):
        return np.maximum(0.1, np.round(np.minimum(true_time, censor), 1)), true_time <= censor

    pfs_months, pfs_event = observe(pfs)
    os_months, os_event = observe(os_)
    return CohortBatch(
        treated=treated, covariates=np.stack([age, size, male, macro], axis=2), covariate_names=NAMES,
        covariate_kinds=KINDS, entry_month=rng.uniform(0, 24, shape), pfs_months=pfs_months,
        pfs_event=pfs_event, os_months=np.maximum(os_months, pfs_months), os_event=os_event,
        best_response=rng.choice(4, size=shape).astype(np.int8), ae_grade=np.zeros(shape + (0,), np.int8),
        ae_names=(), patient_id=np.broadcast_to(np.arange(1, n + 1), shape).copy(),
    )
