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

Only the weights of the ``n(n-1)/2`` sampled pairs ``i < j`` are computed, never a dense ``K x K``
matrix: per element and ordering, the interval edges (``O(K)``) and four copula corners per pair.
The cost per element is :math:`O(|\Pi_K|(K + n^2)) = O(K^3 + n^2K^2)` operations, and memory is
bounded: the sum over orderings is a loop (:meth:`~ppl_arms.core._ops.Ops.fori_sum`, a
``fori_loop`` in JAX) and elements are processed in chunks of about ``CHUNK_ENTRIES / K``
elements (:meth:`~ppl_arms.core._ops.Ops.map_chunks`), so no array has an ordering axis and the
temporaries do not grow with the number of elements. For large ``K``, the stick-breaking coupling
(:mod:`ppl_arms.core.stick_breaking`) costs :math:`O(nK + n^2)`.

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
from ppl_arms.core.categorical import dense_pair_weights, pair_list_coefficients, sample_pairs
from ppl_arms.core.copulas import Copula

__all__ = [
    "CHUNK_ENTRIES",
    "carms_coefficients",
    "carms_orderings",
    "carms_pair_list_weights",
    "carms_pair_probability",
    "carms_pair_weights",
    "carms_sample",
    "interval_edges",
    "ordering_index",
]

CHUNK_ENTRIES = 1 << 20
"""Pair weights are computed for chunks of ``max(1, CHUNK_ENTRIES // K)`` elements at a time, so the
per-ordering temporaries (a few arrays of ``chunk x K`` entries) stay near this many entries
(8 MiB per array in float64) whatever the number of elements."""


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


def _sample_chunk(v: Array, order: Array, logits: Array) -> Array:
    """:func:`carms_sample` on flat elements: ``v`` ``[c, m]``, ``order`` ``[c]``, ``logits`` ``[c, K]``."""
    ops = get_ops(v, logits)
    k = ops.shape(logits)[-1]
    v = ops.moveaxis(v, 1, 0)  # [m, c]
    p = ops.exp(ops.log_softmax(ops.stop_gradient(logits), axis=-1))
    perm = ops.to_int(ops.const(carms_orderings(k), logits))[order]  # [c, K]
    _, right = interval_edges(ops.take_along_axis(p, perm, axis=-1))
    below = (ops.expand_dims(right, 0) < ops.expand_dims(v, -1)) | (ops.expand_dims(right, 0) <= 0)
    position = ops.minimum(ops.sum(below, axis=-1), k - 1)  # counted on booleans: no float copy
    z = ops.take_along_axis(perm, ops.expand_dims(ops.to_int(position), -1), axis=-1)[..., 0]
    return ops.moveaxis(z, 0, 1)  # [c, m]


