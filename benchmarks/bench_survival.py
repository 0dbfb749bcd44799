"""The survival stages' two paths side by side: compiled kernels against the numpy code.

Generates N liu2021 cohorts once (``scenarios/liu2021.toml``, arms optionally ×10 or ×100 with
``--scale``), runs the ``recommended`` plan on them once for its matching, and builds the
risk-set tables the engine builds (:func:`analysis.plan.analyse._analyse_endpoint`: PFS and OS,
the full cohort and the matched one). It times, in alternating rounds so that both paths see
the same machine state:

* risk-set tables: :func:`analysis.survival.risk_sets.tabulate_risk_sets` of those four
  analyses, ``compiled=True`` (:mod:`analysis.survival.risk_set_kernels`) and
  ``compiled=False``;
and on the tables:

* Cox: :func:`analysis.survival.cox.cox_from_table` (Efron, robust SE clustered on the pairs;
  every patient a cluster in the full cohort), ``compiled=True``
  (:mod:`analysis.survival.cox_kernels`) and ``compiled=False`` (the numpy path, the kernel's
  test oracle);
* Kaplan-Meier: both arms' medians with the Brookmeyer-Crowley log-band CI,
  :func:`analysis.survival.kaplan_meier.km_median` of the table, ``compiled=True``
  (:mod:`analysis.survival.km_kernels`) and ``compiled=False`` (the curves of
  ``kaplan_meier_from_table`` read in numpy).

It reports the median ms per replicate of each (the four tables of a replicate together, as
the engine spends them), their ratio, and the largest differences between the paths (Cox:
log-HR absolute, SEs relative; flags must be identical; medians: count of values not equal).
The tables the Cox and Kaplan-Meier stages read are built once (compiled) and not timed; one
warm-up call per path is not timed either (numba's loading).

Wall-clock times (``perf_counter``), one BLAS thread as in psmsim's workers; run it under
``nice`` and say how loaded the machine was (the load average is printed).

Usage::

    .venv/bin/python benchmarks/bench_survival.py [--replicates 400] [--rounds 7] [--scale 1|10|100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))


def engine_tables(n: int, scale: int, seed: int):
    """The risk-set tables (and Cox clusters) of the recommended plan's survival analyses."""
    from bench_engine import load_scenario_scaled

    from analysis import status as st
    from analysis.plan.analyse import analyse_cohorts
    from analysis.survival.risk_sets import tabulate_risk_sets
    from sim.calibrate.cache import calibrate_cached
    from sim.generate.cohorts import generate_cohorts
    from sim.scenario.plans import scenario_plan

    scenario = load_scenario_scaled(scale)
    seeds = np.random.SeedSequence(seed).spawn(2)
    batch = generate_cohorts(scenario, calibrate_cached(scenario), n, rng=np.random.default_rng(seeds[0]))
    plan = scenario_plan(scenario, "recommended")
    result = analyse_cohorts(batch, plan, rng=np.random.default_rng(seeds[1]))
    # The matched cohort's weights as analyse_cohorts forms them (the plan proceeds under separation).
    matched_ok = ((result.matching.status == st.OK) & np.isin(result.propensity.status, (st.OK, st.SEPARATION)))[:, None]
    weights = {"full": np.ones(batch.treated.shape), "matched": np.where(matched_ok, result.matching.weight, 0.0)}
    singletons = np.broadcast_to(np.arange(batch.n_patients), batch.treated.shape)
    clusters = {"full": singletons, "matched": result.matching.pair_id}
    tables, inputs = [], []
    for time_, event in ((batch.pfs_months, batch.pfs_event), (batch.os_months, batch.os_event)):
        for cohort in ("full", "matched"):
            w = weights[cohort]
            inputs.append(((time_, event, batch.treated), {"mask": w > 0, "weights": w}))
            tables.append((tabulate_risk_sets(time_, event, batch.treated, mask=w > 0, weights=w), clusters[cohort]))
    return tables, inputs, plan, batch.n_patients


