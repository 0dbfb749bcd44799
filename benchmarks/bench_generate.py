"""Cohort generation (:func:`sim.generate.cohorts.generate_cohorts`) timed on liu2021, A/B.

Each checkout given (``--checkout PATH``, e.g. ``/work/main`` and a worktree) is timed in its own
fresh process (``PYTHONPATH`` = that checkout), alternating checkouts over ``--rounds`` rounds,
at each scale (``--scale 1 100``: the scenario's 100 patients, or the arms ×100, 10,000). A
process sets up as a runner's worker does (one BLAS thread, ``sim.run.workers.one_blas_thread``;
glibc keeping freed memory, ``keep_freed_memory``), calibrates (``calibrate_cached``),
generates one untimed warm-up block (numba loading), then times ``--blocks`` blocks of
``--replicates`` replicates from one generator seeded ``--seed`` and prints the block's CPU
time per replicate (``time.process_time``, ms; the minimum over blocks, as the machine's speed
drifts) and a sha256 of all blocks' fields, so the checkouts' cohorts can be compared too
(equal digests: identical cohorts). The summary is the minimum over rounds. Run it under
``nice``; the load average is printed.

Usage::

    .venv/bin/python benchmarks/bench_generate.py --checkout /work/main --checkout . \\
        [--scale 1 100] [--replicates 100] [--blocks 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import hashlib, json, os, sys, time
for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, "1")
import dataclasses
import numpy as np
from sim.calibrate.cache import calibrate_cached
from sim.generate.cohorts import generate_cohorts
from sim.scenario import load_scenario
scale, replicates, blocks, seed = (int(a) for a in sys.argv[1:5])
scenario = load_scenario(sys.argv[5])
if scale != 1:
    scenario = dataclasses.replace(scenario, arms=tuple(
        dataclasses.replace(arm, size=arm.size * scale) for arm in scenario.arms))
from sim.run.workers import keep_freed_memory, one_blas_thread
keep_freed_memory()
calibration = calibrate_cached(scenario)
generate_cohorts(scenario, calibration, 1, rng=np.random.default_rng(0))
rng = np.random.default_rng(seed)
digest, times = hashlib.sha256(), []
fields = ("treated", "covariates", "entry_month", "pfs_months", "pfs_event", "os_months",
          "os_event", "best_response", "ae_grade", "patient_id")
with one_blas_thread():
    for _ in range(blocks):
        start = time.process_time()
        batch = generate_cohorts(scenario, calibration, replicates, rng=rng)
        times.append(time.process_time() - start)
        for field in fields:
            digest.update(np.ascontiguousarray(getattr(batch, field)).tobytes())
import sim.generate.cohorts as module
print(json.dumps({"ms": 1e3 * float(np.min(times)) / replicates, "sha256": digest.hexdigest(),
                  "module": module.__file__}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", action="append", required=True)
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args()
    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "liu2021.toml"
    print(f"load average before: {os.getloadavg()}")
    for scale in args.scale:
        blocks = max(1, args.blocks // scale) if scale > 1 else args.blocks
        results = {checkout: [] for checkout in args.checkout}
        for _ in range(args.rounds):
            for checkout in args.checkout:
                # cwd too: ``python -c`` puts the working directory first on sys.path.
                env = dict(os.environ, PYTHONPATH=str(Path(checkout).resolve()))
                out = subprocess.run(
                    [sys.executable, "-c", WORKER, str(scale), str(args.replicates), str(blocks),
                     str(args.seed), str(scenario)],
                    env=env, cwd=checkout, check=True, capture_output=True, text=True).stdout
                results[checkout].append(json.loads(out.strip().splitlines()[-1]))
        patients = 100 * scale
        for checkout, runs in results.items():
            assert all(Path(run["module"]).is_relative_to(Path(checkout).resolve()) for run in runs)
            ms = sorted(run["ms"] for run in runs)
            print(f"{patients:>6} patients  {checkout:<24} {ms[0]:9.4f} ms/replicate "
                  f"(rounds {', '.join(f'{m:.3f}' for m in ms)})  sha256 {runs[0]['sha256'][:16]}")
        print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
