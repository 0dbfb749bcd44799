"""The numbers the README quotes from `make run` are the command's real output.

The README's make-run block (between ``<!-- make-run output`` and ``<!-- end make-run output
-->``) holds lines copied from what `make run` prints. ``tests/data/make_run/summary.nc`` is
the summary that command wrote (``make readme-numbers`` rewrites it). In the default suite:

- every line of the block is a line of the summary text of the saved run, in order (so neither
  the README nor the text format can drift from it);
- the saved run is of the current ``scenarios/liu2021.toml`` (as parsed: comments do not count)
  and of the Makefile's `make run` command (its replicate count, the scenario's seed).

The slow test reruns the command itself and checks the block against its output, which also
catches an engine change that alters the numbers without touching the scenario.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import xarray as xr

from analysis.performance.text_report import format_summary
from sim.run.identity import canonical
from sim.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"
SAVED = ROOT / "tests" / "data" / "make_run" / "summary.nc"
REGENERATE = "run `make readme-numbers` and paste the lines the README quotes into its make-run block"


def readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- make-run output.*?-->\n```text\n(.*?)```\n<!-- end make-run output -->", text, re.S)
    assert match, "README.md: no make-run output block"
    lines = [line for line in match.group(1).splitlines() if line.strip()]
    assert lines, "README.md: the make-run output block is empty"
    return lines


def make_run_replicates() -> int:
    recipe = re.search(r"^run:.*?\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    return int(re.search(r"psmsim run scenarios/liu2021\.toml --replicates (\d+)", recipe).group(1))


def assert_quoted_in_order(quoted: list[str], output: str) -> None:
    lines = output.splitlines()
    position = 0
    for line in quoted:
        assert line in lines[position:], (f"README make-run block: {line!r} is not in the output (after line "
                                          f"{position}); {REGENERATE}")
        position = lines.index(line, position) + 1


def test_the_readme_quotes_the_saved_make_run_output():
    with xr.open_dataset(SAVED, engine="h5netcdf") as saved:
        summary = saved.load()
    pairs = load_scenario(LIU2021).checks.pairs
    assert_quoted_in_order(readme_block(), format_summary(summary, observed_pairs=pairs))


def test_the_saved_run_is_the_current_make_run():
    with xr.open_dataset(SAVED, engine="h5netcdf") as saved:
        attrs = dict(saved.attrs)
    scenario = load_scenario(LIU2021)
    saved_scenario = parse_scenario(attrs["scenario_text"])
    assert canonical(saved_scenario) == canonical(scenario), (
        f"scenarios/liu2021.toml changed since the README's make-run numbers were saved; {REGENERATE}")
    assert int(attrs["n_replicates"]) == make_run_replicates(), REGENERATE
    assert int(attrs["root_seed"]) == scenario.simulation.seed, REGENERATE


@pytest.mark.slow
def test_make_run_prints_what_the_readme_quotes(tmp_path):
    from sim.run.orchestrate import run_scenario

    outcome = run_scenario(load_scenario(LIU2021), replicates=make_run_replicates(), jobs=-1,
                           out=tmp_path / "liu2021", quiet=True)
    assert_quoted_in_order(readme_block(), outcome.report)
