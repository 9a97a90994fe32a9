"""The pair-list estimators (loop over orderings, chunks of elements) equal the old dense forms.

The reference below is the original dense implementation of CARMS-I's pair pmf and weights, which
materialised ``[n, n, *shape, |Pi|]`` arrays, and the original dense stick-breaking weights and
pairwise coefficients. The restructured code must give the same numbers (1e-12 relative), in both
backends, eagerly and under ``jit``, whether or not the elements are split into chunks.
"""

import jax
import numpy as np
import pytest

from ppl_arms.core import (
    DirichletCopula,
    GaussianCopula,
    IndependentCopula,
    carms_coefficients,
    carms_orderings,
    carms_pair_probability,
    carms_pair_weights,
    carms_sample,
    categorical_directions,
    stick_breaking_coefficients,
    stick_breaking_pair_weights,
    stick_breaking_sample,
)
from ppl_arms.core import carms as carms_module
from ppl_arms.core._ops import get_ops
from ppl_arms.core._validate import broadcast_shapes
from ppl_arms.core.carms import carms_pair_list_weights, interval_edges, ordering_index
from ppl_arms.core.categorical import (
    categorical_score,
    dense_pair_weights,
    pair_list_coefficients,
    sample_pairs,
)
from ppl_arms.core.stick_breaking import stick_breaking_pair_list_weights

COPULAS = [DirichletCopula(), GaussianCopula(), IndependentCopula()]

# The pair pmf is a sum of four O(1) copula values per ordering; summing over orderings in a loop
# instead of along an axis (and JAX's cumsum on a smaller array) can change its last bits, so pair
# probabilities are compared with a few float64 ulps of one as absolute slack, and weights through
# the probabilities they imply (P = p_a p_b / r).
PMF_ATOL = 16 * np.finfo(np.float64).eps


# ------------------------------------------------------------------ the old dense reference


def _dense_edges_by_category(p):
    ops = get_ops(p)
    k = ops.shape(p)[-1]
    table = ops.to_int(ops.const(carms_orderings(k), p))
    pos = ops.to_int(ops.const(np.argsort(carms_orderings(k), axis=1), p))
    left, right = interval_edges(p[..., table])  # [*shape, |Pi|, K]
    pos = ops.broadcast_to(pos, ops.shape(left))
    return ops.take_along_axis(left, pos, axis=-1), ops.take_along_axis(right, pos, axis=-1)


def _dense_gather(edges, idx):
    ops = get_ops(edges, idx)
    num = ops.shape(edges)[-2]
    prefix = broadcast_shapes(ops.shape(idx), ops.shape(edges)[:-2], ("categories", "logits"))
    full = ops.broadcast_to(edges, (*prefix, *ops.shape(edges)[-2:]))
    index = ops.broadcast_to(ops.expand_dims(ops.expand_dims(idx, -1), -1), (*prefix, num, 1))
    return ops.take_along_axis(full, index, axis=-1)[..., 0]


def dense_pair_probability(a, b, logits, copula, n):
    ops = get_ops(logits)
    p = ops.exp(ops.log_softmax(ops.stop_gradient(logits), axis=-1))
    left, right = _dense_edges_by_category(p)
    la, ra = _dense_gather(left, a), _dense_gather(right, a)
    lb, rb = _dense_gather(left, b), _dense_gather(right, b)
    c = copula.joint_cdf
    return ops.mean(c(ra, rb, n) + c(la, lb, n) - c(la, rb, n) - c(ra, lb, n), axis=-1)


def dense_carms_weights(z, logits, copula):
    ops = get_ops(z, logits)
    n = ops.shape(z)[0]
    zi, zj = ops.expand_dims(z, 1), ops.expand_dims(z, 0)
    pair_prob = dense_pair_probability(zi, zj, logits, copula, n)
    p = ops.exp(ops.log_softmax(ops.stop_gradient(logits), axis=-1))
    pz = _dense_gather(ops.expand_dims(p, -2), z)[..., 0]
    independent = ops.expand_dims(pz, 1) * ops.expand_dims(pz, 0)
    usable = (zi != zj) & (pair_prob > 0)
    return ops.where(usable, independent / ops.where(usable, pair_prob, 1.0), 1.0)


def dense_coefficients(f, weights):
    ops = get_ops(f, weights)
    n = ops.shape(f)[0]
    diff = ops.expand_dims(f, 1) - ops.expand_dims(f, 0)
    return ops.sum(weights * diff, axis=1) / (n * (n - 1))


