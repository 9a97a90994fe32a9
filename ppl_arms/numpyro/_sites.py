"""Unwrapping NumPyro site distributions into what the estimators need.

A discrete guide site may wrap its Bernoulli or Categorical in ``Independent`` (``to_event``),
``MaskedDistribution`` (``handlers.mask`` / ``.mask()``) and ``ExpandedDistribution`` (plates,
``expand``), in any order. :func:`unwrap` peels them and returns the per-coordinate logits
(broadcast to the value's shape), the mask per coordinate, and the base distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from numpyro import distributions as dist
from numpyro.distributions import ExpandedDistribution, Independent, MaskedDistribution

from ppl_arms.core.estimators import DistKind

__all__ = ["SiteDistribution", "unwrap"]

_BERNOULLI = (dist.BernoulliProbs, dist.BernoulliLogits)
_CATEGORICAL = (dist.CategoricalProbs, dist.CategoricalLogits)


@dataclass
class SiteDistribution:
    """A site's distribution, unwrapped.

    Attributes:
        kind: Bernoulli, categorical, or other.
        fn: The site's (wrapped) distribution.
        base: The innermost distribution.
        coord_shape: Shape of one sample (``batch_shape + event_shape`` of ``fn``).
        event_ndims: ``len(fn.event_shape)``: trailing coordinate dims summed in ``log_prob``.
        reinterpreted_ndims: Total ``Independent`` dims (for :meth:`unmasked_log_prob`).
        mask: Boolean mask broadcast to ``coord_shape``, or ``None`` when unmasked.
    """

    kind: DistKind
    fn: dist.Distribution
    base: dist.Distribution
    coord_shape: tuple[int, ...]
    event_ndims: int
    reinterpreted_ndims: int
    mask: jax.Array | None

    def logits(self) -> jax.Array:
        """Differentiable logits broadcast to ``coord_shape`` (``+ (K,)`` for categorical)."""
        logits = self.base.logits
        if self.kind is DistKind.CATEGORICAL:
            return jnp.broadcast_to(logits, self.coord_shape + logits.shape[-1:])
        return jnp.broadcast_to(logits, self.coord_shape)

    @property
    def num_categories(self) -> int:
        """``K`` for categorical sites, 2 for Bernoulli, 0 otherwise."""
        if self.kind is DistKind.CATEGORICAL:
            return int(jnp.shape(self.base.logits)[-1])
        return 2 if self.kind is DistKind.BERNOULLI else 0

    def unmasked_log_prob(self, value: jax.Array) -> jax.Array:
        """``log q(value)`` per batch element, ignoring masks and scales (the score's base)."""
        lp = self.base.log_prob(value)
        if self.reinterpreted_ndims:
            lp = jnp.sum(lp, axis=tuple(range(-self.reinterpreted_ndims, 0)))
        return jnp.broadcast_to(lp, self.coord_shape[: len(self.coord_shape) - self.event_ndims])


def unwrap(fn: dist.Distribution) -> SiteDistribution:
    """Peel ``Independent``, ``MaskedDistribution`` and ``ExpandedDistribution`` wrappers."""
    coord_shape = tuple(fn.batch_shape) + tuple(fn.event_shape)
    masks = []
    reinterpreted = 0
    inner = fn
    while True:
        if isinstance(inner, Independent):
            reinterpreted += inner.reinterpreted_batch_ndims
            inner = inner.base_dist
        elif isinstance(inner, MaskedDistribution):
            mask = inner._mask
            if not (isinstance(mask, bool) and mask):
                layer_event = len(inner.event_shape)
                mask = jnp.asarray(mask, dtype=bool)
                mask = jnp.reshape(mask, mask.shape + (1,) * layer_event)
                masks.append(jnp.broadcast_to(mask, coord_shape))
            inner = inner.base_dist
        elif isinstance(inner, ExpandedDistribution):
            inner = inner.base_dist
        else:
            break
    if isinstance(inner, _BERNOULLI):
        kind = DistKind.BERNOULLI
    elif isinstance(inner, _CATEGORICAL):
        kind = DistKind.CATEGORICAL
    else:
        kind = DistKind.OTHER
    mask = None
    for m in masks:
        mask = m if mask is None else mask & m
    return SiteDistribution(kind, fn, inner, coord_shape, len(fn.event_shape), reinterpreted, mask)
