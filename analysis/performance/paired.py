"""Paired comparisons between analysis methods applied to the same cohorts.

When every method analyses the same replicate cohorts, the difference of a performance
measure between two methods is best estimated replicate by replicate: its Monte Carlo SE then
uses the SD of the per-replicate differences, which is far smaller than
``sqrt(MCSE_A² + MCSE_B²)`` when the methods' estimates are correlated (Morris, White &
Crowther 2019, §5.2 and Table 6: "the Monte Carlo SE of a difference ... should account for the
correlation induced by using the same simulated data sets").

Each method M is compared with its own reference R (one method for all, or a reference per
method: e.g. a named method against the preset it modifies, so the difference is exactly the
effect of its options). Over replicates where both are finite:

* ``bias_difference`` = mean(θ̂_M − θ̂_R) (the difference of their biases, whatever the truth),
  MCSE = sd(θ̂_M − θ̂_R) / sqrt(n);
* ``power_difference`` = mean(1[p_M < α] − 1[p_R < α]) (log-rank), MCSE = sd of that
  difference / sqrt(n).

References
----------
Morris TP, White IR, Crowther MJ (2019). Using simulation studies to evaluate statistical
methods. Stat Med 38:2074-2102.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from analysis.performance.moments import Moments, merge_moments, moments_of

__all__ = ["PAIRED_MEASURES", "PairedState", "paired_differences", "paired_difference_state",
           "merge_paired_states", "paired_from_state"]

#: The per-replicate differences a paired comparison averages.
_DIFFERENCES = ("bias_difference", "power_difference")
#: The variables a paired comparison adds to a summary (each against ``paired_reference``).
PAIRED_MEASURES = tuple(name for d in _DIFFERENCES for name in (d, f"{d}_mcse", f"n_used_{d}"))


def _references(methods: list[str], reference: str | Mapping[str, str]) -> dict[str, str]:
    references = ({m: reference for m in methods} if isinstance(reference, str)
                  else {m: str(reference.get(m, m)) for m in methods})
    unknown = sorted({r for r in references.values() if r not in methods})
    if unknown:
        raise ValueError(f"reference method(s) {', '.join(unknown)} not among {', '.join(methods)}")
    return references


class PairedState:
    """The sufficient statistics of :func:`paired_difference_state`, as NumPy arrays: what a
    run merges group after group (building and merging the Datasets cost ~13 ms a
    10,000-replicate liu2021 group, these ~2). :meth:`to_dataset` is the Dataset
    :func:`paired_difference_state` and :func:`merge_paired_states` give, to the last bit: the
    differences are the same NumPy operations on the same arrays, laid out alike (an
    indexing as xarray's ``sel`` indexes), so their reductions add in the same order.

    Attributes
    ----------
    dims : the state's dims (the replicates' without ``replicate``, in their order).
    coords : dim -> labels.
    references : the method each method is compared with, in ``coords["method"]`` order.
    attrs : ``reference_method`` when one method is every method's reference.
    moments : difference name -> :class:`~analysis.performance.moments.Moments`, shape ``dims``.
    """

    def __init__(self, dims, coords, references, attrs, moments):
        self.dims, self.coords, self.references = tuple(dims), dict(coords), np.asarray(references)
        self.attrs, self.moments = dict(attrs), dict(moments)

    @classmethod
    def of(cls, replicates: xr.Dataset, *, reference: str | Mapping[str, str], alpha: float = 0.05) -> "PairedState":
        """The state of some replicates (:func:`paired_difference_state`)."""
        methods = [str(m) for m in replicates.method.values]
        references = _references(methods, reference)
        moments = {}
        log_hr, p_logrank = replicates.variables["log_hr"], replicates.variables["p_logrank"]
        for name, variable in (("bias_difference", log_hr), ("power_difference", p_logrank)):
            dims, values = variable.dims, variable.values
            axis = dims.index("method")
            # the reference's values: the indexing xarray's sel makes (the same layout)
            rows = (slice(None),) * axis + (np.array([methods.index(references[m]) for m in methods]),)
            if name == "bias_difference":
                difference = values - values[rows]
            else:
                p_ref = values[rows]
                both = np.isfinite(values) & np.isfinite(p_ref)
                difference = np.where(both, (values < alpha).astype(float) - (p_ref < alpha).astype(float), np.nan)
            difference = np.moveaxis(difference, dims.index("replicate"), -1)  # as transpose(..., "replicate")
            found = moments_of(difference, np.isfinite(difference))
            if dims != log_hr.dims:  # the state's dims: log_hr's
                order = [d for d in dims if d != "replicate"]
                order = [order.index(d) for d in log_hr.dims if d != "replicate"]
                found = Moments(*(np.transpose(part, order) for part in (found.count, found.mean, found.m2)))
            moments[name] = found
        dims = log_hr.dims
        state_dims = tuple(d for d in dims if d != "replicate")
        coords = {dim: replicates[dim].values for dim in state_dims}
        attrs = {"reference_method": reference} if isinstance(reference, str) else {}
        return cls(state_dims, coords, [references[m] for m in methods], attrs, moments)

    @classmethod
    def from_dataset(cls, state: xr.Dataset) -> "PairedState":
        """The state a :func:`paired_difference_state` Dataset holds."""
        dims = state[f"{_DIFFERENCES[0]}_count"].dims
        state = state.transpose(*dims)
        moments = {name: Moments(count=state[f"{name}_count"].values, mean=state[f"{name}_mean"].values,
                                 m2=state[f"{name}_m2"].values) for name in _DIFFERENCES}
        return cls(dims, {dim: state[dim].values for dim in dims}, state.paired_reference.values,
                   state.attrs, moments)

    def merge(self, other: "PairedState") -> "PairedState":
        """The state of both states' (disjoint) replicates (:func:`merge_paired_states`)."""
        if not np.array_equal(self.references, other.references):
            raise ValueError("paired states compare methods with different references; they cannot be merged")
        if other.dims != self.dims:
            order = [other.dims.index(d) for d in self.dims]
            other = PairedState(self.dims, other.coords, other.references, other.attrs,
                                {name: Moments(*(np.transpose(part, order) for part in (m.count, m.mean, m.m2)))
                                 for name, m in other.moments.items()})
        coords = dict(self.coords)
        first, second = self.moments, other.moments
        if "condition" in self.dims:
            conditions = np.union1d(self.coords["condition"], other.coords["condition"])
            coords["condition"] = conditions
            axis = self.dims.index("condition")
            first, second = (_on_conditions(state, conditions, axis) for state in (self, other))
        moments = {name: merge_moments(first[name], second[name]) for name in _DIFFERENCES}
        return PairedState(self.dims, coords, self.references, self.attrs, moments)

    def to_dataset(self) -> xr.Dataset:
        """The state as :func:`paired_difference_state` gives it."""
        variables = {}
        for name in _DIFFERENCES:
            moments = self.moments[name]
            variables[f"{name}_count"] = (self.dims, moments.count)
            variables[f"{name}_mean"] = (self.dims, moments.mean)
            variables[f"{name}_m2"] = (self.dims, moments.m2)
        state = xr.Dataset(variables, coords=self.coords)
        state = state.assign_coords(paired_reference=("method", self.references))
        state.attrs.update(self.attrs)
        return state


