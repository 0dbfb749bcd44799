"""Tests of analysis/performance/summary.py: ``summarise_run`` on a synthetic Dataset in the
results schema (dims, values against direct numpy, netCDF round trip, the CSV table)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import analysis.performance.summary as summary_module
from analysis import status as status_codes
from analysis.performance.analytic_power import freedman_power, schoenfeld_power

from tests.analysis.performance.synthetic_replicates import make_replicates


EXPECTED_DIMS = {
    ("condition", "method", "cohort", "endpoint"): [
        "power_logrank", "n_used_logrank", "power_cox", "n_used_cox",
        *[f"{m}_{t}" for t in ("conditional", "marginal")
          for m in ("bias", "relative_bias", "mse", "rmse", "mean_abs_error", "coverage")],
        "bias_eliminated_coverage", "emp_se", "n_used", "mod_se", "rel_error_mod_se",
        "median_treated_mean", "median_treated_bias", "median_treated_not_reached",
        "median_control_mean", "median_control_bias", "median_control_not_reached",
        "mean_events", "mean_allocation", "schoenfeld_power", "freedman_power",
        "true_log_hr_target", "true_median_treated_target", "true_median_control_target",
    ],
    ("condition", "estimand", "endpoint"): ["true_log_hr", "true_median_under_treatment",
                                            "true_median_under_control"],
    ("condition", "method", "cohort", "endpoint", "status"): ["status_rate"],
    ("condition", "endpoint"): ["null_truth", "true_log_hr_conditional", "true_log_hr_marginal",
                                "true_median_treated", "true_median_control"],
    ("condition", "method", "status"): ["ps_status_rate"],
    ("condition", "method", "cohort"): ["balance_rate", "n_used_balance"],
    ("condition", "method"): [
        "n_pairs_mean", "n_pairs_sd", "n_pairs_min", "n_pairs_q1", "n_pairs_median",
        "n_pairs_q3", "n_pairs_max", "paper_pattern_rate",
    ],
    ("condition", "method", "criterion"): ["paper_pattern_criterion_rate"],
}


@pytest.fixture(scope="module")
def replicates():
    return make_replicates(rng=np.random.default_rng(42), n_conditions=2, n_replicates=300)


@pytest.fixture(scope="module")
def summary(replicates):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return summary_module.summarise_run(replicates, alpha=0.05)


def test_summary_variables_and_dims(summary):
    expected = {}
    for dims, names in EXPECTED_DIMS.items():
        for name in names:
            expected[name] = dims
    without_mcse = {
        "null_truth", "mean_allocation", "schoenfeld_power", "freedman_power",
        "true_log_hr_conditional", "true_log_hr_marginal",
        "median_treated_mean", "median_control_mean",
        *[f"n_pairs_{q}" for q in ("sd", "min", "q1", "median", "q3", "max")],
    }
    with_mcse = [n for n in expected if n not in without_mcse and not n.startswith("n_used")]
    for name in with_mcse:
        expected[f"{name}_mcse"] = expected[name]
    assert set(summary.data_vars) == set(expected)
    for name, dims in expected.items():
        assert summary[name].dims == dims, name
    assert summary.sizes == {"condition": 2, "method": 2, "cohort": 2, "endpoint": 2,
                             "estimand": 4, "status": len(status_codes.STATUS_NAMES), "criterion": 4}
    assert summary.status.values.tolist() == list(status_codes.STATUS_NAMES.values())
    assert summary.criterion.values.tolist() == list(summary_module.PAPER_PATTERN_CRITERIA)
    assert summary.hazard_ratio.dims == ("condition",)


def test_summary_carries_the_truths(replicates, summary):
    for name in ("true_log_hr_conditional", "true_log_hr_marginal", "true_median_treated", "true_median_control"):
        np.testing.assert_array_equal(summary[name].transpose("condition", "endpoint").values,
                                      replicates[name].transpose("condition", "endpoint").values)


def cell(replicates, name, c, m, k, e):
    return replicates[name].isel(condition=c).sel({"method": m, "cohort": k, "endpoint": e}).values


def test_summary_values_match_direct_numpy(replicates, summary):
    for c in range(2):
        for m in ("paper", "recommended"):
            for k in ("full", "matched"):
                for e in ("pfs", "os"):
                    got = summary.isel(condition=c).sel({"method": m, "cohort": k, "endpoint": e})
                    log_hr, se, lower, upper = (cell(replicates, v, c, m, k, e)
                                                for v in ("log_hr", "se", "ci_lower", "ci_upper"))
                    used = np.isfinite(log_hr) & np.isfinite(se) & np.isfinite(lower) & np.isfinite(upper)
                    x = log_hr[used]
                    n = used.sum()
                    assert got.n_used == n
                    for suffix in ("conditional", "marginal"):
                        truth = float(replicates[f"true_log_hr_{suffix}"].isel(condition=c).sel(endpoint=e))
                        assert got[f"bias_{suffix}"] == pytest.approx(np.mean(x - truth), rel=1e-12, abs=1e-15)
                        assert got[f"bias_{suffix}_mcse"] == pytest.approx(x.std(ddof=1) / np.sqrt(n), rel=1e-12)
                        assert got[f"mse_{suffix}"] == pytest.approx(np.mean((x - truth) ** 2), rel=1e-12)
                        assert got[f"mean_abs_error_{suffix}"] == pytest.approx(np.mean(np.abs(x - truth)), rel=1e-12)
                        cover = np.mean((lower[used] <= truth) & (truth <= upper[used]))
                        assert got[f"coverage_{suffix}"] == pytest.approx(cover, rel=1e-12)
                        if truth == 0:
                            assert np.isnan(got[f"relative_bias_{suffix}"])
                        else:
                            assert got[f"relative_bias_{suffix}"] == pytest.approx(np.mean((x - truth) / truth), rel=1e-12)
                    assert got.emp_se == pytest.approx(x.std(ddof=1), rel=1e-12)
                    assert got.mod_se == pytest.approx(np.sqrt(np.mean(se[used] ** 2)), rel=1e-12)
                    for variable, power in (("p_logrank", "power_logrank"), ("p_value", "power_cox")):
                        p = cell(replicates, variable, c, m, k, e)
                        tested = p[np.isfinite(p)]
                        assert got[power] == pytest.approx(np.mean(tested < 0.05), rel=1e-12)
                        assert got[f"n_used_{power.split('_')[1]}"] == tested.size
                    status = cell(replicates, "status", c, m, k, e)
                    for code, label in status_codes.STATUS_NAMES.items():
                        assert got.status_rate.sel(status=label) == pytest.approx(np.mean(status == code), rel=1e-12)
                    tested = np.isfinite(cell(replicates, "p_logrank", c, m, k, e))
                    events = (cell(replicates, "events_treated", c, m, k, e)
                              + cell(replicates, "events_control", c, m, k, e))[tested]
                    assert got.mean_events == pytest.approx(events.mean(), rel=1e-12)
                    n_t = replicates.n_treated.isel(condition=c).sel({"method": m, "cohort": k}).values
                    n_c = replicates.n_control.isel(condition=c).sel({"method": m, "cohort": k}).values
                    allocation = (n_t / (n_t + n_c))[tested].mean()
                    assert got.mean_allocation == pytest.approx(allocation, rel=1e-12)
                    hazard_ratio = np.exp(float(replicates.true_log_hr_marginal.isel(condition=c).sel(endpoint=e)))
                    assert got.schoenfeld_power == pytest.approx(
                        schoenfeld_power(events.mean(), hazard_ratio, allocation=allocation), rel=1e-12)
                    assert got.freedman_power == pytest.approx(
                        freedman_power(events.mean(), hazard_ratio, ratio=allocation / (1 - allocation)), rel=1e-12)
                    median = cell(replicates, "median_treated", c, m, k, e)
                    reached = median[np.isfinite(median)]
                    assert got.median_treated_bias == pytest.approx(reached.mean() - 10.5, rel=1e-12)
                    assert got.median_treated_not_reached == pytest.approx(
                        np.mean(np.isnan(median[status == 0])), rel=1e-12)


def test_summary_cohort_and_method_level_values(replicates, summary):
    for c in range(2):
        for m in ("paper", "recommended"):
            pairs = replicates.n_pairs.isel(condition=c).sel({"method": m}).values.astype(float)
            got = summary.isel(condition=c).sel({"method": m})
            assert got.n_pairs_mean == pytest.approx(pairs.mean(), rel=1e-12)
            assert got.n_pairs_sd == pytest.approx(pairs.std(ddof=1), rel=1e-12)
            assert [float(got[f"n_pairs_{q}"]) for q in ("min", "q1", "median", "q3", "max")] == \
                pytest.approx(np.quantile(pairs, [0, 0.25, 0.5, 0.75, 1]).tolist(), rel=1e-12)
            for k in ("full", "matched"):
                smd = replicates.max_abs_smd.isel(condition=c).sel({"method": m, "cohort": k}).values
                assert got.balance_rate.sel(cohort=k) == pytest.approx(np.mean(smd[np.isfinite(smd)] < 0.1), rel=1e-12)
            matched = replicates.isel(condition=c).sel({"method": m, "cohort": "matched"})
            criteria = np.stack([
                matched.p_logrank.sel(endpoint="pfs").values < 0.05,
                matched.p_logrank.sel(endpoint="os").values >= 0.05,
                matched.p_orr.values < 0.05,
                matched.p_dcr.values >= 0.05,
            ])
            share = np.mean(criteria.all(axis=0))
            assert got.paper_pattern_rate == pytest.approx(share, rel=1e-12, abs=1e-15)
            assert got.paper_pattern_rate_mcse == pytest.approx(np.sqrt(share * (1 - share) / 300), rel=1e-12, abs=1e-15)
            np.testing.assert_allclose(got.paper_pattern_criterion_rate.values, criteria.mean(axis=1), rtol=1e-12)
            ps = replicates.ps_status.isel(condition=c).sel({"method": m}).values
            assert got.ps_status_rate.sel(status="ok") == pytest.approx(np.mean(ps == 0), rel=1e-12)
    np.testing.assert_allclose(summary.status_rate.sum("status"), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(summary.null_truth.values, [[True, True], [False, False]])


def test_summary_attrs_round_trip_and_table(replicates, summary, tmp_path):
    assert summary.attrs["alpha"] == 0.05
    assert summary.attrs["source_created_at"] == replicates.attrs["created_at"]
    assert summary.attrs["created_at"] != replicates.attrs["created_at"]
    for key in ("psmsim_version", "root_seed", "block_size", "n_replicates", "scenario_name"):
        assert summary.attrs[key] == replicates.attrs[key]
    path = tmp_path / "summary.nc"
    summary.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as reopened:
        xr.testing.assert_identical(reopened.load(), summary)

    table = summary_module.summary_to_frame(summary)
    assert list(table.columns) == ["condition", "hazard_ratio", "method", "cohort", "endpoint",
                                   "estimand", "measure", "estimate", "mcse", "paired_reference"]
    assert (table.paired_reference == "").all()  # no paired differences in this summary
    expected_rows = sum(v.size for n, v in summary.data_vars.items() if not n.endswith("_mcse"))
    assert len(table) == expected_rows
    row = table[(table.measure == "bias_marginal") & (table.condition == 1)
                & (table.method == "recommended") & (table.cohort == "matched") & (table.endpoint == "os")]
    target = summary.isel(condition=1).sel({"method": "recommended", "cohort": "matched", "endpoint": "os"})
    assert row.estimate.item() == float(target.bias_marginal)
    assert row.mcse.item() == float(target.bias_marginal_mcse)
    assert row.hazard_ratio.item() == 0.6
    status_row = table[(table.measure == "status_rate[no_events]") & (table.condition == 0)
                       & (table.method == "paper") & (table.cohort == "full") & (table.endpoint == "pfs")]
    assert status_row.estimate.item() == float(
        summary.status_rate.isel(condition=0).sel({"method": "paper", "cohort": "full", "endpoint": "pfs",
                                                   "status": "no_events"}))
    pairs = table[table.measure == "n_pairs_q1"]
    assert len(pairs) == 4 and set(pairs.cohort) == {""} and pairs.mcse.isna().all()
    table.to_csv(tmp_path / "summary.csv", index=False)


def test_the_table_has_the_paired_differences_with_their_reference(replicates, summary):
    """summary.csv carries bias_difference / power_difference (as summary.nc, merged by the
    run) with their MCSE, n_used and the method each is measured against."""
    from analysis.performance.paired import paired_differences

    methods = replicates.method.values.tolist()
    references = {methods[0]: methods[0], methods[1]: methods[0]}
    paired = paired_differences(replicates, reference=references)
    merged = xr.merge([summary, paired.transpose(*summary.power_logrank.dims)], compat="no_conflicts",
                      join="exact", combine_attrs="override")
    table = summary_module.summary_to_frame(merged)
    for measure in ("bias_difference", "power_difference", "n_used_bias_difference", "n_used_power_difference"):
        rows = table[table.measure == measure]
        assert len(rows) == merged[measure].size
        assert {m: set(g) for m, g in rows.groupby("method").paired_reference} == {
            m: {r} for m, r in references.items()}
        for _, row in rows.iterrows():
            cell = merged.isel(condition=int(row.condition)).sel(
                {"method": row.method, "cohort": row.cohort, "endpoint": row.endpoint})
            assert row.estimate == float(cell[measure])
            if not measure.startswith("n_used"):
                assert row.mcse == float(cell[f"{measure}_mcse"])
    assert (table[~table.measure.str.contains("_difference")].paired_reference == "").all()
    read_back = pd.read_csv(io.StringIO(table.to_csv(index=False)), keep_default_na=False)
    assert set(read_back[read_back.measure == "bias_difference"].paired_reference) == {methods[0]}


def test_summary_all_failed_cell_is_nan_not_error(replicates):
    broken = replicates.copy(deep=True)
    cell_index = {"condition": 0, "method": 1, "cohort": 1}
    for name in ("log_hr", "se", "ci_lower", "ci_upper", "p_value", "p_logrank"):
        broken[name][cell_index] = np.nan
    broken["status"][cell_index] = status_codes.NO_MATCHES
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = summary_module.summarise_run(broken)
    failed = summary.isel(condition=0, method=1, cohort=1)
    assert (failed.n_used == 0).all() and (failed.n_used_logrank == 0).all()
    assert failed.power_logrank.isnull().all() and failed.bias_marginal.isnull().all()
    assert failed.schoenfeld_power.isnull().all()
    assert (failed.status_rate.sel(status="no_matches") == 1.0).all()


def test_summarise_run_refuses_a_foreign_dataset(replicates):
    with pytest.raises(ValueError, match="missing variables.*p_logrank"):
        summary_module.summarise_run(replicates.drop_vars("p_logrank"))
    with pytest.raises(ValueError, match="n_pairs: dims"):
        summary_module.summarise_run(replicates.assign(n_pairs=replicates.max_abs_smd))
    with pytest.raises(ValueError, match="alpha"):
        summary_module.summarise_run(replicates, alpha=0.0)


def with_estimands(replicates):
    """The synthetic run in the current format: method ``recommended`` targets the ATE (code
    1), ``paper`` the ATT; per-estimand truths with MC SEs; one condition's ``recommended``
    replicates beyond 250 not simulated (code -1, NaN estimates), as a padded sweep point."""
    ds = replicates.copy()
    C, R = ds.sizes["condition"], ds.sizes["replicate"]
    codes = np.zeros((C, R, 2), np.int8)
    codes[:, :, 1] = 1
    codes[1, 250:, 1] = -1
    ds["log_hr"] = ds.log_hr.where(xr.DataArray(codes, dims=("condition", "replicate", "method")) >= 0)
    ds["analysis_estimand"] = (("condition", "replicate", "method"), codes)
    table = np.stack([ds.true_log_hr_marginal.values, ds.true_log_hr_marginal.values - 0.04,
                      ds.true_log_hr_marginal.values - 0.02, ds.true_log_hr_conditional.values], axis=1)
    ds["true_log_hr"] = (("condition", "estimand", "endpoint"), table)
    ds["true_log_hr_mcse"] = (("condition", "estimand", "endpoint"), np.full(table.shape, 0.003))
    ds["true_median_treated_mcse"] = (("condition", "endpoint"), np.full((C, 2), 0.05))
    ds["true_median_control_mcse"] = (("condition", "endpoint"), np.full((C, 2), 0.05))
    # Medians by estimand population (months): ATT under treatment = the treated arm's 10.5;
    # under control the treated would have had 8.0 (the control arm has 7.0); none for the
    # conditional estimand.
    under_treatment = np.stack([np.full((C, 2), v) for v in (10.5, 9.8, 9.9, np.nan)], axis=1)
    under_control = np.stack([np.full((C, 2), v) for v in (8.0, 7.4, 7.5, np.nan)], axis=1)
    per_estimand = ("condition", "estimand", "endpoint")
    ds["true_median_under_treatment"] = (per_estimand, under_treatment)
    ds["true_median_under_treatment_mcse"] = (per_estimand, np.full(under_treatment.shape, 0.02))
    ds["true_median_under_control"] = (per_estimand, under_control)
    ds["true_median_under_control_mcse"] = (per_estimand, np.full(under_control.shape, 0.03))
    return ds.assign_coords(estimand=["att", "ate", "ato", "conditional"])


def test_medians_are_measured_against_their_own_population(replicates):
    """Crude slot: the arms' medians (10.5 treated, 7.0 control arm); adjusted slot: the
    method's estimand population under treatment and under control (``paper`` ATT: 10.5 and
    8.0, the treated had they received control; ``recommended`` ATE: 9.8 and 7.4), the
    target's MC SE folded into the bias MCSE."""
    ds = with_estimands(replicates)
    got = summary_module.summarise_run(ds)
    expected = {("full", "paper"): (10.5, 7.0, 0.05, 0.05), ("full", "recommended"): (10.5, 7.0, 0.05, 0.05),
                ("matched", "paper"): (10.5, 8.0, 0.02, 0.03),
                ("matched", "recommended"): (9.8, 7.4, 0.02, 0.03)}
    for c in range(2):
        for (k, m), (treated, control, mcse_t, mcse_c) in expected.items():
            for e in ("pfs", "os"):
                at = got.isel(condition=c).sel({"method": m, "cohort": k, "endpoint": e})
                for arm, truth, truth_mcse in (("treated", treated, mcse_t), ("control", control, mcse_c)):
                    assert float(at[f"true_median_{arm}_target"]) == truth
                    assert float(at[f"true_median_{arm}_target_mcse"]) == truth_mcse
                    median = cell(ds, f"median_{arm}", c, m, k, e)
                    if k == "matched" and m == "recommended" and c == 1:
                        median = median[:250]  # the replicates the condition simulated
                    reached = median[np.isfinite(median)]
                    assert float(at[f"median_{arm}_bias"]) == pytest.approx(reached.mean() - truth, abs=1e-12)
                    run_mcse = reached.std(ddof=1) / np.sqrt(reached.size)
                    assert float(at[f"median_{arm}_bias_mcse"]) == pytest.approx(np.hypot(run_mcse, truth_mcse),
                                                                                 rel=1e-10)
    assert got.true_median_under_control.sel(estimand="att").values.tolist() == [[8.0, 8.0]] * 2


