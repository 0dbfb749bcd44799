"""The run summary computed over the whole replicates array, as psmsim did before summaries
were accumulated block by block (``analysis/performance/summary.py`` at commit 975c38e): each
measure of :mod:`analysis.performance.measures` applied over the ``replicate`` dim of the
whole Dataset. The reference the blockwise summaries are compared with.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from analysis import status as status_codes
from analysis.performance.analytic_power import freedman_power, schoenfeld_power
from analysis.performance.measures import (
    PerformanceMeasure,
    bias,
    bias_eliminated_coverage,
    coverage,
    empirical_se,
    mean_absolute_error,
    model_se,
    monte_carlo_mean,
    mse,
    proportion,
    rejection_rate,
    relative_bias,
    relative_error_model_se,
    rmse,
)
from analysis.performance.summary import PAPER_PATTERN_CRITERIA
from analysis.performance.summary import _summary_attrs as summary_attrs

_CELL_DIMS = ("condition", "method", "cohort", "endpoint")


def _apply(function, *arrays: xr.DataArray, **options) -> PerformanceMeasure:
    """Apply an array-layer measure over the ``replicate`` dim of labelled arrays.

    Arrays without a ``replicate`` dim (truths) broadcast against the others. Returns a
    :class:`PerformanceMeasure` whose fields are DataArrays.
    """
    core_dims = [["replicate"] if "replicate" in array.dims else [] for array in arrays]

    def fields(*values):
        measure = function(*values, **options)
        return measure.estimate, measure.mcse, measure.n_used

    estimate, mcse, n_used = xr.apply_ufunc(
        fields, *arrays, input_core_dims=core_dims, output_core_dims=[[], [], []]
    )
    return PerformanceMeasure(estimate=estimate, mcse=mcse, n_used=n_used)


def _store(variables: dict, name: str, measure: PerformanceMeasure, *, n_used: str | None = None):
    variables[name] = measure.estimate
    variables[f"{name}_mcse"] = measure.mcse
    if n_used is not None:
        variables[n_used] = measure.n_used


def _category_rates(codes: xr.DataArray) -> PerformanceMeasure:
    """Share of replicates with each status code, along a new ``status`` dim."""
    names = list(status_codes.STATUS_NAMES.values())
    stacked = xr.concat(
        [codes == code for code in status_codes.STATUS_NAMES], dim="status"
    ).assign_coords(status=names)
    return _apply(proportion, stacked)


def _pair_count_distribution(n_pairs: xr.DataArray, variables: dict) -> None:
    """Mean (+ MCSE), SD, min, quartiles and max of the matched-pair count per condition × method."""
    counts = n_pairs.astype(float).where(n_pairs >= 0)
    _store(variables, "n_pairs_mean", _apply(monte_carlo_mean, counts))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells give NaN, on purpose
        variables["n_pairs_sd"] = counts.std("replicate", ddof=1)
        variables["n_pairs_min"] = counts.min("replicate")
        for name, level in (("n_pairs_q1", 0.25), ("n_pairs_median", 0.5), ("n_pairs_q3", 0.75)):
            variables[name] = counts.quantile(level, dim="replicate").drop_vars("quantile")
        variables["n_pairs_max"] = counts.max("replicate")


def _paper_pattern(replicates: xr.Dataset, alpha: float, variables: dict) -> None:
    """Share of replicates reproducing the paper's matched-cohort pattern (NaN p = not reproduced)."""
    matched = replicates.sel(cohort="matched")
    criteria = []
    for variable, endpoint, significant in PAPER_PATTERN_CRITERIA.values():
        p_value = matched[variable] if endpoint is None else matched[variable].sel(endpoint=endpoint)
        p_value = p_value.drop_vars([c for c in ("cohort", "endpoint") if c in p_value.coords])
        criteria.append(p_value < alpha if significant else p_value >= alpha)
    stacked = xr.concat(criteria, dim="criterion").assign_coords(
        criterion=list(PAPER_PATTERN_CRITERIA)
    )
    _store(variables, "paper_pattern_criterion_rate", _apply(proportion, stacked))
    _store(variables, "paper_pattern_rate", _apply(proportion, stacked.all("criterion")))


