"""The ``r_glm`` PS fit and MatchIt-style matching against R ``glm`` + MatchIt, mostly separated.

Golden values: ``tests/data/glm_golden.json`` (R 4.2.2, MatchIt 4.5.1; made by
``tests/data/make_glm_golden.py``, which documents the data sets and the R calls): 30 cohorts
of the liu2021 scenario (more than half (quasi-)separated, some rank-deficient) and 4
constructed ones (complete separation beyond R's clamp at |eta| = 30, quasi-separation by a
binary, an aliased column, an ordinary small data set).

Checked per data set, with the batched fit run on all of them at once (padded with a mask):

* iterations, convergence flag and deviance equal R's; coefficients equal R's where R has them
  (R reports NA for aliased columns: the fit is then flagged rank-deficient) and fitted values
  and linear predictors equal R's, to 1e-7 relative, also where the model is separated;
* the SD of the logit of the PS and the ``recommended`` caliper 0.2 SD equal R's
  ``sd(linear.predictors)``;
* 1:1 nearest-neighbour pairs without a caliper, on the PS and on its logit, equal MatchIt's;
* pairs within the 0.2 SD logit caliper equal those our MatchIt matcher (itself tested against
  MatchIt in test_matching.py) finds on R's own linear predictors and R's caliper (MatchIt 4.5.1
  cannot be asked directly: see make_glm_golden.py on its integer gap);
* the separation flag equals the exact linear-programming criterion.

A ``needs_r`` test reruns R on the same data and checks the golden file is what R gives.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize

from analysis.propensity.caliper import caliper_width
from analysis.propensity.matching import match_matchit_nn
from analysis.propensity.model import fit_propensity

DATA = Path(__file__).resolve().parents[2] / "data"
GOLDEN = json.loads((DATA / "glm_golden.json").read_text())
CASES = GOLDEN["cases"]


def padded(cases):
    """The data sets as one batch: X (replicate, patient, p_max) zero-padded, treated, mask,
    and each case's number of columns (unused columns are all zero: rank-deficient otherwise,
    so each case is also fitted alone)."""
    n_pat = max(len(case["treated"]) for case in cases)
    n_col = max(len(case["columns"]) for case in cases)
    X = np.zeros((len(cases), n_pat, n_col))
    treated = np.zeros((len(cases), n_pat), dtype=bool)
    mask = np.zeros((len(cases), n_pat), dtype=bool)
    for r, case in enumerate(cases):
        x = np.asarray(case["x"], dtype=float)
        X[r, :len(x), :x.shape[1]] = x
        treated[r, :len(x)] = np.asarray(case["treated"], dtype=bool)
        mask[r, :len(x)] = True
    return X, treated, mask


def fits_by_case():
    """The batched fit of every case, each with exactly its own columns (cases of equal width
    are fitted together in one batch)."""
    by_width = {}
    for k, case in enumerate(CASES):
        by_width.setdefault(len(case["columns"]), []).append(k)
    fits = {}
    for indices in by_width.values():
        group = [CASES[k] for k in indices]
        X, treated, mask = padded(group)
        fit = fit_propensity(X, treated, mask=mask, algorithm="r_glm")
        for row, k in enumerate(indices):
            n = len(CASES[k]["treated"])
            fits[k] = {name: getattr(fit, name)[row] for name in
                       ("coef", "converged", "separated", "rank_deficient", "n_iter", "deviance", "status")}
            fits[k]["ps"] = fit.ps[row, :n]
            fits[k]["logit"] = fit.logit[row, :n]
    return fits


FITS = fits_by_case()


def lp_separated(design, y):
    """(Quasi-)complete separation (Albert & Anderson 1984): some b, not zero on the data, with
    (2y - 1) x_i'b >= 0 for every patient."""
    signed = np.where(y > 0, 1.0, -1.0)[:, None] * design
    result = optimize.linprog(
        np.zeros(design.shape[1]), A_ub=-signed, b_ub=np.zeros(len(y)),
        A_eq=signed.sum(axis=0)[None, :], b_eq=[1.0], bounds=[(None, None)] * design.shape[1], method="highs",
    )
    return result.status == 0


def test_golden_file_covers_separation_and_its_provenance():
    assert GOLDEN["provenance"]["matchit_version"] == "4.5.1"
    assert GOLDEN["provenance"]["r_version"].startswith("R version 4.2")
    separated = [k for k in FITS if FITS[k]["separated"]]
    assert len(separated) >= 15
    assert any(case["r"]["iter"] == 25 and not case["r"]["converged"] for case in CASES)
    assert any(None in case["r"]["coef"] for case in CASES)  # an aliased column


