"""Unwrapping Pyro site distributions into what the estimators need.

A discrete guide site may wrap its ``Bernoulli``, ``Categorical`` or ``OneHotCategorical`` in
``Independent`` (``to_event``), ``MaskedDistribution`` (``.mask()``) and ``ExpandedDistribution``, in
any order; ``poutine.mask`` adds ``msg["mask"]`` instead. :func:`unwrap` peels the wrappers and
gives per-coordinate logits broadcast to the value's coordinates and the combined mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from pyro.distributions import Bernoulli, Categorical, OneHotCategorical
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.ops.provenance import detach_provenance
from torch.distributions import Distribution, Independent

from ppl_arms._sites import SiteDistribution as _SiteDistribution
from ppl_arms._sites import combine_masks, dist_kind, peel
from ppl_arms.core.estimators import DistKind

__all__ = ["SiteDistribution", "broadcast_base", "unwrap"]


@dataclass
class SiteDistribution(_SiteDistribution):
    """A Pyro site's distribution, unwrapped (see :class:`ppl_arms._sites.SiteDistribution`).

    Attributes:
        one_hot: Whether values are one-hot vectors (``OneHotCategorical``).
    """

    one_hot: bool = False

    @staticmethod
    def _plain(x: Any) -> torch.Tensor:
        """The tensor without the provenance of ``TraceGraphARMS_ELBO``."""
        return detach_provenance(x)

    def coordinates(self, value: torch.Tensor) -> torch.Tensor:
        """Integer (or 0/1) coordinates of a value: argmax of one-hot values, else the value."""
        return value.argmax(-1) if self.one_hot else value

    def to_value(self, z: torch.Tensor) -> torch.Tensor:
        """Turn coordinates into a value with the dtype the site's ``sample`` returns.

        Bernoulli and one-hot values have the logits' floating dtype, categorical values are
        ``int64`` (as Pyro's samplers return them).
        """
        dtype = self.base.logits.dtype
        if self.one_hot:
            return torch.nn.functional.one_hot(z.long(), self.num_categories).to(dtype)
        if self.kind is DistKind.CATEGORICAL:
            return z.long()
        return z.to(dtype)


def broadcast_base(x: torch.Tensor) -> torch.Tensor | None:
    """The differentiable tensor that ``x`` is a broadcast view of along its leading axis, if any.

    Pyro's plates broadcast a guide site's logits with ``expand``, so logits that do not depend on
    per-particle samples are a view with stride 0 along the particle axis. Gradients through such a
    view sum ``n`` copies; working with the tensor it views (``x._base``, checked to lay out
    exactly the same memory as ``x`` once expanded) lets the loss form its carrier without any
    particle axis. Returns ``None`` when ``x`` is not such a view (the loss then uses ``x``).
    """
    if x.dim() == 0 or x.shape[0] < 2 or x.stride(0) != 0 or x._base is None:
        return None
    base = x._base
    try:
        view = base.expand(x.shape)
    except RuntimeError:
        return None
    same_layout = (
        view.stride() == x.stride()
        and view.storage_offset() == x.storage_offset()
        and view.data_ptr() == x.data_ptr()
        and view.dtype == x.dtype
    )
    return base if same_layout else None


def unwrap(fn: Distribution, site_mask: object = None) -> SiteDistribution:
    """Peel ``Independent``, ``MaskedDistribution`` and ``ExpandedDistribution`` wrappers.

    Args:
        fn: The site's distribution.
        site_mask: ``msg["mask"]`` of the site (from ``poutine.mask``), broadcastable to its batch
            shape, or ``None``.

    Returns:
        The :class:`SiteDistribution`.
    """
    full = tuple(fn.batch_shape) + tuple(fn.event_shape)
    inner, reinterpreted, layers = peel(fn, Independent, MaskedDistribution, ExpandedDistribution)
    kind = dist_kind(inner, Bernoulli, (Categorical, OneHotCategorical))
    one_hot = isinstance(inner, OneHotCategorical)
    coord_shape = full[:-1] if one_hot else full
    event_ndims = len(fn.event_shape) - one_hot  # a one-hot axis is no coordinate
    if one_hot:
        inner = Categorical(logits=inner.logits)  # same logits; integer coordinates
    masks = [(site_mask, event_ndims)] + [(m, event - one_hot) for m, event in layers]
    mask = combine_masks(masks, coord_shape, lambda m: torch.as_tensor(m, dtype=torch.bool))
    return SiteDistribution(kind, fn, inner, coord_shape, event_ndims, reinterpreted, mask, one_hot)
