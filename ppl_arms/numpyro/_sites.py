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

from ppl_arms._sites import SiteDistribution, combine_masks, dist_kind, peel

__all__ = ["SiteDistribution", "unwrap"]

_BERNOULLI = (dist.BernoulliProbs, dist.BernoulliLogits)
_CATEGORICAL = (dist.CategoricalProbs, dist.CategoricalLogits)


def unwrap(fn: dist.Distribution) -> SiteDistribution:
    """Peel ``Independent``, ``MaskedDistribution`` and ``ExpandedDistribution`` wrappers."""
    coord_shape = tuple(fn.batch_shape) + tuple(fn.event_shape)
    inner, reinterpreted, layers = peel(fn, Independent, MaskedDistribution, ExpandedDistribution)
    kind = dist_kind(inner, _BERNOULLI, _CATEGORICAL)
    mask = combine_masks(layers, coord_shape, lambda m: jnp.asarray(m, dtype=bool))
    return SiteDistribution(kind, fn, inner, coord_shape, len(fn.event_shape), reinterpreted, mask)
