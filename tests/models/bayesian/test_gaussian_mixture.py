"""Gaussian mixture: AutoMixedMeanField + TraceARMS_ELBO vs exact marginalisation (TraceEnum_ELBO)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from models.bayesian import fit_numpyro, fit_pyro
from models.bayesian import gaussian_mixture as gm

SITES = ("locs", "weights", "scales")
# Tolerances on posterior medians after sorting components by their first coordinate; measured
# differences on the synthetic data (NumPyro / Pyro): locs 0.013 / 0.022, weights 0.001 / 0.002,
# scales 0.007 / 0.021.
TOLERANCE = {"locs": 0.06, "weights": 0.02, "scales": 0.05}


def _numpyro_fits(data):
    import numpyro
    from numpyro import handlers
    from numpyro.infer import SVI, TraceEnum_ELBO
    from numpyro.infer.autoguide import AutoNormal
    from numpyro.infer.initialization import init_to_value

    x = jnp.asarray(data.x)
    init = init_to_value(values={"locs": jnp.asarray(gm.initial_locs(data.x, 3))})
    fit = fit_numpyro(gm.numpyro_model, x, init_loc_fn=init, **gm.FIT_OPTIONS)
    ours = fit.guide.median(fit.params)
    opts = gm.FIT_OPTIONS
    guide = AutoNormal(handlers.block(gm.numpyro_model, hide=["assignment"]), init_loc_fn=init)
    optim = numpyro.optim.Adam(lambda i: opts["step_size"] * opts["decay"] ** i)
    svi = SVI(gm.enumerated_model("numpyro"), guide, optim, TraceEnum_ELBO(max_plate_nesting=1))
    result = svi.run(jax.random.key(0), opts["num_steps"], x, progress_bar=False)
    ref = guide.median(result.params)
    return {k: np.asarray(ours[k]) for k in SITES}, {k: np.asarray(ref[k]) for k in SITES}


def _pyro_fits(data):
    import pyro
    from pyro import poutine
    from pyro.infer import SVI, TraceEnum_ELBO
    from pyro.infer.autoguide import AutoNormal
    from pyro.infer.autoguide.initialization import init_to_value

    x = torch.as_tensor(data.x)
    init = init_to_value(values={"locs": torch.as_tensor(gm.initial_locs(data.x, 3))})
    fit = fit_pyro(gm.pyro_model, x, init_loc_fn=init, **gm.FIT_OPTIONS)
    ours = fit.guide.median()
    opts = gm.FIT_OPTIONS
    pyro.clear_param_store()
    guide = AutoNormal(poutine.block(gm.pyro_model, hide=["assignment"]), init_loc_fn=init)
    optim = pyro.optim.ClippedAdam({"lr": opts["step_size"], "lrd": opts["decay"]})
    svi = SVI(gm.enumerated_model("pyro"), guide, optim, TraceEnum_ELBO(max_plate_nesting=1))
    for _ in range(opts["num_steps"]):
        svi.step(x)
    ref = guide.median()
    return (
        {k: ours[k].detach().numpy() for k in SITES},
        {k: ref[k].detach().numpy() for k in SITES},
    )


def _compare(ours, ref):
    a = dict(zip(SITES, gm.sort_components(*(ours[k] for k in SITES)), strict=True))
    b = dict(zip(SITES, gm.sort_components(*(ref[k] for k in SITES)), strict=True))
    return {k: float(np.abs(a[k] - b[k]).max()) for k in SITES}, a


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_cluster_parameters_match_exact_marginalisation(backend):
    data = gm.make_synthetic_data()
    ours, ref = (_numpyro_fits if backend == "numpyro" else _pyro_fits)(data)
    diffs, sorted_ours = _compare(ours, ref)
    for k in SITES:
        assert diffs[k] < TOLERANCE[k], diffs
    # and both recover the truth that generated the data
    np.testing.assert_allclose(sorted_ours["locs"], gm.sort_components(data.true_locs)[0], atol=0.2)


def test_sort_components_relabels_consistently():
    locs = np.array([[[2.0, 0.0], [-1.0, 1.0], [0.5, 3.0]]])
    weights = np.array([[0.2, 0.5, 0.3]])
    scales = np.arange(6.0).reshape(1, 3, 2)
    s_locs, s_weights, s_scales = gm.sort_components(locs, weights, scales)
    np.testing.assert_array_equal(s_locs[0, :, 0], [-1.0, 0.5, 2.0])
    np.testing.assert_array_equal(s_weights[0], [0.5, 0.3, 0.2])
    np.testing.assert_array_equal(s_scales[0], [[2.0, 3.0], [4.0, 5.0], [0.0, 1.0]])


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_model_log_density_marginalises_to_the_mixture_density(backend):
    """Summing the joint over every assignment of 3 points equals the mixture likelihood."""
    data = gm.make_synthetic_data(num_data=3)
    w = np.array([0.5, 0.3, 0.2])
    locs = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, -1.0]])
    scales = np.full((3, 2), 0.7)
    from scipy import stats

    per_point = np.array(
        [
            [stats.norm(locs[k], scales[k]).logpdf(p).sum() + np.log(w[k]) for k in range(3)]
            for p in data.x
        ]
    )
    expected = np.logaddexp.reduce(per_point, axis=1).sum()
    values = {"weights": w, "locs": locs, "scales": scales}
    total = []
    for z in np.ndindex(3, 3, 3):
        total.append(_log_joint(backend, data.x, {**values, "assignment": np.array(z)}))
    total = np.array(total)
    prior_only = _log_joint(backend, data.x, {**values, "assignment": np.zeros(3, int)}, obs=False)
    got = np.logaddexp.reduce(total) - prior_only  # remove log p(w, locs, scales)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def _log_joint(backend, x, values, obs=True):
    """log p(values, x) (obs) or log p(w, locs, scales) (not obs) from the backend's model."""
    keep = None if obs else {"weights", "locs", "scales"}
    if backend == "numpyro":
        from numpyro import handlers

        v = {k: jnp.asarray(a) for k, a in values.items()}
        tr = handlers.trace(handlers.substitute(handlers.seed(gm.numpyro_model, 0), v)).get_trace(
            jnp.asarray(x)
        )
        return sum(
            float(jnp.sum(s["fn"].log_prob(s["value"])))
            for n, s in tr.items()
            if s["type"] == "sample" and (keep is None or n in keep)
        )
    from pyro import poutine

    v = {k: torch.as_tensor(a) for k, a in values.items()}
    tr = poutine.trace(poutine.condition(gm.pyro_model, v)).get_trace(torch.as_tensor(x))
    return sum(
        float(s["fn"].log_prob(s["value"]).sum())
        for n, s in tr.nodes.items()
        if s["type"] == "sample" and (keep is None or n in keep)
    )
