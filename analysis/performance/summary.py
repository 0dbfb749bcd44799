"""The summary of a run: every performance measure of :mod:`analysis.performance.measures`
over the replicates Dataset (``docs/results_schema.md``), with its Monte Carlo SE.

:func:`summarise_run` turns the replicates Dataset into the summary Dataset saved as
``summary.nc``; :func:`summary_to_frame` flattens it into the long table saved as
``summary.csv``. Failed analyses are skipped, never imputed; ``n_used*`` say how many
replicates entered a measure.
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timezone

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

__all__ = ["PAPER_PATTERN_CRITERIA", "summarise_run", "summary_to_frame"]


#: The paper's pattern of results in the matched cohort (Liu et al. 2021): criterion name ->
#: (variable, endpoint or None, True if the criterion is "p < alpha", False if "p >= alpha").
PAPER_PATTERN_CRITERIA = {
    "pfs_logrank_significant": ("p_logrank", "pfs", True),
    "os_logrank_not_significant": ("p_logrank", "os", False),
    "orr_significant": ("p_orr", None, True),
    "dcr_not_significant": ("p_dcr", None, False),
}

_CELL_DIMS = ("condition", "method", "cohort", "endpoint")
_PER_ANALYSIS = ("condition", "replicate", "method", "cohort", "endpoint")
_PER_COHORT = ("condition", "replicate", "method", "cohort")
_PER_METHOD = ("condition", "replicate", "method")
_PER_TRUTH = ("condition", "endpoint")
#: Variables summarise_run reads, with their dims (docs/results_schema.md).
_REQUIRED_VARIABLES = {
    **dict.fromkeys(
        ("log_hr", "se", "ci_lower", "ci_upper", "p_value", "p_logrank", "median_treated",
         "median_control", "events_treated", "events_control", "status"), _PER_ANALYSIS),
    **dict.fromkeys(("n_treated", "n_control", "max_abs_smd", "p_orr", "p_dcr"), _PER_COHORT),
    **dict.fromkeys(("n_pairs", "ps_status"), _PER_METHOD),
    **dict.fromkeys(
        ("true_log_hr_conditional", "true_log_hr_marginal", "true_median_treated",
         "true_median_control"), _PER_TRUTH),
}


def _check_replicates(replicates: xr.Dataset) -> None:
    """Refuse a Dataset that does not follow ``docs/results_schema.md``, naming what is wrong."""
    missing = [name for name in _REQUIRED_VARIABLES if name not in replicates]
    if missing:
        raise ValueError(
            f"replicates: missing variables {missing} (see docs/results_schema.md)"
        )
    for name, dims in _REQUIRED_VARIABLES.items():
        if set(replicates[name].dims) != set(dims):
            raise ValueError(
                f"replicates.{name}: dims {replicates[name].dims}, expected {dims} "
                "(see docs/results_schema.md)"
            )
    for dim, labels in (("cohort", ("matched",)), ("endpoint", ("pfs", "os"))):
        present = set(replicates[dim].values.tolist())
        if not set(labels) <= present:
            raise ValueError(f"replicates.{dim}: needs {list(labels)}, has {sorted(present)}")


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


def summarise_run(
    replicates: xr.Dataset,
    *,
    alpha: float = 0.05,
    balance_threshold: float = 0.1,
    null_tolerance: float = 1e-8,
) -> xr.Dataset:
    """Summarise a run's replicates into performance measures with Monte Carlo SEs.

    Parameters
    ----------
    replicates : xarray.Dataset
        The run's results in the schema of ``docs/results_schema.md`` (dims ``condition``,
        ``replicate``, ``method``, ``cohort``, ``endpoint``).
    alpha : float, in (0, 1)
        Significance level of power, type-I error and the paper's pattern.
    balance_threshold : float
        A cohort counts as balanced when ``max_abs_smd < balance_threshold`` (Austin 2009: 0.1).
    null_tolerance : float
        ``null_truth`` holds where ``|true_log_hr_marginal| <= null_tolerance``.

    Returns
    -------
    xarray.Dataset
        Variables listed in ``docs/results_schema.md`` ("Summary"); dims ``condition``,
        ``method``, ``cohort``, ``endpoint`` (plus ``status`` and ``criterion`` for rates by
        category). Every measure ``m`` has ``m_mcse``. Attributes: the run's attributes, with its
        ``created_at`` renamed ``source_created_at``, then ``created_at`` (now, ISO 8601 UTC),
        ``alpha``, ``balance_threshold``, ``null_tolerance``.

    Notes
    -----
    Replicates used (failed analyses are kept in the run and skipped here, never redrawn):
    log-HR measures use replicates where ``log_hr``, ``se``, ``ci_lower`` and ``ci_upper`` are
    all finite (``n_used``); log-rank / Cox power use finite ``p_logrank`` / ``p_value``
    (``n_used_logrank`` / ``n_used_cox``); mean events and allocation use the replicates of the
    log-rank power, so the Schoenfeld and Freedman powers beside it are at those replicates'
    mean events, the true marginal HR and their mean allocation ``n_T / (n_T + n_C)``. Median
    bias uses reached medians; the not-reached share is over replicates with status ok. The
    paper's pattern counts a replicate with a missing p-value as not reproducing it (its
    denominator is every replicate).

    References
    ----------
    Morris, White & Crowther (2019) Stat Med 38:2074-2102; Schoenfeld (1983) Biometrics
    39:499-503; Freedman (1982) Stat Med 1:121-129; Austin (2009) Stat Med 28:3083-3107.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: must lie in (0, 1); got {alpha!r}")
    _check_replicates(replicates)
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
    summary.attrs = _summary_attrs(ds.attrs, alpha, balance_threshold, null_tolerance)
    return summary


