"""Monte Carlo gradients of the ppl_arms losses and exact gradients from enumeration.

Replicates are vectorised with an outer ``_replicates`` plate around model and guide: each
replicate is an independent copy of the problem (per-element learning signals and couplings make
the estimates independent across the plate), parameters are shared, so one loss evaluation returns
the sum of ``R`` independent gradient estimates. ``B`` such batches give ``B`` independent batch
means; the standard error comes from their spread (``ppl_arms.testing.assert_unbiased``). Subsample
indices are shared within a batch and fresh across batches, so the batch means stay i.i.d.
"""

import numpy as np

from tests.adapters.backends import NumPyroBackend, PyroBackend

REPLICATES = 256
BATCHES = 64
Z_MAX = 5.0  # with 64 batch means (t with 63 dof): about 5e-6 false-alarm rate per cell


def replicated(B, fn, replicates, nesting):
    def wrapped():
        with B.plate("_replicates", replicates, dim=-(nesting + 1)):
            return fn()

    return wrapped


def _cached_exact(method):
    """Memoise an exact gradient per (spec, objective, n, bound plates) on the harness instance.

    The exact gradient depends only on the problem, not on the loss under test, so the oracle
    matrix enumerates each problem once per backend instead of once per loss.
    """

    def wrapped(self, spec, objective="elbo", num_particles=None, bound_plates=None):
        cache = self.__dict__.setdefault("_exact_cache", {})
        key = (spec.name, objective, num_particles, bound_plates)
        if key not in cache:
            cache[key] = method(self, spec, objective, num_particles, bound_plates)
        return cache[key].copy()

    return wrapped


def _flatten(grads, names):
    return np.concatenate([np.asarray(grads[k], dtype=float).reshape(-1) for k in names])


class NumPyroHarness:
    def __init__(self):
        self.B = NumPyroBackend()

    def mc_gradients(self, spec, loss, replicates=REPLICATES, batches=BATCHES, seed=0):
        import jax
        import jax.numpy as jnp

        model, guide = spec.build(self.B, False)
        model = replicated(self.B, model, replicates, spec.nesting)
        guide = replicated(self.B, guide, replicates, spec.nesting)
        names = sorted(spec.params)
        params = {k: jnp.asarray(spec.params[k]) for k in names}

        @jax.jit
        def grad(key):
            return jax.grad(lambda p: -loss.loss(key, p, model, guide))(params)

        keys = jax.random.split(jax.random.key(seed), batches)
        return np.stack([_flatten(grad(k), names) for k in keys]) / replicates

    @_cached_exact
    def exact_gradient(self, spec, objective="elbo", num_particles=None, bound_plates=None):
        import jax
        import jax.numpy as jnp

        from ppl_arms.testing.numpyro import exact_elbo, exact_iwae

        model, guide = spec.build(self.B, True)
        names = sorted(spec.params)
        params = {k: jnp.asarray(spec.params[k]) for k in names}
        if objective == "elbo":
            g = jax.grad(lambda p: exact_elbo(model, guide, p))(params)
        else:
            g = jax.grad(
                lambda p: exact_iwae(
                    model, guide, p, num_particles=num_particles, bound_plates=bound_plates
                )
            )(params)
        return _flatten(g, names)


class PyroHarness:
    def __init__(self):
        self.B = PyroBackend()

    def _grads(self, value, names):
        import pyro
        import torch

        leaves = [pyro.param(k).unconstrained() for k in names]
        grads = torch.autograd.grad(value, leaves, allow_unused=True)
        return {
            k: (torch.zeros_like(p) if g is None else g).detach().numpy()
            for k, p, g in zip(names, leaves, grads, strict=True)
        }

    def mc_gradients(self, spec, loss, replicates=REPLICATES, batches=BATCHES, seed=0):
        import pyro

        model, guide = spec.build(self.B, False)
        model = replicated(self.B, model, replicates, spec.nesting)
        guide = replicated(self.B, guide, replicates, spec.nesting)
        names = sorted(spec.params)
        out = []
        for b in range(batches):
            pyro.clear_param_store()
            pyro.set_rng_seed(seed * 100_003 + b)
            value = loss.differentiable_loss(model, guide)
            out.append(_flatten(self._grads(-value, names), names))
        return np.stack(out) / replicates

    @_cached_exact
    def exact_gradient(self, spec, objective="elbo", num_particles=None, bound_plates=None):
        import pyro

        from ppl_arms.testing.pyro import exact_elbo, exact_iwae

        pyro.clear_param_store()
        model, guide = spec.build(self.B, True)
        names = sorted(spec.params)
        if objective == "elbo":
            value = exact_elbo(model, guide)
        else:
            value = exact_iwae(model, guide, num_particles=num_particles, bound_plates=bound_plates)
        return _flatten(self._grads(value, names), names)


_SHARED = {}


def shared_harness(name):
    """One harness per backend and process, so exact gradients are enumerated once per problem
    for the oracle suite and the cross-backend checks together."""
    if name not in _SHARED:
        _SHARED[name] = {"numpyro": NumPyroHarness, "pyro": PyroHarness}[name]()
    return _SHARED[name]
