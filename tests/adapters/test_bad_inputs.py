"""The bad-input matrix (issue 10, item 3): every row, both host libraries, every loss class.

Each row ends either in a clear error that names the argument or site, or in a finite, correct
result (see ``docs/errors.md``):

1. masked categories (a zero probability / ``-inf`` logit in a categorical guide site): finite
   loss whose mean is the exact objective (= the host ELBO's expected loss), unbiased gradients;
2. impossible model states (``factor(..., -inf)`` for some particles): eager calls raise naming
   the site; under ``jit`` the loss is ``inf`` with finite gradients; parameters never become NaN;
3. a categorical site with ``K = 1``: finite loss, gradient exactly zero, under every coupling;
4. ``num_particles`` that is not an integer ``>= 2``: error naming it at construction;
5. ``config_estimator(sites=...)`` naming a site the program never samples: error at the first
   trace naming it;
6. empty programs: loss 0; observations only: loss ``-log p(obs)``;
7. large ``K`` with the default settings: the default coupling is the ``O(nK + n^2)`` one, and a
   ``K = 200`` step is finite (its cost next to LOORF is measured in ``benchmarks.carms_cost``).

Statistical checks compare the mean of ``BATCHES`` loss evaluations (each over ``REPLICATES``
independent copies of the problem in a ``_replicates`` plate) with the exact value, within
``Z_MAX`` standard errors of that mean (t with 63 dof: about 5e-6 false alarms per cell).
"""

import itertools
import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ppl_arms.testing import assert_unbiased
from tests.adapters.backends import NumPyroBackend, PyroBackend

REPLICATES = 64
BATCHES = 64
Z_MAX = 5.0

_BACKENDS = {}


@pytest.fixture(params=["numpyro", "pyro"])
def B(request):
    if request.param not in _BACKENDS:
        _BACKENDS[request.param] = {"numpyro": NumPyroRunner, "pyro": PyroRunner}[request.param]()
    return _BACKENDS[request.param]


# -- backend runners: one loss evaluation, its value and its parameter gradients ------------------


class NumPyroRunner(NumPyroBackend):
    """NumPyro: parameters come from ``params`` (substituted); ``jit`` compiles once per call."""

    def __init__(self):
        super().__init__()
        import numpyro

        self.factor = numpyro.factor
        self.where = jnp.where

    def masked_categorical(self, logits):
        # NumPyro validates logits as finite reals: a masked category is a zero probability
        return self.dist.Categorical(probs=jax.nn.softmax(logits, -1))

    def value(self, loss, model, guide, params, seed=0):
        """An eager call (concrete arrays)."""
        return float(loss.loss(jax.random.key(seed), self._params(params), model, guide))

    def value_and_grad_fn(self, loss, model, guide):
        """A compiled ``(params, seed) -> (loss, grads)`` (for loops over seeds)."""
        vg = jax.jit(jax.value_and_grad(lambda p, key: loss.loss(key, p, model, guide)))

        def run(params, seed):
            v, g = vg(self._params(params), jax.random.key(seed))
            return float(v), {k: np.asarray(x) for k, x in g.items()}

        return run

    def value_and_grad(self, loss, model, guide, params, seed=0):
        return self.value_and_grad_fn(loss, model, guide)(params, seed)

    def _params(self, params):
        return {k: jnp.asarray(v) for k, v in params.items()}


