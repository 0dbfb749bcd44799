"""``psmsim check``: every published number of a scenario against its simulated distribution.

Replicates are generated and analysed in blocks by the same engine and with the same seeds as
``psmsim run`` (block b draws its cohorts from ``SeedSequence(seed, spawn_key=(0, b, 0))`` and
the method's random parts from its stream, :func:`sim.scenario.plans.method_stream`), so
replicate r of a check is replicate r of a run with the same seed and block size. Per block
the plan runs with ``details=True`` (the per-covariate, response and AE tables of both cohorts)
and :mod:`sim.run.check_rows` turns them into one column per published number; the
distribution over all replicates and the percentile of each published value are
:func:`analysis.performance.published.compare_published`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.performance.published import PublishedComparison, compare_published
from sim.calibrate.cache import calibrate_cached
from sim.errors import PsmsimError
from sim.run.check_rows import CheckedNumber, published_numbers, simulated_values
from sim.run.runner import block_keys, block_rng
from sim.scenario.feasibility import run_block_size
from sim.scenario.model import Scenario
from sim.scenario.plans import method_stream, scenario_plan


@dataclass(frozen=True)
class CheckOutcome:
    """The numbers checked, their simulated values (replicate, number), the comparison and the
    printed report."""

    numbers: list[CheckedNumber]
    simulated: np.ndarray
    comparison: PublishedComparison
    report: str


def run_check(scenario: Scenario, *, replicates: int, method: str | None = None, seed: int | None = None,
              block_size: int | None = None) -> CheckOutcome:
    """Simulate ``replicates`` studies of ``scenario``, analyse them with ``method`` (a preset
    or a named method of the scenario; default: the scenario's plan) and compare every published
    number with its distribution."""
    method = method or scenario.analysis.plan
    plan = scenario_plan(scenario, method)  # an unknown method: UnknownMethodError, one line
    numbers = published_numbers(scenario)
    if not numbers:
        raise PsmsimError(f"{scenario.name}: nothing to check (no [checks] table, and in selection mode "
                          "no per-arm targets); add a [checks] table (docs/scenario_format.md, 'Checks')")
    seed = scenario.simulation.seed if seed is None else seed
    block_size = run_block_size(scenario, block_size)
    from analysis.plan.analyse import analyse_cohorts
    from sim.generate.cohorts import generate_cohorts

    calibration = calibrate_cached(scenario)
    stream = method_stream(scenario, method)
    parts = []
    for key in block_keys(1, replicates, block_size):
        batch = generate_cohorts(scenario, calibration, key.size, rng=block_rng(seed, key, 0))
        result = analyse_cohorts(batch, plan, rng=block_rng(seed, key, stream), details=True)
        parts.append(simulated_values(numbers, scenario, batch, result))
    simulated = np.concatenate(parts, axis=0)
    comparison = compare_published(simulated, [n.number.value for n in numbers],
                                   [n.number.half_width for n in numbers])
    report = format_check(scenario, numbers, comparison, replicates=replicates, method=method, seed=seed)
    return CheckOutcome(numbers, simulated, comparison, report)


_TABLES = {"pairs": "Matched pairs", "baseline": "Table 1 (baseline)", "response": "Table 2 (best response)",
           "adverse_events": "Table 3 (adverse events)", "survival": "Survival (Kaplan-Meier)"}
_STATISTICS = {"percent": "%", "mean": "mean", "sd": "SD", "median": "median", "q1": "Q1", "q3": "Q3",
               "p": "P", "any": "any grade %", "grade34": "grade 3-4 %", "any_p": "any grade P",
               "grade34_p": "grade 3-4 P", "median_months": "median, months", "p_logrank": "log-rank P",
               "pairs": "pairs"}


def _row_label(scenario: Scenario, number) -> str:
    covariates = {c.name: c for c in scenario.covariates}
    events = {ae.name: ae.label for ae in scenario.adverse_events}
    statistic = number.statistic
    if number.table == "pairs":
        return "matched pairs (1:1)"
    if number.table == "baseline":
        covariate = covariates[number.item]
        if statistic.startswith("percent:"):
            level = int(statistic.split(":")[1])
            name = covariate.levels[level] if covariate.levels else str(level)
            return f"{covariate.label}: {name} %"
        return f"{covariate.label}, {_STATISTICS[statistic]}"
    if number.table == "adverse_events":
        label = "Any adverse event (All)" if number.item == "any_adverse_event" else events[number.item]
        return f"{label}, {_STATISTICS[statistic]}"
    if number.table == "survival":
        return f"{number.item.upper()} {_STATISTICS[statistic]}"
    return f"{number.item} {_STATISTICS[statistic]}"


def _digits(number, scenario: Scenario) -> int:
    if number.statistic == "pairs":
        return 0
    is_p = number.statistic in ("p", "any_p", "grade34_p", "p_logrank")
    return scenario.checks.p_decimals if is_p else scenario.checks.decimals


def _show(value: float, digits: int) -> str:
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "NR" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def format_check(scenario: Scenario, numbers: list[CheckedNumber], comparison: PublishedComparison, *,
                 replicates: int, method: str, seed: int) -> str:
    """The check as text: one table per cohort and published table, a flag on each number
    outside the simulated 2.5–97.5% range, and a count of those."""
    arms = {arm.name: arm.label for arm in scenario.arms}
    lines = [f"{scenario.title}",
             f"Published numbers vs {replicates} simulated studies (plan '{method}', seed {seed}): the simulated "
             "median, its 2.5–97.5% range and the percentile where the published value falls (a simulated "
             "value that prints as the published one counts half). '<<' or '>>': outside the range. "
             "T: a calibration target of the scenario; n: replicates with a value; NR: median not reached.", ""]
    width = max(len(_row_label(scenario, n.number)) for n in numbers) + 2
    arm_width = max([len(label) for label in arms.values()] + [3]) + 2
    header = (f"  {'row':<{width}}{'arm':<{arm_width}}{'published':>10}  {'simulated':>11}{'2.5–97.5%':>19}"
              f"{'percentile':>12}  n")
    current = None
    for index, checked in enumerate(numbers):
        number = checked.number
        group = (number.cohort, number.table)
        if group != current:
            current = group
            cohort = "before matching" if number.cohort == "full" else "after matching"
            lines += ["", f"{_TABLES[number.table]}, {cohort}", header]
        digits = _digits(number, scenario)
        percentile = comparison.percentile[index]
        flag = ""
        if comparison.outside[index]:
            flag = " <<" if percentile < 50 else " >>"
        span = f"{_show(comparison.lower[index], digits)}–{_show(comparison.upper[index], digits)}"
        target = " T" if checked.source == "target" else "  "
        lines.append(f"  {_row_label(scenario, number):<{width}}{arms.get(number.arm, ''):<{arm_width}}"
                     f"{_show(number.value, digits):>10}{target}{_show(comparison.median[index], digits):>11}{span:>19}"
                     f"{_show(percentile, 1):>12}  {int(comparison.n_used[index])}{flag}")
    flagged = [f"  {_row_label(scenario, n.number)}{' (' + arms[n.number.arm] + ')' if n.number.arm else ''}, "
               f"{'before' if n.number.cohort == 'full' else 'after'} matching: published "
               f"{_show(n.number.value, _digits(n.number, scenario))}, percentile {comparison.percentile[i]:.1f}"
               for i, n in enumerate(numbers) if comparison.outside[i]]
    if flagged:
        lines += ["", "Outside the simulated 2.5–97.5% range:"] + flagged
    outside = int(comparison.outside.sum())
    checked_count = int((comparison.n_used > 0).sum())
    lines += ["", f"{outside} of {checked_count} published numbers fall outside the simulated 2.5–97.5% range "
                  f"(about {0.05 * checked_count:.0f} would by chance alone if the model were right and the "
                  "numbers independent; they are not: rows of one table move together)."]
    return "\n".join(lines)
