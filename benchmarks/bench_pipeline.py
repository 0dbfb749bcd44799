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

``--stages R`` instead times what a ``psmsim run`` of R liu2021 replicates does besides the
engine, stage by stage, in CPU milliseconds per replicate (``process_time``; the load average is
printed): in a worker, per block of the scenario's block size (``--stage-blocks`` distinct
blocks), generation and both plans (the engine, for scale), assembling the block's arrays
(:func:`sim.run.results.block_parts`), encoding and writing its two files
(:class:`sim.run.store.BlockWriter`), and a task's trip (pickling a :class:`BlockTask` in the
parent, unpickling it in a worker, the key back); in the parent, over R replicates (those
blocks written under R / block-size keys of a temporary run folder), each stage of the read-back
(:func:`sim.run.orchestrate.summarise_with_differences` with the ``replicates.nc`` writer): reading
the groups, the summary and paired states, writing ``replicates.nc``, the second pass's reading
of the interval variables and its coverage counts, and ``summary.nc``/``summary.csv``; and a
fresh worker's start-up (imports, numba's kernels), paid once per worker.

Usage::

    .venv/bin/python benchmarks/bench_pipeline.py [--reference 20] [--block-size 1000]
        [--blocks 2] [--profile] [--synthetic]
    .venv/bin/python benchmarks/bench_pipeline.py --stages 20000 [--stage-blocks 20]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pickle
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from functools import reduce
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


_STARTUP = """
import time
start = time.process_time()
import sim.run.runner, analysis.plan.analyse, sim.generate.cohorts, sim.scenario.plans
from analysis.propensity.greedy_kernels import warm_up
warm_up()
print(time.process_time() - start)
"""


def _cpu(function, *args):
    """(result, CPU seconds) of ``function(*args)``."""
    start = time.process_time()
    result = function(*args)
    return result, time.process_time() - start


