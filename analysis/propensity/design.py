"""The design of a logistic propensity model: covariates expanded into model columns.

Binary and continuous covariates are columns as given; a categorical covariate with levels
0..k-1 becomes k-1 indicator columns (R's treatment contrasts, the first level the reference).
The fitted probabilities do not depend on the choice of reference level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_KINDS = ("binary", "categorical", "continuous")


@dataclass(frozen=True)
class DesignMatrix:
    """Covariates as the columns of a logistic model (without the intercept).

    Attributes
    ----------
    values : ndarray of float, shape (replicate, patient, p)
        Binary and continuous covariates as given; each categorical covariate with levels
        0..k-1 becomes k-1 indicator columns for levels 1..k-1 (level 0 is the reference).
    names : tuple of str, length p
        Column names: the covariate name, or ``"name[level]"`` for an indicator.
    """

    values: np.ndarray
    names: tuple[str, ...]


def design_matrix(covariates, kinds, *, columns=None, n_levels=None, copy: bool = True) -> DesignMatrix:
    """Expand covariates into the columns of a logistic model.

    Parameters
    ----------
    covariates : array_like of float, shape (replicate, patient, covariate)
        Binary as 0/1, categorical as level codes 0..k-1, continuous in their own units.
    kinds : sequence of str, length covariate
        ``"binary"``, ``"categorical"`` or ``"continuous"`` per covariate.
    columns : sequence of str, optional
        Covariate names used to name the design columns (default ``x0, x1, ...``).
    n_levels : sequence of int or None, optional
        Number of levels of each covariate (used for categorical ones only). Default: the
        largest code over the whole batch plus one, so every replicate of a block has the
        same columns (a level absent from a replicate gives an all-zero column there, which
        :func:`analysis.propensity.model.fit_propensity` handles as a rank-deficient design).
    copy : bool
        False: where no covariate is categorical, ``values`` is ``covariates`` itself if it is
        already a C-contiguous float array (for a caller that writes to neither).

    Returns
    -------
    DesignMatrix
        ``values`` shaped (replicate, patient, p) and ``names``. A categorical covariate
        with k levels gives k-1 indicator columns named ``"name[1]" ... "name[k-1]"``
        (reference: level 0, as R's treatment contrasts with the first level as reference).
        NaN covariate values stay NaN in every column derived from them.
    """
    x = np.asarray(covariates, dtype=float)
    if x.ndim != 3:
        raise ValueError(f"covariates must be shaped (replicate, patient, covariate), got {x.shape}")
    kinds = tuple(kinds)
    n_cov = x.shape[2]
    if len(kinds) != n_cov:
        raise ValueError(f"kinds has {len(kinds)} entries for {n_cov} covariates")
    bad = [kind for kind in kinds if kind not in _KINDS]
    if bad:
        raise ValueError(f"unknown covariate kind {bad[0]!r}; valid kinds: {', '.join(_KINDS)}")
    names_in = tuple(columns) if columns is not None else tuple(f"x{j}" for j in range(n_cov))
    if len(names_in) != n_cov:
        raise ValueError(f"columns has {len(names_in)} names for {n_cov} covariates")
    if "categorical" not in kinds:  # every column as given
        values = np.array(x, dtype=float, order="C") if copy else np.ascontiguousarray(x, dtype=float)
        return DesignMatrix(values=values, names=names_in)
    blocks, names = [], []
    for j, kind in enumerate(kinds):
        column = x[:, :, j]
        if kind != "categorical":
            blocks.append(column[:, :, None])
            names.append(names_in[j])
            continue
        if n_levels is not None and n_levels[j] is not None:
            k = int(n_levels[j])
        else:
            finite = column[np.isfinite(column)]
            k = int(finite.max()) + 1 if finite.size else 1
        levels = np.arange(1, k, dtype=float)
        indicators = (column[:, :, None] == levels).astype(float)
        indicators[np.isnan(column)] = np.nan
        blocks.append(indicators)
        names.extend(f"{names_in[j]}[{level}]" for level in range(1, k))
    values = np.concatenate(blocks, axis=2) if blocks else np.zeros(x.shape[:2] + (0,))
    return DesignMatrix(values=values, names=tuple(names))
