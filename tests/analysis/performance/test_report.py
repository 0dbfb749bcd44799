"""Tests of analysis/performance/text_report.py: the plain-text summary table."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.special import ndtr

from analysis.performance.summary import summarise_run
from analysis.performance.text_report import format_summary

CELL = ("condition", "replicate", "method", "cohort", "endpoint")


def small_replicates(rng: np.random.Generator, n_replicates: int = 200) -> xr.Dataset:
    """A small replicates Dataset in the results schema: condition 0 null, condition 1 HR 0.6."""
    C, R = 2, n_replicates
    shape = (C, R, 2, 2, 2)
    truth = np.array([[0.0, 0.0], [np.log(0.6), np.log(0.8)]])
    se = np.full(shape, 0.25)
    log_hr = truth[:, None, None, None, :] + rng.normal(0.0, 0.25, shape)
    status = np.where(rng.random(shape) < 0.04, 5, 0).astype(np.int8)
    log_hr[status != 0] = np.nan
    se[status != 0] = np.nan
    p_value = 2.0 * ndtr(-np.abs(log_hr / se))
    n_pairs = rng.integers(28, 40, (C, R, 2)).astype(np.int32)
    n_arm = np.stack([np.full((C, R, 2), 60), n_pairs], axis=-1).astype(np.int32)
    medians = rng.normal(9.0, 1.0, shape)
    return xr.Dataset(
        {
            "log_hr": (CELL, log_hr), "se": (CELL, se),
            "ci_lower": (CELL, log_hr - 1.96 * se), "ci_upper": (CELL, log_hr + 1.96 * se),
            "p_value": (CELL, p_value), "p_logrank": (CELL, p_value),
            "median_treated": (CELL, medians), "median_control": (CELL, medians - 2.0),
            "events_treated": (CELL, rng.integers(15, 30, shape).astype(np.int32)),
            "events_control": (CELL, rng.integers(15, 30, shape).astype(np.int32)),
            "status": (CELL, status),
            "n_treated": (CELL[:4], n_arm), "n_control": (CELL[:4], n_arm * np.array([2, 1])),
            "max_abs_smd": (CELL[:4], np.abs(rng.normal(0.08, 0.04, (C, R, 2, 2)))),
            "p_orr": (CELL[:4], rng.random((C, R, 2, 2)) * 0.1),
            "p_dcr": (CELL[:4], rng.random((C, R, 2, 2))),
            "n_pairs": (CELL[:3], n_pairs),
            "ps_status": (CELL[:3], np.zeros((C, R, 2), np.int8)),
            "true_log_hr_conditional": (("condition", "endpoint"), truth),
            "true_log_hr_marginal": (("condition", "endpoint"), truth),
            "true_median_treated": (("condition", "endpoint"), np.full((C, 2), 9.0)),
            "true_median_control": (("condition", "endpoint"), np.full((C, 2), 7.0)),
        },
        coords={
            "condition": [0, 1], "replicate": np.arange(R), "method": ["paper", "recommended"],
            "cohort": ["full", "matched"], "endpoint": ["pfs", "os"],
            "hazard_ratio": ("condition", [1.0, 0.6]),
        },
        attrs={"scenario_name": "synthetic", "n_replicates": R, "root_seed": 7,
               "created_at": "2026-01-01T00:00:00+00:00"},
    )


@pytest.fixture(scope="module")
def summary():
    return summarise_run(small_replicates(np.random.default_rng(123)))


@pytest.fixture(scope="module")
def text(summary):
    return format_summary(summary)


def row_cells(text: str, block_title: str, cohort: str, endpoint: str) -> list[str]:
    """The whitespace-split cells of one table row inside a block."""
    lines = text.splitlines()
    start = lines.index(block_title)
    for line in lines[start + 3:start + 7]:
        cells = line.split()
        if cells[0] == cohort and cells[1].rstrip("*") == endpoint:
            return cells
    raise AssertionError(f"row {cohort}/{endpoint} not found under {block_title!r}")


def test_title_header_and_block_order(text):
    lines = text.splitlines()
    assert lines[0] == "psmsim summary: scenario synthetic, 200 replicates per condition, alpha = 0.05, root seed 7"
    titles = [line for line in lines if ", method " in line]
    assert titles == [
        "hazard_ratio = 1.0, method paper",
        "hazard_ratio = 1.0, method recommended",
        "hazard_ratio = 0.6, method paper",
        "hazard_ratio = 0.6, method recommended",
    ]
    header = lines[lines.index(titles[0]) + 1]
    assert header == (
        "cohort    endpoint   power LR       power Cox      bias (marg.)     HR vs true             coverage       "
        "EmpSE   ModSE   events   Schoen.  Freed.   failed"
    )
    assert lines[lines.index(titles[0]) + 2] == "-" * len(header)
    table_rows = [line for line in lines if line.startswith(("full ", "matched "))]
    assert len(table_rows) == 16 and max(map(len, table_rows)) <= len(header)
    assert text.endswith("the bias MCSE includes the truth's own MC error.\n")
    assert "Note: these replicates predate the per-method estimand" in text  # the synthetic run's format
    assert max(len(line) for line in text[text.index("Abbreviations:"):].splitlines()) <= 100


def test_rows_show_the_summary_values(summary, text):
    for c, hazard_ratio in ((0, "1.0"), (1, "0.6")):
        for method in ("paper", "recommended"):
            title = f"hazard_ratio = {hazard_ratio}, method {method}"
            for cohort in ("full", "matched"):
                for endpoint in ("pfs", "os"):
                    cell = summary.isel(condition=c).sel(
                        {"method": method, "cohort": cohort, "endpoint": endpoint})
                    cells = row_cells(text, title, cohort, endpoint)
                    assert cells[1] == endpoint + ("*" if c == 0 else "")
                    assert cells[2] == f"{float(cell.power_logrank):.3f}±{float(cell.power_logrank_mcse):.3f}"
                    assert cells[3] == f"{float(cell.power_cox):.3f}±{float(cell.power_cox_mcse):.3f}"
                    assert cells[4] == f"{float(cell.bias_marginal):+.3f}±{float(cell.bias_marginal_mcse):.3f}"
                    hr = np.exp(float(cell.true_log_hr_marginal) + float(cell.bias_marginal))
                    assert cells[5:8] == [f"{hr:.3f}±{hr * float(cell.bias_marginal_mcse):.3f}", "vs",
                                          f"{np.exp(float(cell.true_log_hr_marginal)):.3f}"]
                    assert cells[8] == f"{float(cell.coverage_marginal):.3f}±{float(cell.coverage_marginal_mcse):.3f}"
                    assert cells[9:14] == [f"{float(cell.emp_se):.3f}", f"{float(cell.mod_se):.3f}",
                                           f"{float(cell.mean_events):.1f}",
                                           f"{float(cell.schoenfeld_power):.3f}",
                                           f"{float(cell.freedman_power):.3f}"]
                    failed = 1.0 - float(cell.status_rate.sel(status="ok"))
                    assert cells[14] == f"{100 * failed:.1f}%"


def test_method_lines(summary, text):
    block = summary.isel(condition=1).sel({"method": "recommended"})
    lines = text.splitlines()
    start = lines.index("hazard_ratio = 0.6, method recommended")
    pairs, ps_line, balance, pattern = lines[start + 7:start + 11]
    assert pairs.startswith(
        f"  matched pairs: mean {float(block.n_pairs_mean):.1f}±{float(block.n_pairs_mean_mcse):.1f}"
        f" (SD {float(block.n_pairs_sd):.1f}; min {float(block.n_pairs_min):.0f},"
    )
    rates = block.ps_status_rate
    expected = ", ".join(f"{name.replace('_', ' ')} {100 * float(rates.sel(status=name)):.1f}%"
                         for name in rates.status.values.tolist()
                         if name != "ok" and float(rates.sel(status=name)) > 0) or "all ok"
    assert pairs.endswith(f"max {float(block.n_pairs_max):.0f})") and "reported" not in pairs
    assert ps_line == f"  PS model/matching: {expected}"
    matched = block.sel(cohort="matched")
    assert balance.startswith("  balanced (max |SMD| < 0.1): full ")
    assert balance.endswith(f"matched {float(matched.balance_rate):.3f}±{float(matched.balance_rate_mcse):.3f}")
    assert pattern.startswith("  paper's pattern (matched: PFS LR p<0.05, OS LR p>=0.05, ORR p<0.05, DCR p>=0.05): "
                              f"{float(block.paper_pattern_rate):.3f}±{float(block.paper_pattern_rate_mcse):.3f}")
    criteria = " / ".join(f"{v:.3f}" for v in block.paper_pattern_criterion_rate.values)
    assert pattern.endswith(f"[each: {criteria}]")


def test_footer_explains_every_abbreviation(text):
    footer = text[text.index("Abbreviations:"):]
    for abbreviation in ("±", "±—", "LR", "Cox", "bias (marg.)", "HR vs true", "coverage", "EmpSE", "ModSE", "events",
                         "Schoen./Freed.", "failed", "NA", "*"):
        assert f"{abbreviation} =" in footer, abbreviation


def test_deterministic_and_survives_netcdf(summary, text, tmp_path):
    assert format_summary(summary) == text
    path = tmp_path / "summary.nc"
    summary.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as reopened:
        assert format_summary(reopened.load()) == text


def test_a_failed_cell_prints_na():
    replicates = small_replicates(np.random.default_rng(5), n_replicates=50)
    where = {"condition": 1, "method": 0, "cohort": 1, "endpoint": 0}
    for name in ("log_hr", "se", "ci_lower", "ci_upper", "p_value", "p_logrank"):
        replicates[name][where] = np.nan
    replicates["status"][where] = 3
    text = format_summary(summarise_run(replicates))
    cells = row_cells(text, "hazard_ratio = 0.6, method paper", "matched", "pfs")
    assert cells[2:12] == ["NA"] * 10
    assert cells[12] == "100.0%"


def test_true_values_per_condition_and_endpoint(summary, text):
    lines = text.splitlines()
    for c, hazard_ratio in ((0, "1.0"), (1, "0.6")):
        start = lines.index(f"hazard_ratio = {hazard_ratio}: true values")
        point = summary.isel(condition=c)
        for k, endpoint in enumerate(("pfs", "os")):
            at = point.sel(endpoint=endpoint)
            assert lines[start + 1 + k] == (
                f"  true {endpoint.upper()}: marginal HR in the treated (ATT) "
                f"{np.exp(float(at.true_log_hr_marginal)):.3f}, conditional HR "
                f"{np.exp(float(at.true_log_hr_conditional)):.3f}{' (of death after progression)' if endpoint == 'os' else ''}; "
                f"true medians {float(at.true_median_treated):.2f} "
                f"(treated) vs {float(at.true_median_control):.2f} (control) months")


def test_a_plain_run_is_named_by_its_scenario_and_shows_the_reported_pairs():
    replicates = small_replicates(np.random.default_rng(9), n_replicates=40).isel(condition=[1])
    replicates = replicates.drop_vars("hazard_ratio")
    summary = summarise_run(replicates)
    text = format_summary(summary, observed_pairs=34)
    assert "scenario synthetic, method paper" in text.splitlines()
    assert "Condition" not in text
    pairs = next(line for line in text.splitlines() if line.startswith("  matched pairs: mean"))
    assert f"{float(summary.n_pairs_mean.isel(condition=0, method=0)):.1f}" in pairs
    assert "; the study reported 34 (SD" in pairs


def test_an_mcse_that_is_not_estimable_prints_a_dash():
    replicates = small_replicates(np.random.default_rng(11), n_replicates=40)
    replicates["p_logrank"][:] = 0.001  # every replicate rejects: power 1, MCSE 0
    replicates["ps_status"][{"condition": 1, "method": 0, "replicate": slice(0, 20)}] = 1  # separation
    text = format_summary(summarise_run(replicates))
    cells = row_cells(text, "hazard_ratio = 0.6, method paper", "full", "pfs")
    assert cells[2] == "1.000±—"
    assert "±0.000" not in text
    assert "separation 50.0% (some covariate value occurs in one arm only" in text
