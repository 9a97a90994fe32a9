"""Shared helpers for the core tests: f tables, logits grids, noise."""

import numpy as np

from ppl_arms.core import NoiseKind

# Budgets for Monte Carlo unbiasedness tests (replicates of the whole estimator). The tolerance is
# z_max standard errors of the replicate mean, so the budget only sets the power of the test.
MC_REPLICATES = 200_000
MC_CHUNK = 50_000
Z_MAX = 4.5


def table_lookup(f_table, z):
    """f(z) for integer configurations z [..., D] and a table of shape [K] * D."""
    k = f_table.shape[0]
    d = f_table.ndim
    index = np.zeros(z.shape[:-1], dtype=np.int64)
    for i in range(d):
        index = index * k + z[..., i].astype(np.int64)
    return f_table.ravel()[index]


def random_table(rng, d, k):
    return rng.normal(size=[k] * d) * 3.0


def draw(rng, kind, shape):
    if kind is NoiseKind.NORMAL:
        return rng.standard_normal(shape)
    return rng.random(shape)


LOGITS_3 = np.array([-4.5, 0.3, 2.1])  # includes |logit| >= 4 and both sides of 1/2
