"""Exact-enumeration oracle for the IWAE estimators added after the main matrix: local DisARM and
the VIMCO-ARMS hybrid, in both host libraries (the Monte Carlo mean of the loss's gradient against
the exact gradient of the bound it optimises, by enumeration; see ``test_unbiased.py``).

``"vimco-arms"`` with ``num_particles=n`` optimises the ``(n - 1)``-sample bound, so its oracle is
the exact ``(n - 1)``-sample bound. NumPyro compiles each loss for seconds, so its cases (and the
extra models) run with ``-m slow``; Pyro's first cases take well under a second.
"""

import pytest

from ppl_arms.config import IWAE_ESTIMATORS
from ppl_arms.testing import assert_unbiased
from tests.adapters.harness import Z_MAX, shared_harness
from tests.adapters.specs import SPECS


@pytest.fixture(params=[pytest.param("numpyro", marks=pytest.mark.slow), "pyro"])
def harness(request):
    return shared_harness(request.param)


CASES = [
    # (estimator, num_particles, spec, slow)
    ("disarm", 2, "bernoulli_subsample", False),
    ("vimco-arms", 4, "masked", False),
    ("vimco-arms", 3, "bernoulli_subsample", True),
    ("vimco-arms", 3, "binomial_other", True),
]


@pytest.mark.parametrize(
    ("estimator", "n", "spec_name"),
    [
        pytest.param(e, n, s, marks=(pytest.mark.slow,) if slow else (), id=f"{e}-{s}")
        for e, n, s, slow in CASES
    ],
)
def test_iwae_estimator_is_unbiased(harness, estimator, n, spec_name):
    spec = SPECS[spec_name]
    bound = IWAE_ESTIMATORS[estimator].bound_size(n)
    exact = harness.exact_gradient(
        spec, "iwae", num_particles=bound, bound_plates=spec.iwae_bound_plates
    )
    loss = harness.B.losses.TraceARMS_IWAE(num_particles=n, estimator=estimator)
    grads = harness.mc_gradients(spec, loss)
    assert_unbiased(grads, exact, z_max=Z_MAX, what=f"{harness.B.name} {loss!r} on {spec.name}")


def test_hybrid_refuses_too_few_particles(harness):
    with pytest.raises(ValueError, match="num_particles >= 3"):
        harness.B.losses.TraceARMS_IWAE(num_particles=2, estimator="vimco-arms")