class PyroRunner(PyroBackend):
    """Pyro: parameters are created by the guide from ``params`` (the initial values)."""

    def __init__(self):
        super().__init__()
        import pyro

        self.pyro = pyro
        self.factor = pyro.factor
        self.where = self.torch.where

    def masked_categorical(self, logits):
        return self.dist.Categorical(logits=logits)

    def value(self, loss, model, guide, params, seed=0):
        self.pyro.clear_param_store()
        self.pyro.set_rng_seed(seed)
        return float(loss.loss(model, guide))

    def value_and_grad_fn(self, loss, model, guide):
        def run(params, seed):
            self.pyro.clear_param_store()
            self.pyro.set_rng_seed(seed)
            value = loss.differentiable_loss(model, guide)
            names = sorted(params)
            leaves = [self.pyro.param(k).unconstrained() for k in names]
            grads = (
                self.torch.autograd.grad(value, leaves, allow_unused=True)
                if value.requires_grad
                else [None] * len(leaves)
            )
            return float(value.detach()), {
                k: np.zeros(np.shape(params[k])) if g is None else g.detach().numpy()
                for k, g in zip(names, grads, strict=True)
            }

        return run

    def value_and_grad(self, loss, model, guide, params, seed=0):
        return self.value_and_grad_fn(loss, model, guide)(params, seed)


# -- the loss classes and estimators --------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    cls: str
    kwargs: dict = field(default_factory=dict)
    iwae: bool = False
    disarm: bool = False  # DisARM at the Bernoulli sites, through config_estimator

    def build(self, B, guide, bernoulli_sites=()):
        loss = getattr(B.losses, self.cls)(**self.kwargs)
        if self.disarm:
            guide = B.losses.config_estimator(guide, "disarm", sites=list(bernoulli_sites))
        return loss, guide


CATEGORICAL_CASES = [
    Case("elbo-arms", "TraceARMS_ELBO", {"num_particles": 4}),  # the default coupling
    Case(
        "elbo-inverse-cdf",
        "TraceARMS_ELBO",
        {"num_particles": 4, "categorical_coupling": "inverse_cdf"},
    ),
    Case(
        "elbo-stick-breaking",
        "TraceARMS_ELBO",
        {"num_particles": 4, "categorical_coupling": "stick_breaking"},
    ),
    Case("elbo-loorf", "TraceARMS_ELBO", {"num_particles": 4, "estimator": "loorf"}),
    Case("elbo-reinforce", "TraceARMS_ELBO", {"num_particles": 4, "estimator": "reinforce"}),
    Case("graph-arms", "TraceGraphARMS_ELBO", {"num_particles": 4}),
    Case("iwae-arms", "TraceARMS_IWAE", {"num_particles": 3}, iwae=True),
    Case(
        "iwae-stick-breaking",
        "TraceARMS_IWAE",
        {"num_particles": 3, "categorical_coupling": "stick_breaking"},
        iwae=True,
    ),
    Case("iwae-loorf", "TraceARMS_IWAE", {"num_particles": 3, "estimator": "loorf"}, iwae=True),
    Case("iwae-vimco", "TraceARMS_IWAE", {"num_particles": 3, "estimator": "vimco"}, iwae=True),
]
ALL_CASES = [
    *CATEGORICAL_CASES,
    Case("elbo-disarm", "TraceARMS_ELBO", {"num_particles": 4}, disarm=True),
]
LOSS_CLASSES = ["TraceARMS_ELBO", "TraceGraphARMS_ELBO", "TraceARMS_IWAE"]
LOSS_CASES = [
    Case("elbo-loorf", "TraceARMS_ELBO", {"num_particles": 4, "estimator": "loorf"}),
    Case("graph-loorf", "TraceGraphARMS_ELBO", {"num_particles": 4, "estimator": "loorf"}),
    Case("iwae-loorf", "TraceARMS_IWAE", {"num_particles": 3, "estimator": "loorf"}, iwae=True),
    Case("iwae-vimco", "TraceARMS_IWAE", {"num_particles": 3, "estimator": "vimco"}, iwae=True),
]
"""One case per loss class (and VIMCO) for rows handled by the loss class whatever the estimator,
with i.i.d. estimators: an eager NumPyro call of a coupled estimator first compiles each of its
operations (seconds)."""


def _ids(cases):
    return [c.id for c in cases]


