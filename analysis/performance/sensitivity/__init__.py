"""Sensitivity analysis of simulation results: which design factors move a performance
measure, and how strong an unmeasured confounder would have to be.

- :mod:`.anova`: ANOVA decomposition / η² over discrete factors (SimDesign's ``SimAnova``),
  logit scale for rates, with each term's Monte Carlo noise share;
- :mod:`.one_at_a_time`: tornado data of a one-at-a-time design;
- :mod:`.global_indices`: Morris μ, μ*, σ and Sobol S1/ST (SALib) with the noise variance;
- :mod:`.unmeasured`: the E-value of a hazard ratio and the Lin–Psaty–Kronmal bias factor;
- :mod:`.bias_surface`: the simulated bias surface under an unmeasured confounder and its
  contours (estimate reaches HR = 1, CI crosses 1, power below target) with MC bands.

Every function works on plain arrays (one value per design point with its Monte Carlo SE);
``sim.run`` maps a sweep's summary onto them.
"""

from analysis.performance.sensitivity.bias_surface import CONTOURS, bias_surface, first_crossing
from analysis.performance.sensitivity.anova import EtaSquared, eta_squared, logit_with_mcse
from analysis.performance.sensitivity.global_indices import (
    MorrisIndices,
    SobolIndices,
    morris_indices,
    salib_problem,
    salib_seed,
    sobol_indices,
)
from analysis.performance.sensitivity.one_at_a_time import Tornado, tornado
from analysis.performance.sensitivity.unmeasured import (
    EValues,
    ImpliedHazardRatio,
    adjust_hr_with_binary,
    e_value,
    e_values_hr,
    hazard_ratio_from_medians,
    hazard_ratio_to_risk_ratio,
    lpk_bias_factor,
    tipping_outcome_hr,
)

__all__ = [
    "CONTOURS", "ImpliedHazardRatio", "bias_surface", "first_crossing", "hazard_ratio_from_medians",
    "EValues", "EtaSquared", "MorrisIndices", "SobolIndices", "Tornado",
    "adjust_hr_with_binary", "e_value", "e_values_hr", "eta_squared", "hazard_ratio_to_risk_ratio",
    "logit_with_mcse", "lpk_bias_factor", "morris_indices", "salib_problem", "salib_seed", "sobol_indices",
    "tipping_outcome_hr", "tornado",
]
