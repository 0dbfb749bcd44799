"""Batched logistic PS model (analysis.propensity.model) against statsmodels, scipy and the LP test.

* Coefficients of both iteration rules equal statsmodels ``Logit`` (Newton, tight tolerance)
  and an independent ``scipy.optimize.minimize`` fit of the negative log-likelihood with
  analytic gradient, to 1e-6, on >= 200 random non-separated data sets (n 20-200, p 1-15, with
  binary and categorical covariates): where the MLE exists, both rules reach it.
* Where they stop matters under separation: the ``r_glm`` rule equals statsmodels' IRLS told
  to stop as R does (R's start, deviance criterion, 25 iterations; R itself in
  test_r_glm.py), the ``spss_logistic`` rule equals statsmodels told to stop as SPSS does and
  a Newton loop written out here from SPSS's documented CRITERIA defaults (BCON 0.001,
  ITERATE 20, start at the constant-only model), on random data sets where separation is
  common.
* Separation flags agree with the exact linear-programming criterion of Albert & Anderson
  (1984) on random small data sets where separation is common, and on constructed cases.
* A mask fits the subset; singular designs, empty arms and bad values never raise; R's clamped
  logit link keeps the deviance finite, so R never halves a step.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import optimize
from scipy.special import expit, log_expit

from analysis import status
from analysis.propensity import irls_numpy
from analysis.propensity import model as propensity
from analysis.plan.reference.propensity import fit_propensity_one
from analysis.propensity.design import design_matrix
from analysis.propensity.model import ITERATION_RULES, fit_propensity

ALGORITHMS = tuple(ITERATION_RULES)


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


# --------------------------------------------------------------------------- coefficients
def fitted_batches(seed, algorithm="r_glm"):
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
        yield dm.values, treated, mask, fit_propensity(dm.values, treated, mask=mask, algorithm=algorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_coefficients_match_statsmodels_and_scipy(algorithm):
    compared = 0
    for X, treated, mask, fit in fitted_batches(2024, algorithm):
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
            assert np.allclose(fit.ps[r][rows], expit(design @ fit.coef[r]), rtol=1e-12, atol=1e-300)
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
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_separation_flags_agree_with_linear_programming(algorithm):
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
        fit = fit_propensity(x, treated, algorithm=algorithm)
        for r in range(n_rep):
            if fit.status[r] == status.EMPTY_ARM:
                continue
            exact = lp_separated(with_intercept(x[r]), treated[r])
            if exact:
                assert fit.separated[r] and fit.status[r] == status.SEPARATION
                agree_separated += 1
            elif fit.separated[r]:
                # finite MLE so extreme that the likelihood is flat where R stops
                assert np.nanmin(np.minimum(fit.ps[r], 1 - fit.ps[r])) < propensity.EXTREME_PROBABILITY
                numerically_separated += 1
            else:
                assert fit.status[r] == status.OK
                agree_finite += 1
    assert agree_separated > 50 and agree_finite > 50
    assert numerically_separated <= 0.02 * (agree_separated + agree_finite)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_constructed_separation_cases(algorithm):
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
    fit = fit_propensity(x, treated, algorithm=algorithm)
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


def test_frequency_weights_equal_repeated_rows():
    """Integer weights (a bootstrap resample) give the fit of the patients repeated that often,
    checked against statsmodels on the expanded data."""
    rng = np.random.default_rng(21)
    x, kinds = random_covariates(rng, 25, 90, 5)
    X = design_matrix(x, kinds, n_levels=[3] * 5).values
    treated = rng.random((25, 90)) < 0.4
    counts = rng.integers(0, 4, (25, 90))
    X_garbage = np.where(counts[..., None] > 0, X, np.nan)  # undrawn patients are ignored
    # Iterated to the maximum (step below 1e-12), so both fits reach it whatever their start.
    tight = dict(algorithm="spss_logistic", tol=1e-12, max_iter=100)
    fit = fit_propensity(X_garbage, treated, weights=counts, **tight)
    compared = 0
    for r in range(25):
        design = with_intercept(np.repeat(X[r], counts[r], axis=0))
        y = np.repeat(treated[r], counts[r]).astype(float)
        alone = fit_propensity(np.repeat(X[r], counts[r], axis=0)[None], np.repeat(treated[r], counts[r])[None],
                               **tight)
        assert fit.status[r] == alone.status[0]
        assert np.isnan(fit.ps[r][counts[r] == 0]).all()
        if fit.status[r] != status.OK:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = sm.Logit(y, design).fit(method="newton", tol=1e-14, maxiter=200, disp=0)
        assert np.allclose(fit.coef[r], reference.params, rtol=1e-7, atol=1e-8)
        assert np.allclose(fit.coef[r], alone.coef[0], rtol=1e-9, atol=1e-10)
        compared += 1
    assert compared >= 20


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


def separating_batch(seed, n_rep=40, n_pat=40, p=7):
    """Data sets where (quasi-)separation is common: rare binaries, mostly-zero columns, strong
    effects, a mask; some designs rank-deficient."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rep, n_pat, p)) * rng.choice([0.1, 1, 10, 100], p)
    x[:, :, 0] = np.round(x[:, :, 0])  # mostly (often all) zero
    x[:, :, 1] = rng.random((n_rep, n_pat)) < 0.05  # rare binary
    treated = rng.random((n_rep, n_pat)) < expit(np.clip(x @ rng.normal(0, 3, p), -30, 30))
    mask = rng.random((n_rep, n_pat)) < 0.9
    return x, treated, mask


