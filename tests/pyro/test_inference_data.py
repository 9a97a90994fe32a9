"""Pyro to_inference_data: groups, shapes, dims/coords from plates, subsampling, loss trace."""

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI

from ppl_arms.pyro import AutoMixedMeanField, TraceARMS_ELBO, to_inference_data

N = 6
X = torch.linspace(-1.0, 2.0, N)


def model(x, subsample_size=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 3.0))
    w = pyro.sample("w", dist.Dirichlet(torch.ones(3)))
    with pyro.plate("groups", 2, dim=-2):
        pyro.sample("g", dist.Normal(0.0, 1.0))
    with pyro.plate("data", N, subsample_size=subsample_size, dim=-1) as idx:
        z = pyro.sample("z", dist.Bernoulli(0.5))
        c = pyro.sample("c", dist.Categorical(w))
        loc = pyro.deterministic("loc", mu + z + 0.1 * c, event_dim=0)
        pyro.sample("x", dist.Normal(loc, 1.0), obs=x[idx])


def plates(x, subsample_size=None):
    return pyro.plate("data", N, subsample_size=subsample_size, dim=-1)


def _fitted():
    guide = AutoMixedMeanField(model, create_plates=plates)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), loss=TraceARMS_ELBO(4))
    losses = [svi.step(X, 3) for _ in range(5)]  # trained on minibatches of 3
    with torch.no_grad():
        guide.logits.z.copy_(torch.linspace(-2.0, 2.0, N))
    return guide, losses


def test_groups_shapes_dims_and_coords():
    guide, losses = _fitted()
    idata = to_inference_data(model, guide, X, num_samples=60, losses=losses)
    assert set(idata.groups()) == {"posterior", "posterior_predictive", "observed_data", "svi"}
    post = idata.posterior
    assert post["mu"].dims == ("chain", "draw")
    assert post["z"].dims == ("chain", "draw", "data")
    assert post["c"].shape == (1, 60, N)
    assert post["loc"].dims == ("chain", "draw", "data")  # pyro.deterministic is kept
    assert post["g"].dims == ("chain", "draw", "groups", "g_dim_1")
    assert post["w"].dims == ("chain", "draw", "w_dim_0")
    np.testing.assert_array_equal(post["data"].values, np.arange(N))
    assert idata.posterior_predictive["x"].dims == ("chain", "draw", "data")
    np.testing.assert_allclose(idata.observed_data["x"].values, X.numpy())
    np.testing.assert_allclose(idata.svi["loss"].values, losses)
    assert post.attrs["inference_library"] == "pyro"
    expected = torch.sigmoid(torch.linspace(-2.0, 2.0, N)).numpy()
    np.testing.assert_allclose(post["z"].values.mean((0, 1)), expected, atol=4 * 0.5 / np.sqrt(60))
    assert np.std(idata.posterior_predictive["x"].values[0, :, 0]) > 0.3


def test_subsampled_plates_are_refused_with_the_fix():
    guide, _ = _fitted()
    with pytest.raises(ValueError, match=r"plate 'data' subsamples 3 of 6 elements.*switch"):
        to_inference_data(model, guide, X, 3, num_samples=2)


# arviz 0.23 calls a matplotlib 3.11 API deprecated in 3.11 (third-party, nothing to fix here)
@pytest.mark.filterwarnings("ignore:Passing a dict or None as alias_mapping:DeprecationWarning")
def test_arviz_summary_and_plot_work():
    import matplotlib

    matplotlib.use("Agg")
    guide, _ = _fitted()
    idata = to_inference_data(
        model,
        guide,
        X,
        num_samples=30,
        posterior_predictive=False,
        coords={"data": [f"point{i}" for i in range(N)]},
    )
    assert "posterior_predictive" not in idata.groups()
    summary = az.summary(idata, var_names=["mu", "z"], kind="stats")
    assert list(summary.index) == ["mu", *[f"z[point{i}]" for i in range(N)]]
    axes = az.plot_posterior(idata, var_names=["mu"])
    assert np.size(axes) == 1
    matplotlib.pyplot.close("all")


def test_latent_site_missing_from_the_guide():
    def partial_guide(x):
        pyro.sample("mu", dist.Normal(0.0, 1.0))

    def small(x):
        pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("k", dist.Bernoulli(0.5))

    with pytest.raises(ValueError, match=r"model sites \['k'\] are latent but the guide"):
        to_inference_data(small, partial_guide, X, num_samples=2)
