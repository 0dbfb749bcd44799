"""The summary of a run as a plain-text table for a terminal.

``format_summary(summary)`` takes the Dataset of :func:`analysis.performance.summary.summarise_run` and
returns one block per condition × method: a row per cohort × endpoint with power, bias,
coverage and precision (each ± its Monte Carlo SE), events and analytic power, then lines for
matched-pair counts, balance and the paper's pattern; the paired differences between methods
(:mod:`analysis.performance.paired`); and a footer explaining the abbreviations. The text
depends only on the summary (no clock, no locale), so it can be compared verbatim.
"""

from __future__ import annotations

import math

import xarray as xr

__all__ = ["format_summary"]

#: (header, width) of the per-row columns, in order.
_COLUMNS = (
    ("cohort", 8),
    ("endpoint", 9),
    ("power LR", 13),
    ("power Cox", 13),
    ("bias (marg.)", 15),
    ("coverage", 13),
    ("EmpSE", 6),
    ("ModSE", 6),
    ("events", 7),
    ("Schoen.", 7),
    ("Freed.", 7),
    ("failed", 7),
)

_FOOTER = """\
Abbreviations: ± = Monte Carlo SE (Morris, White & Crowther 2019); LR = log-rank test; Cox = Cox
  Wald test (power = share of replicates with p < alpha); bias (marg.) = mean(estimated log HR -
  true marginal log HR); coverage = share of 95% CIs containing the true marginal log HR; EmpSE =
  SD of the log-HR estimates; ModSE = root mean model variance; events = mean events in the
  analysed cohort; Schoen./Freed. = Schoenfeld / Freedman analytic power at those events and the
  true marginal HR (one-tailed: alpha/2 under a null truth); failed = share of replicates whose
  analysis failed (status not ok); NA = no usable replicate; * = null truth (true marginal log HR
  0): the power columns are type-I error rates."""


def _number(value, digits: int, *, signed: bool = False) -> str:
    value = float(value)
    if math.isnan(value):
        return "NA"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _with_mcse(value, mcse, digits: int = 3, *, signed: bool = False) -> str:
    text = _number(value, digits, signed=signed)
    if text == "NA" or math.isnan(float(mcse)):
        return text
    return f"{text}±{_number(mcse, digits)}"


def _percent(value) -> str:
    value = float(value)
    return "NA" if math.isnan(value) else f"{100.0 * value:.1f}%"


def _row(cells) -> str:
    return "  ".join(f"{cell:<{width}}" for cell, (_, width) in zip(cells, _COLUMNS)).rstrip()


def _condition_label(summary: xr.Dataset, condition) -> str:
    parts = [
        f"{name} = {summary[name].sel(condition=condition).item()}"
        for name, coord in summary.coords.items()
        if coord.dims == ("condition",) and name != "condition"
    ]
    return f"Condition {condition}" + (f" ({', '.join(parts)})" if parts else "")


def _cell_row(cell: xr.Dataset, cohort: str, endpoint: str) -> str:
    marker = "*" if bool(cell.null_truth) else ""
    return _row([
        cohort,
        f"{endpoint}{marker}",
        _with_mcse(cell.power_logrank, cell.power_logrank_mcse),
        _with_mcse(cell.power_cox, cell.power_cox_mcse),
        _with_mcse(cell.bias_marginal, cell.bias_marginal_mcse, signed=True),
        _with_mcse(cell.coverage_marginal, cell.coverage_marginal_mcse),
        _number(cell.emp_se, 3),
        _number(cell.mod_se, 3),
        _number(cell.mean_events, 1),
        _number(cell.schoenfeld_power, 3),
        _number(cell.freedman_power, 3),
        _percent(1.0 - cell.status_rate.sel(status="ok")),
    ])


def _ps_status_text(rates: xr.DataArray) -> str:
    """Rates of the PS/matching statuses other than ok, by name. A separated PS model is a flag
    (the plan still matches on its scores unless told to fail), so it is not called a failure."""
    parts = [f"{name.replace('_', ' ')} {_percent(rates.sel(status=name))}"
             for name in rates.status.values.tolist() if name != "ok" and float(rates.sel(status=name)) > 0]
    return "PS model/matching: " + (", ".join(parts) if parts else "all ok")