def _summary_attrs(source: dict, alpha: float, balance_threshold: float, null_tolerance: float):
    attrs = {("source_created_at" if key == "created_at" else key): value
             for key, value in source.items()}
    attrs.update(
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        alpha=float(alpha),
        balance_threshold=float(balance_threshold),
        null_tolerance=float(null_tolerance),
        status_codes=json.dumps(
            {str(code): name for code, name in status_codes.STATUS_NAMES.items()}
        ),
    )
    return attrs


def summary_to_frame(summary: xr.Dataset):
    """The summary as a long table, one row per measure and cell (``summary.csv``).

    Parameters
    ----------
    summary : xarray.Dataset
        The output of :func:`summarise_run`.

    Returns
    -------
    pandas.DataFrame
        Columns ``condition``, the condition coordinates (e.g. ``hazard_ratio``), ``method``,
        ``cohort``, ``endpoint`` (empty where the measure has no such dim), ``measure``,
        ``estimate``, ``mcse`` (NaN where the measure has none). A measure with a category dim
        is named ``name[category]`` (e.g. ``status_rate[no_events]``). Rows follow the
        Dataset's variable order, then the cells in dim order.
    """
    import pandas as pd

    condition_coords = [
        name for name, coord in summary.coords.items()
        if coord.dims == ("condition",) and name != "condition"
    ]
    key_columns = ["condition", *condition_coords, "method", "cohort", "endpoint"]
    frames = []
    for name, variable in summary.data_vars.items():
        if name.endswith("_mcse"):
            continue
        paired = summary.get(f"{name}_mcse")
        table = xr.Dataset(
            {"estimate": variable.astype(float),
             "mcse": paired if paired is not None else xr.full_like(variable, np.nan, dtype=float)}
        ).reset_coords([c for c in condition_coords if c in variable.coords], drop=True)
        frame = table.to_dataframe().reset_index()
        category_dims = [d for d in variable.dims if d not in _CELL_DIMS]
        frame["measure"] = name
        for dim in category_dims:
            frame["measure"] = frame["measure"] + "[" + frame[dim].astype(str) + "]"
        frames.append(frame.drop(columns=category_dims))
    long = pd.concat(frames, ignore_index=True)
    for column in ("method", "cohort", "endpoint"):
        if column not in long:
            long[column] = ""
        long[column] = long[column].fillna("")
    conditions = summary[condition_coords].to_dataframe().reset_index() if condition_coords else None
    if conditions is not None:
        long = long.merge(conditions, on="condition", how="left", sort=False)
    return long[[*key_columns, "measure", "estimate", "mcse"]]
