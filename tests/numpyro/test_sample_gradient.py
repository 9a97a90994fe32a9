"""NumPyro: the gradient of the learning signal with respect to discrete sampled values."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers

from ppl_arms.numpyro.sample_gradient import SampleGradients, linear_log_prob, sample_gradients

P, N, D, M, K = 3, 4, 2, 3, 4
SIGMA = 0.7


def keys(seed, n):
    return jax.random.split(jax.random.PRNGKey(seed), n)


def normals(seed, **shapes):
    """Standard normal arrays drawn by NumPy (no eager JAX compilations)."""
    rng = np.random.default_rng(seed)
    return {name: jnp.asarray(rng.standard_normal(shape)) for name, shape in shapes.items()}


@pytest.fixture(scope="module")
def lin():
    return normals(1, W=(M, D), b=(M,), a=(D,), phi=(N, D), x=(N, M))


def make_linear(c, subsample_size=None, mask=None):
    """z_n ~ Bern(a)^D, x_n ~ N(W z_n + b, sigma^2 I); guide z_n ~ Bern(phi_n)."""

    def model():
        with numpyro.plate("data", N, subsample_size=subsample_size) as idx:
            z = numpyro.sample("z", dist.Bernoulli(logits=c["a"]).to_event(1))
            mean = z @ c["W"].T + c["b"]
            with handlers.mask(mask=True if mask is None else mask[idx]):
                numpyro.sample("x", dist.Normal(mean, SIGMA).to_event(1), obs=c["x"][idx])

    def guide():
        with numpyro.plate("data", N, subsample_size=subsample_size) as idx:
            numpyro.sample("z", dist.Bernoulli(logits=c["phi"][idx]).to_event(1))

    return model, guide


def linear_analytic(c, z, idx, scale=1.0, mask=None):
    """d f / d z_n = W^T (x_n - W z_n - b) / sigma^2 + a - phi_n, times the plate's scale."""
    lik = (c["x"][idx] - z @ c["W"].T - c["b"]) @ c["W"] / SIGMA**2
    if mask is not None:
        lik = lik * mask[idx][:, None]
    return scale * (lik + c["a"] - c["phi"][idx])


def particle_run(model, guide, sites, key, data=None, **kw):
    """One particle under ``jit``: the guide's values (optionally substituted), and the gradients.

    Compiling the whole particle once is much faster than JAX's op-by-op eager dispatch; eager
    execution is checked against it in :func:`test_jit_vmap_equals_eager`.
    """
    flags = set()

    def run(key, data):
        g = guide if data is None else handlers.substitute(guide, data=data)
        tr = handlers.trace(handlers.seed(g, key)).get_trace()
        out = sample_gradients(model, guide, (), {}, tr, sites, **kw)
        flags.update(out.nondifferentiable)
        values = {k: s["value"] for k, s in tr.items() if s["type"] in ("sample", "plate")}
        return values, out.df_dz

    values, df_dz = jax.jit(run)(key, data)
    return values, SampleGradients(df_dz, frozenset(flags))


def test_bernoulli_matches_analytic(lin):
    model, guide = make_linear(lin)
    tr, out = particle_run(model, guide, ["z"], keys(0, 1)[0])
    assert out.df_dz["z"].shape == (N, D)
    expected = linear_analytic(lin, tr["z"], jnp.arange(N))
    np.testing.assert_allclose(out.df_dz["z"], expected, rtol=1e-5, atol=1e-5)
    assert out.nondifferentiable == frozenset()


def test_subsampling_scale_uses_the_traced_indices(lin):
    model, guide = make_linear(lin, subsample_size=2)
    tr, out = particle_run(model, guide, ["z"], keys(3, 1)[0])
    idx = tr["data"]
    expected = linear_analytic(lin, tr["z"], idx, scale=N / 2)
    assert out.df_dz["z"].shape == (2, D)
    np.testing.assert_allclose(out.df_dz["z"], expected, rtol=1e-5, atol=1e-5)


