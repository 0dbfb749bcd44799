"""The compact text report of a sweep: per factor, the matched-cohort PFS measures at each
level (averaged over the other factors' levels for a factorial design; the points that move it
for one-at-a-time; the first points for Morris/Sobol, whose indices ``psmsim sensitivity``
prints), each with its Monte Carlo SE (for a mean over several points, the mean of their MCSEs:
an upper bound whatever the correlation common random numbers induce between them)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from sim.run.sweep_design import SweepDesign

__all__ = ["format_sweep"]

_COLUMNS = (("power_logrank", "power"), ("bias_marginal", "bias"),
            ("coverage_marginal", "coverage"), ("n_pairs_mean", "pairs"))
_MAX_POINTS = 20


def _cell(summary: xr.Dataset, name: str, points, method: str) -> tuple[float, float]:
    variable, mcse = summary[name], summary[f"{name}_mcse"]
    selector = {"method": method}
    if "cohort" in variable.dims:
        selector.update(cohort="matched", endpoint="pfs")
    values = variable.sel(selector).isel(condition=points).values.astype(float)
    errors = mcse.sel(selector).isel(condition=points).values.astype(float)
    keep = np.isfinite(values)
    if not keep.any():
        return float("nan"), float("nan")
    # The points share their random numbers (CRN), so their errors are positively correlated:
    # the MCSE of their mean lies between sqrt(sum s²) / k (independent) and mean(s) (perfectly
    # correlated); the larger, mean(s), is reported.
    return float(values[keep].mean()), float(np.mean(errors[keep]))


def _row(summary, label, points, methods) -> str:
    cells = []
    for method in methods:
        for name, _ in _COLUMNS:
            value, error = _cell(summary, name, points, method)
            cells.append(f"{value:8.3f} ±{error:5.3f}" if np.isfinite(value) else f"{'—':>15}")
    return f"  {str(label):>14} " + " ".join(cells)


def _header(methods) -> str:
    names = " ".join(f"{method[:6] + ' ' + short:>15}" for method in methods for _, short in _COLUMNS)
    return f"  {'level':>14} {names}"


def format_sweep(summary: xr.Dataset, design: SweepDesign, *, replicates_per_point: int) -> str:
    """The report printed by ``psmsim sweep`` (matched cohort, PFS; ± is one MCSE)."""
    methods = [str(m) for m in summary.method.values]
    lines = [f"sweep {summary.attrs.get('sweep_name', '')}: {design.kind} design, "
             f"{len(design.points)} grid points × {replicates_per_point} replicates, "
             f"methods {', '.join(methods)}; matched cohort, PFS (± one Monte Carlo SE)"]
    question = summary.attrs.get("sweep_question")
    if question:
        lines.append(f"question: {question}")
    if design.kind in ("morris", "sobol"):
        lines.append(f"first {min(_MAX_POINTS, len(design.points))} points (all in summary.csv; "
                     "indices: psmsim sensitivity RUN_DIR)")
        lines.append(_header(methods))
        for point in design.points[:_MAX_POINTS]:
            label = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in point.levels.items())
            lines.append(f"  point {point.index}: {label}")
            lines.append(_row(summary, "", [point.index], methods))
        return "\n".join(lines)
    for factor in design.factors:
        lines.append(f"\nfactor {factor.name} ({', '.join(factor.paths)})"
                     + (" — mean over the other factors" if design.kind == "factorial"
                        and len(design.factors) > 1 else ""))
        lines.append(_header(methods))
        for level in factor.levels:
            label = factor.label(level)
            if design.kind == "one_at_a_time":
                points = [p.index for p in design.points
                          if (p.varied in (factor.name, "") and factor.label(p.levels[factor.name]) == label)]
                points = points[-1:]  # the point where this factor sits at this level alone
            else:
                points = [p.index for p in design.points if factor.label(p.levels[factor.name]) == label]
            if points:
                lines.append(_row(summary, label, points, methods))
    return "\n".join(lines)
