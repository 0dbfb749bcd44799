"""A toy stochastic simulator whose sensitivity answer is known: the power of a test depends
on the first factor only, estimated from R Bernoulli replicates at each design point."""

import numpy as np
from scipy.special import ndtr


def true_power(x):
    """Power at design points ``x`` (shape (G, D), factors on [0, 1]): only column 0 matters."""
    return ndtr(-1.96 + 3.0 * np.asarray(x, dtype=float)[:, 0])


def simulated_power(x, replicates, *, rng, common_random_numbers=False):
    """Estimated power and its binomial MCSE at each point (independent or common draws)."""
    p = true_power(x)
    if common_random_numbers:
        uniforms = rng.random(replicates)
        hits = (uniforms[None, :] < p[:, None]).sum(axis=1)
    else:
        hits = rng.binomial(replicates, p)
    estimate = hits / replicates
    return estimate, np.sqrt(estimate * (1 - estimate) / replicates)
