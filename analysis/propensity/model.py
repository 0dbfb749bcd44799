"""Batched propensity-score model: unpenalised logistic regression by Newton-Raphson.

All replicates of a block are fitted at once: the score vectors and information matrices are
stacked as ``(replicate, p + 1)`` and ``(replicate, p + 1, p + 1)`` arrays and solved together.
A replicate whose data are separated, whose design is singular or whose iterations do not
converge is flagged with a status code from :mod:`analysis.status`; it never raises.

References
----------
Albert A, Anderson JA (1984). On the existence of maximum likelihood estimates in logistic
regression models. Biometrika 71:1-10 (complete and quasi-complete separation).
McCullagh P, Nelder JA (1989). Generalized Linear Models, 2nd ed., section 2.5 (IRLS).
R ``glm.fit`` (convergence rule ``|dev - dev_old| / (|dev| + 0.1) < epsilon``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_expit

from analysis import status

#: Fitted probabilities closer than this to 0 or 1 count as "numerically 0 or 1".
EXTREME_PROBABILITY = 1e-8
#: A patient's linear predictor moving more than this in the last Newton step counts as diverging.
DIVERGING_STEP = 0.1
#: Largest number of step halvings tried in one Newton iteration.
MAX_HALVINGS = 30

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


@dataclass(frozen=True)
class PropensityFit:
    """Logistic propensity-score fits of a batch of replicates.

    Attributes
    ----------
    coef : ndarray of float, shape (replicate, p + 1)
        Coefficients, intercept first, then the design columns in order. NaN for a replicate
        with an empty arm. For a rank-deficient design the minimum-norm solution (see
        :func:`fit_propensity`).
    ps : ndarray of float, shape (replicate, patient)
        Fitted probability of treatment; NaN for patients outside ``mask``.
    logit : ndarray of float, shape (replicate, patient)
        Linear predictor ``x'beta`` (logit of ``ps``); NaN outside ``mask``.
    converged : ndarray of bool, shape (replicate,)
        The relative change of deviance fell below ``tol`` within ``max_iter`` iterations.
    separated : ndarray of bool, shape (replicate,)
        (Quasi-)complete separation detected: the maximum-likelihood estimate does not exist.
    rank_deficient : ndarray of bool, shape (replicate,)
        The in-model design ``[1, X]`` has rank below p + 1 (e.g. a covariate constant in
        this replicate); coefficients are then the minimum-norm solution.
    n_iter : ndarray of int, shape (replicate,)
        Newton iterations taken.
    status : ndarray of int8, shape (replicate,)
        :data:`analysis.status.OK`, ``SEPARATION``, ``PS_NOT_CONVERGED``, ``EMPTY_ARM``
        or ``UNDEFINED`` (non-finite covariate of an in-model patient).
    """

    coef: np.ndarray
    ps: np.ndarray
    logit: np.ndarray
    converged: np.ndarray
    separated: np.ndarray
    rank_deficient: np.ndarray
    n_iter: np.ndarray
    status: np.ndarray


def design_matrix(covariates, kinds, *, columns=None, n_levels=None) -> DesignMatrix:
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
        :func:`fit_propensity` handles as a rank-deficient design).

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
        return DesignMatrix(values=np.array(x, dtype=float, order="C"), names=names_in)
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


def _log_likelihood(eta, sign, weight):
    """Bernoulli log-likelihood per replicate; eta, sign, weight shaped (replicate, patient).

    ``sign`` is +1.0 where the outcome is 1 and -1.0 where it is 0: log p = log_expit(eta)
    and log(1 - p) = log_expit(-eta) (accurate for |eta| large) in one pass.
    """
    return np.sum(weight * log_expit(eta * sign), axis=1)


def _rank_deficient(design):
    """Rank of each replicate's design ``[1, X]`` below its column count, shape (replicate,).

    The rank is numpy's (``matrix_rank``): the number of singular values above
    ``s_max * max(patient, q) * eps``. The SVD is computed only for the replicates whose Gram
    matrix ``D'D`` does not show full rank by a wide margin: its smallest eigenvalue above
    ``1e-8`` times its largest means ``s_min > ~1e-4 s_max`` even after the rounding of the
    product and the eigensolver (both ``~1e-13 s_max^2``), so the SVD rank would be full.
    """
    n_rep, n_pat, q = design.shape
    gram = design.transpose(0, 2, 1) @ design
    eigenvalues = np.linalg.eigvalsh(gram)
    unclear = ~(eigenvalues[:, 0] > 1e-8 * eigenvalues[:, -1])
    deficient = np.zeros(n_rep, dtype=bool)
    if unclear.any():
        singular_values = np.linalg.svd(design[unclear], compute_uv=False)
        rank_tol = singular_values[:, :1] * max(n_pat, q) * np.finfo(float).eps
        deficient[unclear] = np.sum(singular_values > rank_tol, axis=1) < q
    return deficient


#: Replicates per block when forming the score and information: a block's design and its
#: weighted copy (64 x patients x q doubles each) stay in cache for the products reading them.
INFORMATION_BLOCK = 64


def _score_and_information(design, residual, curvature):
    """Score ``D' r`` and Fisher information ``D' diag(c) D`` of each replicate.

    ``design`` (replicate, patient, q); ``residual`` ``w (y - mu)`` and ``curvature``
    ``w mu (1 - mu)``, both (replicate, patient). Returns shapes (replicate, q) and
    (replicate, q, q). Computed a block of replicates at a time (cache blocking: the block's
    design is read from cache by both products); each replicate's numbers are the same
    products as over the whole batch.
    """
    n_rep, _, q = design.shape
    score = np.empty((n_rep, q))
    information = np.empty((n_rep, q, q))
    for start in range(0, n_rep, INFORMATION_BLOCK):
        block = slice(start, start + INFORMATION_BLOCK)
        design_t = design[block].transpose(0, 2, 1)
        np.matmul(design_t, design[block] * curvature[block, :, None], out=information[block])
        np.matmul(design_t, residual[block, :, None], out=score[block, :, None])
    return score, information


def _newton_step(information, score, use_pinv):
    """Solve ``information @ step = score`` for each replicate, shape (replicate, q)."""
    step = np.zeros_like(score)
    regular = ~use_pinv
    if regular.all():
        try:
            step[...] = np.linalg.solve(information, score[..., None])[..., 0]
        except np.linalg.LinAlgError:
            use_pinv = regular
    elif regular.any():
        try:
            step[regular] = np.linalg.solve(information[regular], score[regular][..., None])[..., 0]
        except np.linalg.LinAlgError:
            # An information matrix became exactly singular (weights underflowed to zero in a
            # separated replicate): fall back to the pseudo-inverse for this iteration.
            use_pinv = use_pinv | regular
    if use_pinv.any():
        pinv = np.linalg.pinv(information[use_pinv], hermitian=True)
        step[use_pinv] = (pinv @ score[use_pinv][..., None])[..., 0]
    return step


def fit_propensity(X, treated, *, mask=None, max_iter=50, tol=1e-10) -> PropensityFit:
    """Fit ``logit P(treated) = b0 + x'b`` by maximum likelihood, all replicates at once.

    Newton-Raphson (equivalently IRLS, the logit link being canonical) from ``b = 0`` with
    the intercept at the logit of the treated share. Each iteration solves the stacked
    ``(replicate, p+1, p+1)`` systems ``I(b) step = U(b)`` with :func:`numpy.linalg.solve`;
    the step is halved (up to 30 times) while the log-likelihood would decrease (a relative
    slack of 1e-12 absorbs rounding at the optimum). A replicate stops when
    ``|dev - dev_old| / (|dev| + 0.1) < tol`` (R ``glm.fit``'s rule, applied after the step,
    so the returned coefficients are one quadratically convergent step beyond it).

    Parameters
    ----------
    X : array_like of float, shape (replicate, patient, p)
        Design columns without the intercept (e.g. :attr:`DesignMatrix.values`).
    treated : array_like of bool, shape (replicate, patient)
        Outcome of the model: True for the treated arm.
    mask : array_like of bool, shape (replicate, patient), optional
        Patients in the model (default: all). Patients outside get NaN ``ps`` and ``logit``;
        their values (even NaN) are ignored.
    max_iter : int
        Largest number of Newton iterations.
    tol : float
        Convergence tolerance on the relative change of deviance.

    Returns
    -------
    PropensityFit

    Notes
    -----
    *Separation* (Albert & Anderson 1984: no finite maximum-likelihood estimate). Newton's
    iterates then diverge along a separating direction: the linear predictor of every
    perfectly predicted patient grows by about one unit per iteration while its fitted
    probability goes to 0 or 1, and the deviance converges. A replicate is flagged
    ``separated`` when, at the end, some in-model patient has a fitted probability within
    ``EXTREME_PROBABILITY`` (1e-8) of 0 or 1 *and* the last accepted Newton step moved the
    linear predictor of such a patient by more than ``DIVERGING_STEP`` (0.1). A finite
    maximum-likelihood estimate, however extreme its fitted probabilities, is reached with
    quadratically shrinking steps and is not flagged. The tests check this rule against the
    exact linear-programming criterion of separation: every separated data set is flagged;
    rarely (about 1 in 1,000 random small data sets) a data set whose finite estimate is so
    extreme that its likelihood is flat in double precision (fitted probabilities ~1e-60)
    is flagged too, which is the right call for a PS model. Separated replicates keep their
    (large) coefficients and fitted probabilities, as R's ``glm`` does with its warning, and
    get status ``SEPARATION``; the caller decides whether to match on them.

    *Singular design.* When the in-model design ``[1, X]`` of a replicate has deficient
    rank (numpy's default SVD tolerance), the Newton steps use the pseudo-inverse of the
    information matrix. Starting from a point in the row space, the iterates converge to the
    minimum-norm maximiser; fitted probabilities are unique and the status stays ``OK``
    (``rank_deficient`` tells). R instead reports NA for the aliased coefficients.

    *Empty arm.* A replicate with no treated or no control patient in the model (or no
    patient) gets NaN everywhere and status ``EMPTY_ARM``. A replicate with a non-finite
    covariate value for an in-model patient gets NaN everywhere and status ``UNDEFINED``.

    Status precedence: ``EMPTY_ARM`` > ``UNDEFINED`` > ``SEPARATION`` > ``PS_NOT_CONVERGED``
    > ``OK``.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 3:
        raise ValueError(f"X must be shaped (replicate, patient, p), got {X.shape}")
    n_rep, n_pat, n_col = X.shape
    y_bool = np.asarray(treated, dtype=bool)
    in_model = np.ones((n_rep, n_pat), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if y_bool.shape != (n_rep, n_pat) or in_model.shape != (n_rep, n_pat):
        raise ValueError("treated and mask must be shaped (replicate, patient) like X")

    weight = in_model.astype(float)
    y = np.where(in_model, y_bool, False).astype(float)
    q = n_col + 1
    design = np.empty((n_rep, n_pat, q))
    design[:, :, 0] = 1.0
    design[:, :, 1:] = X
    if mask is not None:
        design[~in_model] = 0.0

    n_in = weight.sum(axis=1)
    n_treated = y.sum(axis=1)
    empty_arm = (n_treated == 0) | (n_treated == n_in)
    bad_data = ~np.isfinite(design).all(axis=(1, 2)) & ~empty_arm
    unusable = empty_arm | bad_data
    weight[unusable] = 0.0
    design[unusable] = 0.0
    rank_deficient = _rank_deficient(design) & ~unusable

    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(unusable, 0.5, n_treated / np.where(n_in > 0, n_in, 1.0))
    beta = np.zeros((n_rep, q))
    beta[:, 0] = np.log(share / (1.0 - share))
    if rank_deficient.any():
        # Project the start onto the row space of the design, so that pseudo-inverse
        # Newton steps converge to the minimum-norm solution.
        rows = design[rank_deficient]
        beta[rank_deficient] = (np.linalg.pinv(rows) @ (rows @ beta[rank_deficient][..., None]))[..., 0]

    eta = (design @ beta[..., None])[..., 0]
    sign = np.where(y > 0, 1.0, -1.0)
    log_lik = _log_likelihood(eta, sign, weight)
    active = ~unusable
    converged = np.zeros(n_rep, dtype=bool)
    n_iter = np.zeros(n_rep, dtype=int)
    last_move = np.zeros((n_rep, n_pat))

    working = None  # active replicates' rows of design, weight, y: copied when the set shrinks
    for _ in range(max_iter):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        if working is None or working[0].size != idx.size:  # the active set only ever shrinks
            working = ((idx, design, weight, y, sign) if idx.size == n_rep
                       else (idx, design[idx], weight[idx], y[idx], sign[idx]))
        _, d, w, yy, ss = working
        eta_active = eta[idx]
        mu = expit(eta_active)
        score, information = _score_and_information(d, w * (yy - mu), w * mu * (1.0 - mu))
        step = _newton_step(information, score, rank_deficient[idx])
        move = (d @ step[..., None])[..., 0]

        # Full step first; halve the step of the replicates whose log-likelihood would drop.
        ll_old = log_lik[idx]
        scale = np.ones(idx.size)
        new_eta = eta_active + move
        new_ll = _log_likelihood(new_eta, ss, w)
        accepted = np.isfinite(new_ll) & (new_ll >= ll_old - 1e-12 * (np.abs(ll_old) + 1.0))
        full_steps = accepted.all()
        if not full_steps:
            new_ll[~accepted] = ll_old[~accepted]
            for _halving in range(MAX_HALVINGS):
                todo = np.flatnonzero(~accepted)
                scale[todo] *= 0.5
                trial_eta = eta_active[todo] + scale[todo, None] * move[todo]
                trial_ll = _log_likelihood(trial_eta, ss[todo], w[todo])
                slack = 1e-12 * (np.abs(ll_old[todo]) + 1.0)
                ok = np.isfinite(trial_ll) & (trial_ll >= ll_old[todo] - slack)
                hit = todo[ok]
                new_eta[hit] = trial_eta[ok]
                new_ll[hit] = trial_ll[ok]
                accepted[hit] = True
                if accepted.all():
                    break

        n_iter[idx] += 1
        stuck = ~accepted
        if full_steps:
            beta[idx] += step
            eta[idx] = new_eta
            last_move[idx] = move
        else:
            taken = idx[accepted]
            beta[taken] += scale[accepted, None] * step[accepted]
            eta[taken] = new_eta[accepted]
            last_move[taken] = scale[accepted, None] * move[accepted]
        deviance_old, deviance_new = -2.0 * ll_old, -2.0 * new_ll
        small_change = np.abs(deviance_new - deviance_old) / (np.abs(deviance_new) + 0.1) < tol
        log_lik[idx] = new_ll
        done = accepted & small_change
        converged[idx[done]] = True
        # A replicate whose halvings all failed cannot improve further: stop it as not
        # converged (it never happens with a well-posed problem away from the optimum).
        active[idx[done | stuck]] = False

    with np.errstate(over="ignore"):
        prob = expit(eta)
    extreme = in_model & ((prob < EXTREME_PROBABILITY) | (prob > 1.0 - EXTREME_PROBABILITY))
    diverging = extreme & (np.abs(last_move) > DIVERGING_STEP)
    separated = diverging.any(axis=1) & ~unusable

    code = np.full(n_rep, status.OK, dtype=np.int8)
    code[~converged] = status.PS_NOT_CONVERGED
    code[separated] = status.SEPARATION
    code[bad_data] = status.UNDEFINED
    code[empty_arm] = status.EMPTY_ARM

    beta[unusable] = np.nan
    hide = ~in_model | unusable[:, None]
    ps = np.where(hide, np.nan, prob)
    logit = np.where(hide, np.nan, eta)
    return PropensityFit(
        coef=beta,
        ps=ps,
        logit=logit,
        converged=converged & ~unusable,
        separated=separated,
        rank_deficient=rank_deficient,
        n_iter=n_iter,
        status=code,
    )
