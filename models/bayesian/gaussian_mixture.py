r"""Bayesian Gaussian mixture with a local categorical assignment per data point.

**Model** (``n`` points in ``d`` dimensions, ``K`` components, diagonal covariances)

.. math::
    w\sim\mathrm{Dir}(\alpha\mathbf 1_K),\quad
    \mu_k\sim\mathcal N(0,s_\mu^2I_d),\quad
    \sigma_{k}\sim\mathrm{LogNormal}(0,s_\sigma^2)^{\otimes d},\quad
    z_i\sim\mathrm{Cat}(w),\quad
    x_i\mid z_i\sim\mathcal N(\mu_{z_i},\mathrm{diag}\,\sigma_{z_i}^2).

**Discrete sites.** ``"assignment"``: Categorical over ``K`` components, shape ``[n]``, in the
plate ``"data"`` (subsampling supported). **Continuous sites.** ``"weights"`` (simplex),
``"locs"`` and ``"scales"`` (``[K, d]``, in the plate ``"components"``). **Observed.** ``"obs"``.

Fitted with :class:`~ppl_arms.numpyro.AutoMixedMeanField` and
:class:`~ppl_arms.numpyro.TraceARMS_ELBO` (CARMS at the assignments); the reference marginalises
the assignments exactly (``TraceEnum_ELBO`` with an ``AutoNormal`` guide on the global sites), see
:func:`enumerated_model`. Components are only defined up to relabelling: compare fits after
:func:`sort_components`.

**Data.** :func:`make_synthetic_data` (well separated clusters, known truth) and :func:`load_iris`
(scikit-learn's iris measurements, standardised; three species).

References:
    C. M. Bishop. *Pattern Recognition and Machine Learning*, ch. 10.2 (variational mixture of
    Gaussians). Springer, 2006. R. A. Fisher. "The use of multiple measurements in taxonomic
    problems." Annals of Eugenics, 1936 (the iris data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "FIT_OPTIONS",
    "MixtureData",
    "MixturePrior",
    "enumerated_model",
    "initial_locs",
    "load_iris",
    "make_synthetic_data",
    "numpyro_model",
    "pyro_model",
    "sort_components",
]


@dataclass(frozen=True)
class MixturePrior:
    r"""Hyperparameters of the mixture.

    Attributes:
        num_components: ``K``.
        concentration: :math:`\alpha` of the symmetric Dirichlet on the weights.
        loc_scale: :math:`s_\mu`, prior scale of the component means.
        log_scale_scale: :math:`s_\sigma`, prior scale of the log component scales.
    """

    num_components: int = 3
    concentration: float = 1.0
    loc_scale: float = 3.0
    log_scale_scale: float = 1.0


@dataclass(frozen=True)
class MixtureData:
    """Points ``x`` ``[n, d]`` and, when known, their true labels and component parameters."""

    x: np.ndarray
    labels: np.ndarray | None = None
    true_locs: np.ndarray | None = None


FIT_OPTIONS = {"num_steps": 3000, "step_size": 0.05, "decay": 0.999, "num_particles": 4}
"""Settings of :func:`models.bayesian.fit_numpyro` / ``fit_pyro`` used by the tests and the tutorial
(the reference ``TraceEnum_ELBO`` fit uses the same steps and step sizes)."""


def make_synthetic_data(
    num_data: int = 150,
    locs: tuple[tuple[float, float], ...] = ((-2.0, 0.0), (1.5, 2.0), (2.0, -1.5)),
    scale: float = 0.5,
    weights: tuple[float, ...] = (0.4, 0.35, 0.25),
    seed: int = 0,
) -> MixtureData:
    """Well-separated 2-d Gaussian clusters with known means and labels."""
    rng = np.random.default_rng(seed)
    mu = np.asarray(locs, dtype=np.float64)
    labels = rng.choice(len(weights), size=num_data, p=np.asarray(weights))
    x = mu[labels] + scale * rng.standard_normal((num_data, mu.shape[1]))
    return MixtureData(x, labels, mu)


def load_iris() -> MixtureData:
    """scikit-learn's iris data (150 flowers, 4 measurements), standardised, with species labels."""
    from sklearn.datasets import load_iris as _load

    raw = _load()
    x = np.asarray(raw.data, dtype=np.float64)
    x = (x - x.mean(0)) / x.std(0)
    return MixtureData(x, np.asarray(raw.target))


