"""The replicate Dataset: from per-block analysis results to labelled arrays.

One place states which variables a run stores and their dims; ``docs/results_schema.md``
documents them. A block's Dataset has dims ``(condition, replicate, method, cohort,
endpoint)`` with ``condition`` of length one; :func:`combine_blocks` concatenates blocks and
conditions and adds the truths and provenance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

from analysis.plan.options import ESTIMANDS
from analysis.status import STATUS_NAMES

COHORTS = ("full", "matched")
ENDPOINTS = ("pfs", "os")

#: Variables over (replicate, cohort, endpoint) and their stored dtype.
ENDPOINT_VARIABLES = {
    "log_hr": "float64",
    "se": "float64",
    "ci_lower": "float64",
    "ci_upper": "float64",
    "p_value": "float64",
    "p_logrank": "float64",
    "median_treated": "float64",
    "median_control": "float64",
    "median_treated_lower": "float64",
    "median_treated_upper": "float64",
    "median_control_lower": "float64",
    "median_control_upper": "float64",
    "events_treated": "int32",
    "events_control": "int32",
    "status": "int8",
}
#: Variables over (replicate, cohort).
COHORT_VARIABLES = {
    "n_treated": "int32",
    "n_control": "int32",
    "max_abs_smd": "float64",
    "p_orr": "float64",
    "p_dcr": "float64",
    "orr_treated": "float64",
    "orr_control": "float64",
    "dcr_treated": "float64",
    "dcr_control": "float64",
}
#: Variables over (replicate,).
REPLICATE_VARIABLES = {"n_pairs": "int32", "ps_status": "int8"}
#: Variables over (replicate, cohort, covariate); the covariates of a result are named by its
#: ``balance_covariates``.
COVARIATE_VARIABLES = {"smd": "float64"}

#: The estimands a method can target (``analysis.plan.options.ESTIMANDS``); the code stored in
#: ``analysis_estimand`` is the index (attribute ``estimand_codes``).
ESTIMAND_NAMES = ESTIMANDS
ESTIMAND_CODES = {name: code for code, name in enumerate(ESTIMAND_NAMES)}
#: Per (replicate, method): the estimand of the method's adjusted (second) cohort slot.
#: Per (replicate, method, cohort): Kish effective sample sizes (NaN where none).
#: Per (replicate, method, cohort, endpoint): bootstrap draws with a finite estimate (-1: the
#: method does not bootstrap).
PLAN_VARIABLES = {"analysis_estimand": "int8", "ess_treated": "float64", "ess_control": "float64",
                  "bootstrap_used": "int32"}

#: Truths over (condition, endpoint), every run has them: the conditional truth, the marginal
#: ATT and the medians of the treated (ATT population) and of the control arm.
TRUTH_VARIABLES = (
    "true_log_hr_conditional",
    "true_log_hr_marginal",
    "true_median_treated",
    "true_median_control",
)
#: Truths over (condition, endpoint) of runs since the per-estimand truths (format 3).
TRUTH_MCSE_VARIABLES = ("true_median_treated_mcse", "true_median_control_mcse")
#: Truths over (condition, estimand, endpoint), ``estimand`` = :data:`ESTIMAND_NAMES` (format 3).
ESTIMAND_TRUTH_VARIABLES = (
    "true_log_hr",
    "true_log_hr_mcse",
    "true_median_under_treatment",
    "true_median_under_treatment_mcse",
    "true_median_under_control",
    "true_median_under_control_mcse",
)


@dataclass(frozen=True)
class BlockParts:
    """A block's Dataset as plain parts: data variables and coordinates as name -> (dims,
    ndarray), and attributes. What a worker hands to :class:`sim.run.store.BlockWriter`: the
    block is encoded straight from these (building the xarray Dataset of a liu2021 block and
    reading it back out cost 1.3 ms of its 1.6 ms of assembly, per 100 replicates)."""

    data_vars: Mapping[str, tuple[tuple[str, ...], np.ndarray]]
    coords: Mapping[str, tuple[tuple[str, ...], np.ndarray]]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of every array, as ``xarray.Dataset.nbytes``."""
        return int(sum(values.nbytes for _, values in (*self.data_vars.values(), *self.coords.values())))

    def to_dataset(self) -> xr.Dataset:
        """The block as an :class:`xarray.Dataset` (:func:`block_dataset`)."""
        import xarray as xr

        return xr.Dataset(dict(self.data_vars), coords=dict(self.coords), attrs=dict(self.attrs))


