"""Survival analysis of a block of replicate cohorts: one import for the analysis plan.

Re-exports the batched Kaplan-Meier / median (:mod:`analysis.survival.kaplan_meier`), log-rank
(:mod:`analysis.survival.logrank`) and Cox (:mod:`analysis.survival.cox`) functions and their result types.
All take arrays shaped ``(replicate, patient)`` (times in months) plus an optional cohort
``mask`` and frequency ``weights``, and return frozen dataclasses of ``(replicate,)`` arrays
with a status code from :mod:`analysis.status` where a replicate is degenerate.

To analyse one endpoint several ways, sort and tabulate it once with
:func:`tabulate_risk_sets` and pass the table to :func:`cox_from_table`,
:func:`logrank_from_table` and :func:`kaplan_meier_from_table` (each arm's curve): the numbers
are those of the separate functions. :func:`analyse_endpoint` does all of it (Cox, log-rank,
both arms' medians) in one compiled pass per replicate, with the same numbers.
"""

from analysis.survival.cox import CoxResult, cox_from_table, fit_cox
from analysis.survival.endpoint import EndpointSurvival, analyse_endpoint
from analysis.survival.kaplan_meier import KaplanMeier, MedianEstimate, kaplan_meier, kaplan_meier_from_table, km_median
from analysis.survival.logrank import LogrankResult, logrank_from_table, logrank_test
from analysis.survival.risk_sets import RiskSetTable, tabulate_risk_sets

__all__ = [
    "CoxResult",
    "EndpointSurvival",
    "KaplanMeier",
    "LogrankResult",
    "MedianEstimate",
    "RiskSetTable",
    "analyse_endpoint",
    "cox_from_table",
    "fit_cox",
    "kaplan_meier",
    "kaplan_meier_from_table",
    "km_median",
    "logrank_from_table",
    "logrank_test",
    "tabulate_risk_sets",
]
