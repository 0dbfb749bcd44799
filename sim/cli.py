"""The ``psmsim`` command line. Thin: each command parses its arguments, makes one library call
and prints the result; no statistics here.

Every input problem the library reports (:class:`sim.errors.PsmsimError`) is printed as one
line ``error: <message>`` on stderr with exit code 2, never as a traceback.

Example::

    $ psmsim validate scenarios/liu2021.toml
"""

from __future__ import annotations

import click

from sim.errors import PsmsimError
from sim.scenario import Scenario, load_scenario

#: Exit code for input problems (the same code click uses for usage errors).
INPUT_ERROR_EXIT_CODE = 2

_CONTEXT = {"help_option_names": ["-h", "--help"]}


class _Commands(click.Group):
    """A click group that turns a :class:`PsmsimError` raised by any command into one line on
    stderr and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PsmsimError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(INPUT_ERROR_EXIT_CODE)


@click.group(cls=_Commands, context_settings=_CONTEXT)
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

    An invalid file gives one line naming the field, its value and what is allowed, and exit
    code 2. The format is described in docs/scenario_format.md.

    \b
    Example:
      psmsim validate scenarios/liu2021.toml
    """
    click.echo(_scenario_summary(load_scenario(scenario)))


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
            f"events; {effect_text}; {scenario.simulation.replicates} replicates)")
