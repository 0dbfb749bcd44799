"""Global sensitivity indices of a noisy simulator: Morris screening and Sobol indices
(SALib), each with the Monte Carlo noise it carries.

psmsim's "model output" at a design point is itself a Monte Carlo estimate (power, bias, …)
with a Monte Carlo SE ``s_x``. Noise of variance ``σ² = mean(s_x²)`` biases the indices
(SALib#292; Saltelli et al. 2008, §4.6 on stochastic models):

* **Sobol** (Saltelli 2010 estimators, as SALib's ``sobol.analyze``): the output variance
  ``V`` is estimated as ``V + σ²``, the first-order numerator ``mean(f_B (f_ABi − f_A))`` is
  unbiased, and Jansen's total-order numerator ``mean((f_A − f_ABi)²) / 2`` gains ``σ²``. So S1 is
  shrunk by the factor ``1 − σ²/V̂`` and ST is raised by up to ``σ²/V̂``. Reported beside the
  indices: ``noise_variance`` (σ²), ``output_variance`` (V̂), ``noise_share`` (σ²/V̂, the share
  of the output variance noise explains) and noise-corrected indices
  ``S1 V̂ / (V̂ − σ²)`` and ``(ST V̂ − σ²) / (V̂ − σ²)``. With common random numbers across
  points the noise of two points is correlated (ρ > 0), the biases shrink by ``1 − ρ``, and
  the raw and corrected indices bracket the noise-free ones in expectation.
* **Morris** (SALib's ``morris.analyze``; μ, μ* of Campolongo et al. 2007, σ): an elementary
  effect ``(f(x + Δ e_i) − f(x)) / Δ`` carries noise of SD ``s_EE = sqrt(2 σ²) / Δ``
  (``Δ = p / (2 (p − 1))`` on the unit scale, ``p`` levels). An inert factor therefore shows
  ``μ* ≈ s_EE sqrt(2/π)`` and ``σ ≈ s_EE``; both are reported (``mu_star_noise``,
  ``ee_noise_sd``), with ``sigma_noise_share = min(1, s_EE² / σ_i²)``, the share of a factor's
  EE variance noise explains. Under CRN these are upper bounds.

References
----------
Herman J, Usher W (2017). SALib: an open-source Python library for sensitivity analysis. JOSS
2:97. Morris MD (1991). Technometrics 33:161-174. Campolongo F, Cariboni J, Saltelli A (2007).
Environ Model Softw 22:1509-1518. Saltelli A et al. (2010). Variance based sensitivity
analysis of model output. Comput Phys Commun 181:259-270. Jansen MJW (1999). Comput Phys
Commun 117:35-43. Saltelli A et al. (2008). Global Sensitivity Analysis: The Primer. Wiley.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["MorrisIndices", "SobolIndices", "morris_indices", "sobol_indices", "salib_problem",
           "salib_seed"]


def salib_problem(names: Sequence[str], bounds: Sequence[Sequence[float]]) -> dict:
    """SALib's problem dict for factors ``names`` over ``bounds`` ([low, high] each)."""
    return {"num_vars": len(names), "names": list(names), "bounds": [list(map(float, b)) for b in bounds]}


def salib_seed(seed: int) -> int:
    """A strictly positive seed derived from ``seed`` through ``SeedSequence`` (SALib's
    ``if seed:`` treats 0 as "no seed", so 0 must never reach it)."""
    return int(np.random.SeedSequence(int(seed)).generate_state(1)[0] % (2**31 - 2)) + 1


def _noise_variance(mcse, size: int) -> float:
    if mcse is None:
        return float("nan")
    values = np.asarray(mcse, dtype=float).reshape(-1)
    if values.size != size:
        raise ValueError(f"mcse: {values.size} values for {size} model outputs")
    return float(np.mean(values**2))


@dataclass(frozen=True)
class MorrisIndices:
    """Morris screening of each factor (arrays shaped (factor,)).

    Attributes
    ----------
    names : factor names.
    mu, mu_star, sigma : mean, mean absolute value and SD of the elementary effects (output
        units per unit of the factor's range fraction).
    mu_star_conf : half-width of the bootstrap CI of μ* (``conf_level``).
    noise_variance : σ², the mean squared MCSE of the outputs.
    ee_noise_sd : SD of an elementary effect from noise alone, ``sqrt(2 σ²) / Δ``.
    mu_star_noise : μ* an inert factor shows from noise alone, ``ee_noise_sd sqrt(2/π)``.
    sigma_noise_share : ``min(1, ee_noise_sd² / sigma²)``.
    """

    names: tuple[str, ...]
    mu: np.ndarray
    mu_star: np.ndarray
    sigma: np.ndarray
    mu_star_conf: np.ndarray
    noise_variance: float
    ee_noise_sd: float
    mu_star_noise: float
    sigma_noise_share: np.ndarray


