"""Unwrapping NumPyro site distributions into what the estimators need.

A discrete guide site may wrap its Bernoulli or Categorical in ``Independent`` (``to_event``),
``MaskedDistribution`` (``handlers.mask`` / ``.mask()``) and ``ExpandedDistribution`` (plates,
``expand``), in any order. :func:`unwrap` peels them and returns the per-coordinate logits
(broadcast to the value's shape), the mask per coordinate, and the base distribution.
"""

from __future__ import annotations

import jax.numpy as jnp
from numpyro import distributions as dist
from numpyro.distributions import ExpandedDistribution, Independent, MaskedDistribution

from ppl_arms._sites import SiteDistribution, peel
from ppl_arms.core.estimators import DistKind

__all__ = ["SiteDistribution", "unwrap"]

_BERNOULLI = (dist.BernoulliProbs, dist.BernoulliLogits)
_CATEGORICAL = (dist.CategoricalProbs, dist.CategoricalLogits)


def unwrap(fn: dist.Distribution) -> SiteDistribution:
    """Peel ``Independent``, ``MaskedDistribution`` and ``ExpandedDistribution`` wrappers."""
    coord_shape = tuple(fn.batch_shape) + tuple(fn.event_shape)
    inner, reinterpreted, layers = peel(fn, Independent, MaskedDistribution, ExpandedDistribution)
    masks = []
    for mask, layer_event in layers:
        if not (isinstance(mask, bool) and mask):
            mask = jnp.asarray(mask, dtype=bool)
            mask = jnp.reshape(mask, mask.shape + (1,) * layer_event)
            masks.append(jnp.broadcast_to(mask, coord_shape))
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
