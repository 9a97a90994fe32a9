r"""Typed gradient carriers: one small frozen type per form a discrete site's carrier takes.

A *carrier* of a non-reparameterised guide site is a scalar whose gradient is the site's estimate
(:mod:`ppl_arms.core.surrogate`); its value cancels in the surrogate. The adapters pick the form
their traces make cheapest, and each form builds its own carrier, so no code dispatches on which
fields are missing:

ELBO losses (:meth:`ElboCarrier.term` of the per-particle learning signals ``f``):

* :class:`LogitCarrier`: per-particle logits :math:`\phi_i`,
  :math:`T=\sum_i\mathrm{sg}(d_i)\cdot\phi_i` with directions :math:`d_i` of the coefficients.
* :class:`ScoreCarrier`: a per-particle score surrogate :math:`s_i` (no ``K`` axis),
  :math:`T=\sum_i\mathrm{sg}(c_i)\,s_i` (:func:`~ppl_arms.core.surrogate.logit_score`).
* :class:`BaseCarrier`: logits that every particle's logits are a broadcast of,
  :math:`T=\mathrm{sg}(\sum_i d_i)\cdot\phi` (no particle axis at all).
* :class:`LogProbCarrier`: sites of other kinds, :math:`T=\sum_i\mathrm{sg}(c_i)\log q(z_i)`.
* :class:`GradientCarrier`: per-particle logits plus :math:`\partial f/\partial z` and learned
  parameters :math:`\theta` (the gradient-informed estimators),
  :math:`T=\sum_i\mathrm{sg}(d_i)\cdot\phi_i-(V_\theta-\mathrm{sg}(V_\theta))`.

IWAE losses (:meth:`BoundCarrier.term`): :class:`LogitBoundCarrier` (the bound's direct term
through the logits plus the score part) and :class:`LogProbBoundCarrier` (score part only).

All arrays carry the particle axis first. Learning signals and weights ``[P, *S]`` are aligned to a
site's batch dims (:meth:`SiteCarrier.per_coordinate`): singleton dims go after the particle axis,
where plates a signal was summed over were squeezed away, then the event dims are appended. Fields
marked ``static`` are hashable facts of the site (pytree metadata when an adapter registers the
types with its host, e.g. as JAX pytrees leaving a particle ``vmap``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core.estimators import DistKind, GradientInformed, SiteEstimator, directions
from ppl_arms.core.surrogate import (
    carrier,
    score_carrier,
    site_carrier,
    site_coefficients,
    summed_directions,
)
from ppl_arms.core.taylor import variance_surrogate

__all__ = [
    "BaseCarrier",
    "BoundCarrier",
    "Coupled",
    "ElboCarrier",
    "GradientCarrier",
    "LogProbBoundCarrier",
    "LogProbCarrier",
    "LogitBoundCarrier",
    "LogitCarrier",
    "ScoreCarrier",
    "SiteCarrier",
]


def _static() -> dict:
    return {"static": True}


class Coupled(NamedTuple):
    """What the coupling handler learnt about a coupled site, common to its particles.

    Attributes:
        shared: Boolean ``[*coords]``: coordinates that used the coupled draw (their parameters
            are equal across the coupled particles), or ``None`` when all did.
        lead: Detached logits ``[*coords(, K)]`` common to the coupled particles (exact where
            ``shared``), or ``None`` when the estimator does not read them.
    """

    shared: Array | None = None
    lead: Array | None = None


@dataclass(frozen=True)
class SiteCarrier:
    """What every carrier knows: the site's estimator, kind, event dims and sample values.

    Attributes:
        estimator: The site's estimator.
        kind: Its distribution kind.
        event_ndims: Event dims of its coordinates (``to_event``), appended to per-element arrays.
        values: Sample coordinates ``[P, *coords]`` (integers for categorical sites).
    """

    estimator: SiteEstimator = field(metadata=_static())
    kind: DistKind = field(metadata=_static())
    event_ndims: int = field(metadata=_static())
    values: Array

    def per_coordinate(self, x: Array) -> Array:
        """Align ``x`` ``[P, *S]`` with the coordinates: ``[P, 1.., *S, (1,) * event_ndims]``."""
        ndim = len(get_ops(self.values).shape(self.values))
        return _align(x, ndim - self.event_ndims, self.event_ndims)


def _align(x: Array, batch_ndim: int, event_ndims: int) -> Array:
    """``x`` ``[P, *S]`` as ``[P, 1.., *S, (1,) * event_ndims]`` with ``batch_ndim`` batch dims."""
    ops = get_ops(x)
    shape = ops.shape(x)
    pad = (1,) * max(0, batch_ndim - len(shape))
    if not pad and not event_ndims:
        return x
    return ops.reshape(x, shape[:1] + pad + shape[1:] + (1,) * event_ndims)


class ElboCarrier(ABC):
    """A site's carrier for an ELBO loss, from its per-particle learning signals."""

    @abstractmethod
    def term(self, signal: Array, coupled: Coupled) -> Array:
        r"""The carrier: its gradient is :math:`\sum_i c_i\nabla\log q(z_i)`.

        Args:
            signal: Learning signals ``[P, *S]`` (detached), ``S`` broadcastable to the batch.
            coupled: What the coupling handler found common to the particles.
        """


