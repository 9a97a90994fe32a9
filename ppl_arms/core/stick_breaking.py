r"""Stick-breaking coupling for categorical variables (CARMS with O(nK) cost per element).

Sort the categories by ascending probability, :math:`p_{(0)}\le\dots\le p_{(K-1)}`, and write the
categorical as a sequence of binary "stop here?" decisions with conditional probabilities
:math:`\pi_k=p_{(k)}/\sum_{m\ge k}p_{(m)}` (:math:`\pi_{K-1}=1`). Each stick ``k`` gets its own
``n``-sample copula draw :math:`V_{\cdot,k}`; sample ``i`` stops at the first ``k`` with
:math:`V_{i,k}<\pi_k`. The exact pair weight for sorted positions :math:`r\ne c`, :math:`m=\min(r,c)`,
is

.. math::
    r=\prod_{k<m}\frac{(1-\pi_k)^2}{(1-\pi_k)-\delta_n(\pi_k)}\cdot\frac{\pi_m(1-\pi_m)}{\delta_n(\pi_m)},

where :math:`\delta_n(\pi)=\pi-C_n(\pi,\pi)` is the copula's discordance: both samples continue
through the sticks before ``m``, one stops at ``m``, and afterwards only one sample is left, so later
sticks contribute their marginal probabilities to both numerator and denominator. The weights need
only a cumulative product over sticks: :math:`O(nK + n^2)` per element. The estimator computes the
weights of the ``n(n-1)/2`` pairs ``i < j`` only (a pair list, see
:mod:`ppl_arms.core.categorical`).

**Unsorted sticks** (``sort=False``). The derivation above holds for any order of the categories
that is a function of the probabilities only (nothing random), so the weights stay exact. With
``sort=False`` the sticks follow the category index :math:`0, 1, \dots, K-1`, except that the most
probable category (the first one on ties) swaps places with the last: no sort is needed. The swap
keeps every pair possible for ``n = 2``: the antithetic pair can both pass stick ``k`` only if
:math:`\pi_k\le 1/2`, which holds when the largest probability comes last
(:math:`p_k\le p_{\max}\le\sum_{m>k}p_m`). XLA's CPU sort dominates the sorted variant's cost
under JAX. On the categorical VAE the two orders have the same gradient variance within the
estimates' noise (docs/benchmarks/carms_cost.md); the unsorted one is the default coupling.

References:
    Z. Dong, A. Mnih, G. Tucker. "Coupled Gradient Estimators for Discrete Latent Variables."
    NeurIPS 2021. https://arxiv.org/abs/2106.08056
"""

from __future__ import annotations

from ppl_arms._typing import Array, Shape
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import num_samples
from ppl_arms.core.categorical import dense_pair_weights, pair_list_coefficients, sample_pairs
from ppl_arms.core.copulas import Copula

__all__ = [
    "stick_breaking_coefficients",
    "stick_breaking_noise_shape",
    "stick_breaking_pair_list_weights",
    "stick_breaking_pair_weights",
    "stick_breaking_sample",
]


def stick_breaking_noise_shape(n: int, shape: Shape, num_categories: int) -> Shape:
    """Copula noise shape ``[n, *shape, K - 1]``: one n-sample draw per element and stick."""
    return (n, *shape, num_categories - 1)


def _swap_last(index: Array, top: Array, k: int) -> Array:
    """The transposition of ``top`` and ``K - 1`` applied to integer ``index`` (self-inverse)."""
    ops = get_ops(index)
    return ops.where(index == top, k - 1, ops.where(index == k - 1, top, index))


def _sticks(logits: Array, sort: bool = True) -> tuple[Array, Array]:
    """Stick order and conditional stop probabilities ``[*shape, K-1]``.

    The order is the sorting permutation (ascending p) if ``sort``, else the index of the most
    probable category (first on ties), which trades places with the last category.
    """
    ops = get_ops(logits)
    p = ops.exp(ops.log_softmax(ops.stop_gradient(logits), axis=-1))
    k = ops.shape(p)[-1]
    if sort:
        order = ops.argsort(p, axis=-1)
        p_sorted = ops.take_along_axis(p, order, axis=-1)
    else:
        top_p = ops.max(p, axis=-1, keepdims=True)
        index = ops.to_int(ops.arange(k, p))
        order = -ops.max(ops.where(p == top_p, -index, -k), axis=-1, keepdims=True)  # argmax
        p_sorted = ops.where(index == order, p[..., -1:], ops.where(index == k - 1, top_p, p))
    remaining = ops.flip(ops.cumsum(ops.flip(p_sorted, -1), axis=-1), -1)
    stop = p_sorted[..., :-1] / remaining[..., :-1]
    return order, ops.minimum(stop, 1.0)


