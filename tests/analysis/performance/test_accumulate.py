"""Tests of analysis/performance/accumulate.py (and the merge of mergeable.py).

One block (``summarise_run``) reproduces exactly the whole-array summary psmsim computed before
summaries were accumulated (``whole_array_summary``); blocks of random sizes merged in random
orders equal it to 1e-12 (relative), on random Datasets with NaNs, failed replicates,
all-failed and single-replicate cells, a NaN truth, missing pair counts and several conditions
and methods; merges are associative and commutative; states are small and survive netCDF;
bad merges and passes are refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from analysis import status as status_codes
from analysis.performance.accumulate import TRUTH_VARIABLES, CentreCoverageState, SummaryState
from analysis.performance.summary import summarise_blocks, summarise_run, summarise_state

from tests.analysis.performance.synthetic_replicates import make_replicates
from tests.analysis.performance.whole_array_summary import whole_array_summary

RTOL = 1e-12


def irregular_replicates(rng: np.random.Generator, *, n_conditions: int = 3, n_replicates: int = 120):
    """Synthetic replicates with three methods and the awkward cells a real run can produce."""
    base = make_replicates(rng=rng, n_conditions=n_conditions, n_replicates=n_replicates)
    third = make_replicates(rng=rng, n_conditions=n_conditions, n_replicates=n_replicates)
    third = third.isel(method=[1]).assign_coords(method=["caliper_0.05"])
    ds = xr.concat([base, third], dim="method", data_vars="minimal", coords="minimal",
                   compat="override", join="exact")
    ds = ds.assign_coords(hazard_ratio=("condition", np.linspace(1.0, 0.5, n_conditions)))
    analysis_vars = ("log_hr", "se", "ci_lower", "ci_upper", "p_value", "p_logrank",
                     "median_treated", "median_control")
    failed = {"condition": 0, "method": 1, "cohort": 1}  # every matched analysis failed
    for name in analysis_vars:
        ds[name][failed] = np.nan
    ds["status"][failed] = status_codes.NO_MATCHES
    ds["n_pairs"][{"condition": 0, "method": 1}] = -1
    ds["max_abs_smd"][failed] = np.nan
    if n_replicates > 1:  # one usable replicate in a cell
        lonely = {"condition": n_conditions - 1, "method": 0, "cohort": 0, "endpoint": 1,
                  "replicate": slice(1, None)}
        for name in analysis_vars:
            ds[name][lonely] = np.nan
        ds["status"][lonely] = status_codes.NO_EVENTS
    ds["n_pairs"][{"replicate": slice(0, None, 7), "method": 2}] = -1  # missing counts
    ds["true_median_control"][{"condition": n_conditions - 1}] = np.nan  # unknown truth
    return ds


def random_blocks(rng: np.random.Generator, ds: xr.Dataset, *, with_truths: bool):
    """``ds`` cut into blocks of one condition and a random run of replicates, shuffled."""
    blocks = []
    for condition in range(ds.sizes["condition"]):
        n = ds.sizes["replicate"]
        n_cuts = int(rng.integers(0, min(n, 12)))
        edges = [0, *np.sort(rng.choice(np.arange(1, n), n_cuts, replace=False)), n]
        for start, stop in zip(edges[:-1], edges[1:]):
            block = ds.isel(condition=[condition], replicate=slice(int(start), int(stop)))
            if not with_truths:  # as the runner writes them: no truths, coordinates or attrs
                block = block.drop_vars(list(TRUTH_VARIABLES)).drop_vars("hazard_ratio")
                block.attrs = {}
            blocks.append(block)
    order = rng.permutation(len(blocks))
    return [blocks[i] for i in order]


def merge_randomly(rng: np.random.Generator, states):
    states = list(states)
    while len(states) > 1:
        i = int(rng.integers(len(states) - 1))
        left, right = states.pop(i), states.pop(i)
        states.insert(i, left.merge(right) if rng.random() < 0.5 else right.merge(left))
    return states[0]


def streamed_summary(rng, ds, *, with_truths=True):
    blocks = random_blocks(rng, ds, with_truths=with_truths)
    truths = None if with_truths else ds[list(TRUTH_VARIABLES)]
    state = merge_randomly(rng, (SummaryState.from_block(b, truths=truths) for b in blocks))
    centres = state.centres()
    coverage = merge_randomly(rng, (CentreCoverageState.from_block(b, centres) for b in blocks))
    return summarise_state(state, coverage, attrs=None if with_truths else ds.attrs)


def largest_relative_difference(got: xr.Dataset, expected: xr.Dataset) -> float:
    """Check ``got`` against ``expected`` (same layout; floats to RTOL) and return max |Δ|/|x|."""
    assert list(got.data_vars) == list(expected.data_vars)
    assert set(got.coords) == set(expected.coords)
    for name in got.coords:
        xr.testing.assert_identical(got[name], expected[name])
    drop = ("created_at",)
    assert {k: v for k, v in got.attrs.items() if k not in drop} == \
        {k: v for k, v in expected.attrs.items() if k not in drop}
    largest = 0.0
    for name, variable in expected.data_vars.items():
        other = got[name]
        assert other.dims == variable.dims and other.dtype == variable.dtype, name
        assert other.attrs == variable.attrs, name
        if variable.dtype.kind != "f":
            np.testing.assert_array_equal(other.values, variable.values, err_msg=name)
            continue
        a, b = other.values, variable.values
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        finite = ~np.isnan(b)
        scale = np.maximum(np.abs(a[finite]), np.abs(b[finite]))
        difference = np.abs(a[finite] - b[finite])
        relative = np.where(scale > 0, difference / np.where(scale > 0, scale, 1.0), 0.0)
        assert (relative <= RTOL).all(), (name, relative.max())
        largest = max(largest, float(relative.max(initial=0.0)))
    return largest


@pytest.fixture(scope="module")
def datasets():
    rng = np.random.default_rng(2024)
    return [irregular_replicates(rng, n_conditions=c, n_replicates=r)
            for c, r in ((3, 120), (2, 37), (1, 1), (2, 2))]


def whole(ds):
    """The summary of ``ds`` as one block (checked against the whole-array oracle below)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return summarise_run(ds)


