"""NumPyro adapter: ARMS/CARMS losses for :class:`numpyro.infer.SVI`.

Requires ``numpyro`` and ``jax`` (``pip install "ppl_arms[numpyro]"``).
"""

try:
    import numpyro  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "ppl_arms.numpyro needs NumPyro and JAX: pip install 'ppl_arms[numpyro]'"
    ) from e

from ppl_arms.numpyro.autoguide import AutoMixedMeanField
from ppl_arms.numpyro.config import config_estimator
from ppl_arms.numpyro.diagnostics import gradient_variance
from ppl_arms.numpyro.elbo import TraceARMS_ELBO, TraceGraphARMS_ELBO
from ppl_arms.numpyro.inference_data import to_inference_data
from ppl_arms.numpyro.iwae import TraceARMS_IWAE
from ppl_arms.numpyro.learned import learned_params

__all__ = [
    "AutoMixedMeanField",
    "TraceARMS_ELBO",
    "TraceARMS_IWAE",
    "TraceGraphARMS_ELBO",
    "config_estimator",
    "gradient_variance",
    "learned_params",
    "to_inference_data",
]
