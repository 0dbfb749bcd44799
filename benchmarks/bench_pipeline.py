"""Speed of the batched analysis engine against the per-replicate reference pipeline.

Builds liu2021-like cohorts (35 vs 65 patients, the scenario's 15 PS covariates) with the
simulator (``scenarios/liu2021.toml``, calibrated through the on-disk cache) and measures, in
one run and for each preset ("paper", "recommended"):

* the reference engine (:func:`analysis.plan.reference.analyse_cohort_reference`: lifelines,
  statsmodels, scipy, one cohort at a time): milliseconds per replicate over ``--reference``
  replicates;
* the batched engine (:func:`analysis.plan.analyse.analyse_cohorts`): milliseconds per replicate over
  ``--blocks`` blocks of ``--block-size`` replicates (the runner's unit of work);

and prints the ratio. Cohort generation is not timed. ``--profile`` prints the top cProfile
entries of one batched block per preset. Single process, wall-clock time (``perf_counter``);
other load on the machine inflates both sides.

Usage::

    .venv/bin/python benchmarks/bench_pipeline.py [--reference 20] [--block-size 1000]
        [--blocks 2] [--profile] [--synthetic]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import platform
import pstats
import time
from pathlib import Path

import numpy as np

from analysis.cohort import CohortBatch
from analysis.plan.analyse import analyse_cohorts
from analysis.plan.options import PRESETS, Plan, make_plan
from analysis.plan.reference import analyse_cohort_reference

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "liu2021.toml"


def liu2021_source(seed: int):
    """(draw(n, rng) -> CohortBatch, {preset: Plan}) from the liu2021 scenario."""
    from sim.calibrate.cache import calibrate_cached
    from sim.generate.cohorts import generate_cohorts
    from sim.scenario.plans import scenario_plan
    from sim.scenario import load_scenario

    scenario = load_scenario(SCENARIO)
    calibration = calibrate_cached(scenario)
    plans = {name: scenario_plan(scenario, name) for name in PRESETS}

    def draw(n_replicates: int, rng: np.random.Generator) -> CohortBatch:
        return generate_cohorts(scenario, calibration, n_replicates, rng=rng)

    return draw, plans


def synthetic_source(seed: int):
    """Fallback without the simulator: 35 vs 65 patients, 15 covariates (5 continuous, 10
    binary), exponential PFS/OS with covariate effects, uniform censoring."""
    names = tuple(f"x{j}" for j in range(15))
    kinds = ("continuous",) * 5 + ("binary",) * 10

    def draw(n_replicates: int, rng: np.random.Generator) -> CohortBatch:
        n = 100
        treated = np.zeros((n_replicates, n), bool)
        treated[:, :35] = True
        covariates = np.concatenate(
            [rng.normal(0.2 * treated[..., None], 1.0, (n_replicates, n, 5)),
             (rng.random((n_replicates, n, 10)) < 0.3 + 0.1 * treated[..., None]).astype(float)], axis=2)
        log_hazard = covariates @ rng.normal(0, 0.15, 15) - 0.4 * treated
        pfs = rng.exponential(1.0, (n_replicates, n)) / (0.11 * np.exp(log_hazard))
        os_ = pfs + rng.exponential(1.0, (n_replicates, n)) / (0.2 * np.exp(log_hazard))
        follow_up = rng.uniform(6, 30, (n_replicates, n))
        return CohortBatch(
            treated=treated, covariates=covariates, covariate_names=names, covariate_kinds=kinds,
            entry_month=24 - follow_up + 6,
            pfs_months=np.minimum(pfs, follow_up), pfs_event=pfs <= follow_up,
            os_months=np.minimum(os_, follow_up), os_event=os_ <= follow_up,
            best_response=rng.choice(4, (n_replicates, n), p=[0.05, 0.1, 0.5, 0.35]).astype(np.int8),
            ae_grade=rng.choice(5, (n_replicates, n, 4), p=[0.5, 0.2, 0.15, 0.1, 0.05]).astype(np.int8),
            ae_names=("a", "b", "c", "d"),
            patient_id=np.broadcast_to(np.arange(1, n + 1), (n_replicates, n)).copy(),
        )

    plans = {name: make_plan(name) for name in PRESETS}
    return draw, plans


def time_reference(batch: CohortBatch, plan: Plan, rng: np.random.Generator) -> float:
    """Milliseconds per replicate of the reference engine over the replicates of ``batch``."""
    start = time.perf_counter()
    for r in range(batch.n_replicates):
        analyse_cohort_reference(batch.replicate(r), plan, rng=rng)
    return 1e3 * (time.perf_counter() - start) / batch.n_replicates


def time_batched(blocks: list[CohortBatch], plan: Plan, rng: np.random.Generator) -> float:
    """Milliseconds per replicate of the batched engine over whole blocks."""
    analyse_cohorts(blocks[0].replicate(0), plan, rng=rng)  # warm-up (imports, caches)
    start = time.perf_counter()
    n = 0
    for block in blocks:
        analyse_cohorts(block, plan, rng=rng)
        n += block.n_replicates
    return 1e3 * (time.perf_counter() - start) / n


def profile_batched(block: CohortBatch, plan: Plan, rng: np.random.Generator, top: int = 25) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    analyse_cohorts(block, plan, rng=rng)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=int, default=20, help="replicates timed with the reference engine")
    parser.add_argument("--block-size", type=int, default=1000, help="replicates per batched block")
    parser.add_argument("--blocks", type=int, default=2, help="batched blocks timed per preset")
    parser.add_argument("--seed", type=int, default=20210601)
    parser.add_argument("--profile", action="store_true", help="print the top cProfile entries of the batched engine")
    parser.add_argument("--synthetic", action="store_true", help="synthetic cohorts instead of the liu2021 scenario")
    args = parser.parse_args(argv)

    seeds = np.random.SeedSequence(args.seed).spawn(4)
    source = "synthetic"
    if args.synthetic:
        draw, plans = synthetic_source(args.seed)
    else:
        try:
            draw, plans = liu2021_source(args.seed)
            source = f"scenario {SCENARIO.relative_to(ROOT)}"
        except (ImportError, OSError, ValueError) as error:  # simulator unavailable: say so, go on
            print(f"liu2021 scenario unavailable ({type(error).__name__}: {error}); using synthetic cohorts")
            draw, plans = synthetic_source(args.seed)

    reference_batch = draw(args.reference, np.random.default_rng(seeds[0]))
    blocks = [draw(args.block_size, np.random.default_rng(s)) for s in seeds[1].spawn(args.blocks)]
    print(f"cohorts: {source}; {reference_batch.n_patients} patients "
          f"({int(reference_batch.treated[0].sum())} treated), {len(reference_batch.covariate_names)} covariates; "
          f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"reference: {args.reference} replicates; batched: {args.blocks} blocks x {args.block_size} replicates")
    print(f"{'preset':<13}{'reference ms/rep':>18}{'batched ms/rep':>16}{'speed-up':>10}")
    for name, plan in plans.items():
        reference_ms = time_reference(reference_batch, plan, np.random.default_rng(seeds[2]))
        batched_ms = time_batched(blocks, plan, np.random.default_rng(seeds[3]))
        print(f"{name:<13}{reference_ms:>18.1f}{batched_ms:>16.3f}{reference_ms / batched_ms:>9.0f}x")
    if args.profile:
        for name, plan in plans.items():
            print(f"\n--- cProfile, batched engine, preset {name}, one block of {args.block_size} ---")
            print(profile_batched(blocks[0], plan, np.random.default_rng(seeds[3])))


if __name__ == "__main__":
    main()
