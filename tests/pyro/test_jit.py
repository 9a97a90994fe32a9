"""The compiled Pyro losses: equal to the eager losses, unbiased, and retraced only on new shapes."""

import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppl_arms.pyro as ours
from ppl_arms.testing import assert_unbiased
from tests.adapters.harness import Z_MAX, PyroHarness, replicated
from tests.adapters.specs import SPECS

PAIRS = [
    ("TraceARMS_ELBO", "JitTraceARMS_ELBO", {}),
    ("TraceGraphARMS_ELBO", "JitTraceGraphARMS_ELBO", {}),
    ("TraceARMS_IWAE", "JitTraceARMS_IWAE", {}),
    ("TraceARMS_ELBO", "JitTraceARMS_ELBO", {"copula": "gaussian"}),
    ("TraceARMS_ELBO", "JitTraceARMS_ELBO", {"categorical_coupling": "stick_breaking"}),
    ("TraceARMS_IWAE", "JitTraceARMS_IWAE", {"estimator": "vimco"}),
]
PAIR_IDS = [f"{p[1]}{'-' + '-'.join(map(str, p[2].values())) if p[2] else ''}" for p in PAIRS]


def _jit(name, n, **kwargs):
    # the test programs build constants from Python numbers: Pyro-style, silence those warnings
    return getattr(ours, name)(n, ignore_jit_warnings=True, **kwargs)


def _value_and_grads(loss, model, guide, seed, *args):
    pyro.set_rng_seed(seed)
    value = loss.differentiable_loss(model, guide, *args)
    names = sorted(pyro.get_param_store().keys())
    leaves = [pyro.param(k).unconstrained() for k in names]
    grads = torch.autograd.grad(value, leaves, allow_unused=True)
    return value.detach(), {
        k: torch.zeros_like(p) if g is None else g
        for k, p, g in zip(names, leaves, grads, strict=True)
    }


def test_exported():
    for name in ("JitTraceARMS_ELBO", "JitTraceGraphARMS_ELBO", "JitTraceARMS_IWAE"):
        assert name in ours.__all__
        assert issubclass(getattr(ours, name), getattr(ours, name.removeprefix("Jit")))


@pytest.mark.parametrize(
    "spec_name", ["chain_fallback", "mixed_continuous", "bernoulli_subsample", "binomial_other"]
)
@pytest.mark.parametrize(("eager_name", "jit_name", "kwargs"), PAIRS, ids=PAIR_IDS)
def test_same_numbers_as_eager(spec_name, eager_name, jit_name, kwargs):
    """For the same seed, value and gradient equal the eager loss's, from the first call on."""
    spec = SPECS[spec_name]
    if "IWAE" in eager_name and not spec.iwae:
        pytest.skip("the oracle specs mark this model as not IWAE-compatible")
    if kwargs and spec_name != "chain_fallback":
        pytest.skip("the estimator variants are compared on one model")
    from tests.adapters.backends import PyroBackend

    model, guide = spec.build(PyroBackend(), False)
    model, guide = (replicated(PyroBackend(), f, 5, spec.nesting) for f in (model, guide))
    eager = getattr(ours, eager_name)(3, **kwargs)
    jit = _jit(jit_name, 3, **kwargs)
    for seed in (0, 1, 2):
        v0, g0 = _value_and_grads(eager, model, guide, seed)
        v1, g1 = _value_and_grads(jit, model, guide, seed)
        torch.testing.assert_close(v1, v0, rtol=1e-10, atol=1e-10)
        for k in g0:
            torch.testing.assert_close(g1[k], g0[k], rtol=1e-9, atol=1e-10, msg=k)
    assert jit.num_compilations == 1


def _vae(x, y):
    """A tiny amortised model: data in ``*args``, so its batch size can change."""
    w = pyro.param("w", torch.full((3,), 0.5))
    enc = pyro.param("enc", torch.linspace(-1.0, 1.0, 3))
    with pyro.plate("data", x.shape[0], dim=-1):
        z = pyro.sample("z", dist.Bernoulli(logits=x.unsqueeze(-1) * enc).to_event(1))
        pyro.sample("y", dist.Normal(z @ w, torch.ones_like(y)), obs=y)


def _vae_guide(x, y):
    enc = pyro.param("enc", torch.linspace(-1.0, 1.0, 3))
    with pyro.plate("data", x.shape[0], dim=-1):
        pyro.sample("z", dist.Bernoulli(logits=x.unsqueeze(-1) * enc).to_event(1))


