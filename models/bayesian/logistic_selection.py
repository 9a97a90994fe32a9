r"""Spike-and-slab logistic regression on scikit-learn's breast-cancer data (non-conjugate).

**Model** (``n`` data points, ``p`` standardised predictors :math:`X`, binary labels :math:`y`)

.. math::
    \alpha\sim\mathcal N(0,s^2),\qquad \gamma_j\sim\mathrm{Bern}(\pi),\qquad
    \beta_j\sim\mathcal N(0,\tau^2),\qquad
    y_i\mid\alpha,\gamma,\beta\sim\mathrm{Bern}\big(\mathrm{sigmoid}(\alpha+x_i^\top(\gamma\odot\beta))\big)
    \qquad(j=1..p).

As in :mod:`models.bayesian.sparse_regression` this is the *product* (Kuo–Mallick) form: every
program samples ``gamma`` and ``beta``, and an excluded coefficient only carries its prior. The
intercept :math:`\alpha` is always included. No marginal likelihood is available in closed form.

**Reference answer** (:func:`polya_gamma_reference`). A Gibbs sampler that no benchmarked method
runs: Pólya-Gamma data augmentation (Polson, Scott & Windle 2013). Given
:math:`\omega_i\sim\mathrm{PG}(1,\eta_i)` the likelihood is Gaussian in the linear predictor
:math:`\eta=\alpha+X(\gamma\odot\beta)`,
:math:`p(y_i\mid\eta_i,\omega_i)\propto\exp(\kappa_i\eta_i-\omega_i\eta_i^2/2)` with
:math:`\kappa_i=y_i-\tfrac12`, so with :math:`Z_\gamma=[1,X_\gamma]`,
:math:`A_\gamma=Z_\gamma^\top\Omega Z_\gamma+\mathrm{diag}(s^{-2},\tau^{-2},\dots)` and
:math:`c_\gamma=Z_\gamma^\top\kappa`, the coefficients integrate out:

.. math::
    \log p(\gamma\mid\omega,y)=\log p(\gamma)-\tfrac12\log\det(\tau^2A_\gamma)
    +\tfrac12c_\gamma^\top A_\gamma^{-1}c_\gamma+\text{const}.

One sweep draws every :math:`\gamma_j` from this exact conditional (coefficients integrated out;
random order), then :math:`(\alpha,\beta_\gamma)\mid\gamma,\omega` (Gaussian), then
:math:`\omega\mid\eta`. Inclusion probabilities are Rao-Blackwellised (the mean of the conditional
probabilities); several chains from independent prior draws give split-R-hat.

The Pólya-Gamma draws use the series :math:`\mathrm{PG}(1,z)\overset d=\frac1{2\pi^2}
\sum_{k\ge1}\frac{g_k}{(k-1/2)^2+z^2/(4\pi^2)}`, :math:`g_k\sim\mathrm{Exp}(1)`, truncated after
``num_terms`` terms with the tail replaced by its mean (:func:`sample_polya_gamma`); with 200
terms the omitted randomness has a standard deviation below :math:`10^{-5}`, against
:math:`\sqrt{1/24}\approx0.2` for :math:`\mathrm{PG}(1,0)`. On tiny problems the reference is
checked against :func:`importance_inclusion_probabilities` (prior importance sampling of every
model's marginal likelihood).

**Discrete sites.** ``"gamma"``: Bernoulli, shape ``[p]``, plate ``"predictors"``.
**Continuous sites.** ``"alpha"`` (real, scalar), ``"beta"`` (real, plate ``"predictors"``).
**Observed.** ``"y"`` (plate ``"data"``).

**Data.** :func:`load_breast_cancer_data`: scikit-learn's Wisconsin diagnostic breast-cancer data
(569 tumours, 30 features of the cell nuclei, label 1 = benign), embedded in scikit-learn; the
columns are standardised. Many features are strongly correlated (radius, perimeter and area), so
the posterior over ``gamma`` does not factorise.

References:
    N. G. Polson, J. G. Scott, J. Windle. "Bayesian Inference for Logistic Models Using
    Pólya-Gamma Latent Variables." JASA 108(504), 2013.
    L. Kuo, B. Mallick. "Variable selection for regression models." Sankhya B 60(1), 1998.
    W. N. Street, W. H. Wolberg, O. L. Mangasarian. "Nuclear feature extraction for breast tumor
    diagnosis." IS&T/SPIE 1993 (the data).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "LogisticData",
    "LogisticPrior",
    "importance_inclusion_probabilities",
    "load_breast_cancer_data",
    "numpyro_guide",
    "numpyro_model",
    "polya_gamma_reference",
    "sample_polya_gamma",
]


@dataclass(frozen=True)
class LogisticPrior:
    r"""Prior inclusion probability :math:`\pi`, slab scale :math:`\tau`, intercept scale :math:`s`."""

    inclusion_prob: float = 0.1
    slab_scale: float = 2.0
    intercept_scale: float = 5.0


@dataclass(frozen=True)
class LogisticData:
    """Standardised predictors ``x`` ``[n, p]``, labels ``y`` (0/1 floats) and the feature names."""

    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]


def load_breast_cancer_data() -> LogisticData:
    """scikit-learn's breast-cancer data, columns standardised (mean 0, standard deviation 1)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x = np.asarray(bunch.data, dtype=np.float64)
    x = (x - x.mean(0)) / x.std(0)
    return LogisticData(x, np.asarray(bunch.target, np.float64), tuple(bunch.feature_names))


