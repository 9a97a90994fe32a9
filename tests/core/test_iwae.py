"""Multi-sample bound terms: values, and unbiasedness of VIMCO and local ARMS/LOORF gradients
against an exact enumeration of the IWAE bound's gradient over all n-tuples of configurations."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import expit, logsumexp

from ppl_arms.core import (
    DirichletCopula,
    GaussianCopula,
    IndependentCopula,
    arms_coefficients,
    iwae_bound,
    leave_one_out_logsumexp,
    local_signals,
    threshold_sample,
    vimco_signals,
)
from ppl_arms.core.iwae import hybrid_terms
from ppl_arms.testing import assert_unbiased, monte_carlo_moments

from .helpers import Z_MAX, draw


def test_bound_and_leave_one_out(backend, rng):
    lw = rng.normal(size=(5, 7)) * 4
    np.testing.assert_allclose(
        backend.numpy(iwae_bound(backend.asarray(lw))), logsumexp(lw, 0) - math.log(5), rtol=1e-14
    )
    loo = backend.numpy(leave_one_out_logsumexp(backend.asarray(lw)))
    ref = np.stack([logsumexp(np.delete(lw, k, 0), 0) for k in range(5)])
    np.testing.assert_allclose(loo, ref, rtol=1e-13)


def test_vimco_signals_match_the_formula(backend, rng):
    n = 4
    lw = rng.normal(size=(n, 6)) * 3
    out = backend.numpy(vimco_signals(backend.asarray(lw)))
    bound = logsumexp(lw, 0) - math.log(n)
    ref = []
    for j in range(n):
        others = np.delete(lw, j, 0)
        replaced = np.concatenate([others, others.mean(0, keepdims=True)])
        ref.append(bound - (logsumexp(replaced, 0) - math.log(n)))
    np.testing.assert_allclose(out, np.stack(ref), rtol=1e-12, atol=1e-14)


def test_local_signals_match_the_double_sum(backend, rng):
    n, m = 3, 4
    lw, lt = rng.normal(size=(n, 5)) * 3, rng.normal(size=(m, 5)) * 3
    out = backend.numpy(local_signals(backend.asarray(lw), backend.asarray(lt)))
    ref = np.zeros((m, 5))
    for j in range(m):
        for k in range(n):
            ref[j] += logsumexp(np.concatenate([np.delete(lw, k, 0), lt[j : j + 1]]), 0) - math.log(
                n
            )
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_signals_survive_minus_infinity(backend):
    lw = np.array([[-np.inf, 0.0], [0.5, -np.inf], [1.0, -np.inf]])
    assert np.all(np.isfinite(backend.numpy(vimco_signals(backend.asarray(lw)))[:, 0][1:]))
    assert np.all(
        np.isfinite(backend.numpy(local_signals(backend.asarray(lw), backend.asarray(lw)))[:, 0])
    )


def test_hybrid_terms_match_the_subset_formulas(backend, rng):
    a, m = 3, 2
    lw = rng.normal(size=(a + m, 5)) * 3
    terms = hybrid_terms(backend.asarray(lw), m)
    bounds = np.stack(
        [logsumexp(np.concatenate([lw[:a], lw[a + j : a + j + 1]]), 0) for j in range(m)]
    )
    bounds -= math.log(a + 1)
    np.testing.assert_allclose(backend.numpy(terms.bounds), bounds, rtol=1e-12)
    np.testing.assert_allclose(backend.numpy(terms.coupled_signals), bounds, rtol=1e-12)
    ratio = [
        np.exp(
            np.concatenate([lw[:a], lw[a + j : a + j + 1]])
            - logsumexp(np.concatenate([lw[:a], lw[a + j : a + j + 1]]), 0)
        )
        for j in range(m)
    ]
    ref_w = np.concatenate(
        [np.mean([r[:a] for r in ratio], 0), np.stack([r[a] for r in ratio]) / m]
    )
    np.testing.assert_allclose(backend.numpy(terms.weights), ref_w, rtol=1e-12)
    vim = [
        vimco_signals(backend.asarray(np.concatenate([lw[:a], lw[a + j : a + j + 1]])))
        for j in range(m)
    ]
    ref_s = np.mean([backend.numpy(v)[:a] for v in vim], 0)
    np.testing.assert_allclose(backend.numpy(terms.iid_signals), ref_s, rtol=1e-12, atol=1e-14)


def test_hybrid_needs_an_iid_and_two_coupled_samples(backend, rng):
    with pytest.raises(ValueError, match="num_particles >= 3"):
        hybrid_terms(backend.asarray(rng.normal(size=(2, 3))), 2)


# ------------------------------------------------------------------ exact IWAE gradient


D, N = 2, 3
LOGITS = np.array([-1.3, 0.8])


def _exact_iwae_gradient(log_p_table, logits):
    """d/dlogits E_{z_1..n iid q}[log mean_i p(z_i)/q(z_i)] by enumerating all (2^D)^n tuples."""
    phi = torch.tensor(logits, requires_grad=True)
    configs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)))  # [2^D, D]
    lp = torch.tensor(log_p_table.ravel())  # C order matches itertools.product
    logq = (
        configs * torch.nn.functional.logsigmoid(phi)
        + (1 - configs) * torch.nn.functional.logsigmoid(-phi)
    ).sum(-1)
    total = torch.zeros((), dtype=torch.float64)
    for tup in itertools.product(range(2**D), repeat=N):
        idx = torch.tensor(tup)
        lw = lp[idx] - logq[idx]
        total = total + torch.exp(logq[idx].sum()) * (torch.logsumexp(lw, 0) - math.log(N))
    (g,) = torch.autograd.grad(total, phi)
    return g.numpy()


def _index(z):
    return (z[..., 0] * 2 + z[..., 1]).astype(np.int64)


def _log_q(z, logits):
    p = expit(logits)
    return (z * np.log(p) + (1 - z) * np.log1p(-p)).sum(-1)


def _hybrid_estimates(backend, rng, log_p_table, m):
    """VIMCO-ARMS with ``N - 1`` i.i.d. samples and a Dirichlet-coupled pair: an ``N``-sample bound."""
    p, lp, copula = expit(LOGITS), log_p_table.ravel(), DirichletCopula()
    z = (rng.random((N - 1, m, D)) < p).astype(float)
    noise = backend.asarray(draw(rng, copula.noise, (2, m, D)))
    zt = backend.numpy(threshold_sample(copula.uniforms(noise), backend.asarray(LOGITS)))
    zall = np.concatenate([z, zt])
    lw = lp[_index(zall)] - _log_q(zall, LOGITS)  # [N + 1, m]
    terms = hybrid_terms(backend.asarray(lw), 2)
    direct = -(backend.numpy(terms.weights)[..., None] * (zall - p)).sum(0)
    score = (backend.numpy(terms.iid_signals)[..., None] * (z - p)).sum(0)
    f = backend.asarray(backend.numpy(terms.coupled_signals)[..., None])
    c = backend.numpy(arms_coefficients(f, backend.asarray(LOGITS), copula))
    return direct + score + (c * (zt - p)).sum(0)


def _iwae_estimates(backend, rng, log_p_table, method, m):
    if method == "vimco-arms":
        return _hybrid_estimates(backend, rng, log_p_table, m)
    p = expit(LOGITS)
    lp = log_p_table.ravel()
    z = (rng.random((N, m, D)) < p).astype(float)
    lw = lp[_index(z)] - _log_q(z, LOGITS)  # [N, m]
    w_tilde = np.exp(lw - logsumexp(lw, 0, keepdims=True))
    direct = -(w_tilde[..., None] * (z - p)).sum(0)  # autodiff of the bound with z fixed
    if method == "vimco":
        c = backend.numpy(vimco_signals(backend.asarray(lw)))
        return direct + (c[..., None] * (z - p)).sum(0)
    copula = {"arms-dirichlet": DirichletCopula(), "arms-gaussian": GaussianCopula()}.get(
        method, IndependentCopula()
    )
    noise = backend.asarray(draw(rng, copula.noise, (N, m, D)))
    zt = backend.numpy(threshold_sample(copula.uniforms(noise), backend.asarray(LOGITS)))
    lt = lp[_index(zt)] - _log_q(zt, LOGITS)
    f = backend.numpy(local_signals(backend.asarray(lw), backend.asarray(lt)))
    if method == "reference-mean":  # the reference code averages over k: 1/n too small
        f = f / N
    c = backend.numpy(
        arms_coefficients(backend.asarray(f[..., None]), backend.asarray(LOGITS), copula)
    )
    return direct + (c * (zt - p)).sum(0)


@pytest.mark.parametrize(
    "method", ["vimco", "arms-dirichlet", "arms-gaussian", "loorf", "vimco-arms"]
)
def test_iwae_gradients_are_unbiased(backend, rng, method):
    log_p_table = rng.normal(size=(2, 2)) * 2
    exact = _exact_iwae_gradient(log_p_table, LOGITS)
    moments = monte_carlo_moments(
        lambda m: _iwae_estimates(backend, rng, log_p_table, method, m), 200_000, 50_000
    )
    assert_unbiased(moments, exact, z_max=Z_MAX, what=f"IWAE {method}")


def test_averaging_over_k_is_biased(backend, rng):
    """The reference code's mean over k (instead of the sum) is detectably biased."""
    log_p_table = rng.normal(size=(2, 2)) * 2
    exact = _exact_iwae_gradient(log_p_table, LOGITS)
    moments = monte_carlo_moments(
        lambda m: _iwae_estimates(backend, rng, log_p_table, "reference-mean", m), 200_000, 50_000
    )
    with pytest.raises(AssertionError, match="biased"):
        assert_unbiased(moments, exact, z_max=Z_MAX)


def test_bad_inputs(backend, rng):
    with pytest.raises(ValueError, match="n >= 2"):
        vimco_signals(backend.asarray(rng.normal(size=(1, 3))))
    with pytest.raises(ValueError, match="shape mismatch"):
        local_signals(
            backend.asarray(rng.normal(size=(3, 4))), backend.asarray(rng.normal(size=(3, 5)))
        )
