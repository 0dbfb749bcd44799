"""psmsim sweep --mcse-target: blocks added only where a target is missed, each point
summarised on its own replicates, a killed and resumed run equal to an uninterrupted one."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from sim.cli import main
from sim.run.sweep_precision import McseTarget, McseTargetError, next_counts, parse_targets, point_errors

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"
SWEEP = ROOT / "tests" / "data" / "sweeps" / "small_factorial.toml"
TARGET = ["--mcse-target", "power=0.12", "--max-replicates", "24"]


def sweep(out, *extra):
    result = CliRunner().invoke(main, ["sweep", str(LIU2021), str(SWEEP), "--jobs", "1", "--quiet",
                                       "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result


def load(path):
    ds = xr.load_dataset(path, engine="h5netcdf")
    ds.attrs.pop("created_at", None)
    ds.attrs.pop("source_created_at", None)
    return ds


@pytest.fixture(scope="module")
def targeted(tmp_path_factory):
    out = tmp_path_factory.mktemp("precision") / "targeted"
    return out, sweep(out, *TARGET).output


def test_targets_parse_and_bad_ones_name_the_fix():
    assert parse_targets(["power=0.005", "bias=0.01"]) == (McseTarget("power", 0.005), McseTarget("bias", 0.01))
    for text, fragment in (("powr=0.01", "unknown measure 'powr'; did you mean 'power'? (allowed: power, bias, "
                                         "coverage)"),
                           ("power", "write MEASURE=MCSE"), ("power=-1", "must be a positive number"),
                           ("power=abc", "must be a positive number")):
        with pytest.raises(McseTargetError, match="--mcse-target") as err:
            parse_targets([text])
        assert fragment in str(err.value)


def test_next_counts_projects_from_the_mcse_in_whole_blocks_up_to_the_cap():
    # two points on two conditions; power 0.5 at n = 100: MCSE 0.05, so 0.025 needs 4 x 100
    summary = xr.Dataset(
        {"power_logrank": (("condition", "method", "cohort", "endpoint"), np.full((2, 1, 1, 1), 0.5)),
         "n_used_logrank": (("condition", "method", "cohort", "endpoint"), np.full((2, 1, 1, 1), 100))},
        coords={"condition": [0, 1], "method": ["paper"], "cohort": ["matched"], "endpoint": ["pfs"]})
    target = McseTarget("power", 0.025)
    assert point_errors(summary, target) == pytest.approx([0.05, 0.05], rel=1e-12)
    assert next_counts([100, 100], [0, 1], summary, [target], block_size=30, max_replicates=1000) == [420, 420]
    assert next_counts([100, 100], [0, 1], summary, [target], block_size=30, max_replicates=300) == [300, 300]
    assert next_counts([100, 100], [0, 1], summary, [McseTarget("power", 0.05)], block_size=30,
                       max_replicates=1000) == [100, 100]


def test_blocks_are_added_only_where_the_target_is_missed(targeted, tmp_path):
    out, output = targeted
    ds, summary = load(out / "replicates.nc"), load(out / "summary.nc")
    counts = summary.n_replicates.sel(caliper=0.1)
    # the first pass is 8 (the sweep's), the targets send hr 1.0 to 16 and hr 0.5 to 20 (cap 24)
    assert counts.sel(hr=1.0).item() == 16 and counts.sel(hr=0.5).item() == 20
    xr.testing.assert_equal(ds.n_replicates, summary.n_replicates)
    assert "point 0 (hr = 1.0, caliper = 0.02): 16 replicates; power" in output
    assert "4 grid points × 16–20 replicates" in output
    short = ds.sel(hr=1.0)
    assert (short.status.isel(replicate=slice(16, None)) == -1).all()
    assert short.log_hr.isel(replicate=slice(16, None)).isnull().all()
    assert summary.n_used_logrank.sel(hr=1.0).max().item() <= 16
    # each point is summarised on its own replicates: a plain sweep of 16 replicates (its blocks
    # reused from the same folder: the identity does not depend on the count) gives hr 1.0's
    plain = tmp_path / "plain"
    shutil.copytree(out, plain)
    sweep(plain, "--replicates", "16")
    measures = [name for name in summary.data_vars if name != "n_replicates"]
    expected = load(plain / "summary.nc")[measures].sel(hr=1.0)
    xr.testing.assert_allclose(summary[measures].sel(hr=1.0), expected, rtol=1e-12)


def test_a_killed_targeted_sweep_resumed_equals_an_uninterrupted_one(targeted, tmp_path):
    reference, output = targeted
    killed = tmp_path / "killed"
    shutil.copytree(reference, killed)
    for name in ("replicates.nc", "summary.nc", "summary.csv"):
        (killed / name).unlink()
    for block in sorted((killed / "blocks").glob("*.npz"))[1::2]:  # first-pass and later blocks
        block.unlink()
        block.with_suffix(".sha256").unlink(missing_ok=True)
    assert sweep(killed, *TARGET).output.split("\nwrote ")[0] == output.split("\nwrote ")[0]
    xr.testing.assert_identical(load(killed / "replicates.nc"), load(reference / "replicates.nc"))
    xr.testing.assert_identical(load(killed / "summary.nc"), load(reference / "summary.nc"))


def test_bad_target_options_give_one_line(tmp_path):
    for extra, fragment in ((["--mcse-target", "power=0.1", "--replicates", "10"],
                             "--mcse-target: 10 replicates are not a whole number of blocks of 4; replicates "
                             "are added block by block, so give --replicates 12"),
                            (["--max-replicates", "40"], "--max-replicates: only used with --mcse-target"),
                            (["--mcse-target", "power=0.1", "--max-replicates", "4"],
                             "--max-replicates 4: below the first pass of 8")):
        result = CliRunner().invoke(main, ["sweep", str(LIU2021), str(SWEEP), "--out", str(tmp_path / "o"), *extra])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {fragment}"), result.output
