"""``psmsim samplesize``: the search loop of a sample-size search on the runner.

A search solves one design quantity (``n`` patients, or at a fixed n the ``follow_up`` months
after accrual or the ``accrual_rate`` in patients per month) for a target power of one test
(log-rank or Cox, of PFS or OS) in one design (:mod:`sim.scenario.designs`: ``rct`` or
``psm``). Round by round, :func:`analysis.performance.samplesize.next_step` (a pure function
of the finished rounds) names the candidates and the replicates per candidate; the round runs
as one grid of conditions (one per candidate) through :func:`sim.run.runner.run_simulation`.

Folder (one per search)::

    DIR/run.lock                    held (fcntl.flock, with the PID) while the search runs
    DIR/samplesize.json             the search's identity (written first; checked on rerun)
    DIR/rounds/round00/ …           one run folder per round (run.json, blocks/)
    DIR/samplesize.nc, .csv         the answer (schema: docs/results_schema.md)

Resume. Each round folder has the identity and resume rules of ``psmsim run``
(:class:`sim.run.store.RunFolder`). A rerun of the same command replays the search: the first
round is decided by the settings alone, every next round by the rounds before it, so the same
rounds are proposed again, their finished blocks are read back and only missing blocks are
computed; the answer is bit-identical to an uninterrupted search. Another search in ``DIR``
(a different identity) is refused unless ``force`` (which removes the rounds).

Seeds. Block b of every candidate of round r draws from ``SeedSequence(root_seed,
spawn_key=(r, b, stream))``: the candidates of a round share their random numbers (common
random numbers: a cluster per replicate for the curve's robust variance), rounds are
independent, and round 0 is exactly the seeding of a plain ``psmsim run`` of the design
(stream 0 the cohorts, the method's preset's stream its random parts).

The designs are not recalibrated: every candidate runs with the calibration of the scenario
the search started from, and the true marginal HR, the event probability and Schoenfeld's and
Freedman's n are those of the design at a reference value (n: the study's own size; other
quantities: the scenario's own follow-up or accrual rate at the fixed n).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import xarray as xr

from analysis.performance.samplesize import RoundResult, SearchSettings, SearchStep, next_step
from analysis.plan.options import Plan
from sim.errors import RunFolderError
from sim.run.results import block_dataset
from sim.run.runner import BlockTask, RunConfig, block_rng, iter_conditions, run_identity, run_simulation
from sim.run.samplesize_setup import SampleSizeRequest, SearchSetup, prepare_search
from sim.run.folder_lock import LOCK_FILE, FolderLock
from sim.run.store import BlockKey, RunFolder
from sim.run.atomic_files import atomic_write_bytes
from sim.scenario.model import Scenario

__all__ = ["SampleSizeCell", "RoundData", "SearchOutcome", "simulate_samplesize_block",
           "run_samplesize", "IDENTITY_FILE", "ROUNDS_FOLDER"]

IDENTITY_FILE = "samplesize.json"
ROUNDS_FOLDER = "rounds"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SampleSizeCell:
    """What a worker needs for one candidate of one round: its design, the plan, the method's
    label, its random stream (that of its preset, as in a plain run) and the round (which
    seeds it)."""

    scenario: Scenario
    plan: Plan
    method: str
    stream: int
    round: int

    @property
    def source_text(self) -> str:
        return self.scenario.source_text


def simulate_samplesize_block(task: BlockTask) -> xr.Dataset:
    """Generate and analyse one block of one candidate (seeds: the module docstring)."""
    from analysis.plan.analyse import analyse_cohorts
    from sim.generate.cohorts import generate_cohorts

    cell: SampleSizeCell = task.scenario
    seed_key = BlockKey(cell.round, task.key.block, task.key.start, task.key.size)
    batch = generate_cohorts(cell.scenario, task.calibration, task.key.size,
                             rng=block_rng(task.root_seed, seed_key, 0))
    result = analyse_cohorts(batch, cell.plan, rng=block_rng(task.root_seed, seed_key, cell.stream))
    return block_dataset({cell.method: result}, condition=task.key.condition, start=task.key.start)


@dataclass(frozen=True)
class RoundData:
    """One finished round's per-replicate outcomes, each shaped (candidate, replicate).

    Attributes
    ----------
    values : ndarray of float, shape (candidate,)
    rejected, rejected_other, rejected_both : ndarray of bool
        The searched test of the endpoint, the same test of the other endpoint, both.
    events : ndarray of float
        Events of the endpoint in the analysed cohort (full for rct, matched for psm).
    events_other : ndarray of float
    pairs : ndarray of float
        Matched pairs (NaN for the rct design, which is not matched).
    failed : ndarray of bool
        The analysis of the endpoint has a status other than ok (counted as not rejected).
    """

    values: np.ndarray
    rejected: np.ndarray
    rejected_other: np.ndarray
    rejected_both: np.ndarray
    events: np.ndarray
    events_other: np.ndarray
    pairs: np.ndarray
    failed: np.ndarray

    def primary(self) -> RoundResult:
        return RoundResult(self.values, self.rejected)


def round_outcomes(dataset: xr.Dataset, values: np.ndarray, setup: SearchSetup) -> RoundData:
    """The per-replicate outcomes of a round's combined Dataset (dims condition, replicate,
    method, cohort, endpoint)."""
    request = setup.request
    part = dataset.sel({"method": setup.method, "cohort": setup.cohort})
    p_name = "p_logrank" if request.test == "logrank" else "p_value"

    def rejects(endpoint: str) -> np.ndarray:
        p = part[p_name].sel(endpoint=endpoint).transpose("condition", "replicate").values
        return np.nan_to_num(p, nan=1.0) < request.alpha

    def events(endpoint: str) -> np.ndarray:
        chosen = part.sel(endpoint=endpoint)
        total = chosen.events_treated.astype(float) + chosen.events_control.astype(float)
        return total.transpose("condition", "replicate").values

    other = setup.other_endpoint
    primary, secondary = rejects(request.endpoint), rejects(other)
    status = part.status.sel(endpoint=request.endpoint).transpose("condition", "replicate").values
    if request.design == "psm":
        pairs = part.n_pairs.transpose("condition", "replicate").values.astype(float)
    else:
        pairs = np.full(primary.shape, np.nan)
    return RoundData(np.asarray(values, float), primary, secondary, primary & secondary,
                     events(request.endpoint), events(other), pairs, status != 0)


@dataclass(frozen=True)
class SearchOutcome:
    """A finished search: its setup, rounds, final step and run time."""

    setup: SearchSetup
    rounds: tuple[RoundData, ...]
    step: SearchStep
    seconds: float
    folder: Path


def search_identity(setup: SearchSetup, version: str) -> dict[str, Any]:
    """What names a search: its scenario, request and search settings (equal → replay)."""
    import hashlib

    return json.loads(json.dumps({
        "kind": "samplesize",
        "format": FORMAT_VERSION,
        "psmsim_version": version,
        "scenario_sha256": hashlib.sha256(setup.scenario.source_text.encode()).hexdigest(),
        "request": asdict(setup.request),
        "settings": asdict(setup.settings),
        "method": setup.method,
        "seed": setup.seed,
        "block_size": setup.block_size,
    }, sort_keys=True))


def _refuse_foreign(out: Path, *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out}: exists and is not a folder; choose another path")
    if not force and out.is_dir() and not (out / IDENTITY_FILE).exists() and _holds_files(out):
        raise RunFolderError(f"--out {out}: folder is not empty and is not a psmsim sample-size "
                             "search; choose an empty or new folder, or pass --force to use it")


def _holds_files(out: Path) -> bool:
    """True when ``out`` holds anything but the lock file (left by a search killed before it
    wrote its identity)."""
    return any(entry.name != LOCK_FILE for entry in out.iterdir())


def _open_folder(out: Path, identity: dict, *, force: bool) -> None:
    """Create the search folder or check that it holds this search (else refuse or, with
    ``force``, remove the other search's own files)."""
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out}: exists and is not a folder; choose another path")
    path = out / IDENTITY_FILE
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except (OSError, ValueError):
            existing = None
        if existing == identity:
            return
        if not force:
            keys = (sorted(k for k in set(existing) | set(identity) if existing.get(k) != identity.get(k))
                    if isinstance(existing, dict) else ["identity file unreadable"])
            raise RunFolderError(f"--out {out}: holds another sample-size search (different "
                                 f"{', '.join(keys)}); choose a new folder or pass --force to replace it")
        _clear(out)
    elif out.exists() and _holds_files(out):
        if not force:
            raise RunFolderError(f"--out {out}: folder is not empty and is not a psmsim sample-size "
                                 "search; choose an empty or new folder, or pass --force to use it")
        _clear(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFolderError(f"--out {out}: cannot create the folder ({err.strerror})") from None
    atomic_write_bytes(path, json.dumps(identity, indent=2, sort_keys=True).encode())


def _clear(out: Path) -> None:
    """Remove a search's own files (identity, rounds, answer); nothing else."""
    from sim.run.samplesize_output import ANSWER_FILES

    shutil.rmtree(out / ROUNDS_FOLDER, ignore_errors=True)
    for name in (IDENTITY_FILE, *ANSWER_FILES):
        (out / name).unlink(missing_ok=True)


def _run_round(setup: SearchSetup, index: int, values: np.ndarray, replicates: int, *,
               out: Path, run_options: dict[str, Any], version: str) -> RoundData:
    cells = [SampleSizeCell(setup.design_at(float(v)), setup.plan, setup.method, setup.stream, index)
             for v in values]
    conditions = iter_conditions(cells, [{setup.request.solve: float(v)} for v in values])
    config = RunConfig(replicates=int(replicates), seed=setup.seed, block_size=setup.block_size,
                       methods=(setup.method,), **run_options)
    identity = run_identity(conditions, config, version)
    identity.update(kind="samplesize_round", round=index)
    folder = RunFolder(out / ROUNDS_FOLDER / f"round{index:02d}", identity)
    truth = setup.truth.as_variables()
    attrs = {"psmsim_version": version, "root_seed": setup.seed, "block_size": setup.block_size,
             "n_replicates": int(replicates), "scenario_name": setup.scenario.name,
             "samplesize_round": index}
    try:
        dataset = run_simulation(conditions, [setup.calibration] * len(cells), [truth] * len(cells),
                                 config, folder, attrs=attrs, work=simulate_samplesize_block)
    finally:
        close = getattr(folder, "close", None)
        if close is not None:
            close()
    return round_outcomes(dataset, values, setup)


def run_samplesize(
    scenario: Scenario,
    request: SampleSizeRequest,
    *,
    out: Path,
    jobs: int = -1,
    backend: str = "loky",
    scheduler: str | None = None,
    force: bool = False,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
) -> SearchOutcome:
    """Run (or resume) a sample-size search into ``out``, write its answer, return it.

    The folder is locked for the whole search like a run folder (``run.lock``: an exclusive
    ``flock`` holding this process's PID, :class:`sim.run.store.FolderLock`): a second search,
    run or sweep into ``out`` is refused, and so are ``psmsim report``/``plot`` until it ends.

    Raises
    ------
    PsmsimError
        An impossible request (named option and fix), before anything is written.
    RunFolderError
        ``out`` is locked by another process, holds another search (without ``force``) or
        files psmsim did not write.
    """
    from sim.run.identity import PSMSIM_VERSION

    started = time.perf_counter()
    out = Path(out)
    _refuse_foreign(out, force=force)  # before the setup's (possibly long) truth computation
    FolderLock.refuse_if_held(out)  # likewise, creating nothing
    setup = prepare_search(scenario, request)
    with FolderLock.acquire(out):  # one writer, as `psmsim run`; report and plot wait for it
        _open_folder(out, search_identity(setup, PSMSIM_VERSION), force=force)
        return _search(setup, out, started, jobs=jobs, backend=backend, scheduler=scheduler, quiet=quiet, log=log)


def _search(setup: SearchSetup, out: Path, started: float, *, jobs: int, backend: str, scheduler: str | None,
            quiet: bool, log: Callable[[str], None] | None) -> SearchOutcome:
    """The rounds of a search into the locked folder ``out``, then its answer."""
    from sim.run.identity import PSMSIM_VERSION
    from sim.run.samplesize_output import write_answer

    run_options = {"jobs": jobs, "backend": backend, "scheduler": scheduler, "quiet": quiet}
    rounds: list[RoundData] = []
    while True:
        step = next_step([r.primary() for r in rounds], setup.settings, guess=setup.guess)
        if step.action != "evaluate":
            break
        if log is not None:
            log(f"round {len(rounds) + 1}: {step.values.size} candidates "
                f"{_fmt(step.values[0])}–{_fmt(step.values[-1])} {setup.unit}, "
                f"{step.replicates} replicates each ({step.reason})")
        rounds.append(_run_round(setup, len(rounds), step.values, step.replicates, out=out,
                                 run_options=run_options, version=PSMSIM_VERSION))
    outcome = SearchOutcome(setup, tuple(rounds), step, time.perf_counter() - started, out)
    write_answer(outcome)
    return outcome


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"

