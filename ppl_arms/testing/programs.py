r"""Exact objectives of small model/guide programs by enumeration, backend-neutral part.

The per-backend helpers (:mod:`ppl_arms.testing.pyro`, :mod:`ppl_arms.testing.numpyro`) run the guide
once per joint configuration ``c`` of all discrete guide coordinates (and per Gauss–Hermite node of
each scalar Normal guide site) and return differentiable tables. This module turns tables into the
exact objectives:

.. math::
    \mathrm{ELBO}=\sum_c q(c)\sum_k w_k\,\big[\log p(x,c,y_k)-\log q(c,y_k)\big],\qquad
    \mathcal L_n=\sum_e\sum_{c_1..c_n}\prod_i q(c_i)\,\Big(\log\frac1n\sum_i e^{\ell_e(c_i)}\Big),

where :math:`q(c)` uses unscaled, unmasked guide probabilities (the sampling distribution), the
bracket uses the scaled, masked terms (the objective), and :math:`\ell_e` is the log-weight of bound
element ``e``. The Gauss–Hermite rule is exact when the integrand is a polynomial of degree
``< 2 * num_nodes`` in the Normal variable (e.g. Gaussian models); autodiff of these objectives gives
exact gradients.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops

__all__ = [
    "MAX_CONFIGURATIONS",
    "DiscreteSite",
    "configurations",
    "exact_iwae_from_tables",
    "gauss_hermite",
]

MAX_CONFIGURATIONS = 4096
"""Largest number of joint discrete configurations the oracles enumerate."""


@dataclass(frozen=True)
class DiscreteSite:
    """A discrete guide site to enumerate: coordinate shape, number of values, and support."""

    name: str
    shape: tuple[int, ...]
    num_categories: int
    one_hot: bool = False
    support: tuple[float, ...] | None = None
    """Values of a finite non-Bernoulli/categorical site (e.g. a Binomial), by index."""

    @property
    def size(self) -> int:
        """Number of coordinates."""
        return int(np.prod(self.shape, dtype=np.int64))


def configurations(sites: list[DiscreteSite]) -> list[dict[str, np.ndarray]]:
    """Every joint configuration of the sites' coordinates, as integer arrays per site."""
    total = 1
    for s in sites:
        total *= s.num_categories**s.size
    if total > MAX_CONFIGURATIONS:
        raise ValueError(
            f"{total} joint configurations exceed the enumeration limit {MAX_CONFIGURATIONS}; "
            "use a smaller test model"
        )
    grids = [itertools.product(range(s.num_categories), repeat=s.size) for s in sites]
    out = []
    for combo in itertools.product(*grids):
        out.append(
            {
                s.name: np.asarray(c, dtype=np.int64).reshape(s.shape)
                for s, c in zip(sites, combo, strict=True)
            }
        )
    return out


def gauss_hermite(num_nodes: int, num_sites: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss–Hermite nodes ``[M, num_sites]`` and weights ``[M]`` (sum to one)."""
    x, w = np.polynomial.hermite_e.hermegauss(num_nodes)
    w = w / math.sqrt(2 * math.pi)
    nodes = np.array(list(itertools.product(x, repeat=num_sites))).reshape(-1, num_sites)
    weights = np.array([np.prod(c) for c in itertools.product(w, repeat=num_sites)])
    return nodes, weights


def exact_iwae_from_tables(log_q: Array, log_weight: Array, num_particles: int) -> Array:
    r"""Exact :math:`\sum_e\mathbb E_{c_{1..n}\sim q}[\log\frac1n\sum_ie^{\ell_e(c_i)}]` from tables.

    Args:
        log_q: Unscaled log-probabilities of the configurations, ``[C]`` (differentiable).
        log_weight: Log-weights per configuration and bound element, ``[C, E]`` (differentiable).
        num_particles: ``n``.

    Returns:
        The exact bound (0-d).
    """
    ops = get_ops(log_q, log_weight)
    c = ops.shape(log_q)[0]
    tuples = np.array(list(itertools.product(range(c), repeat=num_particles)))  # [C^n, n]
    idx = ops.to_int(ops.const(tuples, log_q))
    lq = ops.sum(log_q[idx], axis=1)  # [C^n]
    lw = log_weight[idx]  # [C^n, n, E]
    bound = (
        ops.sum(ops.logsumexp(lw, axis=1), axis=-1) - math.log(num_particles) * ops.shape(lw)[-1]
    )
    return ops.sum(ops.exp(lq) * bound)
