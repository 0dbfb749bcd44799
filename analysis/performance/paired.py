"""Paired comparisons between analysis methods applied to the same cohorts.

When every method analyses the same replicate cohorts, the difference of a performance
measure between two methods is best estimated replicate by replicate: its Monte Carlo SE then
uses the SD of the per-replicate differences, which is far smaller than
``sqrt(MCSE_A² + MCSE_B²)`` when the methods' estimates are correlated (Morris, White &
Crowther 2019, §5.2 and Table 6: "the Monte Carlo SE of a difference ... should account for the
correlation induced by using the same simulated data sets").

For each method M against the reference R, over replicates where both are finite:

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

import numpy as np
import xarray as xr

__all__ = ["paired_differences"]


def _mean_difference(difference: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    finite = difference.where(np.isfinite(difference))
    n = finite.count("replicate")
    mean = finite.mean("replicate")
    mcse = finite.std("replicate", ddof=1) / np.sqrt(n)
    return mean, mcse, n


def paired_differences(replicates: xr.Dataset, *, reference: str, alpha: float = 0.05) -> xr.Dataset:
    """Differences between every method and ``reference`` on the same replicates.

    Parameters
    ----------
    replicates : xarray.Dataset
        With dims ``replicate`` and ``method`` (``docs/results_schema.md``) and variables
        ``log_hr``, ``p_logrank``.
    reference : str
        The method compared against (its own differences are 0).
    alpha : float
        Level of the log-rank test.

    Returns
    -------
    xarray.Dataset
        ``bias_difference``, ``bias_difference_mcse``, ``n_used_bias_difference``,
        ``power_difference``, ``power_difference_mcse``, ``n_used_power_difference``, over the
        replicates Dataset's dims without ``replicate``; attribute ``reference_method``.
    """
    base = replicates.sel({"method": reference})
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
    dataset.attrs["reference_method"] = reference
    return dataset
