"""sim/cli/run_options.py: `run` and `sweep` take one definition of their shared options
(same names, order, types, defaults; only the help of --replicates, --block-size and --out says
where a sweep's defaults come from), `samplesize` the same worker options, and all three refuse
a bad --jobs or a --scheduler without Dask in one line before anything runs."""

from pathlib import Path

import pytest

from sim.cli import main
from tests.sim.cli.helpers import assert_one_line_error, invoke

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"
SWEEP = ROOT / "tests" / "data" / "sweeps" / "small_factorial.toml"
SHARED = ["replicates", "seed", "jobs", "block_size", "backend", "scheduler", "out", "force", "quiet"]


def options(command):
    return {p.name: p for p in main.commands[command].params if p.param_type_name == "option"}


def describe(option):
    return (option.opts, option.type.to_info_dict(), option.default, option.is_flag, option.show_default)


def test_run_and_sweep_share_one_definition_of_their_options():
    run, sweep = options("run"), options("sweep")
    assert [name for name in run if name in SHARED] == SHARED == [name for name in sweep if name in SHARED]
    for name in SHARED:
        assert describe(run[name]) == describe(sweep[name]), name
        if name not in ("replicates", "block_size", "out"):
            assert run[name].help == sweep[name].help, name
    assert "per grid point" in sweep["replicates"].help and "the sweep's" in sweep["block_size"].help
    assert "<sweep name>" in sweep["out"].help and "<sweep name>" not in run["out"].help
    samplesize = options("samplesize")
    for name in ("jobs", "backend", "scheduler"):
        assert describe(samplesize[name]) == describe(run[name]) and samplesize[name].help == run[name].help


@pytest.mark.parametrize("command", [
    ("run", LIU2021), ("sweep", LIU2021, SWEEP), ("samplesize", LIU2021, "--endpoint", "pfs", "--target-power", "0.8"),
])
@pytest.mark.parametrize("args, fragment", [
    (("--jobs", "0"), "--jobs 0: must be a positive number of workers or -1 for all cores"),
    (("--jobs", "-2"), "--jobs -2: must be a positive number of workers"),
    (("--scheduler", "tcp://127.0.0.1:1"), "--scheduler: only used with --backend dask"),
])
def test_bad_worker_options_are_refused_up_front(tmp_path, command, args, fragment):
    out = tmp_path / "o"
    assert_one_line_error(invoke(*command, *args, "--out", out), fragment)
    assert not out.exists()