def block_parts(results: Mapping[str, Any], *, condition: int, start: int) -> BlockParts:
    """The arrays of one block, without building a Dataset (arguments as :func:`block_dataset`)."""
    methods = list(results)
    first = results[methods[0]]
    n_rep = np.asarray(getattr(first, "n_pairs")).shape[0]
    data_vars = {}
    groups = (
        (ENDPOINT_VARIABLES, ("condition", "replicate", "method", "cohort", "endpoint")),
        (COHORT_VARIABLES, ("condition", "replicate", "method", "cohort")),
        (REPLICATE_VARIABLES, ("condition", "replicate", "method")),
    )
    for variables, dims in groups:
        for name, dtype in variables.items():
            stacked = np.stack([np.asarray(getattr(results[m], name)) for m in methods], axis=1)
            data_vars[name] = (dims, stacked[np.newaxis].astype(dtype, copy=False))
    for name, values in _plan_variables(results, methods, n_rep).items():
        dims = ("condition", "replicate", "method", "cohort", "endpoint")[:values.ndim + 1]
        data_vars[name] = (dims, values[np.newaxis].astype(PLAN_VARIABLES[name], copy=False))
    covariates = list(dict.fromkeys(c for m in methods for c in results[m].balance_covariates))
    for name, dtype in COVARIATE_VARIABLES.items():
        stacked = np.full((n_rep, len(methods), len(COHORTS), len(covariates)), np.nan)
        for j, method in enumerate(methods):
            columns = [covariates.index(c) for c in results[method].balance_covariates]
            stacked[:, j][..., columns] = np.asarray(getattr(results[method], name))
        data_vars[name] = (("condition", "replicate", "method", "cohort", "covariate"),
                           stacked[np.newaxis].astype(dtype, copy=False))
    coords = {
        "condition": [condition],
        "replicate": np.arange(start, start + n_rep),
        "method": methods,
        "cohort": list(COHORTS),
        "endpoint": list(ENDPOINTS),
        "covariate": covariates,
    }
    coords = {name: ((name,), np.asarray(values)) for name, values in coords.items()}  # as xarray converts them
    return BlockParts(data_vars, coords)


def block_dataset(results: Mapping[str, Any], *, condition: int, start: int) -> xr.Dataset:
    """Labelled arrays of one block.

    Parameters
    ----------
    results : mapping method name → plan result; each result has, as attributes, every
        variable of :data:`ENDPOINT_VARIABLES` shaped (replicate, cohort, endpoint), of
        :data:`COHORT_VARIABLES` shaped (replicate, cohort) and of
        :data:`REPLICATE_VARIABLES` shaped (replicate,), in the order of :data:`COHORTS` and
        :data:`ENDPOINTS`; and of :data:`COVARIATE_VARIABLES` shaped (replicate, cohort,
        covariate) over its ``balance_covariates``. The ``covariate`` coordinate is the union
        of the methods' covariates in first-seen order; a covariate outside a method's PS
        model is NaN for that method.
    condition : grid-point index of the block.
    start : index of the block's first replicate within its condition.
    """
    return block_parts(results, condition=condition, start=start).to_dataset()


def _plan_variables(results: Mapping[str, Any], methods: list, n_rep: int) -> dict[str, np.ndarray]:
    """:data:`PLAN_VARIABLES` of the methods' results, stacked on axis 1 (method): a result
    without ``estimand`` is an ATT analysis, without ESS NaN, without bootstrap -1."""
    shapes = {"ess_treated": (n_rep, len(COHORTS)), "ess_control": (n_rep, len(COHORTS)),
              "bootstrap_used": (n_rep, len(COHORTS), len(ENDPOINTS))}
    out = {"analysis_estimand": np.stack(
        [np.full(n_rep, ESTIMAND_CODES[getattr(results[m], "estimand", "att")]) for m in methods], axis=1)}
    for name, shape in shapes.items():
        missing = -1 if name == "bootstrap_used" else np.nan
        out[name] = np.stack([np.full(shape, missing) if getattr(results[m], name, None) is None
                              else np.asarray(getattr(results[m], name)) for m in methods], axis=1)
    return out