@dataclass(frozen=True)
class LogitCarrier(SiteCarrier, ElboCarrier):
    """Per-particle differentiable logits ``[P, *coords(, K)]``."""

    logits: Array

    def term(self, signal: Array, coupled: Coupled) -> Array:  # noqa: D102
        f = self.per_coordinate(signal)
        return site_carrier(self.estimator, self.kind, f, self.values, self.logits, coupled.shared)


@dataclass(frozen=True)
class ScoreCarrier(SiteCarrier, ElboCarrier):
    """A per-particle score surrogate ``[P, *coords]`` (:func:`~ppl_arms.core.surrogate.logit_score`)."""

    score: Array

    def term(self, signal: Array, coupled: Coupled) -> Array:  # noqa: D102
        f = self.per_coordinate(signal)
        c = site_coefficients(
            self.estimator, self.kind, f, self.values, coupled.lead, coupled.shared
        )
        return score_carrier(c, self.score)


@dataclass(frozen=True)
class BaseCarrier(SiteCarrier, ElboCarrier):
    """Logits without the particle axis, of which every particle's logits are a broadcast.

    Attributes:
        base: Differentiable logits broadcastable to ``[*coords(, K)]``.
        lead: ``base`` broadcast to ``[*coords(, K)]``, detached.
    """

    base: Array
    lead: Array

    def term(self, signal: Array, coupled: Coupled) -> Array:  # noqa: D102
        f = self.per_coordinate(signal)
        c = site_coefficients(self.estimator, self.kind, f, self.values, self.lead)
        return carrier(summed_directions(self.kind, c, self.values, self.lead), self.base)


@dataclass(frozen=True)
class LogProbCarrier(SiteCarrier, ElboCarrier):
    """A site of another kind: its unmasked, unscaled ``log q(z_i)`` ``[P, *batch]``."""

    log_prob: Array

    def term(self, signal: Array, coupled: Coupled) -> Array:  # noqa: D102
        f = _align(signal, len(get_ops(self.log_prob).shape(self.log_prob)), 0)
        c = site_coefficients(self.estimator, self.kind, f, self.values, None)
        return score_carrier(c, self.log_prob)


