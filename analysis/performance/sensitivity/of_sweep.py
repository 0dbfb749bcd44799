"""The sensitivity indices of a finished sweep, from its summary Dataset.

:func:`sweep_sensitivity` reads the design from the summary's attributes (``sweep_design``,
``sweep_factors``, ``sweep_sample``; ``docs/results_schema.md``, "Sweeps") and, for each
measure of :data:`MEASURES` in the matched cohort, each method and endpoint, computes

* ``factorial``: the η² decomposition (:func:`.anova.eta_squared`; main effects and two-way
  interactions; rates on the logit scale);
* ``one_at_a_time``: tornado data (:func:`.one_at_a_time.tornado`);
* ``morris``: μ, μ*, σ (:func:`.global_indices.morris_indices`);
* ``sobol``: S1 and ST (:func:`.global_indices.sobol_indices`);

each with the Monte Carlo noise figures of those functions. A cell whose measure is missing at
a Morris or Sobol point (SALib needs every row) is NaN.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from analysis.performance.sensitivity.anova import eta_squared
from analysis.performance.sensitivity.global_indices import morris_indices, salib_problem, sobol_indices
from analysis.performance.sensitivity.one_at_a_time import tornado

__all__ = ["MEASURES", "long_summary", "sweep_sensitivity", "sensitivity_to_frame"]

#: Measures analysed: name -> the variable counting the replicates behind it if it is a rate
#: (analysed on the logit scale by the ANOVA), else None.
MEASURES = {
    "power_logrank": "n_used_logrank",
    "power_cox": "n_used_cox",
    "coverage_marginal": "n_used",
    "bias_marginal": None,
    "emp_se": None,
    "rmse_marginal": None,
    "n_pairs_mean": None,
}


def long_summary(summary: xr.Dataset) -> xr.Dataset:
    """The summary with grid points on ``condition`` (a factorial sweep's factor dims stacked
    back; the factors stay as coordinates on ``condition``)."""
    factors = [f["name"] for f in json.loads(summary.attrs["sweep_factors"])]
    if "condition" in summary.dims:
        return summary
    stacked = summary.stack(condition=factors).reset_index("condition")
    return stacked.assign_coords(condition=np.arange(stacked.sizes["condition"]))


def _cell(summary: xr.Dataset, name: str, method: str, endpoint: str):
    selector = {"method": method}
    variable = summary[name]
    if "cohort" in variable.dims:
        selector.update(cohort="matched", endpoint=endpoint)
    estimate = variable.sel(selector).values.astype(float)
    mcse = summary[f"{name}_mcse"].sel(selector).values.astype(float)
    counts = MEASURES[name]
    n_used = summary[counts].sel(selector).values.astype(float) if counts else None
    return estimate, mcse, n_used


def _factorial(summary, factors, name, method, endpoint) -> dict:
    estimate, mcse, n_used = _cell(summary, name, method, endpoint)
    values = {f["name"]: summary[f["name"]].values for f in factors}
    varying = {k: v for k, v in values.items() if len(np.unique(v)) > 1}
    result = eta_squared(estimate, varying, mcse=mcse, logit=n_used is not None, n_used=n_used)
    return {"terms": result.terms, **{key: getattr(result, key) for key in (
        "df", "sum_of_squares", "eta_squared", "partial_eta_squared", "noise_sum_of_squares",
        "eta_squared_noise", "noise_share", "noise_p_value")}}


def sweep_sensitivity(summary: xr.Dataset, *, seed: int = 1, num_resamples: int = 1000
                      ) -> xr.Dataset:
    """Sensitivity indices of every measure of :data:`MEASURES` over the sweep's factors.

    Parameters
    ----------
    summary : xarray.Dataset
        A sweep's summary (``summary.nc``), crossed or per point.
    seed : int
        Seed of SALib's bootstrap CIs (Morris, Sobol).

    Returns
    -------
    xarray.Dataset
        Dims ``measure``, ``method``, ``endpoint`` and ``term`` (factorial) or ``factor``
        (other designs); variables as listed in ``docs/results_schema.md``
        ("Sensitivity"). Attributes: ``sweep_design``, ``sweep_name``.
    """
    design = summary.attrs["sweep_design"]
    factors = json.loads(summary.attrs["sweep_factors"])
    long = long_summary(summary)
    measures = [m for m in MEASURES if m in long]
    methods = [str(m) for m in long.method.values]
    endpoints = [str(e) for e in long.endpoint.values]
    names = [f["name"] for f in factors]
    cells = [(m, me, e) for m in measures for me in methods for e in endpoints]
    per_cell = []
    for measure, method, endpoint in cells:
        if design == "factorial":
            per_cell.append(_factorial(long, factors, measure, method, endpoint))
            continue
        estimate, mcse, _ = _cell(long, measure, method, endpoint)
        if design == "one_at_a_time":
            values = {n: long[n].values.astype(float) for n in names
                      if np.issubdtype(long[n].dtype, np.number)}
            result = tornado(estimate, mcse, varied=long["varied"].values.astype(str),
                             values=values, base_point=0)
            order = [result.names.index(n) if n in result.names else None for n in names]
            row = {}
            for key in ("value_low", "value_high", "estimate_low", "estimate_high", "mcse_low", "mcse_high",
                        "swing", "swing_mcse"):
                column = getattr(result, key)
                row[key] = np.array([column[i] if i is not None else np.nan for i in order])
            row["base_estimate"], row["base_mcse"] = result.base_estimate, result.base_mcse
            per_cell.append(row)
            continue
        problem = salib_problem(names, [f["bounds"] for f in factors])
        if not np.all(np.isfinite(estimate)):
            per_cell.append(None)
            continue
        if design == "morris":
            sample = np.asarray(json.loads(summary.attrs["sweep_sample"]), dtype=float)
            result = morris_indices(problem, sample, estimate, mcse=mcse,
                                    num_levels=int(summary.attrs["sweep_num_levels"]),
                                    num_resamples=num_resamples, seed=seed)
            keys = ("mu", "mu_star", "sigma", "mu_star_conf", "sigma_noise_share",
                    "noise_variance", "ee_noise_sd", "mu_star_noise")
        else:
            result = sobol_indices(problem, estimate, mcse=mcse, num_resamples=num_resamples, seed=seed)
            keys = ("s1", "s1_conf", "st", "st_conf", "s1_corrected", "st_corrected",
                    "noise_variance", "output_variance", "noise_share")
        per_cell.append({key: getattr(result, key) for key in keys})
    return _assemble(per_cell, cells, measures, methods, endpoints, names, design, summary.attrs)


def _assemble(per_cell, cells, measures, methods, endpoints, names, design, attrs) -> xr.Dataset:
    shape = (len(measures), len(methods), len(endpoints))
    coords = {"measure": measures, "method": methods, "endpoint": endpoints}
    index = {cell: np.unravel_index(i, shape) for i, cell in enumerate(cells)}
    example = next((row for row in per_cell if row is not None), {})
    if design == "factorial":
        terms = list(dict.fromkeys(t for row in per_cell for t in row["terms"]))
        coords["term"] = terms
    else:
        coords["factor"] = names
    variables = {}
    for key, value in example.items():
        if key == "terms":
            continue
        per_factor = np.ndim(value) == 1
        last = len(coords["term" if design == "factorial" else "factor"])
        array = np.full(shape + ((last,) if per_factor else ()), np.nan)
        for cell, row in zip(cells, per_cell):
            if row is None:
                continue
            if design == "factorial":
                for term, item in zip(row["terms"], row[key]):
                    array[index[cell] + (terms.index(term),)] = item
            else:
                array[index[cell]] = row[key]
        dims = ("measure", "method", "endpoint") + (("term" if design == "factorial" else "factor",)
                                                     if per_factor else ())
        variables[key] = (dims, array)
    dataset = xr.Dataset(variables, coords=coords)
    if design == "factorial":
        dataset["logit_scale"] = ("measure", [MEASURES[m] is not None for m in measures])
    dataset.attrs = {"sweep_design": design, "sweep_name": attrs.get("sweep_name", ""),
                     "sweep_question": attrs.get("sweep_question", "")}
    return dataset


def sensitivity_to_frame(sensitivity: xr.Dataset):
    """The per-term (factorial) or per-factor indices as a long table (``sensitivity.csv``)."""
    last = "term" if "term" in sensitivity.dims else "factor"
    names = [n for n, v in sensitivity.data_vars.items() if last in v.dims]
    frame = sensitivity[names].to_dataframe().reset_index()
    return frame.dropna(subset=names, how="all")
