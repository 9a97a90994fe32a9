"""Identical noise gives identical numbers in torch and JAX (float64, rtol 1e-10), eager and jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from ppl_arms import core as C
from ppl_arms.core.carms import ordering_index


def _both(fn, *arrays):
    t = fn(*[torch.as_tensor(np.array(a)) for a in arrays])
    j = fn(*[jnp.asarray(a) for a in arrays])
    return t, j


def _compare(t, j, rtol=1e-10, atol=1e-13):
    if isinstance(t, tuple):
        for a, b in zip(t, j, strict=True):
            _compare(a, b, rtol, atol)
        return
    np.testing.assert_allclose(t.detach().numpy(), np.asarray(j), rtol=rtol, atol=atol)


@pytest.fixture
def data(rng):
    n, b, d, k = 4, 6, 3, 5
    return {
        "n": n,
        "k": k,
        "u": rng.random((n, b, d)),
        "g": rng.standard_normal((n, b, d)),
        "logits": rng.normal(size=(b, d)) * 3,
        "clogits": rng.normal(size=(b, d, k)) * 2,
        "f": rng.normal(size=(n, b, d)),
        "order_u": rng.random((b, d)),
        "stick_u": rng.random((n, b, d, k - 1)),
        "lw": rng.normal(size=(n, b)) * 3,
        "lt": rng.normal(size=(n, b)) * 3,
    }


COPULA_CASES = [(C.DirichletCopula(), "u"), (C.GaussianCopula(), "g"), (C.IndependentCopula(), "u")]


@pytest.mark.parametrize(
    ("copula", "noise"), COPULA_CASES, ids=lambda x: repr(x) if not isinstance(x, str) else x
)
def test_copulas_and_arms(data, copula, noise):
    n = data["n"]
    _compare(*_both(copula.uniforms, data[noise]))
    s, t = data["u"][0], data["u"][1]
    _compare(*_both(lambda a, b: copula.joint_cdf(a, b, n), s, t))
    _compare(*_both(lambda a: copula.discordance(a, n), s * 0.5))

    def arms(noise_arr, logits, f):
        z = C.threshold_sample(copula.uniforms(noise_arr), logits)
        c = C.arms_coefficients(f, logits, copula)
        return z, c, C.bernoulli_gradient(c, z, logits), C.arms_debias(logits, n, copula)

    _compare(*_both(arms, data[noise], data["logits"], data["f"]))


def test_scalar_estimators(data):
    _compare(*_both(C.loorf_coefficients, data["f"]))
    _compare(*_both(C.reinforce_coefficients, data["f"]))
    _compare(*_both(C.disarm_coefficients, data["f"], data["logits"]))
    _compare(*_both(C.antithetic_pairs, data["u"][:2]))


@pytest.mark.parametrize("copula", [C.DirichletCopula(), C.GaussianCopula()], ids=repr)
def test_carms(data, copula):
    k = data["k"]
    noise = data["u"] if copula.noise is C.NoiseKind.UNIFORM else data["g"]

    def carms(noise_arr, order_u, logits, f):
        z = C.carms_sample(copula.uniforms(noise_arr), ordering_index(order_u, k), logits)
        w = C.carms_pair_weights(z, logits, copula)
        c = C.carms_coefficients(f, z, logits, copula)
        return z, w, c, C.categorical_gradient(c, z, logits)

    _compare(*_both(carms, noise, data["order_u"], data["clogits"], data["f"]))

    def stick(noise_arr, logits, f):
        z = C.stick_breaking_sample(copula.uniforms(noise_arr), logits)
        return (
            z,
            C.stick_breaking_pair_weights(z, logits, copula),
            C.stick_breaking_coefficients(f, z, logits, copula),
        )

    stick_noise = (
        data["stick_u"]
        if copula.noise is C.NoiseKind.UNIFORM
        else np.random.default_rng(3).standard_normal(data["stick_u"].shape)
    )
    _compare(*_both(stick, stick_noise, data["clogits"], data["f"]))


def test_iwae_terms(data):
    _compare(*_both(C.iwae_bound, data["lw"]))
    _compare(*_both(C.vimco_signals, data["lw"]))
    _compare(*_both(C.local_signals, data["lw"], data["lt"]))
    _compare(*_both(lambda h, k: C.bivariate_normal_cdf(h, k, -1 / 3), data["g"][0], data["g"][1]))


@pytest.mark.parametrize("copula", [C.DirichletCopula(), C.GaussianCopula()], ids=repr)
def test_core_is_jittable(data, copula):
    """No Python branches on array values: jit gives the eager numbers."""
    k = data["k"]
    noise = jnp.asarray(data["u"] if copula.noise is C.NoiseKind.UNIFORM else data["g"])

    def everything(noise_arr, order_u, logits, clogits, f, lw, lt):
        zb = C.threshold_sample(copula.uniforms(noise_arr), logits)
        cb = C.arms_coefficients(f, logits, copula)
        zc = C.carms_sample(copula.uniforms(noise_arr), ordering_index(order_u, k), clogits)
        cc = C.carms_coefficients(f, zc, clogits, copula)
        return zb, cb, zc, cc, C.vimco_signals(lw), C.local_signals(lw, lt)

    args = (
        noise,
        *(jnp.asarray(data[x]) for x in ["order_u", "logits", "clogits", "f", "lw", "lt"]),
    )
    eager = everything(*args)
    jitted = jax.jit(everything)(*args)
    for a, b in zip(eager, jitted, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)
