"""Declaring the learned parts of Double CV and RODEO in a NumPyro guide, so ``SVI`` trains them.

NumPyro's :class:`~numpyro.infer.SVI` collects its parameters when it is initialised, from the
``numpyro.param`` sites of one run of the guide and the model; the loss is not run then, so a
parameter that only the loss would create never reaches the optimiser. The losses therefore read
the learned parts of a site's estimator from their ``param_map`` under the reserved names of
:func:`ppl_arms.config.learned_name` and, when they are absent, use the initial values (the
estimate stays unbiased; only its variance is not trained) and warn once per site.
:func:`~ppl_arms.numpyro.config_estimator` declares them next to every site it marks (or that
carries ``infer={"estimator": ...}``), so a guide wrapped by it needs no code; without it, calling
:func:`learned_params` in the guide declares them::

    def guide(x):
        learned_params("z", "rodeo")
        numpyro.sample("z", dist.Bernoulli(logits=...), infer={"estimator": "rodeo"})

The loss then trains them with the user's optimiser through the same ``SVI`` step, by the
variance surrogate of :class:`~ppl_arms.core.carriers.GradientCarrier` (their gradient is the
gradient of the estimator's variance; the ELBO part of the loss does not depend on them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro

from ppl_arms.config import ESTIMATORS, EstimatorConfig, check_choice, learned_name
from ppl_arms.core.estimators import DistKind

__all__ = ["learned_params"]


def learned_params(site: str, estimator: str) -> dict[str, jax.Array]:
    """Declare the learned parameters of ``estimator`` at guide site ``site`` (``numpyro.param``).

    Args:
        site: The guide site's name.
        estimator: Its estimator name, ``"double_cv"`` or ``"rodeo"`` (others have none).

    Returns:
        The parameters' current values by leaf name (empty for estimators without learned parts).
    """
    check_choice(estimator, ESTIMATORS, "estimator", site)
    est = ESTIMATORS[estimator][DistKind.BERNOULLI](EstimatorConfig(estimator))
    like = jnp.zeros((), jnp.result_type(float))
    init = est.learned_init(like)
    return {
        leaf: numpyro.param(learned_name(estimator, site, leaf), value)
        for leaf, value in init.items()
    }
