"""The adapter tests' backends: the shared host namespace (``models._ppl.host``) plus arrays."""

import numpy as np

from models._ppl import host


class _Backend:
    """A :class:`models._ppl.Host`'s primitives as attributes, with the adapter as ``losses``."""

    name = ""

    def __init__(self):
        h = host(self.name)
        self.exp, self.dist, self.mask, self.scale = h.exp, h.dist, h.mask, h.scale
        self.sample, self.plate, self.param = h.sample, h.plate, h.param
        self.losses = h.adapter

    def __repr__(self):
        return self.name


class NumPyroBackend(_Backend):
    name = "numpyro"

    def __init__(self):
        import jax.numpy as jnp

        super().__init__()
        self.jnp = jnp

    def array(self, x, dtype=None):
        return self.jnp.asarray(np.asarray(x), dtype=dtype)

    def bool_array(self, x):
        return self.jnp.asarray(np.asarray(x, dtype=bool))


class PyroBackend(_Backend):
    name = "pyro"

    def __init__(self):
        import torch

        super().__init__()
        self.torch = torch

    def array(self, x, dtype=None):
        t = self.torch.as_tensor(np.array(x))
        return t if dtype is None else t.to(getattr(self.torch, dtype))

    def bool_array(self, x):
        return self.torch.as_tensor(np.asarray(x, dtype=bool))
