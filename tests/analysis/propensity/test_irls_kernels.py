"""The compiled PS fit (analysis.propensity.irls_kernels) against the numpy iterations it replaced.

``fit_propensity(..., compiled=False)`` runs the numpy loop, kept as the oracle. Both must give
the same iteration counts, convergence, separation flags, rank flags and statuses, and the same
coefficients, scores, linear predictors and deviances up to rounding: 1e-12 where the estimate
is finite; under separation, where the iterations' Gram matrices grow ill-conditioned, within
bounds a decade above those measured (coefficients: liu2021 8e-9 for R's rule and 2e-7 for
SPSS's; the random designs here 2e-7 and 2e-5). Data: liu2021 cohorts from the generator (both
plans' PS models) and random designs with separation, rank deficiency (all-zero, aliased and
collinear columns), masks, bootstrap weights, empty arms and bad values.

Where the two differ by more than rounding: separated fits of the random designs whose
iterates are determined by rounding alone (coefficients beyond 1e3 after 20-25 iterations:
both implementations' numbers are noise), and separated fits of designs with an all-zero
column. There numpy's pseudo-inverse drops the Gram matrix's eigenvalues below 1e-15 of its
largest, which separation produces, while the kernel solves on the other columns exactly, as
R's ``glm`` does (it drops the aliased column): on nine such data sets of
:func:`separating_batch` R 4.2's linear predictors equal the kernel's to 1e-7 and differ from
the numpy path's by 1 to 143 (checked by hand). For those only the flags are compared here.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis import status
from analysis.propensity import irls_kernels
from analysis.propensity import irls_numpy
from analysis.propensity.model import ITERATION_RULES, fit_propensity
from tests.analysis.propensity.test_propensity import random_covariates, rare_binaries_batch, separating_batch

ALGORITHMS = tuple(ITERATION_RULES)
IDENTICAL = ("n_iter", "converged", "separated", "rank_deficient", "status")
#: Largest difference allowed: coefficients and linear predictors relative to the replicate's
#: largest |value|, scores absolute, deviances relative.
FINITE_ESTIMATE = 1e-12
SEPARATED = {"r_glm": {"coef": 1e-6, "logit": 1e-6, "ps": 1e-12, "deviance": 1e-6},
             "spss_logistic": {"coef": 1e-4, "logit": 1e-4, "ps": 1e-12, "deviance": 1e-10}}


def relative_differences(fast, slow):
    """Per replicate, the largest difference of each floating-point output (see above)."""
    out = {}
    for field in ("coef", "logit", "ps", "deviance"):
        a, b = getattr(fast, field), getattr(slow, field)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=field)
        if field == "deviance":
            scale = np.abs(b)
        elif field == "ps":
            scale = np.ones_like(b)
        else:
            scale = np.nanmax(np.abs(b), axis=1, keepdims=True, initial=0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(np.isnan(b) | (scale == 0), 0.0, np.abs(a - b) / scale)
        out[field] = rel if rel.ndim == 1 else rel.max(axis=1)
    return out


def assert_same_fit(fast, slow, algorithm, values=None, flags=None):
    """Flags of the replicates ``flags`` (default all) identical; the floating-point outputs
    of the replicates ``values`` (default all; only among ``flags``) within the bounds above."""
    flags = np.ones(slow.status.shape, dtype=bool) if flags is None else flags
    for field in IDENTICAL:
        np.testing.assert_array_equal(getattr(fast, field)[flags], getattr(slow, field)[flags], err_msg=field)
    values = (np.ones(slow.status.shape, dtype=bool) if values is None else values) & flags
    differences = relative_differences(fast, slow)
    finite = ~slow.separated & values
    separated = slow.separated & values
    for field, rel in differences.items():
        assert rel[finite].max(initial=0.0) < FINITE_ESTIMATE, field
        assert rel[separated].max(initial=0.0) < SEPARATED[algorithm][field], field
    return differences


def determined_by_rounding(fit):
    """Separated fits whose numbers are not reproducible beyond rounding (module docstring)."""
    largest = np.nanmax(np.abs(fit.coef), axis=1, initial=0.0)
    return fit.separated & (fit.rank_deficient | (largest > 1e3))


def oracle_broke_down(fit):
    """Numpy-path fits not flagged separated whose coefficients went beyond 1e6: the one such
    replicate (seed 3 of :func:`separating_batch`, replicate 8, SPSS's rule) meets a Gram
    matrix of condition 3e18 (a weighted column sum of 1e-62) at iteration 18, where numpy's
    LU solve returns a coefficient of -1.2e27 on numpy 2.4.6 with OpenBLAS 0.3.31's Haswell
    kernels (an AMD EPYC; the kernel's Cholesky: 2.5, its next iterates growing as the other
    separated coefficients do), and the numpy path then stops "converged" at 1e27. A step of
    a matrix that ill-conditioned is determined by rounding (cond x eps = 700), so neither
    its flags nor its numbers are compared; measured: no other replicate of these data
    sets, of either rule, is such."""
    largest = np.nanmax(np.abs(fit.coef), axis=1, initial=0.0)
    return ~fit.separated & (largest > 1e6)


def both(x, treated, **options):
    return fit_propensity(x, treated, **options), fit_propensity(x, treated, compiled=False, **options)


@pytest.fixture(scope="module")
def liu2021_designs():
    """Both plans' PS designs of 400 liu2021 cohorts from the generator."""
    from analysis.plan.analyse import _ps_covariates
    from analysis.propensity.design import design_matrix
    from sim.calibrate.cache import calibrate_cached
    from sim.generate.cohorts import generate_cohorts
    from sim.scenario import load_scenario
    from sim.scenario.plans import scenario_plan

    scenario = load_scenario("scenarios/liu2021.toml")
    batch = generate_cohorts(scenario, calibrate_cached(scenario), 400, rng=np.random.default_rng(13))
    designs = {}
    for name in ("recommended", "paper"):
        plan = scenario_plan(scenario, name)
        covariates, names, kinds = _ps_covariates(batch, plan)
        designs[plan.ps_algorithm] = design_matrix(covariates, kinds, columns=names).values
    return designs, batch.treated


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_liu2021_cohorts(liu2021_designs, algorithm):
    designs, treated = liu2021_designs
    fast, slow = both(designs[algorithm], treated, algorithm=algorithm)
    assert_same_fit(fast, slow, algorithm)
    # the cohorts cover what matters: separation (about half), zero-column rank deficiency
    assert 0.3 < slow.separated.mean() < 0.8 and slow.rank_deficient.any()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_random_designs_with_masks_and_weights(algorithm):
    rng = np.random.default_rng(21)
    for n_cov in (1, 4, 9, 15):
        x, kinds = random_covariates(rng, 30, 150, n_cov)
        treated = rng.random((30, 150)) < rng.uniform(0.2, 0.6, (30, 1))
        mask = rng.random((30, 150)) < rng.uniform(0.3, 1.0, (30, 1))
        counts = rng.multinomial(150, np.full(150, 1 / 150), 30).astype(float)  # bootstrap weights
        assert_same_fit(*both(x, treated, mask=mask, algorithm=algorithm), algorithm)
        assert_same_fit(*both(x, treated, weights=counts, algorithm=algorithm), algorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_separated_and_rank_deficient_designs(algorithm):
    compared = 0
    for seed in range(6):
        for x, treated, mask in (separating_batch(seed), rare_binaries_batch(seed)):
            fast, slow = both(x, treated, mask=mask, algorithm=algorithm)
            values = ~determined_by_rounding(slow)
            broken = oracle_broke_down(slow)
            assert broken.sum() <= 1
            assert_same_fit(fast, slow, algorithm, values, flags=~broken)
            compared += (slow.separated & values).sum()
    assert compared > 150


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_zero_columns_are_dropped(algorithm):
    """A design rank-deficient through all-zero columns is fitted on the other columns: the
    fit of the design without them (the zero columns' coefficients 0), also when separated."""
    x, treated, mask = separating_batch(9)
    fit = fit_propensity(x, treated, mask=mask, algorithm=algorithm)
    design = np.where(mask[..., None], x, 0.0)
    checked = 0
    for r in np.flatnonzero(fit.rank_deficient):
        zero = ~(design[r] != 0).any(axis=0)
        if np.linalg.matrix_rank(design[r][:, ~zero]) < (~zero).sum():
            continue
        alone = fit_propensity(x[r:r + 1, :, ~zero], treated[r:r + 1], mask=mask[r:r + 1], algorithm=algorithm)
        assert not alone.rank_deficient[0]
        np.testing.assert_allclose(fit.coef[r, 1:][zero], 0.0, atol=1e-13)  # SPSS: its start, projected
        np.testing.assert_allclose(fit.coef[r, np.r_[True, ~zero]], alone.coef[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fit.logit[r], alone.logit[0], rtol=1e-12, atol=1e-12)
        assert fit.status[r] == alone.status[0] and fit.n_iter[r] == alone.n_iter[0]
        checked += fit.separated[r]
    assert checked >= 3


def test_rank_deficiency_other_than_zero_columns_is_the_numpy_fit():
    """Aliased and collinear columns go to the numpy loop: the same numbers, bit for bit."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(4, 80, 3))
    treated = rng.random((4, 80)) < 0.4
    x[0, :, 1] = 2.5                      # aliased with the intercept
    x[1, :, 2] = 0.0                      # all-zero column: fitted by the kernel
    x[2, :, 2] = x[2, :, 0] - x[2, :, 1]  # exact linear combination
    for algorithm in ALGORITHMS:
        fast, slow = both(x, treated, algorithm=algorithm)
        assert fast.rank_deficient.tolist() == [True, True, True, False]
        for field in ("coef", "ps", "logit", "deviance", *IDENTICAL):
            np.testing.assert_array_equal(getattr(fast, field)[[0, 2]], getattr(slow, field)[[0, 2]], err_msg=field)
        assert_same_fit(fast, slow, algorithm)


def test_exactly_singular_gram_matrix_falls_back_to_numpy(monkeypatch):
    """SPSS's weights mu (1 - mu) are exactly 0 once mu rounds to 1 (eta > ~37): with enough
    iterations a column carried only by such patients empties the Gram matrix's row. The kernel
    flags the replicate and the numpy loop (which then takes the pseudo-inverse) fits it."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 50, 2))
    treated = rng.random((3, 50)) < 0.5
    x[0, :, 1] = 0.0
    x[0, 0, 1], treated[0, 0] = 1.0, True  # one treated patient carries the column
    flagged = []
    kernel = irls_kernels.fit

    def spy(*args):
        result = kernel(*args)
        flagged.append(result[-1].copy())
        return result

    monkeypatch.setattr(irls_kernels, "fit", spy)
    fast, slow = both(x, treated, algorithm="spss_logistic", max_iter=60)
    assert flagged[0].tolist() == [True, False, False]
    for field in ("coef", "ps", "logit", "deviance", *IDENTICAL):
        np.testing.assert_array_equal(getattr(fast, field)[0], getattr(slow, field)[0], err_msg=field)
    assert_same_fit(fast, slow, "spss_logistic")


def test_empty_arms_bad_values_and_iteration_limits():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 40, 2))
    treated = rng.random((6, 40)) < 0.4
    treated[0] = True
    mask = np.ones((6, 40), dtype=bool)
    mask[1] = False
    x[2, 5, 1] = np.nan
    x[3, 7, 0] = np.inf  # outside the model: ignored
    mask[3, 7] = False
    for algorithm in ALGORITHMS:
        for max_iter in (1, 2, None):
            fast, slow = both(x, treated, mask=mask, algorithm=algorithm, max_iter=max_iter)
            assert fast.status.tolist()[:3] == [status.EMPTY_ARM, status.EMPTY_ARM, status.UNDEFINED]
            assert_same_fit(fast, slow, algorithm)


@pytest.mark.parametrize("r_glm", [True, False])
def test_non_finite_coefficients_stop_the_replicate_as_numpy_does(r_glm):
    """A Gram matrix that overflows gives non-finite coefficients: the replicate stops there,
    unconverged, with its previous iterate (R's "non-finite coefficients"). Such designs do not
    reach the iterations through fit_propensity (its rank screen refuses them first), so the
    kernel is called without the screen and the numpy loop directly, from the same start."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 30, 2))
    y = (rng.random((3, 30)) < 0.5).astype(float)
    x[0, :, 0] *= 1e160
    design = np.concatenate([np.ones((3, 30, 1)), x], axis=2)
    weight, sign = np.ones_like(y), np.where(y > 0, 1.0, -1.0)
    beta = np.zeros((3, 3))
    if r_glm:
        mu = (y + 0.5) / 2.0
        eta = np.log(mu / (1.0 - mu))
        deviance = irls_numpy.r_deviance(y, mu, weight)
    else:
        beta[:, 0] = np.log(y.mean(axis=1) / (1.0 - y.mean(axis=1)))
        eta = beta[:, :1] * np.ones_like(y)
        mu = 1.0 / (1.0 + np.exp(-eta))
        deviance = irls_numpy.exact_deviance(eta, sign, weight)
    rule = ITERATION_RULES["r_glm" if r_glm else "spss_logistic"]
    everyone = np.ones((3, 30), dtype=bool)
    with np.errstate(all="ignore"):
        fast = irls_kernels.fit(x, y > 0, everyone, weight, np.ones((3, 3), dtype=bool), beta.copy(),
                                np.zeros(3, dtype=bool), False, r_glm, rule.max_iter, rule.tolerance)
        slow = irls_numpy.iterate_numpy(design, weight, y, sign, np.zeros(3, dtype=bool), beta.copy(), eta, mu,
                                        deviance, np.ones(3, dtype=bool), r_glm, rule.max_iter, rule.tolerance)
    for name, a, b in (("beta", fast[0], slow[0]), ("eta", fast[1], slow[1]), ("deviance", fast[3], slow[4]),
                       ("n_iter", fast[4], slow[5]), ("converged", fast[5], slow[6])):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=name)
    assert fast[4][0] == 1 and not fast[5][0]
    np.testing.assert_array_equal(fast[0][0], beta[0])  # the start kept


def test_rank_screen_is_a_certificate():
    """The kernel's Cholesky screen never clears a rank-deficient design (all-zero columns: it
    clears the others and says so), clears well-conditioned ones, and the ranks are the numpy
    path's (eigenvalue screen, then SVD)."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(50, 60, 5))
    x[:10, :, 2] = x[:10, :, 0] * 2 - x[:10, :, 1]
    x[10:20, :, 3] = 0.0
    x[20:30, :, 4] = x[20:30, :, 0] + 1e-7 * rng.normal(size=(10, 60))  # nearly collinear
    treated = rng.random((50, 60)) < 0.5
    everyone = np.ones((50, 60), dtype=bool)
    *_, unclear, zero_columns, _ = irls_kernels.fit(x, treated, everyone, np.ones((50, 60)),
                                                    np.ones((50, 6), dtype=bool), np.zeros((50, 6)),
                                                    np.zeros(50, dtype=bool), True, True, 25, 1e-8)
    assert unclear[:10].all() and not unclear[10:20].any() and zero_columns[10:20].all()
    assert not (unclear | zero_columns)[30:].any() and not zero_columns[:10].any()
    fast, slow = both(x, treated)
    np.testing.assert_array_equal(fast.rank_deficient, slow.rank_deficient)
    assert fast.rank_deficient[:20].all() and not fast.rank_deficient[20:].any()


