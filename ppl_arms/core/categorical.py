r"""Categorical helpers shared by CARMS and its couplings: pairwise coefficients and the gradient.

Every categorical estimator here is an importance-weighted pairwise LOORF

.. math::
    \hat g=\sum_{i=1}^n A_i\,(e_{z_i}-p),\qquad
    A_i=\frac{1}{n(n-1)}\sum_{j\ne i} r(z_i,z_j)\,(f_i-f_j),

with pair weights :math:`r(a,b)=p_ap_b/P(z_i=a,z_j=b)` for :math:`a\ne b`. Same-category pairs cancel
between :math:`A_i` and :math:`A_j`, so their weight is irrelevant; it is set to one, which makes
:math:`A_i` equal the LOORF coefficient :math:`(f_i-\bar f)/(n-1)` when every weight is one.

Weights are symmetric, so the estimators compute them only for the ``n(n-1)/2`` pairs ``i < j``
(:func:`sample_pairs`), stacked along a leading *pair axis* (a "pair list"), and
:func:`pair_list_coefficients` forms the :math:`A_i` from that list without an ``[n, n, ...]`` array.
:func:`dense_pair_weights` expands a pair list into the symmetric ``[n, n, ...]`` matrix.
"""

from __future__ import annotations

from functools import cache
from itertools import combinations

import numpy as np

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import num_samples

__all__ = [
    "categorical_directions",
    "categorical_gradient",
    "categorical_score",
    "dense_pair_weights",
    "pair_list_coefficients",
    "pairwise_coefficients",
    "sample_pairs",
]