def test_retraces_only_when_shapes_change():
    loss = _jit("JitTraceARMS_ELBO", 4, max_plate_nesting=1)
    eager = ours.TraceARMS_ELBO(4, max_plate_nesting=1)
    x5, y5, x7, y7 = torch.randn(5), torch.randn(5), torch.randn(7), torch.randn(7)
    for x, y, count in [(x5, y5, 1), (x5 + 1, y5, 1), (x7, y7, 2), (x5, y5, 2), (x7 * 2, y7, 2)]:
        v1, g1 = _value_and_grads(loss, _vae, _vae_guide, 3, x, y)
        assert loss.num_compilations == count
        v0, g0 = _value_and_grads(eager, _vae, _vae_guide, 3, x, y)  # no stale trace
        torch.testing.assert_close(v1, v0, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(g1, g0, rtol=1e-9, atol=1e-10)
    loss.differentiable_loss(_vae, _vae_guide, x5.float(), y5.float())  # another dtype
    assert loss.num_compilations == 3
    pyro.clear_param_store()  # params created again at the same shapes: the trace is reused
    loss.differentiable_loss(_vae, _vae_guide, x5, y5)
    assert loss.num_compilations == 3
    pyro.get_param_store()["w"] = torch.ones(4)  # a param at another shape: recorded again
    pyro.get_param_store()["enc"] = torch.ones(4)
    loss.differentiable_loss(_vae, _vae_guide, x5, y5)
    assert loss.num_compilations == 4


def test_svi_and_loss_match_eager():
    x, y = torch.randn(6), torch.randn(6)
    states = []
    for loss in (
        ours.TraceARMS_ELBO(4, max_plate_nesting=1),
        _jit("JitTraceARMS_ELBO", 4, max_plate_nesting=1),
    ):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        svi = pyro.infer.SVI(_vae, _vae_guide, pyro.optim.Adam({"lr": 0.1}), loss)
        values = [svi.step(x, y) for _ in range(4)] + [svi.evaluate_loss(x, y)]
        states.append((values, {k: v.detach().clone() for k, v in pyro.get_param_store().items()}))
    np.testing.assert_allclose(states[1][0], states[0][0], rtol=1e-10)
    torch.testing.assert_close(states[1][1], states[0][1], rtol=1e-10, atol=1e-12)


def test_no_tracer_warnings_from_ppl_arms():
    """Warnings left while recording come from the host or the model, never from our code."""
    loss = ours.JitTraceGraphARMS_ELBO(4, max_plate_nesting=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss.differentiable_loss(_vae, _vae_guide, torch.randn(5), torch.randn(5))
    sources = {w.filename for w in caught}
    assert caught, "expected the host's Bernoulli.log_prob tracer warning"
    assert not [s for s in sources if "ppl_arms" in s], sources
    assert all(issubclass(w.category, torch.jit.TracerWarning) for w in caught)


def test_non_tensor_positional_argument_is_rejected():
    loss = _jit("JitTraceARMS_ELBO", 2, max_plate_nesting=1)
    with pytest.raises(TypeError, match="keyword arguments"):
        loss.differentiable_loss(_vae, _vae_guide, torch.randn(3), [1.0, 2.0, 3.0])


class JitPyroHarness(PyroHarness):
    """The oracle harness for a compiled loss: one trace, reused across the batches."""

    def mc_gradients(self, spec, loss, replicates=256, batches=64, seed=0):
        model, guide = spec.build(self.B, False)
        model = replicated(self.B, model, replicates, spec.nesting)
        guide = replicated(self.B, guide, replicates, spec.nesting)
        names = sorted(spec.params)
        out = []
        for b in range(batches):
            pyro.set_rng_seed(seed * 100_003 + b)
            value = loss.differentiable_loss(model, guide)
            g = self._grads(-value, names)
            out.append(np.concatenate([np.asarray(g[k]).reshape(-1) for k in names]))
        assert loss.num_compilations == 1
        return np.stack(out) / replicates


def _check_unbiased(spec, jit_name, kwargs, n):
    harness = JitPyroHarness()
    if "IWAE" in jit_name:
        exact = harness.exact_gradient(
            spec, "iwae", num_particles=n, bound_plates=spec.iwae_bound_plates
        )
    else:
        exact = harness.exact_gradient(spec)
    pyro.clear_param_store()
    grads = harness.mc_gradients(spec, _jit(jit_name, n, **kwargs))
    assert_unbiased(grads, exact, z_max=Z_MAX, what=f"{jit_name}{kwargs} on {spec.name}")


@pytest.mark.parametrize(
    ("spec_name", "jit_name", "kwargs"),
    [
        ("chain_fallback", "JitTraceARMS_ELBO", {}),
        ("masked", "JitTraceARMS_IWAE", {}),
    ],
)
def test_unbiased_under_the_oracle(spec_name, jit_name, kwargs):
    """A fast sample of the slow matrix below (which runs every oracle case)."""
    _check_unbiased(SPECS[spec_name], jit_name, kwargs, 3)


@pytest.mark.slow
@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
@pytest.mark.parametrize(("eager_name", "jit_name", "kwargs"), PAIRS, ids=PAIR_IDS)
def test_unbiased_under_the_oracle_every_spec(spec, eager_name, jit_name, kwargs):
    if "IWAE" in jit_name and not spec.iwae:
        pytest.skip("not an IWAE spec")
    if kwargs.get("categorical_coupling") and spec.bernoulli_only:
        pytest.skip("no categorical site")
    _check_unbiased(spec, jit_name, kwargs, 3)