@pytest.mark.parametrize("k", range(len(CASES)), ids=[case["name"] for case in CASES])
def test_fit_equals_r_glm(k):
    case, fit, r = CASES[k], FITS[k], CASES[k]["r"]
    assert fit["n_iter"] == r["iter"]
    assert bool(fit["converged"]) == r["converged"]
    assert fit["deviance"] == pytest.approx(r["deviance"], rel=1e-9, abs=1e-12)
    coef = np.array([np.nan if value is None else value for value in r["coef"]])
    aliased = np.isnan(coef)
    assert bool(fit["rank_deficient"]) == aliased.any()
    if not aliased.any():
        np.testing.assert_allclose(fit["coef"], coef, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fit["logit"], r["linear_predictor"], rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(fit["ps"], r["fitted"], rtol=1e-7, atol=1e-20)
    assert r["matchit_ps_max_abs_diff"] < 1e-12  # MatchIt's own glm (quasibinomial) is this fit


@pytest.mark.parametrize("k", range(len(CASES)), ids=[case["name"] for case in CASES])
def test_logit_sd_and_caliper_equal_r(k):
    fit, r = FITS[k], CASES[k]["r"]
    logit = fit["logit"][None]
    assert np.std(logit, ddof=1) == pytest.approx(r["sd_linear_predictor"], rel=1e-8)
    width = caliper_width(logit, caliper=0.2, scale="sd")[0]
    assert width == pytest.approx(0.2 * r["sd_linear_predictor"], rel=1e-8)


@pytest.mark.parametrize("distance", ["ps", "logit"])
@pytest.mark.parametrize("k", range(len(CASES)), ids=[case["name"] for case in CASES])
def test_pairs_without_caliper_equal_matchit(k, distance):
    case, fit = CASES[k], FITS[k]
    treated = np.asarray(case["treated"], dtype=bool)[None]
    ours = match_matchit_nn(fit[distance][None], treated, order="largest")
    theirs = case["r"]["pairs_ps" if distance == "ps" else "pairs_logit"]
    for unit, control in zip(theirs["treated_unit"], theirs["control_unit"]):
        expected = -1 if control is None else control - 1
        assert ours.control_of[0, unit - 1, 0] == expected, (case["name"], distance, unit)
    assert sorted(theirs["treated_unit"]) == (np.flatnonzero(treated[0]) + 1).tolist()


def test_caliper_pairs_equal_matchit_matcher_on_r_scores():
    restricted = 0
    for k, case in enumerate(CASES):
        fit, r = FITS[k], case["r"]
        treated = np.asarray(case["treated"], dtype=bool)[None]
        ours = match_matchit_nn(fit["logit"][None], treated, order="largest",
                                caliper=caliper_width(fit["logit"][None], caliper=0.2, scale="sd"))
        r_logit = np.asarray(r["linear_predictor"])[None]
        on_r = match_matchit_nn(r_logit, treated, order="largest",
                                caliper=np.array([0.2 * r["sd_linear_predictor"]]))
        np.testing.assert_array_equal(ours.control_of, on_r.control_of, err_msg=case["name"])
        restricted += int(ours.n_pairs[0] < treated.sum())
    assert restricted >= 5  # the caliper leaves treated patients unmatched in several data sets


@pytest.mark.parametrize("k", range(len(CASES)), ids=[case["name"] for case in CASES])
def test_separation_flag_is_exact(k):
    case = CASES[k]
    x = np.asarray(case["x"], dtype=float)
    design = np.column_stack([np.ones(len(x)), x])
    assert bool(FITS[k]["separated"]) == lp_separated(design, np.asarray(case["treated"]))


def r_available():
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(["Rscript", "-e", "library(MatchIt); library(jsonlite)"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.needs_r
def test_golden_file_is_what_r_gives(tmp_path):
    """Rerun the recorded R script on the recorded data: the golden values are R's."""
    if not r_available():
        pytest.skip("Rscript with MatchIt and jsonlite is not installed (apt-get install r-cran-matchit r-cran-jsonlite)")
    import pandas as pd

    width = max(len(case["columns"]) for case in CASES)
    frames = []
    for k, case in enumerate(CASES, start=1):
        x = np.asarray(case["x"], dtype=float)
        columns = {f"x{j + 1}": (x[:, j] if j < x.shape[1] else np.nan) for j in range(width)}
        frames.append(pd.DataFrame({"dataset": k, "unit": np.arange(1, len(x) + 1), "treat": case["treated"], **columns}))
    pd.concat(frames).to_csv(tmp_path / "data.csv", index=False, float_format="%.17g", na_rep="NA")
    subprocess.run(["Rscript", "-e", GOLDEN["provenance"]["r_script"], str(tmp_path / "data.csv"),
                    str(tmp_path / "out.json")], capture_output=True, text=True, check=True, timeout=170)
    fresh = json.loads((tmp_path / "out.json").read_text())
    for case, result in zip(CASES, fresh):
        assert result["iter"] == case["r"]["iter"]
        assert result["pairs_ps"] == case["r"]["pairs_ps"] and result["pairs_logit"] == case["r"]["pairs_logit"]
        np.testing.assert_allclose(result["linear_predictor"], case["r"]["linear_predictor"], rtol=1e-12, atol=1e-12)
