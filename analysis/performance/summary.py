"""The summary of a run: every performance measure of :mod:`analysis.performance.measures`
over the replicates (``docs/results_schema.md``), with its Monte Carlo SE.

The summary is computed from sufficient statistics accumulated block by block
(:mod:`analysis.performance.accumulate`): :func:`summarise_blocks` reads a sequence of blocks
twice (the second pass counts the CIs containing each cell's mean estimate, for the
bias-eliminated coverage), holding one block and two small states at a time;
:func:`summarise_state` turns merged states into the summary Dataset saved as ``summary.nc``;
:func:`summarise_run` does both for a replicates Dataset in memory (one block).
:func:`summary_to_frame` flattens the summary into the long table saved as ``summary.csv``.
Failed analyses are skipped, never imputed; ``n_used*`` say how many replicates entered a
measure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from functools import reduce

import numpy as np
import xarray as xr

from analysis import status as status_codes
from analysis.performance.accumulate import (
    CELL_DIMS,
    PAPER_PATTERN_CRITERIA,
    CentreCoverageState,
    SummaryState,
    check_replicates,
)
from analysis.performance.analytic_power import freedman_power, schoenfeld_power
from analysis.performance.measures import (
    PerformanceMeasure,
    empirical_se_from_moments,
    mean_from_moments,
    model_se_from_moments,
    proportion_from_counts,
    relative_error_model_se_from_moments,
    rmse_from_moments,
)
from analysis.performance.moments import Moments, quantiles_from_frequencies
from analysis.performance.truth_targets import (
    ESTIMAND_MEDIAN_TRUTHS,
    TRUTH_VARIABLES,
    log_hr_targets,
    median_targets,
)

__all__ = ["PAPER_PATTERN_CRITERIA", "summarise_run", "summarise_blocks", "summarise_state",
           "summary_to_frame"]

def _from_moments(function, state: xr.Dataset, *quantities: str) -> PerformanceMeasure:
    """Apply a ``*_from_moments`` formula to the Moments of ``quantities`` in ``state``."""
    arrays = [state[f"{q}_{part}"] for q in quantities for part in ("count", "mean", "m2")]

    def fields(*values):
        moments = [Moments(*values[i:i + 3]) for i in range(0, len(values), 3)]
        measure = function(*moments)
        return measure.estimate, measure.mcse, measure.n_used

    return PerformanceMeasure(*xr.apply_ufunc(fields, *arrays, output_core_dims=[[], [], []]))


def _from_counts(hits: xr.DataArray, count: xr.DataArray, undefined=None) -> PerformanceMeasure:
    """:func:`proportion_from_counts` on labelled counts."""
    extra = [] if undefined is None else [undefined]

    def fields(hits, count, *undefined):
        measure = proportion_from_counts(hits, count,
                                         undefined=undefined[0] if undefined else False)
        return measure.estimate, measure.mcse, measure.n_used

    return PerformanceMeasure(*xr.apply_ufunc(fields, hits, count, *extra,
                                              output_core_dims=[[], [], []]))


def _store(variables: dict, name: str, measure: PerformanceMeasure, *, n_used: str | None = None):
    variables[name] = measure.estimate
    variables[f"{name}_mcse"] = measure.mcse
    if n_used is not None:
        variables[n_used] = measure.n_used


def _pair_count_distribution(state: xr.Dataset, variables: dict) -> None:
    """Mean (+ MCSE), SD, min, quartiles and max of the pair count per condition × method."""
    _store(variables, "n_pairs_mean", _from_moments(mean_from_moments, state, "n_pairs"))
    variables["n_pairs_sd"] = xr.apply_ufunc(
        lambda *parts: np.sqrt(Moments(*parts).variance),
        state.n_pairs_count, state.n_pairs_mean, state.n_pairs_m2,
    )
    frequency = state.n_pairs_frequency
    levels = {"n_pairs_min": 0.0, "n_pairs_q1": 0.25, "n_pairs_median": 0.5, "n_pairs_q3": 0.75,
              "n_pairs_max": 1.0}
    quantiles = quantiles_from_frequencies(frequency.n_pairs_value.values, frequency.values,
                                           list(levels.values()))
    for (name, _), values in zip(levels.items(), quantiles):
        variables[name] = xr.DataArray(values, dims=frequency.dims[:-1],
                                       coords={d: frequency[d] for d in frequency.dims[:-1]})


def summarise_state(
    state: SummaryState,
    centre_coverage: CentreCoverageState,
    *,
    null_tolerance: float = 1e-8,
    attrs: Mapping | None = None,
) -> xr.Dataset:
    """The summary Dataset from the merged states of every block of a run.

    Parameters
    ----------
    state : SummaryState
        First pass, merged over the blocks (its ``alpha`` and ``balance_threshold`` apply).
    centre_coverage : CentreCoverageState
        Second pass, merged over the same blocks, counted at ``state.centres()``.
    null_tolerance : float
        ``null_truth`` holds where ``|true_log_hr_marginal| <= null_tolerance``.
    attrs : mapping, optional
        The run's attributes, instead of those the blocks carried (runner blocks carry none).

    Returns
    -------
    xarray.Dataset
        As :func:`summarise_run`.

    Raises
    ------
    ValueError
        If ``centre_coverage`` was counted at other centres or over other replicates.
    """
    ds = state.to_dataset(roles=False)
    second = centre_coverage.to_dataset(roles=False)
    try:
        second = second.sel({dim: ds[dim].values for dim in CELL_DIMS}).transpose(*CELL_DIMS)
    except KeyError as missing:
        raise ValueError(f"centre_coverage: lacks cells of the state ({missing}); run the second "
                         "pass over the same blocks") from None
    if not np.array_equal(second.centre.values, state.centres().transpose(*CELL_DIMS).values,
                          equal_nan=True):
        raise ValueError("centre_coverage: not counted at this state's centres "
                         "(run the second pass with state.centres())")
    if not np.array_equal(second.interval_count.values,
                          ds.log_hr_count.transpose(*CELL_DIMS).values):
        raise ValueError("centre_coverage: counted over other replicates than the state "
                         "(every block must enter both passes)")
    alpha = state.alpha
    variables: dict[str, xr.DataArray] = {}

    # Tests: power (type-I error where the truth is null).
    _store(variables, "power_logrank", _from_counts(ds.logrank_rejections, ds.logrank_tested),
           n_used="n_used_logrank")
    _store(variables, "power_cox", _from_counts(ds.cox_rejections, ds.cox_tested),
           n_used="n_used_cox")
    variables["null_truth"] = np.abs(ds.true_log_hr_marginal) <= null_tolerance

    # Log-HR estimates, on the replicates where estimate, SE and CI are all finite.
    for truth_name in ("conditional", "marginal"):
        truth = ds[f"true_log_hr_{truth_name}"]
        _store(variables, f"bias_{truth_name}",
               _from_moments(mean_from_moments, ds, f"error_{truth_name}"))
        _store(variables, f"relative_bias_{truth_name}",
               _from_moments(mean_from_moments, ds, f"relative_error_{truth_name}"))
        _store(variables, f"mse_{truth_name}",
               _from_moments(mean_from_moments, ds, f"squared_error_{truth_name}"))
        _store(variables, f"rmse_{truth_name}",
               _from_moments(rmse_from_moments, ds, f"squared_error_{truth_name}"))
        _store(variables, f"mean_abs_error_{truth_name}",
               _from_moments(mean_from_moments, ds, f"absolute_error_{truth_name}"))
        _store(variables, f"coverage_{truth_name}",
               _from_counts(ds[f"covering_{truth_name}"], ds.log_hr_count, np.isnan(truth)))
    _store(variables, "bias_eliminated_coverage",
           _from_counts(second.centre_covering, second.interval_count))
    _store(variables, "emp_se", _from_moments(empirical_se_from_moments, ds, "log_hr"),
           n_used="n_used")
    _store(variables, "mod_se", _from_moments(model_se_from_moments, ds, "model_variance"))
    _store(variables, "rel_error_mod_se",
           _from_moments(relative_error_model_se_from_moments, ds, "log_hr", "model_variance"))

    # Failures: the rate of every status code.
    _store(variables, "status_rate", _from_counts(ds.status_count, ds.replicate_count))
    _store(variables, "ps_status_rate", _from_counts(ds.ps_status_count, ds.replicate_count))

    # Median estimates against the true medians of each slot's population (truth_targets).
    targets = median_targets(ds)
    for arm in ("treated", "control"):
        median_mean = _from_moments(mean_from_moments, ds, f"median_{arm}")
        variables[f"median_{arm}_mean"] = median_mean.estimate
        bias = _from_moments(mean_from_moments, ds, f"median_{arm}_error")
        truth_mcse = targets[f"true_median_{arm}_target_mcse"].fillna(0.0)
        folded = xr.where(truth_mcse > 0, np.sqrt(bias.mcse**2 + truth_mcse**2), bias.mcse)
        _store(variables, f"median_{arm}_bias",
               PerformanceMeasure(bias.estimate, folded.transpose(*bias.mcse.dims), bias.n_used))
        _store(variables, f"median_{arm}_not_reached",
               _from_counts(ds[f"median_{arm}_not_reached"], ds.analysed))

    # Analytic companions at the simulated events of the replicates behind power_logrank.
    _store(variables, "mean_events", _from_moments(mean_from_moments, ds, "events"))
    mean_allocation = _from_moments(mean_from_moments, ds, "allocation").estimate
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
    _store(variables, "balance_rate", _from_counts(ds.balanced, ds.balance_measured),
           n_used="n_used_balance")
    _pair_count_distribution(ds, variables)
    _store(variables, "paper_pattern_criterion_rate",
           _from_counts(ds.paper_criterion_met, ds.replicate_count))
    _store(variables, "paper_pattern_rate", _from_counts(ds.paper_pattern_met, ds.replicate_count))

    log_hr_targets(ds, variables)
    # The truths the measures refer to, (condition, endpoint): log HRs and marginal medians;
    # (condition, estimand, endpoint): the log HR of each estimand, with MC SEs.
    for name in (*TRUTH_VARIABLES, "true_median_treated_mcse", "true_median_control_mcse",
                 "true_log_hr", "true_log_hr_mcse",
                 *(name for names in ESTIMAND_MEDIAN_TRUTHS.values() for name in names)):
        variables[name] = ds[name]
    variables.update(targets)

    analysis_estimand = variables.pop("_analysis_estimand")
    summary = xr.Dataset(variables)
    condition_coords = {
        name: coord for name, coord in ds.coords.items()
        if name not in summary.coords and set(coord.dims) <= {"condition"}
    }
    summary = summary.assign_coords(condition_coords)
    summary = summary.drop_vars([c for c in summary.coords if c == "n_pairs_value"])
    summary = summary.assign_coords(analysis_estimand=analysis_estimand)
    order = ["condition", "method", "estimand", "cohort", "endpoint", "status", "criterion"]
    summary = summary.transpose(*[d for d in order if d in summary.dims])
    source = state.source_attrs if attrs is None else dict(attrs)
    summary.attrs = _summary_attrs(source, alpha, state.balance_threshold, null_tolerance)
    if int(state.options().get("summary_state_legacy_estimands", 0)):
        summary.attrs["estimand_note"] = LEGACY_ESTIMAND_NOTE
    return summary


#: Said of a run whose replicates predate the per-method estimand (psmsim before run format 3).
LEGACY_ESTIMAND_NOTE = ("these replicates predate the per-method estimand: every method is "
                        "measured against the ATT truth, without the truth's Monte Carlo error")


def summarise_blocks(
    blocks: Callable[[], Iterable[xr.Dataset]],
    *,
    truths: xr.Dataset | None = None,
    attrs: Mapping | None = None,
    alpha: float = 0.05,
    balance_threshold: float = 0.1,
    null_tolerance: float = 1e-8,
) -> xr.Dataset:
    """Summarise a run block by block, holding one block at a time.

    Parameters
    ----------
    blocks : callable returning an iterable of xarray.Dataset
        Called twice (two passes); each call yields every block of the run once, in any order
        (e.g. ``lambda: (folder.read_block(key) for key in keys)``).
    truths, attrs :
        As in :meth:`SummaryState.from_block` and :func:`summarise_state`.
    alpha, balance_threshold, null_tolerance :
        As in :func:`summarise_run`.

    Returns
    -------
    xarray.Dataset
        As :func:`summarise_run` on all the blocks combined (equal to rounding).
    """
    states = (SummaryState.from_block(block, truths=truths, alpha=alpha,
                                      balance_threshold=balance_threshold) for block in blocks())
    first = next(states, None)
    if first is None:
        raise ValueError("blocks: none given; a summary needs at least one block")
    state = reduce(SummaryState.merge, states, first)
    centres = state.centres()
    coverage = reduce(CentreCoverageState.merge,
                      (CentreCoverageState.from_block(block, centres) for block in blocks()))
    return summarise_state(state, coverage, null_tolerance=null_tolerance, attrs=attrs)


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

    The whole Dataset is one block of :func:`summarise_blocks`: the measures come from the
    sufficient statistics of :class:`~analysis.performance.accumulate.SummaryState`, so any
    split of the replicates into blocks gives the same summary to rounding (and this one
    block, the whole-array arithmetic exactly).

    References
    ----------
    Morris, White & Crowther (2019) Stat Med 38:2074-2102; Schoenfeld (1983) Biometrics
    39:499-503; Freedman (1982) Stat Med 1:121-129; Austin (2009) Stat Med 28:3083-3107.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: must lie in (0, 1); got {alpha!r}")
    check_replicates(replicates)
    ds = replicates.compute()  # lazily opened or dask-backed files: load once, in a copy
    return summarise_blocks(lambda: [ds], alpha=alpha, balance_threshold=balance_threshold,
                            null_tolerance=null_tolerance)


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
        ``cohort``, ``endpoint`` (empty where the measure has no such dim), ``estimand`` (the
        estimand the row's truth refers to: the method's ``analysis_estimand`` for the
        ``matched`` slot and for rows per method, ``att`` for the crude ``full`` slot, empty
        for rows without a method or a summary without it), ``measure``,
        ``estimate``, ``mcse`` (NaN where the measure has none), ``paired_reference`` (on the
        rows of the paired differences, :data:`~analysis.performance.paired.PAIRED_MEASURES`:
        the method the row's method is compared with, from the summary's ``paired_reference``
        coordinate; empty on every other row). A measure with a category dim is named
        ``name[category]`` (e.g. ``status_rate[no_events]``). Rows follow the Dataset's
        variable order, then the cells in dim order.
    """
    import pandas as pd

    from analysis.performance.paired import PAIRED_MEASURES

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
        if "analysis_estimand" in frame:
            own = frame.pop("analysis_estimand").astype(str)
            frame["estimand"] = own.where(frame["cohort"] != "full", "att") if "cohort" in frame else own
        category_dims = [d for d in variable.dims if d not in CELL_DIMS]
        frame["measure"] = name
        for dim in category_dims:
            frame["measure"] = frame["measure"] + "[" + frame[dim].astype(str) + "]"
        frames.append(frame.drop(columns=category_dims))
    long = pd.concat(frames, ignore_index=True)
    for column in ("method", "cohort", "endpoint", "estimand"):
        if column not in long:
            long[column] = ""
        long[column] = long[column].fillna("")
    paired = long["measure"].isin(PAIRED_MEASURES)
    reference = long["paired_reference"] if "paired_reference" in long else pd.Series("", index=long.index)
    long["paired_reference"] = reference.where(paired, "").fillna("").astype(str)
    conditions = summary[condition_coords].to_dataframe().reset_index() if condition_coords else None
    if conditions is not None:
        long = long.merge(conditions, on="condition", how="left", sort=False)
    return long[[*key_columns, "estimand", "measure", "estimate", "mcse", "paired_reference"]]
