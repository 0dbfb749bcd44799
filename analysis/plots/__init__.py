"""Figures of psmsim (matplotlib, imported lazily inside the functions; Agg, no pyplot).

Every plot function takes a Dataset (or the Kaplan–Meier curves Dataset) and an optional
``ax``, returns the Axes it drew on and never calls ``show``; ``*_figure`` functions return a
whole Figure. :func:`analysis.plots.style.figure_bytes` renders a figure as PNG or SVG bytes.

* :mod:`analysis.plots.survival` — Kaplan–Meier curves with numbers at risk (one cohort);
* :mod:`analysis.plots.balance` — the love plot (|SMD| before/after matching over replicates);
* :mod:`analysis.plots.estimates` — HR estimates before/after matching against the truths,
  matched-pair counts against a published count;
* :mod:`analysis.plots.coverage` — the zip plot of coverage;
* :mod:`analysis.plots.grid` — nested-loop and forest plots of performance over a sweep;
* :mod:`analysis.plots.power` — power against sample size or another numeric factor;
* :mod:`analysis.plots.sensitivity` — tornado, Morris μ*–σ, Sobol and η² figures of a sweep's
  sensitivity indices, with their Monte Carlo noise;
* :mod:`analysis.plots.bias_surface` — the unmeasured-confounder bias surface with its contours
  and benchmarks, and the E-value curve;
* :mod:`analysis.plots.style` — colours (Okabe–Ito), figure creation, selection helpers.
"""
