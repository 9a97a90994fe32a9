"""Pyro adapter: entry points, nn.Module route, PyroModule, constraints, Predictive, bad inputs."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Predictive
from pyro.nn import PyroModule, PyroParam
from torch.distributions import constraints

from ppl_arms.pyro import TraceARMS_ELBO, TraceARMS_IWAE, TraceGraphARMS_ELBO, config_estimator
from ppl_arms.testing import assert_unbiased

LOSSES = [
    lambda: TraceARMS_ELBO(4),
    lambda: TraceGraphARMS_ELBO(4),
    lambda: TraceARMS_IWAE(3),
    lambda: TraceARMS_IWAE(3, estimator="vimco"),
]
IDS = ["elbo", "tracegraph", "iwae-arms", "iwae-vimco"]

X = torch.tensor([0.3, -1.0, 2.0])


def model(x):
    with pyro.plate("data", 3):
        z = pyro.sample("z", dist.Bernoulli(logits=torch.zeros(3)))
        pyro.sample("x", dist.Normal(2.0 * z - 1.0, 1.0), obs=x)


def guide(x):
    phi = pyro.param("phi", torch.tensor([0.5, -1.0, 1.5]))
    with pyro.plate("data", 3):
        pyro.sample("z", dist.Bernoulli(logits=phi))


@pytest.mark.parametrize("make", LOSSES, ids=IDS)
def test_three_entry_points_agree(make):
    loss = make()
    values, grads = [], []
    for method in ["loss", "loss_and_grads", "differentiable_loss"]:
        pyro.clear_param_store()
        pyro.set_rng_seed(11)
        out = getattr(loss, method)(model, guide, X)
        phi = pyro.param("phi").unconstrained()
        if method == "differentiable_loss":
            (g,) = torch.autograd.grad(out, [phi])
            out = out.item()
        elif method == "loss_and_grads":
            g = phi.grad.clone()
        else:
            g = None
        values.append(out)
        grads.append(g)
    assert values[0] == pytest.approx(values[1], rel=1e-12) == pytest.approx(values[2], rel=1e-12)
    torch.testing.assert_close(grads[1], grads[2], rtol=1e-12, atol=1e-14)
    assert isinstance(values[0], float)


def test_elbo_module_route():
    """elbo(model, guide) is a torch.nn.Module: plain torch optimisers work (Pyro's own
    TraceGraph_ELBO has no differentiable_loss, so this route fails there)."""

    class Model(PyroModule):
        def forward(self, x):
            model(x)

    class Guide(PyroModule):
        def __init__(self):
            super().__init__()
            self.phi = PyroParam(torch.zeros(3))

        def forward(self, x):
            with pyro.plate("data", 3):
                pyro.sample("z", dist.Bernoulli(logits=self.phi))

    m, g = Model(), Guide()
    module = TraceARMS_ELBO(4)(m, g)
    optim = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(600):
        optim.zero_grad()
        module(X).backward()
        optim.step()
    lik1 = dist.Normal(1.0, 1.0).log_prob(X)
    lik0 = dist.Normal(-1.0, 1.0).log_prob(X)
    torch.testing.assert_close(
        torch.sigmoid(g.phi.detach()), torch.sigmoid(lik1 - lik0), atol=0.05, rtol=0
    )


def test_constrained_params_and_predictive():
    """A probs-parameterised guide with a constrained pyro.param fits the exact posterior; the
    guide (marked with config_estimator) then works in Predictive."""

    def probs_guide(x):
        p = pyro.param("p", torch.full((3,), 0.5), constraint=constraints.unit_interval)
        with pyro.plate("data", 3):
            pyro.sample("z", dist.Bernoulli(probs=p))

    marked = config_estimator(probs_guide)
    svi = SVI(model, marked, pyro.optim.Adam({"lr": 0.05}), loss=TraceARMS_ELBO(4))
    for _ in range(1000):
        svi.step(X)
    lik1 = dist.Normal(1.0, 1.0).log_prob(X)
    lik0 = dist.Normal(-1.0, 1.0).log_prob(X)
    torch.testing.assert_close(
        pyro.param("p").detach(), torch.sigmoid(lik1 - lik0), atol=0.04, rtol=0
    )
    samples = Predictive(model, guide=marked, num_samples=50)(None)
    assert samples["z"].shape == (50, 3) and samples["x"].shape == (50, 3)


@pytest.mark.parametrize("make", LOSSES, ids=IDS)
def test_float32_and_explicit_nesting(make):
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        loss = make()
        loss.max_plate_nesting = 2  # the data plate plus the particle plate
        x32 = X.float()
        pyro.clear_param_store()
        value = loss.loss_and_grads(model, guide, x32)
        assert np.isfinite(value)
        assert pyro.param("phi").dtype == torch.float32
        assert torch.isfinite(pyro.param("phi").unconstrained().grad).all()
    finally:
        torch.set_default_dtype(old)


def test_max_plate_nesting_is_guessed():
    loss = TraceARMS_ELBO(4)
    assert loss.max_plate_nesting == float("inf")
    loss.loss(model, guide, X)
    assert loss.max_plate_nesting == 2


def test_one_hot_categorical_is_unbiased():
    """OneHotCategorical (Pyro only) against the enumeration oracle; 64 batches of 256 replicates
    vectorised by an outer plate (see tests/adapters/harness.py)."""
    from ppl_arms.testing.pyro import exact_elbo

    x = torch.tensor([0.4, -1.5])
    mu = torch.tensor([-1.0, 0.5, 2.0])

    def m():
        with pyro.plate("data", 2):
            z = pyro.sample("z", dist.OneHotCategorical(logits=torch.zeros(3)))
            pyro.sample("x", dist.Normal((z * mu).sum(-1), 1.0), obs=x)

    def g():
        phi = pyro.param("phi", torch.tensor([[1.5, -0.5, 0.0], [0.0, 2.0, -1.0]]))
        with pyro.plate("data", 2):
            pyro.sample("z", dist.OneHotCategorical(logits=phi))

    def replicated(fn, size=256):
        def wrapped():
            with pyro.plate("_replicates", size, dim=-2):
                fn()

        return wrapped

    pyro.clear_param_store()
    (exact,) = torch.autograd.grad(exact_elbo(m, g), [pyro.param("phi").unconstrained()])
    loss = TraceARMS_ELBO(4, max_plate_nesting=2)
    grads = []
    for seed in range(64):
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        value = loss.differentiable_loss(replicated(m), replicated(g))
        (grad,) = torch.autograd.grad(-value, [pyro.param("phi").unconstrained()])
        grads.append(grad.reshape(-1).numpy() / 256)
    assert_unbiased(np.stack(grads), exact.reshape(-1).numpy(), z_max=5.0)


# ---------------------------------------------------------------------------------- bad inputs


def _run(loss, m=model, g=guide):
    pyro.clear_param_store()
    return loss.loss(m, g, X)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="num_particles must be >= 2"):
        TraceARMS_ELBO(1)
    with pytest.raises(ValueError, match="even num_particles"):
        TraceGraphARMS_ELBO(5, estimator="disarm")
    with pytest.raises(ValueError, match="unknown estimator 'armz'; valid choices are 'arms'"):
        TraceARMS_ELBO(4, estimator="armz")
    with pytest.raises(ValueError, match="unknown IWAE estimator"):
        TraceARMS_IWAE(4, estimator="reinforce")
    with pytest.raises(ValueError, match="vectorize_particles=True"):
        TraceARMS_ELBO(4, vectorize_particles=False)


def test_infer_estimator_on_a_continuous_site():
    def bad_guide(x):
        pyro.sample("y", dist.Normal(0.0, 1.0), infer={"estimator": "arms"})
        guide(x)

    def bad_model(x):
        pyro.sample("y", dist.Normal(0.0, 1.0))
        model(x)

    with pytest.raises(ValueError, match=r"site 'y'.*reparameterised"):
        _run(TraceARMS_ELBO(4), bad_model, bad_guide)


def test_enumerated_and_unknown_and_uncovered_sites():
    enumerated = poutine.infer_config(
        guide, lambda msg: {"enumerate": "parallel"} if msg["name"] == "z" else {}
    )
    with pytest.raises(ValueError, match="site 'z' is marked for enumeration"):
        _run(TraceARMS_ELBO(4, max_plate_nesting=1), model, enumerated)
    bogus = poutine.infer_config(
        guide, lambda msg: {"estimator": "bogus"} if msg["name"] == "z" else {}
    )
    with pytest.raises(ValueError, match="site 'z': unknown estimator 'bogus'"):
        _run(TraceARMS_ELBO(4, max_plate_nesting=1), model, bogus)

    def bigger_model(x):
        pyro.sample("extra", dist.Bernoulli(logits=torch.tensor(0.0)))
        model(x)

    with pytest.raises(ValueError, match="model site 'extra' is a discrete latent variable"):
        _run(TraceARMS_ELBO(4, max_plate_nesting=1), bigger_model, guide)


def test_disarm_at_a_categorical_site_and_vimco_overrides():
    def cat_model(x):
        pyro.sample("c", dist.Categorical(logits=torch.zeros(3)))

    def cat_guide(x):
        pyro.sample("c", dist.Categorical(logits=pyro.param("psi", torch.zeros(3))))

    with pytest.raises(ValueError, match="site 'c': estimator 'disarm' does not apply"):
        _run(TraceARMS_ELBO(4, estimator="disarm", max_plate_nesting=0), cat_model, cat_guide)
    with pytest.raises(ValueError, match=r"site 'z' asks for.*estimator='vimco'"):
        _run(
            TraceARMS_IWAE(3, estimator="vimco", max_plate_nesting=1),
            model,
            config_estimator(guide),
        )


def test_too_small_max_plate_nesting_is_explained():
    with pytest.raises(ValueError, match="max_plate_nesting"):
        _run(TraceARMS_ELBO(4, max_plate_nesting=0))


def test_config_estimator_decorator_and_site_selection():
    @config_estimator(estimator="loorf", sites=["z"])
    def marked(x):
        guide(x)

    tr = poutine.trace(marked).get_trace(X)
    assert tr.nodes["z"]["infer"] == {"estimator": "loorf"}


def test_model_only_observation_plate_is_fine():
    """A plate that only the model has (around observations) is not an uncovered latent."""

    def coin_model(flips):
        fair = pyro.sample("fair", dist.Bernoulli(0.5))
        p = 0.5 * fair + 0.9 * (1 - fair)
        with pyro.plate("tosses", len(flips)):
            pyro.sample("flips", dist.Bernoulli(p), obs=flips)

    def coin_guide(flips):
        q = pyro.param("q", torch.tensor(0.5), constraint=constraints.unit_interval)
        pyro.sample("fair", dist.Bernoulli(q))

    flips = torch.tensor([1.0, 1, 0, 1, 1, 1, 0, 1])
    for loss in [TraceARMS_ELBO(4), TraceGraphARMS_ELBO(4), TraceARMS_IWAE(3)]:
        pyro.clear_param_store()
        assert np.isfinite(loss.loss(coin_model, coin_guide, flips))