# -- reference answers ------------------------------------------------------------------------


def sample_polya_gamma(key: Any, z: Any, num_terms: int = 200) -> Any:
    r"""Draws of :math:`\mathrm{PG}(1, z)`, one per entry of ``z`` (JAX), by the truncated series.

    The first ``num_terms`` terms of the infinite sum of weighted exponentials are drawn; the rest
    is replaced by its expectation, so the mean is exact up to floating point
    (:math:`\tanh(z/2)/(2z)`) and only the tail's variance, :math:`O(\text{num\_terms}^{-3})`, is
    lost.

    Args:
        key: A JAX PRNG key.
        z: The tilting parameters (any shape).
        num_terms: Number of exponential terms drawn.
    """
    import jax
    import jax.numpy as jnp

    z = jnp.asarray(z)
    half = jnp.arange(1, num_terms + 1, dtype=z.dtype) - 0.5
    c = (z / (2 * math.pi))[..., None] ** 2
    denom = half**2 + c
    g = jax.random.exponential(key, (*z.shape, num_terms), dtype=z.dtype)
    head = (g / denom).sum(-1)
    # E[PG(1, z)] = tanh(z/2)/(2z) = (1/(2 pi^2)) sum_k 1/((k-1/2)^2 + c); the tail's share of it
    safe = jnp.where(jnp.abs(z) > 0, z, 1.0)
    mean = jnp.where(jnp.abs(z) > 0, jnp.tanh(safe / 2) / (2 * safe), 0.25)
    tail = mean - (1 / denom).sum(-1) / (2 * math.pi**2)
    return head / (2 * math.pi**2) + tail


def _pg_gibbs(x: Any, y: Any, prior: LogisticPrior, num_sweeps: int, num_terms: int) -> Any:
    """A jitted ``key, gamma0 -> (rb_pips [sweeps, p], gammas [sweeps, p])`` for one chain."""
    import jax
    import jax.numpy as jnp

    n, p = x.shape
    z = jnp.concatenate([jnp.ones((n, 1), x.dtype), x], 1)  # [1, X]
    kappa = y - 0.5
    zk = z.T @ kappa
    tau2 = prior.slab_scale**2
    logit_pi = math.log(prior.inclusion_prob) - math.log1p(-prior.inclusion_prob)
    prior_prec = jnp.concatenate([jnp.array([prior.intercept_scale**-2]), jnp.full(p, 1 / tau2)])

    def log_joint(gram: Any, g: Any) -> Any:
        """``log p(gamma | omega, y)`` up to a constant, on the embedded ``(p+1) x (p+1)`` system."""
        a = g[:, None] * gram * g[None, :] + jnp.diag(prior_prec)
        c = g * zk
        chol = jnp.linalg.cholesky(a)
        logdet = 2 * jnp.log(jnp.diagonal(chol)).sum()
        sol = jax.scipy.linalg.cho_solve((chol, True), c)
        return -0.5 * logdet + 0.5 * c @ sol

    def flip(carry: Any, j: Any) -> Any:
        key, g, gram = carry
        key, sub = jax.random.split(key)
        on = log_joint(gram, g.at[j + 1].set(1.0))
        off = log_joint(gram, g.at[j + 1].set(0.0))
        prob = jax.nn.sigmoid(logit_pi + on - off)
        new = (jax.random.uniform(sub) < prob).astype(g.dtype)
        return (key, g.at[j + 1].set(new), gram), prob

    def sweep(carry: Any, _: Any) -> Any:
        key, gamma, omega = carry
        key, k_flip, k_perm, k_coef, k_pg = jax.random.split(key, 5)
        gram = (z * omega[:, None]).T @ z
        g = jnp.concatenate([jnp.ones(1, x.dtype), gamma])
        order = jax.random.permutation(k_perm, p)
        (_, g, _), probs = jax.lax.scan(flip, (k_flip, g, gram), order)
        # (alpha, beta_gamma) | gamma, omega: N(A^{-1} c, A^{-1}) on the embedded system
        a = g[:, None] * gram * g[None, :] + jnp.diag(prior_prec)
        chol = jnp.linalg.cholesky(a)
        mean = jax.scipy.linalg.cho_solve((chol, True), g * zk)
        eps = jax.random.normal(k_coef, (p + 1,), x.dtype)
        coef = mean + jax.scipy.linalg.solve_triangular(chol.T, eps, lower=False)
        omega = sample_polya_gamma(k_pg, z @ (g * coef), num_terms)
        rb = jnp.zeros(p, probs.dtype).at[order].set(probs)
        return (key, g[1:], omega), (rb, g[1:])

    @jax.jit
    def run(key: Any, gamma0: Any) -> Any:
        key, k_pg = jax.random.split(key)
        omega0 = sample_polya_gamma(k_pg, jnp.zeros(n, x.dtype), num_terms)
        _, (rb, gammas) = jax.lax.scan(sweep, (key, gamma0, omega0), None, length=num_sweeps)
        return rb, gammas

    return run


