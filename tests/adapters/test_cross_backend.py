"""The same test model in Pyro and NumPyro has the same exact gradients (both oracles agree), and
both adapters give the same loss value distribution; each adapter's Monte Carlo mean matches its
oracle in ``test_unbiased.py``, so both match the common exact gradient."""

import numpy as np
import pytest

from tests.adapters.harness import shared_harness
from tests.adapters.specs import SPECS


@pytest.fixture(scope="module")
def harnesses():
    return shared_harness("numpyro"), shared_harness("pyro")


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
def test_exact_elbo_gradients_agree_across_backends(harnesses, spec):
    numpyro_h, pyro_h = harnesses
    np.testing.assert_allclose(
        numpyro_h.exact_gradient(spec), pyro_h.exact_gradient(spec), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("spec", [s for s in SPECS.values() if s.iwae], ids=lambda s: s.name)
def test_exact_iwae_gradients_agree_across_backends(harnesses, spec):
    numpyro_h, pyro_h = harnesses
    kwargs = {"num_particles": 3, "bound_plates": spec.iwae_bound_plates}
    np.testing.assert_allclose(
        numpyro_h.exact_gradient(spec, "iwae", **kwargs),
        pyro_h.exact_gradient(spec, "iwae", **kwargs),
        rtol=1e-10,
        atol=1e-12,
    )
