"""Every model x backend x loss: two SVI steps on digits give finite losses and move every parameter."""

import jax
import jax.numpy as jnp
import numpy as np
import pyro
import pytest
import torch
from numpyro import handlers
from numpyro.infer import SVI
from numpyro.optim import Adam
from pyro.infer import TraceGraph_ELBO

from models import MODELS, build_model
from ppl_arms.numpyro import TraceARMS_ELBO, TraceARMS_IWAE, TraceGraphARMS_ELBO
from ppl_arms.pyro import TraceARMS_ELBO as PyroTraceARMS_ELBO
from ppl_arms.pyro import TraceARMS_IWAE as PyroTraceARMS_IWAE
from ppl_arms.pyro import TraceGraphARMS_ELBO as PyroTraceGraphARMS_ELBO
from tests.models._common import MODEL_NAMES, NUM_PARTICLES, SMALL, STEP_SIZE, binary_batch

NUMPYRO_LOSSES = [
    *(
        pytest.param(lambda e=e: TraceARMS_ELBO(NUM_PARTICLES, estimator=e), id=f"elbo-{e}")
        for e in ("arms", "loorf", "disarm", "reinforce")
    ),
    pytest.param(lambda: TraceGraphARMS_ELBO(NUM_PARTICLES), id="graph-arms"),
    *(
        pytest.param(lambda v=v: TraceARMS_IWAE(NUM_PARTICLES, estimator=v), id=f"iwae-{v}")
        for v in ("arms", "vimco")
    ),
]

PYRO_LOSSES = [
    *(
        pytest.param(lambda e=e: PyroTraceARMS_ELBO(NUM_PARTICLES, estimator=e), id=f"elbo-{e}")
        for e in ("arms", "loorf", "disarm", "reinforce")
    ),
    pytest.param(lambda: PyroTraceGraphARMS_ELBO(NUM_PARTICLES), id="graph-arms"),
    *(
        pytest.param(lambda v=v: PyroTraceARMS_IWAE(NUM_PARTICLES, estimator=v), id=f"iwae-{v}")
        for v in ("arms", "vimco")
    ),
    pytest.param(
        lambda: TraceGraph_ELBO(
            num_particles=NUM_PARTICLES, vectorize_particles=True, max_plate_nesting=1
        ),
        id="pyro-host-tracegraph",
    ),
]

NUM_STEPS = 2


def _is_disarm(loss):
    return getattr(getattr(loss, "config", None), "estimator", None) == "disarm"


def _numpyro_steps(name, loss, x, jit=False):
    """Eager steps reuse JAX's per-op cache across tests; ``jit`` is cheaper for one-off shapes."""
    model, guide = build_model(name, "numpyro", np.mean(x, axis=0), **SMALL[name])
    svi = SVI(model, guide, Adam(STEP_SIZE), loss)
    state = svi.init(jax.random.key(0), x)
    before = svi.get_params(state)
    update = jax.jit(svi.update) if jit else svi.update
    losses = []
    for _ in range(NUM_STEPS):
        state, value = update(state, x)
        losses.append(float(value))
    return losses, before, svi.get_params(state)


def _assert_moved(before, after):
    assert set(before) == set(after)
    for key in before:
        assert after[key].dtype == before[key].dtype, key
        assert not np.array_equal(np.asarray(before[key]), np.asarray(after[key])), (
            f"parameter {key} did not change"
        )


def _rotated(losses, names):
    """``(name, loss)`` pairs: loss ``j`` on model ``j`` (cyclically) by default, the rest ``slow``.

    Every loss and every model appears in the default suite (each NumPyro case compiles its own
    SVI step, a few seconds); the full cross product runs with ``-m slow``.
    """
    out = []
    for j, loss in enumerate(losses):
        for i, name in enumerate(names):
            marks = () if i == j % len(names) else (pytest.mark.slow,)
            out.append(pytest.param(name, loss.values[0], marks=marks, id=f"{name}-{loss.id}"))
    return out


