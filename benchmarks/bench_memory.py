"""Peak memory of the parent process of ``psmsim run`` against the number of replicates.

For each replicate count, runs ``psmsim run scenarios/liu2021.toml --replicates N --jobs J``
(both plans; ``--backend loky`` or ``dask``) in a fresh Python process that executes the CLI
in-process and, as it exits, reports its own peak resident set size (``ru_maxrss`` of
``RUSAGE_SELF``: the parent alone, not its workers) and the wall time. The workers' memory is
not the parent's: each holds one block at a time.

The parent holds one block at a time too (blocks are written as they finish, ``replicates.nc``
is filled block by block and the summary is merged from per-block sufficient statistics), so
its peak should not grow with N. Results, as a table and with ``--json FILE``::

    .venv/bin/python benchmarks/bench_memory.py --replicates 100000 1000000 [--jobs 2]
        [--backend loky|dask] [--keep replicates|summary] [--json out.json]

Each run goes to a fresh temporary folder (deleted afterwards unless ``--keep-folders``). The
calibration cache is warmed first so no run pays for calibration.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "liu2021.toml"

# Runs the CLI in this process, then prints its own peak RSS (KiB on Linux) as the last line.
_CHILD = """
import resource, sys
from sim.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print("PEAK_RSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
"""


def run_once(replicates: int, *, jobs: int, backend: str, keep: str, folder: Path) -> dict:
    args = ["run", str(SCENARIO), "--replicates", str(replicates), "--jobs", str(jobs),
            "--backend", backend, "--out", str(folder), "--quiet"]
    if keep != "replicates":
        args += ["--keep", keep]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"psmsim run --replicates {replicates} failed:\n{done.stderr[-2000:]}")
    peak = [line for line in done.stdout.splitlines() if line.startswith("PEAK_RSS_KIB")]
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"replicates": replicates, "peak_rss_mib": int(peak[-1].split()[1]) / 1024,
            "wall_s": wall, "folder_mib": size / 2**20, "backend": backend, "jobs": jobs, "keep": keep}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--backend", choices=["loky", "dask"], default="loky")
    parser.add_argument("--keep", choices=["replicates", "summary"], default="replicates")
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--keep-folders", action="store_true")
    options = parser.parse_args(argv)

    subprocess.run([sys.executable, "-m", "sim.cli", "describe", str(SCENARIO), "--patients", "100"],
                   cwd=ROOT, capture_output=True)  # warm the calibration cache
    rows = []
    for replicates in options.replicates:
        folder = Path(tempfile.mkdtemp(prefix=f"bench-memory-{replicates}-"))
        try:
            rows.append(run_once(replicates, jobs=options.jobs, backend=options.backend,
                                 keep=options.keep, folder=folder / "run"))
        finally:
            if not options.keep_folders:
                subprocess.run(["rm", "-rf", str(folder)])
        row = rows[-1]
        print(f"{row['replicates']:>10,} replicates  parent peak RSS {row['peak_rss_mib']:7.1f} MiB  "
              f"wall {row['wall_s']:7.1f} s  folder {row['folder_mib']:8.1f} MiB", flush=True)
    if len(rows) > 1:
        low, high = rows[0]["peak_rss_mib"], rows[-1]["peak_rss_mib"]
        print(f"peak RSS ratio {rows[-1]['replicates']:,} / {rows[0]['replicates']:,} replicates: {high / low:.3f}")
    if options.json_path:
        Path(options.json_path).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
