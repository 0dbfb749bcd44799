"""Scenario: a study description as frozen dataclasses.

A scenario holds everything a run needs: the arms, the covariate marginals per arm (table mode) or
for one population plus a logistic treatment model (selection mode), their Gaussian-copula
correlation, the illness-death outcome model with its calibration targets, censoring, response
and adverse-event rates, an optional unmeasured confounder, the analysis options and the run
settings.

This module holds the dataclasses only: the typed model the rest of psmsim uses. The file
format is the pydantic models of :mod:`sim.scenario.schema`, turned into these dataclasses by
:mod:`sim.scenario.build`; :mod:`sim.scenario.parser` reads files, and the package re-exports
both (``from sim.scenario import Scenario, load_scenario``). The format is documented in
``docs/scenario_format.md``; an invalid file gives one :class:`sim.errors.ScenarioError`
carrying every problem, each naming the field, the value and what is allowed.

Units: all times are in months.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

CovariateKind = Literal["binary", "categorical", "normal", "lognormal"]
BaselineHazard = Literal["exponential", "weibull", "piecewise"]
EffectMode = Literal["target_medians", "hazard_ratio"]
ScenarioMode = Literal["table", "selection"]

RESPONSE_CATEGORIES = ("CR", "PR", "SD", "PD")


@dataclass(frozen=True)
class Arm:
    """One study arm. ``size`` is the number of patients (table mode); ``treated`` marks the
    experimental arm (exactly one arm is treated)."""

    name: str
    label: str
    size: int
    treated: bool


@dataclass(frozen=True)
class Marginal:
    """The marginal distribution of one covariate in one arm (or in the population).

    Exactly the fields of its kind are set, already converted to distribution parameters:

    - ``binary``: ``p`` (probability of 1; from ``count``/arm size or ``proportion``);
    - ``categorical``: ``probabilities`` (one per level, summing to 1; from counts or proportions);
    - ``normal``: ``mean``, ``sd`` of the *untruncated* normal and optional ``lower``/``upper``
      bounds (truncation; the truncated distribution has the printed mean and SD);
    - ``lognormal`` from mean ± SD: ``mu``, ``sigma`` of log X ~ N(mu, sigma^2) (exact moment
      fit), ``sigma_upper = None``;
    - ``lognormal`` from median (IQR): a two-piece (split) lognormal, log X = mu + sigma Z for
      Z < 0 and mu + sigma_upper Z for Z >= 0 with Z standard normal (the copula's latent
      score): ``mu`` = log median, ``sigma`` = the lower-half log-scale SD,
      ``sigma_upper`` = the upper-half one. It reproduces the printed median and quartiles
      exactly and is the lognormal when ``sigma == sigma_upper`` (see
      :func:`sim.generate.marginals.fit_split_lognormal_quartiles`).

    ``target`` keeps the numbers as the paper printed them (e.g. ``{"median": 20.0, "q1": 12.2,
    "q3": 29.7}`` or ``{"count": 32, "n": 35}``) so ``psmsim describe`` can show target vs
    simulated. Its keys by kind: binary ``count``, ``n`` or ``proportion``; categorical
    ``counts`` (tuple), ``n`` or ``probabilities`` (tuple); normal ``mean``, ``sd``; lognormal
    ``median``, ``q1``, ``q3`` or ``mean``, ``sd``. :func:`sim.generate.marginals.implied_summary` gives
    the fitted distribution's value of the same statistics (the fit error) and
    :func:`sim.generate.marginals.marginal_mean` its mean.
    """

    p: float | None = None
    probabilities: tuple[float, ...] | None = None
    mean: float | None = None
    sd: float | None = None
    lower: float | None = None
    upper: float | None = None
    mu: float | None = None
    sigma: float | None = None
    sigma_upper: float | None = None
    target: Mapping[str, float | tuple[float, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Covariate:
    """A baseline covariate: its name (the CSV column), label, kind, levels (categorical; the
    stored value is the level index 0..k-1; binary is 0/1) and marginal per arm name — or the
    single key ``"population"`` in selection mode."""

    name: str
    label: str
    kind: CovariateKind
    marginals: Mapping[str, Marginal]
    levels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selection:
    """Selection mode: patients drawn from one population; treatment ~ Bernoulli(expit(
    intercept + sum log_odds[c] * x_c)). ``patients`` is the total cohort size.

    A categorical covariate's log-odds is a tuple, one per level (level 0 is 0).
    ``unmeasured_log_odds`` adds ``unmeasured_log_odds * U`` to the linear predictor when the
    unmeasured confounder has a ``population`` prevalence (U drawn before treatment)."""

    patients: int
    intercept: float
    log_odds: Mapping[str, float | tuple[float, ...]]
    unmeasured_log_odds: float = 0.0


@dataclass(frozen=True)
class Transition:
    """One transition hazard of the illness-death model, before covariate and treatment effects.

    ``baseline``: exponential (shape 1), Weibull with ``shape`` (PH form h(t) = λ ν t^(ν-1)),
    or piecewise-constant with ``breaks`` (months, increasing, starting after 0) and
    ``relative_rates`` (one more than breaks; the scale multiplies them). The scale λ is not
    stated by the user: calibration sets it (see :mod:`sim.calibrate.targets`).
    """

    baseline: BaselineHazard = "exponential"
    shape: float = 1.0
    breaks: tuple[float, ...] = ()
    relative_rates: tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class TreatmentEffect:
    """How the experimental arm differs.

    ``mode="target_medians"``: calibrate one log-HR on the PFS transitions (h01, h02) and one on
    h12 so the treated arm's marginal medians hit ``pfs_median``/``os_median`` (months).
    ``mode="hazard_ratio"``: the conditional HR ``hazard_ratio`` applies to all three
    transitions (1.0 is exactly the null).
    ``delay_months``: the effect on h01/h02 starts after this time (delayed immunotherapy
    effect; 0 = proportional from the start).
    Per transition: ``progression_hazard_ratio``, ``death_before_hazard_ratio``,
    ``death_after_hazard_ratio`` replace ``hazard_ratio`` on h01, h02, h12 (hazard_ratio mode;
    None = ``hazard_ratio``); in target_medians mode only ``death_before_hazard_ratio`` may be
    fixed (then the calibrated PFS log-HR acts on h01 alone; None = the same log-HR on h01 and
    h02, as by default).
    """

    mode: EffectMode
    pfs_median: float | None = None
    os_median: float | None = None
    hazard_ratio: float | None = None
    delay_months: float = 0.0
    progression_hazard_ratio: float | None = None
    death_before_hazard_ratio: float | None = None
    death_after_hazard_ratio: float | None = None


@dataclass(frozen=True)
class Assessment:
    """The tumour-assessment schedule: scans every ``interval_months`` from treatment start
    (the first at one interval). Progression is only seen at a scan: it is recorded at the
    first scan at or after it (a death before that scan is recorded at its time), and PFS is
    censored at the last scan done (see :mod:`sim.generate.censoring`)."""

    interval_months: float


@dataclass(frozen=True)
class Outcome:
    """Illness-death model for PFS and OS (Meller, Beyersmann & Rufibach 2019).

    States 0 (progression-free), 1 (progressed), 2 (dead). PFS = time leaving state 0, OS = time
    of death. h01 progression, h02 death without progression, h12 death after progression on
    the clock since progression (semi-Markov). ``death_before_progression`` is the share of the
    control arm's PFS events that are deaths (fixes h02/h01 at baseline covariates).
    Calibration targets for the control arm: ``control_pfs_median``, ``control_os_median``.
    ``covariate_log_hr`` maps covariate names (binary, or continuous per unit) to log-HRs
    acting on all three transitions; categorical covariates take a tuple, one per level (level
    0 must be 0). ``assessment``: the scan schedule on which progression is recorded (None:
    progression seen when it happens, continuous PFS).
    """

    control_pfs_median: float
    control_os_median: float
    death_before_progression: float
    progression: Transition
    death_before: Transition
    death_after: Transition
    treatment: TreatmentEffect
    covariate_log_hr: Mapping[str, float | tuple[float, ...]]
    assessment: Assessment | None = None


@dataclass(frozen=True)
class Censoring:
    """Staggered uniform entry over ``accrual_months``; administrative cut-off at
    ``cutoff_month`` after the first entry; optional exponential dropout (rate per month)."""

    accrual_months: float
    cutoff_month: float
    dropout_rate: float = 0.0


ResponseModel = Literal["covariates", "pfs"]


@dataclass(frozen=True)
class Response:
    """Best overall response probabilities per arm over (CR, PR, SD, PD), the ``model`` that
    draws it and ``pfs_link``, the slope of its cumulative logit (see
    :mod:`sim.generate.responses`).

    ``model="covariates"``: response drawn apart from PFS, linked to the patient's centred PFS
    log-hazard contribution from covariates (``pfs_link`` 0 = independent; > 0 = worse
    prognosis, worse response). ``model="pfs"`` (needs ``outcome.assessment``): PD exactly
    when PFS ends by the first scan (the early PFS hazard is calibrated to each arm's PD rate),
    CR/PR/SD otherwise, with CR/PR more likely for a longer PFS (``pfs_link`` = log-odds of a
    better response per unit of log PFS time). ``target`` keeps the printed numbers per arm
    (``{"CR": 0, "PR": 6, "SD": 18, "PD": 11, "n": 35}`` or the probabilities)."""

    probabilities: Mapping[str, tuple[float, float, float, float]]
    pfs_link: float = 0.0
    target: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    model: ResponseModel = "covariates"


@dataclass(frozen=True)
class AdverseEvent:
    """One AE: per arm the probability of any grade and of grade 3–4 (≤ any grade).

    ``grade2_share`` is the assumed share of grade 2 among grade 1–2 events and
    ``grade4_share`` the share of grade 4 among grade 3–4 events (papers report only "any" and
    "3–4"; the split only affects the exported maximum grade). ``target`` keeps the printed
    numbers per arm (``{"any": 17, "grade34": 1, "n": 35}`` or the proportions)."""

    name: str
    label: str
    any_grade: Mapping[str, float]
    grade34: Mapping[str, float]
    grade2_share: float = 0.4
    grade4_share: float = 0.1
    target: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class AdverseEventDependence:
    """How AEs cluster in the same patients: per arm either ``any_grade`` (the share of
    patients with at least one AE, which the correlation is calibrated to) or ``correlation``
    (the latent correlation of the AE types under a shared patient-level frailty). An arm in
    neither has independent AE types. ``target`` keeps the printed numbers per arm."""

    any_grade: Mapping[str, float] = field(default_factory=dict)
    correlation: Mapping[str, float] = field(default_factory=dict)
    target: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Unmeasured:
    """An unmeasured binary confounder U: prevalence per arm (or ``"population"``) and log-HR on
    all transitions. Never part of the cohort's covariates or the PS model."""

    prevalence: Mapping[str, float]
    log_hr: float


@dataclass(frozen=True)
class AnalysisMethod:
    """A named analysis method (``[analysis.methods.NAME]``): the preset ``preset`` as the
    scenario configures it (its ``[analysis.<preset>]`` overrides applied), then this method's
    ``overrides`` (option names of :data:`analysis.plan.options.OVERRIDABLE`, ``"none"`` read
    as ``None``), and its own PS covariates (``None``: the scenario's ``ps_covariates``)."""

    name: str
    preset: str
    overrides: Mapping[str, object] = field(default_factory=dict)
    ps_covariates: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AnalysisOptions:
    """The analysis options of the scenario.

    ``plan`` is the method ``psmsim analyse`` uses by default and the primary method of
    reports (a preset of :data:`analysis.plan.options.PRESETS`, ``paper`` | ``recommended``,
    or the name of one of ``methods``); the runner applies every method to every cohort
    (:attr:`method_names`). ``ps_covariates`` are the covariate names of the PS model.
    ``overrides`` maps a preset name to its option overrides (``[analysis.paper]``,
    ``[analysis.recommended]``; option names of :data:`analysis.plan.options.OVERRIDABLE`,
    values as written in the file, except the string ``"none"`` read as ``None``), e.g.
    ``{"paper": {"caliper": 0.05}}``. A preset without a table is absent (its defaults apply):
    use ``overrides.get(preset, {})``. The overrides were checked on load with
    :func:`analysis.plan.options.make_plan`.
    """

    plan: str = "paper"
    ps_covariates: tuple[str, ...] = ()
    overrides: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    #: The named methods of ``[analysis.methods]``, in file order; they are run in addition
    #: to the two presets.
    methods: tuple[AnalysisMethod, ...] = ()

    @property
    def method_names(self) -> tuple[str, ...]:
        """Every method a run applies, in order: ``paper``, ``recommended``, then the named
        methods (this order fixes each method's random stream, so adding a method never
        changes the results of the others)."""
        return ("paper", "recommended", *(method.name for method in self.methods))


@dataclass(frozen=True)
class SimulationSettings:
    """Run settings: replicates, root seed, block size; patients for calibration and for the
    true estimands (ATT marginal HR). ``block_size`` None: chosen from the cohort size
    (:func:`sim.scenario.feasibility.run_block_size`)."""

    replicates: int = 1000
    seed: int = 1
    block_size: int | None = None
    calibration_patients: int = 200_000
    truth_patients: int = 1_000_000


@dataclass(frozen=True)
class PublishedNumber:
    """One number of ``[checks]``: ``cohort`` (full | matched), ``table`` (pairs, baseline,
    response, adverse_events, survival), ``item`` (covariate, response row ORR/DCR/CR/PR/SD/PD,
    adverse-event name or ``any_adverse_event``, endpoint pfs/os; empty for pairs),
    ``statistic`` (percent, percent:<level>, mean, sd, median, q1, q3, any, grade34 (percents),
    p, any_p, grade34_p, median_months, p_logrank, pairs), ``arm`` (None for p-values and
    pairs), the published ``value`` (percentages in %, medians in months) and ``half_width``:
    a simulated value within it prints as the published one."""

    cohort: str
    table: str
    item: str
    statistic: str
    arm: str | None
    value: float
    half_width: float


@dataclass(frozen=True)
class Checks:
    """``[checks]``: the published numbers, the reported pair count (None: not given) and the
    decimals the paper prints values and p-values with."""

    numbers: tuple[PublishedNumber, ...] = ()
    pairs: int | None = None
    decimals: int = 1
    p_decimals: int = 3


@dataclass(frozen=True)
class Scenario:
    """A whole study description. ``source_text`` is the TOML text it was read from (stored in
    run provenance). ``covariates`` keep file order (it is the CSV column order)."""

    name: str
    title: str
    mode: ScenarioMode
    arms: tuple[Arm, ...]
    covariates: tuple[Covariate, ...]
    correlation: tuple[tuple[float, ...], ...]
    outcome: Outcome
    censoring: Censoring
    response: Response
    adverse_events: tuple[AdverseEvent, ...]
    analysis: AnalysisOptions
    simulation: SimulationSettings
    selection: Selection | None = None
    unmeasured: Unmeasured | None = None
    adverse_event_dependence: AdverseEventDependence | None = None
    source_text: str = ""
    checks: Checks = field(default_factory=Checks)

    @property
    def treated_arm(self) -> Arm:
        return next(arm for arm in self.arms if arm.treated)

    @property
    def control_arm(self) -> Arm:
        return next(arm for arm in self.arms if not arm.treated)

    @property
    def covariate_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.covariates)