def stage_times(replicates: int, distinct_blocks: int, seed: int) -> dict[str, dict[str, float]]:
    """CPU ms per replicate of each stage of a liu2021 run outside the engine (see the module
    docstring): {"worker": {...}, "parent": {...}, "startup_s": {...}}."""
    from analysis.performance.accumulate import INTERVAL_VARIABLES, CentreCoverageState, SummaryState
    from analysis.performance.paired import merge_paired_states, paired_difference_state, paired_from_state
    from analysis.performance.summary import summarise_state, summary_to_frame
    from analysis.propensity.greedy_kernels import warm_up
    import cloudpickle  # loky's pickler
    from sim.calibrate.cache import calibrate_cached, true_estimands_cached
    from sim.generate.cohorts import generate_cohorts
    from sim.run.replicates_file import ReplicatesWriter, replicates_skeleton
    from sim.run.results import BlockParts, block_parts
    from sim.run.runner import BlockTask, block_keys, block_rng
    from sim.run.store import RunFolder, group_keys
    from sim.scenario import load_scenario
    from sim.scenario.plans import method_stream, paired_references, scenario_plan

    scenario = load_scenario(SCENARIO)
    calibration = calibrate_cached(scenario)
    truths = [true_estimands_cached(scenario, calibration).as_variables()]
    size = scenario.simulation.block_size
    methods = ("paper", "recommended")
    plans = {m: scenario_plan(scenario, m) for m in methods}
    warm_up()
    worker = dict.fromkeys(("generate", *methods, "assemble", "encode_write", "task_trip"), 0.0)
    keys = list(block_keys(1, replicates, size))
    computed = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = RunFolder(Path(tmp) / "run", {"bench": "stages", "seed": seed})
        write = folder.block_writer()
        for index in range(min(distinct_blocks, len(keys)) + 1):  # the first block warms up, untimed
            key = keys[index % len(keys)]
            batch, seconds = _cpu(lambda: generate_cohorts(scenario, calibration, key.size,
                                                           rng=block_rng(seed, key, 0)))
            times = {"generate": seconds}
            results = {}
            for m in methods:
                rng = block_rng(seed, key, method_stream(scenario, m))
                results[m], times[m] = _cpu(lambda: analyse_cohorts(batch, plans[m], rng=rng))
            parts, times["assemble"] = _cpu(lambda: block_parts(results, condition=0, start=key.start))
            _, times["encode_write"] = _cpu(write, key, parts)
            task = BlockTask(key, seed, scenario, calibration, methods)
            _, times["task_trip"] = _cpu(lambda: pickle.loads(cloudpickle.dumps(pickle.loads(cloudpickle.dumps(task)).key)))
            if index:
                computed.append(parts)
                for name, seconds in times.items():
                    worker[name] += seconds
        timed = sum(p.data_vars["n_pairs"][1].shape[1] for p in computed)
        worker = {name: 1e3 * seconds / timed for name, seconds in worker.items()}

        for key in keys:  # the run's keys, filled with the computed blocks in turn
            parts = computed[key.block % len(computed)]
            if parts.data_vars["n_pairs"][1].shape[1] != key.size:
                parts = computed[0]
                parts = BlockParts({n: (d, v[:, :key.size]) for n, (d, v) in parts.data_vars.items()}, parts.coords)
            coords = {**parts.coords, "replicate": (("replicate",), np.arange(key.start, key.start + key.size))}
            write(key, BlockParts(parts.data_vars, coords))
        groups = group_keys(keys)
        skeleton = replicates_skeleton(folder.read_block(keys[0]), replicates=replicates, truths=truths,
                                       grid=[{}], attrs={})
        parent = dict.fromkeys(("read", "summary_state", "paired_state", "replicates_nc", "read_intervals",
                                "coverage", "summary_files"), 0.0)
        references = {m: r for m, r in paired_references(scenario).items() if r in methods}
        state = paired = None
        with ReplicatesWriter(Path(tmp) / "run" / "replicates.nc", replicates=replicates, truths=truths,
                              grid=[{}], attrs={}, chunk_replicates=size) as writer:
            for group in groups:
                block, seconds = _cpu(folder.read_blocks, group)
                parent["read"] += seconds
                _, seconds = _cpu(writer.write, block)
                parent["replicates_nc"] += seconds
                one, seconds = _cpu(lambda: SummaryState.from_block(block, truths=skeleton))
                state, more = (one, 0.0) if state is None else _cpu(state.merge, one)
                parent["summary_state"] += seconds + more
                one, seconds = _cpu(lambda: paired_difference_state(block, reference=references))
                paired, more = (one, 0.0) if paired is None else _cpu(merge_paired_states, paired, one)
                parent["paired_state"] += seconds + more
            centres = state.centres()
            coverage = None
            for group in groups:
                block, seconds = _cpu(folder.read_blocks, group, INTERVAL_VARIABLES)
                parent["read_intervals"] += seconds
                one, seconds = _cpu(CentreCoverageState.from_block, block, centres)
                coverage = one if coverage is None else coverage.merge(one)
                parent["coverage"] += seconds
        start = time.process_time()
        summary = summarise_state(state, coverage, attrs=skeleton.attrs)
        summary = summary.merge(paired_from_state(paired).transpose(*summary.power_logrank.dims),
                                combine_attrs="override")
        folder.write_summary(summary, summary_to_frame(summary).to_csv(index=False))
        parent["summary_files"] = time.process_time() - start
        folder.close()
    parent = {name: 1e3 * seconds / replicates for name, seconds in parent.items()}
    startup = [float(subprocess.run([sys.executable, "-c", _STARTUP], capture_output=True, text=True, check=True,
                                    cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout) for _ in range(2)]
    return {"worker": worker, "parent": parent, "startup_s": {"worker": min(startup)}}


def print_stages(replicates: int, times: dict) -> None:
    engine = ("generate", "paper", "recommended")
    worker, parent = times["worker"], times["parent"]
    print(f"stages of a {replicates:,}-replicate liu2021 run, CPU ms per replicate; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for side, values in (("worker", worker), ("parent", parent)):
        for name, ms in values.items():
            print(f"  {side:<7}{name:<16}{ms:>9.4f}" + ("  (engine)" if name in engine else ""))
    outside = sum(ms for name, ms in worker.items() if name not in engine) + sum(parent.values())
    startup = times["startup_s"]["worker"]
    print(f"  outside the engine: {outside:.4f} ms per replicate (worker {outside - sum(parent.values()):.4f}, "
          f"parent {sum(parent.values()):.4f}), plus {startup:.2f} s of CPU per worker started "
          f"({1e3 * 2 * startup / replicates:.4f} ms per replicate for 2 workers at this size); "
          f"engine {sum(worker[n] for n in engine):.4f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=int, default=20, help="replicates timed with the reference engine")
    parser.add_argument("--block-size", type=int, default=1000, help="replicates per batched block")
    parser.add_argument("--blocks", type=int, default=2, help="batched blocks timed per preset")
    parser.add_argument("--seed", type=int, default=20210601)
    parser.add_argument("--profile", action="store_true", help="print the top cProfile entries of the batched engine")
    parser.add_argument("--synthetic", action="store_true", help="synthetic cohorts instead of the liu2021 scenario")
    parser.add_argument("--stages", type=int, metavar="R",
                        help="instead: CPU ms per replicate of each stage outside the engine of a run of R replicates")
    parser.add_argument("--stage-blocks", type=int, default=20, help="distinct blocks computed for --stages")
    args = parser.parse_args(argv)
    if args.stages:
        print_stages(args.stages, stage_times(args.stages, args.stage_blocks, args.seed))
        return

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