def whole_array_summary(
    replicates: xr.Dataset,
    *,
    alpha: float = 0.05,
    balance_threshold: float = 0.1,
    null_tolerance: float = 1e-8,
) -> xr.Dataset:
    """The summary as summarise_run computed it over the whole array (see module)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: must lie in (0, 1); got {alpha!r}")
    ds = replicates.compute()  # lazily opened or dask-backed files: load once, in a copy
    variables: dict[str, xr.DataArray] = {}

    # Tests: power (type-I error where the truth is null).
    _store(variables, "power_logrank", _apply(rejection_rate, ds.p_logrank, alpha=alpha),
           n_used="n_used_logrank")
    _store(variables, "power_cox", _apply(rejection_rate, ds.p_value, alpha=alpha),
           n_used="n_used_cox")
    variables["null_truth"] = np.abs(ds.true_log_hr_marginal) <= null_tolerance

    # Log-HR estimates, on the replicates where estimate, SE and CI are all finite.
    used = (
        np.isfinite(ds.log_hr) & np.isfinite(ds.se)
        & np.isfinite(ds.ci_lower) & np.isfinite(ds.ci_upper)
    )
    log_hr, se = ds.log_hr.where(used), ds.se.where(used)
    lower, upper = ds.ci_lower.where(used), ds.ci_upper.where(used)
    for truth_name in ("conditional", "marginal"):
        truth = ds[f"true_log_hr_{truth_name}"]
        _store(variables, f"bias_{truth_name}", _apply(bias, log_hr, truth))
        _store(variables, f"relative_bias_{truth_name}", _apply(relative_bias, log_hr, truth))
        _store(variables, f"mse_{truth_name}", _apply(mse, log_hr, truth))
        _store(variables, f"rmse_{truth_name}", _apply(rmse, log_hr, truth))
        _store(variables, f"mean_abs_error_{truth_name}", _apply(mean_absolute_error, log_hr, truth))
        _store(variables, f"coverage_{truth_name}", _apply(coverage, lower, upper, truth))
    _store(variables, "bias_eliminated_coverage", _apply(bias_eliminated_coverage, log_hr, lower, upper))
    _store(variables, "emp_se", _apply(empirical_se, log_hr), n_used="n_used")
    _store(variables, "mod_se", _apply(model_se, se))
    _store(variables, "rel_error_mod_se", _apply(relative_error_model_se, log_hr, se))

    # Failures: the rate of every status code.
    _store(variables, "status_rate", _category_rates(ds.status))
    _store(variables, "ps_status_rate", _category_rates(ds.ps_status))

    # Median estimates against the true marginal medians.
    analysed = ds.status == status_codes.OK
    for arm in ("treated", "control"):
        median = ds[f"median_{arm}"]
        truth = ds[f"true_median_{arm}"]
        variables[f"median_{arm}_mean"] = _apply(monte_carlo_mean, median).estimate
        _store(variables, f"median_{arm}_bias", _apply(bias, median, truth))
        _store(variables, f"median_{arm}_not_reached",
               _apply(proportion, np.isnan(median) & analysed, analysed))

    # Analytic companions at the simulated events of the replicates behind power_logrank.
    tested = np.isfinite(ds.p_logrank)
    events = (ds.events_treated.astype(float) + ds.events_control.astype(float)).where(tested)
    _store(variables, "mean_events", _apply(monte_carlo_mean, events))
    arm_total = ds.n_treated.astype(float) + ds.n_control.astype(float)
    allocation = (ds.n_treated / arm_total).where(tested & (arm_total > 0))
    mean_allocation = _apply(monte_carlo_mean, allocation).estimate
    mean_allocation = mean_allocation.where((mean_allocation > 0) & (mean_allocation < 1))
    variables["mean_allocation"] = mean_allocation
    true_hazard_ratio = np.exp(ds.true_log_hr_marginal)
    variables["schoenfeld_power"] = xr.apply_ufunc(
        lambda d, hr, p: schoenfeld_power(d, hr, allocation=p, alpha=alpha),
        variables["mean_events"], true_hazard_ratio, mean_allocation,
    )
    variables["freedman_power"] = xr.apply_ufunc(
        lambda d, hr, p: freedman_power(d, hr, ratio=p / (1.0 - p), alpha=alpha),
        variables["mean_events"], true_hazard_ratio, mean_allocation,
    )

    # Cohort-level: balance; method-level: pair counts and the paper's pattern.
    smd = ds.max_abs_smd
    _store(variables, "balance_rate",
           _apply(proportion, smd < balance_threshold, np.isfinite(smd)), n_used="n_used_balance")
    _pair_count_distribution(ds.n_pairs, variables)
    _paper_pattern(ds, alpha, variables)

    summary = xr.Dataset(variables)
    condition_coords = {
        name: coord for name, coord in ds.coords.items()
        if name not in summary.coords and set(coord.dims) <= {"condition"}
    }
    summary = summary.assign_coords(condition_coords)
    order = [*_CELL_DIMS, "status", "criterion"]
    summary = summary.transpose(*[d for d in order if d in summary.dims])
    summary.attrs = summary_attrs(ds.attrs, alpha, balance_threshold, null_tolerance)
    return summary