@cache
def sample_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The sample pairs ``i < j`` in lexicographic order, as two read-only index arrays.

    Args:
        n: Number of samples.

    Returns:
        ``(first, second)``, each of length ``n(n-1)/2``: pair ``q`` is
        ``(first[q], second[q])``, in the order of ``itertools.combinations(range(n), 2)``.
    """
    pairs = np.array(list(combinations(range(n), 2)), dtype=np.int64).reshape(-1, 2)
    first, second = pairs[:, 0].copy(), pairs[:, 1].copy()
    first.setflags(write=False)
    second.setflags(write=False)
    return first, second


def _check_pair_list(n: int, pair_weights: Array) -> None:
    ops = get_ops(pair_weights)
    count = n * (n - 1) // 2
    if ops.shape(pair_weights)[:1] != (count,):
        raise ValueError(
            f"a pair list for n={n} samples must have shape [n(n-1)/2, ...] = [{count}, ...], "
            f"got {ops.shape(pair_weights)}"
        )


def dense_pair_weights(pair_weights: Array, n: int) -> Array:
    """Expand a pair list ``[n(n-1)/2, ...]`` into symmetric weights ``[n, n, ...]``, one on the diagonal.

    Args:
        pair_weights: Weights of the pairs of :func:`sample_pairs`, stacked on the leading axis.
        n: Number of samples.

    Returns:
        The ``[n, n, ...]`` matrix with ``w[i, j] = w[j, i] = pair_weights[q]`` for pair ``q = (i, j)``.
    """
    ops = get_ops(pair_weights)
    _check_pair_list(n, pair_weights)
    first, second = sample_pairs(n)
    index = {(int(i), int(j)): q for q, (i, j) in enumerate(zip(first, second, strict=True))}
    one = ops.broadcast_to(ops.const(1.0, pair_weights), ops.shape(pair_weights)[1:])
    rows = [
        ops.stack(
            [one if i == j else pair_weights[index[min(i, j), max(i, j)]] for j in range(n)], 0
        )
        for i in range(n)
    ]
    return ops.stack(rows, 0)


def pair_list_coefficients(f: Array, pair_weights: Array) -> Array:
    """Per-sample coefficients ``A_i = sum_{j != i} r_ij (f_i - f_j) / (n (n - 1))`` from a pair list.

    Equal to :func:`pairwise_coefficients` of :func:`dense_pair_weights`, without forming the
    ``[n, n, ...]`` arrays: each pair's term is computed once and added to ``A_i`` and subtracted
    from ``A_j``.

    Args:
        f: Learning signals of shape ``[n, *fshape]``.
        pair_weights: Weights ``r_ij`` of the pairs ``i < j`` of :func:`sample_pairs`, shape
            ``[n(n-1)/2, *shape]`` with ``shape`` broadcastable with ``fshape``.

    Returns:
        Coefficients of shape ``[n, *broadcast(fshape, shape)]``.
    """
    n = num_samples(f)
    ops = get_ops(f, pair_weights)
    _check_pair_list(n, pair_weights)
    f = ops.stop_gradient(f)
    first, second = sample_pairs(n)
    terms = ops.stop_gradient(pair_weights) * (ops.take(f, first, 0) - ops.take(f, second, 0))
    rows = []
    for i in range(n):
        total = None
        for q in range(len(first)):
            if first[q] == i:
                total = terms[q] if total is None else total + terms[q]
            elif second[q] == i:
                total = -terms[q] if total is None else total - terms[q]
        rows.append(total)
    return ops.stack(rows, 0) / (n * (n - 1))


def pairwise_coefficients(f: Array, weights: Array) -> Array:
    """Per-sample coefficients ``A_i = sum_{j != i} r_ij (f_i - f_j) / (n (n - 1))``.

    Args:
        f: Learning signals of shape ``[n, *fshape]``.
        weights: Pair weights ``r_ij`` of shape ``[n, n, *shape]``, symmetric, broadcastable with
            ``fshape`` on the trailing axes; the diagonal is ignored.

    Returns:
        Coefficients of shape ``[n, *broadcast(fshape, shape)]``.
    """
    n = num_samples(f)
    ops = get_ops(f, weights)
    if ops.shape(weights)[:2] != (n, n):
        raise ValueError(
            f"pair weights must have shape [n, n, ...] with n={n}, got {ops.shape(weights)}"
        )
    f = ops.stop_gradient(f)
    weights = ops.stop_gradient(weights)
    diff = ops.expand_dims(f, 1) - ops.expand_dims(f, 0)  # [i, j] = f_i - f_j (diagonal is 0)
    return ops.sum(weights * diff, axis=1) / (n * (n - 1))


def categorical_directions(coefficients: Array, z: Array, logits: Array) -> Array:
    r"""Per-sample gradient contributions :math:`A_i (e_{z_i} - p_i)` (gradient-free).

    Args:
        coefficients: ``A`` of shape ``[n, *shape]``.
        z: Integer categories of shape ``[n, *shape]``.
        logits: Logits of shape ``[*shape, K]`` or ``[n, *shape, K]``.

    Returns:
        Contributions of shape ``[n, *shape, K]``.
    """
    ops = get_ops(coefficients, logits)
    k = ops.shape(logits)[-1]
    p = ops.exp(ops.log_softmax(ops.stop_gradient(logits), axis=-1))
    onehot = ops.one_hot(z, k, logits)
    return ops.expand_dims(ops.stop_gradient(coefficients), -1) * (onehot - p)


def categorical_score(z: Array, logits: Array) -> Array:
    r"""A per-coordinate surrogate whose gradient is the score :math:`\nabla\log q(z)`, without ``K``-sized outputs.

    .. math::
        s = \phi_{z} - \sum_k \mathrm{sg}(p_k)\,\phi_k,\qquad
        \frac{\partial s}{\partial\phi_k} = \mathbb 1[k=z]-p_k .

    ``sum(stop_gradient(c) * s)`` has the gradient of
    ``sum(categorical_directions(c, z, logits) * logits)`` but no ``[n, *shape, K]`` array: the
    gather and the ``K``-sum are ``[n, *shape]`` and ``[*shape]``. A category of probability zero
    (logit ``-inf``, never sampled) adds :math:`0\cdot\phi_k=0` to the sum, the limit of
    :math:`p_k\phi_k` as :math:`p_k\to0`, so ``s`` stays finite (its gradient is unchanged).

    Args:
        z: Integer categories of shape ``[n, *shape]``.
        logits: Logits ``[*shape, K]`` (shared by the samples) or ``[n, *shape, K]``.

    Returns:
        Shape ``[n, *shape]``.
    """
    ops = get_ops(z, logits)
    p = ops.stop_gradient(ops.exp(ops.log_softmax(ops.stop_gradient(logits), axis=-1)))
    at_z = ops.take_along_axis(logits, ops.expand_dims(ops.to_int(z), -1), axis=-1)[..., 0]
    return at_z - ops.sum(ops.where(p == 0, 0.0, p * logits), axis=-1)


def categorical_gradient(coefficients: Array, z: Array, logits: Array) -> Array:
    r"""Assemble :math:`\hat g=\sum_i A_i (e_{z_i} - p)` over the leading sample axis.

    Returns:
        The gradient estimate with respect to the logits, shape ``[*shape, K]``.
    """
    ops = get_ops(coefficients, logits)
    return ops.sum(categorical_directions(coefficients, z, logits), axis=0)