def test_each_method_is_measured_against_its_own_estimand(replicates, summary):
    ds = with_estimands(replicates)
    got = summary_module.summarise_run(ds)
    assert got.analysis_estimand.values.tolist() == [["att", "ate"]] * 2
    assert "estimand_note" not in got.attrs and "estimand_note" in summary.attrs
    for c in range(2):
        for m, estimand in (("paper", "att"), ("recommended", "ate")):
            for k in ("full", "matched"):
                for e in ("pfs", "os"):
                    at = got.isel(condition=c).sel({"method": m, "cohort": k, "endpoint": e})
                    truth = float(ds.true_log_hr.isel(condition=c).sel(estimand=estimand if k == "matched" else "att",
                                                                         endpoint=e))
                    assert float(at.true_log_hr_target) == truth
                    log_hr, se, lower, upper = (cell(ds, v, c, m, k, e) for v in ("log_hr", "se", "ci_lower", "ci_upper"))
                    used = np.isfinite(log_hr) & np.isfinite(se) & np.isfinite(lower) & np.isfinite(upper)
                    x = log_hr[used]
                    assert float(at.bias_marginal) == pytest.approx((x - truth).mean(), abs=1e-12)
                    run_mcse = x.std(ddof=1) / np.sqrt(x.size)
                    assert float(at.bias_marginal_mcse) == pytest.approx(np.hypot(run_mcse, 0.003), rel=1e-10)
                    covered = (lower[used] <= truth) & (truth <= upper[used])
                    assert float(at.coverage_marginal) == pytest.approx(covered.mean(), abs=1e-12)
                    # the conditional truth's MC SE is folded in as well
                    assert float(at.bias_conditional_mcse) == pytest.approx(np.hypot(run_mcse, 0.003), rel=1e-10)
    frame = summary_module.summary_to_frame(got)
    rows = frame[(frame.measure == "bias_marginal") & (frame.method == "recommended")]
    assert set(rows.estimand) == {"att", "ate"}  # full (crude) rows: ATT; matched: the method's
    assert set(rows[rows.cohort == "matched"].estimand) == {"ate"}
