"""NumPyro AutoMixedMeanField: parameters, plates, subsampling, exactness, summaries, composition."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import numpyro.optim
import pytest
from numpyro import handlers
from numpyro.infer import SVI, Predictive
from numpyro.infer.autoguide import AutoGuideList, AutoNormal
from numpyro.infer.initialization import init_to_value

from ppl_arms.numpyro import AutoMixedMeanField, TraceARMS_ELBO, gradient_variance
from ppl_arms.testing import assert_unbiased
from ppl_arms.testing.numpyro import exact_elbo

X = jnp.array([0.3, -1.0, 2.0, 1.5, -0.5])


def mixed_model(x, subsample_size=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 3.0))
    s = numpyro.sample("s", dist.LogNormal(0.0, 1.0))
    w = numpyro.sample("w", dist.Dirichlet(jnp.ones(3)))
    flags = numpyro.sample("flags", dist.Bernoulli(0.3).expand([2]).to_event(1))
    with numpyro.plate("data", 5, subsample_size=subsample_size) as idx:
        z = numpyro.sample("z", dist.Bernoulli(0.5))
        c = numpyro.sample("c", dist.Categorical(w))
        shift = 0.1 * c + 0.2 * flags.sum()
        numpyro.sample("x", dist.Normal(mu + 2.0 * z - 1.0 + shift, s), obs=x[idx])


def _init(guide, *args):
    with handlers.seed(rng_seed=0):
        return handlers.trace(guide).get_trace(*args)


def test_every_latent_site_gets_its_parameters():
    guide = AutoMixedMeanField(mixed_model)
    tr = _init(guide, X)
    shapes = {k: jnp.shape(s["value"]) for k, s in tr.items() if s["type"] == "param"}
    assert shapes == {
        "mu_auto_loc": (),
        "mu_auto_scale": (),
        "s_auto_loc": (),
        "s_auto_scale": (),
        "w_auto_loc": (2,),  # the simplex's unconstrained space, as in AutoNormal
        "w_auto_scale": (2,),
        "flags_auto_logits": (2,),
        "z_auto_logits": (5,),
        "c_auto_logits": (5, 3),
    }
    # discrete sites are plain, non-reparameterised sites with the model's dtype and shape
    for name, kind in [("z", dist.BernoulliLogits), ("c", dist.CategoricalLogits)]:
        fn = tr[name]["fn"]
        assert not fn.has_rsample
        assert isinstance(fn, kind), type(fn)
        assert tr[name]["value"].shape == (5,)
    assert tr["flags"]["fn"].event_shape == (2,)
    assert tr["z"]["value"].dtype == jnp.result_type(int)


def test_continuous_part_matches_autonormal():
    def continuous(x):
        loc = numpyro.sample("loc", dist.Normal(0.0, 1.0))
        scale = numpyro.sample("scale", dist.HalfNormal(1.0))
        with numpyro.plate("data", 5):
            numpyro.sample("x", dist.Normal(loc, scale), obs=x)

    init = init_to_value(values={"loc": 0.5, "scale": 2.0})
    ours = _init(AutoMixedMeanField(continuous, init_loc_fn=init, init_scale=0.2), X)
    host = _init(AutoNormal(continuous, init_loc_fn=init, init_scale=0.2), X)
    for name, site in host.items():
        if site["type"] == "param":
            np.testing.assert_allclose(ours[name]["value"], site["value"], rtol=1e-12)


def test_subsampling_params_are_full_size_and_only_the_minibatch_moves():
    guide = AutoMixedMeanField(mixed_model)
    svi = SVI(mixed_model, guide, numpyro.optim.SGD(0.1), loss=TraceARMS_ELBO(4))
    state = svi.init(jax.random.key(0), X, 2)
    before = svi.get_params(state)
    assert before["z_auto_logits"].shape == (5,)
    assert before["c_auto_logits"].shape == (5, 3)
    state, _ = jax.jit(svi.update, static_argnums=2)(state, X, 2)
    after = svi.get_params(state)
    moved_z = np.flatnonzero(before["z_auto_logits"] != after["z_auto_logits"])
    moved_c = np.flatnonzero(np.any(before["c_auto_logits"] != after["c_auto_logits"], -1))
    assert len(moved_z) == 2
    np.testing.assert_array_equal(moved_z, moved_c)  # both sites saw the same two elements


def test_nested_plates_and_batch_dims():
    def nested(x):
        with numpyro.plate("rows", 3, dim=-2), numpyro.plate("cols", 4, dim=-1):
            numpyro.sample("b", dist.Bernoulli(0.5))
        numpyro.sample("g", dist.Categorical(logits=jnp.zeros((2, 5))))

    tr = _init(AutoMixedMeanField(nested), None)
    assert tr["b_auto_logits"]["value"].shape == (3, 4)
    assert tr["g_auto_logits"]["value"].shape == (2, 5)
    assert tr["b"]["value"].shape == (3, 4)
    assert tr["g"]["value"].shape == (2,)


def discrete_model(x):
    c = numpyro.sample("c", dist.Categorical(jnp.array([0.2, 0.5, 0.3])))
    with numpyro.plate("data", 3):
        z = numpyro.sample("z", dist.Bernoulli(0.4))
        numpyro.sample("x", dist.Normal(2.0 * z - 1.0 + 0.5 * c, 1.0), obs=x)


def test_arms_gradients_through_the_autoguide_are_unbiased():
    """Mean of 4000 estimates = exact gradient (enumeration oracle) at non-trivial logits."""
    guide = AutoMixedMeanField(discrete_model)
    x = X[:3]
    _init(guide, x)
    params = {
        "c_auto_logits": jnp.array([0.3, -0.4, 0.8]),
        "z_auto_logits": jnp.array([0.5, -1.0, 1.5]),
    }
    exact = jax.grad(lambda p: -exact_elbo(discrete_model, guide, p, x))(params)
    table = gradient_variance(
        TraceARMS_ELBO(4), discrete_model, guide, params, x, num_estimates=4000
    )
    for name in params:
        row = table[name]
        assert_unbiased((row.mean, row.variance, row.num_estimates), exact[name], what=name)


def test_fit_reaches_the_exact_posterior_when_it_factorises():
    """z_b independent given data, a conjugate Normal mean apart: mean field is exact."""
    y = jnp.array([1.2, 0.4, 2.0])

    def model(x, y):
        with numpyro.plate("data", 3):
            z = numpyro.sample("z", dist.Bernoulli(0.5))
            numpyro.sample("x", dist.Normal(2.0 * z - 1.0, 1.0), obs=x)
        m = numpyro.sample("m", dist.Normal(0.0, 1.0))
        with numpyro.plate("obs", 3):
            numpyro.sample("y", dist.Normal(m, 1.0), obs=y)

    guide = AutoMixedMeanField(model)
    schedule = numpyro.optim.Adam(lambda i: 0.05 * 0.999**i)
    svi = SVI(model, guide, schedule, loss=TraceARMS_ELBO(4))
    result = svi.run(jax.random.key(1), 3000, X[:3], y, progress_bar=False)
    fitted = jax.nn.sigmoid(result.params["z_auto_logits"])
    exact = jax.nn.sigmoid(
        dist.Normal(1.0, 1.0).log_prob(X[:3]) - dist.Normal(-1.0, 1.0).log_prob(X[:3])
    )
    np.testing.assert_allclose(fitted, exact, atol=0.03)
    # conjugate: m | y ~ N(sum(y) / 4, 1 / 4)
    np.testing.assert_allclose(result.params["m_auto_loc"], y.sum() / 4, atol=0.05)
    np.testing.assert_allclose(result.params["m_auto_scale"], 0.5, atol=0.05)


def _params():
    return {
        "z_auto_logits": jnp.log(jnp.array([0.3, 0.5, 0.9]) / (1 - jnp.array([0.3, 0.5, 0.9]))),
        "c_auto_logits": jnp.log(jnp.array([[0.2, 0.5, 0.3]] * 3)),
    }


def test_median_is_the_mode_and_quantiles_invert_the_cdf():
    guide = AutoMixedMeanField(discrete_model)
    _init(guide, X[:3])
    params = _params()
    med = guide.median(params)
    np.testing.assert_array_equal(med["z"], [0, 0, 1])  # p = 0.5 ties go to 0 (logit > 0 is 1)
    np.testing.assert_array_equal(med["c"], [1, 1, 1])
    q = guide.quantiles(params, [0.1, 0.69, 0.71, 0.95])
    # Bernoulli(p): inf{k: F(k) >= u} is 1 exactly when u > 1 - p
    np.testing.assert_array_equal(q["z"], [[0, 0, 0], [0, 1, 1], [1, 1, 1], [1, 1, 1]])
    # Categorical(0.2, 0.5, 0.3): F = 0.2, 0.7, 1.0
    np.testing.assert_array_equal(q["c"][:, 0], [0, 1, 2, 2])
    assert q["z"].dtype == med["z"].dtype == jnp.result_type(int)


def test_sample_posterior_frequencies_and_shapes():
    guide = AutoMixedMeanField(mixed_model)
    svi = SVI(mixed_model, guide, numpyro.optim.Adam(0.05), loss=TraceARMS_ELBO(4))
    params = svi.get_params(svi.init(jax.random.key(0), X, 2))
    draws = guide.sample_posterior(jax.random.key(3), params, sample_shape=(4000,))
    assert {k: v.shape for k, v in draws.items()} == {
        "mu": (4000,),
        "s": (4000,),
        "w": (4000, 3),
        "flags": (4000, 2),
        "z": (4000, 5),  # full plate, although the guide was initialised on a minibatch
        "c": (4000, 5),
    }
    assert np.all(draws["s"] > 0)
    np.testing.assert_allclose(draws["w"].sum(-1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(draws["z"].mean(0), 0.5, atol=4 * 0.5 / np.sqrt(4000))
    assert guide.quantiles(params, [0.5])["w"].shape == (1, 3)


def test_predictive_uses_the_guide():
    guide = AutoMixedMeanField(discrete_model)
    params = _params()
    _init(guide, X[:3])
    out = Predictive(discrete_model, guide=guide, params=params, num_samples=3000)(
        jax.random.key(0), X[:3]
    )
    assert out["x"].shape == (3000, 3)
    post = Predictive(guide, params=params, num_samples=3000)(jax.random.key(1), X[:3])
    np.testing.assert_allclose(post["z"].mean(0), [0.3, 0.5, 0.9], atol=0.04)


def test_init_logits_from_the_prior():
    tr = _init(AutoMixedMeanField(discrete_model, init_logits="prior"), X[:3])
    np.testing.assert_allclose(tr["z_auto_logits"]["value"], jnp.log(0.4 / 0.6) * jnp.ones(3))
    probs = jax.nn.softmax(tr["c_auto_logits"]["value"])
    np.testing.assert_allclose(probs, [0.2, 0.5, 0.3], rtol=1e-12)
    with pytest.raises(ValueError, match="unknown init_logits 'zeros'"):
        AutoMixedMeanField(discrete_model, init_logits="zeros")


def poisson_model(x):
    k = numpyro.sample("k", dist.Poisson(3.0))
    mu = numpyro.sample("mu", dist.Normal(0.0, 3.0))
    with numpyro.plate("data", 3):
        z = numpyro.sample("z", dist.Bernoulli(0.5))
        numpyro.sample("x", dist.Normal(mu + z + 0.1 * k, 1.0), obs=x)


def test_unsupported_discrete_site_names_the_site_and_the_fix():
    with pytest.raises(ValueError, match=r"site 'k'.*not Poisson.*Write a guide for site 'k'.*"):
        _init(AutoMixedMeanField(poisson_model), X[:3])


def test_composes_with_autoguidelist_and_block():
    def guide_k(x):
        rate = numpyro.param("rate", 3.0, constraint=dist.constraints.positive)
        return {"k": numpyro.sample("k", dist.Poisson(rate))}

    guide = AutoGuideList(handlers.block(poisson_model, hide=["k", "z"]))
    guide.append(AutoMixedMeanField(handlers.block(poisson_model, hide=["k"])))
    guide.append(guide_k)
    svi = SVI(poisson_model, guide, numpyro.optim.Adam(0.05), loss=TraceARMS_ELBO(4))
    result = svi.run(jax.random.key(0), 30, X[:3], progress_bar=False)
    assert set(result.params) == {"mu_auto_loc", "mu_auto_scale", "z_auto_logits", "rate"}
    assert np.isfinite(result.losses).all()
    assert set(guide[0].median(result.params)) == {"mu", "z"}


def test_summaries_before_the_first_call_fail_clearly():
    with pytest.raises(RuntimeError, match="has not seen the model yet"):
        AutoMixedMeanField(discrete_model).median({})


def test_bad_init_scale():
    with pytest.raises(ValueError, match="init_scale must be positive"):
        AutoMixedMeanField(discrete_model, init_scale=0.0)