#: The value of an integer variable at a replicate a condition did not simulate.
NOT_SIMULATED = -1


def _padded(dataset: xr.Dataset, replicates: int) -> xr.Dataset:
    """``dataset`` (one condition) over replicates 0 … ``replicates`` − 1: the replicates it
    lacks are NaN (floats) or :data:`NOT_SIMULATED` (integers); ``n_replicates`` on
    ``condition`` says how many it has."""
    fill = {name: (NOT_SIMULATED if np.issubdtype(variable.dtype, np.integer) else np.nan)
            for name, variable in dataset.data_vars.items()}
    count = dataset.sizes["replicate"]
    padded = dataset.reindex(replicate=np.arange(replicates), fill_value=fill)
    return padded.assign_coords(n_replicates=("condition", [count]))


def combine_blocks(
    blocks: Sequence[xr.Dataset],
    *,
    truths: Sequence[Mapping[str, Sequence[float]]],
    grid: Sequence[Mapping[str, Any]],
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    """All blocks of a run as one Dataset.

    Parameters
    ----------
    blocks : block Datasets (any order); sorted by (condition, replicate) here. Conditions
        may have different replicate counts (``psmsim sweep --mcse-target``): the shorter are
        padded with NaN (floats) or -1 (integers) to the longest, and the coordinate
        ``n_replicates`` on ``condition`` holds each one's count.
    truths : per condition, a mapping of each name in :data:`TRUTH_VARIABLES` to its
        (pfs, os) values.
    grid : per condition, the swept fields (dotted scenario paths → value); becomes
        coordinate variables on ``condition``.
    attrs : provenance attributes (see the schema); ``created_at`` and ``status_codes`` are
        added.
    """
    import xarray as xr

    by_condition: dict[int, list[xr.Dataset]] = {}
    for block in blocks:
        by_condition.setdefault(int(block.condition.values[0]), []).append(block)
    per_condition = []
    for condition in sorted(by_condition):
        parts = sorted(by_condition[condition], key=lambda b: int(b.replicate.values[0]))
        per_condition.append(xr.concat(parts, dim="replicate", join="exact"))
    longest = max(part.sizes["replicate"] for part in per_condition)
    if any(part.sizes["replicate"] < longest for part in per_condition):
        per_condition = [_padded(part, longest) for part in per_condition]
    dataset = xr.concat(per_condition, dim="condition", join="exact")
    return annotate_replicates(dataset, truths=truths, grid=grid, attrs=attrs)


def annotate_replicates(
    dataset: xr.Dataset,
    *,
    truths: Sequence[Mapping[str, Sequence[float]]],
    grid: Sequence[Mapping[str, Any]],
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    """``dataset`` (dims ``condition``, ``replicate``, …) with the truths as variables on
    (condition, endpoint) and, where the truths have them, (condition, estimand, endpoint)
    (:data:`ESTIMAND_TRUTH_VARIABLES`), the swept fields as coordinates on ``condition`` and the provenance
    attributes (``grid``, ``status_codes`` and ``created_at`` added); arguments as
    :func:`combine_blocks`."""
    for name in TRUTH_VARIABLES:
        values = np.array([[float(v) for v in truth[name]] for truth in truths])
        dataset[name] = (("condition", "endpoint"), values)
    for names, dims in ((TRUTH_MCSE_VARIABLES, ("condition", "endpoint")),
                        (ESTIMAND_TRUTH_VARIABLES, ("condition", "estimand", "endpoint"))):
        for name in names:
            if all(name in truth for truth in truths):
                dataset[name] = (dims, np.array([np.asarray(truth[name], dtype=float) for truth in truths]))
    if "true_log_hr" in dataset:
        dataset = dataset.assign_coords(estimand=list(ESTIMAND_NAMES))
    for field in sorted({key for point in grid for key in point}):
        values = [point.get(field) for point in grid]
        dataset = dataset.assign_coords({field: ("condition", np.asarray(values))})
    full_attrs = dict(attrs)
    full_attrs["grid"] = json.dumps(list(grid), sort_keys=True)
    full_attrs["status_codes"] = json.dumps({str(k): v for k, v in STATUS_NAMES.items()})
    full_attrs["estimand_codes"] = json.dumps({str(k): v for k, v in enumerate(ESTIMAND_NAMES)})
    full_attrs["created_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    dataset.attrs = full_attrs
    return dataset
