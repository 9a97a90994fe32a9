"""A small explicit namespace per host library, so each test model is written once for both."""

import numpy as np


class NumPyroBackend:
    name = "numpyro"

    def __init__(self):
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist
        from numpyro import handlers

        import ppl_arms.numpyro as ours

        self.jnp = jnp
        self.exp = jnp.exp
        self.sample, self.plate, self.param = numpyro.sample, numpyro.plate, numpyro.param
        self.dist, self.mask, self.scale = dist, handlers.mask, handlers.scale
        self.losses = ours

    def array(self, x, dtype=None):
        return self.jnp.asarray(np.asarray(x), dtype=dtype)

    def bool_array(self, x):
        return self.jnp.asarray(np.asarray(x, dtype=bool))

    def __repr__(self):
        return self.name


class PyroBackend:
    name = "pyro"

    def __init__(self):
        import pyro
        import pyro.distributions as dist
        import torch
        from pyro import poutine

        import ppl_arms.pyro as ours

        self.torch = torch
        self.exp = torch.exp
        self.sample, self.plate, self.param = pyro.sample, pyro.plate, pyro.param
        self.dist, self.mask, self.scale = dist, poutine.mask, poutine.scale
        self.losses = ours

    def array(self, x, dtype=None):
        t = self.torch.as_tensor(np.array(x))
        return t if dtype is None else t.to(getattr(self.torch, dtype))

    def bool_array(self, x):
        return self.torch.as_tensor(np.asarray(x, dtype=bool))

    def __repr__(self):
        return self.name
