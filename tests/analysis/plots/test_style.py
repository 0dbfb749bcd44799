"""The plotting layer's rules: matplotlib only imported when a figure is drawn, never by the
statistics; colours from the colour-blind-safe Okabe–Ito palette."""

from __future__ import annotations

import subprocess
import sys

from analysis.plots import style


def test_importing_plots_and_statistics_does_not_import_matplotlib():
    code = ("import sys, analysis.plots.survival, analysis.plots.balance, analysis.plots.estimates, "
            "analysis.plots.coverage, analysis.plots.grid, analysis.plots.power, analysis.plan.survival_curves, "
            "analysis.performance.summary; assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_colours_are_okabe_ito_and_distinct():
    palette = set(style.OKABE_ITO.values())
    assert set(style.METHOD_COLOURS) <= palette and len(set(style.METHOD_COLOURS)) == len(style.METHOD_COLOURS)
    assert style.ARM_COLOURS["treated"] != style.ARM_COLOURS["control"]
    assert style.COHORT_COLOURS["full"] != style.COHORT_COLOURS["matched"]
    assert style.method_colour(["paper", "recommended"], "recommended") == style.METHOD_COLOURS[1]


def test_figures_are_drawn_without_pyplot():
    """No global pyplot state, no display: a figure is made and rendered without importing it."""
    code = ("import sys; from analysis.plots.style import new_figure, figure_bytes; figure, ax = new_figure(); "
            "ax.plot([0, 1], [1, 0]); data = figure_bytes(figure); "
            "assert data.startswith(bytes([137, 80, 78, 71])), 'not a PNG'; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
