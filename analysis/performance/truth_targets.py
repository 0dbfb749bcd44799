"""Which truth each performance measure refers to, per replicate (a block's accumulation,
:mod:`analysis.performance.accumulate`) and per cell (the summary,
:mod:`analysis.performance.summary`).

A method's adjusted (``matched``) cohort slot is measured against the truth of its own
estimand (``analysis_estimand``: ATT for matching, ATE/ATT for IPTW, ATO for overlap weights,
the conditional truth for the covariate- and PS-adjusted Cox models), the crude ``full`` slot
against the ATT. Log HRs: ``true_log_hr`` (condition, estimand, endpoint). KM medians: the
crude slot against the arms' medians (the treated under treatment, the control arm under
control), the adjusted slot against the estimand population's medians under treatment and
under control (``true_median_under_treatment`` / ``_under_control``). Each truth's Monte Carlo
SE travels with it, to be folded into the bias MCSE (Morris, White & Crowther 2019, Stat Med
38:2074-2102). A run that predates the per-estimand truths (run format < 3) is measured
against the ATT and the arms' medians, as it was summarised then.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.plan.options import ESTIMANDS

_PER_METHOD = ("condition", "replicate", "method")
_PER_TRUTH = ("condition", "endpoint")
_PER_ESTIMAND = ("condition", "estimand", "endpoint")
#: Truths over (condition, endpoint) every run has (docs/results_schema.md).
TRUTH_VARIABLES = ("true_log_hr_conditional", "true_log_hr_marginal", "true_median_treated",
                   "true_median_control")
#: The per-estimand truth table and its MC SE (runs since the per-estimand truths).
ESTIMAND_TRUTHS = ("true_log_hr", "true_log_hr_mcse")
#: MC SEs of the median truths (runs since the per-estimand truths).
MEDIAN_TRUTH_MCSE = ("true_median_treated_mcse", "true_median_control_mcse")
#: Per arm, the median truth of each estimand's population under that arm and its MC SE
#: (condition, estimand, endpoint; runs since the per-estimand truths).
ESTIMAND_MEDIAN_TRUTHS = {
    "treated": ("true_median_under_treatment", "true_median_under_treatment_mcse"),
    "control": ("true_median_under_control", "true_median_under_control_mcse"),
}
_ATT = ESTIMANDS.index("att")


def values_in(dataset: xr.Dataset, name: str, dims: tuple) -> np.ndarray:
    """``dataset[name]`` as NumPy with its dims in the order ``dims`` (a view if already so)."""
    return dataset.variables[name].transpose(*dims).values


def values_at_labels(source, name: str, dims: tuple, labels: dict) -> np.ndarray:
    """``source[name]`` (dims ``dims``) at the given labels of each dim, in their order."""
    values = values_in(source, name, dims)
    for axis, dim in enumerate(dims):
        index = source.indexes[dim].get_indexer(labels[dim])
        if (index < 0).any():
            missing = [label for label, i in zip(labels[dim], index) if i < 0]
            raise ValueError(f"{name}: no {dim} {missing}")
        values = np.take(values, index, axis=axis)
    return values


def cell_truths(block: xr.Dataset, truths: xr.Dataset | None) -> dict[str, np.ndarray]:
    """Each truth, shape (condition, endpoint) in the block's label order."""
    source = block if truths is None else truths
    missing = [name for name in TRUTH_VARIABLES if name not in source]
    if missing:
        raise ValueError(f"truths: missing variables {missing} (see docs/results_schema.md)")
    labels = {dim: block.indexes[dim] for dim in _PER_TRUTH}
    return {name: values_at_labels(source, name, _PER_TRUTH, labels).astype(float)
            for name in TRUTH_VARIABLES}


