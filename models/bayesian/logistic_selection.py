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

**Structured guides.** :func:`numpyro_guide` is factorised over the coordinates, so it cannot
represent the anti-correlated inclusions of near-duplicate features. :func:`mixture_guide` (an
equal-weight mixture of factorised guides, with exact PIPs) and :func:`lowrank_guide` (inclusion
logits depending on a low-rank Gaussian latent) can; each runs against its own model,
:func:`mixture_model` / :func:`lowrank_model`, which adds the auxiliary site that the ELBO needs
and leaves the posterior of the original sites unchanged.

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
    R. Ranganath, D. Tran, D. M. Blei. "Hierarchical Variational Models." ICML 2016 (the
    auxiliary bound of the structured guides).
    W. N. Street, W. H. Wolberg, O. L. Mangasarian. "Nuclear feature extraction for breast tumor
    diagnosis." IS&T/SPIE 1993 (the data).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.bayesian.sparse_regression import spike_and_slab_guide

__all__ = [
    "MIXTURE_INIT_SCALE",
    "LogisticData",
    "LogisticPrior",
    "contrast_directions",
    "importance_inclusion_probabilities",
    "load_breast_cancer_data",
    "lowrank_guide",
    "lowrank_inclusion_probabilities",
    "lowrank_model",
    "mixture_guide",
    "mixture_inclusion_probabilities",
    "mixture_model",
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


def _spike_and_slab(x: Any, y: Any, prior: LogisticPrior) -> tuple[Any, Any]:
    """The body of :func:`numpyro_model`; returns the draws ``(gamma, beta)``."""
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
    return gamma, beta


def numpyro_model(x: Any, y: Any = None, prior: LogisticPrior = LogisticPrior()) -> None:
    """The NumPyro program (product spike and slab, logistic likelihood)."""
    _spike_and_slab(x, y, prior)


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

    a_loc = numpyro.param("alpha_loc", jnp.zeros(()))
    a_scale = numpyro.param("alpha_scale", jnp.full((), 0.1), constraint=constraints.positive)
    numpyro.sample("alpha", dist.Normal(a_loc, a_scale))
    spike_and_slab_guide(x.shape[1], prior.inclusion_prob, prior.slab_scale)


# -- structured guides ------------------------------------------------------------------------
#
# Both guides below make the inclusions depend on an extra latent (a discrete component, or a
# low-rank Gaussian), which the model must also carry for the ELBO to be a bound: each ``*_model``
# is :func:`numpyro_model` followed by an auxiliary site drawn from a *reverse model*
# :math:`r(\text{aux}\mid\gamma,\beta)`. Since :math:`r` integrates to one, the posterior of the
# original sites is unchanged, and the ELBO of the augmented pair is a lower bound on
# :math:`\log p(y)` for every :math:`r`, below the bound of the guide's marginal by
# :math:`\mathrm E_q\,\mathrm{KL}(q(\text{aux}\mid\gamma,\beta)\,\|\,r)` (the auxiliary bound of
# hierarchical variational models; Ranganath, Tran & Blei 2016).


def contrast_directions(x: np.ndarray, prior: LogisticPrior, num: int) -> np.ndarray:
    r"""The ``num`` directions in which the coefficients are least determined by the design.

    Eigenvectors of the smallest eigenvalues of :math:`X^\top X/4+\tau^{-2}I` (the coefficients'
    precision at the logistic likelihood's largest curvature, :math:`1/4`), i.e. the widest
    directions of a Gaussian approximation of :math:`\beta`. Near-duplicate features
    :math:`j,k` give a direction close to :math:`(e_j-e_k)/\sqrt2`: the data cannot tell which
    of the two carries the effect, so their inclusions are anti-correlated. Used to initialise
    :func:`mixture_guide` and :func:`lowrank_guide`.

    Args:
        x: Predictors ``[n, p]``.
        prior: The model's prior (its slab scale).
        num: Number of directions.

    Returns:
        ``[p, num]``, unit-norm columns, each signed so that its largest entry is positive.
    """
    p = x.shape[1]
    prec = x.T @ x / 4 + np.eye(p) / prior.slab_scale**2
    _, vecs = np.linalg.eigh(prec)
    out = vecs[:, :num]
    return out * np.sign(out[np.abs(out).argmax(0), np.arange(num)])


MIXTURE_INIT_SCALE = 1.0
r"""Initial offset of a component's inclusion logits along its contrast direction, in units of
:math:`\sqrt p` (so that an entry of about :math:`1/\sqrt2` moves a logit by about
:math:`0.7\sqrt p`)."""


def _logit_prior(prior: LogisticPrior) -> float:
    return math.log(prior.inclusion_prob) - math.log1p(-prior.inclusion_prob)


def _mixture_params(x: Any, prior: LogisticPrior, k: int) -> tuple[Any, Any, Any]:
    """``(inclusion logits [K, p], slab locs [K, p], slab scales [K, p])`` of the mixture guide."""
    import jax.numpy as jnp
    import numpyro
    from numpyro.distributions import constraints

    p = x.shape[1]

    def init_logits(_key: Any) -> Any:
        dirs = contrast_directions(np.asarray(x, np.float64), prior, (k + 1) // 2).T
        signs = np.where(np.arange(k) % 2 == 0, 1.0, -1.0)[:, None]
        offsets = MIXTURE_INIT_SCALE * math.sqrt(p) * signs * dirs[np.arange(k) // 2]
        return jnp.asarray(_logit_prior(prior) + offsets, jnp.result_type(float))

    logits = numpyro.param("gamma_logits", init_logits)
    loc = numpyro.param("beta_loc", jnp.zeros((k, p)))
    scale = numpyro.param("beta_scale", jnp.full((k, p), 0.1), constraint=constraints.positive)
    return logits, loc, scale


def mixture_model(
    x: Any, y: Any = None, prior: LogisticPrior = LogisticPrior(), num_components: int = 4
) -> None:
    r""":func:`numpyro_model` with the auxiliary site ``"component"`` for :func:`mixture_guide`.

    After the original sites the model draws the component :math:`c` from the *guide's own*
    posterior over components, :math:`r(c\mid\gamma,\beta)=q(c\mid\gamma,\beta)\propto
    \prod_jq(\gamma_j\mid c)\,q(\beta_j\mid\gamma_j,c)` (exact: :math:`K` terms), reading the
    guide's parameters (shared by name). With this reverse model the auxiliary ELBO *equals* the
    ELBO of the guide's marginal :math:`q(\alpha)\frac1K\sum_cq(\gamma,\beta\mid c)`, with no
    auxiliary gap: :math:`\log q(c,\gamma,\beta)-\log r(c\mid\gamma,\beta)=\log q(\gamma,\beta)`.

    Args:
        x: Predictors ``[n, p]``.
        y: Labels ``[n]`` (0/1) or ``None``.
        prior: The model's prior.
        num_components: ``K``, as in the guide.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    gamma, beta = _spike_and_slab(x, y, prior)
    logits, loc, scale = _mixture_params(x, prior, num_components)
    on = gamma > 0
    log_q = dist.Bernoulli(logits=logits).log_prob(gamma)  # [K, p]
    excluded = dist.Normal(0.0, prior.slab_scale).log_prob(beta)
    log_q = log_q + jnp.where(on, dist.Normal(loc, scale).log_prob(beta), excluded)
    numpyro.sample("component", dist.Categorical(logits=log_q.sum(-1)))


def mixture_guide(
    x: Any, y: Any = None, prior: LogisticPrior = LogisticPrior(), num_components: int = 4
) -> None:
    r"""An equal-weight mixture of :math:`K` factorised spike-and-slab guides; exact PIPs.

    .. math::
        c\sim\mathrm{Uniform}\{1..K\},\qquad
        \gamma_j\mid c\sim\mathrm{Bern}(\sigma(A_{cj})),\qquad
        \beta_j\mid\gamma_j=1,c\sim\mathcal N(M_{cj},S_{cj}^2),

    given :math:`\gamma_j=0` :math:`\beta_j` follows its prior, and
    :math:`q(\alpha)=\mathcal N(m_\alpha,s_\alpha^2)`. Marginally the inclusions are a mixture of
    :math:`K` product distributions, which can put its mass on "exactly one of two
    near-duplicates" (one component includes the first, another the second); a factorised
    :math:`q(\gamma)` cannot. Run it against :func:`mixture_model` (same ``num_components``),
    whose reverse model makes the bound that of the marginal guide.

    The weights are fixed: with learned weights the fits measured in development put all the
    weight on one component within the first thousand steps (a factorised guide again). The
    components start apart along the design's contrast directions (:func:`contrast_directions`):
    component ``c`` at :math:`\mathrm{logit}\,\pi\pm s\sqrt p\,v_{\lfloor c/2\rfloor}`
    (:data:`MIXTURE_INIT_SCALE` ``= s``, sign alternating with ``c``), so each pair of components
    starts favouring either side of one near-duplicate pair.

    :class:`~ppl_arms.numpyro.TraceARMS_ELBO` draws ``component`` with its estimator's coupling
    (its logits, fixed, are shared by the particles); the inclusion logits differ across
    particles (they depend on each particle's component), so ``gamma`` is drawn i.i.d. with LOORF
    whatever the ``estimator``. The PIPs are exact: :func:`mixture_inclusion_probabilities`.

    Args:
        x: Predictors ``[n, p]``.
        y: Labels ``[n]`` (0/1) or ``None``.
        prior: The model's prior.
        num_components: ``K``.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    a_loc = numpyro.param("alpha_loc", jnp.zeros(()))
    a_scale = numpyro.param("alpha_scale", jnp.full((), 0.1), constraint=constraints.positive)
    numpyro.sample("alpha", dist.Normal(a_loc, a_scale))
    logits, loc, scale = _mixture_params(x, prior, num_components)
    c = numpyro.sample("component", dist.Categorical(logits=jnp.zeros(num_components)))
    with numpyro.plate("predictors", x.shape[1]):
        gamma = numpyro.sample("gamma", dist.Bernoulli(logits=logits[c]))
        on = gamma > 0
        numpyro.sample(
            "beta",
            dist.Normal(jnp.where(on, loc[c], 0.0), jnp.where(on, scale[c], prior.slab_scale)),
        )


def mixture_inclusion_probabilities(params: dict[str, Any]) -> Any:
    r"""The exact PIPs of a fitted :func:`mixture_guide`: :math:`\frac1K\sum_c\sigma(A_{cj})`.

    Args:
        params: The guide's parameters (``SVI.get_params``).

    Returns:
        The ``[p]`` inclusion probabilities (JAX array).
    """
    import jax

    return jax.nn.sigmoid(params["gamma_logits"]).mean(0)


def lowrank_model(
    x: Any, y: Any = None, prior: LogisticPrior = LogisticPrior(), rank: int = 2
) -> None:
    r""":func:`numpyro_model` with the auxiliary site ``"u"`` for :func:`lowrank_guide`.

    The reverse model is learned: :math:`r(u\mid\gamma)=\mathcal N(C\gamma+d,\mathrm{diag}(e^2))`
    (model parameters ``"aux_weight"`` ``[r, p]``, ``"aux_loc"``, ``"aux_scale"``); its gap
    :math:`\mathrm E_q\,\mathrm{KL}(q(u\mid\gamma,\beta)\,\|\,r(u\mid\gamma))` is not zero when
    :math:`q(u\mid\gamma)` is far from Gaussian (a sharp switch between two duplicates makes it a
    truncated one). With :math:`r` fixed to :math:`\mathcal N(0,I)` the gap would be the mutual
    information :math:`I_q(u;\gamma)`: exactly the price of the correlation the guide is for.

    Args:
        x: Predictors ``[n, p]``.
        y: Labels ``[n]`` (0/1) or ``None``.
        prior: The model's prior.
        rank: Dimension ``r`` of the auxiliary latent (as in the guide).
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    gamma, _ = _spike_and_slab(x, y, prior)
    weight = numpyro.param("aux_weight", jnp.zeros((rank, x.shape[1])))
    loc = numpyro.param("aux_loc", jnp.zeros(rank))
    scale = numpyro.param("aux_scale", jnp.ones(rank), constraint=constraints.positive)
    numpyro.sample("u", dist.Normal(loc + weight @ gamma, scale).to_event(1))


def lowrank_guide(
    x: Any, y: Any = None, prior: LogisticPrior = LogisticPrior(), rank: int = 2
) -> None:
    r"""Guide with inclusion logits :math:`a+Bu` driven by a low-rank Gaussian latent :math:`u`.

    .. math::
        u\sim\mathcal N(m_u,\mathrm{diag}(s_u^2))\in\mathbb R^r,\qquad
        \gamma_j\mid u\sim\mathrm{Bern}\big(\sigma(a_j+b_j^\top u)\big),

    :math:`q(\alpha)=\mathcal N(m_\alpha,s_\alpha^2)`, and :math:`\beta_j\mid\gamma_j` as in
    :func:`numpyro_guide`. Marginally over :math:`u` the inclusions form a continuous mixture of
    factorised Bernoullis, which can represent "exactly one of two near-duplicates"
    (:math:`b_1=-b_2` large: :math:`\gamma_1=1` when :math:`u>0`, :math:`\gamma_2=1` when
    :math:`u<0`). ``u`` is reparameterised; run it against :func:`lowrank_model`. The loadings
    :math:`B` (``"incl_loadings"``, ``[p, r]``) start at :math:`\sqrt p` times the ``r`` contrast
    directions of the design (:func:`contrast_directions`). The inclusion logits differ across
    particles (they depend on each particle's :math:`u`), so
    :class:`~ppl_arms.numpyro.TraceARMS_ELBO` draws ``gamma`` i.i.d. with LOORF whatever its
    ``estimator``. PIPs: :func:`lowrank_inclusion_probabilities` (Monte Carlo over :math:`u`).

    Args:
        x: Predictors ``[n, p]``.
        y: Labels ``[n]`` (0/1) or ``None``.
        prior: The model's prior.
        rank: Dimension ``r`` of :math:`u`.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    p = x.shape[1]

    def init_loadings(_key: Any) -> Any:
        dirs = contrast_directions(np.asarray(x, np.float64), prior, rank)
        return jnp.asarray(math.sqrt(p) * dirs, jnp.result_type(float))

    a_loc = numpyro.param("alpha_loc", jnp.zeros(()))
    a_scale = numpyro.param("alpha_scale", jnp.full((), 0.1), constraint=constraints.positive)
    numpyro.sample("alpha", dist.Normal(a_loc, a_scale))
    u_loc = numpyro.param("u_loc", jnp.zeros(rank))
    u_scale = numpyro.param("u_scale", jnp.ones(rank), constraint=constraints.positive)
    u = numpyro.sample("u", dist.Normal(u_loc, u_scale).to_event(1))
    offset = numpyro.param("gamma_logits", jnp.full(p, _logit_prior(prior)))
    loadings = numpyro.param("incl_loadings", init_loadings)
    loc = numpyro.param("beta_loc", jnp.zeros(p))
    scale = numpyro.param("beta_scale", jnp.full(p, 0.1), constraint=constraints.positive)
    with numpyro.plate("predictors", p):
        gamma = numpyro.sample("gamma", dist.Bernoulli(logits=offset + loadings @ u))
        on = gamma > 0
        numpyro.sample(
            "beta", dist.Normal(jnp.where(on, loc, 0.0), jnp.where(on, scale, prior.slab_scale))
        )


def lowrank_inclusion_probabilities(params: dict[str, Any], num_draws: int, key: Any) -> Any:
    r"""The PIPs of a fitted :func:`lowrank_guide`, :math:`\mathrm E_{q(u)}\sigma(a+Bu)`.

    A Monte Carlo average over ``num_draws`` draws of :math:`u` from the fitted :math:`q(u)`,
    Rao-Blackwellised over :math:`\gamma\mid u` (standard error at most
    :math:`0.5/\sqrt{\text{num\_draws}}` per coordinate).

    Args:
        params: The guide's parameters (``SVI.get_params``).
        num_draws: Draws of :math:`u`.
        key: A JAX PRNG key.

    Returns:
        The ``[p]`` inclusion probabilities (JAX array).
    """
    import jax

    loc, scale = params["u_loc"], params["u_scale"]
    u = loc + scale * jax.random.normal(key, (num_draws, loc.shape[-1]), loc.dtype)
    return jax.nn.sigmoid(params["gamma_logits"] + u @ params["incl_loadings"].T).mean(0)
