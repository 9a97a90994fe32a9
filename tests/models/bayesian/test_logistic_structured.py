"""The logistic regression's structured guides: shapes, one SVI step, PIPs, the reverse model."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro import handlers
from numpyro.infer import SVI
from numpyro.infer.util import log_density

from models.bayesian import logistic_selection as ls
from ppl_arms.numpyro import TraceARMS_ELBO

PRIOR = ls.LogisticPrior()


def _data(n=40, p=5, seed=0):
    """Random predictors whose columns 0 and 1 are near-duplicates; labels driven by column 0."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p))
    x[:, 1] = x[:, 0] + 0.05 * rng.standard_normal(n)
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * x[:, 0]))).astype(np.float32)
    return jnp.asarray(x, jnp.float32), jnp.asarray(y)


def test_contrast_directions_find_the_duplicates():
    x, _ = _data()
    v = ls.contrast_directions(np.asarray(x, np.float64), PRIOR, 2)
    assert v.shape == (5, 2)
    np.testing.assert_allclose(np.linalg.norm(v, axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.abs(v[:2, 0]), np.sqrt(0.5), atol=0.05)


CASES = [
    (ls.mixture_model, ls.mixture_guide, {"num_components": 4}),
    (ls.lowrank_model, ls.lowrank_guide, {"rank": 2}),
]
IDS = ["mixture", "lowrank"]


def _pips(params, kwargs):
    if "num_components" in kwargs:
        return np.asarray(ls.mixture_inclusion_probabilities(params))
    return np.asarray(ls.lowrank_inclusion_probabilities(params, 100, jax.random.key(1)))


@pytest.mark.parametrize(("model", "guide", "kwargs"), CASES, ids=IDS)
def test_structured_guide_shapes_and_pips(model, guide, kwargs):
    x, y = _data()
    tr = handlers.trace(handlers.seed(guide, 2)).get_trace(x, y, **kwargs)
    assert tr["gamma"]["value"].shape == (5,) and tr["beta"]["value"].shape == (5,)
    params = {name: site["value"] for name, site in tr.items() if site["type"] == "param"}
    if "num_components" in kwargs:
        assert params["gamma_logits"].shape == (4, 5) and params["beta_loc"].shape == (4, 5)
        # the components start apart along the duplicates' contrast
        assert np.ptp(np.asarray(params["gamma_logits"])[:, 0]) > 1
    else:
        assert params["incl_loadings"].shape == (5, 2) and tr["u"]["value"].shape == (2,)
    values = {n: v["value"] for n, v in tr.items() if v["type"] in ("sample", "param")}
    model_tr = handlers.trace(handlers.substitute(handlers.seed(model, 3), values)).get_trace(
        x, y, **kwargs
    )
    aux = "component" if "num_components" in kwargs else "u"
    assert model_tr[aux]["type"] == "sample" and not model_tr[aux]["is_observed"]
    pips = _pips(params, kwargs)
    assert pips.shape == (5,) and np.all((pips >= 0) & (pips <= 1))


@pytest.mark.slow
@pytest.mark.parametrize(("model", "guide", "kwargs"), CASES, ids=IDS)
def test_structured_guide_runs_one_svi_step(model, guide, kwargs):
    x, y = _data()
    svi = SVI(model, guide, numpyro.optim.Adam(0.01), TraceARMS_ELBO(4, estimator="arms"))
    state = svi.init(jax.random.key(0), x, y, **kwargs)
    state, loss = svi.update(state, x, y, **kwargs)
    assert np.isfinite(float(loss))
    pips = _pips(svi.get_params(state), kwargs)
    assert pips.shape == (5,) and np.all((pips >= 0) & (pips <= 1))


def test_mixture_reverse_model_makes_the_bound_exact():
    """log q(c, gamma, beta) - log r(c | gamma, beta) = log q(gamma, beta) for every component c."""
    x, y = _data()
    k = 4
    params = {
        "gamma_logits": jax.random.normal(jax.random.key(3), (k, 5)),
        "beta_loc": jax.random.normal(jax.random.key(4), (k, 5)),
        "beta_scale": jnp.full((k, 5), 0.7),
        "alpha_loc": jnp.zeros(()),
        "alpha_scale": jnp.ones(()),
    }
    values = {
        "alpha": jnp.asarray(0.3),
        "gamma": jnp.array([1.0, 0.0, 1.0, 0.0, 0.0]),
        "beta": jnp.array([0.5, -1.0, 2.0, 0.1, 0.0]),
    }
    gaps = []
    for c in range(k):
        fixed = {**params, **values, "component": jnp.asarray(c)}
        log_q, _ = log_density(handlers.substitute(ls.mixture_guide, fixed), (x, y), {}, {})
        tr = handlers.trace(handlers.substitute(ls.mixture_model, fixed)).get_trace(x, y)
        gaps.append(float(log_q - tr["component"]["fn"].log_prob(jnp.asarray(c))))
    np.testing.assert_allclose(gaps, gaps[0], rtol=1e-5)
