"""CARMS (inverse CDF with orderings) and the stick-breaking coupling."""

import itertools

import numpy as np
import pytest
from scipy.special import softmax

from ppl_arms.core import (
    ARMS,
    CARMS,
    LOORF,
    DirichletCopula,
    GaussianCopula,
    IndependentCopula,
    StickBreakingCARMS,
    arms_coefficients,
    carms_coefficients,
    carms_orderings,
    carms_pair_probability,
    carms_pair_weights,
    carms_sample,
    categorical_gradient,
    loorf_coefficients,
    stick_breaking_pair_weights,
    stick_breaking_sample,
    threshold_sample,
)
from ppl_arms.core.carms import interval_edges, ordering_index
from ppl_arms.testing import (
    assert_unbiased,
    exact_gradient,
    monte_carlo_moments,
    pairwise_expectation,
)

from .helpers import MC_REPLICATES, Z_MAX, draw, random_table, table_lookup

COPULAS = [DirichletCopula(), GaussianCopula()]


@pytest.mark.parametrize("k", range(2, 11))
def test_ordering_family_has_one_ordering_per_pair(k):
    table = carms_orderings(k)
    assert table.shape == (k * (k - 1) // 2, k)
    assert all(sorted(row) == list(range(k)) for row in table)
    ends = sorted((int(r[0]), int(r[-1])) for r in table)
    assert ends == list(itertools.combinations(range(k), 2))


def test_interval_edges_are_exact_at_the_ends(backend):
    p = backend.asarray(np.array([[0.0, 0.0, 0.3, 0.7, 0.0], [0.1, 0.2, 0.3, 0.4, 0.0]]))
    left, right = (backend.numpy(x) for x in interval_edges(p))
    assert np.all(left[:, 0] == 0) and np.all(right[:, -1] == 1)
    assert right[0, 0] == 0 and right[0, 1] == 0 and right[0, 3] == 1
    np.testing.assert_allclose(right - left, backend.numpy(p), atol=1e-15)


def _test_side_pmf(copula, probs, n):
    """K x K pair pmf of CARMS-I, computed independently of the library (numpy + joint_cdf)."""
    import torch

    k = len(probs)
    out = np.zeros((k, k))
    table = carms_orderings(k)
    for order in table:
        cum = np.concatenate([[0.0], np.cumsum(probs[order])])
        lo, hi = np.empty(k), np.empty(k)
        lo[order], hi[order] = cum[:-1], cum[1:]

        def c(s, t):
            return copula.joint_cdf(torch.tensor(s), torch.tensor(t), n).numpy()

        a, b = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        out += c(hi[a], hi[b]) + c(lo[a], lo[b]) - c(lo[a], hi[b]) - c(hi[a], lo[b])
    return out / len(table)


@pytest.mark.parametrize("copula", [*COPULAS, IndependentCopula()], ids=repr)
@pytest.mark.parametrize("n", [2, 3, 4, 6])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_pair_pmf_is_a_consistent_joint(backend, rng, copula, n, k):
    logits = rng.normal(size=k) * 2
    logits[0] = 4.5
    p = softmax(logits)
    a, b = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    pmf = backend.numpy(
        carms_pair_probability(
            backend.asarray(a), backend.asarray(b), backend.asarray(logits), copula, n
        )
    )
    np.testing.assert_allclose(pmf, pmf.T, atol=1e-14)
    np.testing.assert_allclose(pmf.sum(1), p, atol=1e-13)
    assert np.all(pmf[~np.eye(k, dtype=bool)] > 0), "every pair must have positive probability"
    np.testing.assert_allclose(pmf, _test_side_pmf(copula, p, n), atol=1e-14)


@pytest.mark.parametrize("copula", COPULAS, ids=repr)
@pytest.mark.parametrize("n", [2, pytest.param(3, marks=pytest.mark.slow), 4])  # statistical
def test_carms_sampler_marginals_and_pairs(backend, rng, copula, n):
    draws, k = 1_000_000, 4
    logits = np.array([1.2, -0.5, 0.3, -2.0])
    p = softmax(logits)
    v = copula.uniforms(backend.asarray(draw(rng, copula.noise, (n, draws))))
    order = ordering_index(backend.asarray(rng.random(draws)), k)
    z = backend.numpy(carms_sample(v, order, backend.asarray(logits)))
    se = np.sqrt(p * (1 - p) / draws)
    for i in range(n):
        freq = np.bincount(z[i], minlength=k) / draws
        assert np.all(np.abs(freq - p) < 4.5 * se)
    a, b = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    pmf = backend.numpy(
        carms_pair_probability(
            backend.asarray(a), backend.asarray(b), backend.asarray(logits), copula, n
        )
    )
    emp = np.zeros((k, k))
    np.add.at(emp, (z[0], z[n - 1]), 1.0)
    emp /= draws
    se2 = np.sqrt(np.clip(pmf * (1 - pmf), 0, None) / draws)
    assert np.all(np.abs(emp - pmf) < 4.5 * se2 + 1e-12), emp - pmf


@pytest.mark.parametrize("copula", COPULAS, ids=repr)
@pytest.mark.parametrize("n", [2, pytest.param(3, marks=pytest.mark.slow), 4])  # statistical
def test_stick_breaking_sampler_marginals_and_pairs(backend, rng, copula, n):
    draws, k = 1_000_000, 4
    logits = np.array([1.2, -0.5, 0.3, -2.0])
    p = softmax(logits)
    v = copula.uniforms(backend.asarray(draw(rng, copula.noise, (n, draws, k - 1))))
    z = backend.numpy(stick_breaking_sample(v, backend.asarray(logits)))
    se = np.sqrt(p * (1 - p) / draws)
    for i in range(n):
        freq = np.bincount(z[i], minlength=k) / draws
        assert np.all(np.abs(freq - p) < 4.5 * se)
    # pmf from the closed-form weights: P(a, b) = p_a p_b / r(a, b) for a != b
    a, b = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    zz = np.stack([a.ravel(), b.ravel()])  # a "sample" of n=2 rows enumerating all pairs
    w = backend.numpy(
        stick_breaking_pair_weights(backend.asarray(zz), backend.asarray(logits), copula)
    )
    # the weights must come from an n-sample copula, so recompute them with n rows
    zz_n = np.concatenate([zz, np.repeat(zz[:1], n - 2, axis=0)]) if n > 2 else zz
    w = backend.numpy(
        stick_breaking_pair_weights(backend.asarray(zz_n), backend.asarray(logits), copula)
    )
    r = w[0, 1].reshape(k, k)
    pmf = np.outer(p, p) / r
    emp = np.zeros((k, k))
    np.add.at(emp, (z[0], z[n - 1]), 1.0)
    emp /= draws
    off = ~np.eye(k, dtype=bool)
    se2 = np.sqrt(np.clip(pmf * (1 - pmf), 0, None) / draws)
    assert np.all(np.abs(emp - pmf)[off] < 4.5 * se2[off] + 1e-12), emp - pmf


# ---------------------------------------------------------------- exact expectation


_SHAPES = [(1, 4), (2, 3), (3, 2), (2, 4)]


def _exact_cases():
    """Every (n, shape) pair; the default suite runs shape ``i`` with the ``i``-th n only."""
    for i, n in enumerate([2, 3, 4, 6]):
        for j, (d, k) in enumerate(_SHAPES):
            marks = [] if i == j else [pytest.mark.slow]
            yield pytest.param(n, d, k, marks=marks, id=f"{n}-{d}-{k}")


@pytest.mark.parametrize("copula", COPULAS, ids=repr)
@pytest.mark.parametrize(("n", "d", "k"), list(_exact_cases()))
def test_carms_exact_expectation(backend, rng, copula, n, d, k):
    logits = rng.normal(size=(d, k)) * 2
    logits[0, 0] = 4.5  # |logit| >= 4
    probs = softmax(logits, axis=-1)
    f = random_table(rng, d, k)
    pair_probs = np.stack([_test_side_pmf(copula, probs[i], n) for i in range(d)])
    # the implemented weights, evaluated on every (a, b) pair
    a, b = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    zz = np.broadcast_to(np.stack([a.ravel(), b.ravel()])[:, :, None], (2, k * k, d))
    zz = np.concatenate([zz, np.repeat(zz[:1], n - 2, axis=0)]) if n > 2 else zz
    lg = backend.asarray(np.broadcast_to(logits, (k * k, d, k)).copy())
    w = backend.numpy(carms_pair_weights(backend.asarray(np.ascontiguousarray(zz)), lg, copula))
    weights = np.moveaxis(w[0, 1].reshape(k, k, d), -1, 0)
    expected = pairwise_expectation(f, probs, pair_probs, weights)
    np.testing.assert_allclose(expected, exact_gradient(f, probs), rtol=1e-10, atol=1e-13)


def test_rare_categories_keep_exact_weights(backend):
    """The reference code's clip to [0.01, 10] gets the sign of this gradient wrong; ours is exact."""
    p = np.array([0.9, 0.04, 0.03, 0.015, 0.01, 0.005])
    logits = np.log(p)
    k, n = len(p), 3
    copula = DirichletCopula()
    pmf = _test_side_pmf(copula, p, n)
    a, b = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    zz = np.stack([a.ravel(), b.ravel(), a.ravel()])
    w = backend.numpy(
        carms_pair_weights(
            backend.asarray(zz), backend.asarray(np.broadcast_to(logits, (k * k, k)).copy()), copula
        )
    )
    r = w[0, 1].reshape(k, k)
    off = ~np.eye(k, dtype=bool)
    np.testing.assert_allclose(r[off], (np.outer(p, p) / pmf)[off], rtol=1e-10)
    f = np.random.default_rng(1).normal(size=k)
    expected = pairwise_expectation(f, p[None], pmf[None], r[None])
    np.testing.assert_allclose(expected, exact_gradient(f, p[None]), atol=1e-14)


def _unsorted(probs):
    """The unsorted stick order: index order with the most probable category swapped to the end."""
    order = np.arange(len(probs))
    top = int(np.argmax(probs))
    order[[top, -1]] = order[[-1, top]]
    return order


def _stick_pmf(copula, probs, n, order):
    """K x K pair pmf of stick breaking in a given stick order, by enumerating the sticks.

    Independent of the library's weights: both samples pass the sticks before the earlier stop
    (joint probability ``1 - 2 pi + C(pi, pi)`` each), one stops there (``pi - C(pi, pi)``) and the
    other continues alone, with its marginal stop probabilities.
    """
    import torch

    def c(s):
        return float(copula.joint_cdf(torch.tensor(s), torch.tensor(s), n))

    k = len(probs)
    ps = probs[order]
    remaining = np.cumsum(ps[::-1])[::-1]
    pi = np.append(ps[:-1] / remaining[:-1], 1.0)
    pmf = np.zeros((k, k))
    for r in range(k):
        for col in range(r + 1, k):
            both = np.prod([1 - 2 * pi[t] + c(pi[t]) for t in range(r)])
            split = pi[r] - c(pi[r])
            alone = np.prod([1 - pi[t] for t in range(r + 1, col)]) * pi[col]
            pmf[order[r], order[col]] = pmf[order[col], order[r]] = both * split * alone
    return pmf


@pytest.mark.parametrize("copula", COPULAS, ids=repr)
@pytest.mark.parametrize("sort", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_stick_breaking_exact_expectation(backend, rng, copula, sort, n):
    """Exact-enumeration oracle of both stick orders: E[estimate] equals the exact gradient."""
    d, k = 2, 4
    logits = rng.normal(size=(d, k)) * 2
    logits[0, 0] = 4.5
    probs = softmax(logits, axis=-1)
    f = random_table(rng, d, k)
    orders = [
        np.argsort(probs[i], kind="stable") if sort else _unsorted(probs[i]) for i in range(d)
    ]
    pair_probs = np.stack([_stick_pmf(copula, probs[i], n, orders[i]) for i in range(d)])
    off = ~np.eye(k, dtype=bool)
    assert np.all(pair_probs[:, off] > 0), "every pair must have positive probability"
    a, b = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    zz = np.broadcast_to(np.stack([a.ravel(), b.ravel()])[:, :, None], (2, k * k, d))
    zz = np.concatenate([zz, np.repeat(zz[:1], n - 2, axis=0)]) if n > 2 else zz
    lg = backend.asarray(np.broadcast_to(logits, (k * k, d, k)).copy())
    w = backend.numpy(
        stick_breaking_pair_weights(
            backend.asarray(np.ascontiguousarray(zz)), lg, copula, sort=sort
        )
    )
    weights = np.moveaxis(w[0, 1].reshape(k, k, d), -1, 0)
    independent = probs[:, :, None] * probs[:, None, :]
    np.testing.assert_allclose(
        weights[:, off], independent[:, off] / pair_probs[:, off], rtol=1e-10
    )
    expected = pairwise_expectation(f, probs, pair_probs, weights)
    np.testing.assert_allclose(expected, exact_gradient(f, probs), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("copula", COPULAS, ids=repr)
def test_unsorted_stick_breaking_sampler_pairs(backend, rng, copula):
    """The unsorted sampler's empirical pair frequencies match the enumerated pmf."""
    draws, k, n = 400_000, 4, 2
    logits = np.array([1.2, -0.5, 0.3, -2.0])  # p_0 > 1/2: without the swap, pairs are lost
    p = softmax(logits)
    v = copula.uniforms(backend.asarray(draw(rng, copula.noise, (n, draws, k - 1))))
    z = backend.numpy(stick_breaking_sample(v, backend.asarray(logits), sort=False))
    se = np.sqrt(p * (1 - p) / draws)
    assert np.all(np.abs(np.bincount(z[1], minlength=k) / draws - p) < 4.5 * se)
    pmf = _stick_pmf(copula, p, n, _unsorted(p))
    emp = np.zeros((k, k))
    np.add.at(emp, (z[0], z[n - 1]), 1.0)
    emp /= draws
    off = ~np.eye(k, dtype=bool)
    se2 = np.sqrt(pmf * (1 - pmf) / draws)
    assert np.all(np.abs(emp - pmf)[off] < 4.5 * se2[off]), emp - pmf


# ---------------------------------------------------------------- identities


@pytest.mark.parametrize("copula", COPULAS, ids=repr)
@pytest.mark.parametrize("n", [2, 3, pytest.param(5, marks=pytest.mark.slow)])
def test_carms_k2_equals_arms_on_the_indicator(backend, rng, copula, n):
    """K = 2: CARMS has no orientation switch, so it equals ARMS on 1[z = 0] where P(z = 0) < 1/2."""
    m = 400
    phi = -np.abs(rng.normal(size=m)) * 2 - 0.05  # logit of P(z = 0) < 0
    logits = np.stack([phi, np.zeros(m)], -1)  # category 0 has logit phi
    v = copula.uniforms(backend.asarray(draw(rng, copula.noise, (n, m))))
    order = ordering_index(backend.asarray(rng.random(m)), 2)
    z = carms_sample(v, order, backend.asarray(logits))
    b = threshold_sample(v, backend.asarray(phi))  # ARMS sample of the indicator 1[z = 0]
    np.testing.assert_array_equal(backend.numpy(z) == 0, backend.numpy(b) == 1)
    f = backend.asarray(rng.normal(size=(n, m)))
    g_c = backend.numpy(
        categorical_gradient(
            carms_coefficients(f, z, backend.asarray(logits), copula), z, backend.asarray(logits)
        )
    )
    c_a = backend.numpy(arms_coefficients(f, backend.asarray(phi), copula))
    g_a = (c_a * (backend.numpy(b) - 1 / (1 + np.exp(-phi)))).sum(0)
    np.testing.assert_allclose(g_c[:, 0], g_a, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(g_c[:, 1], -g_a, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("sampler", ["inverse_cdf", "stick_breaking"])
@pytest.mark.parametrize("n", [2, 4])
def test_independent_samples_give_loorf(backend, rng, sampler, n):
    k, m = 5, 300
    logits = backend.asarray(rng.normal(size=(m, k)))
    f = backend.asarray(rng.normal(size=(n, m)))
    cop = IndependentCopula()
    if sampler == "inverse_cdf":
        z = carms_sample(
            backend.asarray(rng.random((n, m))),
            ordering_index(backend.asarray(rng.random(m)), k),
            logits,
        )
        c = carms_coefficients(f, z, logits, cop)
    else:
        z = stick_breaking_sample(backend.asarray(rng.random((n, m, k - 1))), logits)
        from ppl_arms.core import stick_breaking_coefficients

        c = stick_breaking_coefficients(f, z, logits, cop)
    np.testing.assert_allclose(
        backend.numpy(c), backend.numpy(loorf_coefficients(f)), rtol=1e-12, atol=1e-14
    )


# ---------------------------------------------------------------- Monte Carlo unbiasedness


def _mc(backend, rng, est, f_table, logits, n):
    d, k = logits.shape
    lg = backend.asarray(logits)

    def chunk(m):
        lgm = backend.asarray(np.broadcast_to(logits, (m, d, k)).copy())
        if est.coupled:
            specs = est.noise_specs(n, (m, d), k)
            noise = tuple(backend.asarray(draw(rng, s.kind, s.shape)) for s in specs)
            z = est.sample(est.coupling(noise), lgm)
        else:
            u = rng.random((n, m, d, 1))
            z = backend.asarray((u > np.cumsum(softmax(logits, -1), -1)).sum(-1))
        zn = backend.numpy(z)
        f = backend.asarray(table_lookup(f_table, zn)[..., None])
        return backend.numpy(categorical_gradient(est.coefficients(f, z, lgm), z, lg))

    return chunk


CATEGORICAL_ESTIMATORS = [
    ("loorf", LOORF()),
    ("carms-dirichlet", CARMS(DirichletCopula())),
    ("carms-gaussian", CARMS(GaussianCopula())),
    ("stick-dirichlet", StickBreakingCARMS(DirichletCopula())),
    ("stick-gaussian", StickBreakingCARMS(GaussianCopula())),
    ("stick-unsorted-dirichlet", StickBreakingCARMS(DirichletCopula(), sort=False)),
    ("stick-unsorted-gaussian", StickBreakingCARMS(GaussianCopula(), sort=False)),
]


def _mc_cases():
    ns = (2, 3, 4)
    for i, (label, est) in enumerate(CATEGORICAL_ESTIMATORS):
        for n in ns:
            # the default suite runs each estimator at one n (rotating over the estimators, so
            # every n is covered); the other n run with the slow tests
            marks = [] if n == ns[(i + 1) % len(ns)] else [pytest.mark.slow]
            yield pytest.param(label, est, n, marks=marks, id=f"{label}-{n}")


@pytest.mark.parametrize(("name", "est", "n"), list(_mc_cases()))
def test_monte_carlo_unbiased(backend, rng, name, est, n):
    d, k = 2, 3
    logits = np.array([[2.0, -1.0, 0.5], [-4.2, 0.3, 0.0]])
    f_table = random_table(rng, d, k)
    exact = exact_gradient(f_table, softmax(logits, -1))
    moments = monte_carlo_moments(
        _mc(backend, rng, est, f_table, logits, n), MC_REPLICATES // 2, 25_000
    )
    assert_unbiased(moments, exact, z_max=Z_MAX, what=f"{name} n={n}")


def test_carms_toy_variance_below_loorf(backend, rng):
    """The CARMS paper's toy: D = 3, K = 3, n = 3, f = sum of a coefficient matrix times one-hot."""
    coef = np.array([[3, 6, 9], [12, 15, 18], [21, 24, 27]], dtype=float)
    f_table = coef[0][:, None, None] + coef[1][None, :, None] + coef[2][None, None, :]
    logits = np.log(np.random.default_rng(1).dirichlet(np.ones(3), size=3))
    var = {}
    for name, est in [("carms", CARMS(DirichletCopula())), ("loorf", LOORF())]:
        _, v, _ = monte_carlo_moments(_mc(backend, rng, est, f_table, logits, 3), 40_000, 20_000)
        var[name] = v.sum()
    assert var["carms"] < 0.9 * var["loorf"]


def test_bad_inputs(backend, rng):
    with pytest.raises(ValueError, match="K >= 2"):
        carms_orderings(1)
    z = backend.asarray(np.zeros((3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"pair weights must have shape \[n, n"):
        from ppl_arms.core import pairwise_coefficients

        pairwise_coefficients(
            backend.asarray(rng.normal(size=(3, 4))), backend.asarray(np.ones((2, 2, 4)))
        )
    with pytest.raises(ValueError, match="n >= 2"):
        carms_pair_weights(z[:1], backend.asarray(rng.normal(size=(4, 3))), DirichletCopula())
    _ = ARMS  # ARMS is the K = 2 reference above
