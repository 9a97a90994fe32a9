"""Pyro: the gradient of the learning signal with respect to discrete sampled values."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from ppl_arms.pyro.sample_gradient import linear_log_prob, sample_gradients

P, N, D, M = 3, 4, 2, 3
SIGMA = 0.7
PARTICLES = "num_particles_vectorized"


def particles(fn, nesting=2):
    """The losses' particle plate: size P on the left of the model's plates."""
    return pyro.plate(PARTICLES, P, dim=-nesting)(fn)


def guide_trace(guide, *args):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return poutine.trace(particles(guide)).get_trace(*args)


@pytest.fixture(scope="module")
def linear_gaussian():
    g = torch.Generator().manual_seed(1)
    return {
        "W": torch.randn(M, D, generator=g),
        "b": torch.randn(M, generator=g),
        "a": torch.randn(D, generator=g),  # prior logits
        "phi": torch.randn(N, D, generator=g),  # guide logits
        "x": torch.randn(N, M, generator=g),
    }


def make_linear(c, subsample_size=None, mask=None):
    """z_n ~ Bern(a)^D, x_n ~ N(W z_n + b, sigma^2 I); guide z_n ~ Bern(phi_n)."""

    def model():
        with pyro.plate("data", N, subsample_size=subsample_size, dim=-1) as idx:
            z = pyro.sample("z", dist.Bernoulli(logits=c["a"]).to_event(1))
            mean = z @ c["W"].T + c["b"]
            with poutine.mask(mask=True if mask is None else mask[idx]):
                pyro.sample("x", dist.Normal(mean, SIGMA).to_event(1), obs=c["x"][idx])

    def guide():
        with pyro.plate("data", N, subsample_size=subsample_size, dim=-1) as idx:
            pyro.sample("z", dist.Bernoulli(logits=c["phi"][idx]).to_event(1))

    return model, guide


def linear_analytic(c, z, idx, scale=1.0, mask=None):
    """d f / d z_n = W^T (x_n - W z_n - b) / sigma^2 + a - phi_n, times the plate's scale."""
    resid = c["x"][idx] - z @ c["W"].T - c["b"]
    lik = resid @ c["W"] / SIGMA**2
    if mask is not None:
        lik = lik * mask[idx].unsqueeze(-1)
    return scale * (lik + c["a"] - c["phi"][idx])


def run(model, guide, tr, sites, nesting=2):
    return sample_gradients(particles(model, nesting), particles(guide, nesting), (), {}, tr, sites)


def test_bernoulli_matches_analytic(linear_gaussian):
    c = linear_gaussian
    model, guide = make_linear(c)
    tr = guide_trace(guide)
    out = run(model, guide, tr, ["z"])
    z = tr.nodes["z"]["value"]
    assert out.df_dz["z"].shape == (P, N, D)
    assert not out.df_dz["z"].requires_grad
    torch.testing.assert_close(out.df_dz["z"], linear_analytic(c, z, torch.arange(N)))
    assert out.nondifferentiable == frozenset()


def test_subsampling_scale_uses_the_traced_indices(linear_gaussian):
    c = linear_gaussian
    model, guide = make_linear(c, subsample_size=2)
    tr = guide_trace(guide)
    idx = tr.nodes["data"]["value"]
    out = run(model, guide, tr, ["z"])
    z = tr.nodes["z"]["value"]
    assert out.df_dz["z"].shape == (P, 2, D)
    torch.testing.assert_close(out.df_dz["z"], linear_analytic(c, z, idx, scale=N / 2))


def test_mask_drops_masked_terms(linear_gaussian):
    c = linear_gaussian
    mask = torch.tensor([True, False, True, False])
    model, guide = make_linear(c, mask=mask)
    tr = guide_trace(guide)
    out = run(model, guide, tr, ["z"])
    expected = linear_analytic(c, tr.nodes["z"]["value"], torch.arange(N), mask=mask)
    torch.testing.assert_close(out.df_dz["z"], expected)


def test_masked_distribution_own_terms():
    """``.mask()`` on the site's own distribution removes its own term's gradient too."""
    m = torch.tensor([True, False, True])
    a, phi = torch.tensor([0.2, -0.4, 1.0]), torch.tensor([0.5, 0.1, -0.3])

    def model():
        with pyro.plate("d", 3):
            pyro.sample("z", dist.Bernoulli(logits=a).mask(m))

    def guide():
        with pyro.plate("d", 3):
            pyro.sample("z", dist.Bernoulli(logits=phi))

    tr = guide_trace(guide)
    out = run(model, guide, tr, ["z"])
    torch.testing.assert_close(out.df_dz["z"], (torch.where(m, a, 0.0) - phi).expand(P, 3))
    assert out.nondifferentiable == {"z"}  # nothing but its own terms uses z