def _params(cases, fast):
    """Cases as pytest params; those not named in ``fast`` run only with the slow set.

    Each NumPyro case compiles its own loss (about a second on a quiet core), so the default run
    covers every code path of a row with a few cases and ``-m slow`` runs the rest.
    """
    return [pytest.param(c, id=c.id, marks=() if c.id in fast else pytest.mark.slow) for c in cases]


MASKED_PARAMS = _params(
    CATEGORICAL_CASES,
    ("elbo-arms", "elbo-inverse-cdf", "elbo-stick-breaking", "iwae-arms", "iwae-vimco"),
)
HARD_PARAMS = _params(ALL_CASES, ("elbo-arms", "elbo-disarm", "iwae-arms", "iwae-vimco"))
ONE_CATEGORY_PARAMS = _params(
    CATEGORICAL_CASES, ("elbo-arms", "elbo-stick-breaking", "elbo-loorf", "iwae-arms")
)


# -- 1. masked categories --------------------------------------------------------------------------

PRIOR = np.array([0.2, 0.3, 0.5])
MU = np.array([-1.0, 0.5, 2.0])
X_OBS = 0.4
MASK = np.array([0.0, -np.inf, 0.0])
SUPPORT = np.array([0, 2])
PHI = np.array([0.8, 0.0, -1.3])


def _masked_programs(B, replicates):
    def model():
        with B.plate("_replicates", replicates):
            z = B.sample("z", B.dist.Categorical(probs=B.array(PRIOR)))
            B.sample("x", B.dist.Normal(B.array(MU)[z], 1.0), obs=B.array(X_OBS))

    def guide():
        phi = B.param("phi", B.array(PHI))
        with B.plate("_replicates", replicates):
            B.sample("z", B.masked_categorical(phi + B.array(MASK)))

    return model, guide


def _log_weights(phi_support):
    """log p(x, k) - log q(k) on the support, as a function of the unmasked logits (JAX)."""
    log_q = jax.nn.log_softmax(phi_support)
    log_lik = -0.5 * (X_OBS - MU[SUPPORT]) ** 2 - 0.5 * math.log(2 * math.pi)
    return jnp.log(PRIOR[SUPPORT]) + log_lik - log_q, log_q


def _exact_objective(phi_support, num_particles=None):
    """The ELBO, or the multi-sample bound with ``num_particles`` (enumerating the support)."""
    log_w, log_q = _log_weights(phi_support)
    if num_particles is None:
        return jnp.sum(jnp.exp(log_q) * log_w)
    total = 0.0
    for tup in itertools.product(range(len(SUPPORT)), repeat=num_particles):
        idx = np.array(tup)
        prob = jnp.exp(jnp.sum(log_q[idx]))
        total = total + prob * (jax.nn.logsumexp(log_w[idx]) - math.log(num_particles))
    return total


def _exact(case):
    n = case.kwargs["num_particles"] if case.iwae else None
    phi_s = jnp.asarray(PHI[SUPPORT])
    value, grad_s = jax.value_and_grad(lambda p: _exact_objective(p, n))(phi_s)
    grad = np.zeros(3)
    grad[SUPPORT] = np.asarray(grad_s)  # a masked logit does not change q
    return float(value), grad


def _mc(B, loss, model, guide):
    run = B.value_and_grad_fn(loss, model, guide)
    rows = []
    for b in range(BATCHES):
        value, grads = run({"phi": PHI}, b)
        rows.append(np.concatenate([[value], grads["phi"]]) / REPLICATES)
    return np.stack(rows)


@pytest.mark.parametrize("case", MASKED_PARAMS)
def test_masked_categories_give_finite_unbiased_loss_and_gradient(B, case):
    model, guide = _masked_programs(B, REPLICATES)
    loss, guide = case.build(B, guide)
    rows = _mc(B, loss, model, guide)
    assert np.all(np.isfinite(rows)), f"{B} {case.id}: non-finite loss or gradient"
    value, grad = _exact(case)
    # the loss is the negated objective: its mean is -objective, its gradient -grad
    assert_unbiased(rows, np.concatenate([[-value], -grad]), z_max=Z_MAX, what=f"{B} {case.id}")


