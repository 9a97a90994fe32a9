r"""Spike-and-slab linear regression with a known noise scale, sized for the benchmarks (p up to 2,000).

**Model** (``n`` data points, ``p`` predictors :math:`X`, known noise scale :math:`\sigma`)

.. math::
    \gamma_j\sim\mathrm{Bern}(\pi),\qquad \beta_j\sim\mathcal N(0,\sigma^2\tau^2),\qquad
    y\mid\gamma,\beta\sim\mathcal N\big(X(\gamma\odot\beta),\ \sigma^2 I\big)\qquad(j=1..p).

This is the *product* (Kuo–Mallick) form of the spike and slab: every program (MCMC, VI) samples
both ``gamma`` and ``beta``, and one likelihood evaluation costs one ``n x p`` matrix-vector
product. An excluded coefficient only carries its prior, so the marginal of :math:`\gamma` is that
of the collapsed model :math:`y\mid\gamma\sim\mathcal N(0,\sigma^2(I+\tau^2X_\gamma X_\gamma^\top))`,
and the reference answers below never run a method under test:

* **Orthogonal design** (:math:`X^\top X=nI`): the collapsed likelihood factorises over the
  coordinates, so the posterior inclusion probabilities (PIPs) are exact in closed form at any
  ``p`` (:func:`orthogonal_inclusion_probabilities`):

  .. math::
      \mathrm{logit}\,P(\gamma_j=1\mid y)=\mathrm{logit}\,\pi-\tfrac12\log(1+n\tau^2)
      +\frac{\tau^2\,(x_j^\top y)^2}{2\sigma^2(1+n\tau^2)}.

* **Any design, small ``p``**: enumeration of all :math:`2^p` models of the collapsed likelihood,
  :math:`\log p(y\mid\gamma)=-\tfrac12\log\det(\tau^2A_\gamma)+c_\gamma^\top A_\gamma^{-1}
  c_\gamma/(2\sigma^2)+\text{const}` with :math:`A_\gamma=X_\gamma^\top X_\gamma+\tau^{-2}I` and
  :math:`c_\gamma=X_\gamma^\top y` (:func:`enumerated_inclusion_probabilities`, vectorised,
  ``p <= 22``).
* **Any design, larger ``p``**: a collapsed Gibbs sampler on :math:`\gamma` alone (George &
  McCulloch's sampler with :math:`\beta` integrated out; block updates of
  :math:`A_S^{-1}` over the included set :math:`S` only, float64 NumPy), several chains,
  Rao-Blackwellised PIPs and R-hat
  (:func:`collapsed_gibbs_reference`). No benchmarked method integrates :math:`\beta` out.

**Discrete sites.** ``"gamma"``: Bernoulli, shape ``[p]``, plate ``"predictors"``.
**Continuous sites.** ``"beta"`` (real, plate ``"predictors"``). **Observed.** ``"y"`` (plate
``"data"``).

References:
    L. Kuo, B. Mallick. "Variable selection for regression models." Sankhya B 60(1), 1998.
    E. I. George, R. E. McCulloch. "Variable Selection via Gibbs Sampling." JASA 1993.
    M. K. Titsias, M. Lázaro-Gredilla. "Spike and slab variational inference for multi-task and
    multiple kernel learning." NeurIPS 2011 (the conditional guide :func:`numpyro_guide`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SparsePrior",
    "SparseRegressionData",
    "collapsed_gibbs_reference",
    "enumerated_inclusion_probabilities",
    "make_data",
    "numpyro_guide",
    "numpyro_model",
    "orthogonal_inclusion_probabilities",
    "spike_and_slab_guide",
    "split_rhat",
]


@dataclass(frozen=True)
class SparsePrior:
    r"""Prior inclusion probability :math:`\pi`, slab scale :math:`\tau` (in noise units), noise scale :math:`\sigma`."""

    inclusion_prob: float = 0.1
    slab_scale: float = 1.0
    noise_scale: float = 1.0


@dataclass(frozen=True)
class SparseRegressionData:
    """Predictors ``x`` ``[n, p]`` (columns with ``x_j' x_j = n``), response ``y`` and the truth."""

    x: np.ndarray
    y: np.ndarray
    true_coef: np.ndarray
    design: str


def make_data(
    num_data: int,
    num_predictors: int,
    design: str = "orthogonal",
    correlation: float = 0.5,
    signal_fraction: float = 0.1,
    z_range: tuple[float, float] = (1.0, 5.0),
    noise_scale: float = 1.0,
    seed: int = 0,
) -> SparseRegressionData:
    r"""A sparse truth with signals spread around the detection threshold.

    ``round(signal_fraction * p)`` coefficients are non-zero, with random signs and
    :math:`|\beta_j|\sqrt n/\sigma` uniform on ``z_range`` (so the PIPs spread over ``(0, 1)``).

    Args:
        num_data: ``n``.
        num_predictors: ``p`` (``p <= n`` for the orthogonal design).
        design: ``"orthogonal"`` (:math:`X=\sqrt n\,Q`, ``Q`` with orthonormal columns) or
            ``"correlated"`` (Gaussian rows with correlation ``correlation**|i-j|``, columns scaled
            to ``x_j' x_j = n``).
        correlation: The AR(1) correlation of the correlated design.
        signal_fraction: Fraction of non-zero coefficients.
        z_range: Range of the signals' z-scores.
        noise_scale: :math:`\sigma`.
        seed: Seed of the NumPy generator.
    """
    rng = np.random.default_rng(seed)
    n, p = num_data, num_predictors
    if design == "orthogonal":
        if p > n:
            raise ValueError(f"an orthogonal design needs p <= n, got p={p}, n={n}")
        q, _ = np.linalg.qr(rng.standard_normal((n, p)))
        x = math.sqrt(n) * q
    elif design == "correlated":
        # AR(1) columns without forming the p x p covariance
        x = np.empty((n, p))
        x[:, 0] = rng.standard_normal(n)
        innov = math.sqrt(1 - correlation**2)
        for j in range(1, p):
            x[:, j] = correlation * x[:, j - 1] + innov * rng.standard_normal(n)
        x = x - x.mean(0)
        x = x * math.sqrt(n) / np.linalg.norm(x, axis=0)
    else:
        raise ValueError(f"unknown design {design!r}; use 'orthogonal' or 'correlated'")
    k = max(1, round(signal_fraction * p))
    beta = np.zeros(p)
    support = rng.choice(p, size=k, replace=False)
    z = rng.uniform(*z_range, size=k) * rng.choice([-1.0, 1.0], size=k)
    beta[support] = z * noise_scale / math.sqrt(n)
    y = x @ beta + noise_scale * rng.standard_normal(n)
    return SparseRegressionData(x, y, beta, design)


# -- reference answers ------------------------------------------------------------------------


def orthogonal_inclusion_probabilities(
    x: np.ndarray, y: np.ndarray, prior: SparsePrior = SparsePrior()
) -> np.ndarray:
    """Exact PIPs for an orthogonal design ``x' x = n I`` (checked; raises otherwise)."""
    n, p = x.shape
    gram_diag = np.einsum("ij,ij->j", x, x)
    if not np.allclose(gram_diag, n) or (
        p <= 500 and not np.allclose(x.T @ x, n * np.eye(p), atol=1e-6 * n)
    ):
        raise ValueError("the closed form needs an orthogonal design with x' x = n I")
    tau2, s2 = prior.slab_scale**2, prior.noise_scale**2
    c = x.T @ y
    log_bf = -0.5 * math.log1p(n * tau2) + tau2 * c**2 / (2 * s2 * (1 + n * tau2))
    logit_pi = math.log(prior.inclusion_prob) - math.log1p(-prior.inclusion_prob)
    return 1.0 / (1.0 + np.exp(-(logit_pi + log_bf)))


def _log_joint_chunk(
    gammas: np.ndarray, gram: np.ndarray, xty: np.ndarray, prior: SparsePrior
) -> np.ndarray:
    """``log p(y | gamma) + log p(gamma)`` up to a constant, for models ``gammas [M, p]``."""
    p = gram.shape[0]
    tau2, s2 = prior.slab_scale**2, prior.noise_scale**2
    g = gammas.astype(np.float64)
    a = g[:, :, None] * gram[None] * g[:, None, :] + np.eye(p) / tau2  # embedded A_gamma
    c = g * xty
    chol = np.linalg.cholesky(a)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    sol = np.linalg.solve(a, c[..., None])[..., 0]
    size = g.sum(-1)
    # log det(tau^2 A_S) = logdet(embedded A) + p log tau^2 (constant dropped)
    log_ml = -0.5 * logdet + (c * sol).sum(-1) / (2 * s2)
    logit_pi = math.log(prior.inclusion_prob) - math.log1p(-prior.inclusion_prob)
    return log_ml + size * logit_pi


def enumerated_inclusion_probabilities(
    x: np.ndarray, y: np.ndarray, prior: SparsePrior = SparsePrior(), chunk: int = 1 << 13
) -> np.ndarray:
    """Exact PIPs of any design by enumerating all ``2**p`` models (``p <= 22``), in chunks."""
    p = x.shape[1]
    if p > 22:
        raise ValueError(f"enumerating 2**{p} models is too many; use p <= 22")
    gram, xty = x.T @ x, x.T @ y
    head = min(p, chunk.bit_length() - 1)  # the last `head` bits vary inside a chunk
    inner = np.array(list(itertools.product([0, 1], repeat=head)), dtype=np.int8)
    outer = list(itertools.product([0, 1], repeat=p - head))
    logs, sums = [], []
    for prefix in outer:
        gammas = np.concatenate(
            [np.broadcast_to(np.array(prefix, dtype=np.int8), (len(inner), p - head)), inner], 1
        )
        lj = _log_joint_chunk(gammas, gram, xty, prior)
        top = lj.max()
        w = np.exp(lj - top)
        logs.append(top + math.log(w.sum()))
        sums.append((w @ gammas) / w.sum())
    logs_a = np.asarray(logs)
    weights = np.exp(logs_a - logs_a.max())
    weights /= weights.sum()
    return weights @ np.asarray(sums)


def split_rhat(draws: np.ndarray) -> np.ndarray:
    """Split-R-hat (Gelman et al., BDA3) of ``draws [chains, iterations, ...]`` per coordinate."""
    t = draws.shape[1]
    half = t // 2
    x = np.concatenate([draws[:, :half], draws[:, half : 2 * half]], 0)
    m = x.mean(1)
    w = x.var(1, ddof=1).mean(0)
    b = half * m.var(0, ddof=1)
    var = (half - 1) / half * w + b / half
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.sqrt(var / w)
    return np.where(w > 0, r, 1.0)


def _gibbs_sweeps(
    gram: np.ndarray,
    xty: np.ndarray,
    prior: SparsePrior,
    gamma: np.ndarray,
    num_sweeps: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    r"""One chain: ``(rb_pips [sweeps, p], gammas [sweeps, p])`` from ``gamma`` (collapsed Gibbs).

    With :math:`\beta` integrated out, the chain carries the included set :math:`S` and
    :math:`A_S^{-1}`, :math:`A_S=X_S^\top X_S+I/\tau^2`. For a coordinate :math:`j\notin S`, with
    :math:`v=A_S^{-1}X_S^\top x_j`, the Schur complement :math:`s=x_j^\top x_j+1/\tau^2-x_j^\top
    X_Sv` and :math:`r=x_j^\top y-v^\top X_S^\top y` (``O(|S|^2)``); for :math:`j\in S` at
    position :math:`k`, :math:`s=1/(A_S^{-1})_{kk}` and :math:`r=(A_S^{-1}X_S^\top y)_k/(A_S^{-1})_{kk}`
    (the same quantities with :math:`j` left out, ``O(|S|)``). The conditional log-odds are

    .. math::
        \operatorname{logit}\pi-\tfrac12\log(\tau^2 s)+\frac{r^2}{2\sigma^2 s},

    and a flip grows or shrinks :math:`A_S^{-1}` by the block-inverse formulas (``O(|S|^2)``).
    :math:`A_S^{-1}` is recomputed from scratch at each sweep, so rounding does not accumulate.
    """
    p = gram.shape[0]
    tau2, s2 = prior.slab_scale**2, prior.noise_scale**2
    logit_pi = math.log(prior.inclusion_prob) - math.log1p(-prior.inclusion_prob)
    gamma = gamma.copy()
    rbs, draws = np.empty((num_sweeps, p)), np.empty((num_sweeps, p), bool)
    for t in range(num_sweeps):
        inside = np.flatnonzero(gamma)  # S, in the order of A_S's rows
        ainv = np.linalg.inv(gram[np.ix_(inside, inside)] + np.eye(inside.size) / tau2)
        xs = xty[inside]
        u = rng.random(p)
        for j in rng.permutation(p):
            if gamma[j]:
                k = int(np.flatnonzero(inside == j)[0])
                schur = 1 / ainv[k, k]
                r = (ainv[k] @ xs) * schur
            else:
                col = gram[j, inside]
                v = ainv @ col
                schur = gram[j, j] + 1 / tau2 - col @ v
                r = xty[j] - v @ xs
            logit = logit_pi - 0.5 * math.log(tau2 * schur) + r * r / (2 * s2 * schur)
            prob = 0.5 * (1 + math.tanh(0.5 * logit))  # the logistic function, no overflow
            rbs[t, j] = prob
            new = u[j] < prob
            if new == gamma[j]:
                continue
            if new:  # grow: [[A^{-1} + v v'/s, -v/s], [-v'/s, 1/s]]
                ainv = np.block(
                    [
                        [ainv + np.outer(v, v) / schur, -v[:, None] / schur],
                        [-v[None] / schur, 1 / schur],
                    ]
                )
                inside = np.append(inside, j)
            else:  # shrink: A^{-1}_{-k,-k} - A^{-1}_{-k,k} A^{-1}_{k,-k} / A^{-1}_{kk}
                col = np.delete(ainv[k], k)
                ainv = np.delete(np.delete(ainv, k, 0), k, 1) - np.outer(col, col) / ainv[k, k]
                inside = np.delete(inside, k)
            xs = xty[inside]
            gamma[j] = new
        draws[t] = gamma
    return rbs, draws


def collapsed_gibbs_reference(
    x: np.ndarray,
    y: np.ndarray,
    prior: SparsePrior = SparsePrior(),
    num_chains: int = 4,
    num_sweeps: int = 2000,
    warmup: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    r"""Reference PIPs from collapsed Gibbs on ``gamma`` (``beta`` integrated out), several chains.

    Each sweep visits every coordinate once in random order and draws :math:`\gamma_j` from its
    exact conditional (``O(|S|^2)`` per coordinate, :math:`S` the included set; see
    :func:`_gibbs_sweeps`), in float64 NumPy. PIPs are Rao-Blackwellised (the mean of the
    conditional probabilities). Chains start from independent prior draws.

    Returns:
        ``{"pips", "rhat_max" (split-R-hat over the indicator draws, max over coordinates),
        "mcse_max" (largest chain-to-chain standard error of a PIP), "num_chains",
        "num_sweeps", "warmup", "seconds"}``.
    """
    import time

    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    gram, xty = x.T @ x, x.T @ y
    rng = np.random.default_rng(seed)
    rbs, draws = [], []
    # small matrices: a threaded BLAS only adds overhead (on two busy cores one 150 x 150 inverse
    # took 230 ms, and a sweep at p = 2,000 326 ms against 28 ms single-threaded)
    with threadpool_limits(limits=1):
        for _ in range(num_chains):
            gamma0 = rng.random(x.shape[1]) < prior.inclusion_prob
            rb, gammas = _gibbs_sweeps(gram, xty, prior, gamma0, num_sweeps + warmup, rng)
            rbs.append(rb[warmup:])
            draws.append(gammas[warmup:].astype(np.float64))
    rb_a, draws_a = np.stack(rbs), np.stack(draws)
    chain_means = rb_a.mean(1)
    rhat = split_rhat(draws_a)
    return {
        "pips": chain_means.mean(0),
        "rhat_max": float(np.nanmax(rhat)),
        "mcse_max": float((chain_means.std(0, ddof=1) / math.sqrt(num_chains)).max()),
        "num_chains": num_chains,
        "num_sweeps": num_sweeps,
        "warmup": warmup,
        "seconds": time.perf_counter() - start,
    }


# -- programs ---------------------------------------------------------------------------------


def numpyro_model(x: Any, y: Any = None, prior: SparsePrior = SparsePrior()) -> None:
    """The NumPyro program (product spike and slab, known noise scale)."""
    import numpyro
    import numpyro.distributions as dist

    n, p = x.shape
    with numpyro.plate("predictors", p):
        gamma = numpyro.sample("gamma", dist.Bernoulli(prior.inclusion_prob))
        beta = numpyro.sample("beta", dist.Normal(0.0, prior.slab_scale * prior.noise_scale))
    mean = x @ (gamma * beta)
    with numpyro.plate("data", n):
        numpyro.sample("y", dist.Normal(mean, prior.noise_scale), obs=y)


def numpyro_guide(x: Any, y: Any = None, prior: SparsePrior = SparsePrior()) -> None:
    r"""Hand-written spike-and-slab guide: :math:`q(\gamma_j)q(\beta_j\mid\gamma_j)`.

    :math:`q(\gamma_j)=\mathrm{Bern}(\sigma(\phi_j))`; given :math:`\gamma_j=1`,
    :math:`\beta_j\sim\mathcal N(m_j,s_j^2)`; given :math:`\gamma_j=0`, :math:`\beta_j` follows its
    prior (which the likelihood ignores), so the family contains the exact posterior whenever the
    posterior factorises over the coordinates (orthogonal designs).
    """
    spike_and_slab_guide(x.shape[1], prior.inclusion_prob, prior.slab_scale * prior.noise_scale)


def spike_and_slab_guide(p: int, inclusion_prob: float, slab_scale: float) -> None:
    r"""The guide's ``gamma``/``beta`` sites: :math:`q(\gamma_j)q(\beta_j\mid\gamma_j)`, factorised.

    Params ``gamma_logits`` (initialised at the prior's logit), ``beta_loc`` and ``beta_scale``;
    given :math:`\gamma_j=0`, :math:`\beta_j` follows its prior :math:`\mathcal N(0,
    \text{slab\_scale}^2)`. Shared by the spike-and-slab models' hand-written guides.

    Args:
        p: The number of predictors (the ``predictors`` plate).
        inclusion_prob: The prior inclusion probability.
        slab_scale: The prior slab scale of ``beta``.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    logit_pi = math.log(inclusion_prob) - math.log1p(-inclusion_prob)
    logits = numpyro.param("gamma_logits", jnp.full(p, logit_pi))
    loc = numpyro.param("beta_loc", jnp.zeros(p))
    scale = numpyro.param("beta_scale", jnp.full(p, 0.1), constraint=constraints.positive)
    with numpyro.plate("predictors", p):
        gamma = numpyro.sample("gamma", dist.Bernoulli(logits=logits))
        on = gamma > 0
        numpyro.sample(
            "beta", dist.Normal(jnp.where(on, loc, 0.0), jnp.where(on, scale, slab_scale))
        )
