"""A validated ``[checks]`` table (:class:`sim.scenario.schema.checks.ChecksTable`) as the flat
:class:`sim.scenario.model.Checks` of published numbers.

Counts become percentages of the arm's patients in that cohort (the arm size before matching,
``pairs`` after), as the paper prints them; each number gets the half-width of its printed
precision (``decimals`` for values, ``p_decimals`` for p-values): 0.05 for one decimal.
"""

from __future__ import annotations

from typing import Mapping

from sim.scenario.model import RESPONSE_CATEGORIES, Checks, PublishedNumber
from sim.scenario.schema.checks import ChecksTable, CohortChecks


def half_width(decimals: int) -> float:
    """Half the last printed digit: a value within it of the published one prints the same."""
    return 0.5 * 10.0 ** -decimals


def build_checks(table: ChecksTable | None, sizes: Mapping[str, int]) -> Checks:
    """The published numbers of ``[checks]`` (``sizes``: arm sizes before matching)."""
    if table is None:
        return Checks()
    numbers: list[PublishedNumber] = []
    value_width, p_width = half_width(table.decimals), half_width(table.p_decimals)
    if table.pairs is not None:
        numbers.append(PublishedNumber("matched", "pairs", "", "pairs", None, float(table.pairs), 0.0))
    for cohort, checks in (("full", table.full), ("matched", table.matched)):
        if checks is None:
            continue
        n = {arm: (size if cohort == "full" else table.pairs) for arm, size in sizes.items()}
        numbers += _cohort_numbers(cohort, checks, n, value_width, p_width)
    return Checks(numbers=tuple(numbers), pairs=table.pairs, decimals=table.decimals,
                  p_decimals=table.p_decimals)


def _percent(count: int, n: int | None) -> float:
    return 100.0 * count / n


def _cohort_numbers(cohort: str, checks: CohortChecks, n: Mapping[str, int | None],
                    width: float, p_width: float) -> list[PublishedNumber]:
    out: list[PublishedNumber] = []

    def add(table, item, statistic, arm, value, w):
        out.append(PublishedNumber(cohort, table, item, statistic, arm, float(value), w))

    for name, row in checks.covariates.items():
        for arm, cell in row.by_arm().items():
            if cell.count is not None:
                add("baseline", name, "percent", arm, _percent(cell.count, n[arm]), width)
            if cell.proportion is not None:
                add("baseline", name, "percent", arm, 100 * cell.proportion, width)
            for level, count in enumerate(cell.counts or ()):
                add("baseline", name, f"percent:{level}", arm, _percent(count, n[arm]), width)
            for level, p in enumerate(cell.proportions or ()):
                add("baseline", name, f"percent:{level}", arm, 100 * p, width)
            for statistic in ("mean", "sd", "median", "q1", "q3"):
                if getattr(cell, statistic) is not None:
                    add("baseline", name, statistic, arm, getattr(cell, statistic), width)
        if row.p is not None:
            add("baseline", name, "p", None, row.p, p_width)
    if checks.response is not None:
        for arm, cell in checks.response.by_arm().items():
            counts = {c: getattr(cell.counts, c) for c in RESPONSE_CATEGORIES}
            rows = {"ORR": counts["CR"] + counts["PR"], "DCR": counts["CR"] + counts["PR"] + counts["SD"],
                    **counts}
            for item, count in rows.items():
                add("response", item, "percent", arm, _percent(count, n[arm]), width)
        p_values = checks.response.p
        for item in ("ORR", "DCR", *RESPONSE_CATEGORIES):
            if p_values is not None and getattr(p_values, item) is not None:
                add("response", item, "p", None, getattr(p_values, item), p_width)
    events = list(checks.adverse_events.items())
    if checks.any_adverse_event is not None:
        events.append(("any_adverse_event", checks.any_adverse_event))
    for name, row in events:
        for arm, cell in row.by_arm().items():
            add("adverse_events", name, "any", arm, _percent(cell.any, n[arm]), width)
            add("adverse_events", name, "grade34", arm, _percent(cell.grade34, n[arm]), width)
        for statistic in ("any_p", "grade34_p"):
            if getattr(row, statistic) is not None:
                add("adverse_events", name, statistic, None, getattr(row, statistic), p_width)
    for endpoint in ("pfs", "os"):
        row = getattr(checks.survival, endpoint, None) if checks.survival is not None else None
        if row is None:
            continue
        for arm, median in row.by_arm().items():
            add("survival", endpoint, "median_months", arm, median, width)
        if row.p_logrank is not None:
            add("survival", endpoint, "p_logrank", None, row.p_logrank, p_width)
    return out