def test_mask_drops_masked_terms(lin):
    mask = jnp.array([True, False, True, False])
    model, guide = make_linear(lin, mask=mask)
    tr, out = particle_run(model, guide, ["z"], keys(4, 1)[0])
    expected = linear_analytic(lin, tr["z"], jnp.arange(N), mask=mask)
    np.testing.assert_allclose(out.df_dz["z"], expected, rtol=1e-5, atol=1e-5)


def test_masked_distribution_own_terms():
    m = jnp.array([True, False, True])
    a, phi = jnp.array([0.2, -0.4, 1.0]), jnp.array([0.5, 0.1, -0.3])

    def model():
        with numpyro.plate("d", 3):
            numpyro.sample("z", dist.Bernoulli(logits=a).mask(m))

    def guide():
        with numpyro.plate("d", 3):
            numpyro.sample("z", dist.Bernoulli(logits=phi))

    _, out = particle_run(model, guide, ["z"], keys(5, 1)[0])
    np.testing.assert_allclose(out.df_dz["z"], jnp.where(m, a, 0.0) - phi, rtol=1e-6)
    assert out.nondifferentiable == {"z"}


def smooth_one_hot(V, u, a, phi, x):
    """z_n ~ Cat(a) consumed one-hot, x_n ~ N(tanh(V e_{z_n}) . u, sigma^2); guide Cat(phi_n)."""

    def model():
        with numpyro.plate("data", N):
            z = numpyro.sample("z", dist.Categorical(logits=a))
            v = numpyro.deterministic("z_one_hot", jax.nn.one_hot(z, K))
            numpyro.sample("x", dist.Normal(jnp.tanh(v @ V.T) @ u, SIGMA), obs=x)

    def guide():
        with numpyro.plate("data", N):
            numpyro.sample("z", dist.Categorical(logits=phi))

    def f(v):  # the signal's value-dependent part, linear extension of the own terms
        lik = dist.Normal(jnp.tanh(v @ V.T) @ u, SIGMA).log_prob(x).sum()
        own = jax.nn.log_softmax(a) - jax.nn.log_softmax(phi, axis=-1)
        return lik + jnp.sum(v * own)

    return model, guide, f


@pytest.fixture(scope="module")
def one_hot_problem():
    return normals(2, V=(3, K), u=(3,), a=(K,), phi=(N, K), x=(N,))


def test_one_hot_route_matches_finite_differences(one_hot_problem):
    c = one_hot_problem
    model, guide, f = smooth_one_hot(c["V"], c["u"], c["a"], c["phi"], c["x"])
    tr, out = particle_run(model, guide, ["z"], keys(6, 1)[0])
    v = np.asarray(jax.nn.one_hot(tr["z"], K), dtype=np.float64)
    assert out.df_dz["z"].shape == (N, K)
    h = 1e-6  # float64 (tests/conftest.py enables x64)
    f = jax.jit(f)
    fd = np.zeros_like(v)
    for idx in np.ndindex(*v.shape):
        e = np.zeros_like(v)
        e[idx] = h
        fd[idx] = (f(jnp.asarray(v + e)) - f(jnp.asarray(v - e))) / (2 * h)
    np.testing.assert_allclose(out.df_dz["z"], fd, rtol=1e-6, atol=1e-6)
    assert out.nondifferentiable == frozenset()


def test_categorical_without_route_gives_zeros(one_hot_problem):
    c = one_hot_problem

    def model():
        with numpyro.plate("data", N):
            z = numpyro.sample("z", dist.Categorical(logits=c["a"]))
            numpyro.sample("x", dist.Normal(c["u"][z % 3], SIGMA), obs=c["x"])

    _, guide, _ = smooth_one_hot(c["V"], c["u"], c["a"], c["phi"], c["x"])
    _, out = particle_run(model, guide, ["z"], keys(7, 1)[0])
    assert out.df_dz["z"].shape == (N, K)
    assert not np.any(out.df_dz["z"])
    assert out.nondifferentiable == {"z"}


