"""Censoring (sim.generate.censoring): entry, cut-off, dropout against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from sim.generate.censoring import apply_censoring, draw_censoring, observe_outcomes
from sim.generate.outcomes import IllnessDeathModel, draw_illness_death
from sim.scenario.model import Assessment, Censoring, Transition


def event_probability(rate, accrual, cutoff, dropout):
    """P(T <= C) for T ~ Exp(rate), C = min(cutoff - E, D), E ~ U(0, A), D ~ Exp(dropout):
    rate / (rate + dropout) · (1 - (1/A) ∫_{cutoff-A}^{cutoff} exp(-(rate + dropout) c) dc)."""
    total = rate + dropout
    mean_survival = integrate.quad(lambda c: np.exp(-total * c), cutoff - accrual, cutoff)[0] / accrual
    return rate / total * (1.0 - mean_survival)


def test_entry_uniform_and_censoring_is_cutoff_minus_entry():
    times = draw_censoring(Censoring(accrual_months=24.0, cutoff_month=36.0), (200, 100),
                           rng=np.random.default_rng(1))
    assert times.entry_month.shape == (200, 100)
    assert times.entry_month.min() >= 0 and times.entry_month.max() < 24.0
    np.testing.assert_allclose(times.censor_months, 36.0 - times.entry_month, rtol=0, atol=1e-12)
    # mean and variance of U(0, 24): 12 and 48, within 4 MC SEs
    n = times.entry_month.size
    assert abs(times.entry_month.mean() - 12.0) < 4 * np.sqrt(48.0 / n)


def test_dropout_never_lengthens_follow_up():
    setting = Censoring(accrual_months=24.0, cutoff_month=36.0, dropout_rate=0.05)
    times = draw_censoring(setting, (100, 100), rng=np.random.default_rng(2))
    assert np.all(times.censor_months <= 36.0 - times.entry_month + 1e-12)
    assert np.mean(times.censor_months < 36.0 - times.entry_month) > 0.3


def test_entry_after_cutoff_gives_zero_follow_up():
    times = draw_censoring(Censoring(accrual_months=24.0, cutoff_month=12.0), (1, 1000),
                           rng=np.random.default_rng(3))
    assert np.all(times.censor_months >= 0)
    np.testing.assert_array_equal(times.censor_months == 0, times.entry_month >= 12.0)


@pytest.mark.parametrize("dropout", [0.0, 0.03])
def test_event_fraction_matches_closed_form_for_exponential(dropout):
    rate, accrual, cutoff = 0.08, 24.0, 30.0
    setting = Censoring(accrual_months=accrual, cutoff_month=cutoff, dropout_rate=dropout)
    shape = (10, 5000)
    rng = np.random.default_rng(4)
    exposure = rng.standard_exponential(shape)
    censor = draw_censoring(setting, shape, rng=rng).censor_months
    observed = apply_censoring(exposure / rate, exposure / rate, censor)
    expected = event_probability(rate, accrual, cutoff, dropout)
    n = exposure.size
    assert abs(observed.pfs_event.mean() - expected) < 4 * np.sqrt(expected * (1 - expected) / n)


def test_pfs_and_os_share_the_censoring_time():
    rng = np.random.default_rng(5)
    shape = (30, 200)
    model = IllnessDeathModel(Transition(), Transition(), Transition(), 0.1, 0.03, 0.15,
                              log_hr_pfs=-0.3, log_hr_os=-0.2)
    latent = draw_illness_death(rng.normal(size=shape), rng.random(shape) < 0.5, model, rng=rng)
    times = draw_censoring(Censoring(accrual_months=24.0, cutoff_month=30.0, dropout_rate=0.01),
                           shape, rng=rng)
    observed = apply_censoring(latent.pfs_months, latent.os_months, times.censor_months)
    assert np.all(observed.pfs_months <= observed.os_months)
    # No event after the cut-off: event times lie within follow-up, censored times equal it.
    assert np.all(observed.pfs_months <= times.censor_months)
    assert np.all(observed.os_months <= times.censor_months)
    np.testing.assert_array_equal(observed.pfs_months[~observed.pfs_event], times.censor_months[~observed.pfs_event])
    assert np.all(observed.pfs_months + times.entry_month <= 30.0 + 1e-9)
    # An OS event implies a PFS event; a censored PFS implies censored OS.
    assert np.all(observed.pfs_event[observed.os_event])
    assert not np.any(observed.os_event[~observed.pfs_event])
    np.testing.assert_array_equal(observed.pfs_event, latent.pfs_months <= times.censor_months)


def test_same_seed_identical_different_seed_different():
    setting = Censoring(accrual_months=24.0, cutoff_month=30.0, dropout_rate=0.02)
    first = draw_censoring(setting, (4, 30), rng=np.random.default_rng(7))
    second = draw_censoring(setting, (4, 30), rng=np.random.default_rng(7))
    other = draw_censoring(setting, (4, 30), rng=np.random.default_rng(8))
    np.testing.assert_array_equal(first.censor_months, second.censor_months)
    np.testing.assert_array_equal(first.entry_month, second.entry_month)
    assert not np.array_equal(first.entry_month, other.entry_month)


# ------------------------------------------------------------------------------------------
# The scan schedule

SCANS = Assessment(interval_months=2.0)


def test_scan_schedule_by_hand():
    """Scans at 2, 4, 6, ... months. Columns: progression at 3 (seen at the scan at 4);
    progression at 4 exactly (seen at 4); progression at 3 and death at 3.5 before the scan
    (the PFS event is the death); death without progression at 4.7 (exact); progression at 5
    with follow-up ending at 5.5 (the scan at 6 is not done: censored at the last scan, 4);
    no event by a follow-up of 1.5 (no scan done: censored at 0); progression at 3 seen at 4
    with follow-up ending at exactly 4."""
    pfs = np.array([3.0, 4.0, 3.0, 4.7, 5.0, 9.0, 3.0])
    os_ = np.array([20.0, 20.0, 3.5, 4.7, 20.0, 30.0, 20.0])
    progressed = np.array([True, True, True, False, True, True, True])
    censor = np.array([50.0, 50.0, 50.0, 50.0, 5.5, 1.5, 4.0])
    observed = observe_outcomes(pfs, os_, progressed, censor, SCANS)
    np.testing.assert_array_equal(observed.pfs_months, [4.0, 4.0, 3.5, 4.7, 4.0, 0.0, 4.0])
    np.testing.assert_array_equal(observed.pfs_event, [True, True, True, True, False, False, True])
    np.testing.assert_array_equal(observed.os_months, [20.0, 20.0, 3.5, 4.7, 5.5, 1.5, 4.0])
    np.testing.assert_array_equal(observed.os_event, [True, True, True, True, False, False,
                                                      False])


def test_without_a_schedule_observation_is_plain_censoring():
    rng = np.random.default_rng(9)
    pfs = rng.exponential(6.0, size=(5, 40))
    os_ = pfs + rng.exponential(4.0, size=pfs.shape)
    censor = rng.uniform(0, 20, size=pfs.shape)
    plain = apply_censoring(pfs, os_, censor)
    observed = observe_outcomes(pfs, os_, rng.random(pfs.shape) < 0.8, censor, None)
    for name in ("pfs_months", "pfs_event", "os_months", "os_event"):
        np.testing.assert_array_equal(getattr(observed, name), getattr(plain, name))


def test_scan_schedule_invariants_on_illness_death_times():
    """Every PFS time is a scan or a death (death time = OS time with an OS event); censored PFS
    times are the last scan at or before the censoring time; PFS <= OS; the OS is untouched;
    a PFS event is seen exactly when its recorded time is within follow-up."""
    rng = np.random.default_rng(10)
    shape = (40, 300)
    model = IllnessDeathModel(Transition(), Transition(), Transition(), 0.1, 0.03, 0.15)
    latent = draw_illness_death(rng.normal(size=shape), rng.random(shape) < 0.5, model, rng=rng)
    times = draw_censoring(Censoring(accrual_months=24.0, cutoff_month=30.0, dropout_rate=0.02),
                           shape, rng=rng)
    observed = observe_outcomes(latent.pfs_months, latent.os_months, latent.progressed,
                                times.censor_months, SCANS)
    on_grid = observed.pfs_months % SCANS.interval_months == 0
    is_death = observed.os_event & (observed.pfs_months == observed.os_months)
    assert np.all(on_grid | (observed.pfs_event & is_death))
    # A progression is dated at a scan, never before it happened.
    seen = observed.pfs_event & latent.progressed & ~is_death
    assert np.all(observed.pfs_months[seen] >= latent.pfs_months[seen])
    assert np.all(observed.pfs_months[seen] - latent.pfs_months[seen] < SCANS.interval_months)
    censored = ~observed.pfs_event
    np.testing.assert_array_equal(
        observed.pfs_months[censored],
        np.floor(times.censor_months[censored] / 2.0) * 2.0)
    assert np.all(observed.pfs_months <= observed.os_months)
    plain = apply_censoring(latent.pfs_months, latent.os_months, times.censor_months)
    np.testing.assert_array_equal(observed.os_months, plain.os_months)
    np.testing.assert_array_equal(observed.os_event, plain.os_event)
    # Scans lose events: a progression between the last scan and the cut-off is censored.
    assert observed.pfs_event.sum() < plain.pfs_event.sum()
    assert np.all(plain.pfs_event[observed.pfs_event])