def _on_conditions(state: PairedState, conditions: np.ndarray, axis: int) -> dict[str, Moments]:
    """``state``'s moments on ``conditions`` (a superset of its own): an empty cell (count 0,
    mean NaN, M2 0) on a condition it lacks, as ``reindex`` fills it."""
    own = state.coords["condition"]
    if np.array_equal(own, conditions):
        return state.moments
    at = np.searchsorted(conditions, own)

    def placed(values, fill):
        shape = list(values.shape)
        shape[axis] = conditions.size
        out = np.full(shape, fill, dtype=values.dtype)
        out[(slice(None),) * axis + (at,)] = values
        return out

    return {name: Moments(placed(m.count, 0), placed(m.mean, np.nan), placed(m.m2, 0.0))
            for name, m in state.moments.items()}


def paired_difference_state(replicates: xr.Dataset, *, reference: str | Mapping[str, str],
                            alpha: float = 0.05) -> xr.Dataset:
    """Sufficient statistics of the paired differences over some replicates (a block).

    For each difference of :func:`paired_differences` (``bias_difference``: θ̂_M − θ̂_R;
    ``power_difference``: 1[p_M < α] − 1[p_R < α]) over the replicates where both are finite:
    ``<name>_count``, ``<name>_mean`` and ``<name>_m2`` (:class:`analysis.performance.moments.Moments`),
    over the replicates Dataset's dims without ``replicate``; coordinate ``paired_reference``.
    Merge states of disjoint replicates with :func:`merge_paired_states`; finish with
    :func:`paired_from_state`. Arguments as :func:`paired_differences`. (:class:`PairedState`
    holds the same statistics without a Dataset.)
    """
    return PairedState.of(replicates, reference=reference, alpha=alpha).to_dataset()