def polya_gamma_reference(
    x: np.ndarray,
    y: np.ndarray,
    prior: LogisticPrior = LogisticPrior(),
    num_chains: int = 4,
    num_sweeps: int = 5000,
    warmup: int = 500,
    num_terms: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    r"""Reference PIPs from Pólya-Gamma Gibbs with the coefficients integrated out, several chains.

    Needs JAX in float64. Chains start from independent prior draws of ``gamma`` (and
    :math:`\omega\sim\mathrm{PG}(1,0)`), with seeds ``seed * 1000 + chain``.

    Args:
        x: Predictors ``[n, p]``.
        y: Labels ``[n]`` (0/1).
        prior: The model's prior.
        num_chains: Independent chains.
        num_sweeps: Sweeps kept per chain (after ``warmup``).
        warmup: Sweeps discarded per chain.
        num_terms: Terms of the Pólya-Gamma series (:func:`sample_polya_gamma`).
        seed: Seed of the chains' keys and initial values.

    Returns:
        ``{"pips", "rhat_max" (split-R-hat over the indicator draws, max over coordinates),
        "mcse_max" / "mcse_mean" (largest / mean chain-to-chain standard error of a PIP),
        "num_chains", "num_sweeps", "warmup", "seconds"}``.
    """
    import time

    import jax
    import jax.numpy as jnp

    from models.bayesian.sparse_regression import split_rhat

    if not jax.config.jax_enable_x64:
        raise RuntimeError("polya_gamma_reference needs jax_enable_x64")
    start = time.perf_counter()
    run = _pg_gibbs(jnp.asarray(x), jnp.asarray(y), prior, num_sweeps + warmup, num_terms)
    rng = np.random.default_rng(seed)
    gamma0 = jnp.asarray(rng.random((num_chains, x.shape[1])) < prior.inclusion_prob, jnp.float64)
    keys = jnp.stack(
        [jax.random.key_data(jax.random.key(seed * 1000 + c)) for c in range(num_chains)]
    )
    rb, gammas = jax.vmap(lambda k, g: run(jax.random.wrap_key_data(k), g))(keys, gamma0)
    rb_a = np.asarray(rb)[:, warmup:]
    draws = np.asarray(gammas, np.float64)[:, warmup:]
    chain_means = rb_a.mean(1)
    mcse = chain_means.std(0, ddof=1) / math.sqrt(num_chains)
    return {
        "pips": chain_means.mean(0),
        "rhat_max": float(np.nanmax(split_rhat(draws))),
        "mcse_max": float(mcse.max()),
        "mcse_mean": float(mcse.mean()),
        "num_chains": num_chains,
        "num_sweeps": num_sweeps,
        "warmup": warmup,
        "seconds": time.perf_counter() - start,
    }


def importance_inclusion_probabilities(
    x: np.ndarray,
    y: np.ndarray,
    prior: LogisticPrior = LogisticPrior(),
    num_draws: int = 200_000,
    seed: int = 0,
) -> np.ndarray:
    r"""PIPs of a tiny problem (``p <= 4``) by prior importance sampling of every model's evidence.

    For each of the :math:`2^p` models, :math:`p(y\mid\gamma)=\mathrm E_{\alpha,\beta_\gamma\sim
    \text{prior}}[p(y\mid\alpha,\beta_\gamma)]` is estimated from ``num_draws`` prior draws
    (unbiased; only accurate when the likelihood is not much narrower than the prior, i.e. for a
    few dozen data points). An independent check of :func:`polya_gamma_reference`.
    """
    p = x.shape[1]
    if p > 4:
        raise ValueError(f"importance sampling of 2**{p} models is meant for p <= 4")
    rng = np.random.default_rng(seed)
    alpha = prior.intercept_scale * rng.standard_normal(num_draws)
    beta = prior.slab_scale * rng.standard_normal((num_draws, p))
    models = np.array(list(itertools.product([0.0, 1.0], repeat=p)))
    log_ev = []
    for g in models:
        eta = alpha[:, None] + (beta * g) @ x.T  # [draws, n]
        loglik = (y * eta - np.logaddexp(0.0, eta)).sum(1)
        top = loglik.max()
        log_ev.append(top + math.log(np.exp(loglik - top).mean()))
    k = models.sum(1)
    log_post = np.asarray(log_ev) + k * math.log(prior.inclusion_prob)
    log_post += (p - k) * math.log1p(-prior.inclusion_prob)
    w = np.exp(log_post - log_post.max())
    return (w / w.sum()) @ models


# -- programs ---------------------------------------------------------------------------------


def numpyro_model(x: Any, y: Any = None, prior: LogisticPrior = LogisticPrior()) -> None:
    """The NumPyro program (product spike and slab, logistic likelihood)."""
    import numpyro
    import numpyro.distributions as dist

    n, p = x.shape
    alpha = numpyro.sample("alpha", dist.Normal(0.0, prior.intercept_scale))
    with numpyro.plate("predictors", p):
        gamma = numpyro.sample("gamma", dist.Bernoulli(prior.inclusion_prob))
        beta = numpyro.sample("beta", dist.Normal(0.0, prior.slab_scale))
    logits = alpha + x @ (gamma * beta)
    with numpyro.plate("data", n):
        numpyro.sample("y", dist.Bernoulli(logits=logits), obs=y)


def numpyro_guide(x: Any, y: Any = None, prior: LogisticPrior = LogisticPrior()) -> None:
    r"""Hand-written guide :math:`q(\alpha)\prod_jq(\gamma_j)q(\beta_j\mid\gamma_j)`.

    :math:`q(\alpha)=\mathcal N(m_\alpha,s_\alpha^2)`; :math:`q(\gamma_j)=\mathrm{Bern}(\sigma(\phi_j))`;
    given :math:`\gamma_j=1`, :math:`\beta_j\sim\mathcal N(m_j,s_j^2)`; given :math:`\gamma_j=0`,
    :math:`\beta_j` follows its prior (which the likelihood ignores), as in
    :func:`models.bayesian.sparse_regression.numpyro_guide`. Factorised over the coordinates, so
    it cannot represent the correlation between the inclusions of correlated features.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    p = x.shape[1]
    logit_pi = math.log(prior.inclusion_prob) - math.log1p(-prior.inclusion_prob)
    a_loc = numpyro.param("alpha_loc", jnp.zeros(()))
    a_scale = numpyro.param("alpha_scale", jnp.full((), 0.1), constraint=constraints.positive)
    numpyro.sample("alpha", dist.Normal(a_loc, a_scale))
    logits = numpyro.param("gamma_logits", jnp.full(p, logit_pi))
    loc = numpyro.param("beta_loc", jnp.zeros(p))
    scale = numpyro.param("beta_scale", jnp.full(p, 0.1), constraint=constraints.positive)
    with numpyro.plate("predictors", p):
        gamma = numpyro.sample("gamma", dist.Bernoulli(logits=logits))
        on = gamma > 0
        numpyro.sample(
            "beta", dist.Normal(jnp.where(on, loc, 0.0), jnp.where(on, scale, prior.slab_scale))
        )
