"""A Bayesian Gaussian mixture with discrete assignments in the guide (Pyro quick start, part 2).

The cluster locations get a reparameterised Normal guide (pathwise gradients) and every data point
a categorical assignment ``z`` (CARMS gradients: ``estimator="arms"`` means CARMS at categorical
sites). The data plate is subsampled (mini-batches of 50 of the 150 points); nothing is enumerated.
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI
from pyro.ops.indexing import Vindex
from pyro.optim import Adam
from torch.distributions import constraints

from ppl_arms.pyro import TraceARMS_ELBO

NUM_CLUSTERS, POINTS_PER_CLUSTER, BATCH = 3, 50, 50
TRUE_LOCS = torch.tensor([-4.0, 0.0, 4.0])


def model(x):
    locs = pyro.sample("locs", dist.Normal(0.0, 10.0).expand([NUM_CLUSTERS]).to_event(1))
    with pyro.plate("data", len(x), subsample_size=BATCH) as idx:
        z = pyro.sample("z", dist.Categorical(logits=torch.zeros(NUM_CLUSTERS)))
        pyro.sample("x", dist.Normal(Vindex(locs)[..., z], 1.0), obs=x[idx])


def guide(x):
    loc = pyro.param("loc", torch.linspace(-1.0, 1.0, NUM_CLUSTERS))
    scale = pyro.param("scale", torch.ones(NUM_CLUSTERS), constraint=constraints.positive)
    pyro.sample("locs", dist.Normal(loc, scale).to_event(1))
    logits = pyro.param("assignment_logits", torch.zeros(len(x), NUM_CLUSTERS))
    with pyro.plate("data", len(x), subsample_size=BATCH) as idx:
        pyro.sample("z", dist.Categorical(logits=logits[idx]))


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny tensors: extra threads cost more than they save
    labels = torch.arange(NUM_CLUSTERS).repeat_interleave(POINTS_PER_CLUSTER)
    data = TRUE_LOCS[labels] + torch.randn(labels.shape, generator=torch.Generator().manual_seed(0))
    pyro.set_rng_seed(1)
    loss = TraceARMS_ELBO(num_particles=4, max_plate_nesting=1)
    svi = SVI(model, guide, Adam({"lr": 0.05}), loss=loss)
    for _ in range(3000):
        svi.step(data)
    loc = pyro.param("loc").detach()
    assigned_loc = loc[pyro.param("assignment_logits").argmax(-1)]
    correct = (assigned_loc - TRUE_LOCS[labels]).abs() < 1.0
    print("posterior mean locations:", ", ".join(f"{v:.2f}" for v in loc.sort().values.tolist()))
    print(f"points assigned to their true cluster: {correct.float().mean():.0%}")
