"""Every command line of the README's "Command line" section at least once (tiny sizes), the
ones the other CLI test modules do not cover: `analyse --engine reference`, `describe`,
`run --backend dask`, `--version`; and the files they write follow the umask."""

import json
import os
import stat
from pathlib import Path

import pytest

from sim.cli import main
from tests.sim.cli.helpers import invoke

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("paths") / "c1.csv"
    result = invoke("cohort", LIU2021, "--seed", 1, "--out", path)
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("with_scenario", [False, True])
def test_analyse_with_the_reference_engine_prints_the_tables(cohort_csv, tmp_path, with_scenario):
    """Issue 8 item 1: `analyse c1.csv --engine reference` crashed with KeyError 'full'; the
    reference engine's results agree with the batched engine's on the same (deterministic) plan."""
    scenario = ("--scenario", LIU2021) if with_scenario else ()
    out = {}
    for engine in ("reference", "batched"):
        out[engine] = tmp_path / f"{engine}.json"
        result = invoke("analyse", cohort_csv, *scenario, "--plan", "recommended", "--engine", engine,
                        "--json", out[engine])
        assert result.exit_code == 0, result.output
        assert "Table 1. Baseline characteristics" in result.output and "Survival (Kaplan" in result.output
    reference, batched = (json.loads(out[e].read_text()) for e in ("reference", "batched"))
    assert reference["engine"] == "reference" and batched["engine"] == "batched"
    assert reference["matching"]["pairs"] == batched["matching"]["pairs"]
    for cohort in ("full", "matched"):
        for endpoint in ("pfs", "os"):
            r, b = reference["survival"][cohort][endpoint], batched["survival"][cohort][endpoint]
            assert r["hr"] == pytest.approx(b["hr"], rel=1e-8)
            assert r["p_logrank"] == pytest.approx(b["p_logrank"], rel=1e-8)
        assert reference["balance"][cohort] == pytest.approx(batched["balance"][cohort], rel=1e-8, abs=1e-12)


def test_analyse_paper_plan_with_the_reference_engine(cohort_csv):
    """The default plan (SPSS-style random matching) on the reference engine, no options."""
    result = invoke("analyse", cohort_csv, "--engine", "reference")
    assert result.exit_code == 0, result.output
    assert "Plan 'paper'" in result.output and "Table 2. Best response" in result.output


def test_describe_prints_targets_and_truth(liu2021_small_truth_path):
    result = invoke("describe", liu2021_small_truth_path, "--patients", 100, "--seed", 2)
    assert result.exit_code == 0, result.output
    assert "true marginal medians" in result.output


def test_run_on_the_dask_backend(tmp_path, liu2021_small_truth_path):
    pytest.importorskip("dask.distributed")
    out = tmp_path / "dask"
    result = invoke("run", liu2021_small_truth_path, "--replicates", 2, "--block-size", 2, "--jobs", 1, "--backend", "dask",
                    "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "replicates.nc").exists() and "power LR" in result.output


def test_version():
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"psmsim {version('psmsim')}"


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_follow_the_umask(tmp_path, umask):
    """Issue 8 item 12: results were written 0600 (the temporary file's mode)."""
    previous = os.umask(umask)
    try:
        path = tmp_path / "cohort.csv"
        assert invoke("cohort", LIU2021, "--seed", 1, "--out", path).exit_code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
