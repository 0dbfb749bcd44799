"""The read-back of a run beside its computation (sim/run/readback.py): groups folded in order
whatever order their blocks finish in, as soon as they are complete; errors raised, not lost."""

import threading

import pytest

from sim.run.readback import ReadBack
from sim.run.store import BlockKey, group_keys


class _Folder:
    """Reads a group as its start; records which groups were read, and when."""

    def __init__(self, fail_at=None):
        self.read, self.fail_at = [], fail_at

    def read_blocks(self, group):
        if group.start == self.fail_at:
            raise OSError(28, "No space left on device")
        self.read.append(group.start)
        return group.start


KEYS = [BlockKey(0, b, 4 * b, 4) for b in range(6)]
GROUPS = group_keys(KEYS, replicates=8)  # three groups of two blocks


def test_groups_are_folded_in_order_as_soon_as_they_are_complete():
    folded, event = [], threading.Event()

    def fold(block):
        folded.append(block)
        event.set()

    read_back = ReadBack(_Folder(), GROUPS, fold)
    for key in (KEYS[3], KEYS[1], KEYS[2]):  # group 1 complete first, group 0 not yet
        read_back.finished(key)
    read_back.finished(KEYS[0])
    assert event.wait(5)  # group 0 folded before the run ends, then group 1 behind it
    for key in (KEYS[5], KEYS[4]):
        read_back.finished(key)
    read_back.close()
    assert folded == [0, 8, 16]


def test_a_group_never_completed_is_an_error():
    read_back = ReadBack(_Folder(), GROUPS, lambda block: None)
    for key in KEYS[:5]:
        read_back.finished(key)
    with pytest.raises(RuntimeError, match="group 2 of 3 never completed"):
        read_back.close()


def test_an_error_of_the_fold_is_raised_by_close():
    folder = _Folder(fail_at=8)
    read_back = ReadBack(folder, GROUPS, lambda block: None)
    for key in KEYS:
        read_back.finished(key)
    with pytest.raises(OSError, match="No space left"):
        read_back.close()
    assert folder.read == [0]  # nothing folded after the error


def test_abort_ends_the_thread_without_folding_the_rest():
    folder = _Folder()
    read_back = ReadBack(folder, GROUPS, lambda block: None)
    read_back.abort()
    for key in KEYS:
        read_back.finished(key)
    assert folder.read == [] and not read_back._thread.is_alive()


def test_the_spill_gives_back_each_groups_variables_as_read_from_its_blocks(tmp_path):
    import xarray as xr

    from analysis.performance.accumulate import INTERVAL_VARIABLES
    from sim.run.readback import GroupSpill
    from sim.run.runner import RunConfig, compute_blocks, iter_conditions, run_keys
    from sim.run.store import RunFolder
    from tests.sim.fake_blocks import fake_work

    config = RunConfig(replicates=22, seed=3, block_size=4, jobs=1, quiet=True)
    with RunFolder(tmp_path / "run", {"seed": 3}) as folder:
        compute_blocks(iter_conditions(["s"]), [None], config, folder, work=fake_work)
        groups = group_keys(run_keys([22], 4), replicates=8)  # 8, 8 and 6 replicates
        with GroupSpill(folder.path, INTERVAL_VARIABLES) as spill:
            for group in groups:
                spill.add(folder.read_blocks(group))
            spilled = list(spill.groups())
            assert list(spill.groups())[1].identical(spilled[1])  # read again, the same
            files = list((folder.path / "blocks").glob(".spill.*.tmp"))
            assert len(files) == 1
        assert not files[0].exists()  # removed on close
    assert len(spilled) == len(groups)
    for group, back in zip(groups, spilled):
        expected = folder.read_blocks(group, INTERVAL_VARIABLES)
        xr.testing.assert_identical(back, expected)
        assert back.attrs == expected.attrs and list(back.data_vars) == list(INTERVAL_VARIABLES)
