"""Blocks computed in groups (sim.run.block_groups): byte for byte the files of blocks computed
one at a time, for every kind of plan (joined analysis or block by block inside the group), and
a run's folder is the same whether the runner groups its blocks or not."""

from pathlib import Path

import numpy as np
import pytest

from sim.calibrate.cache import calibrate_cached
from sim.run import runner
from sim.run.block_codec import encode_block
from sim.run.block_groups import GROUP_CELLS, group_size, grouped, simulate_group_parts
from sim.run.runner import BlockFailedError, BlockTask, RunConfig, compute_blocks, iter_conditions, simulate_block_parts
from sim.run.store import BlockKey, RunFolder
from sim.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[3]
SELECTION = ROOT / "scenarios" / "selection_example.toml"
#: The selection example at small calibration sizes, with methods of every kind: joined (a
#: caliper change, SPSS random order), block by block (bootstrap SEs, pair strata, weighting).
_TEXT = SELECTION.read_text()
SELECTION_TEXT = (_TEXT[:_TEXT.index("# Named methods")] + _TEXT[_TEXT.index("[simulation]"):]).replace(
    "block_size = 100", "block_size = 100\ncalibration_patients = 20000\ntruth_patients = 20000") + '''
[analysis.methods.random_order]
preset = "paper"
order = "random"

[analysis.methods.boot]
preset = "recommended"
cox_se = "bootstrap"
bootstrap_draws = 20

[analysis.methods.strata]
preset = "recommended"
stratify_pairs = true

[analysis.methods.weights]
preset = "recommended"
estimator = "iptw"
'''


def _bytes(parts) -> bytes:
    return encode_block(parts.data_vars, parts.coords, dict(parts.attrs))


def _tasks(scenario, calibration, keys, methods):
    return [BlockTask(key, 11, scenario, calibration, methods) for key in keys]


@pytest.fixture(scope="module")
def selection():
    scenario = parse_scenario(SELECTION_TEXT)
    return scenario, calibrate_cached(scenario)


def test_a_group_gives_each_block_the_bytes_it_gives_alone(liu2021, selection):
    """liu2021 (table mode, both presets) and the selection example with every kind of named
    method; blocks not adjacent, and a short one, as a resumed run's pending blocks are."""
    keys = [BlockKey(0, 0, 0, 100), BlockKey(0, 2, 200, 100), BlockKey(0, 3, 300, 100), BlockKey(0, 9, 900, 37)]
    cases = [(liu2021, calibrate_cached(liu2021), ("paper", "recommended")),
             (*selection, selection[0].analysis.method_names)]
    for scenario, calibration, methods in cases:
        tasks = _tasks(scenario, calibration, keys, methods)
        alone = [_bytes(simulate_block_parts(task)) for task in tasks]
        together = [_bytes(parts) for parts in simulate_group_parts(tasks)]
        assert together == alone, scenario.name


def test_a_group_holds_one_grid_point(liu2021):
    calibration = calibrate_cached(liu2021)
    tasks = _tasks(liu2021, calibration, [BlockKey(0, 0, 0, 5), BlockKey(1, 0, 0, 5)], ("paper",))
    with pytest.raises(ValueError, match="one grid point"):
        simulate_group_parts(tasks)


def test_group_size_fits_memory_and_leaves_every_worker_tasks():
    assert group_size(100, 100, 10_000, 2) == GROUP_CELLS // 10_000 == 10
    assert group_size(100, 100, 20, 2) == 2  # 10 tasks: 5 per worker
    assert group_size(100, 100, 7, 2) == 1
    assert group_size(100, 1_000, 10_000, 2) == 1  # a block of 1,000-patient cohorts is a group
    assert group_size(10, 100, 10_000, 1) == 100


def test_grouped_cuts_at_grid_points_and_at_size():
    class Task:
        def __init__(self, condition, block):
            self.key = BlockKey(condition, block, block * 5, 5)

    tasks = [Task(0, b) for b in range(5)] + [Task(1, b) for b in range(2)]
    groups = [[(t.key.condition, t.key.block) for t in group] for group in grouped(iter(tasks), 2)]
    assert groups == [[(0, 0), (0, 1)], [(0, 2), (0, 3)], [(0, 4)], [(1, 0), (1, 1)]]


def _blocks(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((folder / "blocks").iterdir())}


def _compute(liu2021, folder, config, work=simulate_block_parts):
    conditions = iter_conditions([liu2021])
    with RunFolder(folder, {"seed": config.seed, "block_size": config.block_size}) as run:
        compute_blocks(conditions, [calibrate_cached(liu2021)], config, run, work=work)
    return _blocks(folder)


def test_a_run_writes_the_same_files_grouped_or_not(liu2021, tmp_path):
    """120 replicates in blocks of 5: 23 pending blocks after the first, so groups of 5 on one
    job (:func:`group_size`); the same work without a group function runs block by block."""
    config = RunConfig(replicates=120, seed=3, block_size=5, jobs=1, quiet=True)
    grouped_files = _compute(liu2021, tmp_path / "grouped", config)
    plain_files = _compute(liu2021, tmp_path / "plain", config, work=lambda task: simulate_block_parts(task))
    assert len(grouped_files) == 2 * 24
    assert grouped_files == plain_files


def test_a_failing_group_is_computed_block_by_block_naming_the_block(liu2021, tmp_path, monkeypatch):
    """The blocks before the failing one are kept; the error names the failing block."""
    def fails_on_block_3(task):
        if task.key.block == 3:
            raise RuntimeError("boom")
        return simulate_block_parts(task)

    def group_fails(tasks):
        raise RuntimeError("group boom")

    monkeypatch.setitem(runner._GROUP_WORK, fails_on_block_3, group_fails)
    config = RunConfig(replicates=120, seed=3, block_size=5, jobs=1, quiet=True)
    with pytest.raises(BlockFailedError, match="block 3 of condition 0 failed: RuntimeError: boom"):
        _compute(liu2021, tmp_path / "run", config, work=fails_on_block_3)
    names = sorted(p.name for p in (tmp_path / "run" / "blocks").glob("*.npz"))
    assert names == [f"c0000_b{b:06d}.npz" for b in range(3)]
    assert np.all([len(p.read_bytes()) > 0 for p in (tmp_path / "run" / "blocks").glob("*.npz")])