def rare_binaries_batch(seed, n_rep=60, n_pat=60):
    """Data sets like a small PS study: two continuous covariates, four binaries of prevalence
    3 %, 6 %, 30 % and 50 %, a modest PS model and a mask. The rare binaries often fall in one
    arm only (quasi-separation, as prior ablation does in liu2021) or not at all (an all-zero
    column: rank-deficient)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=(n_rep, n_pat, 2)),
                        rng.random((n_rep, n_pat, 4)) < np.array([0.03, 0.06, 0.3, 0.5])], axis=2)
    treated = rng.random((n_rep, n_pat)) < expit(x @ np.array([0.6, -0.4, 0.5, 0.8, -0.3, 0.4]) - 0.6)
    mask = rng.random((n_rep, n_pat)) < 0.95
    return x, treated, mask


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_coefficients_and_linear_predictor_agree_on_separated_rank_deficient_fits(algorithm):
    """The returned coefficients are the ones of the returned linear predictor
    (``logit = [1, X] coef``), for the batch and for each replicate fitted alone."""
    x, treated, mask = separating_batch(3)
    design = np.concatenate([np.ones(x.shape[:2] + (1,)), x], axis=2)

    def assert_consistent(fit, rows):
        linear = (design[rows] @ fit.coef[..., None])[..., 0]
        size = (np.abs(design[rows]) @ np.abs(fit.coef)[..., None])[..., 0] + 1.0
        assert np.all(np.abs(linear - fit.logit)[mask[rows]] <= 1e-10 * size[mask[rows]])

    batch = fit_propensity(x, treated, mask=mask, algorithm=algorithm)
    assert batch.rank_deficient.any() and batch.separated.any()
    assert_consistent(batch, slice(None))
    for r in range(x.shape[0]):
        alone = fit_propensity(x[r:r + 1], treated[r:r + 1], mask=mask[r:r + 1], algorithm=algorithm)
        assert_consistent(alone, slice(r, r + 1))
        assert alone.n_iter[0] == batch.n_iter[r] and alone.status[0] == batch.status[r]
        same = mask[r]
        np.testing.assert_allclose(alone.logit[0][same], batch.logit[r][same], rtol=1e-9,
                                   atol=1e-9 * np.abs(batch.coef[r]).sum())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_stops_where_statsmodels_told_the_same_rule_stops(algorithm):
    """Separated or not: iterations, coefficients and scores equal statsmodels' IRLS given the
    rule's start and stopping criterion (analysis.plan.reference.propensity). Where R's clamp
    at |eta| > 30 is reached the two link functions differ, so those fits are skipped here (R
    itself checks them, test_r_glm.py)."""
    x, treated, mask = rare_binaries_batch(11)
    fit = fit_propensity(x, treated, mask=mask, algorithm=algorithm)
    compared_separated = compared = 0
    for r in range(x.shape[0]):
        rows = mask[r]
        if fit.status[r] == status.EMPTY_ARM or (algorithm == "r_glm" and np.nanmax(np.abs(fit.logit[r])) > 30):
            continue
        one = fit_propensity_one(x[r][rows], treated[r][rows], algorithm)
        assert one.n_iter == fit.n_iter[r]
        assert one.converged == fit.converged[r]
        if not fit.rank_deficient[r]:
            np.testing.assert_allclose(fit.coef[r], one.coef, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(fit.logit[r][rows], one.logit, rtol=1e-7, atol=1e-8)
        assert fit.separated[r] == one.separated
        compared += 1
        compared_separated += int(one.separated)
    assert compared >= 30 and compared_separated >= 10


def spss_newton(design, y, *, bcon=0.001, iterate=20):
    """SPSS LOGISTIC REGRESSION's documented defaults written out for one data set: Newton-
    Raphson from the constant-only model, stop when no coefficient changes by BCON or more, at
    most ITERATE iterations. Returns (coefficients, iterations, converged)."""
    beta = np.zeros(design.shape[1])
    beta[0] = np.log(y.mean() / (1 - y.mean()))
    for iteration in range(1, iterate + 1):
        p = expit(design @ beta)
        information = design.T @ (design * (p * (1 - p))[:, None])
        change = np.linalg.lstsq(information, design.T @ (y - p), rcond=None)[0]
        beta = beta + change
        if np.max(np.abs(change)) < bcon:
            return beta, iteration, True
    return beta, iterate, False


def test_spss_rule_equals_written_out_newton():
    x, treated, mask = rare_binaries_batch(5)
    fit = fit_propensity(x, treated, mask=mask, algorithm="spss_logistic")
    separated_runs = 0
    for r in range(x.shape[0]):
        if fit.status[r] == status.EMPTY_ARM or fit.rank_deficient[r]:
            continue
        design = with_intercept(x[r][mask[r]])
        beta, n_iter, converged = spss_newton(design, treated[r][mask[r]].astype(float))
        assert fit.n_iter[r] == n_iter and fit.converged[r] == converged
        np.testing.assert_allclose(fit.logit[r][mask[r]], design @ beta, rtol=1e-7, atol=1e-8)
        separated_runs += int(fit.separated[r] and n_iter == 20)
    assert separated_runs >= 10  # separated fits run SPSS's 20 iterations


def test_r_clamped_link_keeps_the_deviance_finite():
    """R halves a step only when the deviance is not finite or a fitted mean leaves (0, 1);
    its clamped inverse logit makes both impossible for finite linear predictors."""
    eta = np.concatenate([np.linspace(-800, 800, 4001), [-1e300, 1e300, -30.0, 30.0]])[None]
    mu = irls_numpy.r_inverse_link(eta)
    assert np.all((mu > 0) & (mu < 1))
    for y in (np.zeros_like(eta), np.ones_like(eta)):
        assert np.isfinite(irls_numpy.r_deviance(y, mu, np.ones_like(eta))).all()
    assert np.all(irls_numpy.r_mu_eta(eta) > 0)
    assert irls_numpy.r_inverse_link(np.array([[-31.0]]))[0, 0] == np.finfo(float).eps / (1 + np.finfo(float).eps)


def test_unknown_algorithm_lists_the_choices():
    with pytest.raises(ValueError, match="r_glm, spss_logistic"):
        fit_propensity(np.zeros((1, 4, 1)), np.array([[True, False, True, False]]), algorithm="sas")


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
