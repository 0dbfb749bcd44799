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

__all__ = ["PAIRED_MEASURES", "paired_differences", "paired_difference_state", "merge_paired_states",
           "paired_from_state"]

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


def paired_difference_state(replicates: xr.Dataset, *, reference: str | Mapping[str, str],
                            alpha: float = 0.05) -> xr.Dataset:
    """Sufficient statistics of the paired differences over some replicates (a block).

    For each difference of :func:`paired_differences` (``bias_difference``: θ̂_M − θ̂_R;
    ``power_difference``: 1[p_M < α] − 1[p_R < α]) over the replicates where both are finite:
    ``<name>_count``, ``<name>_mean`` and ``<name>_m2`` (:class:`analysis.performance.moments.Moments`),
    over the replicates Dataset's dims without ``replicate``; coordinate ``paired_reference``.
    Merge states of disjoint replicates with :func:`merge_paired_states`; finish with
    :func:`paired_from_state`. Arguments as :func:`paired_differences`.
    """
    methods = [str(m) for m in replicates.method.values]
    references = _references(methods, reference)
    base = replicates[["log_hr", "p_logrank"]].sel(
        {"method": [references[m] for m in methods]}).assign_coords(method=replicates.method.values)
    p, p_ref = replicates.p_logrank, base.p_logrank
    both = np.isfinite(p) & np.isfinite(p_ref)
    differences = {
        "bias_difference": replicates.log_hr - base.log_hr,
        "power_difference": ((p < alpha).astype(float) - (p_ref < alpha).astype(float)).where(both),
    }
    variables = {}
    for name, difference in differences.items():
        difference = difference.transpose(..., "replicate")
        values = difference.values
        moments = moments_of(values, np.isfinite(values))
        dims = difference.dims[:-1]
        variables[f"{name}_count"] = (dims, moments.count)
        variables[f"{name}_mean"] = (dims, moments.mean)
        variables[f"{name}_m2"] = (dims, moments.m2)
    coords = {dim: replicates[dim].values for dim in dims}
    state = xr.Dataset(variables, coords=coords)
    state = state.assign_coords(paired_reference=("method", np.asarray([references[m] for m in methods])))
    if isinstance(reference, str):
        state.attrs["reference_method"] = reference
    return state


def merge_paired_states(first: xr.Dataset, second: xr.Dataset) -> xr.Dataset:
    """The state of two disjoint sets of replicates together: moments merged (Chan, Golub &
    LeVeque 1983) where both hold a condition, the other's cells where one lacks it."""
    if not np.array_equal(first.paired_reference.values, second.paired_reference.values):
        raise ValueError("paired states compare methods with different references; they cannot be merged")
    conditions = np.union1d(first.condition.values, second.condition.values) if "condition" in first.dims else None
    if conditions is not None:
        empty = {f"{name}_{part}": value for name in _DIFFERENCES
                 for part, value in (("count", 0), ("mean", np.nan), ("m2", 0.0))}
        first, second = (state.reindex(condition=conditions, fill_value=empty) for state in (first, second))
    merged = first.copy()
    for name in _DIFFERENCES:
        a, b = (Moments(count=s[f"{name}_count"].values, mean=s[f"{name}_mean"].values, m2=s[f"{name}_m2"].values)
                for s in (first, second.transpose(*first[f"{name}_count"].dims)))
        both = merge_moments(a, b)
        merged[f"{name}_count"] = (first[f"{name}_count"].dims, both.count)
        merged[f"{name}_mean"] = (first[f"{name}_mean"].dims, both.mean)
        merged[f"{name}_m2"] = (first[f"{name}_m2"].dims, both.m2)
    return merged


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
