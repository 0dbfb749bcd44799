"""The run summary's sufficient statistics, accumulated block by block and merged.

:class:`SummaryState` holds, per cell, everything
:func:`analysis.performance.summary.summarise_state` needs to compute every measure of the
summary and its Monte Carlo SE:

- counts of hits and of replicates used, for every proportion (log-rank and Cox rejections,
  coverage of both truths, status and PS-status codes, medians not reached, balance, each
  criterion of the paper's pattern and all four together);
- :class:`~analysis.performance.moments.Moments` (count, mean, sum of squared deviations) of
  every averaged quantity: the log-HR estimates ``θ̂_i`` (EmpSE), their errors ``θ̂_i - θ``,
  relative errors, squared errors (MSE and its MCSE, which needs the spread of the squared
  errors) and absolute errors against both truths, the model variances ``s_i²`` (ModSE; with
  the estimates' Moments, the relative error in ModSE), the KM medians and their errors, the
  events and the allocation of the log-rank-tested replicates (Schoenfeld and Freedman power)
  and the matched-pair count;
- how often each matched-pair count occurs, for its exact minimum, quartiles and maximum;
- the truths, the condition coordinates (e.g. ``hazard_ratio``) and the run's attributes.

Its size depends on the cells, never on the number of replicates. Merging and storage are
those of :class:`~analysis.performance.mergeable.MergeableState`: counts add, Moments combine
by Chan et al.'s pairwise update, truths must agree; states of the same or of different
conditions merge in any order or grouping (counts exactly, Moments to rounding); a state is
an :class:`xarray.Dataset` (:meth:`~SummaryState.to_dataset`) that a worker can return or
netCDF can store next to its block and :meth:`~SummaryState.from_dataset` reads back — no
pickle.

Bias-eliminated coverage is the one measure that is not a function of per-block statistics:
it counts the CIs containing the *final* mean estimate θ̄, which no block knows, and no
summary of fixed size can say exactly how many of n intervals contain a point chosen
afterwards (that needs the interval limits themselves). It therefore takes a second pass:
once every block's state is merged, :meth:`SummaryState.centres` gives θ̄ per cell and
:class:`CentreCoverageState` counts, block by block again, the intervals containing it (a
count per cell; also mergeable). :func:`analysis.performance.summary.summarise_blocks` runs
both passes over any sequence of blocks.

Which replicates enter each measure follows ``summarise_run`` (failed analyses are skipped,
never imputed; see its Notes). A single block reproduces the whole-array arithmetic exactly.

References
----------
Morris TP, White IR, Crowther MJ (2019). Using simulation studies to evaluate statistical
methods. Stat Med 38:2074-2102 (Table 6: what each MCSE needs). Chan TF, Golub GH, LeVeque RJ
(1983). Algorithms for computing the sample variance: analysis and recommendations. Am Stat
37:242-247 (the merge).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis import status as status_codes
from analysis.performance.mergeable import MergeableState
from analysis.plan.options import ESTIMANDS
from analysis.performance.moments import moments_of
from analysis.performance.truth_targets import (
    ESTIMAND_MEDIAN_TRUTHS,
    TRUTH_VARIABLES,
    cell_truths,
    estimand_median_truths,
    estimand_truths,
    median_truth_mcse,
    replicate_targets,
    slot_targets,
    values_at_labels,
    values_in,
)

__all__ = ["PAPER_PATTERN_CRITERIA", "INTERVAL_VARIABLES", "SummaryState", "CentreCoverageState",
           "check_replicates"]

#: The paper's pattern of results in the matched cohort (Liu et al. 2021): criterion name ->
#: (variable, endpoint or None, True if the criterion is "p < alpha", False if "p >= alpha").
PAPER_PATTERN_CRITERIA = {
    "pfs_logrank_significant": ("p_logrank", "pfs", True),
    "os_logrank_not_significant": ("p_logrank", "os", False),
    "orr_significant": ("p_orr", None, True),
    "dcr_not_significant": ("p_dcr", None, False),
}

CELL_DIMS = ("condition", "method", "cohort", "endpoint")
_PER_ANALYSIS = ("condition", "replicate", "method", "cohort", "endpoint")
_PER_COHORT = ("condition", "replicate", "method", "cohort")
_PER_METHOD = ("condition", "replicate", "method")
_PER_TRUTH = ("condition", "endpoint")
#: Variables a block must hold, with their dims (docs/results_schema.md).
_BLOCK_VARIABLES = {
    **dict.fromkeys(
        ("log_hr", "se", "ci_lower", "ci_upper", "p_value", "p_logrank", "median_treated",
         "median_control", "events_treated", "events_control", "status"), _PER_ANALYSIS),
    **dict.fromkeys(("n_treated", "n_control", "max_abs_smd", "p_orr", "p_dcr"), _PER_COHORT),
    **dict.fromkeys(("n_pairs", "ps_status"), _PER_METHOD),
}
#: What the second pass (:class:`CentreCoverageState`) reads of a block: a reader may hand it
#: these variables alone.
INTERVAL_VARIABLES = ("log_hr", "se", "ci_lower", "ci_upper")
_METHOD_CELL = ("condition", "method")
_MOMENT_PARTS = ("count", "mean", "m2")
_PER_ESTIMAND = ("condition", "estimand", "endpoint")


def check_replicates(dataset: xr.Dataset, *, with_truths: bool = True, variables=None) -> None:
    """Refuse a replicates Dataset or block that does not follow ``docs/results_schema.md``
    (``variables``: check only these of the block variables, e.g. :data:`INTERVAL_VARIABLES`)."""
    required = dict(_BLOCK_VARIABLES) if variables is None else {name: _BLOCK_VARIABLES[name] for name in variables}
    if with_truths:
        required.update(dict.fromkeys(TRUTH_VARIABLES, _PER_TRUTH))
    missing = [name for name in required if name not in dataset]
    if missing:
        raise ValueError(f"replicates: missing variables {missing} (see docs/results_schema.md)")
    for name, dims in required.items():
        if set(dataset.variables[name].dims) != set(dims):
            raise ValueError(
                f"replicates.{name}: dims {dataset.variables[name].dims}, expected {dims} "
                "(see docs/results_schema.md)"
            )
    for dim, labels in (("cohort", ("matched",)), ("endpoint", ("pfs", "os"))):
        present = set(dataset[dim].values.tolist())
        if not set(labels) <= present:
            raise ValueError(f"replicates.{dim}: needs {list(labels)}, has {sorted(present)}")


class _Accumulator:
    """Collects one block's variables; arrays are NumPy, replicate axis 1 (as in the schema)."""

    def __init__(self):
        self.variables: dict[str, tuple] = {}

    def moments(self, name: str, values: np.ndarray, dims: tuple, used: np.ndarray | None = None):
        """Moments over replicates of ``values`` where ``used`` (default: where finite).

        The replicate axis is moved last as a view, the layout the whole-array measures
        always reduced, so one block reproduces them bit for bit.
        """
        values = np.moveaxis(values, 1, -1)
        used = np.isfinite(values) if used is None else np.moveaxis(used, 1, -1)
        moments = moments_of(values, used)
        for part in _MOMENT_PARTS:
            self.variables[f"{name}_{part}"] = (dims, getattr(moments, part), part)

    def count(self, name: str, hits: np.ndarray, dims: tuple, used: np.ndarray | None = None):
        """Replicates (axis 1) where ``hits`` (and ``used``)."""
        hits = hits if used is None else hits & used
        self.variables[name] = (dims, hits.sum(axis=1, dtype=np.int64), "count")