def smooth_one_hot(V, u, a, phi, x):
    """z_n ~ OneHot(a), x_n ~ N(tanh(V z_n) . u, sigma^2); guide z_n ~ OneHot(phi_n)."""

    def model():
        with pyro.plate("data", N, dim=-1):
            z = pyro.sample("z", dist.OneHotCategorical(logits=a))
            pyro.sample("x", dist.Normal(torch.tanh(z @ V.T) @ u, SIGMA), obs=x)

    def guide():
        with pyro.plate("data", N, dim=-1):
            pyro.sample("z", dist.OneHotCategorical(logits=phi))

    def f(v):  # the signal's value-dependent part, linear extension of the own terms
        lik = dist.Normal(torch.tanh(v @ V.T) @ u, SIGMA).log_prob(x).sum()
        return lik + (v * a.log_softmax(-1)).sum() - (v * phi.log_softmax(-1)).sum()

    return model, guide, f


def test_one_hot_matches_finite_differences():
    g = torch.Generator().manual_seed(2)
    K, H = 4, 3
    V = torch.randn(H, K, generator=g, dtype=torch.float64)
    u = torch.randn(H, generator=g, dtype=torch.float64)
    a = torch.randn(K, generator=g, dtype=torch.float64)
    phi = torch.randn(N, K, generator=g, dtype=torch.float64)
    x = torch.randn(N, generator=g, dtype=torch.float64)
    model, guide, f = smooth_one_hot(V, u, a, phi, x)
    tr = guide_trace(guide)
    out = run(model, guide, tr, ["z"])
    v = tr.nodes["z"]["value"]
    assert out.df_dz["z"].shape == (P, N, K)
    h = 1e-6
    fd = torch.zeros_like(v)
    for idx in torch.cartesian_prod(torch.arange(P), torch.arange(N), torch.arange(K)):
        e = torch.zeros_like(v)
        e[tuple(idx)] = h
        fd[tuple(idx)] = (f(v[idx[0]] + e[idx[0]]) - f(v[idx[0]] - e[idx[0]])) / (2 * h)
    torch.testing.assert_close(out.df_dz["z"], fd, rtol=1e-6, atol=1e-6)


def test_two_site_chain_is_the_downstream_cost():
    """z1 -> z2 -> x: each site's gradient is that of its downstream terms (the TraceGraph cost)."""
    a1, a2, e, w, x = 0.3, -0.2, 1.5, 0.8, torch.tensor(0.4)
    phi1, c2, d2 = torch.tensor([0.1, -0.6]), -0.3, 0.9

    def model():
        with pyro.plate("d", 2):
            z1 = pyro.sample("z1", dist.Bernoulli(logits=torch.tensor(a1)))
            z2 = pyro.sample("z2", dist.Bernoulli(logits=a2 + e * z1))
            pyro.sample("x", dist.Normal(w * z2, SIGMA), obs=x)

    def guide():
        with pyro.plate("d", 2):
            z1 = pyro.sample("z1", dist.Bernoulli(logits=phi1))
            pyro.sample("z2", dist.Bernoulli(logits=c2 + d2 * z1))

    tr = guide_trace(guide)
    out = run(model, guide, tr, ["z1", "z2"])
    z1, z2 = tr.nodes["z1"]["value"], tr.nodes["z2"]["value"]
    # downstream of z2: log p(z2|z1) + log p(x|z2) - log q(z2|z1)
    g2 = (a2 + e * z1) + w * (x - w * z2) / SIGMA**2 - (c2 + d2 * z1)
    # downstream of z1: log p(z1) + log p(z2|z1) - log q(z1) - log q(z2|z1)
    g1 = a1 + e * (z2 - torch.sigmoid(a2 + e * z1)) - phi1 - d2 * (z2 - torch.sigmoid(c2 + d2 * z1))
    torch.testing.assert_close(out.df_dz["z2"], g2)
    torch.testing.assert_close(out.df_dz["z1"], g1)
    assert out.nondifferentiable == frozenset()


