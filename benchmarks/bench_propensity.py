"""The PS model's two iteration paths side by side: compiled kernel against the numpy loop.

Generates N liu2021 cohorts once (``scenarios/liu2021.toml``, arms optionally ×10 with
``--scale``) and times :func:`analysis.propensity.model.fit_propensity` on each plan's PS design
(``recommended``: R's ``glm`` rule; ``paper``: SPSS's rule), ``compiled=True`` (the kernels of
:mod:`analysis.propensity.irls_kernels`) and ``compiled=False`` (the numpy loop, the kernels'
test oracle), in alternating rounds so that both see the same machine state; reports the
median ms per replicate of each, their ratio, the mean iteration count and the largest
differences between the two fits (flags must be identical). The design matrix is built once
and not timed; one warm-up call per path is not timed either (numba's loading).

Wall-clock times (``perf_counter``), one BLAS thread as in psmsim's workers; run it under
``nice`` and say how loaded the machine was (the load average is printed).

Usage::

    .venv/bin/python benchmarks/bench_propensity.py [--replicates 200] [--rounds 7] [--scale 1|10]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "liu2021.toml"
FLAGS = ("n_iter", "converged", "separated", "rank_deficient", "status")


def designs(n: int, scale: int, seed: int):
    """{plan name: (PS algorithm, design values)} and the treatment of ``n`` liu2021 cohorts."""
    from analysis.plan.analyse import _ps_covariates
    from analysis.propensity.design import design_matrix
    from sim.calibrate.cache import calibrate_cached
    from sim.generate.cohorts import generate_cohorts
    from sim.scenario import load_scenario
    from sim.scenario.plans import scenario_plan

    scenario = load_scenario(SCENARIO)
    if scale != 1:
        arms = tuple(dataclasses.replace(arm, size=arm.size * scale) for arm in scenario.arms)
        scenario = dataclasses.replace(scenario, arms=arms)
    batch = generate_cohorts(scenario, calibrate_cached(scenario), n, rng=np.random.default_rng(seed))
    out = {}
    for name in ("recommended", "paper"):
        plan = scenario_plan(scenario, name)
        covariates, names, kinds = _ps_covariates(batch, plan)
        out[name] = (plan.ps_algorithm, design_matrix(covariates, kinds, columns=names).values)
    return out, batch.treated


def differences(fast, slow) -> dict[str, float]:
    """Largest differences: coefficients and linear predictors relative to the replicate's
    largest |value|, scores absolute; finite estimates and separated fits apart."""
    out = {}
    for field in ("coef", "logit", "ps"):
        a, b = getattr(fast, field), getattr(slow, field)
        scale = 1.0 if field == "ps" else np.nanmax(np.abs(b), axis=1, keepdims=True, initial=0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.nanmax(np.where(np.isnan(b), 0.0, np.abs(a - b) / scale), axis=1, initial=0.0)
        out[f"{field} finite"] = float(rel[~slow.separated].max(initial=0.0))
        out[f"{field} separated"] = float(rel[slow.separated].max(initial=0.0))
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per path (median reported)")
    parser.add_argument("--scale", type=int, default=1, choices=(1, 10))
    parser.add_argument("--seed", type=int, default=20210601)
    args = parser.parse_args(argv)

    from analysis.propensity.model import fit_propensity

    by_plan, treated = designs(args.replicates, args.scale, args.seed)
    report = {"load_average_before": os.getloadavg()}
    print(f"{args.replicates} liu2021 cohorts of {treated.shape[1]} patients; load average "
          f"{report['load_average_before'][0]:.2f}")
    for name, (algorithm, values) in by_plan.items():
        seconds = {True: [], False: []}
        fits = {compiled: fit_propensity(values, treated, algorithm=algorithm, compiled=compiled)
                for compiled in (True, False)}
        for _ in range(args.rounds):
            for compiled in (True, False):
                start = time.perf_counter()
                fit_propensity(values, treated, algorithm=algorithm, compiled=compiled)
                seconds[compiled].append(time.perf_counter() - start)
        fast, slow = fits[True], fits[False]
        identical = all(np.array_equal(getattr(fast, f), getattr(slow, f)) for f in FLAGS)
        ms = {compiled: 1e3 * float(np.median(s)) / args.replicates for compiled, s in seconds.items()}
        report[name] = {"algorithm": algorithm, "compiled_ms": ms[True], "numpy_ms": ms[False],
                        "ratio": ms[False] / ms[True], "mean_iterations": float(slow.n_iter.mean()),
                        "separated": float(slow.separated.mean()), "flags_identical": identical,
                        "differences": differences(fast, slow)}
        print(f"{name:>12} ({algorithm}): compiled {ms[True]:.4f} ms/replicate, numpy {ms[False]:.4f} "
              f"(x{ms[False] / ms[True]:.1f}); {slow.n_iter.mean():.1f} iterations on average, "
              f"{100 * slow.separated.mean():.0f}% separated; flags identical: {identical}")
        print("              largest differences: "
              + ", ".join(f"{k} {v:.1e}" for k, v in report[name]["differences"].items()))
    report["load_average_after"] = os.getloadavg()
    print(f"load average after: {report['load_average_after'][0]:.2f}")
    return report


if __name__ == "__main__":
    main()
