"""Operating-system errors are one line naming the path and the cause, exit code 2, and leave
nothing half-written (issue 8 item 6): a missing or unwritable output folder, a full disk (a
small tmpfs where the test may mount one, else an injected ENOSPC), also during a parallel
run, where joblib's ShutdownExecutorError and loky's callback tracebacks used to bury the cause."""

import errno
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import main
from sim.errors import PsmsimError, describe_os_error, find_os_error
from tests.sim.cli.helpers import invoke

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"


def one_error_line(output: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def _mount_tmpfs(path: Path, options: str) -> bool:
    """Mount a tmpfs on ``path`` when this process may (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0 or sys.platform != "linux":
        return False
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


def _unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path, request):
    """A folder on a tmpfs of ``request.param`` (e.g. "48k"; ``mounted=True``), or an ordinary
    folder (False) where the test injects ENOSPC instead."""
    folder = tmp_path / "disk"
    mounted = _mount_tmpfs(folder, f"size={request.param}")
    folder.mkdir(exist_ok=True)
    yield folder, mounted
    if mounted:
        _unmount(folder)


@pytest.fixture
def readonly_folder(tmp_path):
    """A folder this process cannot write: read-only tmpfs as root, else mode 0555."""
    folder = tmp_path / "readonly"
    if os.geteuid() == 0:
        if not _mount_tmpfs(folder, "ro,size=16k"):
            pytest.skip("running as root without permission to mount a read-only tmpfs")
        yield folder
        _unmount(folder)
    else:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def test_missing_parent_folder_of_out_and_json(tmp_path):
    missing = tmp_path / "no" / "such"
    line = one_error_line(invoke("cohort", LIU2021, "--seed", 1, "--out", missing / "c.csv").output)
    assert line == (f"error: --out {missing / 'c.csv'}: the folder {missing} does not exist; create it "
                    "first or choose another path")
    cohort = tmp_path / "c.csv"
    assert invoke("cohort", LIU2021, "--seed", 1, "--out", cohort).exit_code == 0
    line = one_error_line(invoke("analyse", cohort, "--json", missing / "a.json").output)
    assert line.startswith(f"error: --json {missing / 'a.json'}: the folder {missing} does not exist")
    assert not missing.exists()


def test_unwritable_output_folder(tmp_path, readonly_folder):
    cohort = tmp_path / "c.csv"
    assert invoke("cohort", LIU2021, "--seed", 1, "--out", cohort).exit_code == 0
    for args, option, target in [
        (("cohort", LIU2021, "--seed", 1, "--out", readonly_folder / "c.csv"), "--out", readonly_folder / "c.csv"),
        (("analyse", cohort, "--json", readonly_folder / "a.json"), "--json", readonly_folder / "a.json"),
        (("run", LIU2021, "--replicates", 2, "--quiet", "--out", readonly_folder / "run"), "--out",
         readonly_folder / "run"),
    ]:
        result = invoke(*args)
        assert result.exit_code == 2
        line = one_error_line(result.output)
        assert line.startswith(f"error: {option} {target}: the folder") and "is not writable" in line, line
    assert list(readonly_folder.iterdir()) == []


def test_a_permission_error_inside_the_writer_names_the_file(tmp_path, monkeypatch):
    """Past the up-front checks (e.g. permissions changed meanwhile), the writer's own error."""
    import sim.run.atomic_files as atomic_files

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".c.csv.x.tmp"))

    monkeypatch.setattr(atomic_files.tempfile, "mkstemp", refuse)
    line = one_error_line(invoke("cohort", LIU2021, "--seed", 1, "--out", tmp_path / "c.csv").output)
    assert line == f"error: {tmp_path / 'c.csv'}: permission denied (EACCES); choose a folder you can write to"


_FDOPEN = os.fdopen


class _FullDiskStream:
    """A file object whose writes fail like a full disk."""

    def __init__(self, handle):
        self._file = _FDOPEN(handle, "wb")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()

    def fileno(self):
        return self._file.fileno()

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        pass


@pytest.mark.parametrize("small_disk", ["8k"], indirect=True)
def test_full_disk_leaves_the_earlier_file_intact(small_disk, monkeypatch):
    folder, mounted = small_disk
    path = folder / "c.csv"
    path.write_text("earlier\n")
    if not mounted:
        import sim.run.atomic_files as atomic_files

        monkeypatch.setattr(atomic_files.os, "fdopen", lambda handle, mode: _FullDiskStream(handle))
    result = invoke("cohort", LIU2021, "--seed", 1, "--out", path, "--force")
    assert result.exit_code == 2
    assert one_error_line(result.output) == (
        f"error: {path}: no space left on the device (ENOSPC); free some space or write to another folder "
        "(a run resumes from its finished blocks with the same command)")
    assert path.read_text() == "earlier\n"
    assert sorted(p.name for p in folder.iterdir()) == ["c.csv"]  # no temporary file left


