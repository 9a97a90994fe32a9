"""Multi-sample bounds per data point, and the models' log-densities across backends."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pyro
import pytest
import torch
from numpyro import handlers
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from models import (
    MODELS,
    build_model,
    numpyro_log_weights,
    numpyro_multi_sample_bound,
    pyro_log_weights,
    pyro_multi_sample_bound,
)
from tests.models._common import MODEL_NAMES, SMALL, binary_batch

NUM_SAMPLES = 256
ELBO_SAMPLES = 1024  # single-sample ELBO terms, drawn CHUNK at a time (one compiled shape)
Z_MAX = 4.5  # standard errors
CHUNK = 64
EXACT_LATENTS = 4  # 2**4 configurations: the marginal likelihood by enumeration
EXACT_SAMPLES = 4096
EXACT_CHUNK = 1024


def numpyro_params(model, guide, x):
    """Initial parameter values of a NumPyro model/guide pair."""
    params = {}
    for fn in (guide, model):
        tr = handlers.trace(handlers.seed(fn, 0)).get_trace(x)
        params.update({k: s["value"] for k, s in tr.items() if s["type"] == "param"})
    return params


def _bounds(backend, name, x, **config):
    """(M-sample bound [B], M single-sample ELBO terms [M, B]) from independent draws."""
    model, guide = build_model(name, backend, x.mean(0), **{**SMALL[name], **config})
    if backend == "numpyro":
        x = jnp.asarray(x)
        params = numpyro_params(model, guide, x)
        key, *keys = jax.random.split(jax.random.key(3), 1 + ELBO_SAMPLES // CHUNK)
        bound = numpyro_multi_sample_bound(model, guide, params, x, NUM_SAMPLES, key, CHUNK)
        terms = [numpyro_log_weights(model, guide, params, x, CHUNK, k) for k in keys]
        return np.asarray(bound), np.concatenate(terms)
    x = torch.as_tensor(x)
    bound = pyro_multi_sample_bound(model, guide, x, NUM_SAMPLES, chunk_size=CHUNK)
    return bound.numpy(), pyro_log_weights(model, guide, x, ELBO_SAMPLES).numpy()


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bound_is_finite_and_above_the_elbo(digits, name, backend):
    x = binary_batch(digits)
    bound, terms = _bounds(backend, name, x)
    assert bound.shape == (x.shape[0],)
    assert terms.shape == (ELBO_SAMPLES, x.shape[0])
    assert np.all(np.isfinite(bound))
    assert np.all(np.isfinite(terms))
    assert bound.max() < 0.0  # a log-probability of binary data
    # independent draws: the M-sample bound beats the ELBO beyond the ELBO estimate's noise
    # (per-data-point standard errors: the data points' ELBOs differ by much more than the noise)
    gap = bound - terms.mean(0)
    se = np.sqrt(np.sum(terms.var(0, ddof=1) / terms.shape[0])) / x.shape[0]
    assert gap.mean() > Z_MAX * se


def _exact_log_marginal_numpyro(model, params, x, num_latents):
    configs = np.array(list(itertools.product([0.0, 1.0], repeat=num_latents)))
    out = []
    for z in configs:
        zb = jnp.broadcast_to(jnp.asarray(z), (x.shape[0], num_latents))
        conditioned = handlers.condition(handlers.substitute(model, data=params), {"z": zb})
        tr = handlers.trace(conditioned).get_trace(x)
        out.append(sum(s["fn"].log_prob(s["value"]) for s in tr.values() if s["type"] == "sample"))
    return np.asarray(jax.scipy.special.logsumexp(jnp.stack(out), axis=0))


def _exact_log_marginal_pyro(model, x, num_latents):
    configs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=num_latents)))
    out = []
    for z in configs:
        tr = poutine.trace(poutine.condition(model, data={"z": z.expand(x.shape[0], -1)}))
        tr = tr.get_trace(x)
        sites = [s for s in tr.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)]
        out.append(sum(s["fn"].log_prob(s["value"]) for s in sites))
    return torch.logsumexp(torch.stack(out), 0).detach().numpy()


def _check_against_exact(bound, log_w, exact):
    """ELBO <= log p(x) and |bound - log p(x)| within the bound's delta-method standard error.

    ``log_w`` [M, B] are independent of ``bound``; for the M-sample bound,
    se = std(w) / (sqrt(M) mean(w)), and its bias is about -se**2 / 2.
    """
    num = log_w.shape[0]
    w = np.exp(log_w - log_w.max(0))
    se = w.std(0, ddof=1) / (np.sqrt(num) * w.mean(0))
    assert np.all(np.abs(bound - exact) < Z_MAX * se + se**2), (bound - exact, se)
    elbo_se = log_w.std(0, ddof=1) / np.sqrt(num)
    assert np.all(log_w.mean(0) < exact + Z_MAX * elbo_se)
    assert log_w.mean() < bound.mean()


def test_bounds_against_exact_marginal_likelihood(digits):
    """ELBO < M-sample bound ~ log p(x) (by enumeration), in both backends."""
    name, x = "binary_vae_linear", binary_batch(digits)
    config = {"num_latents": EXACT_LATENTS}

    model, guide = build_model(name, "numpyro", x.mean(0), **config)
    xj = jnp.asarray(x)
    params = numpyro_params(model, guide, xj)
    exact = _exact_log_marginal_numpyro(model, params, xj, EXACT_LATENTS)
    k1, k2 = jax.random.split(jax.random.key(5))
    bound = numpyro_multi_sample_bound(model, guide, params, xj, EXACT_SAMPLES, k1, EXACT_CHUNK)
    log_w = numpyro_log_weights(model, guide, params, xj, EXACT_SAMPLES, k2)
    _check_against_exact(np.asarray(bound), np.asarray(log_w), exact)

    model, guide = build_model(name, "pyro", x.mean(0), **config)
    xt = torch.as_tensor(x)
    exact_pyro = _exact_log_marginal_pyro(model, xt, EXACT_LATENTS)
    # same initial weights in both backends: the same marginal likelihood
    np.testing.assert_allclose(exact_pyro, exact, rtol=1e-10)
    bound = pyro_multi_sample_bound(model, guide, xt, EXACT_SAMPLES, chunk_size=EXACT_CHUNK)
    log_w = pyro_log_weights(model, guide, xt, EXACT_SAMPLES)
    _check_against_exact(bound.numpy(), log_w.numpy(), exact_pyro)


# -- one definition, two backends ---------------------------------------------------------------


def _numpyro_log_densities(model, guide, values, x):
    out = {}
    for which, fn in (("model", model), ("guide", guide)):
        tr = handlers.trace(handlers.seed(handlers.condition(fn, values), 0)).get_trace(x)
        for k, s in tr.items():
            if s["type"] == "sample":
                out[f"{which}:{k}"] = np.asarray(s["fn"].log_prob(s["value"]))
    return out


def _pyro_log_densities(model, guide, values, x):
    out = {}
    for which, fn in (("model", model), ("guide", guide)):
        tr = poutine.trace(poutine.condition(fn, data=values)).get_trace(x)
        for k, s in tr.nodes.items():
            if s["type"] == "sample" and not site_is_subsample(s):
                out[f"{which}:{k}"] = s["fn"].log_prob(s["value"]).detach().numpy()
    return out


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_backends_agree_on_log_densities(digits, name):
    """Same initial weights and same latent values: every site's log-density agrees at 1e-10."""
    x = binary_batch(digits)
    spec = MODELS[name]
    np_model, np_guide = build_model(name, "numpyro", x.mean(0), **SMALL[name])
    tr = handlers.trace(handlers.seed(np_guide, 7)).get_trace(jnp.asarray(x))
    values = {k: np.array(tr[k]["value"]) for k in spec.discrete_sites}
    dtypes = {"bernoulli": torch.get_default_dtype(), "categorical": torch.long}
    torch_values = {
        k: torch.as_tensor(v).to(dtypes[spec.discrete_sites[k]]) for k, v in values.items()
    }
    lp_np = _numpyro_log_densities(np_model, np_guide, values, jnp.asarray(x))
    pt_model, pt_guide = build_model(name, "pyro", x.mean(0), **SMALL[name])
    lp_pt = _pyro_log_densities(pt_model, pt_guide, torch_values, torch.as_tensor(x))
    assert set(lp_np) == set(lp_pt)
    expected = {f"guide:{k}" for k in spec.discrete_sites} | {f"model:{k}" for k in spec.observed}
    assert expected <= set(lp_np)
    for key in lp_np:
        assert lp_np[key].shape == (x.shape[0],), key
        np.testing.assert_allclose(lp_np[key], lp_pt[key], rtol=1e-10, err_msg=key)


