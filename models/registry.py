"""Model registry: one dict from model name to how to build it, for command lines and benchmarks.

Example::

    from models import build_model, get_dataset

    data = get_dataset("digits")
    model, guide = build_model("binary_vae_linear", "numpyro", data.train_mean, num_latents=32)

This is the only place where model *names* are mapped to code (no ``if``/``elif`` on names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models import binary_vae, categorical_vae, sigmoid_belief_net, structured_prediction
from models._ppl import PPL, numpyro_ppl, pyro_ppl
from models.bounds import (
    numpyro_log_weights,
    numpyro_multi_sample_bound,
    pyro_log_weights,
    pyro_multi_sample_bound,
)

__all__ = [
    "BACKENDS",
    "LOG_WEIGHTS",
    "MODELS",
    "MULTI_SAMPLE_BOUNDS",
    "ModelSpec",
    "build_model",
]

BACKENDS: Mapping[str, Callable[[], PPL]] = {"numpyro": numpyro_ppl, "pyro": pyro_ppl}
"""Backend name -> its :class:`~models._ppl.PPL` namespace factory."""

MULTI_SAMPLE_BOUNDS: Mapping[str, Callable[..., Any]] = {
    "numpyro": numpyro_multi_sample_bound,
    "pyro": pyro_multi_sample_bound,
}
"""Backend name -> per-data-point ``M``-sample bound (:mod:`models.bounds`); valid for every model
of :data:`MODELS` (for ``structured_prediction`` it is ``log mean_m p(x_bottom | z_m)``)."""

LOG_WEIGHTS: Mapping[str, Callable[..., Any]] = {
    "numpyro": numpyro_log_weights,
    "pyro": pyro_log_weights,
}
"""Backend name -> per-sample, per-data-point log importance weights ``[M, B]``."""


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered model.

    Attributes:
        make: ``make(ppl, config, data_mean) -> (model, guide)`` (a model file's
            ``make_model_guide``).
        config_cls: The model's config dataclass.
        defaults: Config fields fixed by this entry (e.g. ``{"variant": "linear"}``).
        discrete_sites: Guide site name -> ``"bernoulli"`` or ``"categorical"``.
        observed: Names of the observed sites.
        description: One line for ``--help`` texts.
    """

    make: Callable[[PPL, Any, np.ndarray], tuple[Callable[..., None], Callable[..., None]]]
    config_cls: type
    defaults: Mapping[str, Any] = field(default_factory=dict)
    discrete_sites: Mapping[str, str] = field(default_factory=dict)
    observed: tuple[str, ...] = ("x",)
    description: str = ""

    def config(self, **overrides: Any) -> Any:
        """The config: this entry's defaults, then ``overrides``."""
        return self.config_cls(**{**self.defaults, **overrides})

    @property
    def is_categorical(self) -> bool:
        """Whether some discrete site is categorical (so ``estimator="disarm"`` is invalid)."""
        return "categorical" in self.discrete_sites.values()


MODELS: Mapping[str, ModelSpec] = {
    "binary_vae_linear": ModelSpec(
        binary_vae.make_model_guide,
        binary_vae.BinaryVAEConfig,
        {"variant": "linear"},
        {"z": "bernoulli"},
        description="ARMS binary VAE, linear encoder/decoder, 200 Bernoulli latents",
    ),
    "binary_vae_nonlinear": ModelSpec(
        binary_vae.make_model_guide,
        binary_vae.BinaryVAEConfig,
        {"variant": "nonlinear"},
        {"z": "bernoulli"},
        description="ARMS binary VAE, two LeakyReLU hidden layers of 200",
    ),
    "categorical_vae_linear": ModelSpec(
        categorical_vae.make_model_guide,
        categorical_vae.CategoricalVAEConfig,
        {"variant": "linear"},
        {"z": "categorical"},
        description="CARMS categorical VAE, linear, 20 latents x 10 classes",
    ),
    "categorical_vae_nonlinear": ModelSpec(
        categorical_vae.make_model_guide,
        categorical_vae.CategoricalVAEConfig,
        {"variant": "nonlinear"},
        {"z": "categorical"},
        description="CARMS categorical VAE, two LeakyReLU hidden layers of 200",
    ),
    "structured_prediction": ModelSpec(
        structured_prediction.make_model_guide,
        structured_prediction.StructuredPredictionConfig,
        {},
        {"z": "categorical"},
        observed=("x_bottom",),
        description="CARMS structured output prediction: bottom half from top half",
    ),
    "sigmoid_belief_net": ModelSpec(
        sigmoid_belief_net.make_model_guide,
        sigmoid_belief_net.SigmoidBeliefNetConfig,
        {},
        {"z1": "bernoulli", "z2": "bernoulli"},
        description="two-layer 200-200 sigmoid belief net (z2's guide depends on z1)",
    ),
}
"""Model name -> :class:`ModelSpec`."""


def build_model(
    name: str, backend: str, data_mean: np.ndarray, **config: Any
) -> tuple[Callable[..., None], Callable[..., None]]:
    """Build a registered model for a backend.

    Args:
        name: A key of :data:`MODELS`.
        backend: ``"numpyro"`` or ``"pyro"``.
        data_mean: Training mean per pixel, ``[D]``.
        **config: Overrides of the model's config fields (e.g. ``num_latents=32``).

    Returns:
        ``(model, guide)``, called as ``fn(x, num_data=None)``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names are {sorted(MODELS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends are {sorted(BACKENDS)}")
    spec = MODELS[name]
    return spec.make(BACKENDS[backend](), spec.config(**config), np.asarray(data_mean))
