"""`psmsim plot` and `psmsim report`: figures and the self-contained report of a finished run,
sweep or sample-size folder (the work is in :mod:`sim.run.reporting`)."""

from __future__ import annotations

from pathlib import Path

import click

from sim.cli.boundary import make_output_folder, refuse_overwrite
from sim.errors import PsmsimError

_PLOT_KINDS = ("hr-distribution", "pairs", "love", "zip", "km", "nested-loop", "forest", "power", "eta-squared",
               "tornado", "morris", "sobol", "bias-surface")


@click.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.option("--kind", type=click.Choice(_PLOT_KINDS), required=True,
              help="A run: hr-distribution (HR estimates before/after matching vs the truths), pairs (matched-pair "
                   "counts), love (covariate balance), zip (CI coverage), km (Kaplan-Meier curves of one replicate). "
                   "A sweep folder: nested-loop or forest (a --measure across grid points, methods as colours, MCSE "
                   "ribbons), power (power against --factor), eta-squared, tornado, morris or sobol (its design's "
                   "sensitivity indices of --measure), bias-surface (an unmeasured-confounder sweep, with the "
                   "E-value curve). A sample-size folder (psmsim samplesize): power (the power curve and the answer).")
@click.option("--measure", help="Sweep figures: summary measure, e.g. bias_marginal, coverage_marginal, "
                                "power_logrank [default: bias_marginal; power_logrank for the indices].")
@click.option("--factor", help="power: the swept factor on the x axis [default: the only one].")
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help="File to write, .png or .svg [default: RUN_DIR/figures/<kind>-….png].")
@click.option("--method", help="Analysis method [default: the scenario's plan].")
@click.option("--endpoint", type=click.Choice(["pfs", "os"]), default="pfs", show_default=True)
@click.option("--cohort", type=click.Choice(["full", "matched"]), default="matched", show_default=True,
              help="Cohort of the zip plot.")
@click.option("--replicate", type=click.IntRange(min=0), default=0, show_default=True,
              help="Replicate of the km figure (regenerated from the run's seed).")
@click.option("--condition", type=click.IntRange(min=0), default=0, show_default=True, help="Grid point.")
@click.option("--observed-pairs", type=click.IntRange(min=0),
              help="Matched pairs the study reported, marked on the pairs figure (liu2021: 34).")
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
def plot(run_dir: str, kind: str, measure: str | None, factor: str | None, out: str | None, method: str | None,
         endpoint: str, cohort: str, replicate: int, condition: int, observed_pairs: int | None, force: bool) -> None:
    """Draw one figure of a finished run or sweep as PNG or SVG.

    \b
    Example:
      psmsim plot results/liu2021 --kind pairs --observed-pairs 34
      psmsim plot results/liu2021 --kind km --replicate 7 --out km7.svg
      psmsim plot results/liu2021-matcher_caliper --kind nested-loop --measure coverage_marginal
      psmsim plot results/liu2021-unmeasured_confounder --kind bias-surface
    """
    from sim.run.reporting import plot_run
    from sim.run.atomic_files import atomic_write_bytes

    fmt = "png"
    if out:
        suffix = Path(out).suffix.lower()
        if suffix not in (".png", ".svg"):
            raise PsmsimError(f"--out {out}: the file must end in .png or .svg")
        fmt = suffix[1:]
        refuse_overwrite(Path(out), force, "--out")
    figure = plot_run(Path(run_dir), kind, method=method, endpoint=endpoint, cohort=cohort, condition=condition,
                      replicate=replicate, observed_pairs=observed_pairs, measure=measure, factor=factor, fmt=fmt)
    path = Path(out) if out else figure.default_path
    make_output_folder(path.parent, "--out")
    atomic_write_bytes(path, figure.data)
    click.echo(f"wrote {path}")


@click.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.option("--observed-pairs", type=click.IntRange(min=0),
              help="Matched pairs the study reported, compared with the simulated ones [default: the "
                   "scenario's [checks] pairs; liu2021: 34].")
def report(run_dir: str, observed_pairs: int | None) -> None:
    """Write RUN_DIR/report.html (self-contained: figures embedded, no network) and report.md.

    The report of a run follows ADEMP (Morris, White & Crowther 2019): aims, data-generating
    mechanism with every ASSUMPTION of the scenario, estimands, methods, performance measures
    with Monte Carlo SEs, and a plain-language reading for a trial designer. That of a sweep
    folder: its factors, nested-loop or forest plots across the grid, the sensitivity indices
    of its design and, for an unmeasured-confounder sweep, the bias surface and E-value.
    Rewritten on every call.

    \b
    Example:
      psmsim report results/liu2021
      psmsim report results/liu2021-unmeasured_confounder
    """
    from sim.run.reporting import write_report

    html_path, md_path = write_report(Path(run_dir), observed_pairs=observed_pairs)
    click.echo(f"wrote {html_path} and {md_path}")
