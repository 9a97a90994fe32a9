"""Spike-and-slab variable selection: exact enumeration, likelihood algebra, fitted inclusion probs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import stats

from models.bayesian import fit_numpyro, fit_pyro
from models.bayesian import variable_selection as vs

PRIOR = vs.SpikeSlabPrior(inclusion_prob=0.3, slab_scale=0.7, noise_shape=2.5, noise_rate=1.5)


def _small(seed=0, n=12, k=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, k))
    y = x @ np.array([1.0, 0.0, -0.5])[:k] + rng.standard_normal(n)
    return x, y - y.mean()


def test_exact_posterior_matches_a_direct_multivariate_t():
    """Integrating beta and sigma2 gives y | gamma ~ t_{2a}(0, (b/a)(I + tau^2 X_g X_g'))."""
    x, y = _small()
    gammas, log_post = vs.exact_model_log_posterior(x, y, PRIOR)
    a, b, tau, pi = PRIOR.noise_shape, PRIOR.noise_rate, PRIOR.slab_scale, PRIOR.inclusion_prob
    log_joint = []
    for g in gammas:
        xg = x[:, g == 1]
        shape = (b / a) * (np.eye(len(y)) + tau**2 * xg @ xg.T)
        lml = stats.multivariate_t(loc=np.zeros(len(y)), shape=shape, df=2 * a).logpdf(y)
        log_joint.append(lml + g.sum() * np.log(pi) + (len(g) - g.sum()) * np.log1p(-pi))
    log_joint = np.array(log_joint)
    expected = log_joint - np.logaddexp.reduce(log_joint)
    np.testing.assert_allclose(log_post, expected, rtol=1e-10, atol=1e-10)
    pips = vs.exact_inclusion_probabilities(x, y, PRIOR)
    np.testing.assert_allclose(pips, np.exp(expected) @ gammas, rtol=1e-10)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_collapsed_likelihood_is_the_gaussian_marginal(backend):
    x, y = _small(1)
    gamma = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1]])
    sigma2 = np.array([0.7, 1.3, 2.0])
    tau = PRIOR.slab_scale
    expected = [
        stats.multivariate_normal(
            np.zeros(len(y)), s2 * (np.eye(len(y)) + tau**2 * x[:, g == 1] @ x[:, g == 1].T)
        ).logpdf(y)
        for g, s2 in zip(gamma, sigma2, strict=True)
    ]
    if backend == "numpyro":
        fn = vs._numpyro_likelihood()(jnp.asarray(x), jnp.asarray(gamma), jnp.asarray(sigma2), tau)
        got = np.asarray(fn.log_prob(jnp.asarray(y)))
        draws = np.asarray(fn.sample(jax.random.key(0), (20000,)))
    else:
        t = torch.as_tensor
        fn = vs._pyro_likelihood()(t(x), t(gamma), t(sigma2), tau)
        got = fn.log_prob(t(y)).numpy()
        torch.manual_seed(0)
        draws = fn.sample((20000,)).numpy()
    assert fn.batch_shape == (3,)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # draws have the marginal covariance sigma2 (I + tau^2 X_g X_g'), checked on the diagonal
    cov = sigma2[:, None] * (1 + tau**2 * ((x[None] ** 2) * gamma[:, None, :]).sum(-1))
    np.testing.assert_allclose(draws.var(0), cov, rtol=0.06)


def _fitted_probs(backend, data, **options):
    options = {**vs.FIT_OPTIONS, **options}
    if backend == "numpyro":
        fit = fit_numpyro(vs.numpyro_model, jnp.asarray(data.x), jnp.asarray(data.y), **options)
        return np.asarray(jax.nn.sigmoid(fit.params["gamma_auto_logits"]))
    fit = fit_pyro(vs.pyro_model, torch.as_tensor(data.x), torch.as_tensor(data.y), **options)
    return torch.sigmoid(fit.guide.logits.gamma.detach()).numpy()


def test_numpyro_fit_matches_exact_inclusion_probabilities_on_synthetic_data():
    data = vs.make_synthetic_data()
    exact = vs.exact_inclusion_probabilities(data.x, data.y)
    assert exact[:3].min() > 0.99 and exact[3:].max() < 0.3  # strong, and null/weak predictors
    fitted = _fitted_probs("numpyro", data)
    # measured: max |difference| 0.012 (seeds 0-2: 0.012, 0.008, 0.008)
    np.testing.assert_allclose(fitted, exact, atol=0.05)


@pytest.mark.slow
def test_pyro_fit_matches_exact_inclusion_probabilities_on_synthetic_data():
    data = vs.make_synthetic_data()
    exact = vs.exact_inclusion_probabilities(data.x, data.y)
    fitted = _fitted_probs("pyro", data)
    np.testing.assert_allclose(fitted, exact, atol=0.05)  # measured: 0.007


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_diabetes_mean_field_is_exact_only_where_indicators_decouple(backend):
    """On diabetes the cholesterol measures s1-s4 are strongly correlated (|r| up to 0.9), so their
    indicators are strongly dependent a posteriori and a factorised guide picks one configuration
    (measured differences up to 0.49). The other six indicators must match."""
    data = vs.load_diabetes_data()
    exact = vs.exact_inclusion_probabilities(data.x, data.y)
    fitted = _fitted_probs(backend, data)
    names = list(data.feature_names)
    coupled = [names.index(n) for n in ["s1", "s2", "s3", "s4"]]
    free = [i for i in range(len(names)) if i not in coupled]
    np.testing.assert_allclose(fitted[free], exact[free], atol=0.05)
    assert np.abs(fitted[coupled] - exact[coupled]).max() > 0.1  # the documented limitation
    # the exact posterior correlation between the s1 and s3 indicators is what a factorised
    # guide cannot express
    gammas, log_post = vs.exact_model_log_posterior(data.x, data.y)
    cov = np.cov(gammas[:, coupled].T, aweights=np.exp(log_post))
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert abs(corr[0, 2]) > 0.5
