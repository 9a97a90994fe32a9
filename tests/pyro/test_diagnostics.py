"""gradient_variance (Pyro) against an exactly known variance, ARMS vs LOORF, sites, state."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import TraceGraph_ELBO

from ppl_arms.pyro import AutoMixedMeanField, TraceARMS_ELBO, gradient_variance
from ppl_arms.testing import assert_unbiased
from tests.numpyro.test_diagnostics import PHI, X0, reinforce_moments


def one_site_model(x):
    z = pyro.sample("z", dist.Bernoulli(0.3))
    pyro.sample("x", dist.Normal(2.0 * z - 1.0, 1.0), obs=x)


def one_site_guide(x):
    phi = pyro.param("phi", torch.tensor(PHI))
    pyro.sample("z", dist.Bernoulli(logits=phi))


@pytest.mark.slow  # statistical (about 30 s)
def test_reinforce_variance_matches_the_exact_variance():
    n, r = 4, 3000
    loss = TraceARMS_ELBO(n, estimator="reinforce", max_plate_nesting=0)
    table = gradient_variance(
        loss, one_site_model, one_site_guide, torch.tensor(X0), num_estimates=r
    )
    mean, var, mu4 = reinforce_moments(n)
    row = table["phi"]
    assert row.sites == ("z",)
    assert_unbiased((row.mean, row.variance, r), mean, what="mean gradient")
    se = math.sqrt(mu4 / r - var**2 * (r - 3) / (r * (r - 1)))
    assert abs(row.total_variance - var) < 5 * se, (row.total_variance, var, se)


def three_site_model(x):
    with pyro.plate("data", 3):
        z = pyro.sample("z", dist.Bernoulli(logits=torch.zeros(3)))
        pyro.sample("x", dist.Normal(2.0 * z - 1.0, 1.0), obs=x)


def three_site_guide(x):
    phi = pyro.param("phi", torch.tensor([0.5, -1.0, 1.5]))
    with pyro.plate("data", 3):
        pyro.sample("z", dist.Bernoulli(logits=phi))


@pytest.mark.slow  # statistical (about 30 s)
def test_arms_has_lower_variance_than_loorf():
    x = torch.tensor([0.3, -1.0, 2.0])
    total = {
        est: gradient_variance(
            TraceARMS_ELBO(4, estimator=est, max_plate_nesting=1),
            three_site_model,
            three_site_guide,
            x,
            num_estimates=1500,
        ).total_variance
        for est in ["arms", "loorf"]
    }
    assert total["arms"] < 0.7 * total["loorf"], total  # NumPyro measures 0.44 at 4000 estimates


def test_sites_state_and_host_losses():
    def model(x):
        scale = pyro.param("noise", torch.tensor(1.0), constraint=dist.constraints.positive)
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 3):
            z = pyro.sample("z", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(mu + z, scale), obs=x)

    guide = AutoMixedMeanField(model)
    x = torch.tensor([0.3, -1.0, 2.0])
    guide(x)
    before = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    table = gradient_variance(TraceARMS_ELBO(4), model, guide, x, num_estimates=10)
    assert table["noise"].sites == ()
    assert table["AutoMixedMeanField.locs.mu"].sites == ("mu",)
    assert table["AutoMixedMeanField.scales.mu"].sites == ("mu",)
    assert table["AutoMixedMeanField.logits.z"].sites == ("z",)
    assert sorted(table.by_site().names) == ["(no guide site)", "mu", "z"]
    for name, value in pyro.get_param_store().items():  # values untouched, grads reset
        torch.testing.assert_close(value.detach(), before[name])
        assert value.unconstrained().grad is None
    host = gradient_variance(
        TraceGraph_ELBO(4, vectorize_particles=True, max_plate_nesting=1),
        model,
        guide,
        x,
        num_estimates=5,
    )
    assert host["AutoMixedMeanField.logits.z"].mean.shape == (3,)

    def plain(m, g, x):
        return TraceARMS_ELBO(4).differentiable_loss(m, g, x)

    assert gradient_variance(plain, model, guide, x, num_estimates=3).num_estimates == 3
    with pytest.raises(ValueError, match="num_estimates must be >= 2"):
        gradient_variance(TraceARMS_ELBO(4), model, guide, x, num_estimates=1)