def _condition_coords(block: xr.Dataset, truths: xr.Dataset | None) -> dict:
    """Coordinates on ``condition`` (or scalar) of the block, then of the truths (at its conditions)."""
    coords = {}
    labels = {"condition": block.indexes["condition"]}
    for source in (block, truths if truths is not None else xr.Dataset()):
        for name in source.coords:
            dims = source.variables[name].dims
            if name in source.dims or name in coords or not set(dims) <= {"condition"}:
                continue
            values = values_at_labels(source, name, dims, labels) if dims else values_in(source, name, ())
            coords[name] = (dims, values)
    return coords


def _options(alpha: float, balance_threshold: float) -> dict:
    return {"summary_state_alpha": float(alpha),
            "summary_state_balance_threshold": float(balance_threshold)}


def _interval_used(block: xr.Dataset):
    """Where ``log_hr``, ``se``, ``ci_lower``, ``ci_upper`` are all finite, and the four, NaN elsewhere."""
    log_hr, se, lower, upper = (values_in(block, name, _PER_ANALYSIS)
                                for name in ("log_hr", "se", "ci_lower", "ci_upper"))
    used = np.isfinite(log_hr) & np.isfinite(se) & np.isfinite(lower) & np.isfinite(upper)
    return used, *(np.where(used, values, np.nan) for values in (log_hr, se, lower, upper))


