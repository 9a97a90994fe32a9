"""The few lines that fit a model with ``AutoMixedMeanField`` and ``TraceARMS_ELBO``, per backend.

Used by the tests and by the tutorials' figure script, so both run exactly the recipe the
tutorials show. The step size decays geometrically (``step_size * decay**step``) so that the final
parameters settle instead of jittering with the gradient noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Fit", "fit_numpyro", "fit_pyro"]


@dataclass
class Fit:
    """A fitted guide.

    Attributes:
        guide: The :class:`~ppl_arms.numpyro.AutoMixedMeanField` (or Pyro's) instance.
        params: NumPyro: the fitted parameters; Pyro: ``None`` (they live in the param store).
        losses: The loss at every step.
    """

    guide: Any
    params: dict[str, Any] | None
    losses: np.ndarray


def fit_numpyro(
    model: Callable,
    *args: Any,
    num_steps: int = 3000,
    step_size: float = 0.05,
    decay: float = 0.999,
    num_particles: int = 4,
    seed: int = 0,
    init_loc_fn: Callable | None = None,
    loss_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Fit:
    """Fit ``model`` with ``AutoMixedMeanField`` + ``TraceARMS_ELBO`` under NumPyro's ``SVI``.

    ``loss_options`` go to ``TraceARMS_ELBO`` (e.g. ``{"categorical_coupling": "stick_breaking"}``).
    """
    import jax
    import numpyro
    from numpyro.infer import SVI

    from ppl_arms.numpyro import AutoMixedMeanField, TraceARMS_ELBO

    options = {} if init_loc_fn is None else {"init_loc_fn": init_loc_fn}
    guide = AutoMixedMeanField(model, **options)
    optim = numpyro.optim.Adam(lambda i: step_size * decay**i)
    svi = SVI(model, guide, optim, loss=TraceARMS_ELBO(num_particles, **(loss_options or {})))
    result = svi.run(jax.random.key(seed), num_steps, *args, progress_bar=False, **kwargs)
    return Fit(guide, result.params, np.asarray(result.losses))


def fit_pyro(
    model: Callable,
    *args: Any,
    num_steps: int = 3000,
    step_size: float = 0.05,
    decay: float = 0.999,
    num_particles: int = 4,
    seed: int = 0,
    init_loc_fn: Callable | None = None,
    loss_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Fit:
    """Fit ``model`` with ``AutoMixedMeanField`` + ``TraceARMS_ELBO`` under Pyro's ``SVI``.

    ``loss_options`` go to ``TraceARMS_ELBO``.
    Clears Pyro's param store first and seeds Pyro's RNG with ``seed``.
    """
    import pyro
    from pyro.infer import SVI

    from ppl_arms.pyro import AutoMixedMeanField, TraceARMS_ELBO

    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    options = {} if init_loc_fn is None else {"init_loc_fn": init_loc_fn}
    guide = AutoMixedMeanField(model, **options)
    optim = pyro.optim.ClippedAdam({"lr": step_size, "lrd": decay})
    svi = SVI(model, guide, optim, loss=TraceARMS_ELBO(num_particles, **(loss_options or {})))
    losses = [svi.step(*args, **kwargs) for _ in range(num_steps)]
    return Fit(guide, None, np.asarray(losses))