@pytest.mark.parametrize("use", ["where", "index"])
def test_nondifferentiable_model_keeps_own_terms_and_is_reported(use):
    a, phi, mu = torch.tensor(0.3), torch.tensor([0.5, -1.0]), torch.tensor([-1.0, 2.0])

    def model():
        with pyro.plate("d", 2):
            z = pyro.sample("z", dist.Bernoulli(logits=a))
            mean = torch.where(z == 1, mu[1], mu[0]) if use == "where" else mu[z.long()]
            pyro.sample("x", dist.Normal(mean, 1.0), obs=torch.tensor([0.5, 1.5]))

    def guide():
        with pyro.plate("d", 2):
            pyro.sample("z", dist.Bernoulli(logits=phi))

    tr = guide_trace(guide)
    out = run(model, guide, tr, ["z"])
    torch.testing.assert_close(out.df_dz["z"], (a - phi).expand(P, 2))
    assert out.nondifferentiable == {"z"}


def test_integer_categorical_gives_zeros():
    def model():
        with pyro.plate("d", 2):
            pyro.sample("z", dist.Categorical(logits=torch.zeros(3)))

    def guide():
        with pyro.plate("d", 2):
            pyro.sample("z", dist.Categorical(logits=torch.tensor([0.1, 0.2, -0.3])))

    tr = guide_trace(guide)
    out = run(model, guide, tr, ["z"])
    assert out.df_dz["z"].shape == (P, 2, 3)
    assert not out.df_dz["z"].any()
    assert out.nondifferentiable == {"z"}


def test_unsupported_sites_are_named():
    def guide():
        pyro.sample("n", dist.Poisson(2.0))
        pyro.sample("y", dist.Normal(0.0, 1.0))

    tr = guide_trace(guide)
    with pytest.raises(ValueError, match="site 'n' has a Poisson"):
        run(guide, guide, tr, ["n"])
    with pytest.raises(ValueError, match="site 'q' is not a latent sample site"):
        run(guide, guide, tr, ["q"])


def test_linear_log_prob_has_the_log_prob_gradient():
    fn = dist.Bernoulli(logits=torch.tensor([[0.3, -1.2]])).expand([4, 2]).to_event(1)
    z = torch.tensor([[0.0, 1.0]] * 4, requires_grad=True)
    (g_lp,) = torch.autograd.grad(fn.log_prob(z).sum(), z)
    (g_lin,) = torch.autograd.grad(linear_log_prob(fn, z).sum(), z)
    torch.testing.assert_close(g_lin, g_lp)
    with pytest.raises(ValueError, match="Normal"):
        linear_log_prob(dist.Normal(0.0, 1.0), z)


def test_runs_under_no_grad_like_loss(linear_gaussian):
    """``loss()`` evaluates under ``no_grad``; the gradient must still be computed."""
    c = linear_gaussian
    model, guide = make_linear(c)
    tr = guide_trace(guide)
    with torch.no_grad():
        out = run(model, guide, tr, ["z"])
    torch.testing.assert_close(
        out.df_dz["z"], linear_analytic(c, tr.nodes["z"]["value"], torch.arange(N))
    )


def test_provenance_tracked_trace(linear_gaussian):
    """The TraceGraph loss records values with provenance; the replay strips it."""
    from pyro.infer.tracegraph_elbo import TrackNonReparam

    c = linear_gaussian
    model, guide = make_linear(c)
    with TrackNonReparam():
        tr = guide_trace(guide)
    out = run(model, guide, tr, ["z"])
    z = tr.nodes["z"]["value"]
    expected = linear_analytic(c, torch.as_tensor(z).detach().clone(), torch.arange(N))
    torch.testing.assert_close(out.df_dz["z"], expected)
    assert type(out.df_dz["z"]) is torch.Tensor


def test_model_only_subsampled_plate_replays_from_the_model_trace():
    """A plate only the model has: its indices come from ``model_trace`` when given."""
    a, phi, w = torch.tensor(0.2), torch.tensor(-0.5), 1.3
    y = torch.arange(6.0) - 2.0

    def model():
        z = pyro.sample("z", dist.Bernoulli(logits=a))
        with pyro.plate("obs", 6, subsample_size=2) as idx:
            pyro.sample("y", dist.Normal(w * z, 1.0), obs=y[idx])

    def guide():
        pyro.sample("z", dist.Bernoulli(logits=phi))

    tr = guide_trace(guide)
    model_tr = poutine.trace(poutine.replay(particles(model), trace=tr)).get_trace()
    idx = model_tr.nodes["obs"]["value"]
    out = sample_gradients(
        particles(model), particles(guide), (), {}, tr, ["z"], model_trace=model_tr
    )
    z = tr.nodes["z"]["value"]
    lik = 3.0 * (w * (y[idx] - w * z)).sum(-1, keepdim=True)  # scale 6 / 2
    torch.testing.assert_close(out.df_dz["z"], lik + a - phi)
