"""Regenerate ``estimators_r_golden.json``: R results for the weighted and adjusted estimators.

The tests in ``tests/analysis/survival/test_weighted.py``, ``test_cox_regression.py`` and
``tests/analysis/propensity/test_austin_cafri.py`` compare the batched engine with these
values, so they run without R. Regenerate (needs ``Rscript`` with survival, Hmisc and MatchIt)::

    .venv/bin/python tests/data/make_estimators_r_golden.py

Cohorts: 15 to 80 patients, a treatment indicator, covariates z0, z1 (normal) and z2 (binary)
acting on the hazard, exponential times, uniform censoring, times rounded to 0.5 month in most
cases (tied event times), non-integer case weights (uniform 0.2-4) in most cases, 1 otherwise.

R computes, per cohort (``coxph.control(eps = 1e-12, iter.max = 100)``):
* ``coxph(Surv(time, event) ~ treated, weights = weight, robust = TRUE, ties = "efron" |
  "breslow")``: coefficient, model SE ``sqrt(naive.var)``, robust SE ``sqrt(var)``, robust
  score test ``rscore``;
* ``coxph(Surv(time, event) ~ treated + z0 + z1 + z2, weights = weight, robust = TRUE, ties
  = ...)``: treatment coefficient, model and robust SE;
* ``survfit(Surv(time, event) ~ 1, weights = weight)`` per arm (robust variance by default for
  non-integer weights, Greenwood otherwise) and ``quantile(fit, 0.5)`` (``conf.type = "log"``);
  plus ``std.err`` (SE of S) at every time of the treated arm;
* Hmisc ``rcspline.eval(z0, nk = k, knots.only = TRUE)`` for k = 3, 4, 5 and the treatment
  coefficient and log-likelihood of ``coxph(Surv ~ treated + rcspline.eval(z0, nk = 4, inclx =
  TRUE))`` (Efron);
* the PS-quintile style stratified fit ``coxph(Surv ~ treated + strata(s))`` with ``s =
  cut(z0, quantile(z0, 0:5 / 5), include.lowest = TRUE)`` (Efron, unweighted) and
  ``survdiff(Surv ~ treated + strata(s))$chisq``.
Matched cohorts (``matched_cases``): integer-valued distances (Debian's MatchIt 4.5.1 compares
gaps through an integer ``abs()``, see ``matchit_golden.R``), ``matchit(method = "nearest",
replace = TRUE, ratio = 1 | 2)`` without caliper, and the Austin & Cafri (2020) variance from
``get_matches()`` as in MatchIt's vignette "estimating-effects": three robust ``coxph`` fits
clustered by subclass, by id and by row (Efron), V = ks/(ks-1) Vs + ki/(ki-1) Vi - kc/(kc-1) Vc.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import subprocess
import tempfile

import numpy as np
import pandas as pd

HERE = pathlib.Path(__file__).parent
OUTPUT = HERE / "estimators_r_golden.json"
SEED = 20240612
N_CASES = 60
N_MATCHED = 24

R_SCRIPT = r"""
suppressWarnings(suppressMessages({library(survival); library(Hmisc); library(MatchIt); library(jsonlite)}))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
m <- read.csv(args[2])
ctl <- coxph.control(eps = 1e-12, iter.max = 100)
quiet <- function(expr) tryCatch(suppressWarnings(expr), error = function(e) NULL)
na <- function(x) if (is.null(x) || length(x) == 0) NA else x
out <- list()
for (k in sort(unique(d$case))) {
  s <- d[d$case == k, ]
  r <- list(case = k)
  for (ties in c("efron", "breslow")) {
    f <- quiet(coxph(Surv(time, event) ~ treated, data = s, weights = weight, robust = TRUE,
                     ties = ties, control = ctl))
    r[[paste0("cox_", ties)]] <- if (is.null(f)) NULL else
      list(coef = unname(coef(f)), se = sqrt(f$naive.var[1, 1]), robust_se = sqrt(f$var[1, 1]),
           rscore = unname(f$rscore))
    g <- quiet(coxph(Surv(time, event) ~ treated + z0 + z1 + z2, data = s, weights = weight,
                     robust = TRUE, ties = ties, control = ctl))
    r[[paste0("adjusted_", ties)]] <- if (is.null(g)) NULL else
      list(coef = unname(coef(g)), se = sqrt(g$naive.var[1, 1]),
           robust_se = sqrt(g$var[1, 1]))
  }
  for (arm in c(1, 0)) {
    a <- s[s$treated == arm, ]
    sf <- survfit(Surv(time, event) ~ 1, data = a, weights = weight)
    q <- quantile(sf, 0.5)
    r[[paste0("median_", c("control", "treated")[arm + 1])]] <-
      c(na(unname(q$quantile)), na(unname(q$lower)), na(unname(q$upper)))
    if (arm == 1) r$km_treated <- list(time = sf$time, surv = sf$surv, std_err = sf$std.err)
  }
  r$knots <- lapply(3:5, function(nk) unname(rcspline.eval(s$z0, nk = nk, knots.only = TRUE)))
  basis <- rcspline.eval(s$z0, nk = 4, inclx = TRUE)
  sp <- quiet(coxph(Surv(time, event) ~ treated + basis, data = s, control = ctl))
  r$spline_coef <- if (is.null(sp)) NA else unname(coef(sp)[1])
  r$spline_loglik <- if (is.null(sp)) NA else sp$loglik[2]
  s$stratum <- cut(s$z0, quantile(s$z0, 0:5 / 5), include.lowest = TRUE)
  st <- quiet(coxph(Surv(time, event) ~ treated + strata(stratum), data = s, ties = "efron",
                    control = ctl))
  r$stratified <- if (is.null(st)) NULL else list(coef = unname(coef(st)), se = sqrt(st$var[1, 1]))
  lr <- quiet(survdiff(Surv(time, event) ~ treated + strata(stratum), data = s))
  r$stratified_logrank <- if (is.null(lr)) NA else lr$chisq
  r$stratum <- as.integer(s$stratum) - 1L
  out[[length(out) + 1]] <- r
}
matched <- list()
for (k in sort(unique(m$case))) {
  s <- m[m$case == k, ]
  rownames(s) <- as.character(s$unit)
  for (ratio in c(1, 2)) {
    mm <- quiet(matchit(treated ~ distance, data = s, distance = s$distance, method = "nearest",
                        replace = TRUE, ratio = ratio))
    if (is.null(mm)) next
    gm <- get_matches(mm, data = s, distance = "ps_distance")
    fs <- coxph(Surv(time, event) ~ treated, data = gm, robust = TRUE, weights = weights,
                cluster = subclass, control = ctl)
    fi <- coxph(Surv(time, event) ~ treated, data = gm, robust = TRUE, weights = weights,
                cluster = id, control = ctl)
    fc <- coxph(Surv(time, event) ~ treated, data = gm, robust = TRUE, weights = weights, control = ctl)
    ks <- nlevels(gm$subclass); ki <- length(unique(gm$id)); kc <- nrow(gm)
    v <- (ks / (ks - 1)) * fs$var + (ki / (ki - 1)) * fi$var - (kc / (kc - 1)) * fc$var
    mat <- mm$match.matrix
    matched[[length(matched) + 1]] <- list(
      case = k, ratio = ratio, treated_unit = as.integer(rownames(mat)),
      control_unit = lapply(seq_len(nrow(mat)), function(i) as.integer(mat[i, ])),
      coef = unname(coef(fc)), var_subclass = fs$var[1, 1], var_id = fi$var[1, 1], var_row = fc$var[1, 1],
      ks = ks, ki = ki, kc = kc, austin_cafri_se = sqrt(v[1, 1]))
  }
}
writeLines(toJSON(list(cases = out, matched = matched), digits = NA, auto_unbox = TRUE, null = "null",
                  na = "null"), args[3])
