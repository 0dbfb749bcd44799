"""Batched logistic PS model (analysis.propensity.model) against statsmodels, scipy and the LP test.

* Coefficients equal statsmodels ``Logit`` (Newton, tight tolerance) and an independent
  ``scipy.optimize.minimize`` fit of the negative log-likelihood with analytic gradient, to
  1e-6, on >= 200 random non-separated data sets (n 20-200, p 1-15, with binary and
  categorical covariates).
* Separation flags agree with the exact linear-programming criterion of Albert & Anderson
  (1984) on random small data sets where separation is common, and on constructed cases.
* A mask fits the subset; singular designs, empty arms and bad values never raise.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import optimize
from scipy.special import expit, log_expit

from analysis import status
from analysis.propensity import model as propensity
from analysis.propensity.model import DesignMatrix, design_matrix, fit_propensity


# --------------------------------------------------------------------------- helpers
def random_covariates(rng, n_rep, n_pat, n_cov):
    """Covariates of mixed kinds: continuous, binary and categorical (3 levels)."""
    kinds = tuple(rng.choice(["continuous", "continuous", "binary", "categorical"], n_cov))
    x = np.empty((n_rep, n_pat, n_cov))
    for j, kind in enumerate(kinds):
        if kind == "continuous":
            x[:, :, j] = rng.normal(rng.normal(), rng.uniform(0.5, 3), (n_rep, n_pat))
        elif kind == "binary":
            x[:, :, j] = rng.random((n_rep, n_pat)) < rng.uniform(0.2, 0.8)
        else:
            x[:, :, j] = rng.choice(3, (n_rep, n_pat), p=[0.4, 0.35, 0.25])
    return x, kinds


def negative_log_likelihood(beta, design, y):
    eta = design @ beta
    value = -np.sum(np.where(y > 0, log_expit(eta), log_expit(-eta)))
    gradient = -design.T @ (y - expit(eta))
    return value, gradient


def lp_separated(design, y):
    """(Quasi-)complete separation: some b with (2y-1) x_i'b >= 0 for all i, not all zero."""
    signed = np.where(y > 0, 1.0, -1.0)[:, None] * design
    result = optimize.linprog(
        np.zeros(design.shape[1]), A_ub=-signed, b_ub=np.zeros(len(y)),
        A_eq=signed.sum(axis=0)[None, :], b_eq=[1.0],
        bounds=[(None, None)] * design.shape[1], method="highs",
    )
    return result.status == 0


def with_intercept(x):
    return np.column_stack([np.ones(len(x)), x])


# --------------------------------------------------------------------------- design matrix
def test_design_matrix_expands_categorical_with_first_level_reference():
    x = np.array([[[1.0, 0, 2.5], [0, 2, -1.0], [1, 1, 0.0]],
                  [[0.0, 3, 1.0], [1, 0, 2.0], [0, np.nan, 3.0]]])
    dm = design_matrix(x, ("binary", "categorical", "continuous"), columns=("male", "region", "age"))
    assert isinstance(dm, DesignMatrix)
    assert dm.names == ("male", "region[1]", "region[2]", "region[3]", "age")
    assert dm.values.shape == (2, 3, 5)
    assert dm.values[0, 1].tolist() == [0, 0, 1, 0, -1]
    assert dm.values[1, 0].tolist() == [0, 0, 0, 1, 1]
    assert np.isnan(dm.values[1, 2, 1:4]).all() and dm.values[1, 2, 4] == 3
    # independent loop
    for r in range(2):
        for i in range(3):
            level = x[r, i, 1]
            if np.isfinite(level):
                assert dm.values[r, i, 1:4].tolist() == [float(level == k) for k in (1, 2, 3)]
    wider = design_matrix(x, ("binary", "categorical", "continuous"), n_levels=(None, 5, None))
    assert wider.names == ("x0", "x1[1]", "x1[2]", "x1[3]", "x1[4]", "x2")
    assert (np.nan_to_num(wider.values[..., 4]) == 0).all()  # level 4 never occurs


def test_design_matrix_rejects_bad_kinds():
    with pytest.raises(ValueError, match="continuous"):
        design_matrix(np.zeros((1, 2, 1)), ("normal",))
    with pytest.raises(ValueError, match="kinds"):
        design_matrix(np.zeros((1, 2, 2)), ("binary",))


