"""Pyro adapter: ARMS/CARMS losses for :class:`pyro.infer.SVI`.

Requires ``pyro-ppl`` and ``torch`` (install ``torch==2.13.0`` CPU first, then
``pip install "ppl_arms[pyro]"``).
"""

try:
    import pyro  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "ppl_arms.pyro needs Pyro and PyTorch: pip install torch==2.13.0 'ppl_arms[pyro]'"
    ) from e

from ppl_arms.pyro.autoguide import AutoMixedMeanField
from ppl_arms.pyro.config import config_estimator
from ppl_arms.pyro.diagnostics import gradient_variance
from ppl_arms.pyro.elbo import TraceARMS_ELBO, TraceGraphARMS_ELBO
from ppl_arms.pyro.inference_data import to_inference_data
from ppl_arms.pyro.iwae import TraceARMS_IWAE
from ppl_arms.pyro.jit import JitTraceARMS_ELBO, JitTraceARMS_IWAE, JitTraceGraphARMS_ELBO

__all__ = [
    "AutoMixedMeanField",
    "JitTraceARMS_ELBO",
    "JitTraceARMS_IWAE",
    "JitTraceGraphARMS_ELBO",
    "TraceARMS_ELBO",
    "TraceARMS_IWAE",
    "TraceGraphARMS_ELBO",
    "config_estimator",
    "gradient_variance",
    "to_inference_data",
]
