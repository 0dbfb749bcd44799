"""``psmsim check``: the published numbers of a scenario against the simulation (registered in
:mod:`sim.cli`). Thin: parse, one call to :func:`sim.run.check_run.run_check`, print."""

from __future__ import annotations

import click

from sim.scenario import load_scenario


@click.command()
@click.argument("scenario", metavar="SCENARIO")
@click.option("--replicates", type=click.IntRange(min=1), default=500, show_default=True,
              help="Simulated studies.")
@click.option("--method", default=None,
              help="Analysis method: paper, recommended or a named method of the scenario "
                   "[default: the scenario's plan].")
@click.option("--seed", type=click.IntRange(min=0), help="Root seed [default: the scenario's].")
@click.option("--block-size", type=click.IntRange(min=1), help="Replicates per block [default: the scenario's].")
def check(scenario: str, replicates: int, method: str | None, seed: int | None, block_size: int | None) -> None:
    """Print, for every published number of SCENARIO before and after matching, its simulated
    distribution (median, 2.5-97.5% range) and the percentile where the published value falls,
    flagging those outside the range.

    The numbers are the scenario's calibration targets (before matching) and its [checks]
    table (docs/scenario_format.md): the pair count, the after-matching columns of Tables 1-3,
    the medians and p-values. Replicate r is replicate r of `psmsim run` with the same seed.

    \b
    Example:
      psmsim check scenarios/liu2021.toml --replicates 500 --method paper
    """
    from sim.run.check_run import run_check

    loaded = load_scenario(scenario)
    outcome = run_check(loaded, replicates=replicates, method=method, seed=seed, block_size=block_size)
    click.echo(outcome.report)