class SummaryState(MergeableState):
    """Sufficient statistics of the run summary over some blocks of replicates (see module).

    Build one per block with :meth:`from_block`, combine with :meth:`merge`, summarise with
    :func:`analysis.performance.summary.summarise_state` (with the
    :class:`CentreCoverageState` of the second pass).
    """

    KIND = "summary"

    @property
    def alpha(self) -> float:
        return float(self.options()["summary_state_alpha"])

    @property
    def balance_threshold(self) -> float:
        return float(self.options()["summary_state_balance_threshold"])

    def centres(self) -> xr.DataArray:
        """θ̄: the mean log-HR estimate per cell, dims (condition, method, cohort, endpoint)."""
        dims, values, _ = self._variables["log_hr_mean"]
        return xr.DataArray(values.copy(), dims=dims, coords={d: self._coords[d] for d in dims},
                            name="centre")

    @classmethod
    def from_block(
        cls,
        block: xr.Dataset,
        *,
        truths: xr.Dataset | None = None,
        alpha: float = 0.05,
        balance_threshold: float = 0.1,
    ) -> "SummaryState":
        """The state of one block of replicates.

        Parameters
        ----------
        block : xarray.Dataset
            Replicates in the schema of ``docs/results_schema.md`` (any conditions and number
            of replicates; a whole run is one block). Its condition coordinates and attributes
            are carried into the summary.
        truths : xarray.Dataset, optional
            The truth variables (dims ``condition``, ``endpoint``; any superset of the block's
            conditions) when the block does not hold them, as blocks written by the runner do;
            its condition coordinates (e.g. ``hazard_ratio``) are carried too.
        alpha : float, in (0, 1)
            Significance level of power and the paper's pattern.
        balance_threshold : float
            A cohort counts as balanced when ``max_abs_smd < balance_threshold``.

        Returns
        -------
        SummaryState
        """
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha: must lie in (0, 1); got {alpha!r}")
        check_replicates(block, with_truths=truths is None)
        truth = cell_truths(block, truths)
        estimand_table, estimand_mcse, legacy_truths = estimand_truths(block, truths)
        target, estimand_codes, legacy_codes = replicate_targets(block, estimand_table)
        cell, cohort_cell = CELL_DIMS, CELL_DIMS[:3]
        out = _Accumulator()

        p_logrank = values_in(block, "p_logrank", _PER_ANALYSIS)
        p_cox = values_in(block, "p_value", _PER_ANALYSIS)
        for test, p_value in (("logrank", p_logrank), ("cox", p_cox)):
            tested = np.isfinite(p_value)
            out.count(f"{test}_tested", tested, cell)
            out.count(f"{test}_rejections", p_value < alpha, cell, tested)

        # Log-HR estimates, on the replicates where estimate, SE and CI are all finite.
        used, log_hr, se, lower, upper = _interval_used(block)
        out.moments("log_hr", log_hr, cell)
        out.moments("model_variance", se**2, cell, np.isfinite(se))
        interval = np.isfinite(lower) & np.isfinite(upper)
        for name in ("conditional", "marginal"):
            theta = (target if name == "marginal"
                     else truth[f"true_log_hr_{name}"][:, np.newaxis, np.newaxis, np.newaxis, :])
            error = log_hr - theta
            with np.errstate(invalid="ignore", divide="ignore"):
                relative = np.where(theta == 0.0, np.nan, error / theta)
            finite = np.isfinite(log_hr)
            out.moments(f"error_{name}", error, cell, finite)
            out.moments(f"relative_error_{name}", relative, cell, finite)
            out.moments(f"squared_error_{name}", error**2, cell, finite)
            out.moments(f"absolute_error_{name}", np.abs(error), cell, finite)
            out.count(f"covering_{name}", (lower <= theta) & (theta <= upper), cell, interval)

        status = values_in(block, "status", _PER_ANALYSIS)
        ps_status = values_in(block, "ps_status", _PER_METHOD)
        for name, codes, dims in (("status_count", status, (*cell, "status")),
                                  ("ps_status_count", ps_status, (*_METHOD_CELL, "status"))):
            hits = np.stack([codes == code for code in status_codes.STATUS_NAMES], axis=-1)
            out.count(name, hits, dims)

        analysed = status == status_codes.OK
        out.count("analysed", analysed, cell)
        # Medians against the slot's own population: the arms' medians (treated under
        # treatment, control arm under control) in the crude slot; in the adjusted slot the
        # method's estimand population under each arm (ATT: the treated under treatment and
        # had they received control).
        median_mcse = median_truth_mcse(block, truths)
        median_tables = estimand_median_truths(block, truths, truth, median_mcse)
        for arm in ("treated", "control"):
            median = values_in(block, f"median_{arm}", _PER_ANALYSIS)
            out.moments(f"median_{arm}", median, cell)
            true_median = slot_targets(estimand_codes, median_tables[arm][0],
                                        truth[f"true_median_{arm}"], block.indexes["cohort"])
            error = median - true_median
            out.moments(f"median_{arm}_error", error, cell, np.isfinite(error))
            out.count(f"median_{arm}_not_reached", np.isnan(median), cell, analysed)

        tested = np.isfinite(p_logrank)
        events = (values_in(block, "events_treated", _PER_ANALYSIS).astype(float)
                  + values_in(block, "events_control", _PER_ANALYSIS).astype(float))
        out.moments("events", np.where(tested, events, np.nan), cell)
        n_treated = values_in(block, "n_treated", _PER_COHORT)
        arm_total = n_treated.astype(float) + values_in(block, "n_control", _PER_COHORT).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            allocation = (n_treated / arm_total)[..., np.newaxis]
        allocated = tested & (arm_total > 0)[..., np.newaxis]
        out.moments("allocation", np.where(allocated, allocation, np.nan), cell)

        smd = values_in(block, "max_abs_smd", _PER_COHORT)
        out.count("balance_measured", np.isfinite(smd), cohort_cell)
        out.count("balanced", smd < balance_threshold, cohort_cell, np.isfinite(smd))
        n_pairs = values_in(block, "n_pairs", _PER_METHOD)
        out.moments("n_pairs", np.where(n_pairs >= 0, n_pairs.astype(float), np.nan), _METHOD_CELL)
        pair_values, frequency = _frequencies(n_pairs)
        out.variables["n_pairs_frequency"] = ((*_METHOD_CELL, "n_pairs_value"), frequency, "count")
        criteria = _paper_criteria(block, alpha)
        out.count("paper_criterion_met", criteria, (*_METHOD_CELL, "criterion"))
        out.count("paper_pattern_met", criteria.all(axis=-1), _METHOD_CELL)
        n_conditions, n_replicates = block.sizes["condition"], block.sizes["replicate"]
        out.variables["replicate_count"] = (
            ("condition",), np.full(n_conditions, n_replicates, dtype=np.int64), "count")
        for name, values in truth.items():
            out.variables[name] = (_PER_TRUTH, values, "constant")
        for name, values in median_mcse.items():
            out.variables[name] = (_PER_TRUTH, values, "constant")
        for arm, names in ESTIMAND_MEDIAN_TRUTHS.items():
            for name, values in zip(names, median_tables[arm]):
                out.variables[name] = (_PER_ESTIMAND, values, "constant")
        out.variables["true_log_hr"] = (_PER_ESTIMAND, estimand_table, "constant")
        out.variables["true_log_hr_mcse"] = (_PER_ESTIMAND, estimand_mcse, "constant")
        hits = np.stack([estimand_codes == code for code in range(len(ESTIMANDS))], axis=-1)
        out.count("estimand_count", hits, (*_METHOD_CELL, "estimand"))

        coords = {dim: block.indexes[dim].values for dim in CELL_DIMS}
        coords.update(estimand=np.array(ESTIMANDS),
                      status=np.array(list(status_codes.STATUS_NAMES.values())),
                      criterion=np.array(list(PAPER_PATTERN_CRITERIA)), n_pairs_value=pair_values)
        attrs = {**block.attrs, **_options(alpha, balance_threshold),
                 "summary_state_legacy_estimands": int(legacy_truths or legacy_codes)}
        return cls(out.variables, coords, _condition_coords(block, truths), attrs)


