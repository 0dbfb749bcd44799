"""The published numbers of a scenario and their simulated counterparts, replicate by replicate.

:func:`published_numbers` lists what ``psmsim check`` compares: in table mode the calibration
targets before matching (the arms' Table 1-3 values and the medians the outcome model was
calibrated to), then every number of ``[checks]`` (:class:`sim.scenario.model.Checks`).
:func:`simulated_values` computes, for a block of analysed cohorts, the same statistic for
every number: an array shaped (replicate, number), NaN where a replicate has none (a failed
matched cohort, an empty arm). A Kaplan–Meier median that is not reached is +inf (longer than
any reached one), not missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.cohort import RESPONSE_CODES, CohortBatch
from analysis.comparisons.arm_summaries import arm_mean_sd, arm_percentages, arm_quartiles
from analysis.comparisons.response import compare_binary
from analysis.plan.analyse import COHORTS, ENDPOINTS, PlanResult
from sim.scenario.build_checks import half_width
from sim.scenario.model import RESPONSE_CATEGORIES, PublishedNumber, Scenario


@dataclass(frozen=True)
class CheckedNumber:
    """A published number and where it comes from: ``source`` is ``target`` (a calibration
    target of the scenario) or ``published`` (``[checks]``)."""

    number: PublishedNumber
    source: str


def published_numbers(scenario: Scenario) -> list[CheckedNumber]:
    """The calibration targets (table mode, before matching) and ``[checks]``, in table order:
    by cohort (full, matched), table (pairs, baseline, response, adverse events, survival) and
    row, a row's per-arm values before its p-values."""
    numbers = [CheckedNumber(n, "target") for n in _targets(scenario)]
    numbers += [CheckedNumber(n, "published") for n in scenario.checks.numbers]
    first: dict[tuple[str, str], int] = {}
    for index, checked in enumerate(numbers):
        first.setdefault((checked.number.table, checked.number.item), index)

    def order(checked: CheckedNumber):
        n = checked.number
        return (COHORTS.index(n.cohort), _TABLE_ORDER.index(n.table), first[(n.table, n.item)], n.arm is None)

    return sorted(numbers, key=order)


_TABLE_ORDER = ("pairs", "baseline", "response", "adverse_events", "survival")


def _targets(scenario: Scenario) -> list[PublishedNumber]:
    if scenario.mode != "table":
        return []  # selection mode: the targets are the population's (psmsim describe)
    width = half_width(scenario.checks.decimals)
    out: list[PublishedNumber] = []

    def add(table, item, statistic, arm, value):
        out.append(PublishedNumber("full", table, item, statistic, arm, float(value), width))

    arms = [scenario.treated_arm.name, scenario.control_arm.name]
    for covariate in scenario.covariates:
        for arm in arms:
            marginal = covariate.marginals[arm]
            if covariate.kind == "binary":
                add("baseline", covariate.name, "percent", arm, 100 * marginal.p)
            elif covariate.kind == "categorical":
                for level, p in enumerate(marginal.probabilities):
                    add("baseline", covariate.name, f"percent:{level}", arm, 100 * p)
            else:
                for statistic in ("mean", "sd", "median", "q1", "q3"):
                    if statistic in marginal.target:
                        add("baseline", covariate.name, statistic, arm, marginal.target[statistic])
    for arm in arms:
        p = dict(zip(RESPONSE_CATEGORIES, scenario.response.probabilities[arm]))
        rows = {"ORR": p["CR"] + p["PR"], "DCR": p["CR"] + p["PR"] + p["SD"], **p}
        for item, value in rows.items():
            add("response", item, "percent", arm, 100 * value)
    for ae in scenario.adverse_events:
        for arm in arms:
            add("adverse_events", ae.name, "any", arm, 100 * ae.any_grade[arm])
            add("adverse_events", ae.name, "grade34", arm, 100 * ae.grade34[arm])
    outcome = scenario.outcome
    if outcome.treatment.mode == "target_medians":
        medians = {"pfs": (outcome.treatment.pfs_median, outcome.control_pfs_median),
                   "os": (outcome.treatment.os_median, outcome.control_os_median)}
        for endpoint, values in medians.items():
            for arm, value in zip(arms, values):
                add("survival", endpoint, "median_months", arm, value)
    return out


def simulated_values(numbers: list[CheckedNumber], scenario: Scenario, batch: CohortBatch,
                     result: PlanResult) -> np.ndarray:
    """The statistic of every number in every replicate of ``batch`` analysed as ``result``
    (``analyse_cohorts(..., details=True)``), shaped (replicate, number)."""
    columns = _Columns(scenario, batch, result)
    if not numbers:
        return np.empty((batch.n_replicates, 0))
    return np.stack([columns.value(n.number) for n in numbers], axis=1)


