r"""Exact enumeration for a fully factorised categorical distribution and a table ``f``.

Notation as in :mod:`ppl_arms.core`: :math:`q(z)=\prod_d p_d(z^d)` over ``D`` coordinates with ``K``
categories each (``K = 2`` for Bernoulli, category 1 meaning "one"), and a learning signal given as a
table ``f`` of shape ``[K] * D``. The exact gradient with respect to the logits of coordinate ``d`` is

.. math::
    g^\star_{d}=\sum_z q(z)\,f(z)\,(e_{z^d}-p_d)=p_d\odot\big(F_d-\textstyle\sum_a p_{d,a}F_d(a)\big),
    \qquad F_d(a)=\mathbb E_{z^{-d}}[f(z^d{=}a,z^{-d})].

Every pairwise estimator in the core has expectation
:math:`\sum_{a\ne b}P_d(a,b)\,w_d(a,b)\,(F_d(a)-F_d(b))(e_a-p_d)` (:func:`pairwise_expectation`).
Plain NumPy, float64.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = [
    "conditional_means",
    "enumerate_configurations",
    "exact_gradient",
    "pairwise_expectation",
]


def enumerate_configurations(num_coordinates: int, num_categories: int) -> np.ndarray:
    """All ``K**D`` configurations as an integer array ``[K**D, D]`` in C order of the ``f`` table."""
    grid = itertools.product(range(num_categories), repeat=num_coordinates)
    return np.array(list(grid), dtype=np.int64).reshape(-1, num_coordinates)


def _joint(probs: np.ndarray) -> np.ndarray:
    d, k = probs.shape
    q = np.ones([k] * d)
    for i in range(d):
        shape = [1] * d
        shape[i] = k
        q = q * probs[i].reshape(shape)
    return q


def conditional_means(f: np.ndarray, probs: np.ndarray) -> np.ndarray:
    r""":math:`F_d(a)=\mathbb E[f\mid z^d=a]` for every coordinate, shape ``[D, K]``."""
    d, _ = probs.shape
    q = _joint(probs)
    out = []
    for i in range(d):
        axes = tuple(j for j in range(d) if j != i)
        out.append((q * f).sum(axis=axes) / probs[i])
    return np.stack(out)


def exact_gradient(f: np.ndarray, probs: np.ndarray) -> np.ndarray:
    r"""Exact :math:`\nabla_{\text{logits}}\,\mathbb E_q[f]`, shape ``[D, K]``.

    Args:
        f: Table of shape ``[K] * D``.
        probs: Probabilities ``[D, K]`` (rows sum to one; no zero entries).

    Returns:
        The gradient with respect to each coordinate's logits. For Bernoulli (``K = 2``) the
        gradient w.r.t. the single logit of ``P(z = 1)`` is column 1.
    """
    big_f = conditional_means(f, probs)
    return probs * (big_f - (probs * big_f).sum(axis=1, keepdims=True))


def pairwise_expectation(
    f: np.ndarray, probs: np.ndarray, pair_probs: np.ndarray, pair_weights: np.ndarray
) -> np.ndarray:
    r"""Expectation of a pairwise estimator from its pair pmf and weights, shape ``[D, K]``.

    Args:
        f: Table of shape ``[K] * D``.
        probs: Probabilities ``[D, K]``.
        pair_probs: ``P_d(a, b)`` of shape ``[D, K, K]`` (``i != j``).
        pair_weights: ``w_d(a, b)`` of shape ``[D, K, K]``.

    Returns:
        :math:`\sum_{a\ne b}P_d(a,b)w_d(a,b)(F_d(a)-F_d(b))(e_a-p_d)`.
    """
    big_f = conditional_means(f, probs)
    d, k = probs.shape
    out = np.zeros((d, k))
    eye = np.eye(k)
    for i in range(d):
        for a in range(k):
            for b in range(k):
                if a != b:
                    term = pair_probs[i, a, b] * pair_weights[i, a, b] * (big_f[i, a] - big_f[i, b])
                    out[i] += term * (eye[a] - probs[i])
    return out
