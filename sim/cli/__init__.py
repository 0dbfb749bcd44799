"""The ``psmsim`` command line. Thin: each command parses its arguments, makes one library call
and prints the result; no statistics here.

Every input problem the library reports (:class:`sim.errors.PsmsimError`) and every
operating-system error (full disk, no permission, missing folder) is printed as one line
``error: <message>`` on stderr with exit code 2, never as a traceback; a scenario file with
several problems gives one such line for each (:mod:`sim.cli.boundary`).

Example::

    $ psmsim validate scenarios/liu2021.toml
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from sim.cli.boundary import (  # noqa: F401
    INPUT_ERROR_EXIT_CODE, Commands, check_output_file, check_output_folder, make_output_folder, refuse_overwrite,
)
from sim.cli.run_options import run_options, run_settings
from sim.errors import PsmsimError
from sim.scenario import Scenario, load_scenario

_CONTEXT = {"help_option_names": ["-h", "--help"]}


@click.group(cls=Commands, context_settings=_CONTEXT)
@click.version_option(package_name="psmsim", prog_name="psmsim", message="%(prog)s %(version)s")
def main() -> None:
    """Simulate propensity-score-matched survival studies.

    \b
    Example:
      psmsim validate scenarios/liu2021.toml
    """


@main.command()
@click.argument("scenario", metavar="SCENARIO")
def validate(scenario: str) -> None:
    """Check a scenario file and print a one-line summary.

    An invalid file gives one line per problem, each naming the field, its value and what is
    allowed, and exit code 2. What is legal but will make most replicates fail is printed as
    `warning: <field>: <message>` on stderr (exit code 0). The format is described in
    docs/scenario_format.md.

    \b
    Example:
      psmsim validate scenarios/liu2021.toml
    """
    loaded = load_scenario(scenario)
    _print_warnings(loaded)
    click.echo(_scenario_summary(loaded))


def _print_warnings(scenario: Scenario) -> None:
    """``warning: <field>: <message>`` on stderr for each hopeless setting of ``scenario``."""
    from sim.scenario.feasibility import scenario_warnings

    for warning in scenario_warnings(scenario):
        click.echo(f"warning: {warning}", err=True)


def _scenario_summary(scenario: Scenario) -> str:
    if scenario.mode == "table":
        arms = ", ".join(f"{arm.name} {arm.size}{' (treated)' if arm.treated else ''}"
                         for arm in scenario.arms)
    else:
        arms = (f"{scenario.selection.patients} patients, treated arm "
                f"{scenario.treated_arm.name}")
    effect = scenario.outcome.treatment
    effect_text = (f"target medians PFS {effect.pfs_median:g}, OS {effect.os_median:g} months"
                   if effect.mode == "target_medians" else f"hazard ratio {effect.hazard_ratio:g}")
    return (f"{scenario.name}: valid ({scenario.mode} mode; {arms}; "
            f"{len(scenario.covariates)} covariates; {len(scenario.adverse_events)} adverse "
            f"events; {effect_text}; methods {', '.join(scenario.analysis.method_names)}; "
            f"{scenario.simulation.replicates} replicates)")


# --------------------------------------------------------------------------------------------
# cohort, describe




@main.command()
@click.argument("scenario", metavar="SCENARIO")
@click.option("--seed", type=click.IntRange(min=0), required=True, help="Root seed of the cohort (>= 0).")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="CSV file to write.")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def cohort(scenario: str, seed: int, out: str, force: bool) -> None:
    """Write one synthetic cohort of SCENARIO as CSV (one row per patient).

    The columns are described in the README's data dictionary; `psmsim analyse` reads the same
    format.

    \b
    Example:
      psmsim cohort scenarios/liu2021.toml --seed 1 --out cohort.csv
    """
    from sim.calibrate.cache import calibrate_cached
    from sim.generate.cohort_csv import cohort_to_csv
    from sim.generate.cohorts import generate_cohorts
    from sim.run.atomic_files import atomic_write_bytes

    path = Path(out)
    refuse_overwrite(path, force, "--out")
    loaded = load_scenario(scenario)
    batch = generate_cohorts(loaded, calibrate_cached(loaded), 1,
                             rng=np.random.default_rng(np.random.SeedSequence(seed)))
    atomic_write_bytes(path, cohort_to_csv(batch).encode())
    click.echo(f"wrote {path}: {batch.n_patients} patients ({int(batch.treated.sum())} treated), seed {seed}")


@main.command()
@click.argument("scenario", metavar="SCENARIO")
@click.option("--patients", type=click.IntRange(min=100), default=100_000, show_default=True,
              help="Patients per arm in the simulated sample.")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
def describe(scenario: str, patients: int, seed: int) -> None:
    """Print target vs simulated for every published number of SCENARIO, the calibrated
    parameters and the true estimands.

    \b
    Example:
      psmsim describe scenarios/liu2021.toml --patients 100000
    """
    from sim.calibrate.cache import calibrate_cached, true_estimands_cached
    from sim.calibrate.describe import describe_rows, format_description

    loaded = load_scenario(scenario)
    calibration = calibrate_cached(loaded)
    truth = true_estimands_cached(loaded, calibration)
    rows = describe_rows(loaded, calibration, truth, patients=patients,
                         rng=np.random.default_rng(np.random.SeedSequence(seed)))
    click.echo(format_description(loaded, calibration, truth, rows, patients=patients))


# --------------------------------------------------------------------------------------------
# analyse


@main.command()
@click.argument("cohort_csv", metavar="COHORT.csv")
@click.option("--scenario", "scenario_path", type=click.Path(dir_okay=False),
              help="Scenario giving PS covariates, covariate kinds, labels and plan options.")
@click.option("--plan", "preset", type=click.Choice(["paper", "recommended"]), default=None,
              help="Analysis plan preset [default: the scenario's, else paper].")
@click.option("--method", help="Analysis method: a preset or a method of the scenario's [analysis.methods] "
                               "(needs --scenario) [default: the scenario's analysis.plan].")
@click.option("--engine", type=click.Choice(["batched", "reference"]), default="batched", show_default=True,
              help="batched numpy engine, or the per-cohort lifelines/statsmodels reference.")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True,
              help="Seed of the random parts (SPSS-style matching).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the results as JSON.")
@click.option("--plot", "plot_dir", type=click.Path(),
              help="Also write the Kaplan-Meier figure and the love plot (km.png, love.png) into this folder.")
@click.option("--force", is_flag=True, help="Replace an existing JSON file or figures.")
def analyse(cohort_csv: str, scenario_path: str | None, preset: str | None, method: str | None, engine: str,
            seed: int, json_path: str | None, plot_dir: str | None, force: bool) -> None:
    """Run the analysis plan on one cohort and print the paper's tables.

    \b
    Example:
      psmsim analyse cohort.csv --scenario scenarios/liu2021.toml --plan recommended --json out.json
      psmsim analyse cohort.csv --scenario scenarios/selection_example.toml --method no_lab
    """
    from analysis.plan.cohort_report import cohort_json, cohort_tables
    from analysis.plan.analyse import analyse_cohorts
    from analysis.plan.options import make_plan
    from sim.generate.cohort_csv import describe_covariate_kinds, near_binary_warnings, read_cohort_csv
    from sim.errors import CohortFileError
    from sim.scenario.plans import UnknownMethodError, scenario_plan
    from sim.run.atomic_files import atomic_write_bytes

    if method and preset:
        raise PsmsimError("--method and --plan: give one (--plan names a preset, --method any method of the scenario)")
    chosen = method or preset
    if json_path:
        refuse_overwrite(Path(json_path), force, "--json")
    if plot_dir:
        check_output_folder(Path(plot_dir), "--plot")
        for name in ("km.png", "love.png"):
            if (Path(plot_dir) / name).exists() and not force:
                raise PsmsimError(f"--plot {Path(plot_dir) / name}: file exists; choose another folder or pass "
                                  "--force to replace it")
    labels, kinds, arm_names = {}, None, ("Treated", "Control")
    if scenario_path:
        loaded = load_scenario(scenario_path)
        try:
            plan = scenario_plan(loaded, chosen or loaded.analysis.plan)
        except UnknownMethodError as err:
            raise PsmsimError(f"--method {chosen}: {err}") from None
        kinds = {c.name: ("continuous" if c.kind in ("normal", "lognormal") else c.kind) for c in loaded.covariates}
        labels = {c.name: c.label for c in loaded.covariates}
        arm_names = (loaded.treated_arm.label, loaded.control_arm.label)
    elif chosen not in (None, "paper", "recommended"):
        raise PsmsimError(f"--method {chosen}: a named method needs --scenario (the file that defines it); "
                          "without one choose paper or recommended")
    else:
        plan = make_plan(chosen or "paper")
    batch = read_cohort_csv(cohort_csv, covariate_kinds=kinds)
    if not batch.covariate_names:
        raise CohortFileError(f"{cohort_csv}: no covariate columns; the propensity model needs at least one "
                              "(every column not in the data dictionary is a covariate, e.g. age)")
    if not scenario_path:
        click.echo(f"{cohort_csv}: {batch.n_patients} patients; {describe_covariate_kinds(batch)} "
                   "(without --scenario: 0/1 columns binary, all others continuous)\n")
        for note in near_binary_warnings(batch):
            click.echo(f"warning: {note}", err=True)
    missing = [name for name in plan.ps_covariates if name not in batch.covariate_names]
    if missing:
        raise CohortFileError(f"{cohort_csv}: missing PS covariate column(s) {', '.join(missing)} "
                              "named by the scenario's analysis.ps_covariates")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    if engine == "reference":
        from analysis.plan.reference import analyse_cohort_reference

        result = analyse_cohort_reference(batch, plan, rng=rng, details=True)
    else:
        result = analyse_cohorts(batch, plan, rng=rng, details=True)
    click.echo(cohort_tables(result, batch, labels=labels, arm_names=arm_names))
    if plot_dir:
        from sim.run.reporting import cohort_figures

        folder = Path(plot_dir)
        figures = cohort_figures(batch, result, labels=labels, arm_labels=arm_names)
        make_output_folder(folder, "--plot")
        for name, data in figures.items():
            atomic_write_bytes(folder / name, data)
        click.echo(f"\nwrote {', '.join(str(folder / name) for name in figures)}")
    if json_path:
        payload = cohort_json(result, batch)
        payload["engine"] = engine
        atomic_write_bytes(Path(json_path), json.dumps(payload, indent=2).encode())
        click.echo(f"\nwrote {json_path}")


# --------------------------------------------------------------------------------------------
# run, summarise


@main.command()
@click.argument("scenario", metavar="SCENARIO")
@run_options(per_point=False, defaults="the scenario's", out_default="results/<scenario name>")
@click.option("--keep", type=click.Choice(["replicates", "summary"]), default="replicates", show_default=True,
              help="summary: write only the summary and remove the blocks (huge runs; no resume afterwards).")
def run(scenario: str, replicates: int | None, seed: int | None, jobs: int, block_size: int | None,
        backend: str, scheduler: str | None, out: str | None, force: bool, quiet: bool, keep: str) -> None:
    """Simulate and analyse SCENARIO's replicates in parallel, then print the summary.

    An interrupted run resumes with the same command, and more --replicates extend a finished
    run (its blocks are reused). A folder holding another run is refused unless --force, which
    removes only psmsim's own files; a folder another run is writing is refused.

    \b
    Example:
      psmsim run scenarios/liu2021.toml --replicates 2000 --jobs 2 --out results/liu2021
    """
    from sim.run.orchestrate import run_scenario

    jobs = run_settings(replicates, seed, block_size, jobs, backend, scheduler)
    loaded = load_scenario(scenario)
    _print_warnings(loaded)
    check_output_folder(Path(out) if out else Path("results") / loaded.name, "--out")
    outcome = run_scenario(
        loaded, replicates=replicates, seed=seed, block_size=block_size, jobs=jobs, backend=backend,
        scheduler=scheduler, out=Path(out) if out else Path("results") / loaded.name, force=force, quiet=quiet,
        keep=keep,
    )
    click.echo(outcome.report)
    written = [p for p in (outcome.replicates_path, *outcome.summary_paths) if p is not None]
    click.echo(f"\nwrote {', '.join(str(p) for p in written)}")


@main.command()
@click.argument("scenario", metavar="SCENARIO")
@click.argument("sweep_file", metavar="SWEEP")
@run_options(per_point=True, defaults="the sweep's, else the scenario's",
             out_default="results/<scenario name>-<sweep name>")
@click.option("--mcse-target", "mcse_targets", multiple=True, metavar="MEASURE=MCSE",
              help="After the first pass, add blocks only where this Monte Carlo SE is not met (matched PFS, "
                   "every method): power=0.005, bias=0.01 or coverage=0.01; repeatable.")
@click.option("--max-replicates", type=click.IntRange(min=1),
              help="With --mcse-target: at most this many replicates per grid point [default: 10 x the first pass].")
def sweep(scenario: str, sweep_file: str, replicates: int | None, seed: int | None, jobs: int,
          block_size: int | None, backend: str, scheduler: str | None, out: str | None,
          force: bool, quiet: bool, mcse_targets: tuple[str, ...], max_replicates: int | None) -> None:
    """Run SCENARIO at every grid point of SWEEP and print a compact table per factor.

    The sweep file (docs/sweep_format.md) names scenario fields by dotted path and gives
    their values (factorial, one-at-a-time) or ranges (Morris, Sobol). Resumable and parallel
    like `psmsim run`; `psmsim sensitivity RUN_DIR` then prints the sensitivity indices.

    \b
    Example:
      psmsim sweep scenarios/liu2021.toml scenarios/sweeps/hazard_ratio.toml --jobs 2
      psmsim sweep scenarios/liu2021.toml scenarios/sweeps/hazard_ratio.toml --mcse-target power=0.01
    """
    from sim.run.sweep_run import run_sweep

    jobs = run_settings(replicates, seed, block_size, jobs, backend, scheduler)
    if out:
        check_output_folder(Path(out), "--out")
    outcome = run_sweep(Path(scenario), Path(sweep_file), replicates=replicates, seed=seed,
                        block_size=block_size, jobs=jobs, backend=backend, scheduler=scheduler,
                        out=Path(out) if out else None, force=force, quiet=quiet,
                        mcse_targets=mcse_targets, max_replicates=max_replicates)
    click.echo(outcome.report)
    click.echo(f"\nwrote {outcome.replicates_path}, {outcome.summary_paths[0]}, {outcome.summary_paths[1]}")


@main.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
def sensitivity(run_dir: str) -> None:
    """Print and save (sensitivity.nc, sensitivity.csv) the sensitivity indices of a finished
    sweep: η² per factor (factorial), tornado data (one-at-a-time), Morris μ*/σ or Sobol
    S1/ST, each with its Monte Carlo noise; the bias surface of an unmeasured-confounder sweep.

    \b
    Example:
      psmsim sensitivity results/liu2021-hazard_ratio
    """
    from sim.run.sensitivity_run import sensitivity_folder

    outcome = sensitivity_folder(Path(run_dir))
    click.echo(outcome.report)
    click.echo(f"\nwrote {', '.join(str(p) for p in outcome.paths)}")


@main.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
def summarise(run_dir: str) -> None:
    """(Re)compute and print the performance summary of a finished run.

    \b
    Example:
      psmsim summarise results/liu2021
    """
    from sim.run.orchestrate import summarise_folder

    outcome = summarise_folder(Path(run_dir))
    click.echo(outcome.report)
    click.echo(f"\nwrote {outcome.summary_paths[0]}, {outcome.summary_paths[1]}")


from sim.cli.figures import plot as _plot, report as _report  # noqa: E402

main.add_command(_plot)
main.add_command(_report)

from sim.cli.samplesize import samplesize as _samplesize  # noqa: E402

main.add_command(_samplesize)

from sim.cli.check import check as _check  # noqa: E402

main.add_command(_check)
