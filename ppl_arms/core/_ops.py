"""A tiny explicit array-operations protocol shared by the torch and JAX backends.

The estimator mathematics in :mod:`ppl_arms.core` is written once against :class:`Ops`. The two
implementations, :mod:`ppl_arms.core._ops_torch` and :mod:`ppl_arms.core._ops_jax`, mostly map a
method to one host call; a few methods (the cumulative sums and products, gathers, the loop
primitives) take a few lines where the hosts differ. The backend is picked from the type of the
arrays passed in (never from global state), so the same function serves a ``torch.Tensor`` and a
``jax.Array`` (or a JAX tracer).

Conventions shared by every method:

* ``axis`` arguments are Python ints; reductions take ``keepdims``.
* Python scalars are accepted wherever an array is and take the dtype of the other operand.
* Nothing here draws random numbers: noise always comes in as an argument.
* Two small control-flow primitives keep long static loops out of the traced graph:
  :meth:`Ops.fori_sum` (a sum over a loop index, ``jax.lax.fori_loop`` in JAX) and
  :meth:`Ops.map_chunks` (a function applied to consecutive slices of the leading axis,
  ``jax.lax.scan`` in JAX), so memory stays bounded and JAX compiles the body once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from ppl_arms._typing import Array

__all__ = ["Ops", "get_ops"]


class Ops(Protocol):
    """The array operations the core needs; see the module docstring for conventions."""

    name: str

    def const(self, value: Any, like: Array) -> Array:
        """An array holding ``value`` (scalar or numpy array) with ``like``'s dtype and device."""

    def astype(self, x: Array, like: Array) -> Array:
        """``x`` cast to ``like``'s dtype."""

    def is_floating(self, x: Array) -> bool:
        """Whether ``x`` has a floating-point dtype."""

    def finfo(self, x: Array) -> np.finfo:
        """Machine limits of ``x``'s floating dtype."""

    def shape(self, x: Array) -> tuple[int, ...]:
        """The static shape of ``x``."""

    def where(self, cond: Array, a: Array | float, b: Array | float) -> Array:
        """Elementwise selection."""

    def isfinite(self, x: Array) -> Array:
        """Elementwise: neither infinite nor NaN (boolean)."""

    def exp(self, x: Array) -> Array:
        """Elementwise exponential."""

    def log(self, x: Array) -> Array:
        """Elementwise natural logarithm."""

    def log1p(self, x: Array) -> Array:
        """Elementwise ``log(1 + x)``."""

    def sqrt(self, x: Array) -> Array:
        """Elementwise square root."""

    def abs(self, x: Array) -> Array:
        """Elementwise absolute value."""

    def sin(self, x: Array) -> Array:
        """Elementwise sine."""

    def arcsin(self, x: Array) -> Array:
        """Elementwise inverse sine."""

    def floor(self, x: Array) -> Array:
        """Elementwise floor."""

    def power(self, x: Array, y: Array | float) -> Array:
        """Elementwise ``x ** y``."""

    def maximum(self, a: Array, b: Array | float) -> Array:
        """Elementwise maximum."""

    def minimum(self, a: Array, b: Array | float) -> Array:
        """Elementwise minimum."""

    def sigmoid(self, x: Array) -> Array:
        """Logistic function."""

    def log_softmax(self, x: Array, axis: int) -> Array:
        """Log-softmax along ``axis``."""

    def logsumexp(self, x: Array, axis: int, keepdims: bool = False) -> Array:
        """Stable ``log(sum(exp(x)))`` along ``axis``."""

    def sum(
        self, x: Array, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Array:
        """Sum along ``axis`` (all axes when ``None``)."""

    def mean(self, x: Array, axis: int, keepdims: bool = False) -> Array:
        """Mean along ``axis``."""

    def max(self, x: Array, axis: int, keepdims: bool = False) -> Array:
        """Maximum along ``axis``."""

    def cumsum(self, x: Array, axis: int) -> Array:
        """Cumulative sum along ``axis``."""

    def cumprod(self, x: Array, axis: int) -> Array:
        """Cumulative product along ``axis``."""

    def ndtr(self, x: Array) -> Array:
        """Standard normal CDF."""

    def ndtri(self, p: Array) -> Array:
        """Standard normal quantile function."""

    def stop_gradient(self, x: Array) -> Array:
        """Identity in value, zero gradient."""

    def take_along_axis(self, x: Array, idx: Array, axis: int) -> Array:
        """Gather ``x`` at integer ``idx`` along ``axis``; other axes broadcast against each other."""

    def argsort(self, x: Array, axis: int) -> Array:
        """Indices that sort ``x`` ascending along ``axis`` (stable)."""

    def one_hot(self, idx: Array, num_classes: int, like: Array) -> Array:
        """One-hot encoding of integer ``idx`` with ``like``'s floating dtype (new last axis)."""

    def to_int(self, x: Array) -> Array:
        """Cast to the backend's default integer dtype."""

    def take(self, x: Array, indices: np.ndarray, axis: int) -> Array:
        """Entries of ``x`` at static integer ``indices`` (a numpy array) along ``axis``."""

    def flip(self, x: Array, axis: int) -> Array:
        """Reverse ``x`` along ``axis``."""

    def stack(self, xs: list[Array], axis: int) -> Array:
        """Stack arrays along a new ``axis``."""

    def concatenate(self, xs: list[Array], axis: int) -> Array:
        """Concatenate arrays along ``axis``."""

    def expand_dims(self, x: Array, axis: int) -> Array:
        """Insert a size-1 axis."""

    def broadcast_to(self, x: Array, shape: tuple[int, ...]) -> Array:
        """Broadcast ``x`` to ``shape`` (a view where the backend allows)."""

    def reshape(self, x: Array, shape: tuple[int, ...]) -> Array:
        """Reshape ``x``."""

    def moveaxis(self, x: Array, source: int, destination: int) -> Array:
        """Move one axis."""

    def arange(self, n: int, like: Array) -> Array:
        """Integers ``0..n-1`` on ``like``'s device (integer dtype)."""

    def zeros(self, shape: tuple[int, ...], like: Array) -> Array:
        """Zeros of ``shape`` with ``like``'s dtype and device."""

    def fori_sum(self, fn: Callable[[Any], Array], count: int, init: Array) -> Array:
        """``init + fn(0) + fn(1) + ... + fn(count - 1)``, accumulated in that order.

        ``fn`` gets the loop index: a Python int in torch, a traced integer scalar in JAX (so it
        may only use it to index arrays). Its result must have ``init``'s shape and dtype. JAX runs
        a ``fori_loop`` (the body is compiled once, whatever ``count`` is); torch a Python loop.
        """

    def map_chunks(self, fn: Callable[..., Array], xs: tuple[Array, ...], size: int) -> Array:
        """``fn`` applied to consecutive slices of at most ``size`` along the leading axis.

        Every array in ``xs`` has the same leading length ``m``; ``fn(*slices)`` returns one array
        whose leading axis is the slice's. The results are concatenated, so the output equals
        ``fn(*xs)`` for an ``fn`` that treats leading-axis entries independently, while only one
        slice's temporaries are alive at a time. JAX scans over the full slices and calls ``fn``
        once more on the remainder.
        """


def get_ops(*arrays: Any) -> Ops:
    """Return the backend operations for the given arrays.

    Args:
        *arrays: Arrays (or Python scalars, which are skipped). The first array decides.

    Returns:
        The :class:`Ops` implementation for torch or JAX.

    Raises:
        TypeError: If no argument is a torch tensor or a JAX array.
    """
    for x in arrays:
        module = type(x).__module__
        if module.startswith("torch"):
            from ppl_arms.core._ops_torch import TORCH_OPS

            return TORCH_OPS
        if module.startswith(("jax", "jaxlib")):
            from ppl_arms.core._ops_jax import JAX_OPS

            return JAX_OPS
    names = ", ".join(type(x).__name__ for x in arrays)
    raise TypeError(
        f"ppl_arms.core works on torch tensors or JAX arrays, got ({names}). "
        "Convert numpy inputs with torch.as_tensor(...) or jax.numpy.asarray(...)."
    )
