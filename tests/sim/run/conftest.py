"""Small finished sweeps shared by the tests of this package: each is run once per session
(``psmsim sweep`` then ``psmsim sensitivity`` on ``tests/data/sweeps/small_<name>.toml``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.cli import main

ROOT = Path(__file__).resolve().parents[3]
LIU2021 = ROOT / "scenarios" / "liu2021.toml"
SWEEPS = ROOT / "tests" / "data" / "sweeps"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="session")
def small_sweep(tmp_path_factory):
    """``small_sweep(name)`` → (folder, printed sensitivity report) of the finished sweep."""
    done: dict[str, tuple[Path, str]] = {}

    def make(name: str) -> tuple[Path, str]:
        if name not in done:
            out = tmp_path_factory.mktemp(f"sweep-{name}") / "run"
            result = invoke("sweep", LIU2021, SWEEPS / f"small_{name}.toml", "--jobs", "1", "--quiet", "--out", out)
            assert result.exit_code == 0, result.output
            result = invoke("sensitivity", out)
            assert result.exit_code == 0, result.output
            done[name] = (out, result.output)
        return done[name]

    return make
