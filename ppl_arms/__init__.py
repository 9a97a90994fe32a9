"""ppl_arms: unbiased antithetic multi-sample gradients for discrete latent variables.

The backend-neutral mathematics lives in :mod:`ppl_arms.core`; the host adapters are
:mod:`ppl_arms.pyro` (PyTorch) and :mod:`ppl_arms.numpyro` (JAX), imported explicitly so that
neither framework is required by the other.
"""

from ppl_arms.version import __version__

__all__ = ["__version__"]
