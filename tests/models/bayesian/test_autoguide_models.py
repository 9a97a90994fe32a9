"""AutoMixedMeanField + TraceARMS_ELBO on every model in models.bayesian, in both backends.

A few SVI steps (finite losses), point summaries for every latent site, ArviZ export with the
models' plates as dims, and the gradient-variance table; subsampled training on the mixture.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pyro
import pytest
import torch

from models.bayesian import change_point as cp
from models.bayesian import gaussian_mixture as gm
from models.bayesian import variable_selection as vs


def _cases():
    reg = vs.make_synthetic_data(num_data=30)
    mix = gm.make_synthetic_data(num_data=20)
    counts = cp.make_synthetic_data(num_steps=20, tau=8).counts
    return {
        "variable_selection": (
            {"numpyro": vs.numpyro_model, "pyro": vs.pyro_model},
            (reg.x, reg.y),
            {"sigma2": (), "gamma": ("predictors",)},
            {"y": (None,)},
        ),
        "gaussian_mixture": (
            {"numpyro": gm.numpyro_model, "pyro": gm.pyro_model},
            (mix.x,),
            {
                "weights": ("weights_dim_0",),
                "locs": ("components", "locs_dim_1"),
                "scales": ("components", "scales_dim_1"),
                "assignment": ("data",),
            },
            {"obs": ("data", None)},
        ),
        "change_point": (
            {"numpyro": cp.numpyro_model, "pyro": cp.pyro_model},
            (counts,),
            {"tau": (), "rate_before": (), "rate_after": ()},
            {"counts": ("time",)},
        ),
    }


CASES = _cases()


def _run_numpyro(model, args, latent_dims, observed_dims):
    """Initialise with SVI and take gradient estimates (one compilation of the loss gradient,
    which is what an SVI step runs; the fits themselves are validated in the model tests)."""
    from numpyro.infer import SVI

    from ppl_arms.numpyro import (
        AutoMixedMeanField,
        TraceARMS_ELBO,
        gradient_variance,
        to_inference_data,
    )

    args = tuple(jnp.asarray(a) for a in args)
    guide = AutoMixedMeanField(model)
    svi = SVI(model, guide, numpyro.optim.Adam(0.01), loss=TraceARMS_ELBO(4))
    params = svi.get_params(svi.init(jax.random.key(0), *args))
    assert set(guide.median(params)) == set(latent_dims)
    assert set(guide.quantiles(params, [0.5])) == set(latent_dims)
    table = gradient_variance(TraceARMS_ELBO(4), model, guide, params, *args, num_estimates=3)
    for row in table:
        assert np.all(np.isfinite(row.mean)), row.name
    losses = [3.0, 2.0, 1.0]
    idata = to_inference_data(model, guide, params, *args, num_samples=4, losses=losses)
    return idata, table


def _run_pyro(model, args, latent_dims, observed_dims):
    from pyro.infer import SVI

    from ppl_arms.pyro import (
        AutoMixedMeanField,
        TraceARMS_ELBO,
        gradient_variance,
        to_inference_data,
    )

    args = tuple(torch.as_tensor(a) for a in args)
    guide = AutoMixedMeanField(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), loss=TraceARMS_ELBO(4))
    losses = [svi.step(*args) for _ in range(3)]
    assert np.isfinite(losses).all()
    assert set(guide.median()) == set(latent_dims)
    assert set(guide.quantiles([0.5])) == set(latent_dims)
    idata = to_inference_data(model, guide, *args, num_samples=5, losses=losses)
    table = gradient_variance(TraceARMS_ELBO(4), model, guide, *args, num_estimates=3)
    return idata, table


def _covering(names):
    """Every model in Pyro and one in NumPyro by default (each NumPyro case compiles a fit, an
    export and a diagnostics run: 6-18 s); every pair with ``-m slow``. The NumPyro autoguide's own
    tests run by default in ``tests/numpyro/test_autoguide.py``."""
    return [
        pytest.param(name, backend, marks=() if backend == "pyro" or i == 0 else pytest.mark.slow)
        for i, name in enumerate(sorted(names, reverse=True))
        for backend in ("numpyro", "pyro")
    ]


@pytest.mark.parametrize(("name", "backend"), _covering(CASES))
def test_autoguide_fits_exports_and_diagnoses_every_model(name, backend):
    models, args, latent_dims, observed_dims = CASES[name]
    run = _run_numpyro if backend == "numpyro" else _run_pyro
    idata, table = run(models[backend], args, latent_dims, observed_dims)
    for site, dims in latent_dims.items():
        assert idata.posterior[site].dims[2:] == dims, (site, idata.posterior[site].dims)
    for site, dims in observed_dims.items():
        got = idata.posterior_predictive[site].dims[2:]
        # plate dims by name (None: any name); Pyro's collapsed regression likelihood carries an
        # extra singleton batch axis on the left (see its pyro_model)
        tail = got[-len(dims) :]
        assert all(d is None or d == g for d, g in zip(dims, tail, strict=True)), (site, got)
    assert idata.svi["loss"].size == 3
    sites = {s for row in table for s in row.sites}
    assert sites == set(latent_dims), sites  # every latent site's parameters were attributed
    assert table.total_variance > 0


def test_mixture_trains_on_minibatches_in_both_backends():
    from numpyro.infer import SVI

    from ppl_arms.numpyro import AutoMixedMeanField, TraceARMS_ELBO

    data = gm.make_synthetic_data(num_data=20)
    x = jnp.asarray(data.x)
    guide = AutoMixedMeanField(gm.numpyro_model)
    svi = SVI(gm.numpyro_model, guide, numpyro.optim.Adam(0.01), loss=TraceARMS_ELBO(4))
    state = svi.init(jax.random.key(0), x, subsample_size=5)
    assert svi.get_params(state)["assignment_auto_logits"].shape == (20, 3)

    from ppl_arms.pyro import AutoMixedMeanField as PyroGuide
    from ppl_arms.pyro import TraceARMS_ELBO as PyroLoss

    def plates(x, prior=None, subsample_size=None):
        return pyro.plate("data", x.shape[0], subsample_size=subsample_size, dim=-1)

    xt = torch.as_tensor(data.x)
    guide = PyroGuide(gm.pyro_model, create_plates=plates)
    svi = pyro.infer.SVI(gm.pyro_model, guide, pyro.optim.Adam({"lr": 0.01}), loss=PyroLoss(4))
    assert np.isfinite(svi.step(xt, subsample_size=5))
    assert guide.logits.assignment.shape == (20, 3)
