"""The bias surface of a matched estimate under an unmeasured confounder, and where it crosses
the lines a reader cares about, each with a Monte Carlo band.

Input: the replicates of a factorial sweep over U's prevalence difference between arms (``x``)
× U's log-HR on the outcome (``y``), U never in the PS model. At every grid point, over the
replicates of one method, cohort and endpoint:

* ``mean_log_hr`` — mean estimated log-HR; ``bias`` — mean(log-HR − true marginal log-HR);
* ``mean_ci_limit`` — mean of the CI limit nearer the null (the upper limit when the base
  estimate is protective, log-HR < 0; else the lower);
* ``power`` — share of replicates with log-rank p < alpha;

each with its MCSE (Morris, White & Crowther 2019, Table 6). Three contours along ``x`` for
every ``y``, with bands from the MCSE:

=================  =================================  ====================================
contour            crossing of                          meaning
=================  =================================  ====================================
``estimate_null``  ``mean_log_hr = 0``                  the estimate reaches HR = 1
``ci_null``        ``mean_ci_limit = 0``                the typical CI starts to include 1
``power``          ``power = power_target``             power drops below the target (80%)
=================  =================================  ====================================

A crossing is found by linear interpolation between the two grid points where the quantity
minus its level changes sign (the first change along increasing ``x``); its band is the span of
the crossings of ``quantity ± band · MCSE`` (points where the quantity is within ``band``
MCSEs of the level cannot be told apart from it). NaN where no crossing lies inside the grid.
``z_score`` gives ``(quantity − level) / MCSE`` at every grid point for drawing the bands as
regions. The Dataset layout is documented in ``docs/results_schema.md`` ("Bias surface").

References
----------
Morris TP, White IR, Crowther MJ (2019). Stat Med 38:2074-2102. Lin DY, Psaty BM, Kronmal RA
(1998). Biometrics 54:948-963 (the analytic bias factor shown beside the surface).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["CONTOURS", "first_crossing", "bias_surface"]

CONTOURS = ("estimate_null", "ci_null", "power")


def first_crossing(x, values, level: float) -> float:
    """First ``x`` where ``values`` crosses ``level`` (linear interpolation; NaN if none).

    Parameters
    ----------
    x : array_like, shape (K,), increasing
    values : array_like, shape (K,) (NaN points are skipped)
    level : float
    """
    x = np.asarray(x, dtype=float)
    v = np.asarray(values, dtype=float) - level
    keep = np.isfinite(v)
    x, v = x[keep], v[keep]
    if v.size and v[0] == 0:
        return float(x[0])
    for i in range(v.size - 1):
        if v[i + 1] == 0:
            return float(x[i + 1])
        if np.sign(v[i]) != np.sign(v[i + 1]):
            return float(x[i] + (x[i + 1] - x[i]) * v[i] / (v[i] - v[i + 1]))
    return float("nan")


def _mean_and_mcse(values: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    finite = values.where(np.isfinite(values))
    n = finite.count("replicate")
    mean = finite.mean("replicate")
    mcse = finite.std("replicate", ddof=1) / np.sqrt(n)
    return mean, mcse


def _crossings(x: np.ndarray, values: np.ndarray, mcse: np.ndarray, level: float, band: float):
    centre = first_crossing(x, values, level)
    ends = [first_crossing(x, values - band * mcse, level), first_crossing(x, values + band * mcse, level)]
    ends = [e for e in ends if np.isfinite(e)]
    if not ends:
        return centre, float("nan"), float("nan")
    points = ends + ([centre] if np.isfinite(centre) else [])
    return centre, min(points), max(points)


def bias_surface(
    replicates: xr.Dataset,
    *,
    x: str,
    y: str,
    method: str,
    endpoint: str = "pfs",
    cohort: str = "matched",
    alpha: float = 0.05,
    power_target: float = 0.8,
    band: float = 2.0,
) -> xr.Dataset:
    """The bias surface and its three contours with Monte Carlo bands.

    Parameters
    ----------
    replicates : xarray.Dataset
        A factorial sweep's replicates with dims ``x``, ``y``, ``replicate``, ``method``,
        ``cohort``, ``endpoint`` (``docs/results_schema.md``), variables ``log_hr``,
        ``ci_lower``, ``ci_upper``, ``p_logrank``, ``true_log_hr_marginal``.
    x, y : str
        The dims of U's prevalence difference (the contours are crossings along ``x``) and of
        U's log-HR.
    method, endpoint, cohort : str
        The analysis to show.
    alpha, power_target : float
        Test level and the power contour's level.
    band : float
        Half-width of the bands in MCSEs.

    Returns
    -------
    xarray.Dataset
        Over ``(x, y)``: ``mean_log_hr``, ``bias``, ``mean_ci_limit``, ``power`` and their
        ``*_mcse``, ``true_log_hr``; over ``(contour, x, y)``: ``z_score``; over
        ``(contour, y)``: ``crossing``, ``crossing_lower``, ``crossing_upper`` (in units of
        ``x``). Attributes: ``method``, ``endpoint``, ``cohort``, ``alpha``,
        ``power_target``, ``band``, ``ci_limit`` (``upper`` or ``lower``).
    """
    cell = replicates.sel({"method": method, "endpoint": endpoint, "cohort": cohort})
    for name in (x, y, "replicate"):
        if name not in cell.dims:
            raise ValueError(f"replicates: no dim {name!r} (dims: {list(cell.dims)})")
    cell = cell.transpose(x, y, "replicate", ...).sortby(x)
    mean_log_hr, mean_log_hr_mcse = _mean_and_mcse(cell.log_hr)
    truth = cell.true_log_hr_marginal
    bias, bias_mcse = _mean_and_mcse(cell.log_hr - truth)
    base_sign = float(np.nanmedian(mean_log_hr.values))
    limit_name = "ci_upper" if base_sign < 0 else "ci_lower"
    ci_limit, ci_limit_mcse = _mean_and_mcse(cell[limit_name])
    tested = np.isfinite(cell.p_logrank)
    n_tested = tested.sum("replicate")
    power = ((cell.p_logrank < alpha) & tested).sum("replicate") / n_tested
    power_mcse = np.sqrt(power * (1 - power) / n_tested)

    quantities = {"estimate_null": (mean_log_hr, mean_log_hr_mcse, 0.0),
                  "ci_null": (ci_limit, ci_limit_mcse, 0.0),
                  "power": (power, power_mcse, power_target)}
    xs = cell[x].values.astype(float)
    z_scores, centres, lowers, uppers = [], [], [], []
    for name in CONTOURS:
        values, mcse, level = quantities[name]
        with np.errstate(divide="ignore", invalid="ignore"):
            z_scores.append((values - level) / mcse)
        rows = [_crossings(xs, values.isel({y: j}).values, mcse.isel({y: j}).values, level, band)
                for j in range(cell.sizes[y])]
        centres.append([r[0] for r in rows])
        lowers.append([r[1] for r in rows])
        uppers.append([r[2] for r in rows])
    contour_coords = {"contour": list(CONTOURS), y: cell[y].values}
    surface = xr.Dataset(
        {
            "mean_log_hr": mean_log_hr, "mean_log_hr_mcse": mean_log_hr_mcse,
            "bias": bias, "bias_mcse": bias_mcse,
            "mean_ci_limit": ci_limit, "mean_ci_limit_mcse": ci_limit_mcse,
            "power": power, "power_mcse": power_mcse, "true_log_hr": truth,
            "z_score": xr.concat(z_scores, dim="contour").assign_coords(contour=list(CONTOURS)),
            "crossing": (("contour", y), np.array(centres)),
            "crossing_lower": (("contour", y), np.array(lowers)),
            "crossing_upper": (("contour", y), np.array(uppers)),
        },
        coords=contour_coords,
    )
    drop = [c for c in ("method", "endpoint", "cohort") if c in surface.coords]
    surface = surface.drop_vars(drop)
    surface.attrs = {"method": method, "endpoint": endpoint, "cohort": cohort, "alpha": float(alpha),
                     "power_target": float(power_target), "band": float(band),
                     "ci_limit": "upper" if limit_name == "ci_upper" else "lower"}
    return surface
