"""The autoencoder of ``pyro_binary_vae.py`` trained by a plain torch optimiser (Pyro quick start).

``TraceARMS_ELBO(...)(model, guide)`` is a ``torch.nn.Module`` whose forward pass returns the
differentiable loss, so ``loss.backward()`` and any ``torch.optim`` optimiser work without
``pyro.infer.SVI``.
"""

import pyro
import torch
from pyro_binary_vae import NUM_DATA, decoder, encoder, guide, make_data, model

from ppl_arms.pyro import TraceARMS_ELBO

if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny tensors: extra threads cost more than they save
    data = make_data(torch.Generator().manual_seed(0))
    pyro.set_rng_seed(1)
    elbo = TraceARMS_ELBO(num_particles=4, max_plate_nesting=1)(model, guide)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=0.02)
    losses = []
    for _ in range(3000):
        optimizer.zero_grad()
        loss = elbo(data)  # a differentiable tensor: the negated ELBO estimate
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    start, end = -sum(losses[:100]) / 100, -sum(losses[-100:]) / 100
    print(f"ELBO per data point: {start / NUM_DATA:.2f} -> {end / NUM_DATA:.2f}")