def _method_lines(block: xr.Dataset, attrs: dict) -> list[str]:
    """Pair counts, balance and the paper's pattern for one condition × method."""
    pairs = (
        f"  matched pairs: mean {_with_mcse(block.n_pairs_mean, block.n_pairs_mean_mcse, 1)}"
        f" (SD {_number(block.n_pairs_sd, 1)}; min {_number(block.n_pairs_min, 0)},"
        f" Q1 {_number(block.n_pairs_q1, 1)}, median {_number(block.n_pairs_median, 1)},"
        f" Q3 {_number(block.n_pairs_q3, 1)}, max {_number(block.n_pairs_max, 0)});"
        f" {_ps_status_text(block.ps_status_rate)}"
    )
    threshold = attrs.get("balance_threshold", 0.1)
    balance = ", ".join(
        f"{cohort} {_with_mcse(block.balance_rate.sel(cohort=cohort), block.balance_rate_mcse.sel(cohort=cohort))}"
        for cohort in block.cohort.values.tolist()
    )
    criteria = " / ".join(
        _number(block.paper_pattern_criterion_rate.sel(criterion=name), 3)
        for name in block.criterion.values.tolist()
    )
    alpha = attrs.get("alpha", 0.05)
    pattern = (
        f"  paper's pattern (matched: PFS LR p<{alpha:g}, OS LR p>={alpha:g}, ORR p<{alpha:g},"
        f" DCR p>={alpha:g}): {_with_mcse(block.paper_pattern_rate, block.paper_pattern_rate_mcse)}"
        f"  [each: {criteria}]"
    )
    return [pairs, f"  balanced (max |SMD| < {threshold:g}): {balance}", pattern]


def _paired_lines(summary: xr.Dataset) -> list[str]:
    """Paired differences of each method against its reference in the matched (second)
    cohort; none if the summary has no ``bias_difference`` or every method is its own
    reference."""
    if "bias_difference" not in summary or "paired_reference" not in summary.coords:
        return []
    pairs = [(str(m), str(r)) for m, r in zip(summary.method.values, summary.paired_reference.values)
             if str(m) != str(r)]
    if not pairs:
        return []
    width = max(len("method - reference"), *(len(f"{m} - {r}") for m, r in pairs))
    header = (f"{'condition':<10}  {'method - reference':<{width}}  {'endpoint':<8}  "
              f"{'bias diff':<15}  power LR diff")
    lines = ["Paired differences, matched cohort, on the same cohorts (method - reference; ± = Monte",
             "Carlo SE of the per-replicate difference, Morris et al. 2019):", header, "-" * len(header)]
    for condition in summary.condition.values.tolist():
        for method, reference in pairs:
            block = summary.sel({"condition": condition, "method": method, "cohort": "matched"})
            for endpoint in block.endpoint.values.tolist():
                cell = block.sel(endpoint=endpoint)
                bias = _with_mcse(cell.bias_difference, cell.bias_difference_mcse, signed=True)
                power = _with_mcse(cell.power_difference, cell.power_difference_mcse, signed=True)
                lines.append(f"{str(condition):<10}  {f'{method} - {reference}':<{width}}  "
                             f"{endpoint:<8}  {bias:<15}  {power}")
    return lines + [""]


def format_summary(summary: xr.Dataset) -> str:
    """A readable plain-text table of a run's summary.

    Parameters
    ----------
    summary : xarray.Dataset
        The output of :func:`analysis.performance.summary.summarise_run` (or its ``summary.nc``).

    Returns
    -------
    str
        A title line, then per condition × method a block: a header, one row per
        cohort × endpoint (power by log-rank and Cox, bias against the true marginal log HR,
        coverage, EmpSE, ModSE, mean events, Schoenfeld and Freedman power, failure share), a
        matched-pair line, a balance line and the paper's-pattern line; then, if the summary
        has them, the paired differences of each method against its reference (bias and
        log-rank power in the matched cohort, per endpoint); then a footer explaining the abbreviations. Ends
        with a newline.
    """
    attrs = summary.attrs
    title = [f"psmsim summary: scenario {attrs.get('scenario_name', '?')}"]
    if "n_replicates" in summary.data_vars:  # a sweep's points may have different counts
        counts = summary.n_replicates.values
        title.append(f"{counts.min()}{'' if counts.min() == counts.max() else f'–{counts.max()}'} "
                     "replicates per condition")
    elif "n_replicates" in attrs:
        title.append(f"{attrs['n_replicates']} replicates per condition")
    title.append(f"alpha = {attrs.get('alpha', 0.05):g}")
    if "root_seed" in attrs:
        title.append(f"root seed {attrs['root_seed']}")
    lines = [", ".join(title), ""]
    header = _row([name for name, _ in _COLUMNS])
    for condition in summary.condition.values.tolist():
        for method in summary.method.values.tolist():
            # a dict, because ``method`` is also a keyword argument of ``sel``
            block = summary.sel({"condition": condition, "method": method})
            lines.append(f"{_condition_label(summary, condition)}, method {method}")
            lines.append(header)
            lines.append("-" * len(header))
            for cohort in block.cohort.values.tolist():
                for endpoint in block.endpoint.values.tolist():
                    lines.append(_cell_row(block.sel(cohort=cohort, endpoint=endpoint), cohort, endpoint))
            lines.extend(_method_lines(block, attrs))
            lines.append("")
    lines.extend(_paired_lines(summary))
    lines.append(_FOOTER)
    return "\n".join(lines) + "\n"
