"""The summary of a run as a plain-text table for a terminal.

``format_summary(summary)`` takes the Dataset of :func:`analysis.performance.summary.summarise_run` and
returns, per condition, the true values the measures refer to (marginal ATT and conditional HRs,
true marginal medians per endpoint), then one block per method: a row per cohort × endpoint with
power, bias (log scale, and on the HR scale as the geometric mean of the estimated HRs beside
the true HR), coverage and precision (each ± its Monte Carlo SE), events and analytic power,
then lines for matched-pair counts (beside the pairs the study reported, when given), the PS
model, balance and the paper's pattern; the paired differences between methods
(:mod:`analysis.performance.paired`); and a footer explaining the abbreviations. The text
depends only on its inputs (no clock, no locale), so it can be compared verbatim.
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
    ("HR vs true", 21),
    ("coverage", 13),
    ("EmpSE", 6),
    ("ModSE", 6),
    ("events", 7),
    ("Schoen.", 7),
    ("Freed.", 7),
    ("failed", 7),
)

_FOOTER = """\
Abbreviations: ± = Monte Carlo SE (Morris, White & Crowther 2019); ±— = no Monte Carlo SE (every
  replicate agrees, e.g. a power of 0 or 1); LR = log-rank test; Cox = Cox Wald test (power =
  share of replicates with p < alpha); bias (marg.) = mean(estimated log HR - true marginal log
  HR); HR vs true = exp(mean estimated log HR), the geometric mean of the estimated HRs, beside
  the true marginal HR; coverage = share of 95% CIs containing the true marginal log HR; EmpSE =
  SD of the log-HR estimates; ModSE = root mean model variance; events = mean events in the
  analysed cohort; Schoen./Freed. = Schoenfeld / Freedman analytic power at those events and the
  true marginal HR (one-tailed: alpha/2 under a null truth); failed = share of replicates whose
  analysis failed (status not ok); NA = no usable replicate; * = null truth (true marginal log HR
  0): the power columns are type-I error rates. True marginal HR = the HR in the treated (ATT)
  that a Cox model of treatment alone estimates in the study's population and follow-up (ATE:
  in the whole population; ATO: in the overlap population); conditional HR = the HR given the
  covariates (a Cox model adjusted for them). Bias, HR vs true and coverage of a method's
  matched (adjusted) rows are against its own estimand, of the full (crude) rows against the
  ATT; the bias MCSE includes the truth's own MC error."""

#: Which hazard an endpoint's conditional HR is the HR of, where it is not the endpoint's own
#: (summaries before the per-estimand truths, whose OS conditional truth was h12's β).
_CONDITIONAL_OF = {"os": " (of death after progression)"}

#: What a separated PS model is, in one phrase.
SEPARATION_PHRASE = ("some covariate value occurs in one arm only, so the PS model's coefficient "
                     "diverges; its scores are still used")


def _number(value, digits: int, *, signed: bool = False) -> str:
    value = float(value)
    if math.isnan(value):
        return "NA"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _with_mcse(value, mcse, digits: int = 3, *, signed: bool = False) -> str:
    """``value±mcse``; ``value±—`` where the MCSE is undefined (NaN) or degenerate (exactly 0:
    every replicate agrees, so the spread of the estimate is not estimable from them)."""
    text = _number(value, digits, signed=signed)
    if text == "NA":
        return text
    mcse = float(mcse)
    if math.isnan(mcse) or mcse == 0.0:
        return f"{text}±—"
    return f"{text}±{_number(mcse, digits)}"


def _percent(value) -> str:
    value = float(value)
    return "NA" if math.isnan(value) else f"{100.0 * value:.1f}%"


def _row(cells) -> str:
    return "  ".join(f"{cell:<{width}}" for cell, (_, width) in zip(cells, _COLUMNS)).rstrip()


