"""``psmsim samplesize``: the n (or follow-up, or accrual rate) a trial or a larger PSM study
needs for a target power, by simulation, beside Schoenfeld's and Freedman's answers.

Thin: parse the options, one call to :func:`sim.run.samplesize.run_samplesize`, print the
report, write ``--json``. Registered in :mod:`sim.cli` with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from sim.cli.run_options import check_parallel, parallel_options


@click.command("samplesize")
@click.argument("scenario", metavar="SCENARIO")
@click.option("--endpoint", type=click.Choice(["pfs", "os"]), required=True, help="Endpoint whose test must reach the power.")
@click.option("--target-power", type=float, required=True, help="Power to reach, e.g. 0.8 (between --alpha and 1).")
@click.option("--design", type=click.Choice(["rct", "psm"]), default="rct", show_default=True,
              help="rct: randomised trial from the scenario's population, unmatched analysis; "
                   "psm: the scenario's observational design analysed with matching (n counted before matching).")
@click.option("--method", help="Analysis method (paper, recommended, or one the scenario defines) [default: the scenario's plan].")
@click.option("--test", type=click.Choice(["logrank", "cox"]), default="logrank", show_default=True)
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Two-sided significance level.")
@click.option("--solve", type=click.Choice(["n", "follow_up", "accrual_rate"]), default="n", show_default=True,
              help="What to solve for: patients n, months of follow-up after accrual, or patients per month (at --n).")
@click.option("--allocation", type=float, help="Share treated of the rct design [default: 0.5].")
@click.option("--n", "fixed_n", type=click.IntRange(min=1),
              help="Patients at which --solve follow_up/accrual_rate is solved [default: the study's size].")
@click.option("--max-n", type=click.IntRange(min=1), help="Largest n searched [default: 10000].")
@click.option("--bounds", type=(float, float), metavar="LOW HIGH",
              help="Range of --solve follow_up (default 0.5 240 months) or accrual_rate "
                   "(default 1.01 to 100 times n / cutoff).")
@click.option("--tolerance", type=float, default=0.02, show_default=True,
              help="Stop when the 95%% CI of the answer is within ± this share of it.")
@click.option("--budget", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Replicates over all rounds.")
@click.option("--first-replicates", type=click.IntRange(min=1), default=100, show_default=True,
              help="Replicates per candidate in the first round (later rounds grow).")
@click.option("--candidates", type=click.IntRange(min=2), default=8, show_default=True, help="Candidates per round.")
@click.option("--seed", type=click.IntRange(min=0), help="Root seed [default: the scenario's].")
@parallel_options()
@click.option("--block-size", type=click.IntRange(min=1), help="Replicates per block [default: the scenario's].")
@click.option("--out", "out", type=click.Path(file_okay=False),
              help="Search folder [default: results/<scenario>-samplesize-<design>-<endpoint>].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the answer as JSON.")
@click.option("--force", is_flag=True, help="Replace another search in --out, or an existing --json file.")
@click.option("--quiet", is_flag=True, help="No progress.")
def samplesize(scenario: str, endpoint: str, target_power: float, design: str, method: str | None,
               test: str, alpha: float, solve: str, allocation: float | None, fixed_n: int | None,
               max_n: int | None, bounds: tuple[float, float] | None, tolerance: float, budget: int,
               first_replicates: int, candidates: int, seed: int | None, jobs: int,
               block_size: int | None, backend: str, scheduler: str | None, out: str | None,
               json_path: str | None, force: bool, quiet: bool) -> None:
    """Find the n (before matching, for --design psm) that gives SCENARIO's test the target
    power, with its 95% CI, by stochastic root finding on a probit power curve.

    Each round runs several candidate n with common random numbers through the runner into
    one folder (resumable: rerun the same command after an interruption; finished rounds and
    blocks are reused and the answer is identical). Prints the answer with events (and matched
    pairs for psm), the power of the other endpoint and of both at that n, Schoenfeld's and
    Freedman's n for the design's true marginal HR, and the power curve with Monte Carlo SEs;
    writes samplesize.nc and samplesize.csv into the folder. When no n up to --max-n reaches
    the target it says so, with the best power reached.

    \b
    Example:
      psmsim samplesize scenarios/liu2021.toml --endpoint pfs --target-power 0.8 --design psm --jobs 2
      psmsim samplesize scenarios/liu2021.toml --endpoint pfs --target-power 0.8 --solve follow_up --n 200
    """
    from sim.cli.boundary import check_output_file, check_output_folder
    from sim.run.samplesize import run_samplesize
    from sim.run.samplesize_output import answer_json, format_answer
    from sim.run.samplesize_setup import SampleSizeRequest
    from sim.run.atomic_files import atomic_write_bytes
    from sim.scenario import load_scenario

    check_parallel(jobs, backend, scheduler)
    if json_path:
        check_output_file(Path(json_path), "--json", force=force)
    loaded = load_scenario(scenario)
    folder = Path(out) if out else Path("results") / f"{loaded.name}-samplesize-{design}-{endpoint}"
    check_output_folder(folder, "--out")
    request = SampleSizeRequest(
        endpoint=endpoint, target_power=target_power, design=design, method=method, test=test,
        alpha=alpha, solve=solve, allocation=allocation, n=fixed_n, max_n=max_n,
        bounds=tuple(bounds) if bounds else None, tolerance=tolerance, seed=seed,
        block_size=block_size, candidates=candidates, first_replicates=first_replicates,
        budget=budget)
    log = None if quiet else (lambda line: click.echo(line, err=True))
    outcome = run_samplesize(loaded, request, out=folder, jobs=jobs, backend=backend,
                             scheduler=scheduler, force=force, quiet=quiet, log=log)
    click.echo(format_answer(outcome))
    written = [folder / "samplesize.nc", folder / "samplesize.csv"]
    if json_path:
        atomic_write_bytes(Path(json_path), json.dumps(answer_json(outcome), indent=2).encode())
        written.append(Path(json_path))
    click.echo(f"\nwrote {', '.join(str(p) for p in written)}")