# --------------------------------------------------------------------------- coefficients
def fitted_batches(seed):
    """Random batches: per p in 1..15, 15 data sets with n in 20..200 (mask pads)."""
    rng = np.random.default_rng(seed)
    for n_cov in range(1, 16):
        n_rep, n_pat = 15, 200
        x, kinds = random_covariates(rng, n_rep, n_pat, n_cov)
        dm = design_matrix(x, kinds, n_levels=[3 if k == "categorical" else None for k in kinds])
        size = rng.integers(20, 201, n_rep)
        size = np.maximum(size, 6 * dm.values.shape[2])  # keep most fits non-separated
        mask = np.arange(n_pat)[None, :] < np.minimum(size, n_pat)[:, None]
        # standardised linear predictor with a modest effect size
        z = (dm.values - dm.values.mean(axis=1, keepdims=True)) / (dm.values.std(axis=1, keepdims=True) + 1e-12)
        beta = rng.normal(0, 0.6 / np.sqrt(dm.values.shape[2]), dm.values.shape[2])
        p_treat = expit(z @ beta + rng.normal(-0.5, 0.3))
        treated = rng.random((n_rep, n_pat)) < p_treat
        yield dm.values, treated, mask, fit_propensity(dm.values, treated, mask=mask)


def test_coefficients_match_statsmodels_and_scipy():
    compared = 0
    for X, treated, mask, fit in fitted_batches(2024):
        for r in range(X.shape[0]):
            rows = mask[r]
            design = with_intercept(X[r][rows])
            y = treated[r][rows].astype(float)
            if fit.status[r] != status.OK:
                assert lp_separated(design, y) or fit.separated[r], "flagged without cause"
                continue
            assert not fit.rank_deficient[r]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reference = sm.Logit(y, design).fit(method="newton", tol=1e-14, maxiter=200, disp=0)
            tol = 1e-6 * np.maximum(1.0, np.abs(reference.params))
            assert np.all(np.abs(fit.coef[r] - reference.params) <= tol)
            second = optimize.minimize(negative_log_likelihood, np.zeros(design.shape[1]),
                                       args=(design, y), jac=True, method="BFGS",
                                       options={"gtol": 1e-10, "maxiter": 10000})
            assert np.max(np.abs(second.jac)) < 1e-6
            assert np.all(np.abs(fit.coef[r] - second.x) <= tol)
            # fitted values and the linear predictor are consistent
            assert np.allclose(fit.logit[r][rows], design @ fit.coef[r], rtol=1e-12, atol=1e-12)
            assert np.allclose(fit.ps[r][rows], expit(design @ fit.coef[r]), rtol=1e-12, atol=0)
            assert np.isnan(fit.ps[r][~rows]).all() and np.isnan(fit.logit[r][~rows]).all()
            compared += 1
    assert compared >= 200


def test_single_binary_covariate_closed_form():
    # 2x2 table: treated share 3/10 when x=0 and 6/8 when x=1
    x = np.array([0.0] * 10 + [1.0] * 8)
    y = np.array([1] * 3 + [0] * 7 + [1] * 6 + [0] * 2, dtype=bool)
    fit = fit_propensity(x[None, :, None], y[None])
    logit = lambda p: np.log(p / (1 - p))
    assert fit.coef[0] == pytest.approx([logit(0.3), logit(0.75) - logit(0.3)], rel=1e-10)
    assert fit.status[0] == status.OK and fit.converged[0]


# --------------------------------------------------------------------------- separation
def test_separation_flags_agree_with_linear_programming():
    rng = np.random.default_rng(77)
    agree_separated = agree_finite = numerically_separated = 0
    for trial in range(60):
        n_pat, n_cov, n_rep = int(rng.integers(10, 40)), int(rng.integers(1, 7)), 5
        x = rng.normal(size=(n_rep, n_pat, n_cov))
        if trial % 3 == 0:
            x = np.round(x)  # ties on the boundary: quasi-complete separation
        if trial % 4 == 0:
            x[..., 0] = rng.random((n_rep, n_pat)) < 0.15  # rare binary covariate
        beta = rng.normal(0, 1.5, n_cov)
        treated = rng.random((n_rep, n_pat)) < expit(x @ beta)
        fit = fit_propensity(x, treated)
        for r in range(n_rep):
            if fit.status[r] == status.EMPTY_ARM:
                continue
            exact = lp_separated(with_intercept(x[r]), treated[r])
            if exact:
                assert fit.separated[r] and fit.status[r] == status.SEPARATION
                agree_separated += 1
            elif fit.separated[r]:
                # finite MLE so extreme that the likelihood is flat in double precision
                assert np.nanmin(np.minimum(fit.ps[r], 1 - fit.ps[r])) < 1e-8
                numerically_separated += 1
            else:
                assert fit.status[r] == status.OK
                agree_finite += 1
    assert agree_separated > 50 and agree_finite > 50
    assert numerically_separated <= 0.02 * (agree_separated + agree_finite)


