"""JAX implementation of :class:`ppl_arms.core._ops.Ops`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np

__all__ = ["JAX_OPS", "JaxOps"]


class JaxOps:
    """Array operations on ``jax.Array`` (and tracers)."""

    name = "jax"

    def const(self, value: Any, like: jax.Array) -> jax.Array:  # noqa: D102
        return jnp.asarray(np.asarray(value), dtype=like.dtype)

    def astype(self, x: jax.Array, like: jax.Array) -> jax.Array:  # noqa: D102
        return x.astype(like.dtype)

    def is_floating(self, x: jax.Array) -> bool:  # noqa: D102
        return jnp.issubdtype(x.dtype, jnp.floating)

    def finfo(self, x: jax.Array) -> np.finfo:  # noqa: D102
        return np.finfo(x.dtype)

    def shape(self, x: jax.Array) -> tuple[int, ...]:  # noqa: D102
        return tuple(x.shape)

    def where(self, cond: jax.Array, a: Any, b: Any) -> jax.Array:  # noqa: D102
        dtype = a.dtype if hasattr(a, "dtype") else b.dtype
        return jnp.where(cond, jnp.asarray(a, dtype), jnp.asarray(b, dtype))

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

    def power(self, x: jax.Array, y: Any) -> jax.Array:  # noqa: D102
        return jnp.power(x, y)

    def maximum(self, a: Any, b: Any) -> jax.Array:  # noqa: D102
        return jnp.maximum(a, b)

    def minimum(self, a: Any, b: Any) -> jax.Array:  # noqa: D102
        return jnp.minimum(a, b)

    def log_softmax(self, x: jax.Array, axis: int) -> jax.Array:  # noqa: D102
        return jax.nn.log_softmax(x, axis=axis)

    def logsumexp(self, x: jax.Array, axis: int, keepdims: bool = False) -> jax.Array:  # noqa: D102
        return jss.logsumexp(x, axis=axis, keepdims=keepdims)

    def sum(self, x: jax.Array, axis: Any = None, keepdims: bool = False) -> jax.Array:  # noqa: D102
        return jnp.sum(x, axis=axis, keepdims=keepdims)

    def mean(self, x: jax.Array, axis: int, keepdims: bool = False) -> jax.Array:  # noqa: D102
        return jnp.mean(x, axis=axis, keepdims=keepdims)

    def max(self, x: jax.Array, axis: int, keepdims: bool = False) -> jax.Array:  # noqa: D102
        return jnp.max(x, axis=axis, keepdims=keepdims)

    def cumsum(self, x: jax.Array, axis: int) -> jax.Array:  # noqa: D102
        return jnp.cumsum(x, axis=axis)

    def cumprod(self, x: jax.Array, axis: int) -> jax.Array:  # noqa: D102
        return jnp.cumprod(x, axis=axis)

    stop_gradient = staticmethod(jax.lax.stop_gradient)

    def take_along_axis(self, x: jax.Array, idx: jax.Array, axis: int) -> jax.Array:  # noqa: D102
        return jnp.take_along_axis(x, idx, axis=axis)

    def argsort(self, x: jax.Array, axis: int) -> jax.Array:  # noqa: D102
        return jnp.argsort(x, axis=axis, stable=True)

    def one_hot(self, idx: jax.Array, num_classes: int, like: jax.Array) -> jax.Array:  # noqa: D102
        return jax.nn.one_hot(idx, num_classes, dtype=like.dtype)

    def to_int(self, x: jax.Array) -> jax.Array:  # noqa: D102
        return x.astype(jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)

    def flip(self, x: jax.Array, axis: int) -> jax.Array:  # noqa: D102
        return jnp.flip(x, axis=axis)

    def stack(self, xs: list[jax.Array], axis: int) -> jax.Array:  # noqa: D102
        return jnp.stack(xs, axis=axis)

    def concatenate(self, xs: list[jax.Array], axis: int) -> jax.Array:  # noqa: D102
        return jnp.concatenate(xs, axis=axis)

    def expand_dims(self, x: jax.Array, axis: int) -> jax.Array:  # noqa: D102
        return jnp.expand_dims(x, axis)

    def broadcast_to(self, x: jax.Array, shape: tuple[int, ...]) -> jax.Array:  # noqa: D102
        return jnp.broadcast_to(x, shape)

    def reshape(self, x: jax.Array, shape: tuple[int, ...]) -> jax.Array:  # noqa: D102
        return jnp.reshape(x, shape)

    def moveaxis(self, x: jax.Array, source: int, destination: int) -> jax.Array:  # noqa: D102
        return jnp.moveaxis(x, source, destination)

    def arange(self, n: int, like: jax.Array) -> jax.Array:  # noqa: D102
        return jnp.arange(n)


JAX_OPS = JaxOps()
