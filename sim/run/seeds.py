"""The random generators of a run's blocks: block b of grid point c draws stream s from
``SeedSequence(root_seed, spawn_key=(c, b, s))`` (stream 0 the cohorts, 1 + m analysis preset
m; :mod:`sim.run.runner` explains the scheme and its sources)."""

from __future__ import annotations

import numpy as np


def block_rng(root_seed: int, key, stream: int) -> np.random.Generator:
    """The generator of ``stream`` in block ``key`` (a :class:`sim.run.store.BlockKey`)."""
    sequence = np.random.SeedSequence(root_seed, spawn_key=(key.condition, key.block, stream))
    return np.random.default_rng(sequence)
