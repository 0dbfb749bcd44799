"""A run streamed block by block gives the replicates and summary of the whole-array path."""

import numpy as np
import pytest
import xarray as xr

from analysis.performance.paired import paired_differences
from analysis.performance.summary import summarise_run
from sim.run.orchestrate import run_scenario, summarise_folder
from sim.run.store import BLOCK_FOLDER, REPLICATES_FILE, SUMMARY_NC, open_replicates
from sim.run.atomic_files import read_dataset
from sim.scenario import load_scenario


def _assert_summaries_close(a: xr.Dataset, b: xr.Dataset, rtol=1e-12):
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        x, y = a[name], b[name].transpose(*a[name].dims)
        if np.issubdtype(x.dtype, np.number):
            np.testing.assert_allclose(x.values, y.values, rtol=rtol, atol=1e-15, equal_nan=True, err_msg=name)
        else:
            assert (x.values == y.values).all(), name


@pytest.fixture(scope="module")
def streamed(tmp_path_factory, liu2021_small_truth_path):
    out = tmp_path_factory.mktemp("run") / "liu"
    outcome = run_scenario(load_scenario(liu2021_small_truth_path), replicates=30, block_size=8, jobs=1, out=out, quiet=True)
    return out, outcome


def test_streamed_summary_equals_the_whole_array_summary(streamed):
    out, outcome = streamed
    replicates = open_replicates(out)
    assert replicates.sizes["replicate"] == 30 and replicates.log_hr.isnull().sum() < replicates.log_hr.size
    summary = summarise_run(replicates)  # the whole-array path, with the paired differences
    paired = paired_differences(replicates, reference={"recommended": "paper"}).transpose(*summary.power_logrank.dims)
    whole = xr.merge([summary, paired], compat="no_conflicts", join="exact", combine_attrs="override")
    _assert_summaries_close(whole, outcome.summary)
    _assert_summaries_close(whole, read_dataset(out / SUMMARY_NC))


def test_summarise_folder_reads_block_by_block_and_agrees(streamed):
    out, outcome = streamed
    again = summarise_folder(out)
    _assert_summaries_close(outcome.summary, again.summary)
    assert again.report.splitlines()[:3] == outcome.report.splitlines()[:3]


def test_keep_summary_writes_no_replicates_and_removes_the_blocks(tmp_path, streamed, liu2021_small_truth_path):
    out, outcome = streamed
    lean = run_scenario(load_scenario(liu2021_small_truth_path), replicates=30, block_size=8, jobs=1, out=tmp_path / "lean",
                        quiet=True, keep="summary")
    assert lean.replicates_path is None
    assert not (tmp_path / "lean" / REPLICATES_FILE).exists()
    assert not (tmp_path / "lean" / BLOCK_FOLDER).exists()
    _assert_summaries_close(outcome.summary, lean.summary, rtol=0)  # same blocks, same order: identical


def test_unknown_keep_is_refused(tmp_path, liu2021_small_truth_path):
    with pytest.raises(ValueError, match="keep"):
        run_scenario(load_scenario(liu2021_small_truth_path), replicates=2, block_size=2, jobs=1, out=tmp_path / "x",
                     quiet=True, keep="everything")


def test_one_read_per_group_gives_the_summary_of_the_separate_passes_to_the_last_bit(streamed):
    from analysis.performance.accumulate import INTERVAL_VARIABLES
    from analysis.performance.paired import merge_paired_states, paired_difference_state, paired_from_state
    from analysis.performance.summary import summarise_blocks
    from functools import reduce
    from sim.run.orchestrate import summarise_with_differences

    out, outcome = streamed
    replicates = open_replicates(out)
    groups = [replicates.isel(replicate=slice(start, start + 8)) for start in range(0, 30, 8)]
    references = {"recommended": "paper"}
    reads, written = [], []

    def blocks():
        reads.append("all")
        return iter(groups)

    def intervals():
        reads.append("intervals")
        return (group[list(INTERVAL_VARIABLES)] for group in groups)

    fused = summarise_with_differences(blocks, references, attrs=dict(replicates.attrs), each=written.append,
                                       intervals=intervals)
    assert reads == ["all", "intervals"] and len(written) == len(groups)  # every group read once in full
    # the composition it replaces: summarise_blocks' two passes, then the paired pass
    summary = summarise_blocks(lambda: iter(groups), attrs=dict(replicates.attrs))
    paired = reduce(merge_paired_states, (paired_difference_state(g, reference=references) for g in groups))
    separate = xr.merge([summary, paired_from_state(paired).transpose(*summary.power_logrank.dims)],
                        compat="no_conflicts", join="exact", combine_attrs="override")
    _assert_summaries_close(separate, fused, rtol=0)


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, streamed, liu2021_small_truth_path):
    out, outcome = streamed
    scenario = load_scenario(liu2021_small_truth_path)
    resumed = tmp_path / "resumed"
    run_scenario(scenario, replicates=30, block_size=8, jobs=1, out=resumed, quiet=True, keep="replicates")
    for stem in ("c0000_b000001", "c0000_b000003"):  # as if the run had been killed before these
        (resumed / BLOCK_FOLDER / f"{stem}.npz").unlink()
    (resumed / REPLICATES_FILE).unlink()
    again = run_scenario(scenario, replicates=30, block_size=8, jobs=2, out=resumed, quiet=True)
    _assert_summaries_close(outcome.summary, again.summary, rtol=0)
    first, second = open_replicates(out), open_replicates(resumed)
    for ds in (first, second):
        ds.attrs.pop("created_at")
    xr.testing.assert_identical(first, second)


def test_a_failing_summary_leaves_no_replicates_file(tmp_path, monkeypatch, liu2021_small_truth_path):
    import sim.run.orchestrate as orchestrate

    def broken(*args, **kwargs):
        raise RuntimeError("summary bug")

    monkeypatch.setattr(orchestrate, "summarise_state", broken)
    with pytest.raises(RuntimeError, match="summary bug"):
        run_scenario(load_scenario(liu2021_small_truth_path), replicates=6, block_size=3, jobs=1, out=tmp_path / "f",
                     quiet=True)
    assert not (tmp_path / "f" / REPLICATES_FILE).exists()
    assert not list((tmp_path / "f").glob(".*.tmp"))


def test_groups_folded_while_the_run_computes_give_the_summary_read_after_it(tmp_path, monkeypatch,
                                                                            liu2021_small_truth_path):
    import sim.run.orchestrate as orchestrate
    from sim.run.orchestrate import summarise_with_differences
    from sim.run.store import group_keys

    monkeypatch.setattr(orchestrate, "group_keys", lambda keys: group_keys(keys, replicates=6))  # 5 groups
    out = tmp_path / "run"
    outcome = run_scenario(load_scenario(liu2021_small_truth_path), replicates=30, block_size=3, jobs=2, out=out,
                           quiet=True)
    replicates = open_replicates(out)
    groups = [replicates.isel(replicate=slice(start, start + 6)) for start in range(0, 30, 6)]
    after = summarise_with_differences(lambda: iter(groups), {"recommended": "paper"},
                                       attrs=dict(outcome.summary.attrs))
    _assert_summaries_close(after, outcome.summary, rtol=0)
