"""The calibrated parameters of a scenario's outcome model (:class:`Calibration`): what
:func:`sim.calibrate.targets.calibrate` solves for, what the cache stores
(:mod:`sim.calibrate.cache`, as JSON) and what the generator and the true estimands read.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.calibrate.keys import CALIBRATION_VERSION
from sim.generate.outcomes import IllnessDeathModel
from sim.scenario.model import Outcome


@dataclass(frozen=True)
class Calibration:
    """Calibrated parameters of a scenario's outcome model.

    Attributes
    ----------
    progression_scale, death_before_scale, death_after_scale : float
        λ01, λ02, λ12: H(t) = λ G(t) with G the transition's unit cumulative baseline
        (months).
    log_hr_pfs, log_hr_os : float
        Treatment log-HR on h01/h02 (after ``delay_months``) and on h12.
    delay_months : float
        Delay of the PFS treatment effect (copied from the scenario).
    control_pfs_median, control_os_median, treated_pfs_median, treated_os_median : float
        Marginal medians achieved on the calibration sample (months).
    control_death_share : float
        Achieved share of the control arm's PFS events that are deaths.
    control_mean_linear_predictor, treated_mean_linear_predictor : float
        Mean covariate log-hazard η per arm (selection mode: among Z = 0 / Z = 1), used to centre
        the prognosis that links response to PFS.
    n_patients : int
        Calibration sample size per arm.
    key : str
        Content key of the scenario parts the calibration depends on (sha256 hex,
        :func:`calibration_key`).
    response_thresholds : tuple of tuple of float
        Cumulative-logit response thresholds per arm (scenario arm order; 3 each), from
        :func:`sim.generate.responses.calibrate_response_thresholds` on the calibration sample's
        prognosis, so that each arm's marginal response rates equal the targets whatever
        ``response.pfs_link``; empty when calibrated from bare profiles.
    version : int
        :data:`CALIBRATION_VERSION` of the code that produced it.
    early_months : float
        The early window of the PFS hazards (the first scan; 0 = none, see
        :mod:`sim.generate.outcomes`).
    control_early_log_hr, treated_early_log_hr : float
        Log multipliers α of h01/h02 in the early window per arm (relative to the baseline).
    control_early_pfs_rate, treated_early_pfs_rate : float
        Achieved share of each arm with a PFS event by the end of the window (= the PD rate of
        the response-from-PFS model) on the calibration sample; 0 without a window.
    log_hr_death_before : float
        Treatment log-HR on h02 (equal to ``log_hr_pfs`` unless the scenario sets
        ``death_before_hazard_ratio``).
    """

    progression_scale: float
    death_before_scale: float
    death_after_scale: float
    log_hr_pfs: float
    log_hr_os: float
    delay_months: float
    control_pfs_median: float
    control_os_median: float
    treated_pfs_median: float
    treated_os_median: float
    control_death_share: float
    control_mean_linear_predictor: float
    treated_mean_linear_predictor: float
    n_patients: int
    key: str
    response_thresholds: tuple[tuple[float, ...], ...] = ()
    version: int = CALIBRATION_VERSION
    early_months: float = 0.0
    control_early_log_hr: float = 0.0
    treated_early_log_hr: float = 0.0
    control_early_pfs_rate: float = 0.0
    treated_early_pfs_rate: float = 0.0
    log_hr_death_before: float = 0.0

    def illness_death_model(self, outcome: Outcome) -> IllnessDeathModel:
        """The fully specified model for a scenario's ``outcome`` section."""
        return IllnessDeathModel(
            progression=outcome.progression,
            death_before=outcome.death_before,
            death_after=outcome.death_after,
            progression_scale=self.progression_scale,
            death_before_scale=self.death_before_scale,
            death_after_scale=self.death_after_scale,
            log_hr_pfs=self.log_hr_pfs,
            log_hr_os=self.log_hr_os,
            delay_months=self.delay_months,
            early_months=self.early_months,
            control_early_log_hr=self.control_early_log_hr,
            treated_early_log_hr=self.treated_early_log_hr,
            log_hr_death_before=self.log_hr_death_before,
        )
