"""Change-point model: exact posterior by enumeration, model density, fitted posterior vs exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import integrate, stats

from models.bayesian import change_point as cp
from models.bayesian import fit_numpyro, fit_pyro

PRIOR = cp.ChangePointPrior(rate_shape=2.5, rate_rate=0.8)


def test_exact_posterior_matches_numerical_integration_over_the_rates():
    counts = np.array([3.0, 5.0, 2.0, 0.0, 1.0, 0.0])
    exact = cp.exact_posterior(counts, PRIOR)
    gamma = stats.gamma(PRIOR.rate_shape, scale=1 / PRIOR.rate_rate)

    def segment(x):  # integral of prod Poisson(x_t | lam) Gamma(lam) d lam
        if x.size == 0:
            return 1.0
        return integrate.quad(
            lambda lam: np.prod(stats.poisson(lam).pmf(x)) * gamma.pdf(lam), 0, 60
        )[0]

    joint = np.array([segment(counts[:t]) * segment(counts[t:]) for t in range(counts.size)])
    np.testing.assert_allclose(exact.probs, joint / joint.sum(), rtol=1e-6)
    before = [
        integrate.quad(
            lambda lam, t=t: lam * np.prod(stats.poisson(lam).pmf(counts[:t])) * gamma.pdf(lam),
            0,
            60,
        )[0]
        / segment(counts[:t])
        for t in range(counts.size)
    ]
    np.testing.assert_allclose(exact.rate_before_mean, (joint / joint.sum()) @ before, rtol=1e-6)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_model_log_density(backend):
    counts = np.array([3.0, 5.0, 2.0, 0.0, 1.0])
    tau, r1, r2 = 2, 3.5, 0.7
    rate = np.where(np.arange(5) < tau, r1, r2)
    gamma = stats.gamma(PRIOR.rate_shape, scale=1 / PRIOR.rate_rate)
    expected = (
        np.log(1 / 5)
        + gamma.logpdf(r1)
        + gamma.logpdf(r2)
        + stats.poisson(rate).logpmf(counts).sum()
    )
    values = {"tau": tau, "rate_before": r1, "rate_after": r2}
    if backend == "numpyro":
        from numpyro.infer.util import log_density

        v = {k: jnp.asarray(a) for k, a in values.items()}
        got, _ = log_density(cp.numpyro_model, (jnp.asarray(counts), PRIOR), {}, v)
    else:
        from pyro import poutine

        v = {k: torch.as_tensor(a) for k, a in values.items()}
        tr = poutine.trace(poutine.condition(cp.pyro_model, v)).get_trace(
            torch.as_tensor(counts), PRIOR
        )
        got = tr.log_prob_sum()
    np.testing.assert_allclose(float(got), expected, rtol=1e-10)


def _fitted(backend, data):
    if backend == "numpyro":
        fit = fit_numpyro(cp.numpyro_model, jnp.asarray(data.counts), **cp.FIT_OPTIONS)
        probs = np.asarray(jax.nn.softmax(fit.params["tau_auto_logits"]))
        draws = fit.guide.sample_posterior(jax.random.key(1), fit.params, sample_shape=(20000,))
        rates = [float(np.mean(draws[k])) for k in ("rate_before", "rate_after")]
        return probs, rates
    from ppl_arms.pyro import to_inference_data

    fit = fit_pyro(cp.pyro_model, torch.as_tensor(data.counts), **cp.FIT_OPTIONS)
    probs = torch.softmax(fit.guide.logits.tau.detach(), -1).numpy()
    idata = to_inference_data(
        cp.pyro_model,
        fit.guide,
        torch.as_tensor(data.counts),
        num_samples=3000,
        posterior_predictive=False,
    )
    rates = [float(idata.posterior[k].mean()) for k in ("rate_before", "rate_after")]
    return probs, rates


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_fitted_change_time_matches_the_exact_posterior(backend):
    data = cp.make_synthetic_data()
    exact = cp.exact_posterior(data.counts)
    assert abs(exact.mean - data.true_tau) < 2  # the data identify the change
    probs, rates = _fitted(backend, data)
    tv = 0.5 * np.abs(probs - exact.probs).sum()
    # measured (NumPyro, seeds 0-2): TV 0.046-0.053; the best mean-field guide (found by
    # deterministic optimisation of the closed-form ELBO) is at TV 0.043 from the exact posterior
    assert tv < 0.1, tv
    assert abs(np.arange(probs.size) @ probs - exact.mean) < 0.5
    np.testing.assert_allclose(rates, [exact.rate_before_mean, exact.rate_after_mean], rtol=0.03)