def morris_indices(problem: dict, inputs, outputs, *, mcse=None, num_levels: int = 4,
                   num_resamples: int = 1000, conf_level: float = 0.95,
                   seed: int) -> MorrisIndices:
    """Morris μ, μ*, σ of each factor (SALib) with the noise each carries.

    Parameters
    ----------
    problem : SALib problem dict (:func:`salib_problem`).
    inputs : ndarray, shape (N (D + 1), D)
        The Morris sample (``SALib.sample.morris.sample``), in its order.
    outputs : ndarray, shape (N (D + 1),)
        The measure at each sample row (NaN not allowed: SALib needs every row).
    mcse : ndarray, shape (N (D + 1),), optional
        Its Monte Carlo SE at each row.
    num_levels : int
        The levels the sample was drawn with.
    seed : int, keyword-only
        Seed of the bootstrap CI.

    Returns
    -------
    MorrisIndices

    References
    ----------
    Morris (1991); Campolongo et al. (2007); SALib ``morris.analyze``.
    """
    from SALib.analyze import morris

    x = np.asarray(inputs, dtype=float)
    y = np.asarray(outputs, dtype=float).reshape(-1)
    if not np.all(np.isfinite(y)):
        raise ValueError("outputs: every Morris sample row needs a finite value (SALib uses the "
                         "rows in order)")
    result = morris.analyze(problem, x, y, num_resamples=num_resamples, conf_level=conf_level,
                            num_levels=num_levels, seed=salib_seed(seed))
    noise = _noise_variance(mcse, y.size)
    delta = num_levels / (2.0 * (num_levels - 1))
    ee_noise_sd = float(np.sqrt(2.0 * noise) / delta)
    sigma = np.asarray(result["sigma"], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.minimum(1.0, ee_noise_sd**2 / sigma**2)
    return MorrisIndices(
        names=tuple(problem["names"]), mu=np.asarray(result["mu"], dtype=float),
        mu_star=np.asarray(result["mu_star"], dtype=float), sigma=sigma,
        mu_star_conf=np.asarray(result["mu_star_conf"], dtype=float), noise_variance=noise,
        ee_noise_sd=ee_noise_sd, mu_star_noise=float(ee_noise_sd * np.sqrt(2.0 / np.pi)),
        sigma_noise_share=share,
    )


@dataclass(frozen=True)
class SobolIndices:
    """First-order and total Sobol indices of each factor (arrays shaped (factor,)).

    Attributes
    ----------
    names : factor names.
    s1, s1_conf, st, st_conf : SALib's indices and the half-widths of their bootstrap CIs.
    s1_corrected, st_corrected : the indices corrected for independent noise (see the module
        docstring); NaN when no MCSE was given or the noise exceeds the output variance.
    noise_variance : σ², the mean squared MCSE of the outputs.
    output_variance : V̂, the variance of the outputs over the A and B sample matrices.
    noise_share : σ² / V̂.
    """

    names: tuple[str, ...]
    s1: np.ndarray
    s1_conf: np.ndarray
    st: np.ndarray
    st_conf: np.ndarray
    s1_corrected: np.ndarray
    st_corrected: np.ndarray
    noise_variance: float
    output_variance: float
    noise_share: float


def sobol_indices(problem: dict, outputs, *, mcse=None, num_resamples: int = 1000,
                  conf_level: float = 0.95, seed: int) -> SobolIndices:
    """Sobol S1 and ST of each factor (SALib, Saltelli 2010 / Jansen estimators) with the
    noise variance beside them.

    Parameters
    ----------
    problem : SALib problem dict.
    outputs : ndarray, shape (N (D + 2),)
        The measure at each row of ``SALib.sample.sobol.sample(problem, N,
        calc_second_order=False)``, in its order (NaN not allowed).
    mcse : ndarray, same shape, optional
        Its Monte Carlo SE.
    seed : int, keyword-only
        Seed of the bootstrap CIs.

    Returns
    -------
    SobolIndices

    References
    ----------
    Saltelli et al. (2010); Jansen (1999); SALib ``sobol.analyze``.
    """
    from SALib.analyze import sobol
    from SALib.analyze.sobol import separate_output_values

    y = np.asarray(outputs, dtype=float).reshape(-1)
    if not np.all(np.isfinite(y)):
        raise ValueError("outputs: every Sobol sample row needs a finite value (SALib uses the "
                         "rows in order)")
    dims = problem["num_vars"]
    if y.size % (dims + 2):
        raise ValueError(f"outputs: {y.size} rows is not a multiple of D + 2 = {dims + 2} "
                         "(a first-order Sobol sample)")
    n_base = y.size // (dims + 2)
    a, b, _, _ = separate_output_values(y, dims, n_base, False)
    output_variance = float(np.var(np.r_[a, b]))
    noise = _noise_variance(mcse, y.size)
    if output_variance == 0.0:
        nan = np.full(dims, np.nan)
        return SobolIndices(tuple(problem["names"]), nan, nan, nan, nan, nan, nan, noise, 0.0,
                            float("nan"))
    result = sobol.analyze(problem, y, calc_second_order=False, num_resamples=num_resamples,
                           conf_level=conf_level, seed=salib_seed(seed))
    s1, st = np.asarray(result["S1"], dtype=float), np.asarray(result["ST"], dtype=float)
    signal = output_variance - noise
    if np.isfinite(noise) and signal > 0:
        s1_corrected = s1 * output_variance / signal
        st_corrected = (st * output_variance - noise) / signal
    else:
        s1_corrected = st_corrected = np.full(dims, np.nan)
    return SobolIndices(
        names=tuple(problem["names"]), s1=s1, s1_conf=np.asarray(result["S1_conf"], dtype=float),
        st=st, st_conf=np.asarray(result["ST_conf"], dtype=float), s1_corrected=s1_corrected,
        st_corrected=st_corrected, noise_variance=noise, output_variance=output_variance,
        noise_share=noise / output_variance,
    )
