"""Huge sizes never hang: blocks enumerated lazily, out-of-range sizes and seeds refused up
front in one line, a large run's time/disk/memory said before the rest starts (from its first
block), a run that cannot fit in memory refused naming the field."""

import itertools
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import sim.run.scale as scale
from sim.cli import main
from sim.run.runner import RunConfig, block_keys, iter_conditions, run_simulation
from sim.run.scale import RunScale, RunScaleError
from sim.run.store import RunFolder
from tests.sim.fake_blocks import fake_work

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"
TRUTH = {"true_log_hr_conditional": [-0.5, -0.4], "true_log_hr_marginal": [-0.45, -0.35],
         "true_median_treated": [10.2, 14.1], "true_median_control": [6.1, 9.6]}


def run(path, replicates, block_size=10, field="--replicates"):
    config = RunConfig(replicates=replicates, seed=1, block_size=block_size, jobs=1, quiet=True, size_field=field)
    with RunFolder(path, {"seed": 1, "block_size": block_size}) as folder:
        return run_simulation(iter_conditions(["s"]), [None], [TRUTH], config, folder,
                              attrs={"root_seed": 1}, work=fake_work)


def test_blocks_are_enumerated_lazily():
    assert not isinstance(block_keys(1, 23, 5), list)
    started = time.perf_counter()
    keys = list(itertools.islice(block_keys(2, 10**12, 1), 3))
    assert [k.block for k in keys] == [0, 1, 2] and time.perf_counter() - started < 1


def test_a_run_too_big_for_memory_is_refused_after_its_first_block(tmp_path):
    started = time.perf_counter()
    with pytest.raises(RunScaleError) as err:
        run(tmp_path / "huge", 10**12, field="--replicates 1000000000000")
    assert time.perf_counter() - started < 30
    message = str(err.value)
    assert message.startswith("--replicates 1000000000000: the results of 1,000,000,000,000 replicates need about ")
    assert "of memory and this machine has" in message and message.endswith("(the finished block is kept)")
    assert [p.name for p in (tmp_path / "huge" / "blocks").glob("*.npz")] == ["c0000_b000000.npz"]


def test_a_large_run_prints_its_estimate_before_the_rest(tmp_path, monkeypatch, capsys):
    run(tmp_path / "small", 30)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(scale, "LARGE_SECONDS", 0.0)
    run(tmp_path / "large", 30)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: 30 replicates: about ")
    assert " more on 1 worker, " in lines[0] and " on disk and " in lines[0]
    assert lines[0].endswith(" s)") and "(the first block: 10 replicates in " in lines[0]


def test_the_estimate_extrapolates_the_first_block():
    one = RunScale(first_size=100, seconds=2.0, file_bytes=200_000, memory_bytes=200_000,
                   to_do=1_000_000, total=1_000_000, workers=2)
    assert one.seconds_left == pytest.approx(2.0 / 100 * 999_900 / 2)
    assert one.disk_bytes == pytest.approx(4e9) and one.peak_memory == pytest.approx(5e9)
    assert one.describe() == ("1,000,000 replicates: about 2 h 46 min more on 2 workers, 4.0 GB on disk "
                              "and 5.0 GB of memory (the first block: 100 replicates in 2.00 s)")
    with pytest.raises(RunScaleError, match=r"^simulation.replicates = 1000000: .* 5.0 GB of memory and this machine has 4.0 GB"):
        one.check("simulation.replicates = 1000000", memory=4_000_000_000)
    one.check("x", memory=8_000_000_000)


def test_the_estimate_takes_its_speed_from_the_task_after_the_first_block():
    """The first block pays the process's first calls; the next task's speed is the one used."""
    timed = RunScale(first_size=100, seconds=0.12, file_bytes=200_000, memory_bytes=200_000,
                     to_do=1_000_000, total=1_000_000, workers=2, in_memory=False, rate_size=1_000, rate_seconds=0.25)
    assert timed.seconds_left == pytest.approx(0.25 / 1_000 * (1_000_000 - 1_100) / 2)
    assert timed.describe() == ("1,000,000 replicates: about 2 min 4 s more on 2 workers, 4.0 GB on disk "
                                "(the first block: 100 replicates in 0.12 s, the next 1,000 in 0.25 s)")


def test_a_run_times_the_task_after_its_first_block(tmp_path, monkeypatch, capsys):
    """Blocks of 10, fake work: the note names the first block and the next one (one job, no
    groups for a block function without a group function)."""
    monkeypatch.setattr(scale, "LARGE_SECONDS", 0.0)
    run(tmp_path / "large", 30)
    line = capsys.readouterr().err.strip()
    assert "(the first block: 10 replicates in " in line and ", the next 10 in " in line
    run(tmp_path / "one_block", 10)
    assert ", the next" not in capsys.readouterr().err


@pytest.mark.parametrize("args, line", [
    (["--block-size", "0"], "error: --block-size 0: must be 1 to 10000 (a block is held in memory whole)"),
    (["--seed", str(2**64)], "error: --seed 18446744073709551616: must be 0 to 9223372036854775807 (2**63 - 1: "
     "the seed must fit a signed 64-bit integer, for numpy's SeedSequence and the netCDF attribute)"),
    (["--replicates", str(10**12)], "error: --replicates 1000000000000: must be 1 to 1000000 (a million replicates "
     "take about three minutes and 3.5 GB on 2 cores; run several seeds into separate folders for more)"),
])
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_out_of_range_sizes_and_seeds_are_refused_up_front(tmp_path, command, args, line):
    files = [LIU2021] + ([ROOT / "tests" / "data" / "sweeps" / "small_factorial.toml"] if command == "sweep" else [])
    result = CliRunner().invoke(main, [command, *map(str, files), *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and result.output.splitlines() == [line]
    assert not (tmp_path / "o").exists()


def test_a_sweep_of_too_many_cohorts_is_refused_naming_the_field(tmp_path):
    sweep = tmp_path / "big.toml"
    text = (ROOT / "tests" / "data" / "sweeps" / "small_factorial.toml").read_text()
    sweep.write_text(text.replace("values = [1.0, 0.5]", f"values = {[0.5 + i / 20 for i in range(11)]}")
                     .replace("replicates = 8", "replicates = 1000000"))
    result = CliRunner().invoke(main, ["sweep", str(LIU2021), str(sweep), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and result.output.splitlines() == [
        "error: sweep.replicates = 1000000: 11 conditions × 1000000 replicates = 11,000,000 cohorts, more than "
        "the 10,000,000 a sweep can finish (about an hour at 3,000 per second); use fewer replicates or grid points"]
    assert not (tmp_path / "o").exists()
