"""A 1e6-element step of TraceARMS_ELBO in NumPyro (jitted): finite, unbiased, a few seconds."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ppl_arms.numpyro import TraceARMS_ELBO
from tests.bernoulli_normal_oracle import assert_unbiased_at_scale

SIZE = 1_000_000


def model(x):
    with numpyro.plate("data", SIZE):
        z = numpyro.sample("z", dist.Bernoulli(0.5))
        numpyro.sample("x", dist.Normal(z.astype(x.dtype), 1.0), obs=x)


def guide(x):
    logits = numpyro.param("logits", jnp.zeros(SIZE))
    with numpyro.plate("data", SIZE):
        numpyro.sample("z", dist.Bernoulli(logits=logits))


def test_one_million_element_step():
    loss = TraceARMS_ELBO(4)
    x = jax.random.normal(jax.random.key(0), (SIZE,))
    logits = 0.5 * jax.random.normal(jax.random.key(1), (SIZE,))

    @jax.jit
    def step(p, key):
        return jax.value_and_grad(lambda q: loss.loss(key, q, model, guide, x))(p)

    value, grads = step({"logits": logits}, jax.random.key(2))
    g = np.asarray(grads["logits"])
    assert np.isfinite(float(value)) and g.shape == (SIZE,) and np.all(np.isfinite(g))
    # the value is the plain estimate of the negated ELBO and the gradient is unbiased, checked
    # against the exact per-element terms within standard errors
    assert_unbiased_at_scale(float(value), g, np.asarray(logits), np.asarray(x), loss.num_particles)
    # the ARMS estimate is a sum of per-element terms: most elements get a nonzero gradient
    assert np.mean(g != 0) > 0.5
