"""Double CV and RODEO in the losses (issue #14): wiring, warnings and learned parameters.

Unbiasedness is in ``test_unbiased.py`` (exact-enumeration oracles); these are the cheap checks of
the loss-level behaviour: the sample gradient is computed only when a site needs it, the loss value
is the plain ELBO estimate, a non-differentiable model gives LOORF exactly and one warning per
site, and the learned parameters are registered under the reserved prefix and trained by ``SVI``.
"""

import warnings

import numpy as np
import pytest

from ppl_arms.config import EstimatorConfig, learned_name
from ppl_arms.core.estimators import LOORF, RODEO, DistKind, DoubleCV
from tests.adapters.backends import NumPyroBackend, PyroBackend

W = [[1.0, -0.5], [0.3, 0.8], [-1.2, 0.6]]
X = [0.4, -1.1]
MU = [-1.0, 0.5, 2.0]


def _smooth(B):
    """A Bernoulli vector whose value enters the likelihood as ``z @ w``."""
    w, x = B.array(W), B.array(X)

    def model():
        z = B.sample("z", B.dist.Bernoulli(logits=B.array([0.5, -0.3, 0.1])).to_event(1))
        B.sample("x", B.dist.Normal(z @ w, 1.0).to_event(1), obs=x)

    def guide():
        phi = B.param("phi", B.array([2.2, -0.4, -2.5]))
        B.sample("z", B.dist.Bernoulli(logits=phi).to_event(1))

    return model, guide


def _indexing(B):
    """A categorical site used by indexing (``mu[z]``): no gradient path, so LOORF."""
    mu, x = B.array(MU), B.array(X)

    def model():
        with B.plate("data", 2):
            z = B.sample("z", B.dist.Categorical(logits=B.array([0.2, -0.1, 0.4])))
            B.sample("x", B.dist.Normal(mu[z], 1.0), obs=x)

    def guide():
        phi = B.param("phi", B.array([[2.1, -0.3, 0.0], [0.2, 0.1, -2.2]]))
        with B.plate("data", 2):
            B.sample("z", B.dist.Categorical(logits=phi))

    return model, guide


class _Pyro:
    B = PyroBackend()

    def value_and_grad(self, loss, program, seed=0):
        import pyro

        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        model, guide = program(self.B)
        value = loss.differentiable_loss(model, guide)
        value.backward()
        return float(value.detach()), pyro.param("phi").grad.numpy().copy()


class _NumPyro:
    B = NumPyroBackend()

    def value_and_grad(self, loss, program, seed=0):
        import jax

        model, guide = program(self.B)
        params = {"phi": {_smooth: [2.2, -0.4, -2.5]}.get(program)}
        if params["phi"] is None:
            params["phi"] = [[2.1, -0.3, 0.0], [0.2, 0.1, -2.2]]
        params = {"phi": self.B.array(params["phi"])}
        key = jax.random.key(seed)
        fn = jax.value_and_grad(lambda p: loss.loss(key, p, model, guide))
        value, grad = jax.jit(fn)(params)
        return float(value), np.asarray(grad["phi"])


# NumPyro compiles each loss (a few seconds of CPU): in the default suite only where the behaviour is
# its own (the trace-time warning under jit); the rest of its matrix is slow.
NUMPYRO_SLOW = pytest.param("numpyro", marks=pytest.mark.slow)


@pytest.fixture(params=[NUMPYRO_SLOW, "pyro"])
def host(request):
    return {"numpyro": _NumPyro, "pyro": _Pyro}[request.param]()


def test_table_entries():
    cfg = EstimatorConfig("rodeo", num_samples=2)
    assert cfg.for_site(DistKind.BERNOULLI, "z", {}) == RODEO()
    assert cfg.for_site(DistKind.CATEGORICAL, "z", {}) == RODEO()
    assert cfg.for_site(DistKind.OTHER, "k", {}) == LOORF()
    assert cfg.for_site(DistKind.CATEGORICAL, "z", {"estimator": "double_cv"}) == DoubleCV()
    assert learned_name("rodeo", "z", "beta") == "_ppl_arms/rodeo/z/beta"


@pytest.mark.filterwarnings("ignore:site .* learned parameters:UserWarning")
@pytest.mark.parametrize("estimator", ["double_cv", "rodeo"])
def test_value_is_the_elbo_estimate_and_the_gradient_differs(host, estimator):
    """Same draws as LOORF (i.i.d. host samples): same loss value, a different gradient."""
    losses = host.B.losses
    loorf = host.value_and_grad(losses.TraceARMS_ELBO(num_particles=3, estimator="loorf"), _smooth)
    new = host.value_and_grad(losses.TraceARMS_ELBO(num_particles=3, estimator=estimator), _smooth)
    assert new[0] == pytest.approx(loorf[0], rel=1e-12)
    assert not np.allclose(new[1], loorf[1])


@pytest.mark.filterwarnings("ignore:site .* learned parameters:UserWarning")
@pytest.mark.parametrize("loss_class", ["TraceARMS_ELBO", "TraceGraphARMS_ELBO"])
def test_non_differentiable_site_is_loorf_with_one_warning(host, loss_class):
    make = getattr(host.B.losses, loss_class)
    loss = make(num_particles=3, estimator="rodeo")
    with pytest.warns(UserWarning, match="site 'z'.*non-differentiably") as record:
        value, grad = host.value_and_grad(loss, _indexing)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "site .* non-differentiably")
        host.value_and_grad(loss, _indexing, seed=1)  # warned once per site and loss
    assert sum("non-differentiably" in str(r.message) for r in record) == 1
    expected = host.value_and_grad(make(num_particles=3, estimator="loorf"), _indexing)
    assert value == pytest.approx(expected[0], rel=1e-12)
    np.testing.assert_allclose(grad, expected[1], rtol=1e-10, atol=1e-12)


