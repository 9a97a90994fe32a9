"""The core's per-backend tests run in torch by default and in both backends in the slow set.

The core is one source for both backends (:mod:`ppl_arms.core._ops`): a JAX run of a core test
executes the same estimator code as the torch run, only through ``JaxOps``. That the two backends
give the same numbers on the same noise is proven in the default suite by
``test_cross_backend.py`` (every estimator, copula, sampler and IWAE term, eager and under
``jit``, to 1e-10) and by the Hypothesis agreement checks of ``test_properties.py``. Running every
statistical and exact test a second time through eager JAX, which compiles each primitive once per
shape, would cost four times the torch run (about 290 of the 900 CPU seconds of the default suite)
and prove nothing the agreement tests do not; the slow set (``-m slow``, run by ``.ci/run``) still
runs them in JAX.
"""

import pytest

from tests.conftest import Backend


@pytest.fixture(params=["torch", pytest.param("jax", marks=pytest.mark.slow)])
def backend(request):
    return Backend(request.param)
