"""NumPyro to_inference_data: groups, shapes, dims/coords from plates, subsampling, loss trace."""

from types import SimpleNamespace

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import numpyro.optim
import pytest
from numpyro.infer import SVI

from ppl_arms._arviz import PlateInfo, SiteInfo, site_dims
from ppl_arms.numpyro import AutoMixedMeanField, TraceARMS_ELBO, to_inference_data

N = 6
X = jnp.linspace(-1.0, 2.0, N)


def model(x, subsample_size=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 3.0))
    w = numpyro.sample("w", dist.Dirichlet(jnp.ones(3)))
    with numpyro.plate("groups", 2, dim=-2):
        numpyro.sample("g", dist.Normal(0.0, 1.0))
    with numpyro.plate("data", N, subsample_size=subsample_size, dim=-1) as idx:
        z = numpyro.sample("z", dist.Bernoulli(0.5))
        c = numpyro.sample("c", dist.Categorical(w))
        loc = numpyro.deterministic("loc", mu + z + 0.1 * c)
        numpyro.sample("x", dist.Normal(loc, 1.0), obs=x[idx])


@pytest.fixture(scope="module")
def fitted():
    """A guide set up on minibatches of 3 (its plates subsample), with a made-up loss trace."""
    guide = AutoMixedMeanField(model)
    svi = SVI(model, guide, numpyro.optim.Adam(0.05), loss=TraceARMS_ELBO(4))
    params = svi.get_params(svi.init(jax.random.key(0), X, 3))
    params["z_auto_logits"] = jnp.linspace(-2.0, 2.0, N)
    return guide, SimpleNamespace(params=params, losses=np.array([3.0, 2.5, 2.25]))


def test_groups_shapes_dims_and_coords(fitted):
    guide, result = fitted
    idata = to_inference_data(
        model, guide, result.params, X, 3, num_samples=50, losses=result.losses
    )
    assert set(idata.groups()) == {"posterior", "posterior_predictive", "observed_data", "svi"}
    post = idata.posterior
    assert post["mu"].dims == ("chain", "draw")
    assert post["z"].dims == ("chain", "draw", "data")  # full plate despite subsample_size=3
    assert post["c"].shape == (1, 50, N)
    assert post["loc"].dims == ("chain", "draw", "data")  # deterministic sites are kept
    assert post["g"].dims == ("chain", "draw", "groups", "g_dim_1")  # broadcast axis keeps a name
    assert post["w"].dims == ("chain", "draw", "w_dim_0")
    np.testing.assert_array_equal(post["data"].values, np.arange(N))
    assert idata.posterior_predictive["x"].dims == ("chain", "draw", "data")
    np.testing.assert_allclose(idata.observed_data["x"].values, X)
    assert idata.svi["loss"].dims == ("svi_step",)
    np.testing.assert_allclose(idata.svi["loss"].values, result.losses)
    assert post.attrs["inference_library"] == "numpyro"
    # posterior draws follow the guide
    np.testing.assert_allclose(
        post["z"].values.mean((0, 1)),
        jax.nn.sigmoid(result.params["z_auto_logits"]),
        atol=4 * 0.5 / np.sqrt(50),
    )
    # predictive draws are new draws, not the data
    assert np.std(idata.posterior_predictive["x"].values[0, :, 0]) > 0.3


# arviz 0.23 calls a matplotlib 3.11 API deprecated in 3.11 (third-party, nothing to fix here)
@pytest.mark.filterwarnings("ignore:Passing a dict or None as alias_mapping:DeprecationWarning")
def test_arviz_summary_and_plot_work(fitted):
    import matplotlib

    matplotlib.use("Agg")
    guide, result = fitted
    idata = to_inference_data(
        model,
        guide,
        result.params,
        X,
        posterior_predictive=False,
        num_samples=40,
        coords={"data": [f"point{i}" for i in range(N)]},
    )
    assert "posterior_predictive" not in idata.groups()
    summary = az.summary(idata, var_names=["mu", "z"], kind="stats")
    assert list(summary.index) == ["mu", *[f"z[point{i}]" for i in range(N)]]
    axes = az.plot_posterior(idata, var_names=["mu"])
    assert np.size(axes) == 1
    matplotlib.pyplot.close("all")


def test_site_dims_rule():
    site = SiteInfo("v", (2, 5, 3), 1, (PlateInfo("a", -2, 2), PlateInfo("b", -1, 5)))
    assert site_dims(site) == ["a", "b", "v_dim_2"]
    broadcast = SiteInfo("v", (1, 5), 0, (PlateInfo("a", -2, 2), PlateInfo("b", -1, 5)))
    assert site_dims(broadcast) == ["v_dim_0", "b"]


def test_latent_site_missing_from_the_guide():
    def partial_guide(x):
        numpyro.sample("mu", dist.Normal(0.0, 1.0))

    def small(x):
        numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.sample("k", dist.Bernoulli(0.5))

    with pytest.raises(ValueError, match=r"model sites \['k'\] are latent but the guide"):
        to_inference_data(small, partial_guide, {}, X, num_samples=2)
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        to_inference_data(small, partial_guide, {}, X, num_samples=0)