def test_numpyro_warns_at_trace_time_once_under_jit():
    """Under ``jit`` the warnings come when the step is traced, not on every compiled call.

    Both of them: the non-differentiable site, and the learned parameter (Double CV's ``alpha``)
    that the guide did not declare.
    """
    import jax

    B = NumPyroBackend()
    model, guide = _indexing(B)
    loss = B.losses.TraceGraphARMS_ELBO(num_particles=2, estimator="double_cv")
    params = {"phi": B.array([[2.1, -0.3, 0.0], [0.2, 0.1, -2.2]])}
    step = jax.jit(jax.grad(lambda p, key: loss.loss(key, p, model, guide)))
    with pytest.warns(UserWarning, match="site 'z'") as record:
        step(params, jax.random.key(0))
    messages = [str(r.message) for r in record]
    assert sum("non-differentiably" in m for m in messages) == 1, messages
    assert sum("learned parameters" in m and "learned_params" in m for m in messages) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step(params, jax.random.key(1))


def test_sample_gradient_only_when_needed(host, monkeypatch):
    """No site needs ``df_dz``: the replay that computes it is never run (zero cost)."""
    import ppl_arms.numpyro.elbo as numpyro_elbo
    import ppl_arms.pyro.elbo as pyro_elbo

    def refuse(*args, **kwargs):
        raise AssertionError("sample_gradients called")

    for module in (pyro_elbo, numpyro_elbo):
        monkeypatch.setattr(module, "sample_gradients", refuse)
    host.value_and_grad(host.B.losses.TraceGraphARMS_ELBO(num_particles=2), _smooth)


def test_pyro_learned_params_are_registered_and_trained():
    import pyro
    import torch
    from pyro.infer import SVI
    from pyro.optim import Adam

    model, guide = _smooth(PyroBackend())
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    svi = SVI(model, guide, Adam({"lr": 0.05}), PyroBackend().losses.TraceARMS_ELBO(3, "rodeo"))
    for _ in range(3):
        svi.step()
    store = pyro.get_param_store()
    alpha, beta = (store[learned_name("rodeo", "z", leaf)] for leaf in ("alpha", "beta"))
    assert not torch.equal(alpha.detach(), torch.zeros(())) and float(beta.detach()) != 1.0


@pytest.mark.slow
def test_numpyro_learned_params_declared_in_the_guide_are_trained():
    import jax
    from numpyro.infer import SVI
    from numpyro.optim import Adam

    from ppl_arms.numpyro.learned import learned_params

    B = NumPyroBackend()
    model, guide = _smooth(B)

    def declared():
        learned_params("z", "double_cv")
        guide()

    svi = SVI(model, declared, Adam(0.05), B.losses.TraceARMS_ELBO(3, "double_cv"))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "site .* learned parameters")  # declared: no warning
        state = svi.init(jax.random.key(0))
        for _ in range(3):
            state, _ = svi.update(state)
    alpha = svi.get_params(state)[learned_name("double_cv", "z", "alpha")]
    assert float(alpha) != 1.0


@pytest.mark.parametrize("estimator", ["double_cv", "rodeo"])
def test_numpyro_config_estimator_declares_the_learned_params(estimator):
    """SVI.init sees them from the guide's run alone (no loss call, no compile)."""
    import jax
    from numpyro.infer import SVI
    from numpyro.optim import Adam

    from ppl_arms.numpyro import config_estimator

    B = NumPyroBackend()
    model, guide = _smooth(B)
    svi = SVI(model, config_estimator(guide, estimator), Adam(0.05), B.losses.TraceARMS_ELBO(3))
    params = svi.get_params(svi.init(jax.random.key(0)))
    names = {k for k in params if k.startswith("_ppl_arms/")}
    leaves = {"double_cv": {"alpha"}, "rodeo": {"alpha", "beta"}}[estimator]
    assert names == {learned_name(estimator, "z", leaf) for leaf in leaves}


@pytest.mark.slow
def test_numpyro_config_estimator_learned_params_are_trained():
    import jax
    from numpyro.infer import SVI
    from numpyro.optim import Adam

    from ppl_arms.numpyro import config_estimator

    B = NumPyroBackend()
    model, guide = _smooth(B)
    svi = SVI(model, config_estimator(guide, "rodeo"), Adam(0.05), B.losses.TraceARMS_ELBO(3))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "site .* learned parameters")  # declared: no warning
        state = svi.init(jax.random.key(0))
        for _ in range(3):
            state, _ = svi.update(state)
    assert float(svi.get_params(state)[learned_name("rodeo", "z", "beta")]) != 1.0


def test_iwae_refuses_a_site_that_asks_for_a_gradient_informed_estimator():
    """The bound has no learning-signal gradient: a clear error, not a silent LOORF."""
    B = PyroBackend()
    model, _ = _smooth(B)

    def marked():
        phi = B.param("phi", B.array([2.2, -0.4, -2.5]))
        B.sample("z", B.dist.Bernoulli(logits=phi).to_event(1), infer={"estimator": "rodeo"})

    with pytest.raises(TypeError, match=r"'rodeo' needs the gradient.*TraceARMS_ELBO"):
        B.losses.TraceARMS_IWAE(num_particles=2, estimator="arms").differentiable_loss(
            model, marked
        )
