"""Stacked matched sets and the Austin & Cafri (2020) variance against R MatchIt ``get_matches()``
and three robust ``coxph`` fits (golden values in ``tests/data/estimators_r_golden.json``)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from analysis import status
from analysis.propensity.matched_sets import assemble_matched_sets
from analysis.propensity.matching import match_matchit_nn
from analysis.propensity.stacked_sets import austin_cafri_cox, stack_matched_sets

GOLDEN = pathlib.Path(__file__).parents[2] / "data" / "estimators_r_golden.json"


@pytest.fixture(scope="module")
def matched():
    """R's matchings (ratio 1 and 2, with replacement) as a batch, one replicate per (case, ratio)."""
    cases = json.loads(GOLDEN.read_text())["matched_cases"]
    entries = [(c, r) for c in cases for r in c.get("r", [])]
    n_max = max(len(c["time"]) for c, _ in entries)
    shape = (len(entries), n_max)
    batch = dict(time=np.ones(shape), event=np.zeros(shape, bool), treated=np.zeros(shape, bool),
                 distance=np.full(shape, np.nan), mask=np.zeros(shape, bool))
    control_of = np.full(shape + (2,), -1, np.int32)
    for k, (c, r) in enumerate(entries):
        n = len(c["time"])
        for key in ("time", "event", "treated", "distance"):
            batch[key][k, :n] = c[key]
        batch["mask"][k, :n] = True
        for t, controls in zip(r["treated_unit"], r["control_unit"]):
            for slot, unit in enumerate(np.ravel(controls)):
                if unit is not None:
                    control_of[k, t - 1, slot] = unit - 1
    batch["ratio"] = np.array([r["ratio"] for _, r in entries])
    batch["r"] = [r for _, r in entries]
    batch["control_of"] = control_of
    return batch


def test_matchit_nn_with_replacement_reproduces_r_pairs(matched):
    """Our MatchIt port finds R's pairs (1:1 with replacement, no caliper, integer distances)."""
    m = matched
    ones = m["ratio"] == 1
    ours = match_matchit_nn(m["distance"][ones], m["treated"][ones], mask=m["mask"][ones], replace=True)
    np.testing.assert_array_equal(ours.control_of[:, :, 0], m["control_of"][ones][:, :, 0])


def test_stacked_rows_are_those_of_get_matches(matched):
    m = matched
    match = assemble_matched_sets(m["control_of"], m["treated"] & m["mask"], np.full(len(m["r"]), np.nan))
    stacked = stack_matched_sets(match)
    for k, r in enumerate(m["r"]):
        rows = stacked.valid[k]
        assert rows.sum() == r["kc"]
        assert len(set(stacked.patient[k, rows])) == r["ki"]
        assert len(set(stacked.matched_set[k, rows])) == r["ks"] == match.n_pairs[k]
        # each set: the treated patient with weight 1, its controls with 1/m
        for s in set(stacked.matched_set[k, rows]):
            in_set = rows & (stacked.matched_set[k] == s)
            is_treated = m["treated"][k, stacked.patient[k, in_set]]
            assert is_treated.sum() == 1
            assert np.all(stacked.weight[k, in_set][is_treated] == 1)
            np.testing.assert_allclose(stacked.weight[k, in_set][~is_treated], 1 / (~is_treated).sum())


def test_austin_cafri_variance_equals_r(matched):
    m = matched
    match = assemble_matched_sets(m["control_of"], m["treated"] & m["mask"], np.full(len(m["r"]), np.nan))
    result = austin_cafri_cox(m["time"], m["event"], m["treated"], match, ties="efron")
    checked = 0
    for k, r in enumerate(m["r"]):
        if result.status[k] != status.OK:
            assert not r["austin_cafri_se"] or not np.isfinite(r["austin_cafri_se"]) or abs(r["coef"]) > 5
            continue
        # R stops on a relative log-likelihood change below 1e-12 (coefficients ~1e-11 off).
        assert result.log_hr[k] == pytest.approx(r["coef"], rel=1e-8, abs=1e-10)
        assert result.robust_se[k] == pytest.approx(r["austin_cafri_se"], rel=1e-8)
        checked += 1
    assert checked >= 0.9 * len(m["r"])


def test_without_replacement_every_patient_is_one_row():
    rng = np.random.default_rng(3)
    distance = rng.normal(size=(40, 50))
    treated = rng.random((40, 50)) < 0.3
    match = match_matchit_nn(distance, treated, caliper=0.3)
    stacked = stack_matched_sets(match)
    for k in range(40):
        rows = stacked.valid[k]
        assert sorted(stacked.patient[k, rows]) == sorted(np.flatnonzero(match.matched[k]))
        assert np.all(stacked.weight[k, rows] == 1)
