r"""Bernoulli helpers shared by the binary estimators: probabilities, sampling, and the score.

All binary estimators in :mod:`ppl_arms.core` return per-(sample, element) coefficients
:math:`c_i` such that the gradient estimate with respect to the logits is

.. math::
    \hat g=\sum_{i=1}^n c_i\,(z_i-p),\qquad p=\sigma(\phi),

which is :math:`\sum_i c_i\nabla_\phi\log q_\phi(z_i)`. :func:`bernoulli_gradient` assembles it.
"""

from __future__ import annotations

from typing import NamedTuple

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops

__all__ = [
    "BernoulliParts",
    "bernoulli_directions",
    "bernoulli_gradient",
    "bernoulli_parts",
    "threshold_sample",
]


class BernoulliParts(NamedTuple):
    """Numerically careful pieces of a Bernoulli distribution given its logits."""

    p: Array
    r""":math:`\sigma(\phi)`."""
    q: Array
    r""":math:`1-p`, computed as :math:`\sigma(-\phi)` so it is accurate when ``p`` is near one."""
    minority: Array
    r""":math:`m=\min(p, q)`, the probability of the rarer outcome."""
    negative: Array
    """Whether ``phi < 0`` (``p < 1/2``), the orientation switch of the ARMS sampler."""


def bernoulli_parts(logits: Array) -> BernoulliParts:
    """Split logits into ``p``, ``q = 1 - p``, the minority probability and the orientation.

    Args:
        logits: Bernoulli logits; ``±inf`` give ``p = 1`` / ``p = 0`` exactly.

    Returns:
        A :class:`BernoulliParts`.
    """
    ops = get_ops(logits)
    p = ops.sigmoid(logits)
    q = ops.sigmoid(-logits)
    negative = logits < 0
    return BernoulliParts(p, q, ops.where(negative, p, q), negative)


def threshold_sample(v: Array, logits: Array) -> Array:
    r"""Bernoulli samples from (coupled) uniforms with the ARMS orientation switch.

    .. math::
        z_i=\begin{cases}\mathbb 1[V_i<p] & p<\tfrac12\\ \mathbb 1[1-V_i<p]=\mathbb 1[V_i\ge 1-p]
        & p\ge\tfrac12\end{cases}

    The switch puts the strongly antithetic (low) end of the copula on the rarer outcome
    ([ARMS]_ §3). Each ``z_i`` is exactly Bernoulli(p) because each ``V_i`` is uniform.

    Args:
        v: Uniforms of shape ``[n, *shape]``.
        logits: Logits broadcastable to ``shape``.

    Returns:
        Samples in ``{0., 1.}`` with ``v``'s floating dtype and the broadcast shape.
    """
    ops = get_ops(v, logits)
    parts = bernoulli_parts(logits)
    # V < m for the rarer outcome m = min(p, q), flipped where p >= 1/2: one comparison of the
    # [n, *shape] uniforms instead of two and a select ("== negative" is "xor not negative").
    z = (v < parts.minority) == parts.negative
    return ops.astype(z, v)


def bernoulli_directions(coefficients: Array, z: Array, logits: Array) -> Array:
    r"""Per-sample gradient contributions :math:`c_i (z_i - p_i)` (gradient-free).

    ``logits`` may carry the sample axis (per-sample parameters, as in the LOORF fallback) or not.
    The surrogate ``sum(directions * logits)`` then has gradient :math:`\sum_i c_i\nabla\phi_i`-weighted
    scores, exactly the estimator, without differentiating any ``log_prob``.
    """
    ops = get_ops(coefficients, z, logits)
    p = ops.sigmoid(ops.stop_gradient(logits))
    return ops.stop_gradient(coefficients) * (ops.astype(z, p) - p)


def bernoulli_gradient(coefficients: Array, z: Array, logits: Array) -> Array:
    r"""Assemble :math:`\hat g=\sum_i c_i (z_i - p)` over the leading sample axis.

    Args:
        coefficients: ``c`` of shape ``[n, *shape]``.
        z: Samples of shape ``[n, *shape]``.
        logits: Logits broadcastable to ``shape`` (or ``[n, *shape]``).

    Returns:
        The gradient estimate with respect to the logits, shape ``shape``.
    """
    ops = get_ops(coefficients, z, logits)
    return ops.sum(bernoulli_directions(coefficients, z, logits), axis=0)
