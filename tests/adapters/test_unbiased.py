"""Exact-enumeration oracle suite: every loss x estimator x test model, in both host libraries.

The Monte Carlo mean of each loss's gradient (over independent replicates, see ``harness.py``)
must match the exact gradient of the ELBO (or of the multi-sample bound), computed by enumerating
every discrete guide configuration (Gauss–Hermite for the continuous site), within ``Z_MAX``
standard errors in every parameter coordinate. The models cover ``to_event``, subsampling, nested
plates with categoricals, a categorical whose logits depend on an upstream Bernoulli (the LOORF
fallback), discrete + continuous guides, global + local sites under ``scale``, masks, a Binomial
(non-Bernoulli/categorical: LOORF), and learnable model parameters.
"""

import pytest

from ppl_arms.testing import assert_unbiased
from tests.adapters.harness import Z_MAX, NumPyroHarness, PyroHarness
from tests.adapters.specs import SPECS

_HARNESSES = {}


@pytest.fixture(params=["numpyro", "pyro"])
def harness(request):
    if request.param not in _HARNESSES:
        _HARNESSES[request.param] = {"numpyro": NumPyroHarness, "pyro": PyroHarness}[
            request.param
        ]()
    return _HARNESSES[request.param]


def _check(harness, spec, loss, exact):
    grads = harness.mc_gradients(spec, loss)
    assert_unbiased(grads, exact, z_max=Z_MAX, what=f"{harness.B.name} {loss!r} on {spec.name}")


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
@pytest.mark.parametrize("loss_class", ["TraceARMS_ELBO", "TraceGraphARMS_ELBO"])
def test_arms_elbo_is_unbiased(harness, spec, loss_class):
    loss = getattr(harness.B.losses, loss_class)(num_particles=4)
    _check(harness, spec, loss, harness.exact_gradient(spec))


ESTIMATORS = [
    ("loorf", {"estimator": "loorf"}, 3),
    ("reinforce", {"estimator": "reinforce"}, 2),
    ("arms-gaussian", {"copula": "gaussian"}, 3),
    ("disarm", {"estimator": "disarm"}, 4),
    ("carms-stick-breaking", {"categorical_coupling": "stick_breaking"}, 3),
    # the default coupling is the unsorted stick breaking (tested above and at n = 2 here);
    # CARMS-I stays covered by name
    ("carms-inverse-cdf", {"categorical_coupling": "inverse_cdf"}, 3),
    ("carms-unsorted-n2", {"categorical_coupling": "stick_breaking_unsorted"}, 2),
]


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
@pytest.mark.parametrize(("label", "kwargs", "n"), ESTIMATORS, ids=[e[0] for e in ESTIMATORS])
def test_every_estimator_is_unbiased(harness, spec, label, kwargs, n):
    if label == "disarm" and not spec.bernoulli_only:
        pytest.skip("DisARM is Bernoulli-only (its error at categorical sites is tested elsewhere)")
    if label.startswith("carms-") and spec.bernoulli_only:
        pytest.skip("the stick-breaking coupling applies to categorical sites only")
    loss = harness.B.losses.TraceARMS_ELBO(num_particles=n, **kwargs)
    _check(harness, spec, loss, harness.exact_gradient(spec))


IWAE_SPECS = [s for s in SPECS.values() if s.iwae]


@pytest.mark.parametrize("spec", IWAE_SPECS, ids=[s.name for s in IWAE_SPECS])
@pytest.mark.parametrize("estimator", ["arms", "loorf", "vimco"])
def test_iwae_is_unbiased(harness, spec, estimator):
    n = 3
    exact = harness.exact_gradient(
        spec, "iwae", num_particles=n, bound_plates=spec.iwae_bound_plates
    )
    loss = harness.B.losses.TraceARMS_IWAE(num_particles=n, estimator=estimator)
    _check(harness, spec, loss, exact)


def test_iwae_whole_trace_override(harness):
    """bound_plates=() in the oracle equals the loss's bound over everything but the replicates."""
    spec = SPECS["masked"]
    exact = harness.exact_gradient(spec, "iwae", num_particles=3, bound_plates=())
    loss = harness.B.losses.TraceARMS_IWAE(num_particles=3, bound_plates=("_replicates",))
    _check(harness, spec, loss, exact)