def test_named_one_hot_site(one_hot_problem):
    c = one_hot_problem
    model, guide, _ = smooth_one_hot(c["V"], c["u"], c["a"], c["phi"], c["x"])
    key = keys(6, 1)[0]
    _, expected = particle_run(model, guide, ["z"], key)

    def renamed():
        with numpyro.plate("data", N):
            z = numpyro.sample("z", dist.Categorical(logits=c["a"]))
            v = numpyro.deterministic("onehot", jax.nn.one_hot(z, K))
            numpyro.sample("x", dist.Normal(jnp.tanh(v @ c["V"].T) @ c["u"], SIGMA), obs=c["x"])

    _, out = particle_run(renamed, guide, ["z"], key, one_hot_sites={"z": "onehot"})
    np.testing.assert_allclose(out.df_dz["z"], expected.df_dz["z"], rtol=1e-6)


def test_two_site_chain_is_the_downstream_cost():
    """z1 -> z2 -> x: each site's gradient is that of its downstream terms (the TraceGraph cost)."""
    a1, a2, e, w, x = 0.3, -0.2, 1.5, 0.8, 0.4
    phi1, c2, d2 = jnp.array([0.1, -0.6]), -0.3, 0.9

    def model():
        with numpyro.plate("d", 2):
            z1 = numpyro.sample("z1", dist.Bernoulli(logits=a1))
            z2 = numpyro.sample("z2", dist.Bernoulli(logits=a2 + e * z1))
            numpyro.sample("x", dist.Normal(w * z2, SIGMA), obs=x)

    def guide():
        with numpyro.plate("d", 2):
            z1 = numpyro.sample("z1", dist.Bernoulli(logits=phi1))
            numpyro.sample("z2", dist.Bernoulli(logits=c2 + d2 * z1))

    tr, out = particle_run(model, guide, ["z1", "z2"], keys(8, 1)[0])
    z1, z2 = tr["z1"], tr["z2"]
    g2 = (a2 + e * z1) + w * (x - w * z2) / SIGMA**2 - (c2 + d2 * z1)
    sig = jax.nn.sigmoid
    g1 = a1 + e * (z2 - sig(a2 + e * z1)) - phi1 - d2 * (z2 - sig(c2 + d2 * z1))
    np.testing.assert_allclose(out.df_dz["z2"], g2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.df_dz["z1"], g1, rtol=1e-5, atol=1e-6)
    assert out.nondifferentiable == frozenset()


@pytest.mark.parametrize("use", ["where", "index", "int_index"])
def test_nondifferentiable_model_keeps_own_terms_and_is_reported(use):
    a, phi, mu = 0.3, jnp.array([0.5, -1.0]), jnp.array([-1.0, 2.0])

    def model():
        with numpyro.plate("d", 2):
            z = numpyro.sample("z", dist.Bernoulli(logits=a))
            means = {
                "where": lambda: jnp.where(z == 1, mu[1], mu[0]),
                "index": lambda: mu[z.astype(int)],
                "int_index": lambda: mu[z],  # fails on a float z: replayed with the int value
            }
            mean = means[use]()
            numpyro.sample("x", dist.Normal(mean, 1.0), obs=jnp.array([0.5, 1.5]))

    def guide():
        with numpyro.plate("d", 2):
            numpyro.sample("z", dist.Bernoulli(logits=phi))

    _, out = particle_run(model, guide, ["z"], keys(9, 1)[0])
    np.testing.assert_allclose(out.df_dz["z"], a - phi, rtol=1e-6)
    assert out.nondifferentiable == {"z"}


def test_unsupported_sites_are_named():
    def guide():
        numpyro.sample("n", dist.Poisson(2.0))

    with pytest.raises(ValueError, match="site 'n' has a Poisson"):
        particle_run(guide, guide, ["n"], keys(10, 1)[0])
    with pytest.raises(ValueError, match="site 'q' is not a latent sample site"):
        particle_run(guide, guide, ["q"], keys(10, 1)[0])


def test_linear_log_prob_has_the_log_prob_gradient():
    fn = dist.Bernoulli(probs=jnp.array([[0.3, 0.8]])).expand([4, 2]).to_event(1)
    z = jnp.array([[0.0, 1.0]] * 4)
    g_lp = jax.jit(jax.grad(lambda v: fn.log_prob(v).sum()))(z)
    g_lin = jax.jit(jax.grad(lambda v: linear_log_prob(fn, v).sum()))(z)
    np.testing.assert_allclose(g_lin, g_lp, rtol=1e-6)
    with pytest.raises(ValueError, match="Normal"):
        linear_log_prob(dist.Normal(0.0, 1.0), z)


