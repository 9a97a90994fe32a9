r"""Surrogate assembly shared by both adapters: typed site carriers in, one scalar loss out.

The adapters trace the programs and build, for every non-reparameterised guide site, a carrier of
:mod:`ppl_arms.core.carriers` with the particle axis first. These functions turn them into the loss
whose value is the Monte Carlo objective and whose gradient is the estimator:

* :func:`elbo_surrogate`: :math:`\text{value}+\sum_{\text{sites}}(T_s-\mathrm{sg}(T_s))` with the
  site carriers :math:`T_s` (:meth:`~ppl_arms.core.carriers.ElboCarrier.term`).
* :func:`iwae_surrogate`: the multi-sample bound :math:`\sum_e s\,\log\frac1n\sum_ie^{\ell_{ie}}`
  over the i.i.d. particles, the direct term of each discrete site
  (:math:`-s_{\text{site}}\,\tilde w_i` times the site's mask, through the logit carrier, so no
  ``log_prob`` gradient is needed) and the score part from VIMCO signals or the summed local signals
  of :mod:`ppl_arms.core.iwae` over the coupled particles
  (:meth:`~ppl_arms.core.carriers.BoundCarrier.term`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core.carriers import BoundCarrier, Coupled, ElboCarrier
from ppl_arms.core.iwae import local_signals, vimco_signals
from ppl_arms.core.surrogate import finite_signals, with_gradient

__all__ = ["elbo_surrogate", "iwae_surrogate"]


def elbo_surrogate(value: Array, sites: Sequence[tuple[ElboCarrier, Array, Coupled]]) -> Array:
    """The ELBO estimate ``value`` with every site's estimator as its gradient.

    Args:
        value: The plain Monte Carlo estimate.
        sites: Per non-reparameterised guide site: its carrier, its learning signals ``[P, *S]``
            and what the coupling found common to its particles.
    """
    total = get_ops(value).const(0.0, value)  # not value * 0, which is NaN for an infinite value
    for site, signal, coupled in sites:
        total = total + site.term(signal, coupled)
    return with_gradient(value, total)


def iwae_surrogate(
    log_weight: Array,
    num_particles: int,
    bound_scale: float,
    sites: Sequence[tuple[BoundCarrier, Coupled]],
    vimco: bool,
) -> Array:
    r"""The multi-sample bound with unbiased gradients at the discrete sites.

    Args:
        log_weight: Per-element log-weights ``[P, *E]`` over the bound's plates, unscaled by the
            bound's subsampling scale; the first ``n`` particles are i.i.d., the rest (``n`` more,
            unless ``vimco``) are the coupled set. Discrete sites' ``log q`` must enter detached
            (their direct gradient is added here); everything else keeps its gradient.
        num_particles: ``n``.
        bound_scale: The subsampling scale of the bound's plates (``s``).
        sites: The non-reparameterised guide sites' carriers, each with what the coupling found
            common to its coupled particles.
        vimco: Use VIMCO signals on the i.i.d. particles (else local signals on the coupled ones).

    Returns:
        ``s * sum(bound)`` in value, with the estimator as gradient.
    """
    ops = get_ops(log_weight)
    n = num_particles
    log_w = log_weight[:n]
    # An element whose n weights are all zero (every particle impossible) has bound -inf; its
    # gradient is undefined and taken as zero (the log-sum-exp runs on zeros there, so the
    # gradient of the unused branch is finite; elsewhere the numbers are unchanged).
    dead = ops.max(ops.astype(log_w != -math.inf, log_w), axis=0, keepdims=True) == 0
    safe = ops.where(dead, 0.0, log_w)
    lse = ops.logsumexp(safe, axis=0, keepdims=True)
    bound = ops.where(dead, -math.inf, lse)[0] - math.log(n)
    objective = bound_scale * ops.sum(bound)
    w_tilde = ops.stop_gradient(ops.where(dead, 0.0, ops.exp(safe - lse)))
    if vimco:
        signal = bound_scale * vimco_signals(log_w)
    else:
        signal = bound_scale * local_signals(log_w, ops.stop_gradient(log_weight[n:]))
    signal = finite_signals(signal)
    total = ops.const(0.0, objective)
    for site, coupled in sites:
        total = total + site.term(w_tilde, signal, n, vimco, coupled)
    return with_gradient(objective, total)