def test_deviance_bracket_holds_and_spares_only_unconverged_iterations():
    """irls_deviance: the exact deviance is within the bound of the approximate one, on
    probabilities over R's whole clamped range (and the weight-0 entry 1.0), and where
    surely_not_converged says so R's test on the exact deviances indeed fails."""
    from analysis.propensity import irls_deviance

    rng = np.random.default_rng(17)
    eps = np.finfo(float).eps
    checked = 0
    for n in (1, 7, 100, 1000, 10_000):
        for _ in range(20):
            a = np.exp(-rng.exponential(rng.choice([1e-6, 1e-2, 1.0, 10.0]), n))
            a = np.clip(a, eps / (1 + eps), 1.0)
            a[rng.random(n) < 0.1] = rng.choice([eps / (1 + eps), 1 / (1 + eps), 1.0])
            w = rng.choice([0.0, 1.0, 1.0, 3.0], n)
            a[w == 0] = 1.0
            work = np.empty(n), np.empty(n, dtype=np.int64)
            exact = irls_deviance.exact_deviance(a, w, n, np.empty(n))
            approximate, bound = irls_deviance.approximate_deviance(a, w, n, *work)
            assert abs(exact - approximate) <= bound < 3e-12 * w.sum() + 1e-10 * (abs(exact) + 1.0)
            other = exact * (1.0 + rng.choice([1e-12, 1e-9, 1.1e-8, 1e-7, 1e-3]) * rng.choice([-1, 1]))
            for tol in (1e-8, 1e-6):
                if irls_deviance.surely_not_converged(approximate, bound, other, 0.0, tol):
                    assert not abs(exact - other) / (abs(exact) + 0.1) < tol
                    checked += 1
    assert checked > 30