def _frequencies(n_pairs: np.ndarray):
    """The distinct non-negative pair counts and how often each occurs, per (condition, method)."""
    by_cell = np.moveaxis(n_pairs, 1, -1)  # (condition, method, replicate)
    valid = by_cell >= 0
    values, index = np.unique(by_cell[valid], return_inverse=True)
    n_cells = int(np.prod(by_cell.shape[:-1]))
    cell = np.broadcast_to(np.arange(n_cells).reshape(*by_cell.shape[:-1], 1), by_cell.shape)[valid]
    frequency = np.bincount(cell * values.size + index.astype(np.intp),
                            minlength=n_cells * values.size)
    frequency = frequency.reshape(*by_cell.shape[:-1], values.size).astype(np.int64)
    return values.astype(float), frequency


def _paper_criteria(block: xr.Dataset, alpha: float) -> np.ndarray:
    """Whether each replicate meets each criterion of the paper's matched-cohort pattern.

    Shape (condition, replicate, method, criterion); a NaN p-value fails its criterion.
    """
    matched = block.indexes["cohort"].get_loc("matched")
    criteria = []
    for variable, endpoint, significant in PAPER_PATTERN_CRITERIA.values():
        if endpoint is None:
            p_value = values_in(block, variable, _PER_COHORT)[..., matched]
        else:
            at = block.indexes["endpoint"].get_loc(endpoint)
            p_value = values_in(block, variable, _PER_ANALYSIS)[..., matched, at]
        criteria.append(p_value < alpha if significant else p_value >= alpha)
    return np.stack(criteria, axis=-1)


