"""Small test models with exactly computable objectives, written once for Pyro and NumPyro.

Each spec's ``build(B, full)`` returns ``(model, guide)`` taking no arguments; ``full=True``
disables subsampling (the oracle computes the full-data objective). Parameters are unconstrained
reals whose initial values come from ``params``; logits include |logit| >= 2 on both sides.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Spec:
    name: str
    build: Callable
    params: Mapping[str, np.ndarray]
    nesting: int
    bernoulli_only: bool = True
    continuous: bool = False
    iwae_bound_plates: tuple | None = None
    iwae: bool = True
    notes: str = ""
    extra: dict = field(default_factory=dict)


def _p(**kw):
    return {k: np.asarray(v, dtype=float) for k, v in kw.items()}


# 1. Bernoulli vector with to_event and a learnable model parameter -------------------------------
def _bernoulli_to_event(B, full):
    x = B.array([0.4, -1.1])
    w = B.array([[1.0, -0.5], [0.3, 0.8], [-1.2, 0.6]])

    def model():
        prior = B.param("prior_logits", B.array(P1["prior_logits"]))
        z = B.sample("z", B.dist.Bernoulli(logits=prior).to_event(1))
        B.sample("x", B.dist.Normal(z @ w, 1.0).to_event(1), obs=x)

    def guide():
        phi = B.param("phi", B.array(P1["phi"]))
        B.sample("z", B.dist.Bernoulli(logits=phi).to_event(1))

    return model, guide


P1 = _p(prior_logits=[0.5, -0.3, 0.1], phi=[2.2, -0.4, -2.5])


# 2. Bernoulli in a subsampled plate ---------------------------------------------------------------
def _bernoulli_subsample(B, full):
    x = B.array([0.3, -1.0, 2.0, 0.5])
    sub = None if full else 2

    def model():
        with B.plate("data", 4, subsample_size=sub) as idx:
            z = B.sample("z", B.dist.Bernoulli(logits=B.array(0.3)))
            B.sample("x", B.dist.Normal(2.0 * z - 1.0, 1.0), obs=x[idx])

    def guide():
        phi = B.param("phi", B.array(P2["phi"]))
        with B.plate("data", 4, subsample_size=sub) as idx:
            B.sample("z", B.dist.Bernoulli(logits=phi[idx]))

    return model, guide


P2 = _p(phi=[0.5, -2.0, 1.5, 2.4])


# 3. Categorical in nested plates with learnable likelihood means ----------------------------------
def _categorical_nested(B, full):
    x = B.array([[0.2, 1.5], [-1.0, 2.5]])

    def model():
        mu = B.param("mu", B.array(P3["mu"]))
        with B.plate("a", 2, dim=-2), B.plate("b", 2, dim=-1):
            z = B.sample("z", B.dist.Categorical(logits=B.array([0.2, -0.1, 0.4])))
            B.sample("x", B.dist.Normal(mu[z], 1.0), obs=x)

    def guide():
        phi = B.param("phi", B.array(P3["phi"]))
        with B.plate("a", 2, dim=-2), B.plate("b", 2, dim=-1):
            B.sample("z", B.dist.Categorical(logits=phi))

    return model, guide


P3 = _p(
    mu=[-1.0, 0.5, 2.0],
    phi=[[[2.1, -0.3, 0.0], [0.2, 0.1, -2.2]], [[-0.5, 1.0, 0.3], [0.0, 0.0, 0.0]]],
)


# 4. Chain: a categorical whose logits depend on an upstream Bernoulli (fallback path) -------------
def _chain(B, full):
    x = B.array([0.5, -0.8])

    def model():
        mu = B.param("mu", B.array(P4["mu"]))
        b = B.sample("b", B.dist.Bernoulli(logits=B.array(-0.4)))
        with B.plate("data", 2):
            c = B.sample("c", B.dist.Categorical(logits=B.array([0.1, 0.2, -0.3])))
            B.sample("x", B.dist.Normal(mu[c] + b, 1.0), obs=x)

    def guide():
        phi_b = B.param("phi_b", B.array(P4["phi_b"]))
        base = B.param("theta0", B.array(P4["theta0"]))
        delta = B.param("theta_delta", B.array(P4["theta_delta"]))
        b = B.sample("b", B.dist.Bernoulli(logits=phi_b))
        with B.plate("data", 2):
            B.sample("c", B.dist.Categorical(logits=base + b[..., None] * delta))

    return model, guide


P4 = _p(
    mu=[-1.0, 0.3, 1.2],
    phi_b=0.7,
    theta0=[[0.3, -1.0, 2.0], [0.0, 0.5, -0.5]],
    theta_delta=[[-2.0, 1.0, 0.0], [1.5, -0.5, 0.2]],
)


# 5. Discrete and continuous: a Normal whose loc depends on the discrete sample --------------------
def _mixed(B, full):
    x = B.array([0.7, -0.2])

    def model():
        z = B.sample("z", B.dist.Bernoulli(logits=B.array(-0.8)))
        y = B.sample("y", B.dist.Normal(B.array(0.0), 1.0))
        with B.plate("data", 2):
            w = B.sample("w", B.dist.Bernoulli(logits=B.array(0.2)))
            B.sample("x", B.dist.Normal(y + z + w, 1.0), obs=x)

    def guide():
        phi = B.param("phi", B.array(P5["phi"]))
        psi = B.param("psi", B.array(P5["psi"]))
        a = B.param("a", B.array(P5["a"]))
        c = B.param("c", B.array(P5["c"]))
        log_s = B.param("log_s", B.array(P5["log_s"]))
        z = B.sample("z", B.dist.Bernoulli(logits=phi))
        B.sample("y", B.dist.Normal(a + c * z, B.exp(log_s)))
        with B.plate("data", 2):
            B.sample("w", B.dist.Bernoulli(logits=psi))

    return model, guide


P5 = _p(phi=1.1, psi=[-2.2, 0.4], a=0.3, c=-0.9, log_s=-0.5)


# 6. Global and local discrete sites, under a scale handler ----------------------------------------
def _global_local(B, full):
    x = B.array([0.9, -0.4, 1.6])

    def model():
        with B.scale(scale=2.5):
            g = B.sample("g", B.dist.Bernoulli(logits=B.array(0.4)))
            with B.plate("data", 3):
                z = B.sample("z", B.dist.Bernoulli(logits=B.array(-0.2)))
                B.sample("x", B.dist.Normal(z + g, 1.0), obs=x)

    def guide():
        phi_g = B.param("phi_g", B.array(P6["phi_g"]))
        phi = B.param("phi", B.array(P6["phi"]))
        with B.scale(scale=2.5):
            B.sample("g", B.dist.Bernoulli(logits=phi_g))
            with B.plate("data", 3):
                B.sample("z", B.dist.Bernoulli(logits=phi))

    return model, guide


P6 = _p(phi_g=-1.3, phi=[2.0, -0.6, 0.9])


# 7. A masked site whose sample still drives an unmasked observation -------------------------------
def _masked(B, full):
    x = B.array([0.9, -1.4, 1.6])
    m = B.bool_array([True, False, True])

    def model():
        with B.plate("data", 3):
            with B.mask(mask=m):
                z = B.sample("z", B.dist.Bernoulli(logits=B.array(0.5)))
            B.sample("x", B.dist.Normal(2.0 * z - 1.0, 1.0), obs=x)

    def guide():
        phi = B.param("phi", B.array(P7["phi"]))
        with B.plate("data", 3):
            B.sample("z", B.dist.Bernoulli(logits=phi).mask(m))

    return model, guide


P7 = _p(phi=[0.3, 2.5, -2.0])


# 8. A finite non-Bernoulli/categorical site (Binomial): LOORF fallback ----------------------------
def _binomial(B, full):
    x = B.array([1.7, 0.2])

    def model():
        with B.plate("data", 2):
            k = B.sample("k", B.dist.Binomial(total_count=2, logits=B.array(0.0)))
            B.sample("x", B.dist.Normal(k * 1.0, 1.0), obs=x)

    def guide():
        phi = B.param("phi", B.array(P8["phi"]))
        with B.plate("data", 2):
            B.sample("k", B.dist.Binomial(total_count=2, logits=phi))

    return model, guide


P8 = _p(phi=[1.2, -0.7])


SPECS = {
    s.name: s
    for s in [
        Spec("bernoulli_to_event", _bernoulli_to_event, P1, 0),
        Spec("bernoulli_subsample", _bernoulli_subsample, P2, 1, iwae_bound_plates=("data",)),
        Spec("categorical_nested", _categorical_nested, P3, 2, bernoulli_only=False, iwae=False),
        Spec("chain_fallback", _chain, P4, 1, bernoulli_only=False),
        Spec("mixed_continuous", _mixed, P5, 1, continuous=True, iwae=False),
        Spec("global_local_scaled", _global_local, P6, 1),
        Spec("masked", _masked, P7, 1, iwae_bound_plates=("data",)),
        Spec("binomial_other", _binomial, P8, 1, iwae_bound_plates=("data",)),
    ]
}


# 9. A one-hot categorical whose value enters the likelihood smoothly (Double CV, RODEO) ----------
def _one_hot_smooth(B, full):
    """Pyro: ``OneHotCategorical``; NumPyro: ``Categorical`` plus a ``"z_one_hot"`` deterministic
    site (the route of ``ppl_arms.numpyro.sample_gradient``)."""
    x = B.array([0.6, -0.9])

    def one_hot(logits):
        if B.name == "pyro":
            return B.sample("z", B.dist.OneHotCategorical(logits=logits))
        import jax
        import numpyro

        z = B.sample("z", B.dist.Categorical(logits=logits))
        return numpyro.deterministic("z_one_hot", jax.nn.one_hot(z, 3))

    def model():
        w = B.param("w", B.array(P9["w"]))
        with B.plate("data", 2):
            v = one_hot(B.array([0.3, -0.2, 0.1]))
            B.sample("x", B.dist.Normal((v * w).sum(-1), 1.0), obs=x)

    def guide():
        phi = B.param("phi", B.array(P9["phi"]))
        family = B.dist.OneHotCategorical if B.name == "pyro" else B.dist.Categorical
        with B.plate("data", 2):
            B.sample("z", family(logits=phi))

    return model, guide


P9 = _p(w=[-1.0, 0.5, 2.0], phi=[[2.1, -0.3, 0.0], [0.2, 0.1, -2.2]])

ONE_HOT_SMOOTH = Spec("one_hot_smooth", _one_hot_smooth, P9, 1, bernoulli_only=False, iwae=False)
"""Kept out of :data:`SPECS` (the existing matrix): the gradient-informed estimators' own spec."""
