"""Every shipped sweep validates: the file, its design and every grid point's scenario and
plans on the paper's scenario; and each is listed in the README with its question."""

from pathlib import Path

import pytest

from sim.run.sweep_run import prepare_sweep

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted((ROOT / "scenarios" / "sweeps").glob("*.toml"))


def test_there_are_shipped_sweeps():
    assert len(SHIPPED) >= 10


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_sweep_validates_at_every_grid_point(path):
    run = prepare_sweep(ROOT / "scenarios" / "liu2021.toml", path)
    assert run.sweep.sweep.question, "a shipped sweep states the question it answers"
    assert len(run.design.points) >= 2 and len(run.cells) >= 1
    readme = (ROOT / "README.md").read_text()
    assert f"scenarios/sweeps/{path.name}" in readme, f"{path.name} is not listed in the README"
