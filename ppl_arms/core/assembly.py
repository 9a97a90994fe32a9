r"""Surrogate assembly shared by both adapters: per-site arrays in, one scalar loss out.

The adapters trace the programs and collect, for every non-reparameterised guide site, a
:class:`SiteArrays` record with the particle axis first. These functions turn the records into the
loss whose value is the Monte Carlo objective and whose gradient is the estimator:

* :func:`elbo_surrogate`: :math:`\text{value}+\sum_{\text{sites}}(T_s-\mathrm{sg}(T_s))` with the
  site carriers :math:`T_s` of :func:`~ppl_arms.core.surrogate.site_carrier`.
* :func:`iwae_surrogate`: the multi-sample bound :math:`\sum_e s\,\log\frac1n\sum_ie^{\ell_{ie}}`
  over the i.i.d. particles, the direct term of each discrete site
  (:math:`-s_{\text{site}}\,\tilde w_i` times the site's mask, through the logit carrier, so no
  ``log_prob`` gradient is needed) and the score part from VIMCO signals or the summed local signals
  of :mod:`ppl_arms.core.iwae` over the coupled particles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core.estimators import DistKind, SiteEstimator, directions
from ppl_arms.core.iwae import local_signals, vimco_signals
from ppl_arms.core.surrogate import (
    carrier,
    finite_signals,
    score_carrier,
    site_carrier,
    site_coefficients,
    summed_directions,
    with_gradient,
)

__all__ = ["SiteArrays", "elbo_surrogate", "iwae_surrogate"]


@dataclass(frozen=True)
class SiteArrays:
    """One non-reparameterised guide site, as arrays with the particle axis first.

    Attributes:
        estimator: The site's estimator.
        kind: Its distribution kind.
        event_ndims: Event dims of its coordinates (``to_event``), appended to per-element arrays.
        values: Sample coordinates ``[P, *coords]`` (integers for categorical sites).
        params: Differentiable logits ``[P, *coords(, K)]``, or for :attr:`DistKind.OTHER` the
            unmasked, unscaled ``log_prob`` ``[P, *batch]``. May be ``None`` for the ELBO when
            ``score`` or ``base`` is given (the lean forms below).
        shared: Boolean ``[*coords]``: coordinates that used the coupled draw (``None``: all).
        signal: Learning signals ``[P, *batch]`` (ELBO losses; ``None`` for the IWAE loss).
        mask: Boolean ``[P or 1, *coords]`` mask of the coordinates (IWAE direct term), or ``None``.
        scale: The site's scale ``[P or 1, *batch]`` (IWAE direct term), or ``None`` for one.
        lead: Detached logits ``[*coords(, K)]`` common to the coupled particles (for the
            coefficients when ``params`` is not given).
        score: Differentiable per-particle score surrogate ``[P, *coords]``
            (:func:`~ppl_arms.core.surrogate.logit_score`; for other kinds the unmasked log-prob):
            the ELBO's carrier is ``sum(sg(c) * score)``, with no ``K`` axis per particle.
        base: Differentiable logits without the particle axis that every particle's logits are
            a broadcast of (broadcastable to ``[*coords(, K)]`` less the particle axis): the
            carrier is ``sum(sg(summed_directions) * base)``, with no particle axis at all.
    """

    estimator: SiteEstimator
    kind: DistKind
    event_ndims: int
    values: Array
    params: Array | None
    shared: Array | None = None
    signal: Array | None = None
    mask: Array | None = None
    scale: Array | None = None
    lead: Array | None = None
    score: Array | None = None
    base: Array | None = None

    def per_coordinate(self, x: Array) -> Array:
        """Append the event dims to a per-element array ``[P, *batch]`` (not for other kinds)."""
        if self.kind is DistKind.OTHER:
            return x
        ops = get_ops(x)
        return ops.reshape(x, ops.shape(x) + (1,) * self.event_ndims)


def elbo_surrogate(value: Array, sites: Sequence[SiteArrays]) -> Array:
    """The ELBO estimate ``value`` with every site's estimator as its gradient.

    Each site's carrier takes the leanest form its record allows: ``base`` (summed directions
    times the un-broadcast logits), ``score`` (coefficients times a per-particle score
    surrogate), or per-particle ``params`` (:func:`~ppl_arms.core.surrogate.site_carrier`). All
    three have the same gradient.
    """
    total = get_ops(value).const(0.0, value)  # not value * 0, which is NaN for an infinite value
    for s in sites:
        f = s.per_coordinate(s.signal)
        if s.base is not None or s.score is not None:
            c = site_coefficients(s.estimator, s.kind, f, s.values, s.lead, s.shared)
            if s.base is not None:
                total = total + carrier(summed_directions(s.kind, c, s.values, s.lead), s.base)
            else:
                total = total + score_carrier(c, s.score)
        else:
            total = total + site_carrier(s.estimator, s.kind, f, s.values, s.params, s.shared)
    return with_gradient(value, total)


def iwae_surrogate(
    log_weight: Array,
    num_particles: int,
    bound_scale: float,
    sites: Sequence[SiteArrays],
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
        sites: The non-reparameterised guide sites.
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
    for s in sites:
        params = s.params
        if s.kind is not DistKind.OTHER:
            # direct term of the bound: d(objective) / d log q(z_i) = -(site scale) * w~_i
            direct = -s.per_coordinate(w_tilde)
            if s.scale is not None:
                direct = direct * s.per_coordinate(s.scale[:n])
            if s.mask is not None:
                direct = direct * ops.astype(s.mask[:n], direct)
            total = total + carrier(
                directions(s.kind, direct, s.values[:n], params[:n]), params[:n]
            )
        f = s.per_coordinate(signal)
        if not vimco:
            shared = s.shared
            total = total + site_carrier(s.estimator, s.kind, f, s.values[n:], params[n:], shared)
        elif s.kind is DistKind.OTHER:
            total = total + score_carrier(f, params)
        else:
            total = total + carrier(directions(s.kind, f, s.values, params), params)
    return with_gradient(objective, total)