def _condition_label(summary: xr.Dataset, condition) -> str:
    """The swept scenario fields of a grid point (``field = value, ...``), or the scenario's
    name for a run of one scenario."""
    parts = [
        f"{name} = {summary[name].sel(condition=condition).item()}"
        for name, coord in summary.coords.items()
        if coord.dims == ("condition",) and name != "condition"
    ]
    if parts:
        return ", ".join(parts)
    name = summary.attrs.get("scenario_name")
    return f"scenario {name}" if name and summary.condition.size == 1 else f"grid point {condition}"


def _hr_versus_truth(cell: xr.Dataset) -> str:
    """exp(true + bias) ± exp(.) × MCSE (delta method), beside exp(true), the truth of the
    cell's estimand (``true_log_hr_target``; a summary before it: the marginal ATT)."""
    truth = float(cell.true_log_hr_target if "true_log_hr_target" in cell else cell.true_log_hr_marginal)
    bias, mcse = float(cell.bias_marginal), float(cell.bias_marginal_mcse)
    if math.isnan(truth) or math.isnan(bias):
        return "NA"
    hr = math.exp(truth + bias)
    return f"{_with_mcse(hr, hr * mcse, 3)} vs {math.exp(truth):.3f}"


def _cell_row(cell: xr.Dataset, cohort: str, endpoint: str) -> str:
    marker = "*" if bool(cell.null_truth) else ""
    return _row([
        cohort,
        f"{endpoint}{marker}",
        _with_mcse(cell.power_logrank, cell.power_logrank_mcse),
        _with_mcse(cell.power_cox, cell.power_cox_mcse),
        _with_mcse(cell.bias_marginal, cell.bias_marginal_mcse, signed=True),
        _hr_versus_truth(cell),
        _with_mcse(cell.coverage_marginal, cell.coverage_marginal_mcse),
        _number(cell.emp_se, 3),
        _number(cell.mod_se, 3),
        _number(cell.mean_events, 1),
        _number(cell.schoenfeld_power, 3),
        _number(cell.freedman_power, 3),
        _percent(1.0 - cell.status_rate.sel(status="ok")),
    ])


def _truth_lines(summary: xr.Dataset, condition) -> list[str]:
    """The true values of one condition, per endpoint (they do not depend on the method)."""
    point = summary.sel(condition=condition)
    lines = []
    for endpoint in point.endpoint.values.tolist():
        at = point.sel(endpoint=endpoint)
        marginal, conditional = float(at.true_log_hr_marginal), float(at.true_log_hr_conditional)
        lines.append(
            f"  true {endpoint.upper()}: marginal HR in the treated (ATT) {_number(math.exp(marginal), 3)}, "
            f"conditional HR {_number(math.exp(conditional), 3)}"
            f"{_CONDITIONAL_OF.get(endpoint, '') if 'estimand_note' in summary.attrs else ''}; true medians "
            f"{_number(at.true_median_treated, 2)} (treated) vs {_number(at.true_median_control, 2)} (control) months")
        if "true_log_hr" in at and "estimand_note" not in summary.attrs:
            parts = [f"{name.upper() if name != 'conditional' else name} "
                     f"{_with_mcse(at.true_log_hr.sel(estimand=name), at.true_log_hr_mcse.sel(estimand=name), 4, signed=True)}"
                     for name in at.estimand.values.tolist()]
            lines.append(f"    true log HR by estimand (± MC SE of the truth): {', '.join(parts)}")
    return lines


#: The estimand names as the method header says them.
_ESTIMAND_WORDS = {"att": "ATT", "ate": "ATE", "ato": "ATO", "conditional": "conditional HR"}


