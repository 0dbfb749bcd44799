"""generate_cohorts keeps its random streams and arithmetic: golden digests of every batch field.

The cohorts are part of a run's identity (a block's results depend on nothing else), so a faster
generator must give the same arrays bit for bit: the same draws from the same
``numpy.random.Generator`` calls in the same order and shapes, and the same doubles around them.
The digests below are the sha256 of every field of the batch (name, dtype, shape and bytes, in
:data:`FIELDS` order) of the shipped scenarios (``scenarios/*.toml``, calibrated on 5,000
patients with ``default_rng(2026)``; the calibration's own numbers are digested too, as it draws
through the same generator functions), for three (seed, replicates) pairs.

Provenance: computed with the generator of main at 6e3887f (before the compiled AE grade kernel
and the vectorised marginals of issue 13), numpy 2.4.6, scipy 1.17.1, x86-64 with AVX-512F.
Another numpy/scipy build or CPU may round exp/ndtr differently in the last bit (for the old
code as well); regenerate the digests from that commit there, never from the code under test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from sim.calibrate.targets import calibrate
from sim.generate.cohorts import generate_cohorts
from sim.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"

FIELDS = ("treated", "covariates", "entry_month", "pfs_months", "pfs_event", "os_months",
          "os_event", "best_response", "ae_grade", "patient_id")

#: (seed, replicates) of the digested batches.
DRAWS = ((1, 7), (20261203, 3), (99, 1))

GOLDEN = {
    # scenario: (calibration, then one digest per DRAWS entry)
    "liu2021": (
        "7e1d527037898020669fe98e6685966c4b5991e6e70d2f2f3351cf2d8f8e8e9e",
        "b80f769b0c89dc4a4aa84f7f49281d0202b10b68a3b4fca221e64e74267030b0",
        "da868829f5519a7d95696cd1185e0a0d218f17e638cc49a4682294908dcb6322",
        "5dc931e8d0304a704d8c5477415c90761f0df7bc9b026f1db2d2f371ecd8f754",
    ),
    "null_randomised": (
        "8d89efd439c7e859bdcd487294b2291b6db8f7279231976b89be41e7227c38c4",
        "fc83ffb8737bab2c576d7f5a1cc9b8dd36b791668fb2b8b39b49a03b5455d1cf",
        "f0b48e5660de21920b55b24db0c0533456f2954db709c4324853aaa3b67eb991",
        "b2d0357b58dca6dd555a6489b4e00e39771ed6335978aa637e11f19736e48c5d",
    ),
    "randomised_effect": (
        "3d67e10394b251cd217976e93b5b7e21bcf58ccf83202b64bc1ecb07ef7bed8d",
        "0170ddc009c8ee1e473cfebf90a02fd177ec0575b86be256b838f5d7674ff679",
        "98c09c5f29b06894f7f7af0b80a97b618e4eec23afa31fcc682c0608655f7962",
        "9538aacfdbcc0644d9f7d4561ea35ce463dd8281e3e81fbb8ff7648ed146a7a5",
    ),
    "selection_example": (
        "da6463d1054da0d215c854450f42dde8363d97c7d8e56da859bfdd4d1bc99d92",
        "eba37581c5b1e1d76e26d0abcffa7ca05d46e9aaa491af112029ffdd2be328da",
        "bc8bddbaadcc2ad45914b7f679f32b1158b41e6f9315c011851fd612c25036b9",
        "c7a82815a0f99cd6f58243c824903269e1841167abdfb1f02d8e61031fe16dd5",
    ),
}


def batch_digest(batch) -> str:
    digest = hashlib.sha256()
    for field in FIELDS:
        values = np.ascontiguousarray(getattr(batch, field))
        digest.update(f"{field}|{values.dtype.str}|{values.shape}|".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def calibration_digest(calibration) -> str:
    fields = dataclasses.asdict(calibration)
    fields.pop("key"), fields.pop("version")  # content key and code version: not numbers drawn
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=repr).encode()).hexdigest()


def digests(name: str) -> tuple[str, ...]:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    scenario = dataclasses.replace(
        scenario, simulation=dataclasses.replace(scenario.simulation, calibration_patients=5_000))
    calibration = calibrate(scenario, rng=np.random.default_rng(2026))
    batches = tuple(batch_digest(generate_cohorts(scenario, calibration, n, rng=np.random.default_rng(seed)))
                    for seed, n in DRAWS)
    return (calibration_digest(calibration),) + batches


def test_every_shipped_scenario_has_golden_digests():
    assert sorted(GOLDEN) == sorted(path.stem for path in SCENARIOS.glob("*.toml"))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_cohorts_are_bit_identical_to_the_golden_digests(name):
    got = digests(name)
    assert got[0] == GOLDEN[name][0], f"{name}: the calibration changed"
    for (seed, n), expected, actual in zip(DRAWS, GOLDEN[name][1:], got[1:]):
        assert actual == expected, f"{name}: the batch of seed {seed}, {n} replicates changed"
