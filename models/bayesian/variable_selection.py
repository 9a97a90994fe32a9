r"""Bayesian variable selection: spike-and-slab linear regression with Bernoulli inclusion indicators.

**Model** (``n`` data points, ``k`` standardised predictors :math:`X`, centred response :math:`y`)

.. math::
    \sigma^2\sim\mathrm{InvGamma}(a,b),\qquad \gamma_j\sim\mathrm{Bern}(\pi)\ (j=1..k),\qquad
    \beta_j\mid\gamma_j,\sigma^2\sim\begin{cases}\mathcal N(0,\sigma^2\tau^2)&\gamma_j=1\\
    \delta_0&\gamma_j=0\end{cases},\qquad y\mid\beta,\sigma^2\sim\mathcal N(X\beta,\sigma^2 I).

The slab coefficients are integrated out in closed form (normal-inverse-gamma conjugacy), so the
programs sample only :math:`\sigma^2` and :math:`\gamma`, and observe

.. math::
    y\mid\gamma,\sigma^2\sim\mathcal N\big(0,\ \sigma^2(I+\tau^2X_\gamma X_\gamma^\top)\big),

evaluated with ``k x k`` algebra: with :math:`D=\mathrm{diag}(\gamma)`,
:math:`A=DX^\top XD+\tau^{-2}I` and :math:`c=DX^\top y`,
:math:`\log\det(I+\tau^2X_\gamma X_\gamma^\top)=\log\det A+k\log\tau^2` and
:math:`y^\top(I+\tau^2X_\gamma X_\gamma^\top)^{-1}y=y^\top y-c^\top A^{-1}c`. Integrating
:math:`\sigma^2` as well gives the exact marginal likelihood of every model :math:`\gamma`,

.. math::
    \log p(y\mid\gamma)=\log\frac{\Gamma(a+n/2)\,b^a}{\Gamma(a)\,(2\pi)^{n/2}}
    -\tfrac12(\log\det A+k\log\tau^2)-(a+\tfrac n2)\log\big(b+\tfrac12(y^\top y-c^\top A^{-1}c)\big),

so with ``k = 10`` the exact posterior inclusion probabilities
:math:`P(\gamma_j=1\mid y)` follow by enumerating the :math:`2^{10}` models
(:func:`exact_inclusion_probabilities`). The fitted programs and the enumeration describe exactly
the same joint distribution.

**Discrete sites.** ``"gamma"``: Bernoulli, shape ``[k]``, in the plate ``"predictors"``.
**Continuous sites.** ``"sigma2"`` (positive). **Observed.** ``"y"`` (one ``n``-vector event).

**Data.** :func:`load_diabetes_data` (scikit-learn's diabetes data: 442 patients, 10 baseline
variables, response one year later; columns standardised, response standardised) and
:func:`make_synthetic_data` (weakly correlated Gaussian predictors, known coefficients).

References:
    T. J. Mitchell, J. J. Beauchamp. "Bayesian Variable Selection in Linear Regression." JASA 1988.
    E. I. George, R. E. McCulloch. "Variable Selection via Gibbs Sampling." JASA 1993.
    B. Efron, T. Hastie, I. Johnstone, R. Tibshirani. "Least Angle Regression." Ann. Statist. 2004
    (the diabetes data).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "FIT_OPTIONS",
    "RegressionData",
    "SpikeSlabPrior",
    "exact_inclusion_probabilities",
    "exact_model_log_posterior",
    "load_diabetes_data",
    "make_synthetic_data",
    "numpyro_model",
    "pyro_model",
]


@dataclass(frozen=True)
class SpikeSlabPrior:
    r"""Hyperparameters of the spike-and-slab prior.

    Attributes:
        inclusion_prob: Prior probability :math:`\pi` that a predictor is in the model.
        slab_scale: :math:`\tau`: slab standard deviation in units of the noise scale.
        noise_shape: :math:`a` of the inverse-gamma prior on :math:`\sigma^2`.
        noise_rate: :math:`b` of the inverse-gamma prior on :math:`\sigma^2`.
    """

    inclusion_prob: float = 0.5
    slab_scale: float = 1.0
    noise_shape: float = 2.0
    noise_rate: float = 1.0


@dataclass(frozen=True)
class RegressionData:
    """A regression problem: standardised predictors and a centred response.

    Attributes:
        x: Predictors ``[n, k]``, each column with mean 0 and variance 1.
        y: Response ``[n]`` with mean 0.
        feature_names: The ``k`` predictor names.
        true_coef: The coefficients that generated ``y`` (synthetic data), or ``None``.
    """

    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    true_coef: np.ndarray | None = None


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0)
    return x / x.std(0)


def load_diabetes_data() -> RegressionData:
    """scikit-learn's diabetes data (shipped with scikit-learn, no download), standardised."""
    from sklearn.datasets import load_diabetes

    raw = load_diabetes()
    y = np.asarray(raw.target, dtype=np.float64)
    return RegressionData(
        _standardise(np.asarray(raw.data, dtype=np.float64)),
        (y - y.mean()) / y.std(),
        tuple(raw.feature_names),
    )


