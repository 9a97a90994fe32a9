"""Property tests (Hypothesis): every core estimator, generated shapes, both backends at once.

Each example draws element shapes (0-3 plate dims of size 1..7), ``n`` in 2..8 (even for DisARM),
``K`` in 2..12, and logits in one of several regimes (moderate, uniform up to ``|logit| = 30``,
saturated at ``±30``, exact ties and zeros). The noise is drawn once with NumPy and fed to torch
and to JAX, and each example checks:

* output shapes of the noise specs, couplings, samples, weights, coefficients and directions;
* finiteness (no NaN or inf for finite inputs, extreme logits included);
* ranges: uniforms in ``[0, 1]``, samples in ``{0, 1}`` or ``0..K-1``, ARMS debias factors in
  ``[max(p, 1-p), 1]``, pair weights positive and one for same-category pairs, coefficients that sum
  to zero over the samples (baseline estimators), DisARM partners with opposite coefficients;
* exact marginals of the samplers given uniform input (a stratified grid of uniforms hits each
  outcome with frequency ``p`` to within the grid spacing);
* torch and JAX agree: identical samples and float64 numbers to ``rtol = 1e-10``.

The IWAE terms get the same treatment with log-weights spread over ``1e3`` (and offset by ``1e5``).

Settings are deterministic (``derandomize=True``) and small, so the file runs in seconds.
"""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import expit, logsumexp, softmax

from ppl_arms import core as C
from ppl_arms.core import NoiseKind
from ppl_arms.core.carms import carms_pair_list_weights, ordering_index
from ppl_arms.core.categorical import categorical_score, sample_pairs
from ppl_arms.core.stick_breaking import stick_breaking_pair_list_weights

BACKENDS = ("torch", "jax")


def _props(max_examples):
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---------------------------------------------------------------- helpers


def _to(backend, x):
    x = np.array(x)
    return torch.as_tensor(x) if backend == "torch" else jnp.asarray(x)


