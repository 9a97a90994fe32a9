"""Fit a small binary-latent autoencoder with ARMS gradients (Pyro quick start, part 1).

Synthetic binary "images" are generated from 8 binary causes; an amortised encoder q(z | x) and a
decoder p(x | z), both ``torch.nn.Module`` objects registered with ``pyro.module``, are fitted by
``pyro.infer.SVI`` with ``TraceARMS_ELBO``.
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI
from pyro.optim import Adam
from torch import nn

from ppl_arms.pyro import TraceARMS_ELBO

NUM_DATA, NUM_LATENT, NUM_PIXELS = 300, 8, 32


class Encoder(nn.Module):
    """Logits of q(z | x): one linear layer on the pixels mapped to {-1, 1}."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(NUM_PIXELS, NUM_LATENT)

    def forward(self, x):
        return self.linear(2 * x - 1)


pyro.set_rng_seed(0)  # reproducible initial weights
encoder, decoder = Encoder(), nn.Linear(NUM_LATENT, NUM_PIXELS)


def model(x):
    pyro.module("decoder", decoder)
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Bernoulli(logits=torch.zeros(NUM_LATENT)).to_event(1))
        pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x)


def guide(x):
    pyro.module("encoder", encoder)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Bernoulli(logits=encoder(x)).to_event(1))


def make_data(generator):
    """Binary data from 8 hidden binary causes through a random sparse "dictionary"."""
    z = torch.bernoulli(torch.full((NUM_DATA, NUM_LATENT), 0.3), generator=generator)
    w = 4.0 * torch.bernoulli(torch.full((NUM_LATENT, NUM_PIXELS), 0.25), generator=generator) - 2
    return torch.bernoulli(torch.sigmoid(z @ w), generator=generator)


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny tensors: extra threads cost more than they save
    data = make_data(torch.Generator().manual_seed(0))
    pyro.set_rng_seed(1)
    svi = SVI(
        model, guide, Adam({"lr": 0.02}), loss=TraceARMS_ELBO(num_particles=4, max_plate_nesting=1)
    )
    losses = [svi.step(data) for _ in range(3000)]
    start, end = -sum(losses[:100]) / 100, -sum(losses[-100:]) / 100
    print(f"ELBO per data point: {start / NUM_DATA:.2f} -> {end / NUM_DATA:.2f}")