def make_synthetic_data(
    num_data: int = 200,
    coef: tuple[float, ...] = (1.0, -0.8, 0.6, 0.0, 0.0, 0.2, 0.0, 0.0, 0.12, 0.0),
    correlation: float = 0.2,
    noise: float = 1.0,
    seed: int = 0,
) -> RegressionData:
    """Gaussian predictors with correlation ``correlation**|i-j|`` and a known sparse truth.

    The predictors are standardised after drawing (so the coefficients refer to unit-variance
    columns up to sampling error) and the response is centred.
    """
    rng = np.random.default_rng(seed)
    k = len(coef)
    idx = np.arange(k)
    cov = correlation ** np.abs(idx[:, None] - idx[None, :])
    x = _standardise(rng.multivariate_normal(np.zeros(k), cov, size=num_data))
    beta = np.asarray(coef, dtype=np.float64)
    y = x @ beta + noise * rng.standard_normal(num_data)
    return RegressionData(x, y - y.mean(), tuple(f"x{j}" for j in range(k)), beta)


FIT_OPTIONS = {"num_steps": 10000, "step_size": 0.05, "decay": 0.9995, "num_particles": 4}
"""Settings of :func:`models.bayesian.fit_numpyro` / ``fit_pyro`` used by the tests and the tutorial
(with a faster decay the inclusion probabilities of the null predictors stop short of the optimum:
0.15 instead of 0.08 after 4000 steps at decay 0.999)."""


# -- exact posterior by enumeration ------------------------------------------------------------


def _statistics(
    gamma: np.ndarray, x: np.ndarray, y: np.ndarray, prior: SpikeSlabPrior
) -> tuple[np.ndarray, np.ndarray]:
    """``log det A`` and ``y'y - c'A^{-1}c`` for models ``gamma`` ``[M, k]`` (NumPy, float64)."""
    k = x.shape[1]
    xtx, xty = x.T @ x, x.T @ y
    g = gamma.astype(np.float64)
    a = g[:, :, None] * xtx[None] * g[:, None, :] + np.eye(k) / prior.slab_scale**2
    c = g * xty
    chol = np.linalg.cholesky(a)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    sol = np.linalg.solve(a, c[..., None])[..., 0]
    return logdet, y @ y - (c * sol).sum(-1)


def exact_model_log_posterior(
    x: np.ndarray, y: np.ndarray, prior: SpikeSlabPrior = SpikeSlabPrior()
) -> tuple[np.ndarray, np.ndarray]:
    """Every model ``gamma`` and its normalised log posterior probability (enumeration).

    Args:
        x: Predictors ``[n, k]`` (``2**k`` models are enumerated; ``k <= 16``).
        y: Response ``[n]``.
        prior: The prior.

    Returns:
        ``(gammas [2**k, k], log_posterior [2**k])``.
    """
    n, k = x.shape
    if k > 16:
        raise ValueError(f"enumerating 2**{k} models is too many; use k <= 16 predictors")
    gammas = np.array(list(itertools.product([0, 1], repeat=k)), dtype=np.int64)
    logdet, quad = _statistics(gammas, x, y, prior)
    a, b = prior.noise_shape, prior.noise_rate
    log_ml = (
        math.lgamma(a + n / 2)
        - math.lgamma(a)
        + a * math.log(b)
        - n / 2 * math.log(2 * math.pi)
        - 0.5 * (logdet + k * math.log(prior.slab_scale**2))
        - (a + n / 2) * np.log(b + 0.5 * quad)
    )
    size = gammas.sum(-1)
    log_prior = size * math.log(prior.inclusion_prob) + (k - size) * math.log1p(
        -prior.inclusion_prob
    )
    log_joint = log_ml + log_prior
    top = log_joint.max()
    return gammas, log_joint - (top + np.log(np.exp(log_joint - top).sum()))


def exact_inclusion_probabilities(
    x: np.ndarray, y: np.ndarray, prior: SpikeSlabPrior = SpikeSlabPrior()
) -> np.ndarray:
    r"""Exact :math:`P(\gamma_j=1\mid y)` for every predictor, by enumerating all models."""
    gammas, log_post = exact_model_log_posterior(x, y, prior)
    return np.exp(log_post) @ gammas


# -- the likelihood as a distribution, per backend ----------------------------------------------