def test_one_block_reproduces_the_whole_array_summary_exactly(datasets):
    for ds in datasets:
        got = whole(ds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells, on purpose
            expected = whole_array_summary(ds)
        for summary in (got, expected):
            summary.attrs.pop("created_at")
        got = got.drop_vars("analysis_estimand")  # later additions: the per-estimand truths
        got.attrs.pop("estimand_note")
        # Every variable the whole-array summary had, bit for bit (later additions may follow).
        xr.testing.assert_identical(got[list(expected.data_vars)], expected)
        assert list(got.data_vars)[:len(expected.data_vars)] == list(expected.data_vars)


@pytest.mark.parametrize("with_truths", [True, False])
def test_blocks_merged_in_random_orders_equal_the_whole_array_summary(datasets, with_truths):
    rng = np.random.default_rng(7 + with_truths)
    largest = 0.0
    for ds in datasets:
        expected = whole(ds)
        for _ in range(3):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                got = streamed_summary(rng, ds, with_truths=with_truths)
            largest = max(largest, largest_relative_difference(got, expected))
    print(f"largest relative difference streamed vs whole-array: {largest:.3g}")


def test_one_replicate_per_block(datasets):
    ds = datasets[1]
    blocks = [ds.isel(replicate=[r], condition=[c])
              for c in range(ds.sizes["condition"]) for r in range(ds.sizes["replicate"])]
    got = summarise_blocks(lambda: iter(blocks))
    largest_relative_difference(got, whole(ds))


def state_values(state) -> dict:
    ds = state.to_dataset()
    return {name: ds[name].transpose(*sorted(ds[name].dims)).values for name in ds.data_vars}


def assert_states_close(first, second):
    a, b = state_values(first), state_values(second)
    assert a.keys() == b.keys()
    for name in a:
        if a[name].dtype.kind == "f":
            np.testing.assert_allclose(a[name], b[name], rtol=RTOL, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_merge_is_associative_and_commutative(datasets):
    ds = datasets[0]
    thirds = [ds.isel(replicate=slice(0, 20)), ds.isel(replicate=slice(20, 75)),
              ds.isel(replicate=slice(75, None))]
    a, b, c = (SummaryState.from_block(block) for block in thirds)
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    assert_states_close(left, right)
    assert_states_close(a.merge(b), b.merge(a))
    assert_states_close(left, SummaryState.from_block(ds))
    by_condition = [SummaryState.from_block(ds.isel(condition=[i])) for i in (2, 0, 1)]
    stacked = by_condition[0].merge(by_condition[1]).merge(by_condition[2])
    assert stacked.to_dataset().condition.values.tolist() == [0, 1, 2]
    assert_states_close(stacked, SummaryState.from_block(ds))


def test_state_size_does_not_grow_with_replicates():
    rng = np.random.default_rng(5)
    sizes = []
    for n in (50, 2000):
        ds = make_replicates(rng=rng, n_conditions=2, n_replicates=n)
        ds["n_pairs"][{"replicate": 0}] = np.arange(25, 45).reshape(1, -1)[:, :2]  # same support
        state = SummaryState.from_block(ds).to_dataset()
        sizes.append({name: variable.size for name, variable in state.data_vars.items()})
        assert state.sizes["n_pairs_value"] <= 20  # the values 25 ... 44 at most
    assert sizes[0].keys() == sizes[1].keys()
    for name, size in sizes[0].items():
        if "n_pairs_frequency" != name:
            assert sizes[1][name] == size, name


def test_states_round_trip_through_netcdf(datasets, tmp_path):
    ds = datasets[0]
    halves = [ds.isel(replicate=slice(0, 60)), ds.isel(replicate=slice(60, None))]
    states = [SummaryState.from_block(half) for half in halves]
    reopened = []
    for index, state in enumerate(states):
        path = tmp_path / f"state{index}.nc"
        state.to_dataset().to_netcdf(path, engine="h5netcdf")
        with xr.open_dataset(path, engine="h5netcdf") as stored:
            reopened.append(SummaryState.from_dataset(stored.load()))
    merged, merged_reopened = states[0].merge(states[1]), reopened[0].merge(reopened[1])
    xr.testing.assert_identical(merged.to_dataset(), merged_reopened.to_dataset())
    bare = merged.to_dataset()  # a store that keeps arrays and the state's attributes only
    for variable in bare.data_vars.values():
        variable.attrs = {}
    xr.testing.assert_identical(SummaryState.from_dataset(bare).to_dataset(), merged.to_dataset())
    coverage = CentreCoverageState.from_block(ds, merged.centres())
    path = tmp_path / "coverage.nc"
    coverage.to_dataset().to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as stored:
        coverage_reopened = CentreCoverageState.from_dataset(stored.load())
    first = summarise_state(merged, coverage)
    second = summarise_state(merged_reopened, coverage_reopened)
    for summary in (first, second):
        summary.attrs.pop("created_at")
    xr.testing.assert_identical(first, second)


def test_bad_merges_and_passes_are_refused(datasets):
    ds = datasets[0]
    first, second = ds.isel(replicate=slice(0, 60)), ds.isel(replicate=slice(60, None))
    state = SummaryState.from_block(first)
    with pytest.raises(ValueError, match="summary_state_alpha"):
        state.merge(SummaryState.from_block(second, alpha=0.1))
    other_truth = second.copy(deep=True)
    other_truth["true_log_hr_marginal"][{"condition": 1}] = 0.3
    with pytest.raises(ValueError, match="true_log_hr_marginal differs"):
        state.merge(SummaryState.from_block(other_truth))
    with pytest.raises(TypeError):
        state.merge(CentreCoverageState.from_block(first, state.centres()))
    whole_state = state.merge(SummaryState.from_block(second))
    with pytest.raises(ValueError, match="other replicates"):
        summarise_state(whole_state, CentreCoverageState.from_block(first, whole_state.centres()))
    with pytest.raises(ValueError, match="centres"):
        summarise_state(whole_state, CentreCoverageState.from_block(ds, state.centres()))
    with pytest.raises(ValueError, match="not a SummaryState"):
        SummaryState.from_dataset(xr.Dataset())
    stored = whole_state.to_dataset()
    stored.attrs["summary_state_format"] = 99
    with pytest.raises(ValueError, match="format 99"):
        SummaryState.from_dataset(stored)
    with pytest.raises(ValueError, match="none given"):
        summarise_blocks(lambda: iter([]))
    with pytest.raises(ValueError, match="truths: missing"):
        SummaryState.from_block(first.drop_vars(list(TRUTH_VARIABLES)),
                                truths=ds[["true_log_hr_marginal"]])
