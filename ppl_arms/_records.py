"""Backend-neutral site records: what a loss needs from a traced model and guide.

Each adapter has a *normaliser* that turns its host's traces (Pyro's ``Trace``, NumPyro's trace
dicts) into :class:`Traces` of :class:`SiteRecord`; everything after tracing (learning signals,
ELBO and bound sums, checks, carriers) is written once on these records
(:mod:`ppl_arms._objectives`, :mod:`ppl_arms._checks`). Arrays are torch tensors or JAX arrays;
shapes are whatever the host gives: Pyro's carry the particle plate, NumPyro's (one particle
inside a ``vmap``) do not.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ppl_arms._sites import SiteDistribution
from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core.carriers import (
    BaseCarrier,
    BoundCarrier,
    ElboCarrier,
    GradientCarrier,
    LogitBoundCarrier,
    LogitCarrier,
    LogProbBoundCarrier,
    LogProbCarrier,
    ScoreCarrier,
)
from ppl_arms.core.estimators import DistKind, SiteEstimator
from ppl_arms.core.surrogate import logit_score

__all__ = ["Frame", "Latent", "SiteGradient", "SitePlan", "SiteRecord", "Traces", "latent"]


class Frame(NamedTuple):
    """One plate a site is in.

    Attributes:
        name: The plate's name.
        dim: Its (negative) batch dim, or ``None`` for a sequential plate (no batch dim).
        size: Its size in this trace (the subsample size).
        full_size: The size of the data it indexes (``size`` unless subsampled).
        counter: The iteration of a sequential plate (``0`` for vectorised ones).
    """

    name: str
    dim: int | None
    size: int
    full_size: int
    counter: int = 0


@dataclass(frozen=True)
class SitePlan:
    """Facts about one non-reparameterised guide site, fixed when it is first sampled."""

    name: str
    kind: DistKind
    estimator: SiteEstimator
    event_ndims: int


@dataclass(frozen=True)
class Latent:
    """A non-reparameterised guide site, as the estimators see it.

    Attributes:
        plan: Its plan.
        value: Sample coordinates ``[*coords]`` (integers or 0/1; one-hot values as indices).
        params: Differentiable logits broadcast to ``[*coords(, K)]``, or for
            :attr:`~ppl_arms.core.DistKind.OTHER` the unmasked, unscaled ``log_prob`` ``[*batch]``.
        mask: Boolean mask ``[*coords]`` (distribution masks and mask handlers), or ``None``.
        scale: The site's scale broadcast to ``[*batch]``, or ``None`` for one.
        df_dz: For an estimator that reads it (``needs_sample_gradient``), the gradient of the
            learning signal with respect to the (one-hot) value ``[*coords(, K)]``; else ``None``.
        learned: That estimator's learned parameters by leaf name (the loss's params), or empty.
    """

    plan: SitePlan
    value: Array
    params: Array
    mask: Array | None
    scale: Array | None
    df_dz: Array | None = None
    learned: Mapping[str, Array] = field(default_factory=dict)

    def elbo_carrier(self, base: Array | None = None) -> ElboCarrier:
        """The site's ELBO carrier: on ``base`` when every particle's logits broadcast it.

        Args:
            base: The differentiable logits without the particle axis that ``params`` is a
                broadcast of, if known (then no per-particle logits are needed).
        """
        site = (self.plan.estimator, self.plan.kind, self.plan.event_ndims, self.value)
        if self.df_dz is not None:
            return GradientCarrier(*site, self.params, self.df_dz, self.learned)
        if self.plan.kind is DistKind.OTHER:
            return LogProbCarrier(*site, self.params)
        if base is None:
            return LogitCarrier(*site, self.params)
        return BaseCarrier(*site, base, get_ops(self.params).stop_gradient(self.params[0]))

    def score_carrier(self) -> ElboCarrier:
        """The site's lean ELBO carrier: a per-particle score surrogate, no ``K`` axis.

        A site with ``df_dz`` gets its :class:`~ppl_arms.core.carriers.GradientCarrier` (per-particle
        logits: its directions have the ``K`` axis).
        """
        if self.df_dz is not None:
            return self.elbo_carrier()
        site = (self.plan.estimator, self.plan.kind, self.plan.event_ndims, self.value)
        if self.plan.kind is DistKind.OTHER:
            return LogProbCarrier(*site, self.params)
        return ScoreCarrier(*site, logit_score(self.plan.kind, self.value, self.params))

    def bound_carrier(self) -> BoundCarrier:
        """The site's carrier in a multi-sample bound."""
        site = (self.plan.estimator, self.plan.kind, self.plan.event_ndims, self.value)
        if self.plan.kind is DistKind.OTHER:
            return LogProbBoundCarrier(*site, self.params)
        return LogitBoundCarrier(*site, self.params, self.mask, self.scale)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The site's batch shape (its coordinates without the event dims)."""
        if self.plan.kind is DistKind.OTHER:
            return tuple(get_ops(self.params).shape(self.params))
        shape = tuple(get_ops(self.value).shape(self.value))
        return shape[: len(shape) - self.plan.event_ndims]


