"""Reference Bayesian models with discrete latent variables, each validated against an exact answer.

Each module holds one model, written for NumPyro (``numpyro_model``) and Pyro (``pyro_model``), its
data, and the exact (or exactly marginalised) reference it is checked against:

* :mod:`models.bayesian.variable_selection`: spike-and-slab linear regression with Bernoulli
  inclusion indicators (diabetes and synthetic data); exact inclusion probabilities by enumerating
  all ``2**10`` models;
* :mod:`models.bayesian.gaussian_mixture`: a Gaussian mixture with a categorical assignment per
  point (synthetic and iris data); reference: ``TraceEnum_ELBO`` with the assignments summed out;
* :mod:`models.bayesian.change_point`: Poisson counts with one discrete change time; exact
  posterior by enumerating the positions.

:mod:`models.bayesian.fitting` runs the fitting recipe the tutorials show
(:class:`~ppl_arms.numpyro.AutoMixedMeanField` + :class:`~ppl_arms.numpyro.TraceARMS_ELBO`).
Importing this package imports neither JAX nor torch.
"""

from models.bayesian import change_point, gaussian_mixture, variable_selection
from models.bayesian.fitting import Fit, fit_numpyro, fit_pyro

__all__ = [
    "Fit",
    "change_point",
    "fit_numpyro",
    "fit_pyro",
    "gaussian_mixture",
    "variable_selection",
]