@dataclass(frozen=True)
class GradientCarrier(SiteCarrier, ElboCarrier):
    r"""A site whose estimator reads :math:`\partial f/\partial z` (:class:`~.GradientInformed`).

    .. math::
        T=\sum_i\mathrm{sg}(d_i)\cdot\phi_i-\big(V_\theta-\mathrm{sg}(V_\theta)\big),\qquad
        V_\theta=\Big\|\sum_i d_i(\theta)\Big\|^2

    (:func:`~ppl_arms.core.taylor.variance_surrogate`). The first part carries the estimate to the
    logits. The second has value zero and, since the directions depend on nothing differentiable
    but the learned parameters :math:`\theta`, gradient :math:`-\nabla_\theta V` only: the ELBO
    is maximised, so the loss :math:`-S` descends the estimator's variance in :math:`\theta`
    (its expectation does not depend on :math:`\theta`). It never touches the estimate.

    Attributes:
        logits: Differentiable logits ``[P, *coords(, K)]``.
        df_dz: Per-particle gradient of the learning signal with respect to the (one-hot) sample,
            ``[P, *coords(, K)]`` (detached; zeros give LOORF).
        learned: The learned parameters by leaf name, each with a leading particle axis (copies of
            one value: NumPyro's particle ``vmap`` adds it, Pyro expands), or empty.
    """

    estimator: GradientInformed = field(metadata=_static())
    logits: Array
    df_dz: Array
    learned: Mapping[str, Array] = field(default_factory=dict)

    def term(self, signal: Array, coupled: Coupled) -> Array:  # noqa: D102
        ops = get_ops(signal, self.logits)
        f = self.per_coordinate(signal)
        learned = {leaf: value[0] for leaf, value in self.learned.items()}
        d = self.estimator.gradient_directions(
            self.kind, f, self.values, ops.stop_gradient(self.logits), self.df_dz, learned
        )
        total = carrier(d, self.logits)
        if learned:
            v = variance_surrogate(d)
            total = total - (v - ops.stop_gradient(v))
        return total


class BoundCarrier(ABC):
    """A site's carrier for the multi-sample bound (see :func:`~ppl_arms.core.assembly`)."""

    @abstractmethod
    def term(
        self, w_tilde: Array, signal: Array, num_particles: int, vimco: bool, coupled: Coupled
    ) -> Array:
        r"""The carrier of the site's direct term and score part.

        Args:
            w_tilde: Normalised weights :math:`\tilde w_i` ``[n, *S]`` (detached).
            signal: Score-part signals ``[n, *S]``: VIMCO's on the ``n`` i.i.d. particles, else
                the summed local signals of the ``n`` coupled particles ``n .. 2n - 1``.
            num_particles: ``n``.
            vimco: Whether ``signal`` are VIMCO signals.
            coupled: What the coupling handler found common to the coupled particles.
        """


@dataclass(frozen=True)
class LogitBoundCarrier(SiteCarrier, BoundCarrier):
    r"""A Bernoulli or categorical site in the bound.

    The direct term :math:`\partial\,\text{bound}/\partial\log q(z_i)=-s\,\tilde w_i` (site scale
    ``s``, times its mask) goes through the logits, so no ``log_prob`` gradient is needed.

    Attributes:
        logits: Differentiable logits ``[P, *coords(, K)]``.
        mask: Boolean ``[P or 1, *coords]``, or ``None`` (unmasked).
        scale: The site's scale ``[P or 1, *batch]``, or ``None`` (one).
    """

    logits: Array
    mask: Array | None = None
    scale: Array | None = None

    def term(  # noqa: D102
        self, w_tilde: Array, signal: Array, num_particles: int, vimco: bool, coupled: Coupled
    ) -> Array:
        n = num_particles
        ops = get_ops(w_tilde)
        direct = -self.per_coordinate(w_tilde)
        if self.scale is not None:
            direct = direct * self.per_coordinate(self.scale[:n])
        if self.mask is not None:
            direct = direct * ops.astype(self.mask[:n], direct)
        lg, z = self.logits, self.values
        total = carrier(directions(self.kind, direct, z[:n], lg[:n]), lg[:n])
        f = self.per_coordinate(signal)
        if vimco:
            return total + carrier(directions(self.kind, f, z, lg), lg)
        return total + site_carrier(self.estimator, self.kind, f, z[n:], lg[n:], coupled.shared)


@dataclass(frozen=True)
class LogProbBoundCarrier(SiteCarrier, BoundCarrier):
    """A site of another kind in the bound: its unmasked, unscaled ``log q`` ``[P, *batch]``."""

    log_prob: Array

    def term(  # noqa: D102
        self, w_tilde: Array, signal: Array, num_particles: int, vimco: bool, coupled: Coupled
    ) -> Array:
        n = num_particles
        f = _align(signal, len(get_ops(self.log_prob).shape(self.log_prob)), 0)
        if vimco:
            return score_carrier(f, self.log_prob)
        return site_carrier(self.estimator, self.kind, f, self.values[n:], self.log_prob[n:])
