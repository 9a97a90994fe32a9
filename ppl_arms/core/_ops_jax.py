"""JAX implementation of :class:`ppl_arms.core._ops.Ops`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np

__all__ = ["JAX_OPS", "SEQUENTIAL_SCAN_MAX", "JaxOps"]

SEQUENTIAL_SCAN_MAX = 64
"""``cumsum``/``cumprod`` along an axis of at most this length are unrolled into sequential
operations (left to right, as torch computes them on CPU); longer axes use ``jnp.cumsum``. Sums,
means and maxima over an outer (non-last) axis of at most this length are folded the same way."""


def _fold_outer(
    combine: Callable[[jax.Array, jax.Array], jax.Array],
    x: jax.Array,
    axis: Any,
    keepdims: bool,
) -> jax.Array | None:
    """Reduce a short *outer* axis by a left-to-right fold of its slices; ``None`` if not one.

    XLA's CPU reduction over a non-minor axis (the particle axis of an ``[n, *shape]`` array) is
    one strided pass per output element: measured on this project's CPU machines (jaxlib 0.10.2,
    one thread), summing a ``[4, 1e6]`` float32 array over axis 0 took 37-73 ms against 1.6-3.3 ms
    for ``x[0] + x[1] + x[2] + x[3]``, which XLA fuses with the producer into one elementwise
    loop. Axes of at most :data:`SEQUENTIAL_SCAN_MAX` entries that are not the last one, of
    floating arrays, are folded; everything else goes to ``jnp``'s reduction.
    """
    if not isinstance(axis, int) or not jnp.issubdtype(x.dtype, jnp.inexact):
        return None
    axis %= x.ndim
    if axis == x.ndim - 1 or not 0 < x.shape[axis] <= SEQUENTIAL_SCAN_MAX:
        return None
    out = jax.lax.index_in_dim(x, 0, axis, keepdims=keepdims)
    for i in range(1, x.shape[axis]):
        out = combine(out, jax.lax.index_in_dim(x, i, axis, keepdims=keepdims))
    return out


class JaxOps:
    """Array operations on ``jax.Array`` (and tracers)."""

    name = "jax"

    def const(self, value: Any, like: jax.Array) -> jax.Array:
        return jnp.asarray(np.asarray(value), dtype=like.dtype)

    def astype(self, x: jax.Array, like: jax.Array) -> jax.Array:
        return x.astype(like.dtype)

    def is_floating(self, x: jax.Array) -> bool:
        return jnp.issubdtype(x.dtype, jnp.floating)

    def finfo(self, x: jax.Array) -> np.finfo:
        return np.finfo(x.dtype)

    def shape(self, x: jax.Array) -> tuple[int, ...]:
        return tuple(x.shape)

    def where(self, cond: jax.Array, a: Any, b: Any) -> jax.Array:
        dtype = a.dtype if hasattr(a, "dtype") else b.dtype
        return jnp.where(cond, jnp.asarray(a, dtype), jnp.asarray(b, dtype))

    isfinite = staticmethod(jnp.isfinite)

    exp = staticmethod(jnp.exp)
    log = staticmethod(jnp.log)
    log1p = staticmethod(jnp.log1p)
    sqrt = staticmethod(jnp.sqrt)
    abs = staticmethod(jnp.abs)
    sin = staticmethod(jnp.sin)
    arcsin = staticmethod(jnp.arcsin)
    floor = staticmethod(jnp.floor)
    sigmoid = staticmethod(jax.nn.sigmoid)
    ndtr = staticmethod(jss.ndtr)
    ndtri = staticmethod(jss.ndtri)

    def power(self, x: jax.Array, y: Any) -> jax.Array:
        return jnp.power(x, y)

    def maximum(self, a: Any, b: Any) -> jax.Array:
        return jnp.maximum(a, b)

    def minimum(self, a: Any, b: Any) -> jax.Array:
        return jnp.minimum(a, b)

    def log_softmax(self, x: jax.Array, axis: int) -> jax.Array:
        return jax.nn.log_softmax(x, axis=axis)

    def logsumexp(self, x: jax.Array, axis: int, keepdims: bool = False) -> jax.Array:
        return jss.logsumexp(x, axis=axis, keepdims=keepdims)

    def sum(self, x: jax.Array, axis: Any = None, keepdims: bool = False) -> jax.Array:
        folded = _fold_outer(jnp.add, x, axis, keepdims)
        return jnp.sum(x, axis=axis, keepdims=keepdims) if folded is None else folded

    def mean(self, x: jax.Array, axis: int, keepdims: bool = False) -> jax.Array:
        folded = _fold_outer(jnp.add, x, axis, keepdims)
        if folded is None:
            return jnp.mean(x, axis=axis, keepdims=keepdims)
        return folded / x.shape[axis]

    def max(self, x: jax.Array, axis: int, keepdims: bool = False) -> jax.Array:
        folded = _fold_outer(jnp.maximum, x, axis, keepdims)
        return jnp.max(x, axis=axis, keepdims=keepdims) if folded is None else folded

    def cumsum(self, x: jax.Array, axis: int) -> jax.Array:
        axis %= x.ndim
        if x.shape[axis] > SEQUENTIAL_SCAN_MAX:
            return jnp.cumsum(x, axis=axis)
        # Short axes (categories): sequential sums, fused by XLA into one elementwise loop, with
        # torch's left-to-right order (XLA's cumsum is a slower, differently rounded tree scan).
        parts = [jax.lax.slice_in_dim(x, 0, 1, axis=axis)]
        for i in range(1, x.shape[axis]):
            parts.append(parts[-1] + jax.lax.slice_in_dim(x, i, i + 1, axis=axis))
        return jnp.concatenate(parts, axis=axis)

    def cumprod(self, x: jax.Array, axis: int) -> jax.Array:
        axis %= x.ndim
        if x.shape[axis] > SEQUENTIAL_SCAN_MAX:
            return jnp.cumprod(x, axis=axis)
        parts = [jax.lax.slice_in_dim(x, 0, 1, axis=axis)]
        for i in range(1, x.shape[axis]):
            parts.append(parts[-1] * jax.lax.slice_in_dim(x, i, i + 1, axis=axis))
        return jnp.concatenate(parts, axis=axis)

    stop_gradient = staticmethod(jax.lax.stop_gradient)

    def take_along_axis(self, x: jax.Array, idx: jax.Array, axis: int) -> jax.Array:
        nd = max(x.ndim, idx.ndim)
        x = jnp.reshape(x, (1,) * (nd - x.ndim) + x.shape)
        idx = jnp.reshape(idx, (1,) * (nd - idx.ndim) + idx.shape)
        axis %= nd
        common = list(
            jnp.broadcast_shapes(
                tuple(1 if i == axis else s for i, s in enumerate(x.shape)),
                tuple(1 if i == axis else s for i, s in enumerate(idx.shape)),
            )
        )
        xs, ids = list(common), list(common)
        xs[axis], ids[axis] = x.shape[axis], idx.shape[axis]
        return jnp.take_along_axis(jnp.broadcast_to(x, xs), jnp.broadcast_to(idx, ids), axis=axis)

    def argsort(self, x: jax.Array, axis: int) -> jax.Array:
        return jnp.argsort(x, axis=axis, stable=True)

    def one_hot(self, idx: jax.Array, num_classes: int, like: jax.Array) -> jax.Array:
        return jax.nn.one_hot(idx, num_classes, dtype=like.dtype)

    def to_int(self, x: jax.Array) -> jax.Array:
        return x.astype(jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)

    def take(self, x: jax.Array, indices: np.ndarray, axis: int) -> jax.Array:
        # Static slices and one concatenation: XLA fuses them, unlike a gather on CPU.
        axis %= x.ndim
        parts = [jax.lax.slice_in_dim(x, int(i), int(i) + 1, axis=axis) for i in indices]
        return jnp.concatenate(parts, axis=axis)

    def flip(self, x: jax.Array, axis: int) -> jax.Array:
        return jnp.flip(x, axis=axis)

    def stack(self, xs: list[jax.Array], axis: int) -> jax.Array:
        return jnp.stack(xs, axis=axis)

    def concatenate(self, xs: list[jax.Array], axis: int) -> jax.Array:
        return jnp.concatenate(xs, axis=axis)

    def expand_dims(self, x: jax.Array, axis: int) -> jax.Array:
        return jnp.expand_dims(x, axis)

    def broadcast_to(self, x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        return jnp.broadcast_to(x, shape)

    def reshape(self, x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        return jnp.reshape(x, shape)

    def moveaxis(self, x: jax.Array, source: int, destination: int) -> jax.Array:
        return jnp.moveaxis(x, source, destination)

    def arange(self, n: int, like: jax.Array) -> jax.Array:
        return jnp.arange(n)

    def zeros(self, shape: tuple[int, ...], like: jax.Array) -> jax.Array:
        return jnp.zeros(shape, dtype=like.dtype)

    def fori_sum(
        self, fn: Callable[[jax.Array], jax.Array], count: int, init: jax.Array
    ) -> jax.Array:
        return jax.lax.fori_loop(0, count, lambda t, acc: acc + fn(t), init)

    def map_chunks(
        self, fn: Callable[..., jax.Array], xs: tuple[jax.Array, ...], size: int
    ) -> jax.Array:
        m = xs[0].shape[0]
        if m <= size:
            return fn(*xs)
        full, rest = divmod(m, size)
        blocks = tuple(x[: full * size].reshape((full, size, *x.shape[1:])) for x in xs)
        _, out = jax.lax.scan(lambda carry, b: (carry, fn(*b)), None, blocks)
        out = out.reshape((full * size, *out.shape[2:]))
        if rest:
            out = jnp.concatenate([out, fn(*(x[full * size :] for x in xs))], axis=0)
        return out


JAX_OPS = JaxOps()
