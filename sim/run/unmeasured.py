"""The unmeasured-confounder report of a sweep over U's prevalence difference × U's log-HR:
the simulated bias surface and its contours (:mod:`analysis.performance.sensitivity.bias_surface`)
beside the analytic answers — the E-value of the paper's hazard ratio and its CI limit, the
Lin–Psaty–Kronmal prediction on the same grid — and the measured covariates of Table 1 as
benchmarks: where each would sit on the same axes (its own imbalance between arms and its
log-HR on the outcome).

Benchmarks are the binary covariates with a log-HR in the scenario (U is binary); their
prevalence difference is ``p_treated − p_control`` of the published marginals (table mode).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from analysis.performance.sensitivity import (
    bias_surface,
    e_values_hr,
    hazard_ratio_from_medians,
    lpk_bias_factor,
)
from sim.run.store import REPLICATES_FILE
from sim.run.atomic_files import read_dataset, write_dataset

__all__ = ["measured_benchmarks", "unmeasured_dataset", "unmeasured_surface", "unmeasured_report", "BIAS_SURFACE_NC"]

BIAS_SURFACE_NC = "bias_surface.nc"


def measured_benchmarks(scenario) -> xr.Dataset:
    """Each binary covariate with a log-HR: its prevalence per arm, difference and log-HR.

    Returns
    -------
    xarray.Dataset
        Over ``benchmark`` (covariate names): ``benchmark_prevalence_treated``,
        ``benchmark_prevalence_control``, ``benchmark_prevalence_difference``,
        ``benchmark_log_hr``, ``benchmark_lpk_factor`` (the LPK bias factor it would have as
        an unmeasured confounder); empty in selection mode.
    """
    names, rows = [], []
    if scenario.mode == "table":
        treated, control = scenario.treated_arm.name, scenario.control_arm.name
        for covariate in scenario.covariates:
            effect = scenario.outcome.covariate_log_hr.get(covariate.name)
            if covariate.kind != "binary" or effect is None or effect == 0:
                continue
            p1, p0 = covariate.marginals[treated].p, covariate.marginals[control].p
            names.append(covariate.name)
            rows.append((p1, p0, p1 - p0, float(effect), float(lpk_bias_factor(np.exp(effect), p1, p0))))
    columns = np.array(rows, dtype=float).reshape(-1, 5)
    keys = ("benchmark_prevalence_treated", "benchmark_prevalence_control",
            "benchmark_prevalence_difference", "benchmark_log_hr", "benchmark_lpk_factor")
    return xr.Dataset({key: ("benchmark", columns[:, i]) for i, key in enumerate(keys)},
                      coords={"benchmark": names})


def _prevalences(factor: dict, treated: str, control: str):
    """Per level of the prevalence factor: (p_treated, p_control), or None if not both set."""
    paths = factor["paths"]
    wanted = [f"unmeasured.prevalence.{treated}", f"unmeasured.prevalence.{control}"]
    if not all(path in paths for path in wanted) or factor.get("scale"):
        return None
    return [(level[paths.index(wanted[0])], level[paths.index(wanted[1])]) for level in factor["levels"]]


def unmeasured_surface(replicates: xr.Dataset, scenario, *, x: str, y: str) -> xr.Dataset:
    """Bias surfaces for every method and endpoint (dims ``method``, ``endpoint`` added) with
    ``lpk_mean_log_hr(x, y)``: the true marginal log-HR plus log of the LPK factor at each
    grid point (when the prevalence factor sets both arms' prevalences)."""
    surfaces = []
    for method in replicates.method.values:
        per_endpoint = [bias_surface(replicates, x=x, y=y, method=str(method), endpoint=str(e))
                        for e in replicates.endpoint.values]
        surfaces.append(xr.concat(per_endpoint, dim="endpoint", join="exact", combine_attrs="drop_conflicts")
                        .assign_coords(endpoint=replicates.endpoint.values))
    surface = xr.concat(surfaces, dim="method", join="exact", combine_attrs="drop_conflicts").assign_coords(
        method=replicates.method.values)
    factors = {f["name"]: f for f in json.loads(replicates.attrs["sweep_factors"])}
    pairs = _prevalences(factors[x], scenario.treated_arm.name, scenario.control_arm.name)
    if pairs is not None:
        labels = factors[x]["labels"]
        order = [labels.index(v) if v in labels else labels.index(str(v)) for v in
                 [lab.item() if hasattr(lab, "item") else lab for lab in surface[x].values]]
        p1 = xr.DataArray([pairs[i][0] for i in order], dims=x, coords={x: surface[x].values})
        p0 = xr.DataArray([pairs[i][1] for i in order], dims=x, coords={x: surface[x].values})
        factor = xr.apply_ufunc(lpk_bias_factor, np.exp(surface[y]), p1, p0)
        surface["lpk_mean_log_hr"] = surface.true_log_hr + np.log(factor)
        surface["prevalence_treated"], surface["prevalence_control"] = p1, p0
    return surface


def unmeasured_report(run_dir: Path, summary: xr.Dataset, *, x: str, y: str) -> tuple[str, Path]:
    """Write ``bias_surface.nc`` and return the printed text."""
    dataset, text = unmeasured_dataset(run_dir, summary, x=x, y=y)
    path = Path(run_dir) / BIAS_SURFACE_NC
    write_dataset(path, dataset)
    return text, path


def unmeasured_dataset(run_dir: Path, summary: xr.Dataset, *, x: str, y: str) -> tuple[xr.Dataset, str]:
    """The bias-surface Dataset (surface, benchmarks, E-value attributes) and its printed text."""
    from sim.scenario import parse_scenario

    replicates = read_dataset(Path(run_dir) / REPLICATES_FILE)
    scenario = parse_scenario(summary.attrs["scenario_text"])
    surface = unmeasured_surface(replicates, scenario, x=x, y=y)
    benchmarks = measured_benchmarks(scenario)
    dataset = xr.merge([surface, benchmarks], compat="no_conflicts", join="outer", combine_attrs="override")
    lines = [f"unmeasured confounder U (never in the PS model): bias surface over {x} × {y}, "
             "matched cohort; crossings along the prevalence difference, band ±2 MCSE"]
    for method in surface.method.values:
        cell = surface.sel({"method": method, "endpoint": "pfs"})
        lines.append(f"\n{method}, PFS: {x} at which ...")
        lines.append(f"  {y:>10} {'HR reaches 1':>24} {'CI crosses 1':>24} {'power < 80%':>24}")
        for value in cell[y].values:
            row = cell.sel({y: value})
            parts = []
            for contour in ("estimate_null", "ci_null", "power"):
                c, lo, hi = (float(row[v].sel(contour=contour)) for v in ("crossing", "crossing_lower", "crossing_upper"))
                parts.append(f"{c:7.3f} [{lo:6.3f}, {hi:6.3f}]" if np.isfinite(c) else f"{'not in grid':>24}")
            lines.append(f"  {float(value):10.3g} " + " ".join(f"{p:>24}" for p in parts))
    reported = json.loads(summary.attrs.get("sweep_reported", "null"))
    if reported:
        implied = hazard_ratio_from_medians(reported["median_treated"], reported["median_control"],
                                            reported["p_value"])
        evalues = e_values_hr(implied.hazard_ratio, implied.ci_lower, implied.ci_upper, rare=False)
        dataset.attrs.update(implied_hr=implied.hazard_ratio, implied_hr_ci_lower=implied.ci_lower,
                             implied_hr_ci_upper=implied.ci_upper, e_value_point=evalues.point,
                             e_value_ci=evalues.ci)
        lines.append(f"\nE-value (VanderWeele & Ding 2017, common outcome) of the paper's matched PFS "
                     f"HR {implied.hazard_ratio:.2f} (95% CI {implied.ci_lower:.2f}–{implied.ci_upper:.2f}; "
                     f"implied by its medians {reported['median_treated']:g} vs "
                     f"{reported['median_control']:g} months and log-rank P = {reported['p_value']:g}): "
                     f"{evalues.point:.2f} for the estimate, {evalues.ci:.2f} for the CI limit")
    if benchmarks.sizes["benchmark"]:
        lines.append("\nmeasured covariates as benchmarks (prevalence treated − control, log-HR, "
                     "LPK bias factor as if unmeasured):")
        for name in benchmarks.benchmark.values:
            row = benchmarks.sel(benchmark=name)
            lines.append(f"  {str(name):<26} {float(row.benchmark_prevalence_difference):+7.3f} "
                         f"{float(row.benchmark_log_hr):+6.2f} {float(row.benchmark_lpk_factor):7.3f}")
    return dataset, "\n".join(lines)
