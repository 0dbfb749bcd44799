"""Figure and report of a sample-size folder (``psmsim samplesize --out DIR``): ``psmsim plot DIR
--kind power`` and ``psmsim report DIR`` read its ``samplesize.nc`` (``docs/results_schema.md``,
"Sample size"); the drawing is :func:`analysis.plots.power.plot_samplesize_curve`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from analysis.plots.report import Figure, Paragraph, Report, Section, Table
from analysis.plots.style import ENDPOINT_NAMES, figure_bytes
from sim.run.samplesize_output import SAMPLESIZE_NC
from sim.run.atomic_files import read_dataset

__all__ = ["is_samplesize_folder", "samplesize_figure", "build_samplesize_report"]

_DESIGNS = {"rct": "randomised trial (the study's population, arms pooled, no confounding)",
            "psm": "the study's observational design analysed with matching (n counted before matching)"}
_REPORT_DPI = 150


def is_samplesize_folder(run_dir: Path) -> bool:
    """True when ``run_dir`` holds the answer of a finished sample-size search."""
    return (Path(run_dir) / SAMPLESIZE_NC).is_file()


def _load(run_dir: Path) -> xr.Dataset:
    return read_dataset(Path(run_dir) / SAMPLESIZE_NC)


def samplesize_figure(run_dir: Path):
    """(matplotlib Figure, file stem) of the search's power curve."""
    from analysis.plots.power import plot_samplesize_curve

    result = _load(run_dir)
    ax = plot_samplesize_curve(result)
    return ax.figure, f"power-{result.attrs.get('design', 'search')}-{result.attrs.get('endpoint', '')}"


def _value(result: xr.Dataset, name: str, digits: int = 0) -> str:
    if name not in result:
        return "—"
    value = float(result[name])
    return "—" if not np.isfinite(value) else f"{value:,.{digits}f}"


def _with_interval(result: xr.Dataset, name: str, digits: int = 0) -> str:
    text = _value(result, name, digits)
    lower, upper = _value(result, f"{name}_lower", digits), _value(result, f"{name}_upper", digits)
    return text if "—" in (text, lower, upper) else f"{text} ({lower}–{upper})"


def build_samplesize_report(run_dir: Path) -> Report:
    """The report of a sample-size folder: the question, the design, the answer beside
    Schoenfeld's and Freedman's, and the power curve."""
    result = _load(run_dir)
    attrs = result.attrs
    endpoint = ENDPOINT_NAMES.get(str(attrs.get("endpoint")), str(attrs.get("endpoint")))
    other = ENDPOINT_NAMES.get(str(attrs.get("other_endpoint")), str(attrs.get("other_endpoint")))
    target, alpha = float(attrs.get("target_power", 0.8)), float(attrs.get("alpha", 0.05))
    solve, unit = str(attrs.get("solve", "n")), str(attrs.get("unit", ""))
    test = {"logrank": "log-rank test", "cox": "Cox Wald test"}.get(str(attrs.get("test")), str(attrs.get("test")))
    aims = Section("Aims", (Paragraph(
        f"How large must a study be for its {endpoint} {test} (two-sided α = {alpha:g}) to reach "
        f"{100 * target:.0f}% power under the scenario **{attrs.get('scenario_name', '')}**? Design: "
        f"{_DESIGNS.get(str(attrs.get('design')), str(attrs.get('design')))}; analysis method "
        f"`{attrs.get('method', '')}` on the {attrs.get('cohort', '')} cohort; solved for `{solve}` ({unit})."),))
    digits = 0 if solve == "n" else 1
    rows = [
        ("Answer (95% CI)", f"{_with_interval(result, 'solution', digits)} {unit}"),
        ("Fitted power at the answer (95% band)", _with_interval(result, "power_at_solution", 3)),
        (f"{endpoint} events at the answer", _with_interval(result, "events_at_solution", 0)),
        ("Matched pairs at the answer", _with_interval(result, "pairs_at_solution", 0)),
        (f"{other} power at the answer", _with_interval(result, "power_other_at_solution", 3)),
        ("Both endpoints significant", _with_interval(result, "power_both_at_solution", 3)),
        ("True marginal HR of the design", _value(result, "true_hazard_ratio", 3)),
        ("Schoenfeld: events / n", f"{_value(result, 'schoenfeld_events', 1)} / {_value(result, 'schoenfeld_n', 0)}"),
        ("Freedman: events / n", f"{_value(result, 'freedman_events', 1)} / {_value(result, 'freedman_n', 0)}"),
        ("Replicates simulated", f"{int(attrs.get('replicates', 0)):,} ({int(attrs.get('failed_replicates', 0)):,} "
                                 "with a failed analysis, counted as not significant)"),
        ("Search", f"{attrs.get('status', '')}: {attrs.get('reason', '')}"),
    ]
    answer = Section("The answer", (Table(
        caption=f"Sample size for {100 * target:.0f}% power, beside the formulas at the same HR, share treated and "
                "event probability",
        header=("quantity", "value"), rows=tuple(rows),
        note="Schoenfeld's and Freedman's n assume proportional hazards, a randomised design and no losses "
             "to matching; the gap to the simulated answer is what they miss here."),))
    figure, stem = samplesize_figure(run_dir)
    curve = Section("Power curve", (Figure(
        name=stem, caption=f"Simulated power at every evaluated {solve} (±1.96 Monte Carlo SE), the fitted probit "
                           "curve with its 95% band, the formulas' power at the simulated events, the target and "
                           "the answer with its CI",
        png=figure_bytes(figure, dpi=_REPORT_DPI)),))
    solution = float(result.solution) if "solution" in result else float("nan")
    if np.isfinite(solution):
        study = {"rct": "a randomised trial", "psm": "a PSM study"}.get(str(attrs.get("design")), "a study")
        reading = (f"Under the scenario's assumptions {study} needs about "
                   f"{solution:,.{digits}f} {unit} (95% CI {_value(result, 'solution_lower', digits)}–"
                   f"{_value(result, 'solution_upper', digits)}) for {100 * target:.0f}% power on {endpoint}; "
                   f"Schoenfeld's formula says {_value(result, 'schoenfeld_n')}, Freedman's "
                   f"{_value(result, 'freedman_n')} patients.")
    else:
        reading = (f"No value in the searched range reaches {100 * target:.0f}% power: the best evaluated "
                   f"({_value(result, 'best_value', digits)} {unit}) had power {_value(result, 'best_power', 3)}.")
    plain = Section("Reading for a trial designer", (Paragraph(reading),))
    return Report(
        title=f"psmsim sample-size report: {attrs.get('scenario_name', '')}",
        subtitle=f"{endpoint}, {attrs.get('design', '')} design, target power {target:g}",
        sections=(aims, answer, curve, plain),
        footer=f"Generated from {SAMPLESIZE_NC} (root seed {attrs.get('root_seed', '?')}, "
               f"{int(attrs.get('replicates', 0)):,} replicates).",
    )
