"""Generate B synthetic cohorts of a calibrated scenario as one :class:`CohortBatch`.

The stages, each batched over (replicate, patient) and fed by the one generator ``rng`` in a
fixed order: covariates, arm and unmeasured confounder (:func:`sim.generate.covariates.draw_covariates`);
uncensored PFS/OS from the illness-death model (:func:`sim.generate.outcomes.draw_illness_death`); entry
and censoring (:func:`sim.generate.censoring.draw_censoring`); best response linked to prognosis
(:func:`sim.generate.responses.draw_best_response`); adverse events
(:func:`sim.generate.adverse_events.draw_adverse_events`). Finally each replicate's patients are put in
enrolment order (entry time ascending), as in a study's data file, and numbered 1..N: file order
matters to SPSS-style matchers that walk the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from analysis.cohort import CohortBatch
from sim.generate.adverse_events import draw_adverse_events
from sim.calibrate.calibration import Calibration
from sim.generate.censoring import draw_censoring, observe_outcomes
from sim.generate.covariates import draw_covariates
from sim.generate.memo import memo_by_identity
from sim.generate.outcomes import IllnessDeathModel, covariate_linear_predictor, draw_illness_death
from sim.generate.responses import ResponseThresholds, draw_best_response
from sim.scenario.model import Scenario


def generate_cohorts(
    scenario: Scenario,
    calibration: Calibration,
    n_replicates: int,
    *,
    rng: np.random.Generator,
) -> CohortBatch:
    """Draw ``n_replicates`` cohorts.

    Parameters
    ----------
    scenario : Scenario
    calibration : Calibration
        From :func:`sim.calibrate.cache.calibrate_cached` (or :func:`sim.calibrate.targets.calibrate`).
    n_replicates : int
        B.
    rng : numpy.random.Generator

    Returns
    -------
    CohortBatch
        Arrays shaped (B, N[, ...]) with N the cohort size (table mode: the sum of the arm
        sizes; selection mode: ``selection.patients``), patients in entry order, ``patient_id``
        1..N. Observed PFS <= OS; no event after the data cut-off; with
        ``outcome.assessment``, progressions and censored PFS times on the scan grid
        (:func:`sim.generate.censoring.observe_outcomes`). The unmeasured confounder is
        not part of the batch. The prognosis passed to the response model is the patient's
        covariate log-hazard η (including U; higher = worse) minus the mean η of the patient's
        arm (:attr:`Calibration.control_mean_linear_predictor`, ``treated_…``), with the
        response thresholds calibrated once on the calibration sample
        (:attr:`Calibration.response_thresholds`), so a cohort's response does not depend on
        the other cohorts of its block.

    References
    ----------
    Bender, Augustin & Blettner (2005), Stat Med 24:1713-1723 (times); Meller, Beyersmann &
    Rufibach (2019), Stat Med 38:4270-4289 (illness-death PFS/OS).
    """
    plan = _block_plan(scenario, calibration)
    drawn = draw_covariates(scenario, n_replicates, rng=rng)
    linear_predictor = covariate_linear_predictor(scenario, drawn.values, drawn.unmeasured)
    latent = draw_illness_death(linear_predictor, drawn.treated, plan.model, rng=rng)
    follow_up = draw_censoring(scenario.censoring, linear_predictor.shape, rng=rng)
    observed = observe_outcomes(latent.pfs_months, latent.os_months, latent.progressed,
                                follow_up.censor_months, scenario.outcome.assessment)
    prognosis = None
    if scenario.response.model != "pfs" and float(scenario.response.pfs_link) != 0.0:
        # Only the prognosis-linked cumulative logit reads it.
        prognosis = linear_predictor - np.where(
            drawn.treated,
            calibration.treated_mean_linear_predictor,
            calibration.control_mean_linear_predictor,
        )
    thresholds = plan.response_thresholds
    best_response = draw_best_response(
        scenario, drawn.treated, prognosis, rng=rng, thresholds=thresholds,
        pfs_months=latent.pfs_months,
    )
    ae_grade = draw_adverse_events(scenario, drawn.treated, rng=rng)

    order = np.argsort(follow_up.entry_month, axis=1, kind="stable")
    n_replicates, n_patients = order.shape
    # Row of each enrolled patient in the (B * N, ...) flattening: one gather of whole rows
    # per field (a copy, the same values as take_along_axis along axis 1).
    rows = (order + n_patients * np.arange(n_replicates)[:, None]).ravel()

    def enrolled(values: np.ndarray) -> np.ndarray:
        flat = values.reshape((n_replicates * n_patients,) + values.shape[2:])
        return flat.take(rows, axis=0).reshape(values.shape)

    # The (B, N, covariate) and (B, N, AE) arrays are this call's own (fresh from
    # draw_covariates and draw_adverse_events, referenced nowhere else): reordered in place,
    # without a second block-sized array (at 10,000 patients x 100 replicates 176 MB and 15 MB).
    ae_grade = np.asarray(ae_grade, dtype=np.int8)
    _enrol_in_place(drawn.values, order)
    _enrol_in_place(ae_grade, order)
    return CohortBatch(
        treated=enrolled(drawn.treated),
        covariates=drawn.values,
        covariate_names=scenario.covariate_names,
        covariate_kinds=tuple(drawn.kinds),
        entry_month=enrolled(follow_up.entry_month),
        pfs_months=enrolled(observed.pfs_months),
        pfs_event=enrolled(observed.pfs_event),
        os_months=enrolled(observed.os_months),
        os_event=enrolled(observed.os_event),
        best_response=enrolled(np.asarray(best_response, dtype=np.int8)),
        ae_grade=ae_grade,
        ae_names=plan.ae_names,
        patient_id=np.broadcast_to(
            np.arange(1, n_patients + 1, dtype=np.int64), linear_predictor.shape
        ).copy(),
    )



@dataclass(frozen=True)
class _BlockPlan:
    """What :func:`generate_cohorts` derives from its (scenario, calibration) pair alone,
    once per pair of objects (:mod:`sim.generate.memo`).

    Attributes
    ----------
    model : IllnessDeathModel
        ``calibration.illness_death_model(scenario.outcome)``.
    response_thresholds : ResponseThresholds or None
        The calibrated response thresholds (None: none calibrated).
    ae_names : tuple of str
    """

    model: IllnessDeathModel
    response_thresholds: ResponseThresholds | None
    ae_names: tuple[str, ...]


@memo_by_identity
def _block_plan(scenario: Scenario, calibration: Calibration) -> _BlockPlan:
    thresholds = None
    if calibration.response_thresholds:
        values = np.array(calibration.response_thresholds, dtype=float)
        values.flags.writeable = False
        thresholds = ResponseThresholds(arm_names=tuple(arm.name for arm in scenario.arms),
                                        thresholds=values)
    return _BlockPlan(model=calibration.illness_death_model(scenario.outcome),
                      response_thresholds=thresholds,
                      ae_names=tuple(event.name for event in scenario.adverse_events))


def warm_up(scenario: Scenario, calibration: Calibration) -> None:
    """Load (or, on an installation's first use, compile) the generator's numba kernels for
    this scenario's array types, by generating two replicates from a throwaway generator
    (two, so the arms' views have a block's memory layout), so that a caller timing a block
    does not time numba's loading (~0.2 s per process from the cache, measured on the 2-core
    development machine). The caller's own generator is not touched."""
    generate_cohorts(scenario, calibration, 2, rng=np.random.default_rng(0))

@njit(cache=True)
def _enrol_in_place(values, order):
    """Reorder each replicate's patients in place: ``values[b, i] = values[b, order[b, i]]``
    (the right side as before the call), through one replicate-sized scratch copy.

    Parameters
    ----------
    values : ndarray, shape (replicate, patient, k)
    order : ndarray of intp, shape (replicate, patient)
        A permutation of 0..N-1 per replicate.
    """
    n_replicates, n_patients, k = values.shape
    scratch = np.empty((n_patients, k), dtype=values.dtype)
    for b in range(n_replicates):
        scratch[:, :] = values[b]
        for i in range(n_patients):
            source = order[b, i]
            for column in range(k):
                values[b, i, column] = scratch[source, column]
