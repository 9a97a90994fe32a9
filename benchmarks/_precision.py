"""Benchmarks run in float32, the hosts' defaults, and leave the caller's precision unchanged.

The test suite calls the benchmarks in-process under float64 (``tests/conftest.py``); switching a
global such as ``jax_enable_x64`` without restoring it would leak into every later test of the
same worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["float32", "jax_x64"]


@contextmanager
def float32(backend: str) -> Iterator[None]:
    """Run the block with ``backend``'s default float type set to float32, then restore it.

    Args:
        backend: ``"numpyro"`` (``jax_enable_x64`` off) or ``"pyro"`` (torch's default dtype).
    """
    if backend == "numpyro":
        with jax_x64(False):
            yield
    else:
        import torch

        previous_dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)
        try:
            yield
        finally:
            torch.set_default_dtype(previous_dtype)


@contextmanager
def jax_x64(enabled: bool) -> Iterator[None]:
    """Run the block with JAX's ``jax_enable_x64`` set to ``enabled``, then restore it."""
    import jax

    previous = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", enabled)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)