@functools.cache
def _numpyro_likelihood() -> type:
    import jax.numpy as jnp
    from jax import lax, random
    from numpyro.distributions import Distribution, constraints

    class CollapsedRegression(Distribution):
        """``y | gamma, sigma2`` with the slab coefficients integrated out (NumPyro)."""

        arg_constraints: ClassVar[dict] = {}
        support = constraints.real_vector

        def __init__(self, x: Any, gamma: Any, sigma2: Any, slab_scale: float) -> None:
            self.x, self.gamma, self.sigma2, self.slab_scale = x, gamma, sigma2, slab_scale
            batch = lax.broadcast_shapes(jnp.shape(gamma)[:-1], jnp.shape(sigma2))
            super().__init__(batch_shape=batch, event_shape=(jnp.shape(x)[0],))

        def log_prob(self, value: Any) -> Any:
            n, k = jnp.shape(self.x)
            g = jnp.asarray(self.gamma, dtype=self.x.dtype)
            a = g[..., :, None] * (self.x.T @ self.x) * g[..., None, :]
            a = a + jnp.eye(k) / self.slab_scale**2
            c = g * (value @ self.x)
            chol = jnp.linalg.cholesky(a)
            logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)
            sol = jnp.linalg.solve(a, c[..., None])[..., 0]
            quad = jnp.sum(value * value, -1) - jnp.sum(c * sol, -1)
            logdet = logdet + k * math.log(self.slab_scale**2)
            return -0.5 * (n * jnp.log(2 * math.pi * self.sigma2) + logdet + quad / self.sigma2)

        def sample(self, key: Any, sample_shape: tuple[int, ...] = ()) -> Any:
            k_beta, k_noise = random.split(key)
            shape = sample_shape + self.batch_shape
            sd = jnp.sqrt(self.sigma2)
            beta = random.normal(k_beta, (*shape, self.x.shape[1])) * self.slab_scale
            beta = beta * self.gamma * sd[..., None]
            noise = random.normal(k_noise, shape + self.event_shape) * sd[..., None]
            return beta @ self.x.T + noise

    return CollapsedRegression


@functools.cache
def _pyro_likelihood() -> type:
    import torch
    from pyro.distributions import TorchDistribution, constraints

    class CollapsedRegression(TorchDistribution):
        """``y | gamma, sigma2`` with the slab coefficients integrated out (Pyro)."""

        arg_constraints: ClassVar[dict] = {}
        support = constraints.real_vector

        def __init__(self, x: Any, gamma: Any, sigma2: Any, slab_scale: float) -> None:
            self.x, self.gamma, self.sigma2, self.slab_scale = x, gamma, sigma2, slab_scale
            batch = torch.broadcast_shapes(gamma.shape[:-1], sigma2.shape)
            super().__init__(batch_shape=batch, event_shape=(x.shape[0],), validate_args=False)

        def log_prob(self, value: Any) -> Any:
            n, k = self.x.shape
            g = self.gamma.to(self.x.dtype)
            a = g[..., :, None] * (self.x.T @ self.x) * g[..., None, :]
            a = a + torch.eye(k, dtype=self.x.dtype) / self.slab_scale**2
            c = g * (value @ self.x)
            chol = torch.linalg.cholesky(a)
            logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
            sol = torch.cholesky_solve(c.unsqueeze(-1), chol).squeeze(-1)
            quad = (value * value).sum(-1) - (c * sol).sum(-1)
            logdet = logdet + k * math.log(self.slab_scale**2)
            return -0.5 * (n * torch.log(2 * math.pi * self.sigma2) + logdet + quad / self.sigma2)

        def sample(self, sample_shape: Any = ()) -> Any:
            shape = torch.Size(sample_shape) + self.batch_shape
            with torch.no_grad():
                sd = self.sigma2.sqrt().expand(shape)
                beta = torch.randn(*shape, self.x.shape[1], dtype=self.x.dtype)
                beta = beta * self.slab_scale * self.gamma * sd[..., None]
                noise = torch.randn(shape + self.event_shape, dtype=self.x.dtype) * sd[..., None]
                return beta @ self.x.T + noise

    return CollapsedRegression


# -- the programs -------------------------------------------------------------------------------


def numpyro_model(x: Any, y: Any = None, prior: SpikeSlabPrior = SpikeSlabPrior()) -> None:
    """The NumPyro program (``y=None`` draws a response from the prior predictive)."""
    import numpyro
    import numpyro.distributions as dist

    k = x.shape[1]
    sigma2 = numpyro.sample("sigma2", dist.InverseGamma(prior.noise_shape, prior.noise_rate))
    with numpyro.plate("predictors", k):
        gamma = numpyro.sample("gamma", dist.Bernoulli(prior.inclusion_prob))
    likelihood = _numpyro_likelihood()(x, gamma, sigma2, prior.slab_scale)
    numpyro.sample("y", likelihood, obs=y)


def pyro_model(x: Any, y: Any = None, prior: SpikeSlabPrior = SpikeSlabPrior()) -> None:
    """The Pyro program (``y=None`` draws a response from the prior predictive).

    ``gamma`` gets a singleton axis before the predictor axis so that its batch dims line up with
    ``sigma2``'s when Pyro vectorises particles or samples (its plate is ``dim=-1``).
    """
    import pyro
    import pyro.distributions as dist
    import torch

    k = x.shape[1]
    rate = torch.tensor(prior.noise_rate, dtype=x.dtype)
    sigma2 = pyro.sample("sigma2", dist.InverseGamma(torch.tensor(prior.noise_shape), rate))
    with pyro.plate("predictors", k, dim=-1):
        gamma = pyro.sample("gamma", dist.Bernoulli(torch.tensor(prior.inclusion_prob)))
    likelihood = _pyro_likelihood()(x, gamma.unsqueeze(-2), sigma2, prior.slab_scale)
    pyro.sample("y", likelihood, obs=y)
