"""generate_cohorts keeps its random streams and arithmetic: golden digests of every batch field.

The cohorts are part of a run's identity (a block's results depend on nothing else), so a faster
generator must give the same arrays bit for bit: the same draws from the same
``numpy.random.Generator`` calls in the same order and shapes, and the same doubles around them.
The digests below are the sha256 of every field of the batch (name, dtype, shape and bytes, in
:data:`FIELDS` order) of the shipped scenarios (``scenarios/*.toml``, calibrated on 5,000
patients with ``default_rng(2026)``; the calibration's own numbers are digested too, as it draws
through the same generator functions), for three (seed, replicates) pairs.

Provenance: computed with the generator of main at 6e3887f (before the compiled AE grade kernel
and the vectorised marginals of issue 13), numpy 2.4.6, scipy 1.17.1, x86-64 with AVX-512F,
numpy's OpenBLAS running its SkylakeX kernels. Another numpy/scipy build or CPU may round
exp/ndtr differently in the last bit, and another OpenBLAS kernel the copula's matrix products
(OpenBLAS picks its kernels by CPU: on an AMD EPYC with AVX-512F it runs its Haswell ones, and
the one-replicate liu2021 batch differs in last bits there; ``OPENBLAS_CORETYPE=SkylakeX``
brings the exact digests back), so the exact digests are checked only on that platform
(:data:`PROVENANCE`, :func:`openblas_core`).
Elsewhere (e.g. a CI machine without AVX-512) the check is :data:`ROUNDED`: the same digests
with every float field rounded to float32 first (24 bits: a last-bit difference of a double
changes its float32 only if it lies within one double ulp of a float32 rounding boundary,
about 2^-29 per value), computed on the provenance platform from the code under test where
its exact digests matched the old code's; there the calibration is not digested (its numbers
carry such last bits into every field, which the float32 rounding absorbs). Regenerate either
from 6e3887f, never from the code under test alone.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import scipy

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


#: The platform the exact digests were computed on.
PROVENANCE = {"numpy": "2.4.6", "scipy": "1.17.1", "avx512f": True, "openblas_core": "SkylakeX"}

#: The digests of the float32-rounded batches (see the module docstring), per DRAWS entry.
ROUNDED = {
    "liu2021": (
        "b51872455a2d0a599de2deb776a69712373ea3c21db22d0e278af64dac6a7c35",
        "59fa16b66601a33b4b4d5b4f2af91da921617c8f519f0846baafde66b4cddf60",
        "60e95a09d70a0784ea42518b18ea3a94b3917413fc56cfc15c3ac333c21dca78",
    ),
    "null_randomised": (
        "aa6c12898d308396f874663549cafe0168655dc2ae843788d1852c88f6d4afdf",
        "326dc8785066b0a5dfcf63945ab7c808101fc296e7a36337a3a4c56ec47bbc7e",
        "2b4bd9d20931e14962b662b0bd76ba5e28b1abb937ae7b1bf53fdd6c5df028ef",
    ),
    "randomised_effect": (
        "4eeb5098f8160d338a49f6f7bababfca543df3a679c0eaef002f8f045026869b",
        "c64b768a2da8a9509855c32eaaf2b2cf7503b3480fc48244b310fd4124268fd8",
        "82b40a428fa890dd5dbb450ca3fd7f57d84d7c03365bedbb19d8d6bfb7bae221",
    ),
    "selection_example": (
        "c0431f9752054e2a43fc3a9126c6caed999e7b6ebeb5475bfa4e08375a323522",
        "ef48823fb16f5240bfefb56c7ebeba2694edb5e261a2c558dcd911a021df4f56",
        "549e13f762812331c40816ccae6e66b12b5421300ad1bf112d47c9b0b3bcb434",
    ),
}


def openblas_core() -> str | None:
    """The kernel family numpy's bundled OpenBLAS runs on this CPU (``SkylakeX``, ``Haswell``,
    ...; OpenBLAS's ``openblas_get_corename``), or None where it cannot be asked (another
    BLAS, another wheel layout)."""
    libraries = sorted((Path(np.__file__).parent.parent / "numpy.libs").glob("libscipy_openblas*.so"))
    for library in libraries:
        try:
            blas = ctypes.CDLL(str(library))
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename"):
            function = getattr(blas, symbol, None)
            if function is not None:
                function.restype = ctypes.c_char_p
                return function().decode()
    return None


def on_provenance_platform() -> bool:
    """numpy and scipy of :data:`PROVENANCE` on a CPU with (or without) AVX-512F as there, its
    OpenBLAS running the same kernels."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return (np.__version__ == PROVENANCE["numpy"] and scipy.__version__ == PROVENANCE["scipy"]
            and ("avx512f" in flags) == PROVENANCE["avx512f"]
            and openblas_core() == PROVENANCE["openblas_core"])


def batch_digest(batch, *, rounded: bool = False) -> str:
    digest = hashlib.sha256()
    for field in FIELDS:
        values = np.ascontiguousarray(getattr(batch, field))
        if rounded and values.dtype.kind == "f":
            values = values.astype(np.float32)
        digest.update(f"{field}|{values.dtype.str}|{values.shape}|".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def calibration_digest(calibration) -> str:
    fields = dataclasses.asdict(calibration)
    fields.pop("key"), fields.pop("version")  # content key and code version: not numbers drawn
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=repr).encode()).hexdigest()


def digests(name: str, *, rounded: bool = False) -> tuple[str, ...]:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    scenario = dataclasses.replace(
        scenario, simulation=dataclasses.replace(scenario.simulation, calibration_patients=5_000))
    calibration = calibrate(scenario, rng=np.random.default_rng(2026))
    batches = tuple(batch_digest(generate_cohorts(scenario, calibration, n, rng=np.random.default_rng(seed)),
                                 rounded=rounded)
                    for seed, n in DRAWS)
    return (calibration_digest(calibration),) + batches


def test_every_shipped_scenario_has_golden_digests():
    assert sorted(GOLDEN) == sorted(ROUNDED) == sorted(path.stem for path in SCENARIOS.glob("*.toml"))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_cohorts_are_bit_identical_to_the_golden_digests(name):
    if not on_provenance_platform():
        got = digests(name, rounded=True)
        for (seed, n), expected, actual in zip(DRAWS, ROUNDED[name], got[1:]):
            assert actual == expected, (f"{name}: the batch of seed {seed}, {n} replicates changed "
                                        "(float32-rounded digest; another platform than the goldens')")
        return
    got = digests(name)
    assert got[0] == GOLDEN[name][0], f"{name}: the calibration changed"
    for (seed, n), expected, actual in zip(DRAWS, GOLDEN[name][1:], got[1:]):
        assert actual == expected, f"{name}: the batch of seed {seed}, {n} replicates changed"
    # the rounded digests, which other platforms check, describe the same batches
    assert digests(name, rounded=True)[1:] == ROUNDED[name]
