"""Checks of a loss's constructor arguments, shared by both adapters (one message per mistake).

The number of particles and the estimator names are checked by
:class:`~ppl_arms.config.EstimatorConfig` (``n >= 2``, DisARM's even ``n``); this module adds the
options every loss of both hosts takes the same way.
"""

from __future__ import annotations

from typing import Any

from ppl_arms.config import IWAE_ESTIMATORS, EstimatorConfig, IWAEEstimator, check_choice

__all__ = ["check_vectorized", "iwae_config"]


def check_vectorized(value: Any, how: str) -> None:
    """Raise unless ``vectorize_particles`` is ``True`` (the losses couple vectorised particles).

    Args:
        value: The ``vectorize_particles`` argument.
        how: How the host couples the particles, for the message (e.g. ``"of one vectorised
            trace"``).
    """
    if value is not True:
        raise ValueError(
            f"ppl_arms losses couple the particles {how} and need vectorize_particles=True, "
            f"got {value!r}"
        )


def iwae_config(
    num_particles: int, estimator: str, copula: str, categorical_coupling: str
) -> tuple[IWAEEstimator, EstimatorConfig]:
    """The IWAE estimator's spec and the site-level configuration it implies.

    Raises:
        ValueError: for an unknown IWAE estimator, or a bad configuration.
    """
    check_choice(estimator, IWAE_ESTIMATORS, "IWAE estimator")
    spec = IWAE_ESTIMATORS[estimator]
    config = EstimatorConfig(spec.site_estimator, copula, categorical_coupling, num_particles)
    return spec, config