def _estimand_line(block: xr.Dataset) -> list[str]:
    """Which truth the method's rows are measured against (nothing for a summary without it)."""
    if "analysis_estimand" not in block.coords or "true_log_hr_target" not in block:
        return []
    name = str(block.analysis_estimand.values)
    if not name:
        return []
    truths = ", ".join(
        f"{endpoint.upper()} {_with_mcse(block.true_log_hr_target.sel(cohort='matched', endpoint=endpoint), block.true_log_hr_target_mcse.sel(cohort='matched', endpoint=endpoint), 4, signed=True)}"
        for endpoint in block.endpoint.values.tolist())
    return [f"  estimand {_ESTIMAND_WORDS.get(name, name)}: the matched (adjusted) rows against its true log HR "
            f"({truths}), the full (crude) rows against the ATT"]


def _ps_status_text(rates: xr.DataArray) -> str:
    """Rates of the PS/matching statuses other than ok, by name. A separated PS model is a flag
    (the plan still matches on its scores unless told to fail), so it is not called a failure."""
    parts = []
    for name in rates.status.values.tolist():
        if name == "ok" or float(rates.sel(status=name)) <= 0:
            continue
        text = f"{name.replace('_', ' ')} {_percent(rates.sel(status=name))}"
        parts.append(f"{text} ({SEPARATION_PHRASE})" if name == "separation" else text)
    return "PS model/matching: " + (", ".join(parts) if parts else "all ok")


def _method_lines(block: xr.Dataset, attrs: dict, observed_pairs: int | None) -> list[str]:
    """Pair counts, balance and the paper's pattern for one condition × method."""
    reported = f"; the study reported {observed_pairs}" if observed_pairs is not None else ""
    pairs = (
        f"  matched pairs: mean {_with_mcse(block.n_pairs_mean, block.n_pairs_mean_mcse, 1)}{reported}"
        f" (SD {_number(block.n_pairs_sd, 1)}; min {_number(block.n_pairs_min, 0)},"
        f" Q1 {_number(block.n_pairs_q1, 1)}, median {_number(block.n_pairs_median, 1)},"
        f" Q3 {_number(block.n_pairs_q3, 1)}, max {_number(block.n_pairs_max, 0)})"
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
    return [pairs, f"  {_ps_status_text(block.ps_status_rate)}",
            f"  balanced (max |SMD| < {threshold:g}): {balance}", pattern]


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


def format_summary(summary: xr.Dataset, *, observed_pairs: int | None = None) -> str:
    """A readable plain-text table of a run's summary.

    Parameters
    ----------
    summary : xarray.Dataset
        The output of :func:`analysis.performance.summary.summarise_run` (or its ``summary.nc``).
    observed_pairs : the matched pairs the study reported (a scenario's ``[checks] pairs``),
        printed beside the simulated pair counts; None: not printed.

    Returns
    -------
    str
        A title line, then per condition its true values and per method a block: a header, one
        row per cohort × endpoint (power by log-rank and Cox, bias against the true marginal log
        HR and on the HR scale, coverage, EmpSE, ModSE, mean events, Schoenfeld and Freedman
        power, failure share), a matched-pair line, a PS-model line, a balance line and the
        paper's-pattern line; then, if the summary
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
        label = _condition_label(summary, condition)
        lines.append(f"{label}: true values")
        lines.extend(_truth_lines(summary, condition))
        lines.append("")
        for method in summary.method.values.tolist():
            # a dict, because ``method`` is also a keyword argument of ``sel``
            block = summary.sel({"condition": condition, "method": method})
            lines.append(f"{label}, method {method}")
            lines.append(header)
            lines.append("-" * len(header))
            for cohort in block.cohort.values.tolist():
                for endpoint in block.endpoint.values.tolist():
                    lines.append(_cell_row(block.sel(cohort=cohort, endpoint=endpoint), cohort, endpoint))
            lines.extend(_method_lines(block, attrs, observed_pairs))
            if "estimand_note" not in attrs:
                lines.extend(_estimand_line(block))
            lines.append("")
    lines.extend(_paired_lines(summary))
    if "estimand_note" in attrs:
        lines.append(f"Note: {attrs['estimand_note']}.")
    lines.append(_FOOTER)
    return "\n".join(lines) + "\n"
