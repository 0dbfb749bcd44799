"""sim/generate/normal_draws.py: the compiled standard normals are numpy's, bit for bit, and
leave the generator where numpy's call leaves it."""

import numpy as np
import pytest

from sim.generate.normal_draws import standard_normal


def _same_state(a, b) -> bool:
    """Bit-generator states (dicts of ints and, for Philox and MT19937, arrays) equal."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.PCG64DXSM, np.random.Philox,
                                           np.random.SFC64, np.random.MT19937])
@pytest.mark.parametrize("shape", [(0,), (1,), (7, 3), (40, 100, 22), (3, 0, 5)])
def test_equal_to_numpy_and_same_state(bit_generator, shape):
    seed = np.random.SeedSequence(2021)
    ours, numpys = np.random.Generator(bit_generator(seed)), np.random.Generator(bit_generator(seed))
    ours.random(3), numpys.random(3)  # a generator that has drawn before (PCG64's buffered state)
    drawn = standard_normal(ours, shape)
    expected = numpys.standard_normal(shape)
    assert drawn.shape == expected.shape and drawn.dtype == expected.dtype and drawn.flags.c_contiguous
    np.testing.assert_array_equal(drawn, expected)
    assert _same_state(ours.bit_generator.state, numpys.bit_generator.state)
    np.testing.assert_array_equal(ours.random(5), numpys.random(5))  # and the next draws agree


def test_tails_and_moments_are_normal():
    # the ziggurat's tail and wedge branches are hit in a million draws (|z| > 3.44: ~600)
    z = standard_normal(np.random.default_rng(7), 1_000_000)
    assert (np.abs(z) > 3.442619855899).sum() > 300
    assert abs(z.mean()) < 5 * 1e-3 and abs(z.std() - 1.0) < 5 * 1e-3
