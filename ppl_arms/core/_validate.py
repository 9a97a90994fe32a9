"""Input checks shared by the core estimators (clear ``ValueError`` messages, no silent fixes)."""

from __future__ import annotations

from ppl_arms._typing import Array, Shape
from ppl_arms.core._ops import get_ops

__all__ = ["broadcast_shapes", "nonfinite_elements", "num_samples"]


def num_samples(f: Array, name: str = "f", minimum: int = 2) -> int:
    """Return the size of the leading sample axis of ``f``, checking it is at least ``minimum``."""
    shape = get_ops(f).shape(f)
    if len(shape) == 0:
        raise ValueError(f"{name} needs a leading sample axis of size n >= {minimum}, got a scalar")
    n = shape[0]
    if n < minimum:
        raise ValueError(
            f"{name} has n={n} samples on its leading axis; this estimator needs n >= {minimum} "
            "(use num_particles >= 2: leave-one-out and antithetic estimators compare samples)"
        )
    return n


def broadcast_shapes(a: Shape, b: Shape, names: tuple[str, str]) -> Shape:
    """Broadcast two shapes, raising a ``ValueError`` that names both arrays on mismatch."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            raise ValueError(
                f"shape mismatch: {names[0]} has shape {a} and {names[1]} has shape {b}, "
                "which do not broadcast"
            )
        out.append(max(x, y))
    return tuple(reversed(out))


def nonfinite_elements(f: Array) -> Array:
    """Boolean ``[1, ...]``: the elements of ``f`` ``[n, ...]`` where some sample is not finite.

    The test is on the sum over samples, which is finite exactly when every sample is (``inf -
    inf`` and ``nan`` stay non-finite), so it costs one reduction over the ``[n, ...]`` array.
    Finite values whose sum overflows the floating range (each above ``max / n`` in magnitude)
    count as non-finite too.
    """
    ops = get_ops(f)
    return ~ops.isfinite(ops.sum(f, axis=0, keepdims=True))