@pytest.mark.parametrize(("name", "make_loss"), _rotated(NUMPYRO_LOSSES, MODEL_NAMES))
def test_numpyro_two_svi_steps(digits, name, make_loss):
    loss = make_loss()
    x = jnp.asarray(binary_batch(digits))
    spec = MODELS[name]
    if _is_disarm(loss) and spec.is_categorical:
        site = next(s for s, kind in spec.discrete_sites.items() if kind == "categorical")
        with pytest.raises(ValueError, match=f"site '{site}'.*Bernoulli sites only"):
            _numpyro_steps(name, loss, x)
        return
    losses, before, after = _numpyro_steps(name, loss, x, jit=True)
    assert np.all(np.isfinite(losses)), losses
    _assert_moved(before, after)


def _pyro_steps(name, loss, x):
    model, guide = build_model(name, "pyro", x.mean(0).numpy(), **SMALL[name])
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": STEP_SIZE}), loss)
    losses = [svi.step(x)]
    store = pyro.get_param_store()
    before = {k: v.detach().clone() for k, v in store.items()}
    losses.append(svi.step(x))
    after = {k: v.detach().clone() for k, v in store.items()}
    return losses, before, after


@pytest.mark.parametrize("make_loss", PYRO_LOSSES)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pyro_two_svi_steps(digits, name, make_loss):
    x = torch.as_tensor(binary_batch(digits))
    loss = make_loss()
    spec = MODELS[name]
    if _is_disarm(loss) and spec.is_categorical:
        site = next(s for s, kind in spec.discrete_sites.items() if kind == "categorical")
        with pytest.raises(ValueError, match=f"site '{site}'.*Bernoulli sites only"):
            _pyro_steps(name, loss, x)
        return
    losses, before, after = _pyro_steps(name, loss, x)
    assert np.all(np.isfinite(losses)), losses
    _assert_moved(before, after)


def test_float32_numpyro_svi(digits):
    """float32 input -> float32 parameters; SVI runs (one model: float32 recompiles every op)."""
    x = jnp.asarray(binary_batch(digits).astype(np.float32))
    losses, before, after = _numpyro_steps("structured_prediction", TraceARMS_ELBO(4), x, jit=True)
    assert np.all(np.isfinite(losses))
    assert {str(v.dtype) for v in after.values()} == {"float32"}
    _assert_moved(before, after)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_float32_log_densities_numpyro(digits, name):
    x = jnp.asarray(binary_batch(digits).astype(np.float32))
    model, guide = build_model(name, "numpyro", np.mean(x, axis=0), **SMALL[name])
    guide_trace = handlers.trace(handlers.seed(guide, 0)).get_trace(x)
    model_trace = handlers.trace(handlers.seed(handlers.replay(model, guide_trace), 1)).get_trace(x)
    for tr in (guide_trace, model_trace):
        for site in tr.values():
            if site["type"] == "param":
                assert site["value"].dtype == jnp.float32
            if site["type"] == "sample":
                assert site["fn"].log_prob(site["value"]).dtype == jnp.float32


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_float32_pyro_svi(digits, name):
    x = torch.as_tensor(binary_batch(digits).astype(np.float32))
    losses, before, after = _pyro_steps(name, PyroTraceARMS_ELBO(NUM_PARTICLES), x)
    assert np.all(np.isfinite(losses))
    assert {v.dtype for v in after.values()} == {torch.float32}
    _assert_moved(before, after)


def test_numpyro_num_data_scales_the_loss(digits):
    """``num_data`` makes the plate a subsample of a larger data set (scale N / B)."""
    name = "binary_vae_linear"
    x = jnp.asarray(binary_batch(digits))
    num_data = 10 * x.shape[0]
    model, guide = build_model(name, "numpyro", np.mean(x, axis=0), **SMALL[name])
    for loss in (TraceARMS_ELBO(NUM_PARTICLES), TraceARMS_IWAE(NUM_PARTICLES)):
        svi = SVI(model, guide, Adam(STEP_SIZE), loss)
        state = svi.init(jax.random.key(0), x)
        params = svi.get_params(state)
        key = jax.random.key(1)

        @jax.jit  # one compiled program for both calls (eager vmapped particles are slow)
        def losses(params, loss=loss, key=key):
            full = loss.loss(key, params, model, guide, x, num_data=num_data)
            return full, loss.loss(key, params, model, guide, x)

        full, batch = losses(params)
        np.testing.assert_allclose(full, 10 * batch, rtol=1e-10)
