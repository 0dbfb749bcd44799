"""PFS and OS drawn jointly from an illness-death model.

States 0 (alive, progression-free), 1 (progressed), 2 (dead); transitions h01 (progression),
h02 (death before progression) and h12 (death after progression, semi-Markov: its clock starts
at progression). PFS is the time of leaving state 0, OS the time of death, so PFS <= OS for
every patient (Meller, Beyersmann & Rufibach 2019, Stat Med 38:4270-4289; R package simIDM).

Hazards of patient i (times in months)::

    h01(t) = λ01 g01(t) exp(η_i + z_i β_pfs 1{t > d})
    h02(t) = λ02 g02(t) exp(η_i + z_i β_02 1{t > d})     (β_02 = β_pfs unless set apart)
    h12(s) = λ12 g12(s) exp(η_i + z_i β_os),    s = time since progression

with ``g`` the unit-scale baseline of the transition (exponential: 1; Weibull PH form:
ν t^(ν-1); piecewise-constant: the relative rates between the breaks), ``η_i`` the covariate
linear predictor (:func:`covariate_linear_predictor`, including an unmeasured confounder U),
``z_i`` the treatment indicator and ``d`` the delay of the treatment effect (months; 0 = PH).

**Early window** (``early_months`` = e > 0, the first scan, when best response comes from PFS):
on [0, e] the PFS hazards h01 and h02 of arm a are λ g(t) exp(η_i + α_a) instead, with α_a
(``control_early_log_hr``, ``treated_early_log_hr``) calibrated so that each arm's share with
a PFS event by the first scan equals its published PD rate; after e the formulas above apply.
The treated arm's α replaces its treatment effect in the window, so the early treatment log-HR
is α_treated - α_control. This is a piecewise-constant multiplier of the baseline (a
piecewise-exponential change of the hazard at the first scan; cf. the piecewise-exponential
model, Friedman 1982, Ann Stat 10:101-113): the time is the inverse of a cumulative hazard with
piecewise-constant multipliers, :func:`invert_piecewise_multiplier`.

Times are drawn by inverse transform (Bender, Augustin & Blettner 2005, Stat Med 24:1713-1723):
``T = H^{-1}(E)`` with ``E = -log U`` standard exponential and H the patient's cumulative
hazard. With the delay the treatment multiplier is piecewise constant in time, so H is inverted
piecewise: with ``y = E exp(-η) / λ`` on the unit scale and ``G`` the unit cumulative baseline,
``T = G^{-1}(y)`` if ``y <= G(d)``, else ``T = G^{-1}(G(d) + (y - G(d)) exp(-z β))``.

Competing h01/h02: when both transitions have the same baseline shape (and the same treatment
log-HR), h02/h01 = λ02/λ01 is constant, so the PFS time is drawn from the total hazard (λ01 + λ02) g exp(...) and the event is
a progression with probability λ01 / (λ01 + λ02) (independently of the time). Otherwise the two
latent times T01 and T02 are drawn separately and PFS = min(T01, T02) (the latent-failure-time
construction; both give the same cause-specific hazards, Beyersmann, Allignol & Schumacher 2012,
*Competing Risks and Multistate Models with R*, ch. 3).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from sim.generate.hazards import (
    inverse_unit_cumulative_hazard,
    invert_delayed_effect,
    invert_piecewise_multiplier,
    same_baseline_shape,
    unit_cumulative_hazard,
)
from sim.generate.memo import memo_by_identity
from sim.scenario.model import Scenario, Transition


@dataclass(frozen=True)
class IllnessDeathModel:
    """The illness-death model with all parameters fixed (scales from calibration).

    Attributes
    ----------
    progression, death_before, death_after : Transition
        Baseline shapes of h01, h02 and h12.
    progression_scale, death_before_scale, death_after_scale : float
        Scales λ01, λ02, λ12 (per month^shape): H(t) = λ G(t) with G the unit cumulative
        baseline.
    log_hr_pfs : float
        Treatment log-HR on h01 and, unless ``log_hr_death_before`` is given, h02 (after
        ``delay_months``).
    log_hr_os : float
        Treatment log-HR on h12 (from the start of the post-progression clock).
    delay_months : float
        Time from treatment start before ``log_hr_pfs`` acts (0 = proportional hazards).
    early_months : float
        Length of the early window [0, early_months] of the PFS transitions (the first scan;
        0 = none).
    control_early_log_hr, treated_early_log_hr : float
        Log multipliers of h01 and h02 in the early window, per arm, relative to the baseline
        λ g(t) e^η (the treated arm's replaces the treatment effect there); calibrated to the
        published PD rates (:mod:`sim.calibrate.targets`).
    log_hr_death_before : float or None
        Treatment log-HR on h02 when it differs from ``log_hr_pfs`` (None: the same). A
        different one makes h02/h01 differ between the arms, so PFS is drawn from the two
        latent times.
    """

    progression: Transition
    death_before: Transition
    death_after: Transition
    progression_scale: float
    death_before_scale: float
    death_after_scale: float
    log_hr_pfs: float = 0.0
    log_hr_os: float = 0.0
    delay_months: float = 0.0
    early_months: float = 0.0
    control_early_log_hr: float = 0.0
    treated_early_log_hr: float = 0.0
    log_hr_death_before: float | None = None

    @property
    def has_early_hazard(self) -> bool:
        """True when the PFS hazards carry an early window (``early_months`` > 0)."""
        return self.early_months > 0.0


@dataclass(frozen=True)
class OutcomeNoise:
    """The random numbers behind the outcome times, kept apart from the times so the same
    draws can be reused while parameters change (common random numbers in calibration).

    Attributes
    ----------
    progression_exposure, death_before_exposure, death_after_exposure : ndarray, shape (...)
        Standard exponential variates E = -log U for T01 (or the PFS time from the total hazard),
        T02 (latent mode only) and T12.
    cause_uniform : ndarray, shape (...)
        U(0, 1) variates deciding the PFS event type when h01 and h02 share a shape.
    """

    progression_exposure: np.ndarray
    death_before_exposure: np.ndarray
    death_after_exposure: np.ndarray
    cause_uniform: np.ndarray


@dataclass(frozen=True)
class LatentTimes:
    """Uncensored outcome times.

    Attributes
    ----------
    pfs_months : ndarray of float, shape (...)
        Time leaving the progression-free state.
    os_months : ndarray of float, shape (...)
        Time of death (>= ``pfs_months``).
    progressed : ndarray of bool, shape (...)
        True where the PFS event is a progression, False where it is death.
    """

    pfs_months: np.ndarray
    os_months: np.ndarray
    progressed: np.ndarray


def draw_outcome_noise(shape: tuple[int, ...], *, rng: np.random.Generator) -> OutcomeNoise:
    """Draw the exponential and uniform variates for :func:`illness_death_times`.

    Always draws all four arrays, in a fixed order, so the generator's stream does not depend on
    the model's shapes.
    """
    return OutcomeNoise(
        progression_exposure=rng.standard_exponential(shape),
        death_before_exposure=rng.standard_exponential(shape),
        death_after_exposure=rng.standard_exponential(shape),
        cause_uniform=rng.random(shape),
    )


def _pfs_schedule(model: IllnessDeathModel, log_hr: float):
    """Breaks and log multipliers of the PFS hazards with an early window, one row per arm
    (row 0 control, 1 treated): α_arm on [0, e], then 0 before the delay d and the
    transition's β (treated) after it (:func:`_schedule`)."""
    return _schedule(float(model.early_months), float(model.delay_months),
                     float(model.control_early_log_hr), float(model.treated_early_log_hr),
                     float(log_hr))


@functools.lru_cache(maxsize=256)
def _schedule(early: float, delay: float, control_early_log_hr: float,
              treated_early_log_hr: float, log_hr: float):
    """:func:`_pfs_schedule` of these numbers, once (the table is read-only)."""
    breaks = tuple(sorted({early} | ({delay} if delay > early else set())))
    rows = []
    for early_log_hr, effect in ((control_early_log_hr, 0.0), (treated_early_log_hr, log_hr)):
        rows.append([early_log_hr] + [effect if start >= delay else 0.0 for start in breaks])
    table = np.array(rows, dtype=float)
    table.flags.writeable = False
    return breaks, table


def _invert_pfs(model: IllnessDeathModel, transition: Transition, unit_exposure: np.ndarray,
                treated: np.ndarray, log_hr: float) -> np.ndarray:
    """PFS-transition time from its unit exposure: the delayed effect, or with an early
    window the piecewise multipliers of :func:`_pfs_schedule` (per arm: row ``treated``)."""
    shape = np.shape(unit_exposure)
    arm = (treated if treated.shape == shape else np.broadcast_to(treated, shape)).astype(np.intp)
    if not model.has_early_hazard:
        return invert_delayed_effect(transition, unit_exposure, np.array([0.0, log_hr]),
                                     model.delay_months, rows=arm)
    breaks, log_multipliers = _pfs_schedule(model, log_hr)
    return invert_piecewise_multiplier(transition, unit_exposure, breaks, log_multipliers,
                                       rows=arm)


def illness_death_times(
    linear_predictor: np.ndarray,
    treated: np.ndarray,
    model: IllnessDeathModel,
    noise: OutcomeNoise,
) -> LatentTimes:
    """Uncensored PFS and OS from given random numbers (deterministic).

    Parameters
    ----------
    linear_predictor : ndarray of float, shape (...)
        Covariate log-hazard η (same on all three transitions).
    treated : ndarray of bool, shape (...)
    model : IllnessDeathModel
    noise : OutcomeNoise
        Arrays of the same shape (see :func:`draw_outcome_noise`).

    Returns
    -------
    LatentTimes
        PFS by inverse transform of the total PFS hazard (shared shape) or the minimum of the
        latent T01, T02 (different shapes); OS = PFS + T12 after a progression, PFS otherwise.

    References
    ----------
    Bender, Augustin & Blettner (2005), Stat Med 24:1713-1723; Meller, Beyersmann & Rufibach
    (2019), Stat Med 38:4270-4289.
    """
    linear_predictor = np.asarray(linear_predictor, dtype=float)
    treated = np.asarray(treated, dtype=bool)
    relative_exposure = np.exp(-linear_predictor)
    death_before_log_hr = (model.log_hr_pfs if model.log_hr_death_before is None
                           else model.log_hr_death_before)
    if same_baseline_shape(model.progression, model.death_before) and (
            death_before_log_hr == model.log_hr_pfs):
        # One draw from the total hazard (λ01 + λ02) g; the shape of progression is used
        # (death_before's unit baseline is proportional to it: its scale absorbs the factor).
        total_scale = model.progression_scale + _matched_scale(model)
        pfs = _invert_pfs(
            model,
            model.progression,
            noise.progression_exposure * relative_exposure / total_scale,
            treated,
            model.log_hr_pfs,
        )
        progressed = noise.cause_uniform < model.progression_scale / total_scale
    else:
        with np.errstate(divide="ignore"):  # a zero scale gives an infinite latent time
            to_progression = _invert_pfs(
                model,
                model.progression,
                noise.progression_exposure * relative_exposure / model.progression_scale,
                treated,
                model.log_hr_pfs,
            )
            to_death = _invert_pfs(
                model,
                model.death_before,
                noise.death_before_exposure * relative_exposure / model.death_before_scale,
                treated,
                death_before_log_hr,
            )
        pfs = np.minimum(to_progression, to_death)
        progressed = to_progression < to_death
    after_progression_exposure = (
        noise.death_after_exposure
        * relative_exposure
        * np.exp(-np.array([0.0, model.log_hr_os]))[treated.astype(np.intp)]  # exp per arm
        / model.death_after_scale
    )
    after_progression = inverse_unit_cumulative_hazard(
        model.death_after, after_progression_exposure
    )
    overall = np.where(progressed, pfs + after_progression, pfs)
    return LatentTimes(pfs_months=pfs, os_months=overall, progressed=progressed)


def _matched_scale(model: IllnessDeathModel) -> float:
    """λ02 expressed on progression's unit baseline: with proportional unit baselines
    g02 = c g01 (c = G02(t)/G01(t) for any t > 0), the total PFS hazard is (λ01 + c λ02) g01."""
    reference_month = 1.0 + max(
        (*model.progression.breaks, *model.death_before.breaks), default=0.0
    )
    ratio = unit_cumulative_hazard(model.death_before, reference_month) / unit_cumulative_hazard(
        model.progression, reference_month
    )
    return model.death_before_scale * float(ratio)


def draw_illness_death(
    linear_predictor: np.ndarray,
    treated: np.ndarray,
    model: IllnessDeathModel,
    *,
    rng: np.random.Generator,
) -> LatentTimes:
    """Draw uncensored PFS and OS for each patient.

    Parameters
    ----------
    linear_predictor : ndarray of float, shape (replicate, patient)
        Covariate log-hazard η (:func:`covariate_linear_predictor`).
    treated : ndarray of bool, shape (replicate, patient)
    model : IllnessDeathModel
    rng : numpy.random.Generator

    Returns
    -------
    LatentTimes, arrays shaped (replicate, patient), months
    """
    noise = draw_outcome_noise(np.shape(linear_predictor), rng=rng)
    return illness_death_times(linear_predictor, treated, model, noise)


def covariate_centres(scenario: Scenario) -> np.ndarray:
    """Centre of each covariate in the linear predictor, shape (covariate,).

    Continuous covariates are centred at the control arm's printed target (normal: the mean;
    lognormal: the median, or exp(μ) when the paper printed mean ± SD) — in selection mode at
    the population's — so the baseline hazard is that of a typical control patient; binary and
    categorical covariates are not centred (0).
    """
    reference = "population" if scenario.mode == "selection" else scenario.control_arm.name
    centres = np.zeros(len(scenario.covariates))
    for index, covariate in enumerate(scenario.covariates):
        marginal = covariate.marginals[reference]
        if covariate.kind == "normal":
            centres[index] = marginal.target.get("mean", marginal.mean)
        elif covariate.kind == "lognormal":
            centres[index] = marginal.target.get("median", float(np.exp(marginal.mu)))
    return centres


def covariate_linear_predictor(
    scenario: Scenario, values: np.ndarray, unmeasured: np.ndarray | None
) -> np.ndarray:
    """Covariate log-hazard η, the same on h01, h02 and h12.

    η = sum over covariates of β_c (x_c - centre_c) (binary: β x; continuous: per unit, centred
    by :func:`covariate_centres`; categorical: the level's log-HR from the tuple, level 0 = 0)
    + log_hr_U · U for the unmeasured confounder. Covariates absent from
    ``outcome.covariate_log_hr`` have no effect.

    Parameters
    ----------
    scenario : Scenario
    values : ndarray of float, shape (..., covariate)
        Covariates in scenario order.
    unmeasured : ndarray of bool, shape (...), or None

    Returns
    -------
    ndarray of float, shape (...)
    """
    values = np.asarray(values, dtype=float)
    terms = _predictor_terms(scenario)
    flat = values.reshape(math.prod(values.shape[:-1]), values.shape[-1])
    with_unmeasured = scenario.unmeasured is not None and unmeasured is not None
    flags = (_as_shape(np.asarray(unmeasured, dtype=bool), values.shape[:-1]).ravel()
             if with_unmeasured else np.zeros(0, dtype=bool))
    predictor = np.empty(values.shape[:-1])
    _linear_predictor(flat, terms.columns, terms.categorical, terms.slopes, terms.centres,
                      terms.level_effects, terms.level_counts, with_unmeasured, flags,
                      float(scenario.unmeasured.log_hr) if with_unmeasured else 0.0,
                      predictor.reshape(-1))
    return predictor


def _as_shape(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` broadcast to ``shape`` (itself when it has that shape already)."""
    return array if array.shape == shape else np.broadcast_to(array, shape)


@dataclass(frozen=True)
class _PredictorTerms:
    """The covariates with an effect in ``outcome.covariate_log_hr``, in scenario order, as
    arrays for :func:`_linear_predictor` (:func:`_predictor_terms`).

    Attributes
    ----------
    columns : ndarray of intp, shape (term,)
    categorical : ndarray of bool, shape (term,)
    slopes, centres : ndarray of float, shape (term,)
        β_c and the centre of the non-categorical terms (:func:`covariate_centres`).
    level_effects : ndarray of float, shape (term, level)
        The per-level log-HRs of the categorical terms (zero-padded); ``level_counts`` their
        numbers of levels.
    """

    columns: np.ndarray
    categorical: np.ndarray
    slopes: np.ndarray
    centres: np.ndarray
    level_effects: np.ndarray
    level_counts: np.ndarray


@memo_by_identity
def _predictor_terms(scenario: Scenario) -> _PredictorTerms:
    """:class:`_PredictorTerms` of ``scenario``, once per scenario object."""
    centres = covariate_centres(scenario)
    terms = [(index, covariate.kind == "categorical", effect)
             for index, covariate in enumerate(scenario.covariates)
             if (effect := scenario.outcome.covariate_log_hr.get(covariate.name)) is not None]
    width = max([len(effect) for _, categorical, effect in terms if categorical], default=0)
    level_effects = np.zeros((len(terms), width))
    level_counts = np.zeros(len(terms), dtype=np.intp)
    slopes = np.zeros(len(terms))
    for row, (_, categorical, effect) in enumerate(terms):
        if categorical:
            level_effects[row, :len(effect)] = np.asarray(effect, dtype=float)
            level_counts[row] = len(effect)
        else:
            slopes[row] = float(effect)
    result = _PredictorTerms(
        columns=np.array([index for index, _, _ in terms], dtype=np.intp),
        categorical=np.array([categorical for _, categorical, _ in terms], dtype=bool),
        slopes=slopes,
        centres=np.array([centres[index] for index, _, _ in terms], dtype=float),
        level_effects=level_effects, level_counts=level_counts)
    for array in vars(result).values():
        array.flags.writeable = False
    return result


@njit(cache=True)
def _linear_predictor(values, columns, categorical, slopes, centres, level_effects,
                      level_counts, with_unmeasured, unmeasured, unmeasured_log_hr, out):
    """η of each patient (row of ``values``, shape (patient, covariate)) into ``out``
    (patient,): the terms' contributions added in scenario order to 0.0, then
    log_hr_U · U, each as numpy's ``predictor += ...`` of :func:`covariate_linear_predictor`
    computes it (β (x - centre); a categorical level's log-HR, its index wrapping below 0 and
    an IndexError past the levels, as numpy's indexing)."""
    for p in range(values.shape[0]):
        total = 0.0
        for t in range(columns.size):
            x = values[p, columns[t]]
            if categorical[t]:
                level = int(x)
                if level < 0:
                    level += level_counts[t]
                if level < 0 or level >= level_counts[t]:
                    raise IndexError("categorical level out of range")
                total = total + level_effects[t, level]
            else:
                total = total + slopes[t] * (x - centres[t])
        if with_unmeasured:
            total = total + unmeasured_log_hr * (1.0 if unmeasured[p] else 0.0)
        out[p] = total