def estimand_truths(block: xr.Dataset, truths: xr.Dataset | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """The true log-HR per estimand and its MC SE, each shaped (condition, estimand, endpoint)
    in the block's condition and endpoint order and :data:`ESTIMANDS` order, and whether the
    run predates them (then: the ATT row is ``true_log_hr_marginal``, the conditional row
    ``true_log_hr_conditional``, ATE/ATO NaN, the MC SEs NaN)."""
    source = block if truths is None else truths
    labels = {"condition": block.indexes["condition"], "endpoint": block.indexes["endpoint"],
              "estimand": list(ESTIMANDS)}
    if all(name in source for name in ESTIMAND_TRUTHS):
        values, mcse = (values_at_labels(source, name, _PER_ESTIMAND, labels).astype(float)
                        for name in ESTIMAND_TRUTHS)
        return values, mcse, False
    legacy = cell_truths(block, truths)
    shape = (block.sizes["condition"], len(ESTIMANDS), block.sizes["endpoint"])
    values = np.full(shape, np.nan)
    values[:, _ATT] = legacy["true_log_hr_marginal"]
    values[:, ESTIMANDS.index("conditional")] = legacy["true_log_hr_conditional"]
    return values, np.full(shape, np.nan), True


def median_truth_mcse(block: xr.Dataset, truths: xr.Dataset | None) -> dict[str, np.ndarray]:
    """MC SEs of ``true_median_treated`` and ``true_median_control``, (condition, endpoint);
    NaN for a run that predates them."""
    source = block if truths is None else truths
    labels = {dim: block.indexes[dim] for dim in _PER_TRUTH}
    shape = (block.sizes["condition"], block.sizes["endpoint"])
    return {name: (values_at_labels(source, name, _PER_TRUTH, labels).astype(float) if name in source
                   else np.full(shape, np.nan)) for name in MEDIAN_TRUTH_MCSE}


def estimand_median_truths(block: xr.Dataset, truths: xr.Dataset | None, arm_truths: dict,
                            arm_mcse: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per arm, the true median of each estimand's population under that arm and its MC SE,
    each shaped (condition, estimand, endpoint) in :data:`ESTIMANDS` order (NaN for
    ``conditional``: no marginal median). A run that predates them gets the arms' medians
    (``true_median_treated``/``_control``) in every row, the measure it was summarised with."""
    source = block if truths is None else truths
    labels = {"condition": block.indexes["condition"], "endpoint": block.indexes["endpoint"],
              "estimand": list(ESTIMANDS)}
    tables = {}
    for arm, names in ESTIMAND_MEDIAN_TRUTHS.items():
        if all(name in source for name in names):
            tables[arm] = tuple(values_at_labels(source, name, _PER_ESTIMAND, labels).astype(float)
                                for name in names)
        else:
            shape = (block.sizes["condition"], len(ESTIMANDS), block.sizes["endpoint"])
            tables[arm] = tuple(np.broadcast_to(values[:, np.newaxis, :], shape).copy()
                                for values in (arm_truths[f"true_median_{arm}"],
                                               arm_mcse[f"true_median_{arm}_mcse"]))
    return tables


def slot_targets(codes: np.ndarray, table: np.ndarray, crude: np.ndarray,
                  cohorts) -> np.ndarray:
    """Per replicate the truth of each cohort slot, (condition, replicate, method, cohort,
    endpoint): ``table`` (condition, estimand, endpoint) at the method's estimand ``codes``
    (condition, replicate, method) for the ``matched`` (adjusted) slot, NaN where the code is
    -1 (a replicate a condition did not simulate); ``crude`` (condition, endpoint) for the
    ``full`` slot."""
    n_conditions = table.shape[0]
    own = table[np.arange(n_conditions)[:, None, None], np.clip(codes, 0, len(ESTIMANDS) - 1)]
    own = np.where((codes >= 0)[..., None], own, np.nan)  # (condition, replicate, method, endpoint)
    full = np.broadcast_to(crude[:, np.newaxis, np.newaxis, :], own.shape)
    return np.stack([own if cohort == "matched" else full for cohort in cohorts], axis=3)


def replicate_targets(block: xr.Dataset, table: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per replicate the truth the ``*_marginal`` measures refer to, shaped (condition,
    replicate, method, cohort, endpoint): the method's own estimand (``analysis_estimand``)
    for the ``matched`` (adjusted) slot, the ATT for the crude ``full`` slot; NaN where the
    code is -1 (a replicate a condition did not simulate). Also the codes (condition,
    replicate, method) and whether the block lacks them (a run before they were stored: every
    method is then taken as an ATT analysis)."""
    n_conditions, n_replicates = block.sizes["condition"], block.sizes["replicate"]
    legacy = "analysis_estimand" not in block
    if legacy:
        codes = np.zeros((n_conditions, n_replicates, block.sizes["method"]), dtype=np.int64)
    else:
        codes = values_in(block, "analysis_estimand", _PER_METHOD).astype(np.int64)
    return slot_targets(codes, table, table[:, _ATT], block.indexes["cohort"]), codes, legacy


def slot_table(ds: xr.Dataset, table: xr.DataArray, crude: xr.DataArray) -> xr.DataArray:
    """A truth per (condition, method, cohort, endpoint): ``table`` (condition, estimand,
    endpoint) at each method's estimand (the one its replicates record) in the ``matched``
    (adjusted) slot, NaN for a method without replicates; ``crude`` (condition, endpoint) in
    the ``full`` slot."""
    counts = ds.estimand_count.transpose("condition", "method", "estimand").values
    code = counts.argmax(axis=-1)
    values = table.transpose("condition", "estimand", "endpoint").values
    own = np.where((counts.sum(axis=-1) > 0)[..., None],
                   values[np.arange(values.shape[0])[:, None], code], np.nan)
    full = np.broadcast_to(crude.transpose("condition", "endpoint").values[:, None], own.shape)
    slots = np.stack([own if c == "matched" else full for c in ds.cohort.values.tolist()], axis=2)
    dims = ("condition", "method", "cohort", "endpoint")
    return xr.DataArray(slots, dims=dims, coords={d: ds[d].values for d in dims})


def median_targets(ds: xr.Dataset) -> dict[str, xr.DataArray]:
    """The medians each slot's ``median_*_bias`` refers to, with MC SEs:
    ``true_median_treated_target``, ``true_median_control_target`` (+ ``_mcse``; condition,
    method, cohort, endpoint, months). The crude ``full`` slot: the arms' medians (the treated
    under treatment, the control arm under control); the ``matched`` (adjusted) slot: the
    method's estimand population under treatment and under control
    (``true_median_under_treatment``/``_under_control``; ATT: the treated had they received
    control), NaN for the conditional estimand (no marginal median; those methods report
    none)."""
    targets = {}
    for arm, names in ESTIMAND_MEDIAN_TRUTHS.items():
        for name, crude in zip(names, (ds[f"true_median_{arm}"], ds[f"true_median_{arm}_mcse"])):
            suffix = "_mcse" if name.endswith("_mcse") else ""
            targets[f"true_median_{arm}_target{suffix}"] = slot_table(ds, ds[name], crude)
    return targets


def log_hr_targets(ds: xr.Dataset, variables: dict) -> None:
    """Each method's estimand and the truth its ``*_marginal`` measures refer to; the truth's
    MC SE folded into the bias MCSEs: sqrt(MCSE_run² + MCSE_truth²).

    Adds ``true_log_hr_target`` (+ ``_mcse``; condition, method, cohort, endpoint): the
    method's own estimand in the ``matched`` (adjusted) slot, the ATT in the crude ``full``
    slot; and ``_analysis_estimand`` (condition, method; popped as a coordinate): the name
    of the estimand the replicates record ("" where a method has none).
    """
    counts = ds.estimand_count.transpose("condition", "method", "estimand").values
    code = counts.argmax(axis=-1)
    names = np.where(counts.sum(axis=-1) > 0, np.asarray(ESTIMANDS, dtype=object)[code], "")
    target, target_mcse = (
        slot_table(ds, table, table.sel(estimand="att", drop=True))
        for table in (ds.true_log_hr, ds.true_log_hr_mcse))
    variables["true_log_hr_target"] = target
    variables["true_log_hr_target_mcse"] = target_mcse
    conditional_mcse = ds.true_log_hr_mcse.sel(estimand="conditional")
    for name, truth_mcse in (("bias_marginal", target_mcse), ("bias_conditional", conditional_mcse)):
        run_mcse = variables[f"{name}_mcse"]
        truth_mcse = truth_mcse.fillna(0.0)
        variables[f"{name}_mcse"] = xr.where(truth_mcse > 0, np.sqrt(run_mcse**2 + truth_mcse**2),
                                             run_mcse).transpose(*run_mcse.dims)
    variables["_analysis_estimand"] = xr.DataArray(names.astype(str), dims=("condition", "method"),
                                                   coords={d: ds[d].values for d in ("condition", "method")})
