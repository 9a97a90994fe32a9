"""Copulas: exact uniform marginals, exchangeable pairwise joints, the bivariate normal CDF."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal, norm

from ppl_arms.core import (
    DirichletCopula,
    GaussianCopula,
    IndependentCopula,
    NoiseKind,
    antithetic_pairs,
    bivariate_normal_cdf,
)

COPULAS = [DirichletCopula(), GaussianCopula(), IndependentCopula()]


def draw_noise(rng, copula, shape):
    if copula.noise is NoiseKind.NORMAL:
        return rng.standard_normal(shape)
    return rng.random(shape)


@pytest.mark.parametrize("copula", COPULAS, ids=repr)
@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_marginals_are_uniform(backend, rng, copula, n):
    draws = 200_000
    v = backend.numpy(copula.uniforms(backend.asarray(draw_noise(rng, copula, (n, draws)))))
    assert v.shape == (n, draws)
    assert np.all((v >= 0) & (v <= 1))
    # CDF at a grid of points, per sample index: binomial standard error.
    for t in [0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99]:
        freq = (v <= t).mean(axis=1)
        se = math.sqrt(t * (1 - t) / draws)
        assert np.all(np.abs(freq - t) < 4.5 * se), (t, freq)


@pytest.mark.parametrize("copula", COPULAS, ids=repr)
@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_pairwise_joint_matches_closed_form(backend, rng, copula, n):
    draws = 1_000_000
    v = backend.numpy(copula.uniforms(backend.asarray(draw_noise(rng, copula, (n, draws)))))
    grid = np.array([0.05, 0.2, 0.5, 0.8, 0.95])
    s, t = np.meshgrid(grid, grid, indexing="ij")
    exact = backend.numpy(copula.joint_cdf(backend.asarray(s), backend.asarray(t), n))
    for i, j in [(0, 1), (n - 1, 0)]:
        emp = ((v[i][:, None, None] <= s) & (v[j][:, None, None] <= t)).mean(axis=0)
        se = np.sqrt(np.maximum(exact * (1 - exact), 1e-12) / draws)
        assert np.all(np.abs(emp - exact) < 4.5 * se + 1e-12), (i, j, emp - exact)


@pytest.mark.parametrize("copula", [DirichletCopula(), GaussianCopula()], ids=repr)
def test_n2_is_the_antithetic_pair(backend, rng, copula):
    v = backend.numpy(copula.uniforms(backend.asarray(draw_noise(rng, copula, (2, 1000)))))
    np.testing.assert_allclose(v[0] + v[1], 1.0, atol=1e-12)


def test_dirichlet_copula_repels(backend, rng):
    n = 5
    v = backend.numpy(DirichletCopula().uniforms(backend.asarray(rng.random((n, 100_000)))))
    # sum D_i = 1, so at most one V_i = (1 - D_i)^(n-1) lies below 2^-(n-1)
    assert np.all((v < 2.0 ** -(n - 1)).sum(axis=0) <= 1)


def test_dirichlet_all_zero_noise_is_finite(backend):
    v = backend.numpy(DirichletCopula().uniforms(backend.asarray(np.zeros((4, 3)))))
    assert np.all(np.isfinite(v))


@pytest.mark.parametrize("n", [3, 4, 5, 8, 64])
def test_bivariate_normal_cdf_matches_scipy(backend, n):
    rho = -1.0 / (n - 1)
    pts = np.array([-6.0, -3.0, -1.2, -0.3, 0.0, 0.4, 1.5, 3.0, 6.0])
    h, k = np.meshgrid(pts, pts, indexing="ij")
    ours = backend.numpy(bivariate_normal_cdf(backend.asarray(h), backend.asarray(k), rho))
    mvn = multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]], allow_singular=False)
    ref = np.array([[mvn.cdf([a, b]) for b in pts] for a in pts])
    # scipy's own accuracy is ~1e-8..1e-10 (Genz's adaptive code with abseps 1e-5 by default is
    # loose), so compare against it at 1e-7 and check internal consistency more tightly below.
    np.testing.assert_allclose(ours, ref, atol=1e-7)


@pytest.mark.parametrize("n", [3, 4, 6, 16])
def test_bivariate_normal_cdf_limits_and_symmetry(backend, n):
    rho = -1.0 / (n - 1)
    h = backend.asarray(np.array([-np.inf, np.inf, np.inf, 0.3, -np.inf]))
    k = backend.asarray(np.array([0.5, 0.5, np.inf, np.inf, -np.inf]))
    out = backend.numpy(bivariate_normal_cdf(h, k, rho))
    np.testing.assert_allclose(out, [0.0, norm.cdf(0.5), 1.0, norm.cdf(0.3), 0.0], atol=1e-15)
    a = np.linspace(-4, 4, 17)
    x = backend.numpy(bivariate_normal_cdf(backend.asarray(a), backend.asarray(a[::-1]), rho))
    y = backend.numpy(bivariate_normal_cdf(backend.asarray(a[::-1]), backend.asarray(a), rho))
    np.testing.assert_allclose(x, y, atol=1e-15)
    # Plackett: at h = k = 0, Phi2 = 1/4 + asin(rho) / (2 pi)
    zero = backend.numpy(bivariate_normal_cdf(backend.asarray(0.0), backend.asarray(0.0), rho))
    assert abs(zero - (0.25 + math.asin(rho) / (2 * math.pi))) < 1e-15


@pytest.mark.parametrize("n", [3, 4, 6, 16, 64])
def test_gaussian_discordance_is_accurate(backend, n):
    """The cancellation-free diagonal form agrees with m - Phi2(h, h) where that is well posed,
    and is relatively accurate down to tiny m (checked against a 2000-point quadrature)."""
    cop = GaussianCopula()
    m = np.array([0.5, 0.4, 0.2, 0.05, 1e-3, 1e-6, 1e-12, 1e-40, 0.0])
    disc = backend.numpy(cop.discordance(backend.asarray(m), n))
    h = norm.ppf(np.maximum(m, 1e-300))
    direct = m - backend.numpy(
        bivariate_normal_cdf(backend.asarray(h), backend.asarray(h), -1 / (n - 1))
    )
    np.testing.assert_allclose(disc[:4], direct[:4], rtol=1e-12, atol=1e-15)
    # high-order reference for the relative accuracy at small m
    x, w = np.polynomial.legendre.leggauss(2000)
    smax = 1 / (n - 2)
    s = (x + 1) / 2 * smax
    ref_tail = np.array(
        [
            np.sum(w / 2 * smax * np.exp(-(hh**2) * (1 + s)) / ((1 + s) * np.sqrt(1 + 2 * s)))
            for hh in h
        ]
    ) / (2 * np.pi)
    ref = m * (1 - m) + ref_tail
    np.testing.assert_allclose(disc[:-1], ref[:-1], rtol=1e-13)
    assert disc[-1] == 0.0


@settings(max_examples=200, deadline=None)
@given(
    s=st.floats(0.0, 1.0),
    t=st.floats(0.0, 1.0),
    n=st.integers(2, 40),
    which=st.sampled_from(["dirichlet", "gaussian", "independent"]),
)
def test_joint_cdf_within_frechet_bounds(s, t, n, which):
    import torch

    cop = {
        "dirichlet": DirichletCopula(),
        "gaussian": GaussianCopula(),
        "independent": IndependentCopula(),
    }[which]
    c = float(cop.joint_cdf(torch.tensor(s), torch.tensor(t), n))
    assert max(0.0, s + t - 1) - 1e-12 <= c <= min(s, t) + 1e-12
    if which != "independent":
        # negative quadrant dependence: never above independence
        assert c <= s * t + 1e-12


def test_antithetic_pairs_layout(backend, rng):
    u = rng.random((3, 5))
    v = backend.numpy(antithetic_pairs(backend.asarray(u)))
    np.testing.assert_allclose(v[:3], u)
    np.testing.assert_allclose(v[3:], 1 - u)


@pytest.mark.parametrize("copula", COPULAS, ids=repr)
def test_copula_rejects_n_below_two(backend, copula):
    with pytest.raises(ValueError, match="n >= 2"):
        copula.uniforms(backend.asarray(np.zeros((1, 3))))
    with pytest.raises(ValueError, match="n >= 2"):
        copula.joint_cdf(backend.asarray(0.2), backend.asarray(0.3), 1)
    with pytest.raises(ValueError, match="rho"):
        bivariate_normal_cdf(backend.asarray(0.0), backend.asarray(0.0), -0.9)