class _Columns:
    """Computes each kind of statistic once per cohort and hands out its columns."""

    def __init__(self, scenario: Scenario, batch: CohortBatch, result: PlanResult):
        self.batch, self.result = batch, result
        self.arm_index = {scenario.treated_arm.name: 0, scenario.control_arm.name: 1}
        self.rule = result.plan.test_rule
        self.cache: dict[tuple, np.ndarray] = {}

    def _weights(self, cohort: str) -> np.ndarray:
        return self.result.details[cohort].weights

    def _memo(self, key, compute):
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def value(self, number: PublishedNumber) -> np.ndarray:
        n = number
        arm = self.arm_index.get(n.arm) if n.arm is not None else None
        if n.table == "pairs":
            pairs = self.result.n_pairs.astype(float)
            return np.where(pairs >= 0, pairs, np.nan)
        if n.table == "baseline":
            return self._baseline(n, arm)
        if n.table == "response":
            return self._response(n, arm)
        if n.table == "adverse_events":
            return self._adverse_event(n, arm)
        return self._survival(n, arm)

    def _baseline(self, n: PublishedNumber, arm: int | None) -> np.ndarray:
        details = self.result.details[n.cohort]
        if n.statistic == "p":
            return np.asarray(details.baseline_tests[n.item].p_value, dtype=float)
        j = self.batch.covariate_names.index(n.item)
        values = self.batch.covariates[:, :, j]
        w, treated = self._weights(n.cohort), self.batch.treated
        if n.statistic.startswith("percent"):
            level = int(n.statistic.split(":")[1]) if ":" in n.statistic else 1
            return arm_percentages(values == level, w, treated)[:, arm]
        if n.statistic in ("mean", "sd"):
            mean, sd = self._memo(("mean_sd", n.cohort, j), lambda: arm_mean_sd(values, w, treated))
            return (mean if n.statistic == "mean" else sd)[:, arm]
        quartiles = self._memo(("quartiles", n.cohort, j), lambda: arm_quartiles(values, w, treated))
        return quartiles[:, arm, ("q1", "median", "q3").index(n.statistic)]

    def _response(self, n: PublishedNumber, arm: int | None) -> np.ndarray:
        rate, p_value = self._memo(("response", n.cohort), lambda: self._response_rows(n.cohort))
        index = ("ORR", "DCR", *RESPONSE_CATEGORIES).index(n.item)
        return p_value[:, index] if arm is None else 100 * rate[:, index, arm]

    def _response_rows(self, cohort: str):
        best = self.batch.best_response
        codes = RESPONSE_CODES
        outcome = np.stack([(best == codes["CR"]) | (best == codes["PR"]),
                            (best == codes["CR"]) | (best == codes["PR"]) | (best == codes["SD"]),
                            *(best == codes[c] for c in RESPONSE_CATEGORIES)], axis=-1)
        evaluable = self._weights(cohort) * (best >= 0)
        _, rate, tests = compare_binary(outcome, self.batch.treated, evaluable, self.rule)
        return rate, tests.p_value

    def _adverse_event(self, n: PublishedNumber, arm: int | None) -> np.ndarray:
        severe = n.statistic.startswith("grade34")
        if n.item == "any_adverse_event":
            rate, p_value = self._memo(("any_ae", n.cohort), lambda: self._any_event(n.cohort))
            column = 1 if severe else 0
            return p_value[:, column] if arm is None else 100 * rate[:, column, arm]
        events = self.result.details[n.cohort].adverse_events
        k = self.batch.ae_names.index(n.item)
        if arm is None:
            return (events.grade3_4_p_value if severe else events.any_grade_p_value)[:, k]
        return 100 * (events.grade3_4_rate if severe else events.any_grade_rate)[:, k, arm]

    def _any_event(self, cohort: str):
        worst = self.batch.ae_grade.max(axis=2) if self.batch.ae_grade.shape[2] else \
            np.zeros(self.batch.treated.shape, np.int8)
        outcome = np.stack([worst >= 1, worst >= 3], axis=-1)
        _, rate, tests = compare_binary(outcome, self.batch.treated, self._weights(cohort), self.rule)
        return rate, tests.p_value

    def _survival(self, n: PublishedNumber, arm: int | None) -> np.ndarray:
        c, e = COHORTS.index(n.cohort), ENDPOINTS.index(n.item)
        if n.statistic == "p_logrank":
            return np.asarray(self.result.p_logrank[:, c, e], dtype=float)
        median = self.result.median_treated if arm == 0 else self.result.median_control
        values = np.asarray(median[:, c, e], dtype=float)
        # A failed matched cohort has no patients (weights 0); a NaN median of a non-empty
        # arm is one not reached.
        return np.where(np.isnan(values) & self._has_arm(n.cohort, arm), np.inf, values)

    def _has_arm(self, cohort: str, arm: int) -> np.ndarray:
        in_arm = self.batch.treated if arm == 0 else ~self.batch.treated
        return (self._weights(cohort) * in_arm).sum(axis=1) > 0
