"""A site's distribution unwrapped to what the estimators need, for either host.

Each adapter's ``unwrap`` peels its host's ``Independent``, ``MaskedDistribution`` and
``ExpandedDistribution`` wrappers (in any order) and returns a :class:`SiteDistribution`; what is
read from it afterwards (logits broadcast to the coordinates, ``K``, the unmasked log-density) is
written here once, on :mod:`ppl_arms.core._ops`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core.estimators import DistKind

__all__ = ["SiteDistribution", "combine_masks", "dist_kind", "peel"]


@dataclass
class SiteDistribution:
    """A site's distribution, unwrapped.

    Attributes:
        kind: Bernoulli, categorical, or other.
        fn: The site's (wrapped) distribution.
        base: The innermost distribution (for one-hot values, a categorical with its logits).
        coord_shape: Shape of the coordinates: the value shape, without a one-hot axis.
        event_ndims: Event dims of the coordinates (``to_event`` dims, without a one-hot axis).
        reinterpreted_ndims: Total ``Independent`` dims (for :meth:`unmasked_log_prob`).
        mask: Boolean mask broadcast to ``coord_shape`` (distribution masks and mask handlers),
            or ``None``.
    """

    kind: DistKind
    fn: Any
    base: Any
    coord_shape: tuple[int, ...]
    event_ndims: int
    reinterpreted_ndims: int
    mask: Array | None

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The coordinates' shape without the event dims."""
        return self.coord_shape[: len(self.coord_shape) - self.event_ndims]

    @staticmethod
    def _plain(x: Any) -> Array:
        """The host's array inside ``x`` (adapters whose tensors carry wrappers override it)."""
        return x

    def coordinates(self, value: Array) -> Array:
        """Integer (or 0/1) coordinates of a value: the value (a host with one-hot values overrides)."""
        return value

    def logits(self) -> Array:
        """Differentiable logits broadcast to ``coord_shape`` (``+ (K,)`` for categorical)."""
        logits = self._plain(self.base.logits)
        ops = get_ops(logits)
        k = ops.shape(logits)[-1:] if self.kind is DistKind.CATEGORICAL else ()
        return ops.broadcast_to(logits, self.coord_shape + tuple(k))

    @property
    def num_categories(self) -> int:
        """``K`` for categorical sites, 2 for Bernoulli, 0 otherwise."""
        if self.kind is DistKind.CATEGORICAL:
            return int(self._plain(self.base.logits).shape[-1])
        return 2 if self.kind is DistKind.BERNOULLI else 0

    def unmasked_log_prob(self, value: Array) -> Array:
        """``log q(value)`` per batch element, ignoring masks and scales (the score's base)."""
        lp = self._plain(self.base.log_prob(value))
        ops = get_ops(lp)
        if self.reinterpreted_ndims:
            lp = ops.sum(lp, axis=tuple(range(-self.reinterpreted_ndims, 0)))
        return ops.broadcast_to(lp, self.batch_shape)


def peel(fn: Any, independent: type, masked: type, expanded: type) -> tuple[Any, int, list]:
    """Peel a host's ``Independent``, ``MaskedDistribution`` and ``ExpandedDistribution`` layers.

    Args:
        fn: The site's distribution.
        independent: The host's ``Independent`` class.
        masked: The host's ``MaskedDistribution`` class.
        expanded: The host's ``ExpandedDistribution`` class.

    Returns:
        The innermost distribution, the total ``Independent`` dims, and each mask layer's
        ``(mask, event_ndims)`` (outermost first).
    """
    masks = []
    reinterpreted = 0
    while isinstance(fn, independent | masked | expanded):
        if isinstance(fn, independent):
            reinterpreted += fn.reinterpreted_batch_ndims
        elif isinstance(fn, masked):
            masks.append((fn._mask, len(fn.event_shape)))
        fn = fn.base_dist
    return fn, reinterpreted, masks


def dist_kind(
    inner: Any, bernoulli: type | tuple[type, ...], categorical: type | tuple[type, ...]
) -> DistKind:
    """The kind of an innermost distribution, given the host's Bernoulli and categorical classes."""
    if isinstance(inner, bernoulli):
        return DistKind.BERNOULLI
    if isinstance(inner, categorical):
        return DistKind.CATEGORICAL
    return DistKind.OTHER


def combine_masks(
    masks: Iterable[tuple[Any, int]],
    coord_shape: tuple[int, ...],
    as_bool: Callable[[Any], Array],
) -> Array | None:
    """The conjunction of masks, each broadcast to the coordinates (``None`` if nothing is masked).

    Args:
        masks: Each mask (an array, a bool, or ``None``) with the event dims of its layer (masks
            cover batch dims only; the event dims are appended).
        coord_shape: Shape of the coordinates.
        as_bool: The host's conversion of a mask to a boolean array.
    """
    combined = None
    for mask, event_ndims in masks:
        if mask is None or (isinstance(mask, bool) and mask):
            continue
        mask = as_bool(mask)
        ops = get_ops(mask)
        mask = ops.broadcast_to(
            ops.reshape(mask, ops.shape(mask) + (1,) * event_ndims), coord_shape
        )
        combined = mask if combined is None else combined & mask
    return combined