def differences(tables, plan) -> dict[str, float]:
    from analysis.survival.cox import cox_from_table
    from analysis.survival.kaplan_meier import km_median

    out = {"log_hr abs": 0.0, "se rel": 0.0, "robust_se rel": 0.0, "flags identical": True, "medians differing": 0}
    for table, cluster in tables:
        fast, slow = (cox_from_table(table, ties=plan.ties, cluster=cluster, compiled=c) for c in (True, False))
        ok = np.isfinite(slow.log_hr)
        out["flags identical"] &= all(np.array_equal(getattr(fast, f), getattr(slow, f))
                                      for f in ("n_iter", "converged", "status"))
        out["log_hr abs"] = max(out["log_hr abs"], float(np.abs(fast.log_hr - slow.log_hr)[ok].max(initial=0.0)))
        for field in ("se", "robust_se"):
            a, b = getattr(fast, field)[ok], getattr(slow, field)[ok]
            out[f"{field} rel"] = max(out[f"{field} rel"], float((np.abs(a - b) / b).max(initial=0.0)))
        for arm in ("treated", "control"):
            fast_m, slow_m = (km_median(table, arm=arm, ci=plan.median_ci, median_rule=plan.median_rule, compiled=c)
                              for c in (True, False))
            for field in ("median", "lower", "upper", "se", "status"):
                a, b = getattr(fast_m, field), getattr(slow_m, field)
                out["medians differing"] += int((~((a == b) | (np.isnan(a) & np.isnan(b)))).sum())
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per path (median reported)")
    parser.add_argument("--scale", type=int, default=1, choices=(1, 10, 100))
    parser.add_argument("--seed", type=int, default=20210601)
    args = parser.parse_args(argv)

    from analysis.survival.cox import cox_from_table
    from analysis.survival.kaplan_meier import km_median

    from analysis.survival.risk_sets import tabulate_risk_sets

    tables, inputs, plan, n_patients = engine_tables(args.replicates, args.scale, args.seed)

    def risk_sets(compiled):
        for arrays, options in inputs:
            tabulate_risk_sets(*arrays, **options, compiled=compiled)

    def cox(compiled):
        for table, cluster in tables:
            cox_from_table(table, ties=plan.ties, cluster=cluster, level=plan.level, compiled=compiled)

    def medians(compiled):
        for table, _ in tables:
            for arm in ("treated", "control"):
                km_median(table, arm=arm, ci=plan.median_ci, level=plan.level, median_rule=plan.median_rule,
                          compiled=compiled)

    report = {"load_average_before": os.getloadavg(), "patients": n_patients, "replicates": args.replicates}
    print(f"{args.replicates} liu2021 cohorts of {n_patients} patients (recommended plan: full and matched cohort, "
          f"PFS and OS); load average {report['load_average_before'][0]:.2f}")
    for name, stage in (("risk sets", risk_sets), ("Cox", cox), ("Kaplan-Meier", medians)):
        seconds = {True: [], False: []}
        for compiled in (True, False):
            stage(compiled)  # warm-up (numba's loading)
        for _ in range(args.rounds):
            for compiled in (True, False):
                start = time.perf_counter()
                stage(compiled)
                seconds[compiled].append(time.perf_counter() - start)
        ms = {compiled: 1e3 * float(np.median(s)) / args.replicates for compiled, s in seconds.items()}
        report[name] = {"compiled_ms": ms[True], "numpy_ms": ms[False], "ratio": ms[False] / ms[True]}
        print(f"{name:>13}: compiled {ms[True]:.4f} ms/replicate, numpy {ms[False]:.4f} (x{ms[False] / ms[True]:.1f})")
    report["differences"] = differences(tables, plan)
    print("  differences: " + ", ".join(f"{k} {v:.1e}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in report["differences"].items()))
    report["load_average_after"] = os.getloadavg()
    print(f"load average after: {report['load_average_after'][0]:.2f}")
    return report


if __name__ == "__main__":
    main()
