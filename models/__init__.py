"""Example models with discrete latent variables, their data, and their evaluation bounds.

Each model is written once (:mod:`models._ppl`) and built for NumPyro or Pyro:

* :mod:`models.binary_vae`: ARMS binary VAE (Bernoulli latents), linear and nonlinear;
* :mod:`models.categorical_vae`: CARMS categorical VAE, linear and nonlinear;
* :mod:`models.structured_prediction`: CARMS structured output prediction (bottom half of an
  image from the top half, categorical latents);
* :mod:`models.sigmoid_belief_net`: a two-layer sigmoid belief net (dependent Bernoulli sites).

:mod:`models.data` loads the image data (sklearn digits offline, Fashion-MNIST from its Debian
package, MNIST and Omniglot from local files), :mod:`models.bounds` evaluates multi-sample bounds
per data point, and :mod:`models.registry` maps model names to builders. Importing :mod:`models`
imports neither JAX nor torch; a backend is imported when a model is built for it.
"""

from models.binary_vae import BinaryVAEConfig
from models.bounds import (
    numpyro_log_weights,
    numpyro_multi_sample_bound,
    pyro_log_weights,
    pyro_multi_sample_bound,
)
from models.categorical_vae import CategoricalVAEConfig
from models.data import (
    DATASETS,
    Dataset,
    batches,
    dynamic_binarize,
    get_dataset,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    load_omniglot,
    read_idx,
)
from models.registry import (
    BACKENDS,
    LOG_WEIGHTS,
    MODELS,
    MULTI_SAMPLE_BOUNDS,
    ModelSpec,
    build_model,
)
from models.sigmoid_belief_net import SigmoidBeliefNetConfig
from models.structured_prediction import StructuredPredictionConfig

__all__ = [
    "BACKENDS",
    "DATASETS",
    "LOG_WEIGHTS",
    "MODELS",
    "MULTI_SAMPLE_BOUNDS",
    "BinaryVAEConfig",
    "CategoricalVAEConfig",
    "Dataset",
    "ModelSpec",
    "SigmoidBeliefNetConfig",
    "StructuredPredictionConfig",
    "batches",
    "build_model",
    "dynamic_binarize",
    "get_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_omniglot",
    "numpyro_log_weights",
    "numpyro_multi_sample_bound",
    "pyro_log_weights",
    "pyro_multi_sample_bound",
    "read_idx",
]