def carms_sample(v: Array, order: Array, logits: Array) -> Array:
    """Draw ``n`` coupled categorical samples per element by the inverse CDF in a chosen ordering.

    Elements are processed in chunks (``CHUNK_ENTRIES``), so the ``K``-sized temporaries stay
    bounded whatever the number of elements.

    Args:
        v: Coupled uniforms of shape ``[n, *shape]`` (from a copula).
        order: Integer ordering index per element, shape ``shape`` (from :func:`ordering_index`).
        logits: Logits of shape ``[*shape, K]``.

    Returns:
        Integer categories of shape ``[n, *shape]``.
    """
    ops = get_ops(v, logits)
    k = ops.shape(logits)[-1]
    m = ops.shape(v)[0]
    shape = broadcast_shapes(ops.shape(v)[1:], ops.shape(order), ("v[0]", "order"))
    shape = broadcast_shapes(shape, ops.shape(logits)[:-1], ("elements", "logits"))
    size = int(np.prod(shape, dtype=np.int64))
    flat_v = ops.moveaxis(ops.reshape(ops.broadcast_to(v, (m, *shape)), (m, size)), 0, 1)
    flat_order = ops.reshape(ops.broadcast_to(order, shape), (size,))
    flat_logits = ops.reshape(ops.broadcast_to(logits, (*shape, k)), (size, k))
    out = ops.map_chunks(
        _sample_chunk, (flat_v, flat_order, flat_logits), max(1, CHUNK_ENTRIES // k)
    )
    return ops.reshape(ops.moveaxis(out, 0, 1), (m, *shape))


def _probabilities(logits: Array) -> Array:
    ops = get_ops(logits)
    return ops.exp(ops.log_softmax(ops.stop_gradient(logits), axis=-1))


class _Orderings:
    """The ordering table and its inverse (category -> position) as backend integer arrays."""

    def __init__(self, k: int, like: Array) -> None:
        ops = get_ops(like)
        self.count = len(carms_orderings(k))
        self.table = ops.to_int(ops.const(carms_orderings(k), like))  # [|Pi|, K]
        self.position = ops.to_int(ops.const(_positions(k), like))  # [|Pi|, K]

    def edges(
        self, p: Array, t: object, categories: tuple[Array, ...]
    ) -> list[tuple[Array, Array]]:
        """Edges ``(L, R)`` of each integer array in ``categories`` in ordering ``t``.

        Args:
            p: Probabilities ``[*shape, K]``.
            t: The ordering index (a Python int in torch, a traced scalar in JAX).
            categories: Integer arrays broadcastable with ``shape``.

        Returns:
            One ``(L, R)`` pair per entry of ``categories``, each with the broadcast shape.
        """
        ops = get_ops(p)
        left, right = interval_edges(ops.take_along_axis(p, self.table[t], axis=-1))
        where = self.position[t]
        out = []
        for c in categories:
            m = ops.expand_dims(where[ops.to_int(c)], -1)
            out.append(
                (
                    ops.take_along_axis(left, m, axis=-1)[..., 0],
                    ops.take_along_axis(right, m, axis=-1)[..., 0],
                )
            )
        return out


def _rectangle(copula: Copula, n: int, a: tuple[Array, Array], b: tuple[Array, Array]) -> Array:
    """``C(R_a,R_b) + C(L_a,L_b) - C(L_a,R_b) - C(R_a,L_b)`` from transformed edges."""
    (la, ra), (lb, rb) = a, b
    c = copula.pair_cdf
    return c(ra, rb, n) + c(la, lb, n) - c(la, rb, n) - c(ra, lb, n)


def carms_pair_probability(a: Array, b: Array, logits: Array, copula: Copula, n: int) -> Array:
    """Exact pairwise pmf ``P(z_i = a, z_j = b)``, ``i != j``, of the CARMS-I sampler.

    The copula rectangle of the two categories' intervals, averaged over the ordering family (a
    loop over orderings; no ordering axis is materialised).

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
    p = _probabilities(logits)
    orderings = _Orderings(ops.shape(p)[-1], p)
    shape = broadcast_shapes(ops.shape(a), ops.shape(b), ("a", "b"))
    shape = broadcast_shapes(shape, ops.shape(p)[:-1], ("categories", "logits"))

    def rectangle(t: object) -> Array:
        edges = orderings.edges(p, t, (a, b))
        ea, eb = ((copula.pair_transform(lo, n), copula.pair_transform(hi, n)) for lo, hi in edges)
        return ops.broadcast_to(_rectangle(copula, n, ea, eb), shape)

    return ops.fori_sum(rectangle, orderings.count, ops.zeros(shape, p)) / orderings.count


def _pair_list_chunk(z: Array, logits: Array, copula: Copula) -> Array:
    """Pair weights of a chunk: ``z`` ``[c, n]`` and ``logits`` ``[c, K]`` give ``[c, n(n-1)/2]``."""
    ops = get_ops(z, logits)
    p = _probabilities(logits)
    z = ops.moveaxis(z, 1, 0)  # [n, c]
    n = ops.shape(z)[0]
    first, second = sample_pairs(n)
    orderings = _Orderings(ops.shape(p)[-1], p)

    def rectangles(t: object) -> Array:
        ((lo, hi),) = orderings.edges(p, t, (z,))
        lo, hi = copula.pair_transform(lo, n), copula.pair_transform(hi, n)
        ei = (ops.take(lo, first, 0), ops.take(hi, first, 0))
        ej = (ops.take(lo, second, 0), ops.take(hi, second, 0))
        return _rectangle(copula, n, ei, ej)  # [n(n-1)/2, c]

    shape = (len(first), ops.shape(z)[1])
    pair_prob = ops.fori_sum(rectangles, orderings.count, ops.zeros(shape, p)) / orderings.count
    pz = ops.take_along_axis(p, ops.expand_dims(ops.to_int(z), -1), axis=-1)[..., 0]  # [n, c]
    independent = ops.take(pz, first, 0) * ops.take(pz, second, 0)
    usable = (ops.take(z, first, 0) != ops.take(z, second, 0)) & (pair_prob > 0)
    weights = ops.where(usable, independent / ops.where(usable, pair_prob, 1.0), 1.0)
    return ops.moveaxis(weights, 0, 1)


def carms_pair_list_weights(z: Array, logits: Array, copula: Copula) -> Array:
    """Exact importance weights ``r_ij = p_a p_b / P(a, b)`` of the sampled pairs ``i < j``.

    Elements are processed in chunks (``CHUNK_ENTRIES``), each with a loop over the orderings,
    so memory is the output plus bounded temporaries.

    Args:
        z: Integer categories of shape ``[n, *shape]`` drawn by :func:`carms_sample` with ``copula``.
        logits: Logits of shape ``[*shape, K]`` (broadcastable with ``z``'s element shape).
        copula: The copula used for the uniforms.

    Returns:
        Weights of shape ``[n(n-1)/2, *shape]`` for the pairs of
        :func:`~ppl_arms.core.categorical.sample_pairs`: one for same-category pairs (where the
        weight cancels), exact elsewhere.
    """
    ops = get_ops(z, logits)
    n = num_samples(z, name="z")
    logits = ops.stop_gradient(logits)
    k = ops.shape(logits)[-1]
    shape = broadcast_shapes(ops.shape(z)[1:], ops.shape(logits)[:-1], ("z[0]", "logits"))
    size = int(np.prod(shape, dtype=np.int64))
    flat_z = ops.reshape(ops.broadcast_to(z, (n, *shape)), (n, size))
    flat_logits = ops.reshape(ops.broadcast_to(logits, (*shape, k)), (size, k))
    chunk = max(1, CHUNK_ENTRIES // k)

    def weights(zc: Array, lc: Array) -> Array:
        return _pair_list_chunk(zc, lc, copula)

    # [size, pairs]; the probabilities are computed per chunk too
    out = ops.map_chunks(weights, (ops.moveaxis(flat_z, 0, 1), flat_logits), chunk)
    return ops.reshape(ops.moveaxis(out, 0, 1), (n * (n - 1) // 2, *shape))


def carms_pair_weights(z: Array, logits: Array, copula: Copula) -> Array:
    """Exact importance weights ``r_ij = p_a p_b / P(a, b)`` for every sampled pair, as a matrix.

    The symmetric expansion of :func:`carms_pair_list_weights` (estimators use the pair list).

    Args:
        z: Integer categories of shape ``[n, *shape]`` drawn by :func:`carms_sample` with ``copula``.
        logits: Logits of shape ``[*shape, K]``.
        copula: The copula used for the uniforms.

    Returns:
        Weights of shape ``[n, n, *shape]``: symmetric, one on the diagonal and for same-category
        pairs (where the weight cancels), and exact elsewhere.
    """
    n = num_samples(z, name="z")
    return dense_pair_weights(carms_pair_list_weights(z, logits, copula), n)


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
    return pair_list_coefficients(f, carms_pair_list_weights(z, logits, copula))
