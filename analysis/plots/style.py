"""The shared look of psmsim's figures and the one place that creates them.

Colours are the Okabe–Ito palette, distinguishable with the common colour-vision deficiencies
(Okabe & Ito 2008, "Color Universal Design"); methods, arms and cohorts keep one colour each in
every figure. Figures are created as :class:`matplotlib.figure.Figure` objects, never through
``pyplot``: no global state, no display, the Agg renderer whatever the machine (as matplotlib's
"embedding in a web application server" guide recommends). matplotlib is imported inside the
functions, so importing :mod:`analysis.plots` costs nothing and statistics never need it.

References
----------
Okabe M, Ito K (2008). Color Universal Design (CUD): how to make figures and presentations that
are friendly to colorblind people. https://jfly.uni-koeln.de/color/
"""

from __future__ import annotations

import io
from typing import Sequence

import xarray as xr

#: The Okabe–Ito palette (black omitted: it is kept for truths and reference lines).
OKABE_ITO = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "bluish_green": "#009E73",
    "reddish_purple": "#CC79A7",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "yellow": "#F0E442",
}
#: Colours of analysis methods in order of appearance on the ``method`` dim.
METHOD_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
#: Treated arm vermillion, control arm blue.
ARM_COLOURS = {"treated": "#D55E00", "control": "#0072B2"}
#: Full cohort (before matching) orange, matched cohort blue.
COHORT_COLOURS = {"full": "#E69F00", "matched": "#0072B2"}
COHORT_NAMES = {"full": "before matching (all patients)", "matched": "after matching"}
ENDPOINT_NAMES = {"pfs": "PFS", "os": "OS"}
ENDPOINT_LONG_NAMES = {"pfs": "progression-free survival", "os": "overall survival"}
#: Truths and nominal values are drawn in black / dark grey.
TRUTH_COLOUR = "#000000"
NOMINAL_COLOUR = "#555555"
#: Two-sided 95% normal quantile, for ±z·MCSE bands.
Z_95 = 1.959963984540054

DEFAULT_SIZE = (6.4, 4.2)


def method_colour(methods: Sequence[str], method: str) -> str:
    """The colour of ``method`` given the run's method order."""
    return METHOD_COLOURS[list(methods).index(method) % len(METHOD_COLOURS)]


def new_figure(*, nrows: int = 1, ncols: int = 1, figsize=DEFAULT_SIZE, **gridspec_kw):
    """A new Figure (constrained layout) and its axes (a single Axes for 1 × 1, else an array);
    ``gridspec_kw`` such as ``height_ratios`` go to the grid."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=True, gridspec_kw=gridspec_kw or None)
    return figure, axes


def axes_or_new(ax, *, figsize=DEFAULT_SIZE):
    """``ax`` itself, or the Axes of a new one-panel figure."""
    if ax is not None:
        return ax
    _, ax = new_figure(figsize=figsize)
    return ax


def figure_bytes(figure, *, fmt: str = "png", dpi: int = 150) -> bytes:
    """The figure rendered as PNG or SVG bytes (no file written; metadata without dates)."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"format {fmt!r}: choose png or svg")
    metadata = {"Software": None} if fmt == "png" else {"Date": None}
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def hr_ticks(ax, low: float, high: float, *, axis: str = "x") -> None:
    """Readable hazard-ratio ticks (0.25, 0.5, 1, 2, …) on a log-scaled axis from ``low`` to
    ``high``, without the minor ticks' labels."""
    import numpy as np
    from matplotlib.ticker import NullFormatter, NullLocator

    candidates = np.array([0.02, 0.05, 0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0,
                           10.0, 20.0, 50.0])
    ticks = candidates[(candidates >= low) & (candidates <= high)]
    if ticks.size > 9:
        ticks = ticks[np.isin(ticks, [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0])]
    if ticks.size < 3:
        ticks = np.unique(np.round(np.geomspace(low, high, 4), 2))
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_minor_locator(NullLocator())
    target.set_minor_formatter(NullFormatter())
    if axis == "x":
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlim(low, high)
    else:
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_ylim(low, high)


def legend_below(ax, *, ncol: int = 1, fontsize: float = 8.0):
    """The legend of ``ax`` under the plot: outside the axes, below everything, when ``ax`` is
    the only Axes of its figure (constrained layout makes room); else inside it ("best"), so a
    caller's multi-panel figure is left alone."""
    handles, labels = ax.get_legend_handles_labels()
    last = [k for k, label in enumerate(labels) if label.startswith(("nominal", "target", "Nominal", "Target"))]
    keep = [k for k in range(len(labels)) if k not in last] + last  # reference lines at the end
    handles, labels = [handles[k] for k in keep], [labels[k] for k in keep]
    figure = ax.figure
    if len(figure.axes) == 1 and figure.get_layout_engine() is not None:
        return figure.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=fontsize,
                             frameon=False)
    return ax.legend(handles, labels, loc="best", ncol=1, fontsize=fontsize, framealpha=0.9)


def select_condition(dataset: xr.Dataset, condition) -> xr.Dataset:
    """The Dataset at one grid point: ``condition`` by label, or the only one when None."""
    if "condition" not in dataset.dims:
        return dataset
    if condition is None:
        if dataset.sizes["condition"] != 1:
            labels = dataset.condition.values.tolist()
            raise ValueError(f"condition: the Dataset has {len(labels)} grid points {labels[:8]}; choose one")
        return dataset.isel(condition=0)
    return dataset.sel(condition=condition)


def select_method(dataset: xr.Dataset, method: str | None) -> tuple[xr.Dataset, str]:
    """The Dataset of one method (the first when None) and its name; an unknown one lists the
    choices."""
    methods = dataset.method.values.tolist()
    name = methods[0] if method is None else method
    if name not in methods:
        raise ValueError(f"method {name!r}: not in the Dataset; choose one of {', '.join(methods)}")
    return dataset.sel({"method": name}), name


def condition_text(dataset: xr.Dataset) -> str:
    """", factor = value, …" for a Dataset selected at one grid point (empty for a plain run)."""
    parts = [f"{name} = {_value_text(coord.values)}" for name, coord in dataset.coords.items()
             if coord.dims == () and name not in ("condition", "method", "cohort", "endpoint", "replicate")]
    return ("; " + ", ".join(parts)) if parts else ""


def _value_text(value) -> str:
    value = value.item() if hasattr(value, "item") else value
    return f"{value:g}" if isinstance(value, float) else str(value)