def initial_locs(x: np.ndarray, num_components: int) -> np.ndarray:
    """Deterministic starting means, the same for every method so that fits are comparable.

    Returns the points at evenly spaced quantiles of the first principal component.
    """
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    score = centred @ vt[0]
    order = np.argsort(score)
    picks = order[((np.arange(num_components) + 0.5) / num_components * len(x)).astype(int)]
    return x[picks]


def sort_components(locs: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Relabel components by their mean's first coordinate (handles label switching).

    Args:
        locs: Component means ``[..., K, d]``.
        *others: Arrays indexed by component on the same axis as ``locs``'s ``K`` (weights
            ``[..., K]``, scales ``[..., K, d]``).

    Returns:
        ``locs`` and ``others``, each reordered.
    """
    order = np.argsort(locs[..., 0], axis=-1)
    out = [np.take_along_axis(locs, order[..., None], axis=-2)]
    for a in others:
        idx = order if a.ndim == order.ndim else order[..., None]
        out.append(np.take_along_axis(a, idx, axis=order.ndim - 1))
    return tuple(out)


def numpyro_model(
    x: Any, prior: MixturePrior = MixturePrior(), subsample_size: int | None = None
) -> None:
    """The NumPyro program (``subsample_size`` draws minibatches of the points)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.ops.indexing import Vindex

    n, d = x.shape
    k = prior.num_components
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.full(k, prior.concentration)))
    with numpyro.plate("components", k):
        locs = numpyro.sample("locs", dist.Normal(0.0, prior.loc_scale).expand([d]).to_event(1))
        scales = numpyro.sample(
            "scales", dist.LogNormal(0.0, prior.log_scale_scale).expand([d]).to_event(1)
        )
    with numpyro.plate("data", n, subsample_size=subsample_size) as idx:
        z = numpyro.sample("assignment", dist.Categorical(weights))
        loc = Vindex(locs)[..., z, :]
        scale = Vindex(scales)[..., z, :]
        numpyro.sample("obs", dist.Normal(loc, scale).to_event(1), obs=x[idx])


def pyro_model(
    x: Any, prior: MixturePrior = MixturePrior(), subsample_size: int | None = None
) -> None:
    """The Pyro program (``subsample_size`` draws minibatches of the points)."""
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.ops.indexing import Vindex

    n, d = x.shape
    k = prior.num_components
    concentration = torch.full((k,), prior.concentration, dtype=x.dtype)
    weights = pyro.sample("weights", dist.Dirichlet(concentration))
    zero = torch.zeros((), dtype=x.dtype)
    with pyro.plate("components", k, dim=-1):
        locs = pyro.sample("locs", dist.Normal(zero, prior.loc_scale).expand([d]).to_event(1))
        scales = pyro.sample(
            "scales", dist.LogNormal(zero, prior.log_scale_scale).expand([d]).to_event(1)
        )
    with pyro.plate("data", n, subsample_size=subsample_size, dim=-1) as idx:
        z = pyro.sample("assignment", dist.Categorical(weights))
        # A singleton axis for the "data" plate lines the components up with z's batch dims
        # (the particle or sample dim Pyro adds to the left, and the enumeration dim).
        loc = Vindex(locs.unsqueeze(-3))[..., z, :]
        scale = Vindex(scales.unsqueeze(-3))[..., z, :]
        pyro.sample("obs", dist.Normal(loc, scale).to_event(1), obs=x[idx])


def enumerated_model(backend: str) -> Any:
    """The model with the assignments marked for exact enumeration (``TraceEnum_ELBO`` reference).

    Args:
        backend: ``"numpyro"`` (needs ``funsor``) or ``"pyro"``.

    Returns:
        The model wrapped by the backend's ``config_enumerate`` (parallel enumeration of
        ``"assignment"`` only).
    """
    if backend == "numpyro":
        from numpyro.contrib.funsor import config_enumerate

        return config_enumerate(numpyro_model, default="parallel")
    if backend == "pyro":
        from pyro.infer import config_enumerate

        return config_enumerate(pyro_model, default="parallel")
    raise ValueError(f"unknown backend {backend!r}; use 'numpyro' or 'pyro'")
