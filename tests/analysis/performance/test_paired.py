"""Paired differences between methods: exact on constructed data, and their MCSE is the SD of
the per-replicate differences (smaller than the unpaired one when estimates correlate)."""

import numpy as np
import pytest
import xarray as xr

from analysis.performance.paired import paired_differences


def replicates(seed=0, n=4000):
    rng = np.random.default_rng(seed)
    shared = rng.normal(-0.5, 0.3, size=n)
    log_hr = np.stack([shared, shared + 0.1 + rng.normal(0, 0.05, size=n)], axis=1)
    p = np.stack([rng.uniform(size=n), rng.uniform(size=n)], axis=1)
    p[0, 1] = np.nan
    return xr.Dataset({"log_hr": (("replicate", "method"), log_hr),
                       "p_logrank": (("replicate", "method"), p)},
                      coords={"replicate": np.arange(n), "method": ["paper", "recommended"]})


def test_paired_difference_and_its_mcse():
    ds = replicates()
    result = paired_differences(ds, reference="paper")
    diff = ds.log_hr.values[:, 1] - ds.log_hr.values[:, 0]
    cell = result.sel({"method": "recommended"})
    assert float(cell.bias_difference) == pytest.approx(diff.mean())
    assert float(cell.bias_difference_mcse) == pytest.approx(diff.std(ddof=1) / np.sqrt(diff.size))
    unpaired = np.sqrt(ds.log_hr.values.var(axis=0, ddof=1).sum() / diff.size)
    assert float(cell.bias_difference_mcse) < unpaired / 4
    assert abs(float(cell.bias_difference) - 0.1) < 4 * float(cell.bias_difference_mcse)
    assert int(cell.n_used_power_difference) == 3999
    hits = (ds.p_logrank.values < 0.05).astype(float)
    keep = np.isfinite(ds.p_logrank.values).all(axis=1)
    assert float(cell.power_difference) == pytest.approx((hits[keep, 1] - hits[keep, 0]).mean())
    assert float(result.sel({"method": "paper"}).bias_difference) == 0.0


def test_a_reference_per_method():
    """Each method against its own reference (a named method against its preset); an unknown
    reference is refused."""
    ds = replicates()
    third = ds.sel({"method": ["recommended"]}).assign_coords(method=["no_lab"])
    third["log_hr"] = third.log_hr + 0.05
    ds = xr.concat([ds, third], dim="method")
    result = paired_differences(ds, reference={"recommended": "paper", "no_lab": "recommended"})
    assert result.paired_reference.values.tolist() == ["paper", "paper", "recommended"]
    assert float(result.sel({"method": "no_lab"}).bias_difference) == pytest.approx(0.05)
    assert float(result.sel({"method": "no_lab"}).bias_difference_mcse) == pytest.approx(0.0, abs=1e-15)
    xr.testing.assert_identical(result.sel({"method": "recommended"}).bias_difference,
                                paired_differences(ds, reference="paper").sel({"method": "recommended"}).bias_difference)
    assert float(result.sel({"method": "paper"}).power_difference) == 0.0
    with pytest.raises(ValueError, match="reference method"):
        paired_differences(ds, reference={"no_lab": "wide"})


def test_blocks_merged_in_any_order_equal_the_whole_array():
    """The run summarises its blocks: paired states of disjoint replicates (over several
    conditions, with NaNs) merged in any order give the whole-array differences to 1e-12."""
    from functools import reduce

    from analysis.performance.paired import merge_paired_states, paired_difference_state, paired_from_state

    parts = []
    for condition in range(2):
        ds = replicates(seed=condition, n=600)
        ds["log_hr"] = ds.log_hr.where(np.random.default_rng(9).random(ds.log_hr.shape) > 0.1)
        parts.append(ds.expand_dims(condition=[condition]))
    whole = xr.concat(parts, dim="condition")
    expected = paired_differences(whole, reference="paper")
    blocks = [whole.isel(condition=[c], replicate=slice(start, start + 128))
              for c in (1, 0) for start in range(0, 600, 128)]
    states = [paired_difference_state(block, reference="paper") for block in blocks]
    rng = np.random.default_rng(3)
    merged = reduce(merge_paired_states, [states[i] for i in rng.permutation(len(states))])
    got = paired_from_state(merged).transpose(*expected.bias_difference.dims)
    for name in expected.data_vars:
        np.testing.assert_allclose(got[name].sel(condition=expected.condition).values, expected[name].values,
                                   rtol=1e-12, atol=1e-15, err_msg=name)
    assert got.attrs["reference_method"] == "paper"


def test_numpy_states_are_the_datasets_to_the_last_bit():
    """PairedState (what a run merges) gives the Datasets of paired_difference_state and
    merge_paired_states exactly, blocks of several conditions in any order, dims in any order."""
    from functools import reduce

    from analysis.performance.paired import PairedState, merge_paired_states, paired_difference_state

    parts = [replicates(seed=c, n=300).expand_dims(condition=[c]) for c in range(3)]
    blocks = [part.isel(replicate=slice(start, start + 100)) for part in parts for start in (0, 100, 200)]
    blocks[4] = blocks[4].transpose("method", "replicate", "condition")
    order = np.random.default_rng(5).permutation(len(blocks))
    for reference in ("paper", {"recommended": "paper"}):
        datasets = [paired_difference_state(blocks[i], reference=reference) for i in order]
        states = [PairedState.of(blocks[i], reference=reference) for i in order]
        for dataset, state in zip(datasets, states):
            xr.testing.assert_identical(state.to_dataset(), dataset)
        merged = reduce(merge_paired_states, datasets)
        xr.testing.assert_identical(reduce(PairedState.merge, states).to_dataset(), merged)
        assert merged.condition.values.tolist() == [0, 1, 2]
