"""Binary estimators: identities, exact expectations, sampler joints, unbiasedness, edge cases."""

import numpy as np
import pytest
from scipy.special import expit

from ppl_arms.core import (
    ARMS,
    LOORF,
    REINFORCE,
    DirichletCopula,
    DisARM,
    GaussianCopula,
    IndependentCopula,
    NoiseKind,
    arms_coefficients,
    arms_debias,
    arms_pair_probability,
    bernoulli_gradient,
    disarm_coefficients,
    loorf_coefficients,
    reinforce_coefficients,
    threshold_sample,
)
from ppl_arms.testing import (
    assert_unbiased,
    exact_gradient,
    monte_carlo_moments,
    pairwise_expectation,
)

from .helpers import LOGITS_3, MC_CHUNK, MC_REPLICATES, Z_MAX, draw, random_table, table_lookup

COUPLED = {
    "arms-dirichlet": ARMS(DirichletCopula()),
    "arms-gaussian": ARMS(GaussianCopula()),
    "arms-independent": ARMS(IndependentCopula()),
    "disarm": DisARM(),
}


def bern_probs(logits):
    p = expit(np.asarray(logits, dtype=float))
    return np.stack([1 - p, p], axis=-1)


# ---------------------------------------------------------------- exact identities (fixed noise)


@pytest.mark.parametrize("copula", [DirichletCopula(), GaussianCopula()], ids=repr)
def test_arms_n2_equals_disarm(backend, rng, copula):
    logits = backend.asarray(rng.normal(size=(50, 3)) * 3)
    noise = backend.asarray(draw(rng, copula.noise, (2, 50, 3)))
    z = threshold_sample(copula.uniforms(noise), logits)
    f = backend.asarray(rng.normal(size=(2, 50, 1)))
    g_arms = bernoulli_gradient(arms_coefficients(f, logits, copula), z, logits)
    g_disarm = bernoulli_gradient(disarm_coefficients(f, logits), z, logits)
    np.testing.assert_allclose(
        backend.numpy(g_arms), backend.numpy(g_disarm), rtol=1e-12, atol=1e-14
    )
    c1 = backend.numpy(arms_coefficients(f, logits, copula))
    c2 = backend.numpy(disarm_coefficients(f, logits))
    np.testing.assert_allclose(c1, c2, rtol=1e-12, atol=1e-14)


def test_arms_n2_sampler_is_the_disarm_pair(backend, rng):
    """With n=2 the Dirichlet copula is (V, 1-V): the ARMS pair is DisARM's pair for u = V."""
    noise = backend.asarray(rng.random((2, 2000)))
    logits = backend.asarray(rng.normal(size=2000) * 2)
    v = DirichletCopula().uniforms(noise)
    z_arms = backend.numpy(threshold_sample(v, logits))
    u = backend.numpy(v)[:1]
    p = expit(backend.numpy(logits))
    b, b_tilde = (u < p).astype(float), (1 - u < p).astype(float)
    # DisARM's (b, b~) and ARMS's (z_1, z_2) are the same unordered pair; ties have measure zero
    same = np.sort(np.stack([b[0], b_tilde[0]]), 0) == np.sort(z_arms, 0)
    assert same.mean() > 0.999