cat(R.version.string, "\n", as.character(packageVersion("survival")), "\n",
    as.character(packageVersion("Hmisc")), "\n", as.character(packageVersion("MatchIt")), "\n", sep = "")
"""


def make_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    while len(cases) < N_CASES:
        n = int(rng.integers(15, 81))
        treated = rng.random(n) < rng.uniform(0.3, 0.6)
        z0, z1 = rng.normal(size=n), rng.normal(size=n)
        z2 = (rng.random(n) < 0.4).astype(float)
        lin = rng.normal(0, 0.6) * treated + 0.5 * z0 - 0.4 * z1 + 0.6 * z2
        event_time = rng.exponential(8.0, n) * np.exp(-lin)
        censor_time = rng.uniform(0.0, rng.choice([10.0, 20.0, 60.0]), n)
        if rng.random() < 0.75:
            event_time = np.round(event_time * 2) / 2 + 0.5
            censor_time = np.round(censor_time * 2) / 2 + 0.5
        event = event_time <= censor_time
        if event[treated].sum() < 2 or event[~treated].sum() < 2 or treated.sum() < 5 or (~treated).sum() < 5:
            continue
        weight = rng.uniform(0.2, 4.0, n) if rng.random() < 0.8 else np.ones(n)
        cases.append(dict(time=np.minimum(event_time, censor_time).tolist(), event=event.astype(int).tolist(),
                          treated=treated.astype(int).tolist(), z0=z0.tolist(), z1=z1.tolist(), z2=z2.tolist(),
                          weight=weight.tolist()))
    return cases


def make_matched_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    while len(cases) < N_MATCHED:
        n = int(rng.integers(20, 70))
        treated = rng.random(n) < rng.uniform(0.25, 0.5)
        if treated.sum() < 4 or (~treated).sum() < 6:
            continue
        distance = np.round(rng.normal(size=n) * 30 + 20 * treated)
        event_time = rng.exponential(8.0, n) * np.exp(-rng.normal(0, 0.5) * treated + distance / 60)
        censor_time = rng.uniform(0.0, 30.0, n)
        if rng.random() < 0.6:
            event_time = np.round(event_time * 2) / 2 + 0.5
            censor_time = np.round(censor_time * 2) / 2 + 0.5
        event = event_time <= censor_time
        cases.append(dict(time=np.minimum(event_time, censor_time).tolist(), event=event.astype(int).tolist(),
                          treated=treated.astype(int).tolist(), distance=distance.tolist()))
    return cases


def main() -> None:
    rng = np.random.default_rng(SEED)
    cases, matched_cases = make_cases(rng), make_matched_cases(rng)
    long = pd.concat([pd.DataFrame({"case": k, **case}) for k, case in enumerate(cases)])
    long_matched = pd.concat([pd.DataFrame({"case": k, "unit": np.arange(1, len(case["time"]) + 1), **case})
                              for k, case in enumerate(matched_cases)])
    with tempfile.TemporaryDirectory() as tmp:
        paths = [pathlib.Path(tmp) / name for name in ("cases.csv", "matched.csv", "result.json")]
        long.to_csv(paths[0], index=False)
        long_matched.to_csv(paths[1], index=False)
        run = subprocess.run(["Rscript", "-e", R_SCRIPT, *map(str, paths)], capture_output=True, text=True,
                             check=True)
        results = json.loads(paths[2].read_text())
    r_version, survival_version, hmisc_version, matchit_version = run.stdout.strip().splitlines()[-4:]
    for result in results["cases"]:
        cases[result.pop("case")]["r"] = result
    for result in results["matched"]:
        matched_cases[result.pop("case")].setdefault("r", []).append(result)
    payload = {
        "provenance": {
            "generator": "tests/data/make_estimators_r_golden.py",
            "seed": SEED,
            "r_version": r_version,
            "survival_version": survival_version,
            "hmisc_version": hmisc_version,
            "matchit_version": matchit_version,
            "created": datetime.date.today().isoformat(),
            "r_script": R_SCRIPT,
        },
        "cases": cases,
        "matched_cases": matched_cases,
    }
    OUTPUT.write_text(json.dumps(payload, separators=(",", ":")) + "\n")
    print(f"wrote {len(cases)} + {len(matched_cases)} cases to {OUTPUT} ({r_version}, survival {survival_version})")


if __name__ == "__main__":
    main()