#: Without a tmpfs: a ``sitecustomize`` module (imported by the run and by each of its worker
#: processes, which write their own blocks) that lets the first two block writes through and
#: fails every later one with ENOSPC. The writes are counted in a shared file: each attempt
#: appends one byte (O_APPEND), and its offset says which attempt it was.
_INJECT_FULL_DISK = """
import errno, os
import sim.run.store as store

_write = store.BlockWriter.__call__


def _full_after_two(self, key, dataset):
    fd = os.open(os.environ["PSMSIM_TEST_WRITES"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, b"x")
        attempt = os.lseek(fd, 0, os.SEEK_CUR)
    finally:
        os.close(fd)
    if attempt > 2:
        raise OSError(errno.ENOSPC, "No space left on device", str(store._block_paths(self.folder, key)[0]))
    return _write(self, key, dataset)


store.BlockWriter.__call__ = _full_after_two
"""


@pytest.mark.parametrize("small_disk", ["48k"], indirect=True)
def test_full_disk_during_a_parallel_run_is_one_line(small_disk, liu2021_small_truth_path):
    """Two loky workers, blocks of one replicate; the disk fills at the third block. stderr
    holds exactly one line (no ShutdownExecutorError, no joblib warning); the finished blocks
    are whole (the same command resumes)."""
    folder, mounted = small_disk
    out = folder / "run"
    env = os.environ.copy()
    if not mounted:
        inject = folder.parent / "inject"
        inject.mkdir()
        (inject / "sitecustomize.py").write_text(_INJECT_FULL_DISK)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(inject), str(ROOT), env.get("PYTHONPATH", "")]))
        env["PSMSIM_TEST_WRITES"] = str(folder.parent / "writes")
    command = [sys.executable, "-c", "from sim.cli import main; main()", "run", str(liu2021_small_truth_path),
               "--replicates", "6", "--block-size", "1", "--jobs", "2", "--quiet", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert re.fullmatch(
        rf"error: {re.escape(str(out / 'blocks'))}/c0000_b00000[0-5]\.npz: no space left on the device \(ENOSPC\); "
        r"free some space or write to another folder \(a run resumes from its finished blocks with the same command\)",
        lines[0]), lines[0]
    blocks = out / "blocks"
    finished = sorted(p.stem for p in blocks.glob("*.sha256"))
    assert len(finished) == 2 and sorted(p.name for p in blocks.iterdir()) == sorted(
        f"{stem}{suffix}" for stem in finished for suffix in (".npz", ".sha256"))
    for stem in finished:  # whole blocks: the resume will use them
        digest = hashlib.sha256((blocks / f"{stem}.npz").read_bytes()).hexdigest()
        assert (blocks / f"{stem}.sha256").read_text().split()[0] == digest
    assert not (out / "replicates.nc").exists()


def test_a_shutdown_error_raised_while_handling_an_os_error_gives_the_os_error(tmp_path, monkeypatch):
    """joblib's ShutdownExecutorError (or any exception) raised while a full disk's OSError was
    being handled: the one line is the OSError's."""
    from joblib.externals.loky.process_executor import ShutdownExecutorError

    import sim.run.orchestrate as orchestrate

    target = tmp_path / "run" / "replicates.nc"

    def failing_run(*args, **kwargs):
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        except OSError:
            raise ShutdownExecutorError("cannot schedule new futures after shutdown")

    monkeypatch.setattr(orchestrate, "run_scenario", failing_run)
    result = invoke("run", LIU2021, "--replicates", 2, "--quiet", "--out", tmp_path / "run")
    assert one_error_line(result.output).startswith(f"error: {target}: no space left on the device (ENOSPC)")


def test_find_and_describe_os_errors():
    rename = OSError(errno.EXDEV, "Invalid cross-device link", "/a/.x.tmp", None, "/b/x")
    assert describe_os_error(rename) == "/a/.x.tmp → /b/x: invalid cross-device link (EXDEV)"
    assert describe_os_error(OSError(errno.EROFS, "Read-only file system", "/ro/f")) == (
        "/ro/f: read-only file system (EROFS); choose a writable folder")
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("wrapper") from inner
    except RuntimeError as outer:
        found = find_os_error(outer)
    assert found is not None and found.errno == errno.ENOSPC
    assert find_os_error(PsmsimError("no OS error here")) is None
    assert find_os_error(ValueError("x")) is None


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`psmsim analyse c.csv | head -1`: no traceback and no error line, exit code 1."""
    cohort = tmp_path / "c.csv"
    assert invoke("cohort", LIU2021, "--seed", 1, "--out", cohort).exit_code == 0
    process = subprocess.Popen([sys.executable, "-c", "from sim.cli import main; main()", "analyse", str(cohort)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 1 and stderr == "", stderr
