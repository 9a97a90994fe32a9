r"""ARMS: antithetic REINFORCE with n coupled samples for Bernoulli variables.

Draw ``n`` samples per element from an exchangeable copula (one independent copula draw per
element) through :func:`ppl_arms.core.bernoulli.threshold_sample`. Then

.. math::
    \hat g_{\rm ARMS}=\underbrace{\frac{p(1-p)}{p-P_{11}(p)}}_{\text{debias}(p)}\cdot
    \frac1{n-1}\sum_{i=1}^n(f_i-\bar f)(z_i-p),

where :math:`P_{11}=P(z_i=1,z_j=1)`. The denominator is the discordance
:math:`P(z_i=1,z_j=0)=\delta_n(m)=m-C_n(m,m)` with :math:`m=\min(p,1-p)`, for both orientations of
the sampler, so the debias factor is :math:`p(1-p)/\delta_n(m)\in[\max(p,1-p),1]`: it cannot blow
up. With independent uniforms it is one (LOORF); with ``n == 2`` it is :math:`\max(p,1-p)` (DisARM).
The only 0/0 is at ``p in {0, 1}``, where every sample agrees and the factor's limit, one, is used.

References:
    A. Dimitriev and M. Zhou. "ARMS: Antithetic-REINFORCE-Multi-Sample Gradient for Binary
    Variables." ICML 2021. https://arxiv.org/abs/2105.14141
"""

from __future__ import annotations

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import broadcast_shapes, num_samples
from ppl_arms.core.bernoulli import bernoulli_parts
from ppl_arms.core.copulas import Copula
from ppl_arms.core.loorf import loorf_coefficients

__all__ = ["arms_coefficients", "arms_debias", "arms_pair_probability"]


def arms_pair_probability(logits: Array, n: int, copula: Copula) -> Array:
    r"""Exact :math:`P_{11}(p)=P(z_i=1, z_j=1)`, ``i != j``, under the ARMS sampler.

    Equal to :math:`p-\delta_n(m)`: :math:`C_n(p,p)` for ``p < 1/2`` and
    :math:`2p-1+C_n(1-p,1-p)` for ``p >= 1/2``.
    """
    parts = bernoulli_parts(logits)
    return parts.p - copula.discordance(parts.minority, n)


def arms_debias(logits: Array, n: int, copula: Copula) -> Array:
    r"""The debias factor :math:`p(1-p)/\delta_n(\min(p,1-p))` (gradient-free).

    Args:
        logits: Bernoulli logits.
        n: Number of coupled samples.
        copula: The copula the samples were drawn with.

    Returns:
        The factor, in :math:`[\max(p,1-p), 1]`, with ``logits``'s shape.
    """
    ops = get_ops(logits)
    parts = bernoulli_parts(ops.stop_gradient(logits))
    disc = copula.discordance(parts.minority, n)
    defined = disc > 0
    return ops.where(defined, parts.p * parts.q / ops.where(defined, disc, 1.0), 1.0)


def arms_coefficients(f: Array, logits: Array, copula: Copula) -> Array:
    """Per-sample ARMS coefficients ``debias(p) * (f_i - mean(f)) / (n - 1)``.

    Args:
        f: Learning signals of shape ``[n, *fshape]``, ``n >= 2``.
        logits: Logits broadcastable with ``fshape`` (the debias factor is per element).
        copula: The copula used by the sampler.

    Returns:
        Coefficients of shape ``[n, *broadcast(fshape, logits.shape)]``.
    """
    n = num_samples(f)
    ops = get_ops(f, logits)
    broadcast_shapes(ops.shape(f)[1:], ops.shape(logits), ("f[0]", "logits"))
    return loorf_coefficients(f, arms_debias(logits, n, copula))
