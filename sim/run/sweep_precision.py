"""``psmsim sweep --mcse-target``: more replicates only at the grid points whose Monte Carlo
error is still too large.

A target names a performance measure of the sweep's table and the largest Monte Carlo SE
accepted for it, ``power=0.005`` (log-rank power or type-I error), ``bias=0.01`` (bias of the
log HR against the true marginal log HR) or ``coverage=0.01``; it applies to the matched
cohort's PFS analysis of every method (the cells ``psmsim sweep`` prints), so a point meets it
when its largest MCSE over the methods is at most the target.

After a first pass of R replicates at every condition, each grid point's MCSE is compared with
its targets. The replicates a point needs follow from MCSE ∝ 1/√n (Morris, White & Crowther
2019, §5.2: n = Var / MCSE²): n × (MCSE / target)², rounded up to whole blocks, at least one
block more, and at most ``max_replicates``. A condition (the cohorts shared by points that
differ only in analysis-only factors) gets the largest count any of its points needs. Rounds
repeat until every point meets its targets or its cap. A rate of 0 or 1 is judged at
(hits + ½) / (n + 1), so a point that has not yet rejected once is not taken as exact.

Resumable: every decision reads only the blocks of the rounds before it, themselves pure
functions of (scenario, seed, block size, condition, block), so a killed run resumed with the
same command takes the same decisions and ends identical to an uninterrupted one. Replicates
are added in whole blocks, so the first pass must be a whole number of blocks (a short last
block would be recomputed at full size and change what the first decision read).

References
----------
Morris TP, White IR, Crowther MJ (2019). Using simulation studies to evaluate statistical
methods. Stat Med 38:2074-2102.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import xarray as xr

from sim.errors import PsmsimError
from sim.scenario.messages import suggest

__all__ = ["McseTarget", "MEASURES", "parse_targets", "check_first_pass", "point_errors",
           "next_counts", "run_rounds", "format_precision"]

#: Target name -> (summary variable, the variable counting its replicates if it is a rate).
MEASURES = {
    "power": ("power_logrank", "n_used_logrank"),
    "bias": ("bias_marginal", None),
    "coverage": ("coverage_marginal", "n_used"),
}


class McseTargetError(PsmsimError):
    """A ``--mcse-target`` or ``--max-replicates`` the sweep cannot use."""


@dataclass(frozen=True)
class McseTarget:
    """The largest Monte Carlo SE accepted for ``measure`` (a key of :data:`MEASURES`)."""

    measure: str
    value: float

    @property
    def text(self) -> str:
        return f"{self.measure}={self.value:g}"


def parse_targets(texts: Sequence[str]) -> tuple[McseTarget, ...]:
    """``["power=0.005", "bias=0.01"]`` -> targets (one per measure).

    Raises
    ------
    McseTargetError
        ``--mcse-target TEXT: ...`` naming what is wrong and what is allowed.
    """
    targets: dict[str, McseTarget] = {}
    allowed = ", ".join(MEASURES)
    for text in texts:
        measure, sep, value = text.partition("=")
        measure = measure.strip()
        if not sep:
            raise McseTargetError(f"--mcse-target {text}: write MEASURE=MCSE, e.g. power=0.005 "
                                  f"(measures: {allowed})")
        if measure not in MEASURES:
            raise McseTargetError(f"--mcse-target {text}: unknown measure {measure!r}"
                                  f"{suggest(measure, list(MEASURES))}(allowed: {allowed})")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not math.isfinite(number) or number <= 0:
            raise McseTargetError(f"--mcse-target {text}: the MCSE must be a positive number, "
                                  f"e.g. {measure}=0.005")
        if measure in targets:
            raise McseTargetError(f"--mcse-target {text}: {measure} is given twice")
        targets[measure] = McseTarget(measure, number)
    return tuple(targets.values())


def check_first_pass(replicates: int, block_size: int, max_replicates: int) -> None:
    """The first pass must be whole blocks and the cap at least the first pass.

    Raises
    ------
    McseTargetError
        Naming the option to change.
    """
    if replicates % block_size:
        up = -(-replicates // block_size) * block_size
        raise McseTargetError(
            f"--mcse-target: {replicates} replicates are not a whole number of blocks of "
            f"{block_size}; replicates are added block by block, so give --replicates {up} "
            f"(or a --block-size that divides {replicates})")
    if max_replicates < replicates:
        raise McseTargetError(f"--max-replicates {max_replicates}: below the first pass of "
                              f"{replicates} replicates per grid point")


def point_errors(summary: xr.Dataset, target: McseTarget) -> np.ndarray:
    """Per grid point (``condition``), the largest MCSE of the target's measure over the
    methods, matched cohort, PFS; NaN where no method has a usable replicate. Rates are judged
    at (hits + ½) / (n + 1) (module docstring)."""
    name, counted = MEASURES[target.measure]
    cell = summary.sel({"cohort": "matched", "endpoint": "pfs"})
    if counted is None:
        errors = cell[f"{name}_mcse"]
    else:
        n = cell[counted].astype(float)
        rate = (cell[name] * n + 0.5) / (n + 1.0)
        errors = np.sqrt(rate * (1.0 - rate) / n).where(n > 0)
    values = errors.transpose("condition", "method").values.astype(float)
    finite = np.isfinite(values)
    return np.where(finite.any(axis=1), np.nanmax(np.where(finite, values, -np.inf), axis=1), np.nan)


def _needed(count: int, error: float, target: float, block_size: int, cap: int) -> int:
    if not np.isfinite(error) or error <= target:
        return count
    projected = count * (error / target) ** 2
    blocks = max(math.ceil(projected / block_size), count // block_size + 1)
    return max(count, min(blocks * block_size, cap))


def next_counts(counts: Sequence[int], point_conditions: Sequence[int], summary: xr.Dataset,
                targets: Sequence[McseTarget], *, block_size: int, max_replicates: int) -> list[int]:
    """The replicate count of each condition for the next round (equal to ``counts`` when
    every point meets its targets or its cap).

    Parameters
    ----------
    counts : per condition, the replicates run so far.
    point_conditions : per grid point (in ``summary.condition`` order), its condition.
    summary : the per-point summary of those replicates.
    """
    cap = max(max_replicates // block_size * block_size, max(counts))
    new = list(counts)
    errors = {t.measure: point_errors(summary, t) for t in targets}
    for point, condition in enumerate(point_conditions):
        for target in targets:
            need = _needed(counts[condition], float(errors[target.measure][point]), target.value,
                           block_size, cap)
            new[condition] = max(new[condition], need)
    return new


def format_precision(summary: xr.Dataset, targets: Sequence[McseTarget], replicates: Sequence[int],
                     labels: Sequence[str], *, max_replicates: int) -> str:
    """What each grid point got: its replicates and, per target, its MCSE and whether the
    target is met (``NA``: no usable replicate)."""
    errors = {t.measure: point_errors(summary, t) for t in targets}
    lines = [f"replicates per grid point (--mcse-target {' '.join(t.text for t in targets)}; "
             f"largest MCSE over the methods, matched cohort, PFS; at most {max_replicates}):"]
    for point, (label, count) in enumerate(zip(labels, replicates)):
        parts = []
        for target in targets:
            error = float(errors[target.measure][point])
            # the rounds stop only when no point can gain: an unmet point is at its cap
            state = ("NA" if not np.isfinite(error) else "met" if error <= target.value
                     else "not met at the cap")
            shown = "NA" if not np.isfinite(error) else f"{error:.4f}"
            parts.append(f"{target.measure} {shown} {state}")
        lines.append(f"  point {point} ({label}): {count} replicates; {', '.join(parts)}")
    return "\n".join(lines)


def run_rounds(run_once, counts: Sequence[int], point_conditions: Sequence[int],
               targets: Sequence[McseTarget], *, block_size: int, max_replicates: int):
    """Run rounds until every point meets its targets or its cap (module docstring).

    Parameters
    ----------
    run_once : callable ``counts -> (result, summary)`` running (or resuming) the conditions
        at ``counts`` replicates and summarising each grid point on its own replicates.
    counts : the first pass, per condition.

    Returns
    -------
    (result, summary, counts) of the last round.
    """
    counts = list(counts)
    while True:
        result, summary = run_once(counts)
        if not targets:
            return result, summary, counts
        new = next_counts(counts, point_conditions, summary, targets, block_size=block_size,
                          max_replicates=max_replicates)
        if new == counts:
            return result, summary, counts
        counts = new
