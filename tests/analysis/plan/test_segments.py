"""Batches joined into one call of the engine (analysis.plan.segments): every number of each
segment is the one the segment gives alone, for the plans that may be joined; the others and
malformed segments are refused."""

from dataclasses import fields, replace

import numpy as np
import pytest

from analysis.plan.analyse import PlanResult, analyse_cohorts
from analysis.plan.options import PRESETS, make_plan
from analysis.plan.segments import SegmentStreams, concatenate_batches, same_design_levels, segments_allowed
from analysis.survival.endpoint import analyse_endpoint
from tests.analysis.plan.synthetic_cohorts import synthetic_batch

ARRAYS = [f.name for f in fields(PlanResult) if f.name not in ("plan", "propensity", "matching", "ps_columns",
                                                                "balance_covariates", "details", "estimand")]


def _segments(sizes, seed):
    rng = np.random.default_rng(seed)
    return [synthetic_batch(n, rng=rng, log_hr=-0.4, confounding=0.8, ties=bool(i % 2)) for i, n in enumerate(sizes)]


def _equal(a, b, where):
    assert a.dtype == b.dtype and a.shape == b.shape, where
    np.testing.assert_array_equal(a, b, err_msg=where)


@pytest.mark.parametrize("plan", [PRESETS["paper"], PRESETS["recommended"],
                                  make_plan("recommended", {"order": "random"}), make_plan("paper", {"matcher": "spss_fuzzy_v2"}),
                                  make_plan("recommended", {"ratio": 2, "replace": True})], ids=["paper", "recommended", "random_order", "fuzzy_v2", "ratio_2_replace"])
def test_joined_segments_give_each_segment_its_own_numbers(plan):
    """Segments of 40, 7, 1 and 52 cohorts with different event counts (the Cox Newton sums'
    widths differ), ties in every other one; each segment's generator drives its matching."""
    sizes = (40, 7, 1, 52)
    batches = _segments(sizes, 5)
    assert segments_allowed(plan) and same_design_levels(batches, plan)
    seeds = [np.random.SeedSequence(9, spawn_key=(s,)) for s in range(len(sizes))]
    joined = analyse_cohorts(concatenate_batches(batches), plan,
                             rng=SegmentStreams(tuple(np.random.default_rng(s) for s in seeds), sizes))
    rows = SegmentStreams((np.random.default_rng(0),) * len(sizes), sizes).slices()
    for batch, seed, part in zip(batches, seeds, rows):
        alone = analyse_cohorts(batch, plan, rng=np.random.default_rng(seed))
        for name in ARRAYS:
            if getattr(alone, name) is None:  # bootstrap_used without bootstrap
                assert getattr(joined, name) is None
                continue
            _equal(getattr(joined, name)[part], getattr(alone, name), name)
        for item in fields(alone.matching):
            _equal(getattr(joined.matching, item.name)[part], getattr(alone.matching, item.name), item.name)
        _equal(joined.propensity.ps[part], alone.propensity.ps, "ps")
        assert joined.ps_columns == alone.ps_columns


def test_plans_with_other_random_parts_or_pair_strata_are_not_joined():
    assert not segments_allowed(make_plan("recommended", {"cox_se": "bootstrap"}))
    assert not segments_allowed(make_plan("recommended", {"stratify_pairs": True}))
    assert not segments_allowed(make_plan("recommended", {"cox_se": "austin_cafri"}))
    assert not segments_allowed(make_plan("recommended", {"estimator": "iptw"}))
    batches = _segments((5, 5), 1)
    streams = SegmentStreams((np.random.default_rng(1), np.random.default_rng(2)), (5, 5))
    with pytest.raises(ValueError, match="segment streams need a plan"):
        analyse_cohorts(concatenate_batches(batches), make_plan("recommended", {"cox_se": "bootstrap"}), rng=streams)
    with pytest.raises(ValueError, match="segments covering the batch"):
        analyse_cohorts(batches[0], PRESETS["recommended"], rng=streams)


def test_segments_with_other_categorical_levels_are_not_joined():
    """A level of the categorical PS covariate absent from one segment would add a column to
    that segment's PS design."""
    batches = _segments((6, 6), 2)
    covariates = batches[1].covariates.copy()
    covariates[:, :, 5] = np.where(covariates[:, :, 5] == 2, 1.0, covariates[:, :, 5])
    missing = replace(batches[1], covariates=covariates)
    assert same_design_levels(batches, PRESETS["recommended"])
    assert not same_design_levels([batches[0], missing], PRESETS["recommended"])
    without_site = make_plan("recommended", ps_covariates=batches[0].covariate_names[:5])
    assert same_design_levels([batches[0], missing], without_site)


def test_concatenation_and_streams_check_their_inputs():
    a, b = _segments((3, 4), 3)
    joined = concatenate_batches([a, b])
    assert joined.n_replicates == 7 and np.array_equal(joined.pfs_months[3:], b.pfs_months)
    with pytest.raises(ValueError, match="different covariates"):
        concatenate_batches([a, replace(b, covariate_names=tuple(reversed(b.covariate_names)))])
    with pytest.raises(ValueError, match="one generator per segment"):
        SegmentStreams((np.random.default_rng(0),), (3, 4))
    assert SegmentStreams((None, None), (3, 4)).slices() == [slice(0, 3), slice(3, 7)]


def test_the_survival_pass_pads_each_segment_to_its_own_width():
    """analyse_endpoint on joined segments equals each segment alone, field by field, and
    refuses segments on the numpy path or not covering the batch."""
    batches = _segments((30, 3, 20), 4)
    joined = concatenate_batches(batches)
    weights = np.ones(joined.treated.shape)
    together = analyse_endpoint(joined.pfs_months, joined.pfs_event, joined.treated, weights=weights,
                                cluster="patient", segments=(30, 3, 20))
    start = 0
    for batch in batches:
        alone = analyse_endpoint(batch.pfs_months, batch.pfs_event, batch.treated, cluster="patient")
        part = slice(start, start + batch.n_replicates)
        for name in ("cox", "logrank", "median_treated", "median_control"):
            for item in fields(getattr(alone, name)):
                _equal(getattr(getattr(together, name), item.name)[part], getattr(getattr(alone, name), item.name),
                       f"{name}.{item.name}")
        start = part.stop
    with pytest.raises(ValueError, match="compiled path only"):
        analyse_endpoint(joined.pfs_months, joined.pfs_event, joined.treated, segments=(30, 3, 20), compiled=False)
    with pytest.raises(ValueError, match="summing to the 53 replicates"):
        analyse_endpoint(joined.pfs_months, joined.pfs_event, joined.treated, segments=(30, 3))
