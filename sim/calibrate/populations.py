"""The truth's population: large samples of both arms with their propensity scores.

Every marginal estimand is an average over a *target population* (Austin 2013, Stat Med
32:2837-2849, for the ATT; Li, Morgan & Zaslavsky 2018, J Am Stat Assoc 113:390-400, for the
overlap population):

==========  ========================================================================
estimand    target population (density relative to the study's covariate population f)
==========  ========================================================================
ATT         the treated: f(x | Z = 1)
ATE         the whole population: f(x) = π f(x | Z = 1) + (1 − π) f(x | Z = 0)
ATO         the overlap population: f(x) e(x) (1 − e(x)), e the propensity score
==========  ========================================================================

:func:`draw_truth_population` draws ``n`` profiles of each arm from the study's own cohorts
(:func:`sim.generate.covariates.draw_covariates`, in chunks) and returns, per profile, its
covariate log-hazard η, its propensity score and the arm share π, so that each population is a
*weighting* of the same two samples: ATT weight 1 on treated profiles (0 on control ones), ATE
weight π on treated and 1 − π on control profiles, ATO weight (π or 1 − π) e (1 − e).

The propensity score e(x) = P(Z = 1 | x):

- **selection mode**: the true one, the scenario's treatment model (marginal over an
  unmeasured confounder U drawn before treatment; ``DrawnCovariates.true_ps``), and π the
  share treated among all the drawn patients;
- **table mode** (arm sizes fixed, covariates drawn per arm, so no individual treatment model
  exists): the large-sample limit of the logistic PS model an analysis fits — main effects of
  the scenario's ``analysis.ps_covariates`` (all covariates if empty), categorical covariates
  as indicators — fitted once (R ``glm``'s iterations) on a pilot of whole cohorts
  (:data:`PILOT_PATIENTS` patients, the arms in the study's proportion π = n_T / (n_T + n_C)),
  then evaluated on every profile. This is the ATO that an overlap-weighted analysis with the
  scenario's PS model converges to; a method with its own ``ps_covariates`` targets a slightly
  different overlap population (not modelled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from sim.generate.covariates import draw_covariates
from sim.generate.outcomes import covariate_linear_predictor
from sim.scenario.model import Scenario

#: Patients per call of the covariate generator when drawing large samples.
_CHUNK_PATIENTS = 100_000
#: Patients of the pilot cohorts on which table mode's large-sample PS model is fitted.
PILOT_PATIENTS = 200_000


@dataclass(frozen=True)
class TruthPopulation:
    """``n`` profiles of each arm with their propensity scores.

    Attributes
    ----------
    treated_predictor, control_predictor : ndarray of float, shape (patient,)
        Covariate log-hazard η of treated-arm and control-arm profiles (selection mode:
        patients drawn with Z = 1 and Z = 0).
    treated_ps, control_ps : ndarray of float, shape (patient,)
        Their propensity scores e(x) (see the module docstring).
    treated_share : float
        π, the share treated in the study's population.
    """

    treated_predictor: np.ndarray
    control_predictor: np.ndarray
    treated_ps: np.ndarray
    control_ps: np.ndarray
    treated_share: float


def _cohort_size(scenario: Scenario) -> int:
    if scenario.mode == "selection":
        return scenario.selection.patients
    return sum(arm.size for arm in scenario.arms)


def _ps_columns(scenario: Scenario) -> tuple[list[int], tuple[str, ...], tuple[int, ...]]:
    """Indices, kinds and level counts of the PS model's covariates (table mode)."""
    names = scenario.analysis.ps_covariates or scenario.covariate_names
    index = [scenario.covariate_names.index(name) for name in names]
    kinds = {"binary": "binary", "categorical": "categorical", "normal": "continuous",
             "lognormal": "continuous"}
    covariates = [scenario.covariates[i] for i in index]
    return (index, tuple(kinds[c.kind] for c in covariates),
            tuple(max(len(c.levels), 1) for c in covariates))