def merge_paired_states(first: xr.Dataset, second: xr.Dataset) -> xr.Dataset:
    """The state of two disjoint sets of replicates together: moments merged (Chan, Golub &
    LeVeque 1983) where both hold a condition, the other's cells where one lacks it."""
    return PairedState.from_dataset(first).merge(PairedState.from_dataset(second)).to_dataset()


def paired_from_state(state: xr.Dataset) -> xr.Dataset:
    """:func:`paired_differences`' result from a (merged) :func:`paired_difference_state`:
    mean difference, MCSE = sd / sqrt(n), n used."""
    variables = {}
    for name in _DIFFERENCES:
        count = state[f"{name}_count"]
        moments = Moments(count=count.values, mean=state[f"{name}_mean"].values, m2=state[f"{name}_m2"].values)
        with np.errstate(invalid="ignore", divide="ignore"):
            mcse = np.sqrt(moments.variance) / np.sqrt(moments.count)
        variables[name] = (count.dims, moments.mean)
        variables[f"{name}_mcse"] = (count.dims, mcse)
        variables[f"n_used_{name}"] = (count.dims, moments.count)
    order = ["bias_difference", "bias_difference_mcse", "n_used_bias_difference",
             "power_difference", "power_difference_mcse", "n_used_power_difference"]
    dataset = xr.Dataset({name: variables[name] for name in order}, coords=state.coords)
    dataset.attrs = dict(state.attrs)
    return dataset


def paired_differences(replicates: xr.Dataset, *, reference: str | Mapping[str, str],
                       alpha: float = 0.05) -> xr.Dataset:
    """Differences between every method and its reference on the same replicates.

    Parameters
    ----------
    replicates : xarray.Dataset
        With dims ``replicate`` and ``method`` (``docs/results_schema.md``) and variables
        ``log_hr``, ``p_logrank``.
    reference : str or mapping
        The method every method is compared against, or method -> its reference (a method
        absent from the mapping is its own reference). A method compared with itself has
        differences 0 (MCSE 0).
    alpha : float
        Level of the log-rank test.

    Returns
    -------
    xarray.Dataset
        ``bias_difference``, ``bias_difference_mcse``, ``n_used_bias_difference``,
        ``power_difference``, ``power_difference_mcse``, ``n_used_power_difference``, over the
        replicates Dataset's dims without ``replicate``; coordinate ``paired_reference`` on
        ``method`` (the method each is compared with). With one reference for all, also the
        attribute ``reference_method``. The same as :func:`paired_from_state` of the
        replicates' :func:`paired_difference_state` (a run summarises its blocks that way).

    Raises
    ------
    ValueError
        If a reference is not a method of ``replicates``.
    """
    return paired_from_state(paired_difference_state(replicates, reference=reference, alpha=alpha))
