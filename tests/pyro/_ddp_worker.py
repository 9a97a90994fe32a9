"""Pyro under ``DistributedDataParallel``: each rank a shard of the data plate (run by torchrun).

Started by ``test_ddp.py`` as ``python -m torch.distributed.run --standalone --nproc_per_node=2
tests/pyro/_ddp_worker.py MODE``, gloo backend. The loss module is ``TraceARMS_ELBO(...)(model,
guide)`` (Pyro's ``ELBOModule``, whose ``forward`` is the loss's ``differentiable_loss``) wrapped in
DDP. Rank ``r`` of ``R`` sees the data points ``r, r + R, ...`` through
``pyro.plate("data", N, subsample=idx)``, so its loss carries the subsample scale ``N / M`` and the
gradient DDP averages over ranks is an unbiased estimate of the full-data gradient.

Modes:

* ``expectation``: many DDP steps at fixed parameters; rank 0 compares the mean averaged gradient
  with the exact full-data gradient (exact enumeration, ``ppl_arms.testing.pyro.exact_elbo``)
  within standard errors.
* ``train``: a short Adam run; checks that every rank holds the same parameters afterwards and
  that the exact full-data ELBO improved.

Rank 0 prints one JSON line with the results.
"""

import json
import os
import sys

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.distributed as torch_dist
from pyro.nn import PyroModule, PyroParam
from torch.nn.parallel import DistributedDataParallel

from ppl_arms.pyro import TraceARMS_ELBO
from ppl_arms.testing import assert_unbiased
from ppl_arms.testing.pyro import exact_elbo

N, K = 4, 3
X = torch.tensor([0.4, -1.3, 2.1, 0.9], dtype=torch.float64)
Y = torch.tensor([2, 0, 1, 2])
REPLICATES = 1500
TRAIN_STEPS = 150


class Model(PyroModule):
    def __init__(self) -> None:
        super().__init__()
        self.prior_logit = PyroParam(torch.tensor(0.3))
        self.shift = PyroParam(torch.tensor(-0.2))

    def forward(self, x, y, idx):
        mu = self.shift
        with pyro.plate("data", N, subsample=idx):
            z = pyro.sample("z", dist.Bernoulli(logits=self.prior_logit))
            c = pyro.sample("c", dist.Categorical(logits=torch.zeros(K)))
            pyro.sample("x", dist.Normal(mu + 2.0 * z - 1.0, 1.0), obs=x[idx])
            pyro.sample("y", dist.Normal(c.to(x.dtype), 0.7), obs=y[idx].to(x.dtype))


class Guide(PyroModule):
    def __init__(self) -> None:
        super().__init__()
        self.phi = PyroParam(torch.tensor([0.5, -0.4, 1.1, -1.5]))
        self.psi = PyroParam(
            torch.tensor([[0.2, -0.3, 0.5]] * N) * torch.arange(1.0, N + 1)[:, None]
        )

    def forward(self, x, y, idx):
        with pyro.plate("data", N, subsample=idx):
            pyro.sample("z", dist.Bernoulli(logits=self.phi[idx]))
            pyro.sample("c", dist.Categorical(logits=self.psi[idx]))


def flat_grads(module):
    return torch.cat([p.grad.reshape(-1) for p in module.parameters()])


def exact_gradient(model, guide):
    """Exact full-data ELBO and its gradient w.r.t. the module's parameters (enumeration)."""
    full = torch.arange(N)
    params = list(model.parameters()) + list(guide.parameters())
    elbo = exact_elbo(model, guide, X, Y, full)
    grads = torch.autograd.grad(-elbo, params)
    return float(elbo.detach()), torch.cat([g.reshape(-1) for g in grads])


def main() -> None:
    mode = sys.argv[1]
    torch.set_default_dtype(torch.float64)
    torch_dist.init_process_group("gloo")
    rank, world = torch_dist.get_rank(), torch_dist.get_world_size()
    pyro.set_rng_seed(1000 + rank)
    pyro.clear_param_store()
    model, guide = Model(), Guide()
    idx = torch.arange(rank, N, world)  # this rank's shard of the data plate
    guide(X, Y, idx)  # materialise the PyroParams before DDP registers them
    model(X, Y, idx)
    loss_module = TraceARMS_ELBO(4, max_plate_nesting=1)(model, guide)
    ddp = DistributedDataParallel(loss_module)
    report = {"world": world, "shard": idx.tolist()}
    if mode == "expectation":
        grads = []
        for _ in range(REPLICATES):
            ddp.zero_grad()
            ddp(X, Y, idx).backward()  # DDP averages the gradients over ranks
            grads.append(flat_grads(loss_module).clone())
        grads = torch.stack(grads).numpy()
        if rank == 0:
            _, exact = exact_gradient(model, guide)
            check = assert_unbiased(grads, exact.numpy(), what="DDP gradient")
            report.update(max_z=check.max_z, replicates=REPLICATES, exact=exact.tolist())
    else:
        before, _ = exact_gradient(model, guide) if rank == 0 else (None, None)
        optimizer = torch.optim.Adam(ddp.parameters(), lr=0.05)
        for _ in range(TRAIN_STEPS):
            optimizer.zero_grad()
            ddp(X, Y, idx).backward()
            optimizer.step()
        vector = torch.nn.utils.parameters_to_vector(loss_module.parameters()).detach()
        gathered = [torch.zeros_like(vector) for _ in range(world)]
        torch_dist.all_gather(gathered, vector)
        same = all(torch.equal(gathered[0], g) for g in gathered)
        if rank == 0:
            after, _ = exact_gradient(model, guide)
            report.update(elbo_before=before, elbo_after=after, same_parameters=same)
    if rank == 0:
        print(json.dumps(report))
    torch_dist.barrier()
    torch_dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    np.seterr(all="ignore")
    main()