def test_constructed_separation_cases():
    n = 30
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, n, 2))
    treated = np.zeros((4, n), dtype=bool)
    # 0: complete separation on x0
    treated[0] = x[0, :, 0] > 0
    # 1: quasi-complete: x0 >= 0 treated, and x0 == 0 occurs in both arms
    x[1, :6, 0] = 0.0
    treated[1] = x[1, :, 0] > 0
    treated[1, :3] = True
    # 2: a categorical level (here a binary flag) seen only among the treated
    x[2, :, 1] = 0.0
    x[2, :4, 1] = 1.0
    treated[2] = rng.random(n) < 0.4
    treated[2, :4] = True
    treated[2, 4:6] = [True, False]
    # 3: no separation
    treated[3] = rng.random(n) < expit(0.5 * x[3, :, 0])
    treated[3, :2] = [True, False]
    x[3, :2, 0] = [-2.0, 2.0]
    fit = fit_propensity(x, treated)
    assert fit.separated.tolist() == [True, True, True, False]
    assert fit.status.tolist() == [status.SEPARATION] * 3 + [status.OK]
    assert np.isfinite(fit.ps[:3]).all()  # kept, as R glm keeps them with its warning
    for r in range(4):
        assert lp_separated(with_intercept(x[r]), treated[r]) == bool(fit.separated[r])


# --------------------------------------------------------------------------- masks, degenerate
def test_mask_fit_equals_fit_of_the_subset():
    rng = np.random.default_rng(12)
    x, kinds = random_covariates(rng, 20, 120, 6)
    X = design_matrix(x, kinds, n_levels=[3] * 6).values
    treated = rng.random((20, 120)) < 0.35
    mask = rng.random((20, 120)) < 0.6
    X_garbage = np.where(mask[..., None], X, np.nan)  # values outside the mask are ignored
    fit = fit_propensity(X_garbage, treated, mask=mask)
    for r in range(20):
        alone = fit_propensity(X[r][mask[r]][None], treated[r][mask[r]][None])
        assert fit.status[r] == alone.status[0]
        assert np.allclose(fit.coef[r], alone.coef[0], rtol=1e-9, atol=1e-10)
        assert np.allclose(fit.ps[r][mask[r]], alone.ps[0], rtol=1e-9, atol=1e-12)
        assert np.isnan(fit.ps[r][~mask[r]]).all()


def test_singular_design_is_handled_per_replicate():
    rng = np.random.default_rng(8)
    n_rep, n_pat = 4, 80
    x = rng.normal(size=(n_rep, n_pat, 3))
    treated = rng.random((n_rep, n_pat)) < expit(0.7 * x[..., 0])
    x[0, :, 1] = 2.5  # constant covariate: aliased with the intercept
    x[1, :, 2] = 0.0  # all-zero column (e.g. a categorical level absent from this replicate)
    x[2, :, 2] = x[2, :, 0] - x[2, :, 1]  # exact linear combination
    fit = fit_propensity(x, treated)
    assert fit.rank_deficient.tolist() == [True, True, True, False]
    assert (fit.status == status.OK).all()
    keep = {0: [0, 2], 1: [0, 1], 2: [0, 1]}
    for r, columns in keep.items():
        reduced = fit_propensity(x[r][:, columns][None], treated[r][None])
        assert np.allclose(fit.ps[r], reduced.ps[0], rtol=1e-8, atol=1e-12)
        # minimum-norm solution: orthogonal to the null space of the design
        design = with_intercept(x[r])
        null = np.linalg.svd(design)[2][-1]
        assert abs(null @ fit.coef[r]) < 1e-8 * np.linalg.norm(fit.coef[r])
    alone = fit_propensity(x[3][None], treated[3][None])
    assert np.allclose(fit.coef[3], alone.coef[0], rtol=1e-10)