class SiteGradient(NamedTuple):
    """What a site whose estimator reads ``df_dz`` gets besides its trace (see :class:`Latent`).

    Attributes:
        df_dz: ``[*coords(, K)]``, detached (Pyro: with the particle plate first; NumPyro: of one
            particle, the particle ``vmap`` adds the axis).
        learned: The estimator's learned params by leaf name (Pyro: expanded to ``[P, ...]``;
            NumPyro: unbatched inside the ``vmap``, the carrier leaves it with a particle axis of
            copies).
    """

    df_dz: Array
    learned: Mapping[str, Array]


def latent(
    plan: SitePlan, info: SiteDistribution, value: Any, scale: Any, gradient: SiteGradient | None
) -> Latent:
    """The :class:`Latent` of a planned guide site, from what its host trace records.

    Args:
        plan: The site's plan.
        info: Its unwrapped distribution.
        value: Its sampled value (as the host's sampler returns it).
        scale: Its scale (``None`` or the number 1 for none; else a number or array broadcastable
            to its batch shape).
        gradient: Its :class:`SiteGradient`, for an estimator that reads ``df_dz``.
    """
    value = info._plain(value)
    params = info.unmasked_log_prob(value) if plan.kind is DistKind.OTHER else info.logits()
    ops = get_ops(params)
    if scale is None or (isinstance(scale, numbers.Number) and scale == 1.0):
        scale = None
    else:
        scale = ops.const(scale, params) if isinstance(scale, numbers.Number) else scale
        scale = ops.broadcast_to(ops.astype(scale, params), info.batch_shape)
    df_dz, learned = (None, {}) if gradient is None else gradient
    return Latent(plan, info.coordinates(value), params, info.mask, scale, df_dz, learned)


@dataclass(frozen=True)
class SiteRecord:
    """One sample site of a traced model or guide.

    Attributes:
        name: The site's name.
        log_prob: Its scaled, masked log-density per element (with its gradient).
        frames: The vectorised plates it is in.
        upstream: Names of the non-reparameterised guide sites its log-density depends on
            (provenance, for dependency-graph learning signals; empty when not tracked).
        latent: For a guide site with an estimator, its :class:`Latent`; else ``None``.
    """

    name: str
    log_prob: Array
    frames: frozenset[Frame]
    upstream: frozenset[str] = frozenset()
    latent: Latent | None = None


@dataclass(frozen=True)
class Traces:
    """The normalised model and guide traces of one loss evaluation.

    Attributes:
        model: The model's sample sites, in trace order.
        guide: The guide's sample sites, in trace order.
    """

    model: tuple[SiteRecord, ...]
    guide: tuple[SiteRecord, ...]

    @property
    def latents(self) -> tuple[SiteRecord, ...]:
        """The guide sites with an estimator."""
        return tuple(s for s in self.guide if s.latent is not None)
