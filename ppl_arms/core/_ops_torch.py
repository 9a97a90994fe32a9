"""PyTorch implementation of :class:`ppl_arms.core._ops.Ops`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = ["TORCH_OPS", "TorchOps"]


def _pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(a, torch.Tensor):
        a = torch.as_tensor(a, dtype=b.dtype, device=b.device)
    if not isinstance(b, torch.Tensor):
        b = torch.as_tensor(b, dtype=a.dtype, device=a.device)
    return a, b


def _align_for_gather(
    x: torch.Tensor, idx: torch.Tensor, axis: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Broadcast ``x`` and ``idx`` against each other on every axis but ``axis``."""
    nd = max(x.ndim, idx.ndim)
    x = x.reshape((1,) * (nd - x.ndim) + tuple(x.shape))
    idx = idx.reshape((1,) * (nd - idx.ndim) + tuple(idx.shape))
    axis %= nd
    common = list(
        torch.broadcast_shapes(
            tuple(1 if i == axis else s for i, s in enumerate(x.shape)),
            tuple(1 if i == axis else s for i, s in enumerate(idx.shape)),
        )
    )
    xs, ids = list(common), list(common)
    xs[axis], ids[axis] = x.shape[axis], idx.shape[axis]
    return x.expand(xs), idx.expand(ids)


class TorchOps:
    """Array operations on ``torch.Tensor``."""

    name = "torch"

    def const(self, value: Any, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.array(value), dtype=like.dtype, device=like.device)

    def astype(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return x.to(like.dtype)

    def is_floating(self, x: torch.Tensor) -> bool:
        return x.is_floating_point()

    def finfo(self, x: torch.Tensor) -> np.finfo:
        return np.finfo(str(x.dtype).removeprefix("torch."))

    def shape(self, x: torch.Tensor) -> tuple[int, ...]:
        # ints even under torch.jit.trace, whose sizes are 0-d tensors (the jit losses retrace
        # when shapes change, so shapes may be constants of a trace)
        return tuple(int(s) for s in x.shape)

    def where(self, cond: torch.Tensor, a: Any, b: Any) -> torch.Tensor:
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            raise TypeError("where needs at least one tensor branch")
        a, b = _pair(a, b)
        return torch.where(cond, a, b)

    isfinite = staticmethod(torch.isfinite)
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    log1p = staticmethod(torch.log1p)
    sqrt = staticmethod(torch.sqrt)
    abs = staticmethod(torch.abs)
    sin = staticmethod(torch.sin)
    arcsin = staticmethod(torch.asin)
    floor = staticmethod(torch.floor)
    sigmoid = staticmethod(torch.sigmoid)
    ndtr = staticmethod(torch.special.ndtr)
    ndtri = staticmethod(torch.special.ndtri)

    def power(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        return torch.pow(x, y)

    def maximum(self, a: Any, b: Any) -> torch.Tensor:
        return torch.maximum(*_pair(a, b))

    def minimum(self, a: Any, b: Any) -> torch.Tensor:
        return torch.minimum(*_pair(a, b))

    def log_softmax(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        return torch.log_softmax(x, dim=axis)

    def logsumexp(self, x: torch.Tensor, axis: int, keepdims: bool = False) -> torch.Tensor:
        return torch.logsumexp(x, dim=axis, keepdim=keepdims)

    def sum(self, x: torch.Tensor, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
        if axis is None:
            return x.sum()
        return x.sum(dim=axis, keepdim=keepdims)

    def mean(self, x: torch.Tensor, axis: int, keepdims: bool = False) -> torch.Tensor:
        return x.mean(dim=axis, keepdim=keepdims)

    def max(self, x: torch.Tensor, axis: int, keepdims: bool = False) -> torch.Tensor:
        return x.amax(dim=axis, keepdim=keepdims)

    def cumsum(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        return torch.cumsum(x, dim=axis)

    def cumprod(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        return torch.cumprod(x, dim=axis)

    def stop_gradient(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach()

    def take_along_axis(self, x: torch.Tensor, idx: torch.Tensor, axis: int) -> torch.Tensor:
        x, idx = _align_for_gather(x, idx.long(), axis)
        # gather directly: take_along_dim wraps indices with a costly remainder (ours are >= 0)
        return torch.gather(x, axis % x.ndim, idx)

    def argsort(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        return torch.argsort(x, dim=axis, stable=True)

    def one_hot(self, idx: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(idx.long(), num_classes).to(like.dtype)

    def to_int(self, x: torch.Tensor) -> torch.Tensor:
        return x.long()

    def take(self, x: torch.Tensor, indices: np.ndarray, axis: int) -> torch.Tensor:
        index = torch.as_tensor(np.array(indices, dtype=np.int64), device=x.device)
        return torch.index_select(x, axis % x.ndim, index)

    def flip(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        return torch.flip(x, dims=(axis,))

    def stack(self, xs: list[torch.Tensor], axis: int) -> torch.Tensor:
        return torch.stack(xs, dim=axis)

    def concatenate(self, xs: list[torch.Tensor], axis: int) -> torch.Tensor:
        return torch.cat(xs, dim=axis)

    def expand_dims(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        return x.unsqueeze(axis)

    def broadcast_to(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.broadcast_to(x, shape)

    def reshape(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return x.reshape(shape)

    def moveaxis(self, x: torch.Tensor, source: int, destination: int) -> torch.Tensor:
        return torch.movedim(x, source, destination)

    def arange(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.arange(n, device=like.device)

    def zeros(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)

    def fori_sum(
        self, fn: Callable[[int], torch.Tensor], count: int, init: torch.Tensor
    ) -> torch.Tensor:
        acc = init
        for t in range(count):
            acc = acc + fn(t)
        return acc

    def map_chunks(
        self, fn: Callable[..., torch.Tensor], xs: tuple[torch.Tensor, ...], size: int
    ) -> torch.Tensor:
        m = xs[0].shape[0]
        if m <= size:
            return fn(*xs)
        return torch.cat([fn(*(x[s : s + size] for x in xs)) for s in range(0, m, size)])


TORCH_OPS = TorchOps()