def mixed_programs(lin, one_hot_problem):
    """A subsampled Bernoulli site and a one-hot-route categorical site in one program."""
    c = one_hot_problem
    lin_model, lin_guide = make_linear(lin, subsample_size=2)
    oh_model, oh_guide, _ = smooth_one_hot(c["V"], c["u"], c["a"], c["phi"], c["x"])

    def model():
        lin_model()
        with handlers.scope(prefix="oh"):
            oh_model()

    def guide():
        lin_guide()
        with handlers.scope(prefix="oh"):
            oh_guide()

    flags = set()

    def one(key):
        tr = handlers.trace(handlers.seed(guide, key)).get_trace()
        out = sample_gradients(
            model, guide, (), {}, tr, ["z", "oh/z"], one_hot_sites={"oh/z": "oh/z_one_hot"}
        )
        flags.update(out.nondifferentiable)
        return out.df_dz

    return one, flags


def test_particle_vmap_under_jit(lin, one_hot_problem):
    """Inside the losses' particle vmap under jit: each particle's numbers, flags collected inside."""
    one, flags = mixed_programs(lin, one_hot_problem)
    particle_keys = keys(11, P)
    batched = jax.jit(jax.vmap(one))(particle_keys)
    assert batched["z"].shape == (P, 2, D)
    assert batched["oh/z"].shape == (P, N, K)
    assert flags == set()
    single = jax.jit(one)
    for p, key in enumerate(particle_keys):
        alone = single(key)
        for name in ("z", "oh/z"):
            np.testing.assert_allclose(batched[name][p], alone[name], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_jit_equals_eager(lin, one_hot_problem):
    """Op-by-op eager execution (many small compilations, hence slow) gives the jitted numbers."""
    one, flags = mixed_programs(lin, one_hot_problem)
    key = keys(11, 1)[0]
    jitted = jax.jit(one)(key)
    eager = one(key)
    assert flags == set()
    for name in ("z", "oh/z"):
        np.testing.assert_allclose(jitted[name], eager[name], rtol=1e-10, atol=1e-12)


def test_pyro_and_numpyro_agree(lin, one_hot_problem):
    """The same model and values give the same gradients in both backends."""
    torch = pytest.importorskip("torch")
    pyro = pytest.importorskip("pyro")
    from pyro import poutine

    import ppl_arms.pyro.sample_gradient as pyro_sg

    pdist = pyro.distributions
    t = {k: torch.tensor(np.asarray(v)) for k, v in lin.items()}
    t |= {"V": torch.tensor(np.asarray(one_hot_problem["V"]))}
    t |= {"u": torch.tensor(np.asarray(one_hot_problem["u"]))}
    t |= {"psi": torch.tensor(np.asarray(one_hot_problem["phi"]))}

    def pyro_model():
        with pyro.plate("data", N, dim=-1):
            z = pyro.sample("z", pdist.Bernoulli(logits=t["a"]).to_event(1))
            pyro.sample("x", pdist.Normal(z @ t["W"].T + t["b"], SIGMA).to_event(1), obs=t["x"])
            v = pyro.sample("c", pdist.OneHotCategorical(logits=t["psi"][0]))
            mean = torch.tanh(v @ t["V"].T) @ t["u"]
            pyro.sample("y", pdist.Normal(mean, SIGMA), obs=t["x"][:, 0])

    def pyro_guide():
        with pyro.plate("data", N, dim=-1):
            pyro.sample("z", pdist.Bernoulli(logits=t["phi"]).to_event(1))
            pyro.sample("c", pdist.OneHotCategorical(logits=t["psi"]))

    def np_model():
        with numpyro.plate("data", N):
            z = numpyro.sample("z", dist.Bernoulli(logits=lin["a"]).to_event(1))
            mean = z @ lin["W"].T + lin["b"]
            numpyro.sample("x", dist.Normal(mean, SIGMA).to_event(1), obs=lin["x"])
            cat = numpyro.sample("c", dist.Categorical(logits=one_hot_problem["phi"][0]))
            v = numpyro.deterministic("c_one_hot", jax.nn.one_hot(cat, K))
            mean = jnp.tanh(v @ one_hot_problem["V"].T) @ one_hot_problem["u"]
            numpyro.sample("y", dist.Normal(mean, SIGMA), obs=lin["x"][:, 0])

    def np_guide():
        with numpyro.plate("data", N):
            numpyro.sample("z", dist.Bernoulli(logits=lin["phi"]).to_event(1))
            numpyro.sample("c", dist.Categorical(logits=one_hot_problem["phi"]))

    def particles(fn):
        return pyro.plate("num_particles_vectorized", P, dim=-2)(fn)

    torch.manual_seed(0)
    tr = poutine.trace(particles(pyro_guide)).get_trace()
    out_pyro = pyro_sg.sample_gradients(
        particles(pyro_model), particles(pyro_guide), (), {}, tr, ["z", "c"]
    )
    z = tr.nodes["z"]["value"].numpy()
    c = tr.nodes["c"]["value"].argmax(-1).numpy()

    def one(key, z, c):
        g = handlers.substitute(np_guide, data={"z": z, "c": c})
        tr = handlers.trace(handlers.seed(g, key)).get_trace()
        return sample_gradients(np_model, np_guide, (), {}, tr, ["z", "c"]).df_dz

    out = jax.jit(jax.vmap(one))(keys(12, P), jnp.asarray(z, dtype=jnp.int32), jnp.asarray(c))
    for name in ("z", "c"):
        assert out_pyro.df_dz[name].shape == out[name].shape
        np.testing.assert_allclose(out[name], out_pyro.df_dz[name].numpy(), rtol=1e-4, atol=1e-4)


def test_inside_grad_of_a_loss_with_params(lin):
    """As the losses use it: ``jit(grad(loss))`` over params, particle ``vmap`` inside, flags too."""
    mu = jnp.array([-1.0, 2.0])

    def model():
        w = numpyro.param("w", 1.0)
        with numpyro.plate("data", N):
            z = numpyro.sample("z", dist.Bernoulli(logits=lin["a"]).to_event(1))
            mean = w * (z @ lin["W"].T) + lin["b"]
            numpyro.sample("x", dist.Normal(mean, SIGMA).to_event(1), obs=lin["x"])
            s = numpyro.sample("s", dist.Bernoulli(logits=0.3))
            numpyro.sample("y", dist.Normal(jnp.where(s == 1, mu[1], mu[0]), 1.0), obs=0.5)

    def guide():
        phi = numpyro.param("phi", jnp.zeros((N, D)))
        with numpyro.plate("data", N):
            numpyro.sample("z", dist.Bernoulli(logits=phi).to_event(1))
            numpyro.sample("s", dist.Bernoulli(logits=-0.2))

    flags = set()

    def loss(params, key):
        def one(k):
            tr = handlers.trace(
                handlers.substitute(handlers.seed(guide, k), data=params)
            ).get_trace()
            out = sample_gradients(model, guide, (), {}, tr, ["z", "s"], param_map=params)
            flags.update(out.nondifferentiable)
            w, phi, z = params["w"], params["phi"], tr["z"]["value"]
            resid = lin["x"] - w * z @ lin["W"].T - lin["b"]
            expected = w * resid @ lin["W"] / SIGMA**2 + lin["a"] - phi
            return out.df_dz, expected, jnp.sum(phi**2) + w * jnp.sum(out.df_dz["z"])

        df_dz, expected, value = jax.vmap(one)(jax.random.split(key, P))
        return jnp.sum(value), (df_dz, expected)

    params = {"w": jnp.asarray(1.7), "phi": normals(3, phi=(N, D))["phi"]}
    grads, (df_dz, expected) = jax.jit(jax.grad(loss, has_aux=True))(params, keys(13, 1)[0])
    np.testing.assert_allclose(df_dz["z"], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(df_dz["s"], jnp.full((P, N), 0.3 + 0.2), rtol=1e-12)
    assert flags == {"s"}
    np.testing.assert_allclose(grads["phi"], P * 2 * params["phi"], rtol=1e-12)  # df_dz detached
