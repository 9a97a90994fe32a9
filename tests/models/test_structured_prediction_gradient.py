"""Structured prediction under SVI: the ELBO *is* E_q[log p(x_bottom | z)], with its gradient (slow).

Exact: ppl_arms's enumeration oracle for the model/guide pair equals J = E_q[log p(x_b | z)],
value and gradient (the detached "prior" contributes nothing). Statistical: the mean gradient of
the ARMS/LOORF losses over many keys matches -grad J within standard errors.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers

from models import build_model
from ppl_arms.numpyro import TraceARMS_ELBO, TraceGraphARMS_ELBO
from ppl_arms.testing import assert_unbiased
from ppl_arms.testing.numpyro import exact_elbo
from tests.models._common import binary_batch

pytestmark = pytest.mark.slow

LATENTS, CATEGORIES, HIDDEN, BATCH = 2, 3, 6, 2
REPLICATES, CHUNK = 20_000, 5_000
CHECKED = ("encoder.0.weight", "encoder.1.weight", "decoder.0.weight", "decoder.1.bias")


@pytest.fixture(scope="module")
def problem(digits):
    x = jnp.asarray(binary_batch(digits, size=BATCH))
    model, guide = build_model(
        "structured_prediction",
        "numpyro",
        digits.train_mean,
        num_latents=LATENTS,
        num_categories=CATEGORIES,
        hidden_size=HIDDEN,
    )
    params = {}
    for fn in (guide, model):
        tr = handlers.trace(handlers.seed(fn, 0)).get_trace(x)
        params.update({k: s["value"] for k, s in tr.items() if s["type"] == "param"})

    def objective(p):
        """J = sum_b sum_z q(z | x_top,b) log p(x_bottom,b | z), by enumeration per data point."""
        total = 0.0
        for z in itertools.product(range(CATEGORIES), repeat=LATENTS):
            zb = jnp.broadcast_to(jnp.asarray(z), (BATCH, LATENTS))
            run = [
                handlers.trace(handlers.condition(handlers.substitute(fn, data=p), {"z": zb}))
                for fn in (guide, model)
            ]
            g, m = (r.get_trace(x) for r in run)
            log_lik = m["x_bottom"]["fn"].log_prob(m["x_bottom"]["value"])
            total = total + jnp.sum(jnp.exp(g["z"]["fn"].log_prob(zb)) * log_lik)
        return total

    value, grad = jax.value_and_grad(objective)(params)
    return model, guide, params, x, value, grad


def test_exact_elbo_is_the_prediction_objective(problem):
    model, guide, params, x, value, grad = problem
    oracle, oracle_grad = jax.value_and_grad(lambda p: exact_elbo(model, guide, p, x))(params)
    np.testing.assert_allclose(oracle, value, rtol=1e-12)
    for key in grad:
        np.testing.assert_allclose(oracle_grad[key], grad[key], rtol=1e-9, atol=1e-12, err_msg=key)


@pytest.mark.parametrize(
    "make_loss",
    [lambda: TraceARMS_ELBO(4), lambda: TraceGraphARMS_ELBO(4, estimator="loorf")],
    ids=["arms", "graph-loorf"],
)
def test_loss_gradients_are_unbiased_for_the_objective(problem, make_loss):
    model, guide, params, x, _, grad = problem
    loss = make_loss()
    grads = jax.jit(
        jax.vmap(lambda k: jax.grad(lambda p: loss.loss(k, p, model, guide, x))(params))
    )
    draws = [grads(jax.random.split(jax.random.key(i), CHUNK)) for i in range(REPLICATES // CHUNK)]
    for name in CHECKED:
        samples = np.concatenate([np.asarray(d[name]) for d in draws]).reshape(REPLICATES, -1)
        assert_unbiased(samples, -np.asarray(grad[name]).reshape(-1), what=name)
