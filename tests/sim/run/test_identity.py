"""Run identity: the parsed scenario, not its text; not the replicate count."""

from pathlib import Path

from sim.run.identity import run_identity, run_id
from sim.run.runner import iter_conditions
from sim.scenario.parser import parse_scenario

LIU2021 = (Path(__file__).resolve().parents[3] / "scenarios" / "liu2021.toml").read_text()


def identity_of(text, seed=1, block_size=100):
    conditions = iter_conditions([parse_scenario(text)])
    return run_identity(conditions, seed=seed, block_size=block_size, methods=("paper", "recommended"),
                        version="test")


def test_identity_follows_the_parsed_scenario_not_its_text_nor_the_replicate_count():
    base = identity_of(LIU2021)
    commented = LIU2021.replace("[simulation]", "# a note added later\n[simulation]   # run settings", 1)
    more = LIU2021.replace("replicates = 2000", "replicates = 4000", 1)
    assert commented != LIU2021 and more != LIU2021
    assert identity_of(commented) == base and identity_of(more) == base
    assert "replicates" not in base and run_id(identity_of(more)) == run_id(base)
    # the seed and block size enter as used: a scenario seed overridden by --seed changes nothing
    assert identity_of(LIU2021.replace("seed = 20210430", "seed = 5", 1)) == base
    changed = LIU2021.replace("pfs_median = 10.2", "pfs_median = 10.3", 1)
    assert changed != LIU2021 and identity_of(changed)["scenario_sha256"] != base["scenario_sha256"]
    assert identity_of(LIU2021, seed=2)["root_seed"] == 2 and run_id(identity_of(LIU2021, seed=2)) != run_id(base)