def test_masked_categories_host_elbo_has_the_same_mean(B):
    """The exact value used above is the host ELBO's expected loss on the same program."""
    if B.name == "numpyro":
        from numpyro.infer import TraceGraph_ELBO as Host  # Trace_ELBO warns for discrete sites
    else:
        from pyro.infer import Trace_ELBO as Host
    model, guide = _masked_programs(B, REPLICATES)
    run = B.value_and_grad_fn(Host(), model, guide)
    values = np.array([run({"phi": PHI}, b)[0] for b in range(BATCHES)]) / REPLICATES
    assert np.all(np.isfinite(values))
    assert_unbiased(values[:, None], [-_exact(CATEGORICAL_CASES[0])[0]], z_max=Z_MAX, what="host")


@pytest.mark.parametrize("cls", ["TraceARMS_ELBO", "TraceARMS_IWAE"])
def test_masked_logits_unvalidated_numpyro(cls):
    """NumPyro with ``-inf`` logits (validation off for that site) is finite too."""
    B = NumPyroRunner()

    def model():
        z = B.sample("z", B.dist.Categorical(probs=B.array(PRIOR)))
        B.sample("x", B.dist.Normal(B.array(MU)[z], 1.0), obs=B.array(X_OBS))

    def guide():
        phi = B.param("phi", B.array(PHI))
        B.sample("z", B.dist.Categorical(logits=phi + B.array(MASK), validate_args=False))

    loss = getattr(B.losses, cls)(num_particles=3)
    value, grads = B.value_and_grad(loss, model, guide, {"phi": PHI})
    assert np.isfinite(value) and np.all(np.isfinite(grads["phi"]))
    assert abs(grads["phi"][1]) < 1e-12


# -- 2. impossible model states --------------------------------------------------------------------

HARD = {"pb": np.array([5.0, 5.0, 5.0]), "pc": np.array([0.0, 0.0, 6.0])}


def _hard_programs(B):
    """``b = 1`` together with ``c = 2`` is impossible; the guide proposes it most of the time."""

    def model():
        with B.plate("data", 3):
            b = B.sample("b", B.dist.Bernoulli(logits=B.array(0.0)))
            c = B.sample("c", B.dist.Categorical(logits=B.array([0.0, 0.0, 0.0])))
            B.factor("hard", B.where((b == 1) & (c == 2), -math.inf, 0.0))

    def guide():
        pb = B.param("pb", B.array(HARD["pb"]))
        pc = B.param("pc", B.array(HARD["pc"]))
        with B.plate("data", 3):
            B.sample("b", B.dist.Bernoulli(logits=pb))
            B.sample("c", B.dist.Categorical(logits=pc))

    return model, guide


@pytest.mark.parametrize("case", LOSS_CASES, ids=_ids(LOSS_CASES))
def test_impossible_state_raises_eagerly_naming_the_site(B, case):
    model, guide = _hard_programs(B)
    loss, guide = case.build(B, guide, ["b"])
    with pytest.raises(ValueError, match=r"model site 'hard' has log-density -inf"):
        B.value(loss, model, guide, HARD)


@pytest.mark.parametrize("case", HARD_PARAMS)
def test_impossible_state_under_jit_is_inf_with_finite_gradients(case):
    B = NumPyroRunner()
    model, guide = _hard_programs(B)
    loss, guide = case.build(B, guide, ["b"])
    value, grads = B.value_and_grad(loss, model, guide, HARD)
    assert not np.isnan(value)
    if not case.iwae:  # the IWAE bound is finite where some particle of an element is possible
        assert value == np.inf
    assert all(np.all(np.isfinite(g)) for g in grads.values()), grads


