"""Pyro AutoMixedMeanField: parameters, plates, subsampling, exactness, summaries, composition."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Predictive
from pyro.infer.autoguide import AutoGuideList, AutoNormal
from pyro.infer.autoguide.initialization import init_to_value

from ppl_arms.pyro import AutoMixedMeanField, TraceARMS_ELBO, gradient_variance
from ppl_arms.testing import assert_unbiased
from ppl_arms.testing.pyro import exact_elbo

X = torch.tensor([0.3, -1.0, 2.0, 1.5, -0.5])


def mixed_model(x, subsample_size=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 3.0))
    s = pyro.sample("s", dist.LogNormal(0.0, 1.0))
    w = pyro.sample("w", dist.Dirichlet(torch.ones(3)))
    flags = pyro.sample("flags", dist.Bernoulli(0.3).expand([2]).to_event(1))
    with pyro.plate("data", 5, subsample_size=subsample_size) as idx:
        z = pyro.sample("z", dist.Bernoulli(0.5))
        c = pyro.sample("c", dist.Categorical(w))
        o = pyro.sample("o", dist.OneHotCategorical(torch.ones(2) / 2))
        shift = 0.1 * c + 0.2 * flags.sum(-1) + 0.3 * o[..., 0]
        pyro.sample("x", dist.Normal(mu + 2.0 * z - 1.0 + shift, s), obs=x[idx])


def _params(guide):
    return {k: v for k, v in guide.named_parameters()}


def test_every_latent_site_gets_its_parameters():
    guide = AutoMixedMeanField(mixed_model)
    tr = poutine.trace(guide).get_trace(X)
    shapes = {k: tuple(v.shape) for k, v in pyro.get_param_store().items()}
    prefix = "AutoMixedMeanField"
    assert shapes == {
        f"{prefix}.locs.mu": (),
        f"{prefix}.scales.mu": (),
        f"{prefix}.locs.s": (),
        f"{prefix}.scales.s": (),
        f"{prefix}.locs.w": (2,),  # the simplex's unconstrained space, as in AutoNormal
        f"{prefix}.scales.w": (2,),
        f"{prefix}.logits.flags": (2,),
        f"{prefix}.logits.z": (5,),
        f"{prefix}.logits.c": (5, 3),
        f"{prefix}.logits.o": (5, 2),
    }
    for name, kind in [
        ("z", dist.Bernoulli),
        ("c", dist.Categorical),
        ("o", dist.OneHotCategorical),
    ]:
        fn = tr.nodes[name]["fn"]
        assert not fn.has_rsample
        assert isinstance(fn, kind), type(fn)
    assert tr.nodes["z"]["value"].dtype == torch.float64  # Pyro's Bernoulli values are floats
    assert tr.nodes["c"]["value"].dtype == torch.int64
    assert tr.nodes["o"]["value"].shape == (5, 2)
    assert tr.nodes["flags"]["fn"].event_shape == (2,)


def test_continuous_part_matches_autonormal():
    def continuous(x):
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        scale = pyro.sample("scale", dist.HalfNormal(1.0))
        with pyro.plate("data", 5):
            pyro.sample("x", dist.Normal(loc, scale), obs=x)

    init = init_to_value(values={"loc": torch.tensor(0.5), "scale": torch.tensor(2.0)})
    ours = AutoMixedMeanField(continuous, init_loc_fn=init, init_scale=0.2)
    host = AutoNormal(continuous, init_loc_fn=init, init_scale=0.2)
    ours(X)
    host(X)
    for name in ["loc", "scale"]:
        torch.testing.assert_close(getattr(ours.locs, name), getattr(host.locs, name))
        torch.testing.assert_close(getattr(ours.scales, name), getattr(host.scales, name))
    torch.manual_seed(3)
    a = poutine.trace(ours).get_trace(X)
    torch.manual_seed(3)
    b = poutine.trace(host).get_trace(X)
    a.compute_log_prob()
    b.compute_log_prob()
    for name in ["loc", "scale"]:
        torch.testing.assert_close(a.nodes[name]["value"], b.nodes[name]["value"])
        torch.testing.assert_close(a.nodes[name]["log_prob"], b.nodes[name]["log_prob"])


def test_subsampling_params_are_full_size_and_only_the_minibatch_moves():
    def plates(x, subsample_size=None):
        return pyro.plate("data", 5, subsample_size=subsample_size)

    guide = AutoMixedMeanField(mixed_model, create_plates=plates)
    guide(X, 2)
    before = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    assert before["AutoMixedMeanField.logits.c"].shape == (5, 3)
    svi = SVI(mixed_model, guide, pyro.optim.SGD({"lr": 0.1}), loss=TraceARMS_ELBO(4))
    svi.step(X, 2)
    after = dict(pyro.get_param_store().items())
    moved = {
        name: np.flatnonzero(
            (
                before[f"AutoMixedMeanField.logits.{name}"]
                != after[f"AutoMixedMeanField.logits.{name}"]
            )
            .reshape(5, -1)
            .any(-1)
            .numpy()
        )
        for name in ["z", "c", "o"]
    }
    assert len(moved["z"]) == 2
    np.testing.assert_array_equal(moved["z"], moved["c"])
    np.testing.assert_array_equal(moved["z"], moved["o"])


def test_nested_plates_and_batch_dims():
    def nested():
        with pyro.plate("rows", 3, dim=-2), pyro.plate("cols", 4, dim=-1):
            pyro.sample("b", dist.Bernoulli(0.5))
        pyro.sample("g", dist.Categorical(logits=torch.zeros(2, 5)).to_event(1))

    guide = AutoMixedMeanField(nested)
    tr = poutine.trace(guide).get_trace()
    assert guide.logits.b.shape == (3, 4)
    assert guide.logits.g.shape == (2, 5)
    assert tr.nodes["g"]["value"].shape == (2,)
    assert tr.nodes["g"]["fn"].event_shape == (2,)


def discrete_model(x):
    c = pyro.sample("c", dist.Categorical(torch.tensor([0.2, 0.5, 0.3])))
    with pyro.plate("data", 3):
        z = pyro.sample("z", dist.Bernoulli(0.4))
        pyro.sample("x", dist.Normal(2.0 * z - 1.0 + 0.5 * c, 1.0), obs=x)


def _set_logits(guide):
    guide(X[:3])
    with torch.no_grad():
        guide.logits.c.copy_(torch.tensor([0.3, -0.4, 0.8]))
        guide.logits.z.copy_(torch.tensor([0.5, -1.0, 1.5]))


@pytest.mark.slow  # statistical (about 40 s)
def test_arms_gradients_through_the_autoguide_are_unbiased():
    """Mean of 2000 estimates = exact gradient (enumeration oracle) at non-trivial logits."""
    guide = AutoMixedMeanField(discrete_model)
    _set_logits(guide)
    value = exact_elbo(discrete_model, guide, X[:3])
    names = ["AutoMixedMeanField.logits.c", "AutoMixedMeanField.logits.z"]
    leaves = [pyro.param(n).unconstrained() for n in names]
    exact = torch.autograd.grad(-value, leaves)
    table = gradient_variance(TraceARMS_ELBO(4), discrete_model, guide, X[:3], num_estimates=2000)
    for name, g in zip(names, exact, strict=True):
        row = table[name]
        assert_unbiased((row.mean, row.variance, row.num_estimates), g.numpy(), what=name)


@pytest.mark.slow  # trains to convergence (about 40 s)
def test_fit_reaches_the_exact_posterior_when_it_factorises():
    y = torch.tensor([1.2, 0.4, 2.0])

    def model(x, y):
        with pyro.plate("data", 3):
            z = pyro.sample("z", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(2.0 * z - 1.0, 1.0), obs=x)
        m = pyro.sample("m", dist.Normal(0.0, 1.0))
        with pyro.plate("obs", 3):
            pyro.sample("y", dist.Normal(m, 1.0), obs=y)

    guide = AutoMixedMeanField(model)
    optim = pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.999})
    svi = SVI(model, guide, optim, loss=TraceARMS_ELBO(4))
    for _ in range(2500):
        svi.step(X[:3], y)
    fitted = torch.sigmoid(guide.logits.z.detach())
    exact = torch.sigmoid(
        dist.Normal(1.0, 1.0).log_prob(X[:3]) - dist.Normal(-1.0, 1.0).log_prob(X[:3])
    )
    torch.testing.assert_close(fitted, exact, atol=0.03, rtol=0)
    med = guide.median()["m"]
    torch.testing.assert_close(med, y.sum() / 4, atol=0.05, rtol=0)
    torch.testing.assert_close(guide.scales.m.detach(), torch.tensor(0.5), atol=0.05, rtol=0)


def test_median_is_the_mode_and_quantiles_invert_the_cdf():
    def model():
        with pyro.plate("data", 3):
            pyro.sample("z", dist.Bernoulli(0.4))
            pyro.sample("c", dist.Categorical(torch.ones(3) / 3))
            pyro.sample("o", dist.OneHotCategorical(torch.ones(3) / 3))

    guide = AutoMixedMeanField(model)
    guide()
    p = torch.tensor([0.3, 0.5, 0.9])
    with torch.no_grad():
        guide.logits.z.copy_(torch.log(p / (1 - p)))
        guide.logits.c.copy_(torch.log(torch.tensor([[0.2, 0.5, 0.3]] * 3)))
        guide.logits.o.copy_(torch.log(torch.tensor([[0.2, 0.5, 0.3]] * 3)))
    med = guide.median()
    torch.testing.assert_close(med["z"], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(med["c"], torch.tensor([1, 1, 1]))
    torch.testing.assert_close(med["o"], torch.tensor([[0.0, 1.0, 0.0]] * 3))
    q = guide.quantiles([0.1, 0.69, 0.71, 0.95])
    torch.testing.assert_close(q["z"], torch.tensor([[0.0, 0, 0], [0, 1, 1], [1, 1, 1], [1, 1, 1]]))
    torch.testing.assert_close(q["c"][:, 0], torch.tensor([0, 1, 2, 2]))
    torch.testing.assert_close(q["o"][:, 0].argmax(-1), torch.tensor([0, 1, 2, 2]))


def test_predictive_uses_the_guide():
    guide = AutoMixedMeanField(discrete_model)
    _set_logits(guide)
    for parallel in [False, True]:
        out = Predictive(discrete_model, guide=guide, num_samples=2000, parallel=parallel)(X[:3])
        assert out["x"].shape == (2000, 3)
        expected = torch.sigmoid(torch.tensor([0.5, -1.0, 1.5]))
        torch.testing.assert_close(out["z"].mean(0), expected, atol=0.05, rtol=0)


def test_init_logits_from_the_prior():
    guide = AutoMixedMeanField(discrete_model, init_logits="prior")
    guide(X[:3])
    torch.testing.assert_close(guide.logits.z.detach(), torch.full((3,), np.log(0.4 / 0.6)))
    torch.testing.assert_close(guide.logits.c.detach().softmax(-1), torch.tensor([0.2, 0.5, 0.3]))
    with pytest.raises(ValueError, match="unknown init_logits 'zeros'"):
        AutoMixedMeanField(discrete_model, init_logits="zeros")


def poisson_model(x):
    k = pyro.sample("k", dist.Poisson(3.0))
    mu = pyro.sample("mu", dist.Normal(0.0, 3.0))
    with pyro.plate("data", 3):
        z = pyro.sample("z", dist.Bernoulli(0.5))
        pyro.sample("x", dist.Normal(mu + z + 0.1 * k, 1.0), obs=x)


def test_unsupported_discrete_site_names_the_site_and_the_fix():
    with pytest.raises(ValueError, match=r"site 'k'.*not Poisson.*Write a guide for site 'k'.*"):
        AutoMixedMeanField(poisson_model)(X[:3])


def test_composes_with_autoguidelist_and_block():
    def guide_k(x):
        rate = pyro.param("rate", torch.tensor(3.0), constraint=dist.constraints.positive)
        return {"k": pyro.sample("k", dist.Poisson(rate))}

    guide = AutoGuideList(poisson_model)
    guide.append(AutoMixedMeanField(poutine.block(poisson_model, hide=["k"])))
    guide.append(guide_k)
    svi = SVI(poisson_model, guide, pyro.optim.Adam({"lr": 0.05}), loss=TraceARMS_ELBO(4))
    losses = [svi.step(X[:3]) for _ in range(20)]
    assert np.isfinite(losses).all()
    assert set(guide[0].median()) == {"mu", "z"}
    assert {"rate", "AutoGuideList.0.logits.z"} <= set(pyro.get_param_store())


def test_summaries_before_the_first_call_fail_clearly():
    with pytest.raises(RuntimeError, match="has not seen the model yet"):
        AutoMixedMeanField(discrete_model).median()


def test_bad_init_scale():
    with pytest.raises(ValueError, match="init_scale must be a positive float"):
        AutoMixedMeanField(discrete_model, init_scale=0)
