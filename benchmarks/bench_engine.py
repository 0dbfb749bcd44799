"""The analysis engine against R and against the per-replicate reference, on the same cohorts.

One run generates N liu2021 cohorts once (``scenarios/liu2021.toml``, arms optionally ×10 or
×100 with ``--scale``) and times, on exactly those cohorts and the ``recommended`` plan:

* the batched engine (:func:`analysis.plan.analyse.analyse_cohorts`) on all N at once, median of
  ``--rounds`` rounds, with its time split into stages (PS model, matching, balance, survival:
  risk-set tables, Kaplan–Meier, log-rank and Cox in one compiled pass, response tests, the
  rest) by a profile of one extra round scaled to the unprofiled time; cohort generation and
  block writing (the block Dataset and its ``.npz`` bytes written to a temporary folder) timed
  on their own;
* the reference path (:func:`analysis.plan.reference.analyse_cohort_reference`: lifelines,
  statsmodels, scipy, one cohort at a time) on the first ``--reference`` cohorts;
* where ``Rscript`` with ``survival`` is installed, ``benchmarks/bench_engine.R`` (glm, greedy
  caliper matching, survfit/survdiff/coxph with a pair-clustered SE, the same tests) on all N
  cohorts, one at a time in one R process; the R timing excludes R's start-up and reading the
  CSV.

``--end-to-end R`` also times ``psmsim run`` of R replicates with ``--jobs 2`` (generation, both
plans, writing, combining, summarising).

``--scaling N10 N100`` also times the batched engine (both plans taking turns, median of 5
rounds, wall and CPU time) on N10 cohorts of the ×10 variant (1,000 patients) and N100 of the
×100 variant (10,000 patients), beside the main cohorts, with each size's growth against
``n log n`` from the smallest (a wall time well above the CPU time says the process waited for
a core: compare CPU times then); and,
in a fresh process, one block of the scenario's default block size of the ×100 variant (both
plans, as a worker computes it: generation, analysis, the block Dataset), reporting that
process's peak RSS -- a worker's memory at the default block size.

It checks that the three engines agree (pairs, log-HRs, robust SEs, log-rank p, medians and the
treated arm's median CI, ORR p, max |SMD|: :data:`TOLERANCES`) and names each column that does
not, with its number of cohorts. Known: where the log-transformed upper confidence curve of a
Kaplan–Meier estimate is not monotone, R's ``quantile.survfit`` (``approx`` on the unsorted
curve) can put the upper limit of the median's CI later than the band inversion psmsim computes
(the first time the upper curve is at or below 1/2).

It prints a table and, with ``--json FILE``, the same as JSON (``ms_per_replicate``,
``replicates_per_second``, ``ratio_r``, ``ratio_reference``, ``stages_ms``, ``peak_rss_mib``,
``agreement``). Ratios are measured in the same run, on the same machine state. Wall-clock
times (``perf_counter``); run it under ``nice`` and say how loaded the machine was (the load
average is printed and recorded).

Usage::

    .venv/bin/python benchmarks/bench_engine.py [--replicates 200] [--scale 1|10|100]
        [--reference 20] [--rounds 5] [--no-r] [--end-to-end 2000] [--scaling 50 10]
        [--json bench.json]
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import dataclasses
import io
import json
import os
import platform
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One BLAS thread, as in psmsim's workers (sim.run.workers.ONE_BLAS_THREAD) and in R's reference
# BLAS: set before numpy loads its BLAS.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "liu2021.toml"
R_SCRIPT = Path(__file__).resolve().with_suffix(".R")
PLAN = "recommended"

#: Stage -> the engine functions (module, name) whose cumulative time it is.
STAGES = {
    "PS model": [("analysis/propensity/design.py", "design_matrix"), ("analysis/propensity/model.py", "fit_propensity")],
    "matching": [("analysis/propensity/caliper.py", "caliper_width"), ("analysis/propensity/matching.py", "match_patients")],
    "balance": [("analysis/propensity/balance.py", "standardised_differences_by_cohort")],
    # One compiled pass per replicate and endpoint (risk sets, Kaplan-Meier, log-rank, Cox):
    # its parts no longer appear in a profile, so they are one stage.
    "survival": [("analysis/survival/endpoint.py", "analyse_endpoint")],
    "tests": [("analysis/comparisons/response.py", "compare_responses")],
}


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_scenario_scaled(scale: int):
    from sim.scenario import load_scenario

    scenario = load_scenario(SCENARIO)
    if scale != 1:
        arms = tuple(dataclasses.replace(arm, size=arm.size * scale) for arm in scenario.arms)
        scenario = dataclasses.replace(scenario, arms=arms)
    return scenario


def stage_times(batch, plan, seed: int) -> dict[str, float]:
    """Share of each stage in one profiled run of the batched engine (fractions of its total)."""
    from analysis.plan.analyse import analyse_cohorts

    profiler = cProfile.Profile()
    profiler.enable()
    analyse_cohorts(batch, plan, rng=np.random.default_rng(seed))
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    total = max(ct for (file, _, name), (_, _, _, ct, _) in stats.items() if name == "analyse_cohorts")
    shares = {}
    for stage, functions in STAGES.items():
        seconds = 0.0
        for (file, _, name), (_, _, _, ct, _) in stats.items():
            if any(file.endswith(suffix) and name == target for suffix, target in functions):
                seconds += ct  # cumulative: the function and all it calls (the stages do not nest)
        shares[stage] = seconds / total
    shares["rest"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


def cohorts_csv(batch, path: Path) -> None:
    """All replicates of ``batch`` in one CSV for R, every number to full double precision (17
    significant digits, so R analyses exactly the engines' cohorts): ``replicate``, the
    treatment, the covariates, PFS, OS and the best response."""
    from analysis.cohort import RESPONSE_LABELS

    names = list(batch.covariate_names)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["replicate", "treated", *names, "pfs_months", "pfs_event", "os_months", "os_event",
                         "best_response"])
        for r in range(batch.n_replicates):
            for i in range(batch.n_patients):
                response = int(batch.best_response[r, i])
                writer.writerow([r, int(batch.treated[r, i]), *(repr(float(v)) for v in batch.covariates[r, i]),
                                 repr(float(batch.pfs_months[r, i])), int(batch.pfs_event[r, i]),
                                 repr(float(batch.os_months[r, i])), int(batch.os_event[r, i]),
                                 RESPONSE_LABELS[response] if response >= 0 else ""])


def r_available() -> str | None:
    """Why R cannot run here, or None when it can."""
    if shutil.which("Rscript") is None:
        return "Rscript not found"
    check = subprocess.run(["Rscript", "-e", "suppressPackageStartupMessages(library(survival))"],
                           capture_output=True, text=True)
    return None if check.returncode == 0 else "the R package survival is not installed"


def run_r(batch, plan, folder: Path) -> tuple[float, list[dict[str, float]]]:
    """Seconds R spends analysing the cohorts (start-up and reading excluded) and its rows."""
    data, out = folder / "cohorts.csv", folder / "r.csv"
    cohorts_csv(batch, data)
    done = subprocess.run(["Rscript", str(R_SCRIPT), str(data), ",".join(plan.ps_covariates), str(out)],
                          capture_output=True, text=True, check=True)
    with out.open() as stream:
        rows = [{key: float(value) if value not in ("NA", "") else float("nan") for key, value in row.items()}
                for row in csv.DictReader(stream)]
    return float(done.stdout.strip().splitlines()[-1]), rows


def engine_rows(result) -> list[dict[str, float]]:
    """The batched (or reference) result as the R script's columns, one dict per replicate."""
    rows = []
    for r in range(result.log_hr.shape[0]):
        row = {"n_pairs": float(result.n_pairs[r])}
        for c, cohort in enumerate(("full", "matched")):
            for e, endpoint in enumerate(("pfs", "os")):
                prefix = f"{cohort}_{endpoint}_"
                row[prefix + "log_hr"] = float(result.log_hr[r, c, e])
                row[prefix + "robust_se"] = float(result.se[r, c, e])
                row[prefix + "p_logrank"] = float(result.p_logrank[r, c, e])
                row[prefix + "median_treated"] = float(result.median_treated[r, c, e])
                row[prefix + "median_control"] = float(result.median_control[r, c, e])
                row[prefix + "median_treated_lower"] = float(result.median_treated_lower[r, c, e])
                row[prefix + "median_treated_upper"] = float(result.median_treated_upper[r, c, e])
            row[f"{cohort}_p_orr"] = float(result.p_orr[r, c])
        row["matched_max_abs_smd"] = float(result.max_abs_smd[r, 1])
        rows.append(row)
    return rows


#: Columns compared and the largest difference accepted between engines (same cohorts).
TOLERANCES = {"n_pairs": 0.0, "log_hr": 1e-6, "robust_se": 1e-6, "p_logrank": 1e-6, "median": 1e-6,
              "smd": 1e-6, "p_orr": 1e-6}


def agreement(a: list[dict[str, float]], b: list[dict[str, float]]) -> dict:
    """Per column compared (:data:`TOLERANCES`), the largest difference between ``a`` and ``b``
    and in how many replicates it exceeds the tolerance (NaN in both counts as equal, in one as
    a difference), over the replicates both have."""
    columns: dict[str, dict[str, float]] = {}
    differing = 0
    for row_a, row_b in zip(a, b):
        before = sum(c["replicates_differing"] for c in columns.values())
        for key in sorted(row_a.keys() & row_b.keys()):
            x, y = row_a[key], row_b[key]
            gap = 0.0 if (np.isnan(x) and np.isnan(y)) else (np.inf if np.isnan(x) or np.isnan(y) else abs(x - y))
            limit = next(tol for part, tol in TOLERANCES.items() if part in key)
            column = columns.setdefault(key, {"max_difference": 0.0, "replicates_differing": 0})
            column["max_difference"] = max(column["max_difference"], gap)
            column["replicates_differing"] += int(gap > limit)
        differing += int(sum(c["replicates_differing"] for c in columns.values()) > before)
    return {"replicates_compared": min(len(a), len(b)), "replicates_differing": differing, "columns": columns}


def median_seconds(function, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def interleaved_medians(functions: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of each function, the functions taking turns within every
    round (a passing load or a background flush then falls on all of them alike); CPU time
    (this process's, ``process_time``) beside the wall time shows how much of the latter was
    spent waiting for a core on a shared machine."""
    wall = {name: [] for name in functions}
    cpu = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            function()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (float(np.median(wall[name])), float(np.median(cpu[name]))) for name in functions}


def engine_ms(scenario, n: int, seed: int, plans=("recommended", "paper"), rounds: int = 5):
    """ms per replicate of the batched engine on ``n`` cohorts of ``scenario``, per plan and for
    generating them: wall and CPU time, each the median of ``rounds`` rounds in which the plans
    take turns (after a warm-up of every plan on one cohort). Returns (wall, cpu) dicts."""
    from analysis.plan.analyse import analyse_cohorts
    from sim.calibrate.cache import calibrate_cached
    from sim.generate.cohorts import generate_cohorts, warm_up
    from sim.scenario.plans import scenario_plan

    calibration = calibrate_cached(scenario)
    seeds = np.random.SeedSequence(seed).spawn(2)
    warm_up(scenario, calibration)  # numba's loading of the generator's kernels: not timed
    generate = lambda: generate_cohorts(scenario, calibration, n, rng=np.random.default_rng(seeds[0]))  # noqa: E731
    medians = interleaved_medians({"generate": generate}, rounds)
    batch = generate()
    analyses = {}
    for name in plans:
        plan = scenario_plan(scenario, name)
        analyse_cohorts(batch.replicate(0), plan, rng=np.random.default_rng(seeds[1]))
        analyses[name] = lambda plan=plan: analyse_cohorts(batch, plan, rng=np.random.default_rng(seeds[1]))
    medians |= interleaved_medians(analyses, rounds)
    wall = {name: 1e3 * seconds / n for name, (seconds, _) in medians.items()}
    cpu = {name: 1e3 * seconds / n for name, (_, seconds) in medians.items()}
    return wall, cpu


_BLOCK_CHILD = """
import resource, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
from bench_engine import load_scenario_scaled
from sim.calibrate.cache import calibrate_cached
from sim.run.runner import BlockTask, simulate_block
from sim.run.store import BlockKey
from sim.scenario.feasibility import run_block_size
scenario = load_scenario_scaled({scale})
calibration = calibrate_cached(scenario)
size = run_block_size(scenario)
simulate_block(BlockTask(BlockKey(0, 0, 0, 1), 1, scenario, calibration, ("paper", "recommended")))
start = time.perf_counter()
simulate_block(BlockTask(BlockKey(0, 0, 0, size), 1, scenario, calibration, ("paper", "recommended")))
print(size, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def worker_block(scale: int) -> dict[str, float]:
    """One default-size block of the ×``scale`` variant (both plans) in a fresh process: its
    replicates, seconds and that process's peak RSS (MiB)."""
    code = _BLOCK_CHILD.format(root=str(ROOT), bench=str(Path(__file__).resolve().parent), scale=scale)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    size, seconds, rss = done.stdout.split()
    return {"scale": scale, "replicates": int(size), "seconds": float(seconds),
            "ms_per_replicate": 1e3 * float(seconds) / int(size), "peak_rss_mib": float(rss)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=200, help="cohorts generated once and analysed by every engine")
    parser.add_argument("--scale", type=int, default=1, choices=(1, 10, 100),
                        help="liu2021 arms ×1 (100 patients), ×10 or ×100")
    parser.add_argument("--reference", type=int, default=20, help="of those cohorts, how many the reference path analyses")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the batched engine (the median is reported)")
    parser.add_argument("--seed", type=int, default=20210601)
    parser.add_argument("--no-r", action="store_true", help="skip the R script")
    parser.add_argument("--end-to-end", type=int, default=0, metavar="R",
                        help="also time `psmsim run` of R replicates (both plans, --jobs 2) in a temporary folder")
    parser.add_argument("--scaling", type=int, nargs=2, metavar=("N10", "N100"),
                        help="also time the engine (both plans) on N10 cohorts of 1,000 and N100 of 10,000 patients, "
                             "and one default-size block of 10,000-patient cohorts in a fresh process (peak RSS)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)

    from analysis.plan.analyse import analyse_cohorts
    from analysis.plan.reference import analyse_cohort_reference
    from sim.calibrate.cache import calibrate_cached
    from sim.generate.cohorts import generate_cohorts, warm_up
    from sim.run.results import block_dataset
    from sim.run.block_codec import dataset_to_npz_bytes
    from sim.run.atomic_files import atomic_write_bytes
    from sim.scenario.plans import scenario_plan

    scenario = load_scenario_scaled(args.scale)
    calibration = calibrate_cached(scenario)
    plan = scenario_plan(scenario, PLAN)
    n = args.replicates
    seeds = np.random.SeedSequence(args.seed).spawn(3)

    warm_up(scenario, calibration)  # numba's loading of the generator's kernels: not timed
    generate = lambda: generate_cohorts(scenario, calibration, n, rng=np.random.default_rng(seeds[0]))  # noqa: E731
    generate_s = median_seconds(generate, args.rounds)
    batch = generate()

    analyse_cohorts(batch.replicate(0), plan, rng=np.random.default_rng(seeds[1]))  # warm-up
    result = analyse_cohorts(batch, plan, rng=np.random.default_rng(seeds[1]))
    batched_s = median_seconds(lambda: analyse_cohorts(batch, plan, rng=np.random.default_rng(seeds[1])), args.rounds)
    shares = stage_times(batch, plan, seeds[1].generate_state(1)[0])
    with tempfile.TemporaryDirectory() as folder:
        def write_block():
            dataset = block_dataset({PLAN: result}, condition=0, start=0)
            atomic_write_bytes(Path(folder) / "block.npz", dataset_to_npz_bytes(dataset))

        write_block()  # warm-up (xarray's first Dataset)
        write_s = median_seconds(write_block, args.rounds)

    k = min(args.reference, n)
    start = time.perf_counter()
    reference = [analyse_cohort_reference(batch.replicate(r), plan, rng=np.random.default_rng(seeds[2]))
                 for r in range(k)]
    reference_s = time.perf_counter() - start
    reference_rows = [engine_rows(item)[0] for item in reference]
    batched_rows = engine_rows(result)

    why_no_r = "--no-r" if args.no_r else r_available()
    r_s, r_rows = None, []
    if why_no_r is None:
        with tempfile.TemporaryDirectory() as folder:
            r_s, r_rows = run_r(batch, plan, Path(folder))

    end_to_end = None
    if args.end_to_end:
        with tempfile.TemporaryDirectory() as folder:
            command = [sys.executable, "-m", "sim.cli", "run", str(SCENARIO), "--replicates", str(args.end_to_end),
                       "--jobs", "2", "--quiet", "--out", str(Path(folder) / "run")]
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
            seconds = time.perf_counter() - start
        end_to_end = {"replicates": args.end_to_end, "jobs": 2, "seconds": seconds,
                      "ms_per_replicate": 1e3 * seconds / args.end_to_end}

    scaling = None
    if args.scaling:
        sizes = [(args.scale, n), (10, args.scaling[0]), (100, args.scaling[1])]
        rows = []
        for scale, count in sizes:
            variant = scenario if scale == args.scale else load_scenario_scaled(scale)
            patients = sum(arm.size for arm in variant.arms)
            wall, cpu = engine_ms(variant, count, args.seed)
            rows.append({"scale": scale, "patients": patients, "replicates": count, "ms_per_replicate": wall,
                         "cpu_ms_per_replicate": cpu, "load_average": os.getloadavg()})
        base = rows[0]
        for row in rows:
            grow = row["patients"] * np.log(row["patients"]) / (base["patients"] * np.log(base["patients"]))
            row["n_log_n_growth"] = float(grow)
            row["growth"] = {plan: row["ms_per_replicate"][plan] / base["ms_per_replicate"][plan]
                             for plan in ("recommended", "paper")}
        scaling = {"engine": rows, "worker_block": worker_block(100)}

    ms = {"batched": 1e3 * batched_s / n, "reference": 1e3 * reference_s / k,
          "r": 1e3 * r_s / n if r_s is not None else None}
    report = {
        "plan": PLAN, "scenario": str(SCENARIO.relative_to(ROOT)), "scale": args.scale,
        "patients": int(batch.n_patients), "replicates": n, "reference_replicates": k,
        "rounds": args.rounds, "ms_per_replicate": ms,
        "replicates_per_second": {name: (1e3 / value if value else None) for name, value in ms.items()},
        "ratio_reference": ms["reference"] / ms["batched"],
        "ratio_r": ms["r"] / ms["batched"] if ms["r"] is not None else None,
        "r_skipped": why_no_r,
        "stages_ms": {"generate": 1e3 * generate_s / n,
                      **{stage: 1e3 * batched_s * share / n for stage, share in shares.items()},
                      "writing": 1e3 * write_s / n},
        "peak_rss_mib": peak_rss_mib(),
        "peak_rss_mib_children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "end_to_end": end_to_end,
        "scaling": scaling,
        "agreement": {"reference": agreement(batched_rows[:k], reference_rows),
                      "r": agreement(batched_rows, r_rows) if r_rows else None},
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(), "nice": os.nice(0), "platform": platform.platform()},
    }
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return report


def _verdict(compared: dict | None) -> str:
    if not compared:
        return "not compared"
    count = compared["replicates_compared"]
    bad = {key: c for key, c in compared["columns"].items() if c["replicates_differing"]}
    if not bad:
        return f"agree on all {count} cohorts (every compared column within its tolerance)"
    details = ", ".join(f"{key} in {c['replicates_differing']} (max {c['max_difference']:.3g})"
                        for key, c in sorted(bad.items()))
    return f"agree on {count - compared['replicates_differing']} of {count} cohorts; differ: {details}"


def format_report(report: dict) -> str:
    ms, rate = report["ms_per_replicate"], report["replicates_per_second"]
    load = ", ".join(f"{x:.2f}" for x in report["machine"]["load_average"])
    lines = [f"bench_engine: plan {report['plan']}, {report['replicates']} cohorts of {report['patients']} patients "
             f"(liu2021 ×{report['scale']}); {report['machine']['cpus']} CPUs, load average {load}, "
             f"nice {report['machine']['nice']}", "",
             f"{'engine':<30}{'ms/replicate':>14}{'replicates/s':>14}{'× batched':>11}"]
    r_label = "R (survival, one process)"
    for name, label in (("batched", "psmsim batched"), ("r", r_label),
                        ("reference", f"reference ({report['reference_replicates']} cohorts)")):
        if ms[name] is None:
            lines.append(f"{label:<30}{'skipped: ' + str(report['r_skipped']):>39}")
            continue
        lines.append(f"{label:<30}{ms[name]:>14.3f}{rate[name]:>14.1f}{ms[name] / ms['batched']:>10.1f}×")
    lines += ["", "batched engine per stage (ms per replicate; generation and writing timed apart):"]
    lines += [f"  {stage:<14}{value:>10.4f}" for stage, value in report["stages_ms"].items()]
    if report["end_to_end"]:
        e2e = report["end_to_end"]
        lines += ["", f"psmsim run, both plans, --jobs {e2e['jobs']}: {e2e['replicates']} replicates in "
                      f"{e2e['seconds']:.1f} s ({e2e['ms_per_replicate']:.2f} ms per replicate, wall)"]
    if report.get("scaling"):
        lines += ["", "scaling (batched engine, ms per replicate, wall (CPU); growth against the smallest cohort, "
                      "n log n beside):",
                  f"  {'patients':>9}{'replicates':>12}{'generate':>17}{'recommended':>17}{'paper':>17}"
                  f"{'growth rec.':>13}{'growth paper':>14}{'n log n':>9}"]
        contended = False
        for row in report["scaling"]["engine"]:
            t, c = row["ms_per_replicate"], row["cpu_ms_per_replicate"]
            cells = "".join(f"{f'{t[k]:.3f} ({c[k]:.3f})':>17}" for k in ("generate", "recommended", "paper"))
            lines.append(f"  {row['patients']:>9,}{row['replicates']:>12}{cells}{row['growth']['recommended']:>13.1f}"
                         f"{row['growth']['paper']:>14.1f}{row['n_log_n_growth']:>9.1f}")
            contended |= any(t[k] > 1.2 * c[k] for k in ("recommended", "paper"))
        if contended:
            lines.append("  wall > 1.2 x CPU: the process waited for a core (a shared or loaded machine); compare CPU")
        block = report["scaling"]["worker_block"]
        lines.append(f"  one default block ({block['replicates']} replicates of the x{block['scale']} variant, both plans, "
                     f"fresh process): {block['seconds']:.1f} s, {block['ms_per_replicate']:.1f} ms per replicate, "
                     f"peak RSS {block['peak_rss_mib']:.0f} MiB")
    lines += ["", f"peak RSS {report['peak_rss_mib']:.0f} MiB (this process; largest child, R or psmsim run: "
                  f"{report['peak_rss_mib_children']:.0f} MiB)",
              f"reference vs batched: {_verdict(report['agreement']['reference'])}",
              f"R vs batched: {_verdict(report['agreement']['r'])}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
