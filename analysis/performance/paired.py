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

__all__ = ["paired_differences"]


def _mean_difference(difference: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    finite = difference.where(np.isfinite(difference))
    n = finite.count("replicate")
    mean = finite.mean("replicate")
    mcse = finite.std("replicate", ddof=1) / np.sqrt(n)
    return mean, mcse, n


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
        attribute ``reference_method``.

    Raises
    ------
    ValueError
        If a reference is not a method of ``replicates``.
    """
    methods = [str(m) for m in replicates.method.values]
    references = ({m: reference for m in methods} if isinstance(reference, str)
                  else {m: str(reference.get(m, m)) for m in methods})
    unknown = sorted({r for r in references.values() if r not in methods})
    if unknown:
        raise ValueError(f"reference method(s) {', '.join(unknown)} not among {', '.join(methods)}")
    base = replicates[["log_hr", "p_logrank"]].sel(
        {"method": [references[m] for m in methods]}).assign_coords(method=replicates.method.values)
    estimate = replicates.log_hr - base.log_hr
    bias, bias_mcse, n_bias = _mean_difference(estimate)
    p, p_ref = replicates.p_logrank, base.p_logrank
    both = np.isfinite(p) & np.isfinite(p_ref)
    rejection = ((p < alpha).astype(float) - (p_ref < alpha).astype(float)).where(both)
    power, power_mcse, n_power = _mean_difference(rejection)
    dataset = xr.Dataset({
        "bias_difference": bias, "bias_difference_mcse": bias_mcse,
        "n_used_bias_difference": n_bias,
        "power_difference": power, "power_difference_mcse": power_mcse,
        "n_used_power_difference": n_power,
    })
    dataset = dataset.assign_coords(
        paired_reference=("method", np.asarray([references[m] for m in methods])))
    if isinstance(reference, str):
        dataset.attrs["reference_method"] = reference
    return dataset