def _np(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _agree(values, what, rtol=1e-10, scale=1.0):
    """Torch and JAX results of one quantity agree (exactly for integers)."""
    if len(values) < 2:
        return
    t, j = (_np(values[b]) for b in BACKENDS)
    assert t.shape == j.shape, (what, t.shape, j.shape)
    if np.issubdtype(t.dtype, np.integer) or t.dtype == bool:
        np.testing.assert_array_equal(t, j, err_msg=what)
        return
    atol = 1e-12 * max(1.0, scale, float(np.max(np.abs(t), initial=0.0)))
    np.testing.assert_allclose(t, j, rtol=rtol, atol=atol, err_msg=what)


def _finite(x, what):
    x = _np(x)
    assert np.all(np.isfinite(x)), (what, x)
    return x


def _noise(rng, kind, shape):
    return rng.standard_normal(shape) if kind is NoiseKind.NORMAL else rng.random(shape)


# ---------------------------------------------------------------- strategies

shapes = st.lists(st.integers(1, 7), max_size=3).map(tuple)
small_shapes = st.lists(st.integers(1, 7), max_size=2).map(tuple)

# Eager JAX compiles every primitive once per input shape (about a second per new shape for an
# estimator), so examples with freely generated shapes run in torch only (the shape logic is the
# same backend-neutral code), and examples from a small pool of shapes run in both backends and are
# compared; the JAX compilations of the pool are shared by all examples and tests.
TORCH_ONLY = ("torch",)
SHAPE_POOL = ((), (7,), (2, 1, 3))
N_POOL = (3, 8)
EVEN_N_POOL = (2, 8)
K_POOL = (2, 12)


def backends_and(free, pooled):
    """Either a free draw (torch only) or a pooled draw (torch and JAX)."""
    return st.one_of(st.tuples(st.just(TORCH_ONLY), free), st.tuples(st.just(BACKENDS), pooled))


seeds = st.integers(0, 2**32 - 1)
REGIMES = ("moderate", "wide", "saturated", "ties", "mixed")


def bernoulli_logits(rng, regime, shape):
    if regime == "moderate":
        return rng.normal(size=shape) * 3
    if regime == "wide":
        return rng.uniform(-30, 30, size=shape)
    if regime == "saturated":
        return rng.choice([-30.0, 30.0], size=shape)
    if regime == "ties":
        return np.zeros(shape)
    out = rng.normal(size=shape) * 3
    return np.where(rng.random(shape) < 0.5, rng.choice([-30.0, 0.0, 30.0], size=shape), out)


def categorical_logits(rng, regime, shape, k):
    full = (*shape, k)
    if regime == "moderate":
        return rng.normal(size=full) * 3
    if regime == "wide":
        return rng.uniform(-30, 30, size=full)
    if regime == "saturated":  # one category at +30, the others at -30
        hot = rng.integers(0, k, size=shape)
        return np.where(np.arange(k) == hot[..., None], 30.0, -30.0)
    if regime == "ties":
        return np.full(full, rng.normal() * 3)
    out = rng.normal(size=full) * 3
    return np.where(rng.random(full) < 0.3, rng.choice([-30.0, 30.0], size=full), out)


def signals(rng, shape):
    """Learning signals with a random scale up to 1e6 and a random offset."""
    scale = 10.0 ** rng.integers(-2, 7)
    return rng.normal(size=shape) * scale + rng.normal() * scale


# ---------------------------------------------------------------- Bernoulli estimators

BERNOULLI = [
    C.REINFORCE(),
    C.LOORF(),
    C.ARMS(C.DirichletCopula()),
    C.ARMS(C.GaussianCopula()),
    C.ARMS(C.IndependentCopula()),
    C.DisARM(),
]

GRID = 512
"""Points of the stratified uniform grid for the exact-marginal checks (error at most 1/GRID)."""


def bernoulli_cases(even):
    free_n = st.sampled_from([2, 4, 6, 8]) if even else st.integers(2, 8)
    pool_n = st.sampled_from(EVEN_N_POOL if even else N_POOL)
    return st.tuples(
        backends_and(st.tuples(free_n, shapes), st.tuples(pool_n, st.sampled_from(SHAPE_POOL))),
        st.sampled_from(REGIMES),
        seeds,
    )


@pytest.mark.parametrize("estimator", BERNOULLI, ids=repr)
@_props(10)
@given(data=st.data())
def test_bernoulli_estimator(estimator, data):
    (backends, (n, shape)), regime, seed = data.draw(
        bernoulli_cases(isinstance(estimator, C.DisARM))
    )
    rng = np.random.default_rng(seed)
    logits = bernoulli_logits(rng, regime, shape)
    f = signals(rng, (n, *shape))
    estimator.check(n, "z")
    specs = estimator.noise_specs(n, shape, 2)
    noise = tuple(_noise(rng, s.kind, s.shape) for s in specs)
    host_z = (rng.random((n, *shape)) < expit(logits)).astype(float)
    p = expit(logits)
    out = {}
    for b in backends:
        lg = _to(b, logits)
        r = out[b] = {}
        if estimator.coupled:
            assert len(specs) == 1
            assert specs[0].shape[1:] == shape
            assert specs[0].shape[0] == (n // 2 if isinstance(estimator, C.DisARM) else n)
            (v,) = estimator.coupling(tuple(_to(b, x) for x in noise))
            r["v"] = _finite(v, "coupled uniforms")
            assert r["v"].shape == (n, *shape)
            assert np.all((r["v"] >= 0) & (r["v"] <= 1))
            z = estimator.sample((v,), lg)
            indep = estimator.independent(tuple(_to(b, x) for x in noise))
            if indep is not None:
                r["indep"] = _finite(indep[0], "independent uniforms")
                assert r["indep"].shape == (n, *shape)
                assert np.all((r["indep"] >= 0) & (r["indep"] <= 1))
            # exact Bernoulli(p) marginal given a uniform: a stratified grid of uniforms
            grid = (np.arange(GRID) + 0.5) / GRID
            zg = _np(estimator.sample((_to(b, grid.reshape(-1, *[1] * len(shape))),), lg))
            assert zg.shape == (GRID, *shape)
            assert np.all(np.abs(zg.mean(0) - p) <= 1 / GRID + 1e-12), (logits, zg.mean(0))
        else:
            z = _to(b, host_z)
        r["z"] = _np(z)
        assert r["z"].shape == (n, *shape)
        assert set(np.unique(r["z"])) <= {0.0, 1.0}
        c = estimator.coefficients(_to(b, f), z, lg)
        r["c"] = _finite(c, "coefficients")
        assert r["c"].shape == (n, *shape)
        r["d"] = _finite(C.bernoulli_directions(c, z, lg), "directions")
        assert r["d"].shape == (n, *shape)
        r["g"] = _finite(C.bernoulli_gradient(c, z, lg), "gradient")
        assert r["g"].shape == shape
        tol = 1e-12 * n * np.max(np.abs(f), initial=1.0)
        if isinstance(estimator, C.DisARM):
            half = n // 2
            np.testing.assert_allclose(r["c"][:half], -r["c"][half:], rtol=0, atol=tol)
            assert np.array_equal(r["v"][:half] + r["v"][half:], np.ones_like(r["v"][:half]))
        elif not isinstance(estimator, C.REINFORCE):  # a leave-one-out baseline sums to zero
            np.testing.assert_allclose(r["c"].sum(0), 0.0, rtol=0, atol=tol)
        if isinstance(estimator, C.ARMS):
            debias = _finite(C.arms_debias(lg, n, estimator.copula), "debias")
            assert debias.shape == shape
            low = np.maximum(p, 1 - p)
            assert np.all(debias >= low * (1 - 1e-12)), (logits, debias)
            assert np.all(debias <= 1 + 1e-12), (logits, debias)
            if isinstance(estimator.copula, C.IndependentCopula):
                np.testing.assert_allclose(r["c"], _np(C.loorf_coefficients(_to(b, f))))
            r["debias"] = debias
    for key in out["torch"]:
        _agree({b: out[b][key] for b in backends}, key, scale=np.max(np.abs(f), initial=1.0))


# ---------------------------------------------------------------- categorical estimators

CATEGORICAL = [
    C.REINFORCE(),
    C.LOORF(),
    C.CARMS(C.DirichletCopula()),
    C.CARMS(C.GaussianCopula()),
    C.CARMS(C.IndependentCopula()),
    C.StickBreakingCARMS(C.DirichletCopula()),
    C.StickBreakingCARMS(C.GaussianCopula()),
    C.StickBreakingCARMS(C.IndependentCopula()),
]
# the coupled categorical estimators with non-default copulas cost the most JAX compilation; they run
# with the slow tests (the default copula, Dirichlet, runs by default for both couplings)
CATEGORICAL_CASES = [
    pytest.param(
        e,
        marks=[pytest.mark.slow]
        if e.coupled and not isinstance(e.copula, C.DirichletCopula)
        else [],
        id=repr(e),
    )
    for e in CATEGORICAL
]


def _pair_weights(estimator, z, logits):
    if isinstance(estimator, C.CARMS):
        return carms_pair_list_weights(z, logits, estimator.copula)
    return stick_breaking_pair_list_weights(z, logits, estimator.copula)


def _host_categorical(rng, logits, n):
    cdf = np.cumsum(softmax(logits, -1), -1)
    u = rng.random((n, *logits.shape[:-1], 1))
    return np.minimum((u >= cdf).sum(-1), logits.shape[-1] - 1)


@pytest.mark.parametrize("estimator", CATEGORICAL_CASES)
@_props(6)
@given(
    case=backends_and(
        st.tuples(st.integers(2, 8), st.integers(2, 12), small_shapes),
        st.tuples(st.sampled_from(N_POOL), st.sampled_from(K_POOL), st.sampled_from(SHAPE_POOL)),
    ),
    regime=st.sampled_from(REGIMES),
    seed=seeds,
)
def test_categorical_estimator(estimator, case, regime, seed):
    backends, (n, k, shape) = case
    rng = np.random.default_rng(seed)
    logits = categorical_logits(rng, regime, shape, k)
    f = signals(rng, (n, *shape))
    specs = estimator.noise_specs(n, shape, k)
    noise = tuple(_noise(rng, s.kind, s.shape) for s in specs)
    host_z = _host_categorical(rng, logits, n)
    pairs = n * (n - 1) // 2
    first, second = sample_pairs(n)
    out = {}
    for b in backends:
        lg = _to(b, logits)
        r = out[b] = {}
        if estimator.coupled:
            coupled = estimator.coupling(tuple(_to(b, x) for x in noise))
            indep = estimator.independent(tuple(_to(b, x) for x in noise))
            for name, uniforms in (("coupled", coupled), ("independent", indep)):
                for i, (spec, v) in enumerate(zip(specs, uniforms, strict=True)):
                    r[f"{name}{i}"] = _finite(v, name)
                    assert r[f"{name}{i}"].shape == spec.shape
                    assert np.all((r[f"{name}{i}"] >= 0) & (r[f"{name}{i}"] <= 1))
            z = estimator.sample(coupled, lg)
        else:
            z = _to(b, host_z)
        r["z"] = _np(z)
        assert r["z"].shape == (n, *shape)
        assert np.issubdtype(r["z"].dtype, np.integer)
        assert np.all((r["z"] >= 0) & (r["z"] < k))
        if estimator.coupled:
            w = _finite(_pair_weights(estimator, z, lg), "pair weights")
            assert w.shape == (pairs, *shape)
            assert np.all(w > 0), w
            same = r["z"][first] == r["z"][second]
            assert np.all(w[same] == 1.0)
            if isinstance(estimator.copula, C.IndependentCopula):
                np.testing.assert_allclose(w, 1.0, rtol=1e-9)
            r["w"] = w
        c = estimator.coefficients(_to(b, f), z, lg)
        r["c"] = _finite(c, "coefficients")
        assert r["c"].shape == (n, *shape)
        if not isinstance(estimator, C.REINFORCE):
            scale = np.max(np.abs(f), initial=1.0) * np.max(r.get("w", 1.0), initial=1.0)
            np.testing.assert_allclose(r["c"].sum(0), 0.0, rtol=0, atol=1e-12 * n * scale)
        r["d"] = _finite(C.categorical_directions(c, z, lg), "directions")
        assert r["d"].shape == (n, *shape, k)
        r["s"] = _finite(categorical_score(z, lg), "score")
        assert r["s"].shape == (n, *shape)
    for key in out["torch"]:
        scale = np.max(np.abs(f), initial=1.0) if key in ("c", "d") else 1.0
        _agree({b: out[b][key] for b in backends}, key, scale=scale)


@_props(8)
@given(k=st.sampled_from(K_POOL), regime=st.sampled_from(REGIMES), seed=seeds)
def test_carms_sampler_exact_marginal_in_every_ordering(k, regime, seed):
    """For every ordering, a stratified uniform grid lands in category ``c`` ``p_c * GRID`` times."""
    logits = categorical_logits(np.random.default_rng(seed), regime, (), k)
    p = softmax(logits)
    count = len(C.carms_orderings(k))
    orders = (np.arange(count) + 0.5) / count  # one element per ordering
    grid = ((np.arange(GRID) + 0.5) / GRID)[:, None]
    est = C.CARMS()
    out = {}
    for b in BACKENDS:
        assert np.array_equal(_np(ordering_index(_to(b, orders), k)), np.arange(count))
        z = _np(est.sample((_to(b, grid), _to(b, orders[None])), _to(b, logits)))
        assert z.shape == (GRID, count)
        freq = (z[..., None] == np.arange(k)).mean(0)  # [ordering, K]
        assert np.all(np.abs(freq - p) <= 1 / GRID + 1e-12), (logits, freq - p)
        out[b] = z
    _agree(out, "grid samples")


@_props(10)
@given(k=st.integers(2, 3), regime=st.sampled_from(REGIMES), seed=seeds)
def test_stick_breaking_sampler_exact_marginal(k, regime, seed):
    """A product grid over the ``K - 1`` sticks hits category ``c`` with frequency ``p_c``."""
    logits = categorical_logits(np.random.default_rng(seed), regime, (), k)
    p = softmax(logits)
    side = 64
    axis = (np.arange(side) + 0.5) / side
    grid = np.stack(np.meshgrid(*[axis] * (k - 1), indexing="ij"), -1).reshape(-1, k - 1)
    out = {}
    for b in BACKENDS:
        z = _np(C.stick_breaking_sample(_to(b, grid), _to(b, logits)))
        assert z.shape == (side ** (k - 1),)
        freq = (z[:, None] == np.arange(k)).mean(0)
        # each outcome is a union of at most K - 1 grid-aligned boxes: error <= (K - 1) / side
        assert np.all(np.abs(freq - p) <= (k - 1) / side + 1e-12), (logits, freq - p)
        out[b] = z
    _agree(out, "grid samples")


# ---------------------------------------------------------------- IWAE terms

LOG_WEIGHT_REGIMES = ("moderate", "spread", "offset", "ties", "one-dominant")


def log_weights(rng, regime, shape):
    if regime == "moderate":
        return rng.normal(size=shape) * 3
    if regime == "spread":  # log-weights spread over 1e3: most samples have relative weight 0
        return rng.uniform(-1e3, 0, size=shape)
    if regime == "offset":  # large common offset
        return rng.normal(size=shape) * 10 - 1e5
    if regime == "ties":
        return np.full(shape, rng.normal() * 1e3)
    out = np.full(shape, -1e3)
    out[0] = 0.0
    return out + rng.normal(size=shape)


@_props(15)
@given(
    case=backends_and(
        st.tuples(st.integers(2, 8), st.integers(2, 8), shapes),
        st.tuples(st.sampled_from(N_POOL), st.sampled_from(N_POOL), st.sampled_from(SHAPE_POOL)),
    ),
    regimes=st.tuples(*[st.sampled_from(LOG_WEIGHT_REGIMES)] * 2),
    seed=seeds,
)
def test_iwae_terms(case, regimes, seed):
    backends, (n, m, shape) = case
    rng = np.random.default_rng(seed)
    lw = log_weights(rng, regimes[0], (n, *shape))
    lt = log_weights(rng, regimes[1], (m, *shape))
    shift = rng.normal() * 1e3
    out = {}
    for b in backends:
        r = out[b] = {}
        r["bound"] = _finite(C.iwae_bound(_to(b, lw)), "iwae_bound")
        assert r["bound"].shape == shape
        np.testing.assert_allclose(r["bound"], logsumexp(lw, 0) - np.log(n), rtol=1e-12)
        assert np.all(r["bound"] <= lw.max(0) + 1e-12 * np.abs(lw.max(0)))
        assert np.all(r["bound"] >= lw.max(0) - np.log(n) - 1e-12 * np.abs(lw.max(0)))
        r["loo"] = _finite(C.leave_one_out_logsumexp(_to(b, lw)), "leave_one_out_logsumexp")
        assert r["loo"].shape == (n, *shape)
        r["vimco"] = _finite(C.vimco_signals(_to(b, lw)), "vimco_signals")
        assert r["vimco"].shape == (n, *shape)
        # the VIMCO signal is shift invariant: only the weights' ratios matter
        shifted = _finite(C.vimco_signals(_to(b, lw + shift)), "shifted vimco_signals")
        np.testing.assert_allclose(shifted, r["vimco"], rtol=0, atol=1e-9 * (1 + abs(shift)))
        r["local"] = _finite(C.local_signals(_to(b, lw), _to(b, lt)), "local_signals")
        assert r["local"].shape == (m, *shape)
    for key in out["torch"]:
        _agree({b: out[b][key] for b in backends}, key)


# ---------------------------------------------------------------- sample-count checks


@pytest.mark.parametrize("estimator", BERNOULLI + CATEGORICAL[2:], ids=repr)
@_props(10)
@given(n=st.integers(1, 9))
def test_check_accepts_exactly_the_usable_sample_counts(estimator, n):
    usable = n >= 2 or isinstance(estimator, C.REINFORCE)
    if isinstance(estimator, C.DisARM):
        usable = usable and n % 2 == 0
    if usable:
        estimator.check(n, "z")
    else:
        with pytest.raises(ValueError, match="site 'z'"):
            estimator.check(n, "z")