def test_coefficients_and_linear_predictor_agree_after_step_halving(monkeypatch):
    """Separated, partly rank-deficient fits whose Newton steps get halved: the returned
    coefficients must be the ones of the returned linear predictor (``logit = [1, X] coef``),
    for the batch and for each replicate fitted alone (where every halving is the only one of
    its iteration)."""
    rng = np.random.default_rng(3)
    n_rep, n_pat, p = 40, 40, 7
    x = rng.normal(size=(n_rep, n_pat, p)) * rng.choice([0.1, 1, 10, 100], p)
    x[:, :, 0] = np.round(x[:, :, 0])  # mostly (often all) zero
    x[:, :, 1] = rng.random((n_rep, n_pat)) < 0.05  # rare binary
    treated = rng.random((n_rep, n_pat)) < expit(np.clip(x @ rng.normal(0, 3, p), -30, 30))
    mask = rng.random((n_rep, n_pat)) < 0.9
    evaluated = []
    log_likelihood = propensity._log_likelihood

    def counting(eta, sign, weight):
        evaluated.append(eta.shape[0])
        return log_likelihood(eta, sign, weight)

    monkeypatch.setattr(propensity, "_log_likelihood", counting)
    design = np.concatenate([np.ones((n_rep, n_pat, 1)), x], axis=2)

    def assert_consistent(fit, rows):
        linear = (design[rows] @ fit.coef[..., None])[..., 0]
        size = (np.abs(design[rows]) @ np.abs(fit.coef)[..., None])[..., 0] + 1.0
        assert np.all(np.abs(linear - fit.logit)[mask[rows]] <= 1e-10 * size[mask[rows]])

    batch = fit_propensity(x, treated, mask=mask)
    assert sum(evaluated) > n_rep + batch.n_iter.sum()  # some steps were halved
    assert batch.rank_deficient.any()
    assert_consistent(batch, slice(None))
    for r in range(n_rep):
        assert_consistent(fit_propensity(x[r:r + 1], treated[r:r + 1], mask=mask[r:r + 1]), slice(r, r + 1))


def test_rank_deficient_flag_is_numpy_matrix_rank():
    """The Gram-eigenvalue screen only skips the SVD where the rank is plainly full: the flag
    equals ``matrix_rank([1, X]) < q`` on exact, near and far-from singular designs."""
    rng = np.random.default_rng(12)
    n_rep, n_pat = 240, 40
    x = rng.normal(size=(n_rep, n_pat, 4)) * [1.0, 50.0, 1.0, 0.2]
    x[:, :, 2] = rng.random((n_rep, n_pat)) < 0.08  # a rare binary covariate: often all zero
    case = np.arange(n_rep) % 8
    x[case == 1, :, 0] = 3.0  # constant: aliased with the intercept
    x[case == 2, :, 3] = x[case == 2, :, 0] + 2.0 * x[case == 2, :, 1]  # exact combination
    x[case == 3, :, 3] = x[case == 3, :, 0] + 1e-9 * rng.normal(size=(np.sum(case == 3), n_pat))
    x[case == 4, :, 3] = x[case == 4, :, 0] + 1e-14 * rng.normal(size=(np.sum(case == 4), n_pat))
    x[case == 5, :, 3] = 0.5 * x[case == 5, :, 1] - 1e-6
    treated = rng.random((n_rep, n_pat)) < 0.4
    treated[:, :2] = [True, False]
    fit = fit_propensity(x, treated)
    expected = [np.linalg.matrix_rank(with_intercept(x[r])) < 5 for r in range(n_rep)]
    assert fit.rank_deficient.tolist() == expected
    assert 0 < np.sum(expected) < n_rep


def test_empty_arm_bad_values_and_non_convergence_give_status_not_exceptions():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 40, 2))
    treated = rng.random((5, 40)) < 0.4
    treated[0] = True  # no controls
    mask = np.ones((5, 40), dtype=bool)
    mask[1] = False  # nobody in the model
    x[2, 5, 1] = np.nan  # bad value for an in-model patient
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning spam either
        fit = fit_propensity(x, treated, mask=mask)
        slow = fit_propensity(x[3:], treated[3:], max_iter=1)
    assert fit.status.tolist()[:3] == [status.EMPTY_ARM, status.EMPTY_ARM, status.UNDEFINED]
    assert np.isnan(fit.coef[:3]).all() and np.isnan(fit.ps[:3]).all()
    assert fit.status[3] == fit.status[4] == status.OK
    assert (slow.status == status.PS_NOT_CONVERGED).all() and not slow.converged.any()
    assert (slow.n_iter == 1).all()