class CentreCoverageState(MergeableState):
    """Second pass: intervals containing given centres θ̄ (bias-eliminated coverage), per cell.

    Variables (dims condition, method, cohort, endpoint): ``centre`` (the θ̄ counted against),
    ``centre_covering`` (replicates whose CI contains it) and ``interval_count`` (replicates with
    finite ``log_hr``, ``se``, ``ci_lower``, ``ci_upper``; equals the first pass's ``n_used``).
    """

    KIND = "centre_coverage"

    @classmethod
    def from_block(cls, block: xr.Dataset, centres: xr.DataArray) -> "CentreCoverageState":
        """Count, in ``block``, the CIs containing ``centres`` (:meth:`SummaryState.centres`);
        ``block`` needs only :data:`INTERVAL_VARIABLES`."""
        check_replicates(block, with_truths=False, variables=INTERVAL_VARIABLES)
        coords = {dim: block.indexes[dim].values for dim in CELL_DIMS}
        centre = values_at_labels(centres.to_dataset(name="centre"), "centre", CELL_DIMS, coords)
        centre = centre.astype(float)
        used, _, _, lower, upper = _interval_used(block)
        at = centre[:, np.newaxis]
        out = _Accumulator()
        out.variables["centre"] = (CELL_DIMS, centre, "constant")
        out.count("centre_covering", (lower <= at) & (at <= upper), CELL_DIMS, used)
        out.count("interval_count", used, CELL_DIMS)
        return cls(out.variables, coords, {}, {})