def test_impossible_state_never_turns_numpyro_parameters_into_nan():
    import numpyro.optim
    from numpyro.infer import SVI

    B = NumPyroRunner()
    model, guide = _hard_programs(B)
    svi = SVI(model, guide, numpyro.optim.Adam(0.1), loss=B.losses.TraceARMS_ELBO(4))
    state = svi.init(jax.random.key(0))
    update = jax.jit(svi.update)
    for _ in range(3):
        state, loss = update(state)
    assert loss == np.inf
    params = svi.get_params(state)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in params.values()), params


def test_impossible_state_never_turns_pyro_parameters_into_nan():
    from pyro.infer import SVI
    from pyro.optim import Adam

    B = PyroRunner()
    model, guide = _hard_programs(B)
    svi = SVI(model, guide, Adam({"lr": 0.1}), loss=B.losses.TraceARMS_ELBO(4))
    with pytest.raises(ValueError, match="model site 'hard'"):
        svi.step()
    for name, init in HARD.items():
        np.testing.assert_array_equal(B.pyro.param(name).detach().numpy(), init)


# -- 3. categorical with K = 1 ---------------------------------------------------------------------

X2 = np.array([0.5, -1.5])


def _one_category_programs(B):
    def model():
        with B.plate("data", 2):
            z = B.sample("z", B.dist.Categorical(logits=B.array([0.0])))
            B.sample("x", B.dist.Normal(z * 1.0, 1.0), obs=B.array(X2))

    def guide():
        phi = B.param("phi", B.array([0.3]))
        with B.plate("data", 2):
            B.sample("z", B.dist.Categorical(logits=phi))

    return model, guide


@pytest.mark.parametrize("case", ONE_CATEGORY_PARAMS)
def test_one_category_has_zero_gradient(B, case):
    model, guide = _one_category_programs(B)
    loss, guide = case.build(B, guide)
    value, grads = B.value_and_grad(loss, model, guide, {"phi": np.array([0.3])})
    exact = float(np.sum(0.5 * X2**2 + 0.5 * math.log(2 * math.pi)))  # -log p(x | z = 0)
    assert value == pytest.approx(exact, rel=1e-12)
    np.testing.assert_array_equal(grads["phi"], [0.0])


# -- 4. num_particles ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [2.5, 4.0, "4", True, 1, None], ids=repr)
@pytest.mark.parametrize("cls", LOSS_CLASSES)
def test_num_particles_must_be_an_integer_of_at_least_two(B, cls, bad):
    with pytest.raises(ValueError, match="num_particles"):
        getattr(B.losses, cls)(num_particles=bad)


def _bernoulli_programs(B, guide_name="z"):
    def model():
        with B.plate("data", 2):
            z = B.sample("z", B.dist.Bernoulli(logits=B.array(0.3)))
            B.sample("x", B.dist.Normal(2.0 * z - 1.0, 1.0), obs=B.array(X2))

    def guide():
        phi = B.param("phi", B.array([0.5, -2.0]))
        with B.plate("data", 2):
            B.sample(guide_name, B.dist.Bernoulli(logits=phi))

    return model, guide


@pytest.mark.parametrize(
    ("cls", "estimator"),
    [("TraceARMS_ELBO", "arms"), ("TraceGraphARMS_ELBO", "loorf"), ("TraceARMS_IWAE", "loorf")],
)
def test_numpy_integer_num_particles_still_works(B, cls, estimator):
    loss = getattr(B.losses, cls)(num_particles=np.int64(4), estimator=estimator)
    model, guide = _bernoulli_programs(B)
    assert np.isfinite(B.value(loss, model, guide, {"phi": np.array([0.5, -2.0])}))


# -- 5. config_estimator(sites=...) with a name the program never samples -------------------------


@pytest.mark.parametrize("case", LOSS_CASES, ids=_ids(LOSS_CASES))
def test_config_estimator_rejects_unknown_site_names(B, case):
    model, guide = _bernoulli_programs(B)
    loss, guide = case.build(B, guide, ["z"])
    guide = B.losses.config_estimator(guide, "loorf", sites=["zz"])
    with pytest.raises(ValueError, match=r"names 'zz', which the program never samples"):
        B.value(loss, model, guide, {"phi": np.array([0.5, -2.0])})


