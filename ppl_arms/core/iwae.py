r"""Multi-sample (IWAE) bound terms: the bound, VIMCO signals, and local ARMS/CARMS/LOORF signals.

With log-weights :math:`\ell_i=\log p_\theta(x,z_i)-\log q_\phi(z_i\mid x)` of ``n`` i.i.d. samples,
the bound is :math:`\hat{\mathcal L}=\log\frac1n\sum_i e^{\ell_i}` ([IWAE]_). Its gradient splits into a score
part (one discrete-gradient problem per sample ``k``) and a *direct* part
:math:`\sum_i\tilde w_i\nabla_\phi\ell_i` that autodiff of :math:`\hat{\mathcal L}` with ``z`` held fixed
produces. The direct part is not zero-mean and must be kept.

* VIMCO ([VIMCO]_): score coefficient of sample ``j`` is :math:`\hat{\mathcal L}-\hat{\mathcal L}^{-j}`,
  where :math:`\hat{\mathcal L}^{-j}` replaces :math:`\ell_j` by the mean of the others.
* Local ARMS/CARMS/LOORF (two sample sets, [ARMS]_ §5 with the sum over ``k``): besides the ``n``
  i.i.d. samples, draw ``n`` coupled samples :math:`\tilde z_j` with log-weights :math:`\tilde\ell_j`.
  For each ``k`` the one-sample function :math:`h_k(z)=\log\frac1n(\sum_{i\ne k}w_i+w(z))` is a
  discrete-gradient problem, estimated by ARMS/CARMS over the coupled set with signals
  :math:`f^{(k)}_j=h_k(\tilde z_j)`. The unbiased score part is the **sum** over ``k`` (the reference
  code's mean is ``1/n`` too small and, next to the direct term, biased). Because the ARMS/CARMS
  coefficients are linear in the signals, the sum over ``k`` equals the coefficients of the summed
  signal :math:`F_j=\sum_kf^{(k)}_j`, which :func:`local_signals` returns.

* The VIMCO-ARMS hybrid (:func:`hybrid_terms`): ``a`` i.i.d. samples and ``m`` samples coupled per
  coordinate (``P = a + m`` evaluations). Each coupled sample :math:`\tilde z_j` is independent of
  the i.i.d. ones and has marginal :math:`q`, so every subset :math:`\{z_1..z_a,\tilde z_j\}` is
  ``a + 1`` i.i.d. draws of :math:`q` and :math:`L_j=\log\frac1{a+1}(\sum_iw_i+\tilde w_j)` is an
  unbiased estimate of the ``(a+1)``-sample bound. The objective estimate is
  :math:`\hat{\mathcal L}=\frac1m\sum_jL_j`; its score part is VIMCO's, averaged over the ``m``
  subsets, at the i.i.d. samples (any baseline of the other samples of a subset is independent of
  :math:`z_i`), and ARMS/CARMS over the coupled set for the one-sample function
  :math:`h(z)=\log\frac1{a+1}(\sum_iw_i+w(z))` (signals :math:`L_j=h(\tilde z_j)`), because
  :math:`\mathbb E_{\tilde z}[\frac1m\sum_jh(\tilde z_j)]=\mathbb E_q[h]` for any coupling with
  exact marginals. The coupled samples thus enter the bound (``2n - 1`` of ``2n`` evaluations at
  ``m = 2``) instead of only the learning signals.

All outputs here are gradient-free learning signals except :func:`iwae_bound` and the bounds of
:func:`hybrid_terms`.

References:
    .. [VIMCO] A. Mnih and D. Rezende. "Variational inference for Monte Carlo objectives." ICML 2016.
       https://arxiv.org/abs/1602.06725
    .. [IWAE] Y. Burda, R. Grosse, R. Salakhutdinov. "Importance Weighted Autoencoders." ICLR 2016.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import broadcast_shapes, num_samples

__all__ = [
    "HybridTerms",
    "hybrid_terms",
    "iwae_bound",
    "leave_one_out_logsumexp",
    "local_signals",
    "vimco_signals",
]


def iwae_bound(log_weights: Array) -> Array:
    r""":math:`\log\frac1n\sum_i e^{\ell_i}` over the leading axis (differentiable).

    Args:
        log_weights: :math:`\ell` of shape ``[n, *shape]``.

    Returns:
        The bound per element, shape ``shape``.
    """
    n = num_samples(log_weights, name="log_weights", minimum=1)
    ops = get_ops(log_weights)
    return ops.logsumexp(log_weights, axis=0) - math.log(n)


def _off_diagonal(n: int, like: Array) -> Array:
    ops = get_ops(like)
    idx = ops.arange(n, like)
    return ops.expand_dims(idx, 1) != ops.expand_dims(idx, 0)


def _expand_to(mask: Array, ndim: int) -> Array:
    ops = get_ops(mask)
    for _ in range(ndim):
        mask = ops.expand_dims(mask, -1)
    return mask


def leave_one_out_logsumexp(log_weights: Array) -> Array:
    r""":math:`\log\sum_{i\ne k}e^{\ell_i}` for every ``k``, without cancellation.

    Args:
        log_weights: :math:`\ell` of shape ``[n, *shape]``, ``n >= 2``.

    Returns:
        Shape ``[n, *shape]``; entry ``k`` leaves sample ``k`` out.
    """
    n = num_samples(log_weights, name="log_weights")
    ops = get_ops(log_weights)
    lw = ops.stop_gradient(log_weights)
    keep = _expand_to(_off_diagonal(n, lw), len(ops.shape(lw)) - 1)
    full = ops.broadcast_to(ops.expand_dims(lw, 0), (n, *ops.shape(lw)))  # [k, i, ...]
    masked = ops.where(keep, full, -math.inf)
    return ops.logsumexp(masked, axis=1)


def _others_sum(lw: Array) -> Array:
    r""":math:`\sum_{k\ne j}\ell_k` for every ``j``, also when some :math:`\ell_k=-\infty`.

    ``total - lw`` gives :math:`-\infty-(-\infty)` (NaN) at a sample of weight zero; there the sum
    of the others is the sum of the finite ones if that sample is the only ``-inf``, else ``-inf``.
    """
    ops = get_ops(lw)
    total = ops.sum(lw, axis=0, keepdims=True)
    dead = lw == -math.inf
    finite_total = ops.sum(ops.where(dead, 0.0, lw), axis=0, keepdims=True)
    several = ops.sum(ops.astype(dead, lw), axis=0, keepdims=True) > 1
    at_dead = ops.where(several, -math.inf, finite_total)
    return ops.where(dead, at_dead, total - lw)


def vimco_signals(log_weights: Array) -> Array:
    r"""VIMCO learning signals :math:`\hat{\mathcal L}-\hat{\mathcal L}^{-j}` (gradient-free).

    .. math::
        \hat{\mathcal L}^{-j}=\log\frac1n\Big(\sum_{k\ne j}e^{\ell_k}
        +\exp\big(\tfrac1{n-1}\textstyle\sum_{k\ne j}\ell_k\big)\Big).

    The score surrogate is :math:`\sum_j \mathrm{sg}(\text{signal}_j)\log q(z_j)`.

    Args:
        log_weights: :math:`\ell` of shape ``[n, *shape]``, ``n >= 2``, of i.i.d. samples.

    Returns:
        Signals of shape ``[n, *shape]``.
    """
    n = num_samples(log_weights, name="log_weights")
    ops = get_ops(log_weights)
    lw = ops.stop_gradient(log_weights)
    others_mean = _others_sum(lw) / (n - 1)
    loo = leave_one_out_logsumexp(lw)
    replaced = ops.logsumexp(ops.stack([loo, others_mean], axis=0), axis=0) - math.log(n)
    return iwae_bound(lw) - replaced


def local_signals(log_weights: Array, coupled_log_weights: Array) -> Array:
    r"""Summed local signals :math:`F_j=\sum_{k=1}^n\log\frac1n\big(\sum_{i\ne k}w_i+\tilde w_j\big)`.

    Feeding :math:`F` to the ARMS/CARMS/LOORF coefficient functions over the coupled set gives the
    sum over ``k`` of the per-``k`` local estimates (gradient-free).

    Args:
        log_weights: :math:`\ell` of the ``n`` i.i.d. samples, shape ``[n, *shape]``.
        coupled_log_weights: :math:`\tilde\ell` of the ``m`` coupled samples, ``[m, *shape]``.

    Returns:
        Signals of shape ``[m, *shape]``.
    """
    n = num_samples(log_weights, name="log_weights")
    num_samples(coupled_log_weights, name="coupled_log_weights")
    ops = get_ops(log_weights, coupled_log_weights)
    shape = broadcast_shapes(
        ops.shape(log_weights)[1:],
        ops.shape(coupled_log_weights)[1:],
        ("log_weights[0]", "coupled_log_weights[0]"),
    )
    loo = leave_one_out_logsumexp(log_weights)  # [k, ...]
    tilde = ops.stop_gradient(coupled_log_weights)
    m = ops.shape(tilde)[0]
    a = ops.broadcast_to(ops.expand_dims(loo, 1), (n, m, *shape))  # [k, j, ...]
    b = ops.broadcast_to(ops.expand_dims(tilde, 0), (n, m, *shape))
    per_k = ops.logsumexp(ops.stack([a, b], axis=0), axis=0) - math.log(n)  # [k, j, ...]
    return ops.sum(per_k, axis=0)


class HybridTerms(NamedTuple):
    r"""The terms of the VIMCO-ARMS hybrid (see :func:`hybrid_terms`).

    Attributes:
        bounds: :math:`L_j=\log\frac1{a+1}(\sum_{i\le a}w_i+\tilde w_j)` per subset ``[m, *E]``,
            differentiable through every log-weight (``-inf`` where a subset has no positive
            weight; the gradient is zero there).
        weights: :math:`\partial\hat{\mathcal L}/\partial\ell` of
            :math:`\hat{\mathcal L}=\frac1m\sum_jL_j` for the ``a`` i.i.d. then the ``m`` coupled
            samples ``[a + m, *E]`` (detached): the direct term's weights.
        iid_signals: VIMCO signals of the i.i.d. samples, averaged over the ``m`` subsets
            ``[a, *E]`` (detached).
        coupled_signals: :math:`L_j` ``[m, *E]`` (detached), the coupled samples' signals.
    """

    bounds: Array
    weights: Array
    iid_signals: Array
    coupled_signals: Array


def hybrid_terms(log_weights: Array, num_coupled: int) -> HybridTerms:
    r"""The VIMCO-ARMS hybrid: ``a`` i.i.d. samples, then ``m`` coupled ones, in one bound.

    With :math:`\ell` ``[a + m, *E]`` (i.i.d. samples first), subset ``j`` is the ``a`` i.i.d.
    samples plus coupled sample ``j``. The estimator of
    :math:`\nabla\mathcal L_{a+1}` (the ``(a+1)``-sample bound) is

    .. math::
        \nabla_{\rm direct}\hat{\mathcal L}
        +\sum_{i\le a}\Big(\tfrac1m\sum_j(L_j-L_j^{-i})\Big)\nabla\log q(z_i)
        +\widehat{\nabla}_{\rm ARMS}\big[L_1..L_m\big],

    where :math:`L_j^{-i}` is VIMCO's replacement of :math:`\ell_i` in subset ``j`` by the mean of
    the subset's other log-weights, and the last term is the per-site ARMS/CARMS estimate over the
    coupled samples with signals :math:`L_j`.

    Args:
        log_weights: :math:`\ell` of shape ``[a + m, *E]``, ``a >= 1``.
        num_coupled: ``m >= 2``, the number of coupled samples (the last ``m``).

    Returns:
        The :class:`HybridTerms`.
    """
    total = num_samples(log_weights, name="log_weights")
    a, m = total - num_coupled, num_coupled
    if m < 2 or a < 1:
        raise ValueError(
            f"the VIMCO-ARMS hybrid needs >= 2 coupled and >= 1 i.i.d. samples, got {m} coupled "
            f"of {total}; use num_particles >= {num_coupled + 1}"
        )
    ops = get_ops(log_weights)
    shape = ops.shape(log_weights)[1:]
    iid = ops.broadcast_to(ops.expand_dims(log_weights[:a], 1), (a, m, *shape))
    subsets = ops.concatenate([iid, ops.expand_dims(log_weights[a:], 0)], axis=0)  # [a+1, m, ..]
    finite = ops.astype(subsets != -math.inf, subsets)
    dead = ops.max(finite, axis=0, keepdims=True) == 0
    safe = ops.where(dead, 0.0, subsets)
    lse = ops.logsumexp(safe, axis=0, keepdims=True)
    bounds = ops.where(dead, -math.inf, lse)[0] - math.log(a + 1)
    ratio = ops.stop_gradient(ops.where(dead, 0.0, ops.exp(safe - lse)))  # [a+1, m, ..]
    weights = ops.concatenate([ops.mean(ratio[:a], axis=1), ratio[a] / m], axis=0)
    vimco = vimco_signals(ops.stop_gradient(subsets))  # [a+1, m, ..]
    return HybridTerms(bounds, weights, ops.mean(vimco[:a], axis=1), ops.stop_gradient(bounds))
