"""Large samples of patient profiles (covariate log-hazards) for calibration and the truth.

Profiles are drawn by the cohort generator's own covariate model
(:func:`sim.generate.covariates.draw_covariates`), in chunks, so calibration averages over
exactly the population the replicates come from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.generate.covariates import draw_covariates
from sim.generate.outcomes import covariate_linear_predictor
from sim.scenario.model import Scenario

#: Patients per call of the covariate generator when drawing large samples.
_CHUNK_PATIENTS = 100_000


@dataclass(frozen=True)
class Profiles:
    """Covariate log-hazards of a large sample of patients.

    Attributes
    ----------
    linear_predictor : ndarray of float, shape (patient,)
    treated : ndarray of bool, shape (patient,)
        The patient's arm (selection mode: drawn treatment).
    """

    linear_predictor: np.ndarray
    treated: np.ndarray


def draw_population_profiles(
    scenario: Scenario, n_patients: int, *, rng: np.random.Generator
) -> Profiles:
    """Draw ``n_patients`` profiles of whole cohorts (both arms, in the cohorts' proportions)
    through :func:`sim.generate.covariates.draw_covariates`, in chunks of about 10^5 patients."""
    cohort_size = _cohort_size(scenario)
    replicates = max(1, math.ceil(n_patients / cohort_size))
    max_replicates = max(1, _CHUNK_PATIENTS // cohort_size)
    predictors, arms = [], []
    while replicates > 0:
        chunk = min(replicates, max_replicates)
        drawn = draw_covariates(scenario, chunk, rng=rng)
        predictors.append(covariate_linear_predictor(scenario, drawn.values, drawn.unmeasured).ravel())
        arms.append(drawn.treated.ravel())
        replicates -= chunk
    return Profiles(
        linear_predictor=np.concatenate(predictors)[:n_patients],
        treated=np.concatenate(arms)[:n_patients],
    )


def _cohort_size(scenario: Scenario) -> int:
    if scenario.mode == "selection":
        return scenario.selection.patients
    return sum(arm.size for arm in scenario.arms)


@dataclass(frozen=True)
class ArmProfiles:
    """Covariate log-hazards of large samples of both arms.

    Attributes
    ----------
    control, treated : ndarray of float, shape (patient,)
        η of control-arm and treated-arm patients (table mode: each arm's covariates;
        selection mode: patients with Z = 0 and Z = 1).
    """

    control: np.ndarray
    treated: np.ndarray


def draw_arm_profiles(
    scenario: Scenario, n_patients: int, *, rng: np.random.Generator
) -> ArmProfiles:
    """Draw ``n_patients`` profiles of each arm from the same cohorts.

    Cohorts of :func:`sim.generate.covariates.draw_covariates` are drawn in chunks of about 10^5
    patients until both arms have ``n_patients``; the first ``n_patients`` of each are kept.
    """
    cohort_size = _cohort_size(scenario)
    max_replicates = max(1, _CHUNK_PATIENTS // cohort_size)
    parts: dict[bool, list[np.ndarray]] = {False: [], True: []}
    counts = {False: 0, True: 0}
    drawn_replicates = 0
    while min(counts.values()) < n_patients:
        replicates = 1
        for arm in (False, True):
            # Patients of this arm per cohort: the arm size, or as observed so far (selection).
            per_cohort = max(counts[arm] / drawn_replicates, 1.0) if drawn_replicates else (
                cohort_size / 2.0
            )
            if scenario.mode == "table":
                per_cohort = (scenario.treated_arm if arm else scenario.control_arm).size
            missing = max(n_patients - counts[arm], 0)
            replicates = max(replicates, math.ceil(missing / per_cohort))
        replicates = min(replicates, max_replicates)
        drawn = draw_covariates(scenario, replicates, rng=rng)
        predictor = covariate_linear_predictor(scenario, drawn.values, drawn.unmeasured)
        for arm in (False, True):
            chosen = predictor[drawn.treated == arm]
            parts[arm].append(chosen)
            counts[arm] += chosen.size
        drawn_replicates += replicates
    return ArmProfiles(
        control=np.concatenate(parts[False])[:n_patients],
        treated=np.concatenate(parts[True])[:n_patients],
    )
