"""Shared type aliases.

``Array`` is a torch tensor or a JAX array; the core never mixes them in one call. The alias is
deliberately loose (``Any``) at run time because JAX tracers and torch tensors share no base class.
"""

from typing import Any, TypeAlias

__all__ = ["Array", "Shape"]

Array: TypeAlias = Any
"""A ``torch.Tensor`` or a ``jax.Array`` (including tracers under ``jit``/``vmap``)."""

Shape: TypeAlias = tuple[int, ...]
"""A concrete array shape."""
