"""Exact-enumeration oracle suite: every loss x estimator x test model, in both host libraries.

The Monte Carlo mean of each loss's gradient (over independent replicates, see ``harness.py``)
must match the exact gradient of the ELBO (or of the multi-sample bound), computed by enumerating
every discrete guide configuration (Gauss–Hermite for the continuous site), within ``Z_MAX``
standard errors in every parameter coordinate. The models cover ``to_event``, subsampling, nested
plates with categoricals, a categorical whose logits depend on an upstream Bernoulli (the LOORF
fallback), discrete + continuous guides, global + local sites under ``scale``, masks, a Binomial
(non-Bernoulli/categorical: LOORF), and learnable model parameters.

The default suite runs a covering subset of the matrix: every loss and estimator on at least one
model it applies to, and every model under the default loss, rotating so that the pairs differ
between variants. The full cross product (every variant on every model) is marked ``slow`` and runs
in CI (``pytest -m slow``).
"""

import pytest

from ppl_arms.testing import assert_unbiased
from tests.adapters.harness import Z_MAX, shared_harness
from tests.adapters.specs import ONE_HOT_SMOOTH, SPECS


@pytest.fixture(params=["numpyro", "pyro"])
def harness(request):
    return shared_harness(request.param)


def _matrix(variants, specs, applies=lambda variant, spec: True, ids=str, every_spec=False):
    """``(variant, spec)`` parameters, all but a rotating covering subset marked ``slow``.

    Variant ``i`` keeps, in the default suite, the applicable spec at position ``i`` (cyclically)
    of its applicable specs; with ``every_spec``, a second pass adds every spec that no variant
    kept yet, under the first variant that applies to it. The other pairs run with ``-m slow``.
    """
    kept = set()
    for i, variant in enumerate(variants):
        usable = [s for s in specs if applies(variant, s)]
        if usable:
            kept.add((i, usable[i % len(usable)].name))
    for spec in specs if every_spec else ():
        if not any(name == spec.name for _, name in kept):
            i = next(i for i, v in enumerate(variants) if applies(v, spec))
            kept.add((i, spec.name))
    params = []
    for i, variant in enumerate(variants):
        for spec in specs:
            if not applies(variant, spec):
                continue
            marks = () if (i, spec.name) in kept else (pytest.mark.slow,)
            params.append(
                pytest.param(variant, spec, marks=marks, id=f"{ids(variant)}-{spec.name}")
            )
    return params


def _check(harness, spec, loss, exact):
    grads = harness.mc_gradients(spec, loss)
    assert_unbiased(grads, exact, z_max=Z_MAX, what=f"{harness.B.name} {loss!r} on {spec.name}")


@pytest.mark.parametrize(
    ("loss_class", "spec"),
    _matrix(["TraceARMS_ELBO", "TraceGraphARMS_ELBO"], list(SPECS.values()), every_spec=True),
)
def test_arms_elbo_is_unbiased(harness, loss_class, spec):
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


def _estimator_applies(estimator, spec):
    label = estimator[0]
    if label == "disarm":
        return spec.bernoulli_only  # its error at categorical sites is tested elsewhere
    if label.startswith("carms-"):
        return not spec.bernoulli_only  # the categorical couplings need a categorical site
    return True


@pytest.mark.parametrize(
    ("estimator", "spec"),
    _matrix(ESTIMATORS, list(SPECS.values()), _estimator_applies, ids=lambda e: e[0]),
)
def test_every_estimator_is_unbiased(harness, estimator, spec):
    _, kwargs, n = estimator
    loss = harness.B.losses.TraceARMS_ELBO(num_particles=n, **kwargs)
    _check(harness, spec, loss, harness.exact_gradient(spec))


IWAE_SPECS = [s for s in SPECS.values() if s.iwae]


@pytest.mark.parametrize(("estimator", "spec"), _matrix(["arms", "loorf", "vimco"], IWAE_SPECS))
def test_iwae_is_unbiased(harness, estimator, spec):
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


# -- gradient-informed estimators (Double CV, RODEO; issue #14) ---------------------------------
# Smooth models (f differentiable in z: bernoulli_to_event, masked, one_hot_smooth) exercise the
# control variates; non-differentiable ones (categorical_nested indexes mu[z]) reduce to LOORF
# with a warning (and equal LOORF exactly: test_gradient_informed.py). The default suite keeps a
# smooth Bernoulli and a smooth one-hot spec (each estimator and loss once); the rest is slow.
GRADIENT_SPECS = [*SPECS.values(), ONE_HOT_SMOOTH]
_GRADIENT_DEFAULT = {
    ("double_cv", "TraceARMS_ELBO", "bernoulli_to_event"),
    ("rodeo", "TraceGraphARMS_ELBO", "one_hot_smooth"),
}


def _gradient_matrix():
    params = []
    for estimator in ("double_cv", "rodeo"):
        for loss_class in ("TraceARMS_ELBO", "TraceGraphARMS_ELBO"):
            for spec in GRADIENT_SPECS:
                key = (estimator, loss_class, spec.name)
                marks = () if key in _GRADIENT_DEFAULT else (pytest.mark.slow,)
                params.append(pytest.param(*key[:2], spec, marks=marks, id="-".join(key)))
    return params


@pytest.mark.filterwarnings("ignore:site .* non-differentiably:UserWarning")
@pytest.mark.filterwarnings("ignore:site .* learned parameters:UserWarning")
@pytest.mark.parametrize(("estimator", "loss_class", "spec"), _gradient_matrix())
def test_gradient_informed_is_unbiased(harness, estimator, loss_class, spec):
    loss = getattr(harness.B.losses, loss_class)(num_particles=3, estimator=estimator)
    _check(harness, spec, loss, harness.exact_gradient(spec))
