"""Kaplan–Meier curves of one analysed cohort (against lifelines) and their figure: the drawn
steps, censoring marks and numbers at risk are the curves' values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.plan.analyse import analyse_cohorts
from analysis.plan.options import make_plan
from analysis.plan.survival_curves import kaplan_meier_curves, numbers_at_risk
from analysis.plots.survival import kaplan_meier_figure, plot_kaplan_meier, risk_table_times
from tests.analysis.plots.cohorts import random_batch


@pytest.fixture(scope="module")
def analysed():
    batch = random_batch(np.random.default_rng(20210430), n_replicates=3)
    result = analyse_cohorts(batch, make_plan("recommended"), rng=np.random.default_rng(1), details=True)
    return batch, result


@pytest.mark.parametrize("replicate", [0, 2])
def test_curves_equal_lifelines(analysed, replicate):
    """Every arm's curve in both cohorts and endpoints equals lifelines' KaplanMeierFitter on the
    same patients (matched cohort: the matched patients)."""
    lifelines = pytest.importorskip("lifelines")
    batch, result = analysed
    curves = kaplan_meier_curves(batch, result, replicate=replicate)
    r = replicate
    for cohort in ("full", "matched"):
        weight = result.details[cohort].weights[r]
        for endpoint in ("pfs", "os"):
            time = (batch.pfs_months if endpoint == "pfs" else batch.os_months)[r]
            event = (batch.pfs_event if endpoint == "pfs" else batch.os_event)[r]
            for arm, in_arm in (("treated", batch.treated[r]), ("control", ~batch.treated[r])):
                keep = in_arm & (weight > 0)
                fitter = lifelines.KaplanMeierFitter().fit(time[keep], event[keep], weights=weight[keep])
                cell = curves.sel(cohort=cohort, endpoint=endpoint, arm=arm)
                steps = cell.time.values[cell.valid.values]
                np.testing.assert_array_equal(steps, np.unique(time[keep]))
                expected = fitter.survival_function_at_times(steps).values
                np.testing.assert_allclose(cell.survival.values[cell.valid.values], expected, rtol=1e-12)
                at_risk = fitter.event_table.loc[steps, "at_risk"].values
                np.testing.assert_allclose(cell.n_at_risk.values[cell.valid.values], at_risk)
                assert float(curves.n_patients.sel(cohort=cohort, arm=arm)) == weight[keep].sum()
            np.testing.assert_equal(float(curves.p_logrank.sel(cohort=cohort, endpoint=endpoint)),
                                    result.p_logrank[r, ("full", "matched").index(cohort),
                                                     ("pfs", "os").index(endpoint)])
    assert curves.attrs["n_pairs"] == int(result.n_pairs[r])


def test_curves_need_details(analysed):
    batch, _ = analysed
    plain = analyse_cohorts(batch, make_plan("paper"), rng=np.random.default_rng(1))
    with pytest.raises(ValueError, match="details=True"):
        kaplan_meier_curves(batch, plain)
    with pytest.raises(ValueError, match="replicates 0..2"):
        kaplan_meier_curves(batch, analysed[1], replicate=3)


def test_numbers_at_risk_count_patients_still_followed(analysed):
    batch, result = analysed
    curves = kaplan_meier_curves(batch, result, replicate=1)
    times = np.array([0.0, 3.0, 7.5, 12.0, 500.0])
    counts = numbers_at_risk(curves, times)
    weight = result.details["matched"].weights[1]
    for arm, in_arm in (("treated", batch.treated[1]), ("control", ~batch.treated[1])):
        keep = in_arm & (weight > 0)
        expected = [weight[keep][batch.os_months[1][keep] >= t].sum() for t in times]
        np.testing.assert_array_equal(counts.sel(cohort="matched", endpoint="os", arm=arm).values, expected)
    assert (counts.sel(time=500.0) == 0).all()


def test_risk_table_times():
    np.testing.assert_array_equal(risk_table_times(20.0), np.arange(0, 21, 3.0))
    np.testing.assert_array_equal(risk_table_times(40.0), np.arange(0, 37, 6.0))
    np.testing.assert_array_equal(risk_table_times(100.0), np.arange(0, 97, 12.0))


def test_plot_draws_the_curves_marks_and_numbers_at_risk(analysed):
    batch, result = analysed
    curves = kaplan_meier_curves(batch, result, replicate=0)
    ax = plot_kaplan_meier(curves, cohort="matched", endpoint="pfs",
                           arm_labels={"treated": "Combination", "control": "Sorafenib"})
    cell = curves.sel(cohort="matched", endpoint="pfs")
    lines = {line.get_label(): line for line in ax.get_lines()}
    n_treated = float(cell.n_patients.sel(arm="treated"))
    step = lines[f"Combination (n = {n_treated:.0f})"]
    treated = cell.sel(arm="treated")
    valid = treated.valid.values
    np.testing.assert_array_equal(step.get_xdata(), np.r_[0.0, treated.time.values[valid]])
    np.testing.assert_array_equal(step.get_ydata(), np.r_[1.0, treated.survival.values[valid]])
    assert step.get_drawstyle() == "steps-post"
    marks = [line for line in ax.get_lines() if line.get_label() == "_censored"]
    assert len(marks) == 2 and marks[0].get_marker() == "|"
    censored = treated.n_censored.values[valid] > 0
    np.testing.assert_array_equal(marks[0].get_xdata(), treated.time.values[valid][censored])
    assert ax.get_xlabel() == "Months since start of treatment"
    assert ax.get_ylabel() == "Progression-free survival probability"
    assert f"{curves.attrs['n_pairs']} pairs" in ax.get_title()
    _, summary, hazard_ratio = ax.get_title().splitlines()
    assert summary == (f"median {float(cell.median_treated):.1f} vs {float(cell.median_control):.1f} months; "
                       f"log-rank p = {float(cell.p_logrank):.3f}")
    assert hazard_ratio == (f"HR {math.exp(float(cell.log_hr)):.2f} (95% CI {math.exp(float(cell.ci_lower)):.2f}–"
                            f"{math.exp(float(cell.ci_upper)):.2f})")
    risk_ax = ax.risk_table_axes
    numbers = {text.get_gid(): text.get_text() for text in risk_ax.texts}
    times = risk_table_times(float(np.nanmax(cell.time.where(cell.valid).values)))
    expected = numbers_at_risk(cell, times)
    for arm in ("treated", "control"):
        for t in times:
            assert numbers[f"at_risk:{arm}:{t:g}"] == f"{float(expected.sel(arm=arm, time=t)):.0f}"
    assert [label.get_text() for label in risk_ax.get_yticklabels()] == ["Combination", "Sorafenib"]


def test_figure_has_the_four_panels_of_the_paper(analysed):
    batch, result = analysed
    figure = kaplan_meier_figure(kaplan_meier_curves(batch, result), title="Replicate 0")
    titles = [ax.get_title() for ax in figure.axes if ax.get_title() and not ax.get_title().startswith("Number")]
    assert [t.split(",")[0] for t in titles] == ["PFS", "OS", "PFS", "OS"]
    assert all(t.splitlines()[1].startswith("median ") for t in titles)
    assert ["before" in t for t in titles] == [True, True, False, False]
    assert figure.get_suptitle() == "Replicate 0"
