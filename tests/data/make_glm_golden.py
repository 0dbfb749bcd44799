"""Regenerate ``glm_golden.json``: R ``glm`` propensity fits and MatchIt pairs, mostly separated.

``tests/analysis/propensity/test_r_glm.py`` compares the batched PS model (``r_glm`` rule) and
MatchIt-style matching with these values, so it runs without R. Regenerate (needs ``Rscript``
with MatchIt and jsonlite, e.g. Debian's r-cran-matchit and r-cran-jsonlite) with::

    .venv/bin/python tests/data/make_glm_golden.py

Data sets:
* 30 cohorts of the ``liu2021`` scenario (35 + 65 patients; the paper's 15-column PS design:
  13 variables, prior therapy as three indicators), drawn with the generator of this
  repository from ``SeedSequence(SEED)``; more than half are (quasi-)separated (e.g. no treated
  patient with prior ablation), some rank-deficient (a column all zero);
* 4 constructed ones: complete separation on a continuous covariate (every linear predictor
  ends beyond |eta| = 30, where R's logit link clamps), quasi-complete separation by a binary
  seen only among the treated, an exactly aliased column, a small ordinary data set.

R computes, per data set:
* ``glm(treat ~ ., family = binomial())`` with the default ``glm.control()``: coefficients (NA
  for aliased columns), ``iter``, ``converged``, ``deviance``, ``fitted.values``,
  ``linear.predictors`` and ``sd(linear.predictors)``;
* MatchIt's own PS (``matchit(..., method = NULL, distance = "glm")``, which fits
  ``quasibinomial``): the largest absolute difference from the ``glm`` fitted values;
* MatchIt ``method = "nearest"`` (1:1, without replacement, ``m.order = "largest"``, no caliper)
  on the ``glm`` PS and on its linear predictor. The distance is passed multiplied by a power
  of two (recorded as ``ps_scale``, ``logit_scale``): Debian's MatchIt 4.5.1 build compares
  pair distances through an integer ``abs()``, which truncates every gap below 1 to 0 (so on a
  PS in (0, 1) the left candidate always wins); scaled so that gaps are large, the truncation
  changes only gaps closer than one unit, and the pairs are MatchIt's documented algorithm.
  Scaling by a power of two is exact and changes neither the order nor the pairs.
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
ROOT = HERE.parents[1]
OUTPUT = HERE / "glm_golden.json"
SEED = 20240612
N_LIU = 30

R_SCRIPT = r"""
suppressPackageStartupMessages({library(MatchIt); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
scale_for <- function(v) 2^floor(log2(2^30 / max(1e-300, diff(range(v)))))
pairs_of <- function(dat, distance) {
  m <- matchit(treat ~ ., data = dat, distance = distance, method = "nearest",
               m.order = "largest", replace = FALSE, ratio = 1)
  mm <- m$match.matrix
  list(treated_unit = as.integer(rownames(mm)), control_unit = suppressWarnings(as.integer(mm[, 1])))
}
out <- list()
for (ds in sort(unique(d$dataset))) {
  s <- d[d$dataset == ds, ]
  s <- s[order(s$unit), ]
  x <- s[, grep("^x", names(s)), drop = FALSE]
  x <- x[, colSums(is.na(x)) == 0, drop = FALSE]
  dat <- data.frame(treat = s$treat, x)
  rownames(dat) <- as.character(s$unit)
  f <- suppressWarnings(glm(treat ~ ., data = dat, family = binomial()))
  m0 <- suppressWarnings(matchit(treat ~ ., data = dat, method = NULL, distance = "glm"))
  ps <- unname(fitted(f)); lp <- unname(f$linear.predictors)
  ps_scale <- scale_for(ps); lp_scale <- scale_for(lp)
  out[[length(out) + 1]] <- list(
    dataset = ds, coef = unname(coef(f)), iter = f$iter, converged = f$converged,
    deviance = f$deviance, fitted = ps, linear_predictor = lp, sd_linear_predictor = sd(lp),
    matchit_ps_max_abs_diff = max(abs(unname(m0$distance) - ps)),
    ps_scale = ps_scale, logit_scale = lp_scale,
    pairs_ps = suppressWarnings(pairs_of(dat, ps * ps_scale)),
    pairs_logit = suppressWarnings(pairs_of(dat, lp * lp_scale)))
}
writeLines(toJSON(out, digits = I(17), auto_unbox = TRUE, na = "null"), args[2])
cat(R.version.string, "\n", as.character(packageVersion("MatchIt")), "\n", sep = "")
"""


def liu2021_cases(n_cases: int, seed: int) -> list[dict]:
    """Cohorts of scenarios/liu2021.toml as the paper's PS design (15 columns)."""
    from analysis.propensity.design import design_matrix
    from sim.calibrate.cache import calibrate_cached
    from sim.generate.cohorts import generate_cohorts
    from sim.scenario import load_scenario
    from sim.scenario.plans import scenario_plan

    scenario = load_scenario(ROOT / "scenarios" / "liu2021.toml")
    batch = generate_cohorts(scenario, calibrate_cached(scenario), n_cases,
                             rng=np.random.default_rng(np.random.SeedSequence(seed)))
    names = scenario_plan(scenario, "recommended").ps_covariates
    index = [batch.covariate_names.index(name) for name in names]
    design = design_matrix(batch.covariates[:, :, index], [batch.covariate_kinds[i] for i in index],
                           columns=names)
    values = np.round(design.values, 2)  # as a data file records them (age, tumour size in cm)
    return [dict(name=f"liu2021_{r + 1}", columns=list(design.names), x=values[r].tolist(),
                 treated=batch.treated[r].astype(int).tolist()) for r in range(n_cases)]


def constructed_cases(rng: np.random.Generator) -> list[dict]:
    cases = []
    n = 16
    x = np.column_stack([np.linspace(1, 16, n), rng.normal(size=n)])
    cases.append(dict(name="complete_separation", columns=["age", "noise"], x=x.tolist(),
                      treated=(np.arange(n) >= 8).astype(int).tolist()))
    n = 60
    flag = np.zeros(n)
    flag[:5] = 1
    treated = rng.random(n) < 0.4
    treated[:5] = True
    treated[5:7] = [True, False]
    x = np.column_stack([flag, rng.normal(size=n), rng.random(n) < 0.5])
    cases.append(dict(name="quasi_separation_binary", columns=["flag", "z", "b"], x=x.tolist(),
                      treated=treated.astype(int).tolist()))
    z = rng.normal(size=n)
    x = np.column_stack([z, rng.normal(size=n), 2.0 * z])
    treated = rng.random(n) < 1 / (1 + np.exp(-0.8 * z))
    cases.append(dict(name="aliased_column", columns=["z", "w", "z2"], x=x.tolist(),
                      treated=treated.astype(int).tolist()))
    n = 40
    x = np.column_stack([rng.normal(size=n), rng.random(n) < 0.3])
    treated = rng.random(n) < 1 / (1 + np.exp(-(0.5 * x[:, 0] - 0.3)))
    cases.append(dict(name="ordinary_small", columns=["z", "b"], x=x.tolist(),
                      treated=treated.astype(int).tolist()))
    return cases


def main() -> None:
    cases = liu2021_cases(N_LIU, SEED) + constructed_cases(np.random.default_rng(SEED))
    width = max(len(case["columns"]) for case in cases)
    frames = []
    for k, case in enumerate(cases, start=1):
        x = np.asarray(case["x"], dtype=float)
        columns = {f"x{j + 1}": (x[:, j] if j < x.shape[1] else np.nan) for j in range(width)}
        frames.append(pd.DataFrame({"dataset": k, "unit": np.arange(1, len(x) + 1),
                                    "treat": case["treated"], **columns}))
    with tempfile.TemporaryDirectory() as tmp:
        data_path, result_path = pathlib.Path(tmp) / "data.csv", pathlib.Path(tmp) / "result.json"
        pd.concat(frames).to_csv(data_path, index=False, float_format="%.17g", na_rep="NA")
        run = subprocess.run(["Rscript", "-e", R_SCRIPT, str(data_path), str(result_path)],
                             capture_output=True, text=True, check=True)
        results = json.loads(result_path.read_text())
    r_version, matchit_version = run.stdout.strip().splitlines()[-2:]
    for case, result in zip(cases, results):
        assert result["dataset"] == cases.index(case) + 1
        case["r"] = {key: value for key, value in result.items() if key != "dataset"}
    payload = {
        "provenance": {
            "generator": "tests/data/make_glm_golden.py",
            "seed": SEED,
            "r_version": r_version,
            "matchit_version": matchit_version,
            "created": datetime.date.today().isoformat(),
            "r_script": R_SCRIPT,
        },
        "cases": cases,
    }
    OUTPUT.write_text(json.dumps(payload, separators=(",", ":")) + "\n")
    n_iter = [case["r"]["iter"] for case in cases]
    print(f"wrote {len(cases)} cases to {OUTPUT} ({r_version}, MatchIt {matchit_version}); R iterations {n_iter}")


if __name__ == "__main__":
    main()
