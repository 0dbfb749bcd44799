"""One call per CLI command: a whole run of a scenario, or the summary of a finished run.

``run_scenario`` calibrates (cached), computes the true estimands (cached), opens or resumes
the run folder, runs every block (every method of the scenario on the same cohorts), writes
``replicates.nc``, summarises (with the paired differences between methods) and writes
``summary.nc``/``summary.csv``. ``summarise_folder`` recomputes the summary of a run folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy
import xarray as xr

from analysis.performance.paired import paired_differences
from analysis.performance.summary import summarise_run, summary_to_frame
from analysis.performance.text_report import format_summary
from sim.calibrate.cache import calibrate_cached, true_estimands_cached
from sim.run.runner import RunConfig, iter_conditions, run_identity, run_simulation
from sim.errors import ScenarioError
from sim.scenario.model import Scenario
from sim.scenario.parser import parse_scenario
from sim.scenario.plans import paired_references, scenario_methods
from sim.run.store import FolderLock, RunFolder, open_replicates, write_summary

try:
    from importlib.metadata import version as _package_version

    PSMSIM_VERSION = _package_version("psmsim")
except Exception:  # not installed (running from a source tree)
    PSMSIM_VERSION = "0+unknown"


@dataclass(frozen=True)
class RunOutcome:
    """What a run or a summary wrote, and the printed report."""

    report: str
    replicates_path: Path | None
    summary_paths: tuple[Path, Path]
    replicates: xr.Dataset | None = None
    summary: xr.Dataset | None = None


def run_scenario(
    scenario: Scenario,
    *,
    replicates: int | None = None,
    seed: int | None = None,
    block_size: int | None = None,
    methods: tuple[str, ...] | None = None,
    jobs: int = -1,
    backend: str = "loky",
    scheduler: str | None = None,
    out: Path,
    force: bool = False,
    quiet: bool = False,
) -> RunOutcome:
    """Run ``scenario`` (settings default to its ``[simulation]`` section) into ``out``;
    ``methods`` default to every method of the scenario (:func:`scenario_methods`)."""
    settings = scenario.simulation
    config = RunConfig(
        replicates=replicates or settings.replicates,
        seed=settings.seed if seed is None else seed,
        block_size=block_size or settings.block_size,
        methods=tuple(scenario_methods(scenario) if methods is None else methods),
        jobs=jobs,
        backend=backend,
        scheduler=scheduler,
        quiet=quiet,
    )
    conditions = iter_conditions([scenario])
    identity = run_identity(conditions, config, PSMSIM_VERSION)
    with RunFolder(out, identity, force=force) as folder:  # locked until the results are written
        return _run_in(folder, conditions, config, scenario)


def _run_in(folder: RunFolder, conditions, config: RunConfig, scenario: Scenario) -> RunOutcome:
    calibrations = [calibrate_cached(c.scenario) for c in conditions]
    truths = [true_estimands_cached(c.scenario, cal).as_variables() for c, cal in zip(conditions, calibrations)]
    attrs = {
        "psmsim_version": PSMSIM_VERSION,
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "xarray_version": xr.__version__,
        "root_seed": config.seed,
        "block_size": config.block_size,
        "n_replicates": config.replicates,
        "scenario_name": scenario.name,
        "scenario_text": scenario.source_text,
        "scenario_sha256": hashlib.sha256(scenario.source_text.encode()).hexdigest(),
        "alpha": 0.05,
    }
    dataset = run_simulation(conditions, calibrations, truths, config, folder, attrs=attrs)
    replicates_path = folder.write_replicates(dataset)
    summary = summarise_with_differences(dataset, paired_references(scenario))
    paths = folder.write_summary(summary, summary_to_frame(summary).to_csv(index=False))
    return RunOutcome(format_summary(summary), replicates_path, paths, dataset, summary)


def summarise_folder(run_dir: Path) -> RunOutcome:
    """Summarise the finished run in ``run_dir`` (rewrites its summary files)."""
    dataset = open_replicates(run_dir)
    summary = summarise_with_differences(dataset, _stored_references(dataset))
    with FolderLock.acquire(run_dir, option="RUN_DIR", create=False):  # not while a run writes
        paths = write_summary(run_dir, summary, summary_to_frame(summary).to_csv(index=False))
    return RunOutcome(format_summary(summary), None, paths, dataset, summary)


def summarise_with_differences(dataset: xr.Dataset, references: dict[str, str]) -> xr.Dataset:
    """The run summary of ``dataset`` with the paired differences between its methods
    (:func:`analysis.performance.paired.paired_differences`, each method against
    ``references[method]``; a reference the run lacks compares the method with itself)."""
    summary = summarise_run(dataset)
    methods = [str(m) for m in dataset.method.values]
    references = {m: references.get(m, m) if references.get(m, m) in methods else m for m in methods}
    paired = paired_differences(dataset, reference=references).transpose(*summary.power_logrank.dims)
    return xr.merge([summary, paired], compat="no_conflicts", join="exact", combine_attrs="override")


def _stored_references(dataset: xr.Dataset) -> dict[str, str]:
    """The paired references of a stored run, from the scenario text it carries."""
    text = dataset.attrs.get("scenario_text", "")
    try:
        return paired_references(parse_scenario(text)) if text else {"recommended": "paper"}
    except ScenarioError:  # a run of an older scenario format: the presets' rule only
        return {"recommended": "paper"}
