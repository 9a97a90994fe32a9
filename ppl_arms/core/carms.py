r"""CARMS: antithetic multi-sample estimator for categorical variables (inverse-CDF coupling).

Sampler (CARMS-I, [CARMS]_ Algorithm 1), per element: pick one ordering :math:`\pi` of the ``K``
categories uniformly from a fixed family :math:`\Pi_K` that holds exactly one ordering per unordered
pair :math:`\{a<b\}` with ``a`` first and ``b`` last (:func:`carms_orderings`); lay the probabilities
out on ``[0, 1]`` in that order as intervals :math:`(L_c,R_c]`; draw ``n`` coupled uniforms
:math:`V_i` from a copula (no orientation switch); and set :math:`z_i=c` for :math:`V_i\in(L_c,R_c]`.

The pairwise pmf is the copula rectangle averaged over the ordering family (the ordering is part of
the randomness):

.. math::
    P(a,b)=\frac1{|\Pi_K|}\sum_{\pi\in\Pi_K}\Big[C_n(R_a,R_b)+C_n(L_a,L_b)-C_n(L_a,R_b)-C_n(R_a,L_b)
    \Big]_\pi ,

and the importance weights are exact, :math:`r(a,b)=p_ap_b/P(a,b)`: no smoothing and no clipping
(the reference code's ``clip((p_a p_b + 1e-3)/(P + 1e-3), 0.01, 10)`` biases rare categories). Every
pair has positive probability because it sits at the two ends of some ordering.

Only the weights of the ``n(n-1)/2`` sampled pairs are computed, never a dense ``K x K`` matrix: the
cost per element is :math:`O(n^2 |\Pi_K|) = O(n^2K^2)` copula evaluations. For large ``K``, the
stick-breaking coupling (:mod:`ppl_arms.core.stick_breaking`) costs :math:`O(nK + n^2)`.

With ``K == 2`` this is ARMS on the indicator :math:`\mathbb 1[z=0]` without ARMS's orientation
switch; with independent uniforms every weight is one and it is LOORF.

References:
    .. [CARMS] A. Dimitriev and M. Zhou. "CARMS: Categorical-Antithetic-REINFORCE Multi-Sample
       Gradient Estimator." NeurIPS 2021. https://arxiv.org/abs/2110.14002
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import broadcast_shapes, num_samples
from ppl_arms.core.categorical import pairwise_coefficients
from ppl_arms.core.copulas import Copula

__all__ = [
    "carms_coefficients",
    "carms_orderings",
    "carms_pair_probability",
    "carms_pair_weights",
    "carms_sample",
    "interval_edges",
    "ordering_index",
]


@cache
def carms_orderings(num_categories: int) -> np.ndarray:
    r"""The ordering family :math:`\Pi_K`: one ordering per unordered pair, first < last.

    Built as in the reference code: rotate ``0..K-1`` by ``s``, then rotate positions ``1..K-1`` by
    ``t``, for all ``s < K``, ``t < K-1``, keeping orderings whose first category is smaller than the
    last. The result has ``K(K-1)/2`` rows and every pair ``{a < b}`` is (first, last) exactly once.

    Args:
        num_categories: ``K >= 2``.

    Returns:
        An ``int64`` array of shape ``[K(K-1)/2, K]``.
    """
    k = num_categories
    if k < 2:
        raise ValueError(f"a categorical site needs K >= 2 categories, got K={k}")
    base = np.arange(k)
    rows = []
    for s in range(k):
        rotated = np.roll(base, -s)
        for t in range(k - 1):
            order = np.concatenate([rotated[:1], np.roll(rotated[1:], -t)])
            if order[0] < order[-1]:
                rows.append(order)
    table = np.stack(rows)
    ends = {(int(r[0]), int(r[-1])) for r in table}
    assert len(table) == len(ends) == k * (k - 1) // 2, "ordering family is not one per pair"
    table.setflags(write=False)
    return table


@cache
def _positions(num_categories: int) -> np.ndarray:
    table = carms_orderings(num_categories)
    pos = np.argsort(table, axis=1)
    pos.setflags(write=False)
    return pos


def ordering_index(noise: Array, num_categories: int) -> Array:
    """Map uniform noise on ``[0, 1)`` to a uniformly chosen row of :func:`carms_orderings`."""
    ops = get_ops(noise)
    num = len(carms_orderings(num_categories))
    return ops.to_int(ops.minimum(ops.floor(noise * num), num - 1))


def interval_edges(p: Array) -> tuple[Array, Array]:
    """Left and right interval edges ``(L, R]`` of probabilities laid out along the last axis.

    Prefix sums are used up to one half and ``1 - suffix sums`` above it, so the first edge is
    exactly 0 and the last exactly 1 in floating point, and zero-probability categories at either end
    get empty intervals (they can never be sampled).
    """
    ops = get_ops(p)
    prefix = ops.cumsum(p, axis=-1)
    total = prefix[..., -1:]
    suffix = ops.flip(ops.cumsum(ops.flip(p, -1), axis=-1), -1)
    suffix_after = ops.concatenate([suffix[..., 1:], 0 * suffix[..., :1]], axis=-1)
    right = ops.where(prefix <= 0.5 * total, prefix, total - suffix_after) / total
    left = ops.concatenate([0 * right[..., :1], right[..., :-1]], axis=-1)
    return left, right


def carms_sample(v: Array, order: Array, logits: Array) -> Array:
    """Draw ``n`` coupled categorical samples per element by the inverse CDF in a chosen ordering.

    Args:
        v: Coupled uniforms of shape ``[n, *shape]`` (from a copula).
        order: Integer ordering index per element, shape ``shape`` (from :func:`ordering_index`).
        logits: Logits of shape ``[*shape, K]``.

    Returns:
        Integer categories of shape ``[n, *shape]``.
    """
    ops = get_ops(v, logits)
    k = ops.shape(logits)[-1]
    p = ops.exp(ops.log_softmax(ops.stop_gradient(logits), axis=-1))
    perm = ops.const(carms_orderings(k), logits)
    perm = ops.to_int(perm)[order]  # [*shape, K]
    p_perm = ops.take_along_axis(p, perm, axis=-1)
    _, right = interval_edges(p_perm)
    below = (ops.expand_dims(right, 0) < ops.expand_dims(v, -1)) | (ops.expand_dims(right, 0) <= 0)
    position = ops.minimum(ops.sum(ops.astype(below, v), axis=-1), k - 1)
    return ops.take_along_axis(perm, ops.expand_dims(ops.to_int(position), -1), axis=-1)[..., 0]


def _edges_by_category(p: Array) -> tuple[Array, Array]:
    """Interval edges of every category in every ordering: two arrays ``[*shape, |Pi|, K]``."""
    ops = get_ops(p)
    k = ops.shape(p)[-1]
    table = ops.to_int(ops.const(carms_orderings(k), p))
    pos = ops.to_int(ops.const(_positions(k), p))
    p_perm = p[..., table]  # [*shape, |Pi|, K] in ordering positions
    left, right = interval_edges(p_perm)
    shape = ops.shape(left)
    pos = ops.broadcast_to(pos, shape)
    return ops.take_along_axis(left, pos, axis=-1), ops.take_along_axis(right, pos, axis=-1)


def _gather_category(edges: Array, idx: Array) -> Array:
    """``edges[..., :, idx]`` for integer ``idx`` broadcastable with ``edges.shape[:-2]``."""
    ops = get_ops(edges, idx)
    num = ops.shape(edges)[-2]
    prefix = broadcast_shapes(ops.shape(idx), ops.shape(edges)[:-2], ("categories", "logits"))
    full = ops.broadcast_to(edges, (*prefix, *ops.shape(edges)[-2:]))
    index = ops.expand_dims(ops.expand_dims(idx, -1), -1)
    index = ops.broadcast_to(index, (*prefix, num, 1))
    return ops.take_along_axis(full, index, axis=-1)[..., 0]


def carms_pair_probability(a: Array, b: Array, logits: Array, copula: Copula, n: int) -> Array:
    """Exact pairwise pmf ``P(z_i = a, z_j = b)``, ``i != j``, of the CARMS-I sampler.

    The copula rectangle of the two categories' intervals, averaged over the ordering family.

    Args:
        a: Integer categories of sample ``i``, broadcastable with the element shape.
        b: Integer categories of sample ``j``, broadcastable with ``a`` and the element shape.
        logits: Logits of shape ``[*shape, K]``.
        copula: The copula of the sampler.
        n: Number of coupled samples.

    Returns:
        Probabilities with the broadcast shape of ``a``, ``b`` and ``shape``.
    """
    ops = get_ops(logits)
    p = ops.exp(ops.log_softmax(ops.stop_gradient(logits), axis=-1))
    left, right = _edges_by_category(p)  # [*shape, |Pi|, K]
    la, ra = _gather_category(left, a), _gather_category(right, a)
    lb, rb = _gather_category(left, b), _gather_category(right, b)
    rect = (
        copula.joint_cdf(ra, rb, n)
        + copula.joint_cdf(la, lb, n)
        - copula.joint_cdf(la, rb, n)
        - copula.joint_cdf(ra, lb, n)
    )
    return ops.mean(rect, axis=-1)


def carms_pair_weights(z: Array, logits: Array, copula: Copula) -> Array:
    """Exact importance weights ``r_ij = p_a p_b / P(a, b)`` for every sampled pair.

    Args:
        z: Integer categories of shape ``[n, *shape]`` drawn by :func:`carms_sample` with ``copula``.
        logits: Logits of shape ``[*shape, K]``.
        copula: The copula used for the uniforms.

    Returns:
        Weights of shape ``[n, n, *shape]``: symmetric, one on the diagonal and for same-category
        pairs (where the weight cancels), and exact elsewhere.
    """
    ops = get_ops(z, logits)
    n = num_samples(z, name="z")
    zi, zj = ops.expand_dims(z, 1), ops.expand_dims(z, 0)
    pair_prob = carms_pair_probability(zi, zj, logits, copula, n)  # [n, n, *shape]
    p = ops.exp(ops.log_softmax(ops.stop_gradient(logits), axis=-1))
    pz = _gather_category(ops.expand_dims(p, -2), z)[..., 0]  # [n, *shape]
    independent = ops.expand_dims(pz, 1) * ops.expand_dims(pz, 0)
    usable = (zi != zj) & (pair_prob > 0)
    return ops.where(usable, independent / ops.where(usable, pair_prob, 1.0), 1.0)


def carms_coefficients(f: Array, z: Array, logits: Array, copula: Copula) -> Array:
    """Per-sample CARMS coefficients ``A_i`` (see :mod:`ppl_arms.core.categorical`).

    Args:
        f: Learning signals of shape ``[n, *fshape]`` broadcastable with the element shape.
        z: Integer categories ``[n, *shape]`` from :func:`carms_sample`.
        logits: Logits ``[*shape, K]``.
        copula: The copula used by the sampler.

    Returns:
        Coefficients of shape ``[n, *shape]``.
    """
    return pairwise_coefficients(f, carms_pair_weights(z, logits, copula))