def _first_stop(v: Array, stop: Array) -> Array:
    """The stick position of each sample: the first stick ``k`` with ``V_k < pi_k``, else ``K - 1``.

    One comparison and one maximum over the sticks, of ``countdown[k] = (K - 1) - k`` where the
    sample stops, which is ``(K - 1) - first``: the number of sticks passed, as the cumulative
    product of the "continue" indicators would count them, without the ``K - 1`` sequential steps
    of a cumulative product (one fused reduction under XLA instead of one kernel per stick).

    Args:
        v: Coupled uniforms ``[n, *shape, K - 1]``.
        stop: Conditional stop probabilities ``[*shape, K - 1]``.

    Returns:
        Integer positions ``[n, *shape]`` in ``0 .. K - 1``.
    """
    ops = get_ops(v, stop)
    sticks = ops.shape(stop)[-1]
    countdown = sticks - ops.to_int(ops.arange(sticks, stop))
    passed = v >= ops.expand_dims(stop, 0)  # the sample continues past stick k
    return sticks - ops.max(ops.where(passed, 0, countdown), axis=-1)


def stick_breaking_sample(v: Array, logits: Array, sort: bool = True) -> Array:
    """Draw ``n`` coupled categorical samples per element by coupled stick breaking.

    Args:
        v: Coupled uniforms of shape ``[n, *shape, K - 1]`` (one copula draw per element and stick).
        logits: Logits of shape ``[*shape, K]``.
        sort: Sticks in ascending order of probability (``True``) or in index order (``False``).

    Returns:
        Integer categories of shape ``[n, *shape]``.
    """
    ops = get_ops(v, logits)
    order, stop = _sticks(logits, sort)
    position = _first_stop(v, stop)
    if not sort:
        return _swap_last(position, order[..., 0], ops.shape(logits)[-1])
    return ops.take_along_axis(order, ops.expand_dims(position, -1), axis=-1)[..., 0]


def stick_breaking_pair_list_weights(
    z: Array, logits: Array, copula: Copula, sort: bool = True
) -> Array:
    """Exact importance weights ``p_a p_b / P(a, b)`` of the sampled pairs ``i < j``.

    Args:
        z: Integer categories of shape ``[n, *shape]`` from :func:`stick_breaking_sample`.
        logits: Logits of shape ``[*shape, K]``.
        copula: The copula used for each stick.
        sort: The stick order the samples were drawn with (see :func:`stick_breaking_sample`).

    Returns:
        Weights of shape ``[n(n-1)/2, *shape]`` for the pairs of
        :func:`~ppl_arms.core.categorical.sample_pairs` (one for same-category pairs).
    """
    ops = get_ops(z, logits)
    n = num_samples(z, name="z")
    order, stop = _sticks(logits, sort)
    disc = copula.discordance(stop, n)
    go = 1 - stop
    cont_den = go - disc
    cont = ops.where(cont_den > 0, go * go / ops.where(cont_den > 0, cont_den, 1.0), 1.0)
    halt = ops.where(disc > 0, stop * go / ops.where(disc > 0, disc, 1.0), 1.0)
    # prefix[m] = prod_{k<m} cont_k, for m = 0..K-2
    prefix = ops.concatenate([0 * cont[..., :1] + 1, ops.cumprod(cont, axis=-1)[..., :-1]], -1)
    weight_at = prefix * halt  # [*shape, K-1]: weight when the earlier stopper stops at stick m
    weight_at = ops.concatenate([weight_at, 0 * weight_at[..., :1] + 1], axis=-1)  # m = K-1: same
    if not sort:
        pos = _swap_last(ops.to_int(z), order[..., 0], ops.shape(logits)[-1])
    else:
        position_of = ops.argsort(order, axis=-1)  # category -> sorted position
        pos = ops.take_along_axis(position_of, ops.expand_dims(z, -1), axis=-1)[..., 0]
    first, second = sample_pairs(n)
    m = ops.minimum(ops.take(pos, first, 0), ops.take(pos, second, 0))  # [pairs, *shape]
    weights = ops.take_along_axis(weight_at, ops.expand_dims(m, -1), axis=-1)[..., 0]
    distinct = ops.take(z, first, 0) != ops.take(z, second, 0)
    return ops.where(distinct, weights, 1.0)


def stick_breaking_pair_weights(
    z: Array, logits: Array, copula: Copula, sort: bool = True
) -> Array:
    """Exact importance weights ``p_a p_b / P(a, b)`` for every sampled pair, as a matrix.

    Args:
        z: Integer categories of shape ``[n, *shape]`` from :func:`stick_breaking_sample`.
        logits: Logits of shape ``[*shape, K]``.
        copula: The copula used for each stick.
        sort: The stick order the samples were drawn with (see :func:`stick_breaking_sample`).

    Returns:
        Weights of shape ``[n, n, *shape]`` (one on the diagonal and for same-category pairs).
    """
    n = num_samples(z, name="z")
    return dense_pair_weights(stick_breaking_pair_list_weights(z, logits, copula, sort), n)


def stick_breaking_coefficients(
    f: Array, z: Array, logits: Array, copula: Copula, sort: bool = True
) -> Array:
    """Per-sample coefficients ``A_i`` with the stick-breaking pair weights (``sort`` as drawn)."""
    return pair_list_coefficients(f, stick_breaking_pair_list_weights(z, logits, copula, sort))