# -- structured prediction: log p(z) - log q(z) = 0, with no gradient through the model's copy ----


def test_structured_prediction_prior_cancels_numpyro(digits):
    name = "structured_prediction"
    x = jnp.asarray(binary_batch(digits))
    model, guide = build_model(name, "numpyro", np.asarray(x).mean(0), **SMALL[name])
    params = numpyro_params(model, guide, x)

    def site_log_probs(p):
        g = handlers.trace(handlers.seed(handlers.substitute(guide, data=p), 1)).get_trace(x)
        m = handlers.replay(handlers.seed(handlers.substitute(model, data=p), 2), g)
        m = handlers.trace(m).get_trace(x)
        return (
            jnp.sum(m["z"]["fn"].log_prob(m["z"]["value"])),
            jnp.sum(g["z"]["fn"].log_prob(g["z"]["value"])),
        )

    model_lp, guide_lp = site_log_probs(params)
    np.testing.assert_allclose(model_lp, guide_lp, rtol=1e-13)
    model_grad = jax.grad(lambda p: site_log_probs(p)[0])(params)
    guide_grad = jax.grad(lambda p: site_log_probs(p)[1])(params)
    assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(model_grad))
    assert np.any(np.asarray(guide_grad["encoder.0.weight"]))


def test_structured_prediction_prior_cancels_pyro(digits):
    name = "structured_prediction"
    x = torch.as_tensor(binary_batch(digits))
    model, guide = build_model(name, "pyro", x.mean(0).numpy(), **SMALL[name])
    g = poutine.trace(guide).get_trace(x)
    m = poutine.trace(poutine.replay(model, trace=g)).get_trace(x)
    model_lp = m.nodes["z"]["fn"].log_prob(m.nodes["z"]["value"])
    guide_lp = g.nodes["z"]["fn"].log_prob(g.nodes["z"]["value"])
    torch.testing.assert_close(model_lp, guide_lp.detach(), rtol=1e-13, atol=0.0)
    assert not model_lp.requires_grad
    assert guide_lp.requires_grad
    assert "encoder$$$0.weight" in pyro.get_param_store()