def test_disarm_pairs_average_of_n2_estimates(backend, rng):
    m = 3
    logits = backend.asarray(rng.normal(size=(7, 2)))
    u = rng.random((m, 7, 2))
    f = rng.normal(size=(2 * m, 7, 2))
    from ppl_arms.core import antithetic_pairs

    z = threshold_sample(antithetic_pairs(backend.asarray(u)), logits)
    g = backend.numpy(
        bernoulli_gradient(disarm_coefficients(backend.asarray(f), logits), z, logits)
    )
    zs = backend.numpy(z)
    parts = []
    for k in range(m):
        idx = [k, k + m]
        fk, zk = backend.asarray(f[idx]), backend.asarray(zs[idx])
        parts.append(backend.numpy(bernoulli_gradient(disarm_coefficients(fk, logits), zk, logits)))
    np.testing.assert_allclose(g, np.mean(parts, axis=0), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_arms_with_independent_noise_is_loorf(backend, rng, n):
    logits = backend.asarray(rng.normal(size=(20, 4)) * 3)
    f = backend.asarray(rng.normal(size=(n, 20, 4)))
    c_arms = backend.numpy(arms_coefficients(f, logits, IndependentCopula()))
    c_loorf = backend.numpy(loorf_coefficients(f))
    np.testing.assert_allclose(c_arms, c_loorf, rtol=1e-13, atol=1e-15)


def test_coefficients_match_a_hand_computation(backend, rng):
    n, copula = 4, DirichletCopula()
    logits = rng.normal(size=5) * 2
    f = rng.normal(size=(n, 5))
    z = (rng.random((n, 5)) < expit(logits)).astype(float)
    p = expit(logits)
    m = np.minimum(p, 1 - p)
    c_n = np.maximum(2 * m ** (1 / (n - 1)) - 1, 0) ** (n - 1)
    debias = p * (1 - p) / (m - c_n)
    expected = (debias * (f - f.mean(0)) / (n - 1) * (z - p)).sum(0)
    got = bernoulli_gradient(
        arms_coefficients(backend.asarray(f), backend.asarray(logits), copula),
        backend.asarray(z),
        backend.asarray(logits),
    )
    np.testing.assert_allclose(backend.numpy(got), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        backend.numpy(reinforce_coefficients(backend.asarray(f))), f / n, rtol=1e-15
    )


# ---------------------------------------------------------------- exact expectation (no MC)


def _pair_11_from_joint_cdf(copula, p, n):
    """P(z_i = 1, z_j = 1) from the copula's joint CDF and the sampler's orientation switch."""
    import torch

    p_t = torch.as_tensor(p)
    q_t = 1 - p_t
    low = copula.joint_cdf(p_t, p_t, n).numpy()
    high = (2 * p_t - 1 + copula.joint_cdf(q_t, q_t, n)).numpy()
    return np.where(p < 0.5, low, high)


@pytest.mark.parametrize(
    "copula", [DirichletCopula(), GaussianCopula(), IndependentCopula()], ids=repr
)
@pytest.mark.parametrize("n", [2, 3, 4, 6])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_arms_exact_expectation(backend, rng, copula, n, d):
    logits = np.concatenate([LOGITS_3, rng.normal(size=3) * 3])[:d]
    logits[0] = rng.choice([-5.0, -4.0, 4.0, 6.0])  # always one |logit| >= 4
    f = random_table(rng, d, 2)
    probs = bern_probs(logits)
    p = probs[:, 1]
    p11 = _pair_11_from_joint_cdf(copula, p, n)
    p10 = p - p11
    pair_probs = np.zeros((d, 2, 2))
    pair_probs[:, 1, 0] = pair_probs[:, 0, 1] = p10
    debias = backend.numpy(arms_debias(backend.asarray(logits), n, copula))
    weights = np.broadcast_to(debias[:, None, None], (d, 2, 2))
    expected = pairwise_expectation(f, probs, pair_probs, weights)
    exact = exact_gradient(f, probs)
    np.testing.assert_allclose(expected[:, 1], exact[:, 1], rtol=1e-10, atol=1e-14)
    # The implemented P11 agrees with the one derived from the joint CDF here.
    p11_impl = backend.numpy(arms_pair_probability(backend.asarray(logits), n, copula))
    np.testing.assert_allclose(p11_impl, p11, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- sampler checks


@pytest.mark.parametrize("copula", [DirichletCopula(), GaussianCopula()], ids=repr)
# sampler frequencies are statistical: n = 3 and 4 run with the slow tests (2 and 6 by default)
@pytest.mark.parametrize(
    "n", [2, pytest.param(3, marks=pytest.mark.slow), pytest.param(4, marks=pytest.mark.slow), 6]
)
def test_arms_sampler_marginal_and_pair_joint(backend, rng, copula, n):
    draws = 1_000_000
    logits = np.array([-3.0, -0.7, 0.0, 0.4, 2.5])
    noise = backend.asarray(draw(rng, copula.noise, (n, draws, 5)))
    z = backend.numpy(threshold_sample(copula.uniforms(noise), backend.asarray(logits)))
    p = expit(logits)
    freq = z.mean(axis=1)  # [n, 5]
    se = np.sqrt(p * (1 - p) / draws)
    assert np.all(np.abs(freq - p) < 4.5 * se)
    p11 = backend.numpy(arms_pair_probability(backend.asarray(logits), n, copula))
    for i, j in [(0, 1), (n - 1, 0)]:
        emp = (z[i] * z[j]).mean(axis=0)
        se11 = np.sqrt(np.maximum(p11 * (1 - p11), 1e-12) / draws)
        assert np.all(np.abs(emp - p11) < 4.5 * se11 + 1e-12), (emp, p11)


# ---------------------------------------------------------------- Monte Carlo unbiasedness


def _mc_gradient(backend, rng, estimator, f_table, logits, n):
    """A function m -> [m, D] of independent estimator draws for the MC helper."""
    d = len(logits)
    lg = backend.asarray(logits)

    def one_chunk(m):
        if estimator.coupled:
            specs = estimator.noise_specs(n, (m, d), 2)
            noise = tuple(backend.asarray(draw(rng, s.kind, s.shape)) for s in specs)
            z = estimator.sample(estimator.coupling(noise), lg)
        else:
            z = backend.asarray((rng.random((n, m, d)) < expit(logits)).astype(float))
        zn = backend.numpy(z).astype(np.int64)
        f = backend.asarray(table_lookup(f_table, zn)[..., None])
        c = estimator.coefficients(f, z, lg)
        return backend.numpy(bernoulli_gradient(c, z, lg))

    return one_chunk


ESTIMATORS_N = [
    ("reinforce", REINFORCE(), [2, 3]),
    ("loorf", LOORF(), [2, 3, 4, 6]),
    ("disarm", DisARM(), [2, 4, 6]),
    ("arms-dirichlet", ARMS(DirichletCopula()), [2, 3, 4, 6]),
    ("arms-gaussian", ARMS(GaussianCopula()), [2, 3, 4, 6]),
]


@pytest.mark.parametrize(
    ("name", "estimator", "n"),
    [(name, est, n) for name, est, ns in ESTIMATORS_N for n in ns],
    ids=lambda x: str(x) if not hasattr(x, "coefficients") else "",
)
def test_monte_carlo_unbiased(backend, rng, name, estimator, n):
    f_table = random_table(rng, 3, 2)
    logits = LOGITS_3
    exact = exact_gradient(f_table, bern_probs(logits))[:, 1]
    moments = monte_carlo_moments(
        _mc_gradient(backend, rng, estimator, f_table, logits, n), MC_REPLICATES, MC_CHUNK
    )
    assert_unbiased(moments, exact, z_max=Z_MAX, what=f"{name} n={n}")


def test_monte_carlo_check_detects_a_wrong_debias(backend, rng):
    """Negative control: LOORF coefficients on Dirichlet-coupled samples are biased, and the
    unbiasedness test above has the power to see it."""

    class Wrong(ARMS):
        def coefficients(self, f, z, logits):
            return loorf_coefficients(f)

    f_table = random_table(rng, 3, 2)
    exact = exact_gradient(f_table, bern_probs(LOGITS_3))[:, 1]
    moments = monte_carlo_moments(
        _mc_gradient(backend, rng, Wrong(DirichletCopula()), f_table, LOGITS_3, 4),
        MC_REPLICATES,
        MC_CHUNK,
    )
    with pytest.raises(AssertionError, match="biased"):
        assert_unbiased(moments, exact, z_max=Z_MAX)


def test_arms_has_lower_variance_than_loorf_on_the_toy(backend, rng):
    """The ARMS paper's toy f(z) = (z - 0.49)^2 at n = 4, over a range of p."""
    logits = np.linspace(-3, 3, 13)
    f_table = np.array([0.49**2, 0.51**2])
    var = {}
    for name, est in [("arms", ARMS(DirichletCopula())), ("loorf", LOORF())]:
        f_tab = f_table.reshape(2)
        _, v, _ = monte_carlo_moments(
            _mc_gradient_1d(backend, rng, est, f_tab, logits, 4), 100_000, 50_000
        )
        var[name] = v
    assert np.sum(var["arms"]) < 0.5 * np.sum(var["loorf"])
    assert np.all(var["arms"] <= var["loorf"] * 1.1)


def _mc_gradient_1d(backend, rng, estimator, f_tab, logits, n):
    d = len(logits)
    lg = backend.asarray(logits)

    def one_chunk(m):
        if estimator.coupled:
            specs = estimator.noise_specs(n, (m, d), 2)
            noise = tuple(backend.asarray(draw(rng, s.kind, s.shape)) for s in specs)
            z = estimator.sample(estimator.coupling(noise), lg)
        else:
            z = backend.asarray((rng.random((n, m, d)) < expit(logits)).astype(float))
        f = backend.asarray(f_tab[backend.numpy(z).astype(np.int64)])
        return backend.numpy(bernoulli_gradient(estimator.coefficients(f, z, lg), z, lg))

    return one_chunk


# ---------------------------------------------------------------- degenerate and bad inputs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [2, 3, 64])
@pytest.mark.parametrize("name", list(COUPLED))
def test_degenerate_probabilities(backend, rng, dtype, n, name):
    est = COUPLED[name]
    if name == "disarm" and n % 2:
        pytest.skip("DisARM needs even n (tested in test_bad_inputs)")
    logits = backend.asarray(
        np.array([-np.inf, -60.0, -20.0, -4.0, 0.0, 4.0, 20.0, 60.0, np.inf]), dtype
    )
    specs = est.noise_specs(n, (9,), 2)
    noise = tuple(backend.asarray(draw(rng, s.kind, s.shape), dtype) for s in specs)
    z = est.sample(est.coupling(noise), logits)
    zn = backend.numpy(z)
    assert zn.dtype == np.dtype(dtype)
    assert np.all(zn[:, 0] == 0) and np.all(zn[:, -1] == 1)
    f = backend.asarray(rng.normal(size=(n, 9)), dtype)
    c = backend.numpy(est.coefficients(f, z, logits))
    g = backend.numpy(bernoulli_gradient(backend.asarray(c, dtype), z, logits))
    assert np.all(np.isfinite(c)) and np.all(np.isfinite(g))
    assert g[0] == 0 and g[-1] == 0
    if isinstance(est, ARMS):
        debias = backend.numpy(arms_debias(logits, n, est.copula))
        p = expit(backend.numpy(logits).astype(float))
        tol = 1e-6 if dtype == "float32" else 1e-12
        assert np.all(debias <= 1 + tol) and np.all(debias >= np.maximum(p, 1 - p) - tol)
        assert debias[0] == 1 and debias[-1] == 1


def test_debias_limits(backend):
    logits = backend.asarray(np.array([-30.0, -3.0, 0.0, 3.0, 30.0]))
    d2 = backend.numpy(arms_debias(logits, 2, DirichletCopula()))
    np.testing.assert_allclose(
        d2, np.maximum(expit([-30, -3, 0, 3, 30]), expit([30, 3, 0, -3, -30])), rtol=1e-12
    )
    at_half = [
        float(backend.numpy(arms_debias(backend.asarray(np.array([0.0])), n, DirichletCopula()))[0])
        for n in (2, 3, 50)
    ]
    assert at_half[0] == pytest.approx(0.5) and at_half[1] == pytest.approx(0.7612, abs=1e-3)
    assert 0.95 < at_half[2] < 1
    # p <= 2^-(n-1): P11 = 0 and the factor is 1 - p
    p_small = backend.asarray(np.array([np.log(0.01 / 0.99)]))
    assert float(backend.numpy(arms_debias(p_small, 4, DirichletCopula()))[0]) == pytest.approx(
        0.99, rel=1e-12
    )


def test_bad_inputs(backend, rng):
    logits = backend.asarray(rng.normal(size=3))
    with pytest.raises(ValueError, match="n >= 2"):
        arms_coefficients(backend.asarray(rng.normal(size=(1, 3))), logits, DirichletCopula())
    with pytest.raises(ValueError, match="n >= 2"):
        loorf_coefficients(backend.asarray(rng.normal(size=(1, 3))))
    with pytest.raises(ValueError, match="leading sample axis"):
        loorf_coefficients(backend.asarray(np.array(1.0)))
    with pytest.raises(ValueError, match="even number"):
        disarm_coefficients(backend.asarray(rng.normal(size=(3, 3))), logits)
    with pytest.raises(ValueError, match="even num_particles"):
        DisARM().check(5, "z")
    with pytest.raises(ValueError, match=r"site 'z'.*num_particles >= 2"):
        ARMS().check(1, "z")
    with pytest.raises(ValueError, match="shape mismatch"):
        arms_coefficients(backend.asarray(rng.normal(size=(4, 5))), logits, DirichletCopula())
    with pytest.raises(ValueError, match="shape mismatch"):
        disarm_coefficients(backend.asarray(rng.normal(size=(4, 2))), logits)


def test_noise_kinds():
    assert ARMS(GaussianCopula()).noise_specs(4, (3,), 2)[0].kind is NoiseKind.NORMAL
    assert ARMS(DirichletCopula()).noise_specs(4, (3,), 2)[0].shape == (4, 3)
    assert DisARM().noise_specs(4, (3,), 2)[0].shape == (2, 3)
