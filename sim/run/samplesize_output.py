"""The answer of a finished sample-size search: one Dataset (``samplesize.nc``), its power-curve
table (``samplesize.csv``), the ``--json`` payload and the printed report.

The answer is the root x* of the fitted curve when the search converged or spent its budget
with a root inside the bounds (then marked ``converged = 0``); for n it is reported as the whole
number ``ceil(x*)`` (the smallest n with fitted power at least the target) with the interval
``[floor(lower), ceil(upper)]``. When no value within the bounds reaches the target (or the
target is met already at the lower bound) there is no answer: the report says so with the best
power observed, and never returns a bound as if it were a root. Schema:
``docs/results_schema.md`` ("samplesize.nc").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from analysis.performance.samplesize import pooled_observations, power_points
from analysis.performance.samplesize_answer import curve_table, mean_at, point_means, power_at
from sim.run.atomic_files import atomic_write_bytes, write_dataset

__all__ = ["Answer", "answer_of", "answer_dataset", "answer_json", "format_answer",
           "write_answer", "ANSWER_FILES", "SAMPLESIZE_NC", "SAMPLESIZE_CSV"]

SAMPLESIZE_NC, SAMPLESIZE_CSV = "samplesize.nc", "samplesize.csv"
ANSWER_FILES = (SAMPLESIZE_NC, SAMPLESIZE_CSV)
_ENDPOINT = {"pfs": "PFS", "os": "OS"}


@dataclass(frozen=True)
class Answer:
    """Numbers of the answer (NaN where there is none); see the module docstring."""

    status: str
    reason: str
    converged: bool
    solution: float          # the reported value (ceil for n), NaN without an answer
    solution_lower: float
    solution_upper: float
    root: float              # the unrounded root x*
    power: float             # fitted power of the searched test at ``solution``
    power_lower: float
    power_upper: float
    power_other: tuple[float, float, float]
    power_both: tuple[float, float, float]
    events: tuple[float, float, float]
    events_other: float
    pairs: tuple[float, float, float]
    best_value: float        # evaluated value with the highest observed power
    best_power: float
    best_mcse: float
    replicates: int
    failed: int


def _observations(outcome, name: str) -> np.ndarray:
    return np.concatenate([getattr(r, name).ravel() for r in outcome.rounds]) if outcome.rounds else np.zeros(0)


def answer_of(outcome) -> Answer:
    """The :class:`Answer` of a :class:`sim.run.samplesize.SearchOutcome`."""
    setup, step = outcome.setup, outcome.step
    settings = setup.settings
    primary = [r.primary() for r in outcome.rounds]
    value, _, cluster = pooled_observations(primary)
    points = power_points(primary)
    root = step.root
    usable = (step.action in ("converged", "budget_spent") and root is not None
              and np.isfinite(root.value) and settings.lower <= root.value <= settings.upper)
    nan3 = (math.nan, math.nan, math.nan)
    if usable:
        x, lo, hi = root.value, root.lower, root.upper
        if settings.integer:
            x, lo, hi = float(math.ceil(x)), float(math.floor(lo)), float(math.ceil(hi))
        fitted = power_at(value, _observations(outcome, "rejected"), cluster, x,
                          transform=settings.transform, link=settings.link, level=settings.level)
        others = [power_at(value, _observations(outcome, name), cluster, x,
                           transform=settings.transform, link=settings.link, level=settings.level)
                  for name in ("rejected_other", "rejected_both")]
        counts = {}
        for name in ("events", "events_other", "pairs"):
            levels, means, _ = point_means(value, _observations(outcome, name))
            counts[name] = tuple(mean_at(levels, means, v) for v in (x, lo, hi))
        answer = dict(solution=x, solution_lower=lo, solution_upper=hi, root=float(root.value),
                      power=fitted.power, power_lower=fitted.lower, power_upper=fitted.upper,
                      power_other=(others[0].power, others[0].lower, others[0].upper),
                      power_both=(others[1].power, others[1].lower, others[1].upper),
                      events=counts["events"], events_other=counts["events_other"][0],
                      pairs=counts["pairs"])
    else:
        answer = dict(solution=math.nan, solution_lower=math.nan, solution_upper=math.nan,
                      root=math.nan, power=math.nan, power_lower=math.nan, power_upper=math.nan,
                      power_other=nan3, power_both=nan3, events=nan3, events_other=math.nan,
                      pairs=nan3)
    best = int(np.argmax(points.power)) if points.values.size else None
    return Answer(
        status=step.action, reason=step.reason, converged=step.action == "converged", **answer,
        best_value=float(points.values[best]) if best is not None else math.nan,
        best_power=float(points.power[best]) if best is not None else math.nan,
        best_mcse=float(points.mcse[best]) if best is not None else math.nan,
        replicates=int(value.size), failed=int(_observations(outcome, "failed").sum()))


def _curve_range(outcome) -> tuple[float, float]:
    values = np.concatenate([r.values for r in outcome.rounds])
    return float(values.min()), float(values.max())


def answer_dataset(outcome, answer: Answer) -> xr.Dataset:
    """The search as one Dataset (``samplesize.nc``; schema in docs/results_schema.md)."""
    setup, step = outcome.setup, outcome.step
    primary = [r.primary() for r in outcome.rounds]
    value, rejected, cluster = pooled_observations(primary)
    points = power_points(primary)
    other = point_means(value, _observations(outcome, "rejected_other"))[1]
    both = point_means(value, _observations(outcome, "rejected_both"))[1]
    failed = point_means(value, _observations(outcome, "failed"))[1]
    _, mean_events, mcse_events = point_means(value, _observations(outcome, "events"))
    _, mean_pairs, mcse_pairs = point_means(value, _observations(outcome, "pairs"))
    point = {
        "point_replicates": points.replicates, "point_rejections": points.rejections,
        "point_power": points.power, "point_power_mcse": points.mcse,
        "point_power_other": other, "point_power_other_mcse": np.sqrt(other * (1 - other) / points.replicates),
        "point_power_both": both, "point_power_both_mcse": np.sqrt(both * (1 - both) / points.replicates),
        "point_events": mean_events, "point_events_mcse": mcse_events,
        "point_pairs": mean_pairs, "point_pairs_mcse": mcse_pairs, "point_failed_share": failed,
    }
    variables: dict[str, Any] = {name: ("point", np.asarray(v)) for name, v in point.items()}
    if step.curve is not None:
        low, high = _curve_range(outcome)
        grid, fitted, lower, upper = curve_table(step.curve, low, high, level=setup.settings.level)
    else:
        grid = fitted = lower = upper = np.zeros(0)
    variables.update(curve_power=("curve_value", fitted), curve_power_lower=("curve_value", lower),
                     curve_power_upper=("curve_value", upper))
    rounds = outcome.rounds
    variables.update(
        round_candidates=("round", np.array([r.values.size for r in rounds], np.int64)),
        round_replicates=("round", np.array([r.rejected.shape[1] for r in rounds], np.int64)),
        round_lowest=("round", np.array([r.values.min() for r in rounds], float)),
        round_highest=("round", np.array([r.values.max() for r in rounds], float)),
        obs_value=("observation", value), obs_round=("observation", np.concatenate(
            [np.full(r.rejected.size, i, np.int32) for i, r in enumerate(rounds)]) if rounds else np.zeros(0, np.int32)),
        obs_cluster=("observation", cluster.astype(np.int64)),
        obs_rejected=("observation", rejected.astype(np.int8)),
    )
    for name in ("rejected_other", "rejected_both", "failed"):
        variables[f"obs_{name}"] = ("observation", _observations(outcome, name).astype(np.int8))
    for name in ("events", "events_other", "pairs"):
        variables[f"obs_{name}"] = ("observation", _observations(outcome, name).astype(float))
    analytic = setup.analytic
    scalars = {
        "solution": answer.solution, "solution_lower": answer.solution_lower,
        "solution_upper": answer.solution_upper, "root": answer.root,
        "power_at_solution": answer.power, "power_at_solution_lower": answer.power_lower,
        "power_at_solution_upper": answer.power_upper,
        "power_other_at_solution": answer.power_other[0],
        "power_other_at_solution_lower": answer.power_other[1],
        "power_other_at_solution_upper": answer.power_other[2],
        "power_both_at_solution": answer.power_both[0],
        "power_both_at_solution_lower": answer.power_both[1],
        "power_both_at_solution_upper": answer.power_both[2],
        "events_at_solution": answer.events[0], "events_at_solution_lower": answer.events[1],
        "events_at_solution_upper": answer.events[2], "events_other_at_solution": answer.events_other,
        "pairs_at_solution": answer.pairs[0], "pairs_at_solution_lower": answer.pairs[1],
        "pairs_at_solution_upper": answer.pairs[2],
        "best_value": answer.best_value, "best_power": answer.best_power, "best_power_mcse": answer.best_mcse,
        "schoenfeld_events": analytic.schoenfeld_events, "schoenfeld_n": analytic.schoenfeld_n,
        "freedman_events": analytic.freedman_events, "freedman_n": analytic.freedman_n,
        "true_hazard_ratio": setup.hazard_ratio, "event_probability": setup.event_probability,
        "allocation": setup.allocation,
        "curve_intercept": step.curve.intercept if step.curve is not None else math.nan,
        "curve_slope": step.curve.slope if step.curve is not None else math.nan,
    }
    variables.update({name: ((), float(v)) for name, v in scalars.items()})
    request = setup.request
    attrs = {
        "kind": "samplesize", "status": answer.status, "reason": answer.reason,
        "converged": int(answer.converged), "design": request.design, "endpoint": request.endpoint,
        "other_endpoint": setup.other_endpoint, "test": request.test, "method": setup.method,
        "cohort": setup.cohort, "alpha": request.alpha, "target_power": request.target_power,
        "solve": request.solve, "unit": setup.unit, "fixed_n": setup.fixed_n or 0,
        "tolerance": request.tolerance, "lower_bound": setup.settings.lower,
        "upper_bound": setup.settings.upper, "transform": setup.settings.transform,
        "link": setup.settings.link, "level": setup.settings.level, "root_seed": setup.seed,
        "block_size": setup.block_size, "replicates": answer.replicates,
        "failed_replicates": answer.failed, "reference_value": setup.reference_value,
        "scenario_name": setup.scenario.name, "scenario_text": setup.scenario.source_text,
        "seconds": round(outcome.seconds, 3),
    }
    coords = {"point": points.values, "curve_value": grid, "round": np.arange(len(rounds))}
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def curve_csv(dataset: xr.Dataset) -> str:
    """The power-curve points as CSV (one row per evaluated value)."""
    columns = ["point", *[name for name in dataset.data_vars if dataset[name].dims == ("point",)]]
    frame = dataset[columns[1:]].to_dataframe().reset_index()
    frame = frame.rename(columns={"point": dataset.attrs["solve"]})
    return frame.to_csv(index=False)


def write_answer(outcome) -> None:
    """Write ``samplesize.nc`` and ``samplesize.csv`` into the search folder (derived files:
    rewritten on every rerun)."""
    answer = answer_of(outcome)
    dataset = answer_dataset(outcome, answer)
    write_dataset(outcome.folder / SAMPLESIZE_NC, dataset)
    atomic_write_bytes(outcome.folder / SAMPLESIZE_CSV, curve_csv(dataset).encode())


def _number(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def answer_json(outcome) -> dict[str, Any]:
    """The ``--json`` payload (keys described in the README's "Sample size" section)."""
    setup = outcome.setup
    answer = answer_of(outcome)
    dataset = answer_dataset(outcome, answer)
    request = setup.request
    has = np.isfinite(answer.solution)
    interval = [_number(answer.solution_lower), _number(answer.solution_upper)] if has else None
    if request.solve == "n":
        n, n_ci = (int(answer.solution) if has else None), ([int(v) for v in interval] if has else None)
    else:
        n, n_ci = setup.fixed_n, None
    curve = [{request.solve if request.solve != "n" else "n": float(v), "power": float(p),
              "mcse": float(m), "replicates": int(r)}
             for v, p, m, r in zip(dataset.point.values, dataset.point_power.values,
                                   dataset.point_power_mcse.values, dataset.point_replicates.values)]
    if request.solve != "n":
        for row in curve:
            row["n"] = setup.fixed_n
    fitted = [{"value": float(v), "power": _number(p), "lower": _number(lo), "upper": _number(hi)}
              for v, p, lo, hi in zip(dataset.curve_value.values, dataset.curve_power.values,
                                      dataset.curve_power_lower.values, dataset.curve_power_upper.values)]
    return {
        "scenario": setup.scenario.name, "design": request.design, "endpoint": request.endpoint,
        "test": request.test, "method": setup.method, "alpha": request.alpha,
        "target_power": request.target_power, "solve": request.solve, "unit": setup.unit,
        "status": answer.status, "converged": answer.converged, "reason": answer.reason,
        "n": n, "n_ci": n_ci, "value": _number(answer.solution), "value_ci": interval,
        "events": _number(answer.events[0]),
        "events_ci": [_number(answer.events[1]), _number(answer.events[2])] if has else None,
        "power_at_n": _number(answer.power),
        "power_at_n_ci": [_number(answer.power_lower), _number(answer.power_upper)] if has else None,
        "other_endpoint": setup.other_endpoint, "other_power_at_n": _number(answer.power_other[0]),
        "both_significant_at_n": _number(answer.power_both[0]),
        "pairs_at_n": _number(answer.pairs[0]), "best_value": _number(answer.best_value),
        "best_power": _number(answer.best_power), "best_power_mcse": _number(answer.best_mcse),
        "schoenfeld_n": _number(setup.analytic.schoenfeld_n), "freedman_n": _number(setup.analytic.freedman_n),
        "schoenfeld_events": _number(setup.analytic.schoenfeld_events),
        "freedman_events": _number(setup.analytic.freedman_events),
        "true_hazard_ratio": setup.hazard_ratio, "event_probability": setup.event_probability,
        "allocation": setup.allocation, "replicates": answer.replicates, "rounds": len(outcome.rounds),
        "failed_replicates": answer.failed, "seconds": round(outcome.seconds, 1),
        "folder": str(outcome.folder), "curve": curve, "fitted_curve": fitted,
    }


def _value(value: float, solve: str) -> str:
    if not np.isfinite(value):
        return "—"
    return f"{value:.0f}" if solve == "n" else f"{value:.3g}"


def format_answer(outcome) -> str:
    """The printed report of a finished search."""
    setup, request = outcome.setup, outcome.setup.request
    answer = answer_of(outcome)
    name, other = _ENDPOINT[request.endpoint], _ENDPOINT[setup.other_endpoint]
    solve = request.solve
    quantity = {"n": "patients", "follow_up": "months of follow-up after accrual",
                "accrual_rate": "patients per month"}[solve]
    at_n = "" if solve == "n" else f" at n = {setup.fixed_n}"
    lines = [f"Sample size by simulation: {setup.scenario.name}, {request.design} design, {name}, "
             f"{'log-rank' if request.test == 'logrank' else 'Cox'} test ({setup.method} method, "
             f"{setup.cohort} cohort), alpha {request.alpha:g} two-sided, target power "
             f"{request.target_power:g}{at_n}"]
    what = "n before matching" if request.design == "psm" and solve == "n" else f"required {solve}"
    if np.isfinite(answer.solution):
        lines.append(f"  {what}: {_value(answer.solution, solve)} {quantity} (95% CI "
                     f"{_value(answer.solution_lower, solve)}–{_value(answer.solution_upper, solve)})"
                     + ("" if answer.converged else " — NOT converged to the tolerance"))
        events = answer.events
        lines.append(f"  {name} events at the answer: {events[0]:.0f} (95% CI {events[1]:.0f}–"
                     f"{events[2]:.0f}); fitted power {answer.power:.3f}")
        if request.design == "psm":
            pairs = answer.pairs
            lines.append(f"  matched pairs at the answer: {pairs[0]:.1f} on average (at the CI "
                         f"limits {pairs[1]:.1f}–{pairs[2]:.1f})")
        po, pb = answer.power_other, answer.power_both
        lines.append(f"  {other} power at the answer: {po[0]:.3f} (95% band {po[1]:.3f}–{po[2]:.3f}); "
                     f"both {name} and {other} significant: {pb[0]:.3f} ({pb[1]:.3f}–{pb[2]:.3f})")
    else:
        lines.append(f"  no answer: {answer.reason}; best power reached {answer.best_power:.3f} "
                     f"(MCSE {answer.best_mcse:.3f}) at {_value(answer.best_value, solve)} {quantity}")
    lines.append(f"  search: {answer.status} after {len(outcome.rounds)} rounds, {answer.replicates} "
                 f"replicates ({answer.reason}); {answer.failed} replicates with a failed analysis "
                 f"counted as not significant; {outcome.seconds:.0f} s")
    analytic = setup.analytic
    lines.append(f"Formulas for the same design (true marginal {name} HR {setup.hazard_ratio:.3f}, "
                 f"share treated {setup.allocation:.3f}, P({name} event) {setup.event_probability:.3f}"
                 f"{'' if solve == 'n' else f' at the reference {setup.reference_value:.3g}'}):")
    lines.append(f"  Schoenfeld: {analytic.schoenfeld_events:.1f} events, n = {analytic.schoenfeld_n:.0f}")
    lines.append(f"  Freedman:   {analytic.freedman_events:.1f} events, n = {analytic.freedman_n:.0f}")
    dataset = answer_dataset(outcome, answer)
    lines.append(f"Power curve ({solve}: replicates, observed power ± MCSE, fitted):")
    fitted = outcome.step.curve
    for v, r, p, m in zip(dataset.point.values, dataset.point_replicates.values,
                          dataset.point_power.values, dataset.point_power_mcse.values):
        fit = f"{float(fitted.power(v)):.3f}" if fitted is not None and fitted.ok else "—"
        lines.append(f"  {_value(v, solve):>8}  {int(r):>6}  {p:.3f} ± {m:.3f}  {fit}")
    return "\n".join(lines)


def dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, indent=2)
