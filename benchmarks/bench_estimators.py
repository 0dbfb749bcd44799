"""Speed of every estimator of the batched plan on liu2021 blocks.

Draws liu2021 cohorts (``scenarios/liu2021.toml``, 35 vs 65 patients, calibrated through the
on-disk cache; ``--synthetic`` for the simulator-free stand-in of ``bench_pipeline.py``) and
times :func:`analysis.plan.analyse.analyse_cohorts` on blocks of ``--block-size`` replicates
for the ``recommended`` preset with each estimator / SE option below, printing milliseconds per
replicate (both cohorts, both endpoints, everything the plan reports) and the share of
replicates whose adjusted-slot PFS analysis has status ok. Cohort generation is not timed.
Single process, wall-clock time (``perf_counter``, best of ``--repeat``); other load on the
machine inflates the numbers.

Usage::

    .venv/bin/python benchmarks/bench_estimators.py [--block-size 100] [--repeat 3]
        [--bootstrap-draws 200] [--synthetic]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from analysis import status
from analysis.plan.analyse import analyse_cohorts
from analysis.plan.options import make_plan
from bench_pipeline import liu2021_source, synthetic_source

VARIANTS = {
    "matching (recommended)": {},
    "matching, optimal": {"matcher": "optimal"},
    "matching 1:2": {"ratio": 2},
    "matching with replacement": {"replace": True},
    "matching, replacement, Austin-Cafri SE": {"replace": True, "cox_se": "austin_cafri"},
    "matching, pairs bootstrap SE": {"cox_se": "bootstrap"},
    "iptw ATE": {"estimator": "iptw"},
    "iptw ATE stabilised, trimmed 0.99": {"estimator": "iptw", "stabilize": True, "weight_trim": 0.99},
    "iptw ATT": {"estimator": "iptw", "estimand": "att"},
    "overlap (ATO)": {"estimator": "overlap"},
    "iptw ATE, bootstrap SE": {"estimator": "iptw", "cox_se": "bootstrap"},
    "cox_adjusted": {"estimator": "cox_adjusted"},
    "ps_adjusted linear": {"estimator": "ps_adjusted"},
    "ps_adjusted spline (4 knots)": {"estimator": "ps_adjusted", "ps_adjustment": "spline"},
    "ps_stratified (quintiles)": {"estimator": "ps_stratified"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bootstrap-draws", type=int, default=200)
    parser.add_argument("--synthetic", action="store_true")
    args = parser.parse_args()

    draw, plans = (synthetic_source if args.synthetic else liu2021_source)(1)
    base = plans["recommended"]
    batch = draw(args.block_size, np.random.default_rng(np.random.SeedSequence(2024)))
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__}; block of {args.block_size} "
          f"liu2021 replicates ({batch.n_patients} patients), best of {args.repeat}")
    print(f"{'estimator':44s} {'ms/replicate':>12s} {'ok (PFS)':>9s}")
    for name, overrides in VARIANTS.items():
        options = dict(overrides)
        if options.get("cox_se") == "bootstrap":
            options["bootstrap_draws"] = args.bootstrap_draws
        plan = make_plan("recommended", options, ps_covariates=base.ps_covariates,
                         rank_test_covariates=base.rank_test_covariates)
        best = np.inf
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = analyse_cohorts(batch, plan, rng=np.random.default_rng(7))
            best = min(best, time.perf_counter() - start)
        ok = np.mean(result.status[:, 1, 0] == status.OK)
        label = name + (f" ({args.bootstrap_draws} draws)" if "bootstrap" in name else "")
        print(f"{label:44s} {1000 * best / args.block_size:12.2f} {ok:9.2f}")


if __name__ == "__main__":
    main()
