"""Regenerate ``survival_r_golden.json``: R ``survival`` results on random small cohorts.

The tests in ``tests/analysis/test_survival.py`` compare the batched engine with these values,
so they run without R. Regenerate (needs ``Rscript`` with the survival package) with::

    .venv/bin/python tests/data/make_survival_r_golden.py

Cohorts: 1:1 "matched" samples (pair ids 0..n_pairs-1) of 3 to 40 pairs, exponential event
times with a random hazard ratio, uniform censoring (0 to ~90 %), times rounded to 0.5 month
in most cases (tied event times), integer frequency weights 1-3 in some cases.

R computes, per cohort:
* ``coxph(Surv(time, event) ~ treated, cluster = pair, ties = "efron" | "breslow")``,
  the pair-stratified ``~ treated + strata(pair)`` with ``cluster = pair`` (Efron), and the
  weighted Efron fit ``weights = weight, cluster = pair``: coefficient, model SE
  (``sqrt(naive.var)``) and robust SE (``sqrt(var)``), with ``eps = 1e-12``;
* ``survdiff`` chi-square, unstratified and ``+ strata(pair)``;
* ``survfit`` per arm and ``quantile(fit, 0.5)`` with ``conf.type`` "log", "log-log", "plain".
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
OUTPUT = HERE / "survival_r_golden.json"
SEED = 20240611
N_CASES = 80

R_SCRIPT = r"""
suppressWarnings(suppressMessages(library(survival)))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
ctl <- coxph.control(eps = 1e-12, iter.max = 100)
rows <- list()
for (k in sort(unique(d$case))) {
  s <- d[d$case == k, ]
  summ <- function(r) {
    if (inherits(r, "error")) return(c(NA, NA, NA))
    c(unname(coef(r)), sqrt(r$naive.var[1, 1]), sqrt(r$var[1, 1]))
  }
  quiet <- function(expr) tryCatch(suppressWarnings(expr), error = function(e) e)
  efron <- summ(quiet(coxph(Surv(time, event) ~ treated, data = s, cluster = pair,
                            ties = "efron", control = ctl)))
  breslow <- summ(quiet(coxph(Surv(time, event) ~ treated, data = s, cluster = pair,
                              ties = "breslow", control = ctl)))
  strat <- summ(quiet(coxph(Surv(time, event) ~ treated + strata(pair), data = s,
                            cluster = pair, ties = "efron", control = ctl)))
  weighted <- summ(quiet(coxph(Surv(time, event) ~ treated, data = s, cluster = pair,
                               weights = weight, ties = "efron", control = ctl)))
  lr <- survdiff(Surv(time, event) ~ treated, data = s)$chisq
  lrs <- tryCatch(survdiff(Surv(time, event) ~ treated + strata(pair), data = s)$chisq,
                  error = function(e) NA)
  med <- c()
  for (arm in c(1, 0)) {
    for (ct in c("log", "log-log", "plain")) {
      sf <- survfit(Surv(time, event) ~ 1, data = s[s$treated == arm, ], conf.type = ct)
      q <- quantile(sf, 0.5)
      med <- c(med, unname(q$quantile), unname(q$lower), unname(q$upper))
    }
  }
  rows[[length(rows) + 1]] <- c(k, efron, breslow, strat, weighted, lr, lrs, med)
}
out <- do.call(rbind, rows)
# Full double precision (write.csv keeps only 15 significant digits).
writeLines(apply(out, 1, function(r) paste(ifelse(is.na(r), "NA", sprintf("%.17g", r)), collapse = ",")),
           args[2])
cat(R.version.string, "\n", as.character(packageVersion("survival")), "\n", sep = "")
"""

COLUMNS = (
    ["case"]
    + [f"{model}_{field}" for model in ("efron", "breslow", "strata_efron", "weighted_efron")
       for field in ("coef", "se", "robust_se")]
    + ["logrank_chisq", "logrank_strata_chisq"]
    + [f"median_{arm}_{ct}_{field}" for arm in ("treated", "control")
       for ct in ("log", "loglog", "plain") for field in ("median", "lower", "upper")]
)


def make_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    while len(cases) < N_CASES:
        n_pairs = int(rng.integers(3, 41))
        treated = np.r_[np.ones(n_pairs, bool), np.zeros(n_pairs, bool)]
        log_hr = rng.normal(0.0, 0.7)
        event_time = rng.exponential(8.0, 2 * n_pairs) * np.exp(-log_hr * treated)
        censor_time = rng.uniform(0.0, rng.choice([8.0, 15.0, 40.0, 200.0]), 2 * n_pairs)
        if rng.random() < 0.8:  # tied times
            event_time = np.round(event_time * 2) / 2 + 0.5
            censor_time = np.round(censor_time * 2) / 2 + 0.5
        event = event_time <= censor_time
        time = np.minimum(event_time, censor_time)
        if event[treated].sum() == 0 or event[~treated].sum() == 0:
            continue
        weight = rng.integers(1, 4, 2 * n_pairs) if rng.random() < 0.5 else np.ones(2 * n_pairs, int)
        cases.append(
            dict(
                time=time.tolist(),
                event=event.astype(int).tolist(),
                treated=treated.astype(int).tolist(),
                pair=np.r_[np.arange(n_pairs), np.arange(n_pairs)].tolist(),
                weight=weight.tolist(),
            )
        )
    return cases


def main() -> None:
    cases = make_cases(np.random.default_rng(SEED))
    long = pd.concat(
        [pd.DataFrame({"case": k, **{key: case[key] for key in ("time", "event", "treated", "pair", "weight")}})
         for k, case in enumerate(cases)]
    )
    with tempfile.TemporaryDirectory() as tmp:
        data_path, result_path = pathlib.Path(tmp) / "data.csv", pathlib.Path(tmp) / "result.csv"
        long.to_csv(data_path, index=False)
        run = subprocess.run(["Rscript", "-e", R_SCRIPT, str(data_path), str(result_path)],
                             capture_output=True, text=True, check=True)
        results = pd.read_csv(result_path, header=None, names=COLUMNS, na_values=["NA"])
    r_version, survival_version = run.stdout.strip().splitlines()[-2:]
    for k, case in enumerate(cases):
        row = results.iloc[k]
        case["r"] = {name: (None if pd.isna(row[name]) else float(row[name])) for name in COLUMNS[1:]}
    payload = {
        "provenance": {
            "generator": "tests/data/make_survival_r_golden.py",
            "seed": SEED,
            "r_version": r_version,
            "survival_version": survival_version,
            "created": datetime.date.today().isoformat(),
            "r_script": R_SCRIPT,
        },
        "cases": cases,
    }
    OUTPUT.write_text(json.dumps(payload, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {len(cases)} cases to {OUTPUT} ({r_version}, survival {survival_version})")


if __name__ == "__main__":
    main()