def test_config_estimator_accepts_sampled_site_names(B):
    model, guide = _bernoulli_programs(B)
    guide = B.losses.config_estimator(guide, "loorf", sites=["z"])
    loss = B.losses.TraceARMS_ELBO(num_particles=4)
    for seed in range(2):  # the check runs once; later calls are unaffected
        assert np.isfinite(B.value(loss, model, guide, {"phi": np.array([0.5, -2.0])}, seed))


# -- 6. empty programs -----------------------------------------------------------------------------


def _empty():
    pass


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_empty_programs_have_zero_loss(B, case):
    loss, guide = case.build(B, _empty)
    assert B.value(loss, _empty, guide, {}) == 0.0


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_observations_only_give_minus_log_likelihood(B, case):
    def model():
        B.sample("x", B.dist.Normal(0.0, 1.0), obs=B.array(0.5))

    loss, guide = case.build(B, _empty)
    exact = 0.5 * 0.5**2 + 0.5 * math.log(2 * math.pi)
    assert B.value(loss, model, guide, {}) == pytest.approx(exact, rel=1e-12)


def test_pyro_empty_programs_step():
    """``loss_and_grads`` (what ``SVI.step`` calls) also works without any sample site."""
    B = PyroRunner()
    for cls in LOSS_CLASSES:
        assert getattr(B.losses, cls)(num_particles=4).loss_and_grads(_empty, _empty) == 0.0


# -- 7. large K with the default settings -----------------------------------------------------------


def test_default_categorical_coupling_is_linear_in_k():
    """The default resolves to the O(nK + n^2) coupling at every K (no K^3 ordering average).

    The cost itself is measured side by side with LOORF in ``benchmarks.carms_cost``.
    """
    from ppl_arms.config import DEFAULT_CATEGORICAL_COUPLING, EstimatorConfig
    from ppl_arms.core import StickBreakingCARMS
    from ppl_arms.core.estimators import DistKind

    est = EstimatorConfig(num_samples=4).for_site(DistKind.CATEGORICAL, "z", {})
    assert DEFAULT_CATEGORICAL_COUPLING == "stick_breaking_unsorted"
    assert isinstance(est, StickBreakingCARMS) and not est.sort


@pytest.mark.parametrize("cls", ["TraceARMS_ELBO", "TraceARMS_IWAE"])
def test_large_k_default_step_is_finite(B, cls):
    k = 200
    rng = np.random.default_rng(3)
    phi0 = rng.normal(size=(3, k))

    def model():
        with B.plate("data", 3):
            z = B.sample("z", B.dist.Categorical(logits=B.array(np.zeros(k))))
            B.sample("x", B.dist.Normal(z * 0.01, 1.0), obs=B.array([0.5, 1.0, 1.5]))

    def guide():
        phi = B.param("phi", B.array(phi0))
        with B.plate("data", 3):
            B.sample("z", B.dist.Categorical(logits=phi))

    loss = getattr(B.losses, cls)(num_particles=4)
    value, grads = B.value_and_grad(loss, model, guide, {"phi": phi0})
    assert math.isfinite(value)
    assert grads["phi"].shape == (3, k) and np.all(np.isfinite(grads["phi"]))
    assert np.any(grads["phi"] != 0)


def test_every_loss_defaults_to_the_config_default_coupling():
    """The constructors spell the default out (readable signatures); it must be the config's."""
    import inspect

    import ppl_arms.numpyro as numpyro_losses
    import ppl_arms.pyro as pyro_losses
    from ppl_arms.config import DEFAULT_CATEGORICAL_COUPLING

    for module in (numpyro_losses, pyro_losses):
        for cls in LOSS_CLASSES:
            default = inspect.signature(getattr(module, cls)).parameters["categorical_coupling"]
            assert default.default == DEFAULT_CATEGORICAL_COUPLING, (module.__name__, cls)
