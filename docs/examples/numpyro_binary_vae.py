"""Fit a small binary-latent autoencoder with ARMS gradients (NumPyro quick start, part 1).

Synthetic binary "images" are generated from 8 binary causes; an amortised linear encoder
q(z | x) and a linear decoder p(x | z) are fitted by SVI with ``TraceARMS_ELBO``.
"""

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import random
from numpyro.infer import SVI
from numpyro.optim import Adam

from ppl_arms.numpyro import TraceARMS_ELBO

NUM_DATA, NUM_LATENT, NUM_PIXELS = 300, 8, 32


def model(x):
    w = numpyro.param("w", lambda key: 0.1 * random.normal(key, (NUM_LATENT, NUM_PIXELS)))
    b = numpyro.param("b", jnp.zeros(NUM_PIXELS))
    with numpyro.plate("data", x.shape[0]):
        prior = dist.Bernoulli(logits=jnp.zeros(NUM_LATENT)).to_event(1)
        z = numpyro.sample("z", prior)
        numpyro.sample("x", dist.Bernoulli(logits=z @ w + b).to_event(1), obs=x)


def guide(x):
    v = numpyro.param("v", lambda key: 0.1 * random.normal(key, (NUM_PIXELS, NUM_LATENT)))
    c = numpyro.param("c", jnp.zeros(NUM_LATENT))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", dist.Bernoulli(logits=(2 * x - 1) @ v + c).to_event(1))


def make_data(key):
    """Binary data from 8 hidden binary causes through a random sparse "dictionary"."""
    k_z, k_w, k_x = random.split(key, 3)
    z = random.bernoulli(k_z, 0.3, (NUM_DATA, NUM_LATENT)).astype(jnp.float32)
    w = 4.0 * random.bernoulli(k_w, 0.25, (NUM_LATENT, NUM_PIXELS)) - 2.0
    return random.bernoulli(k_x, jax.nn.sigmoid(z @ w)).astype(jnp.float32)


if __name__ == "__main__":
    data = make_data(random.key(0))
    svi = SVI(model, guide, Adam(0.02), loss=TraceARMS_ELBO(num_particles=4))
    result = svi.run(random.key(1), 3000, data, progress_bar=False)
    start, end = -result.losses[:100].mean(), -result.losses[-100:].mean()
    print(f"ELBO per data point: {start / NUM_DATA:.2f} -> {end / NUM_DATA:.2f}")