# ------------------------------------------------------------------ tests


def _assert_same_weights(new, old, z, logits):
    """Weights [n, n, *shape] agree: one for same-category pairs, pair pmfs p_a p_b / r within PMF_ATOL."""
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    pz = np.take_along_axis(np.broadcast_to(p, (z.shape[0], *p.shape)), z[..., None], -1)[..., 0]
    independent = pz[:, None] * pz[None, :]
    same = z[:, None] == z[None, :]
    np.testing.assert_array_equal(new[same], 1.0)
    np.testing.assert_array_equal(old[same], 1.0)
    np.testing.assert_allclose(independent / new, independent / old, rtol=1e-12, atol=PMF_ATOL)


def _case(rng, n, shape, k):
    logits = rng.normal(size=(*shape, k)) * 2.5
    logits.reshape(-1, k)[0, 0] = 6.0  # a dominant category
    logits.reshape(-1, k)[-1, -1] = -9.0  # a rare one
    u = rng.random((n, *shape))
    order = rng.random(shape)
    f = rng.normal(size=(n, *shape))
    return logits, u, order, f


@pytest.mark.parametrize("copula", COPULAS, ids=repr)
@pytest.mark.parametrize(
    ("n", "k"),
    # the larger cases compile long pair loops in JAX (about 10 s of CPU each): slow set
    [
        (2, 2),
        (3, 5),
        pytest.param(4, 10, marks=pytest.mark.slow),
        pytest.param(5, 4, marks=pytest.mark.slow),
    ],
)
def test_pair_list_weights_equal_the_dense_reference(backend, rng, copula, n, k):
    shape = (7, 3)
    logits, u, order, f = _case(rng, n, shape, k)
    lg = backend.asarray(logits)
    v = (
        copula.uniforms(backend.asarray(u))
        if copula.noise.value == "uniform"
        else backend.asarray(u)
    )
    z = carms_sample(v, ordering_index(backend.asarray(order), k), lg)
    old = backend.numpy(dense_carms_weights(z, lg, copula))
    new_dense = backend.numpy(carms_pair_weights(z, lg, copula))
    _assert_same_weights(new_dense, old, backend.numpy(z), logits)
    pairs = backend.numpy(carms_pair_list_weights(z, lg, copula))
    first, second = sample_pairs(n)
    np.testing.assert_array_equal(pairs, new_dense[first, second])
    coef_old = backend.numpy(dense_coefficients(backend.asarray(f), backend.asarray(old)))
    coef_new = backend.numpy(carms_coefficients(backend.asarray(f), z, lg, copula))
    np.testing.assert_allclose(coef_new, coef_old, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("copula", [DirichletCopula(), GaussianCopula()], ids=repr)
def test_pair_probability_equals_the_dense_reference(backend, rng, copula):
    k, n = 6, 4
    logits = backend.asarray(rng.normal(size=(3, k)) * 2)
    a, b = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    a = backend.asarray(a[:, :, None])
    b = backend.asarray(b[:, :, None])
    old = backend.numpy(dense_pair_probability(a, b, logits, copula, n))
    new = backend.numpy(carms_pair_probability(a, b, logits, copula, n))
    assert new.shape == (k, k, 3)
    np.testing.assert_allclose(new, old, rtol=1e-12, atol=PMF_ATOL)


@pytest.mark.parametrize("chunk_entries", [7, pytest.param(64, marks=pytest.mark.slow), 1 << 20])
def test_chunking_does_not_change_the_weights(backend, rng, monkeypatch, chunk_entries):
    """Chunks of 1 element (7 // 5), chunks with a remainder (64 // 5 = 12 of 105) and one chunk."""
    n, k, shape = 4, 5, (35, 3)
    copula = DirichletCopula()
    logits, u, order, _ = _case(rng, n, shape, k)
    lg = backend.asarray(logits)
    z = carms_sample(
        copula.uniforms(backend.asarray(u)), ordering_index(backend.asarray(order), k), lg
    )
    reference = backend.numpy(carms_pair_weights(z, lg, copula))  # one chunk
    monkeypatch.setattr(carms_module, "CHUNK_ENTRIES", chunk_entries)
    got = backend.numpy(carms_pair_weights(z, lg, copula))
    _assert_same_weights(got, reference, backend.numpy(z), logits)
    old = backend.numpy(dense_carms_weights(z, lg, copula))
    _assert_same_weights(got, old, backend.numpy(z), logits)


def test_jit_and_chunks_in_jax(rng, monkeypatch):
    import jax.numpy as jnp

    monkeypatch.setattr(carms_module, "CHUNK_ENTRIES", 40)  # 8 elements per chunk, remainder 5
    n, k, shape = 3, 5, (29,)
    copula = GaussianCopula()
    logits, _, order, f = _case(rng, n, shape, k)

    def coefficients(lg, u, order, f):
        z = carms_sample(copula.uniforms(u), ordering_index(order, k), lg)
        return carms_coefficients(f, z, lg, copula), dense_coefficients(
            f, dense_carms_weights(z, lg, copula)
        )

    args = tuple(jnp.asarray(x) for x in (logits, rng.standard_normal((n, *shape)), order, f))
    new, old = jax.jit(coefficients)(*args)
    np.testing.assert_allclose(np.asarray(new), np.asarray(old), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("copula", [DirichletCopula(), GaussianCopula()], ids=repr)
@pytest.mark.parametrize("n", [2, 3, pytest.param(4, marks=pytest.mark.slow)])
def test_stick_breaking_pair_list_equals_the_dense_form(backend, rng, copula, n):
    k, shape = 6, (11, 2)
    logits = backend.asarray(rng.normal(size=(*shape, k)) * 2)
    noise = (
        rng.random((n, *shape, k - 1))
        if copula.noise.value == "uniform"
        else rng.standard_normal((n, *shape, k - 1))
    )
    z = stick_breaking_sample(copula.uniforms(backend.asarray(noise)), logits)
    dense = backend.numpy(stick_breaking_pair_weights(z, logits, copula))
    first, second = sample_pairs(n)
    pairs = backend.numpy(stick_breaking_pair_list_weights(z, logits, copula))
    np.testing.assert_array_equal(pairs, dense[first, second])
    np.testing.assert_array_equal(dense, np.swapaxes(dense, 0, 1))
    f = backend.asarray(rng.normal(size=(n, *shape)))
    old = backend.numpy(dense_coefficients(f, backend.asarray(dense)))
    new = backend.numpy(stick_breaking_coefficients(f, z, logits, copula))
    np.testing.assert_allclose(new, old, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("n", [2, 3, 6])
def test_pair_list_helpers(backend, rng, n):
    first, second = sample_pairs(n)
    assert list(zip(first.tolist(), second.tolist(), strict=True)) == [
        (i, j) for i in range(n) for j in range(i + 1, n)
    ]
    pw = rng.random((len(first), 5)) + 0.5
    dense = backend.numpy(dense_pair_weights(backend.asarray(pw), n))
    assert dense.shape == (n, n, 5)
    np.testing.assert_array_equal(dense[np.arange(n), np.arange(n)], 1.0)
    np.testing.assert_array_equal(dense[first, second], pw)
    np.testing.assert_array_equal(dense[second, first], pw)
    f = rng.normal(size=(n, 5))
    got = backend.numpy(pair_list_coefficients(backend.asarray(f), backend.asarray(pw)))
    want = backend.numpy(dense_coefficients(backend.asarray(f), backend.asarray(dense)))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match=r"pair list for n=.* must have shape"):
        pair_list_coefficients(backend.asarray(f), backend.asarray(pw[:-1]))


@pytest.mark.parametrize("shared", [True, False])
def test_categorical_score_has_the_directions_gradient(rng, shared):
    """grad sum(sg(c) * score) == grad sum(sg(directions) * logits), with or without a sample axis."""
    import torch

    n, shape, k = 3, (4,), 5
    base = torch.tensor(rng.normal(size=(*shape, k)), requires_grad=True)
    logits = base if shared else base * torch.tensor(rng.random((n, 1, 1)) + 0.5)
    z = torch.as_tensor(rng.integers(0, k, size=(n, *shape)))
    c = torch.tensor(rng.normal(size=(n, *shape)))
    (g_score,) = torch.autograd.grad(
        (c * categorical_score(z, logits)).sum(), base, retain_graph=True
    )
    (g_dir,) = torch.autograd.grad((categorical_directions(c, z, logits) * logits).sum(), base)
    np.testing.assert_allclose(g_score.numpy(), g_dir.numpy(), rtol=1e-13, atol=1e-14)