def _design(values: np.ndarray, scenario: Scenario) -> np.ndarray:
    """PS design columns (without intercept) of covariates shaped (replicate, patient, covariate)."""
    from analysis.propensity.design import design_matrix

    index, kinds, levels = _ps_columns(scenario)
    return design_matrix(values[..., index], kinds, n_levels=levels).values


def fit_table_propensity(scenario: Scenario, *, rng: np.random.Generator) -> np.ndarray:
    """Coefficients (intercept first) of table mode's large-sample PS model (module docstring),
    fitted on whole cohorts of about :data:`PILOT_PATIENTS` patients."""
    from analysis.propensity.model import fit_propensity

    replicates = max(1, math.ceil(PILOT_PATIENTS / _cohort_size(scenario)))
    drawn = draw_covariates(scenario, replicates, rng=rng)
    design = _design(drawn.values, scenario).reshape(1, -1, len(_design_names(scenario)))
    fit = fit_propensity(design, drawn.treated.reshape(1, -1), algorithm="r_glm")
    return np.asarray(fit.coef[0], dtype=float)


def _design_names(scenario: Scenario) -> tuple[str, ...]:
    from analysis.propensity.design import design_matrix

    index, kinds, levels = _ps_columns(scenario)
    return design_matrix(np.zeros((1, 1, len(index))), kinds, n_levels=levels).names


def draw_truth_population(
    scenario: Scenario, n_patients: int, *, rng: np.random.Generator
) -> TruthPopulation:
    """Draw ``n_patients`` profiles of each arm and their propensity scores (module docstring).

    Cohorts are drawn in chunks of about 10^5 patients until both arms have ``n_patients``;
    the first ``n_patients`` of each are kept. Table mode first fits its PS model on pilot
    cohorts (:func:`fit_table_propensity`, same generator).

    Parameters
    ----------
    scenario : Scenario
    n_patients : int
    rng : numpy.random.Generator

    Returns
    -------
    TruthPopulation
    """
    coef = fit_table_propensity(scenario, rng=rng) if scenario.mode == "table" else None
    cohort_size = _cohort_size(scenario)
    max_replicates = max(1, _CHUNK_PATIENTS // cohort_size)
    parts = {arm: ([], []) for arm in (False, True)}
    counts = {False: 0, True: 0}
    drawn_patients = drawn_treated = 0
    while min(counts.values()) < n_patients:
        share = drawn_treated / drawn_patients if drawn_patients else 0.5
        if scenario.mode == "table":
            share = scenario.treated_arm.size / cohort_size
        per_cohort = {True: max(share * cohort_size, 1.0), False: max((1 - share) * cohort_size, 1.0)}
        replicates = max(math.ceil(max(n_patients - counts[arm], 0) / per_cohort[arm])
                         for arm in (False, True))
        replicates = min(max(replicates, 1), max_replicates)
        drawn = draw_covariates(scenario, replicates, rng=rng)
        predictor = covariate_linear_predictor(scenario, drawn.values, drawn.unmeasured)
        if coef is None:
            ps = drawn.true_ps
        else:
            ps = special.expit(coef[0] + _design(drawn.values, scenario) @ coef[1:])
        for arm in (False, True):
            chosen = drawn.treated == arm
            parts[arm][0].append(predictor[chosen])
            parts[arm][1].append(ps[chosen])
            counts[arm] += int(chosen.sum())
        drawn_patients += drawn.treated.size
        drawn_treated += int(drawn.treated.sum())
    if scenario.mode == "table":
        treated_share = scenario.treated_arm.size / cohort_size
    else:
        treated_share = drawn_treated / drawn_patients

    def kept(arm: bool, which: int) -> np.ndarray:
        return np.concatenate(parts[arm][which])[:n_patients]

    return TruthPopulation(
        treated_predictor=kept(True, 0), control_predictor=kept(False, 0),
        treated_ps=kept(True, 1), control_ps=kept(False, 1), treated_share=float(treated_share),
    )
