"""Survival analysis of a block of replicate cohorts: one import for the analysis plan.

Re-exports the batched Kaplan-Meier / median (:mod:`analysis.kaplan_meier`), log-rank
(:mod:`analysis.logrank`) and Cox (:mod:`analysis.cox`) functions and their result types.
All take arrays shaped ``(replicate, patient)`` (times in months) plus an optional cohort
``mask`` and frequency ``weights``, and return frozen dataclasses of ``(replicate,)`` arrays
with a status code from :mod:`analysis.status` where a replicate is degenerate.
"""

from analysis.cox import CoxResult, fit_cox
from analysis.kaplan_meier import KaplanMeier, MedianEstimate, kaplan_meier, km_median
from analysis.logrank import LogrankResult, RiskSetTable, logrank_test, tabulate_risk_sets

__all__ = [
    "CoxResult",
    "KaplanMeier",
    "LogrankResult",
    "MedianEstimate",
    "RiskSetTable",
    "fit_cox",
    "kaplan_meier",
    "km_median",
    "logrank_test",
    "tabulate_risk_sets",
]
