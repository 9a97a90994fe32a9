r"""Categorical VAE: ``L`` categorical latents with ``K`` classes each, as in the CARMS paper.

**Model.** :math:`z_l\sim\mathrm{Cat}(\mathrm{softmax}(a_l))` independently, with learnable prior
logits :math:`a\in\mathbb R^{L\times K}` (initialised to 0), and
:math:`x\mid z\sim\prod_d\mathrm{Bern}(\sigma(\mathrm{dec}(\mathrm{onehot}(z)))_d)`, where the
decoder input is the one-hot encoding of ``z`` flattened to ``L * K`` numbers.
**Guide.** :math:`z_l\mid x\sim\mathrm{Cat}(\mathrm{softmax}(\mathrm{enc}(x-\bar x)_l))`, the
encoder's ``L * K`` outputs read as ``[L, K]`` logits.

Two architectures (``variant``):

* ``"linear"``: encoder ``D -> L*K``, decoder ``L*K -> D``;
* ``"nonlinear"``: encoder ``D -> H -> H -> L*K``, decoder ``L*K -> H -> H -> D``, LeakyReLU(0.3)
  between layers (the paper's ``H = 200``).

The encoder input is centred on the training mean and the decoder output bias starts at
:math:`\mathrm{logit}(\mathrm{clip}(\bar x, 0.001, 0.999))` (the CARMS defaults ``demean_input``
and ``initialize_with_bias``); weights are Glorot-uniform from ``numpy.random.default_rng(seed)``.

**Discrete sites.** One guide site ``"z"``: integer ``Categorical`` of shape ``[B, L]`` with
``.to_event(1)`` inside the ``"data"`` plate (``dim=-1``); integer (not one-hot) values in both
backends, since NumPyro has no ``OneHotCategorical``. The observed site is ``"x"``.

**Estimator.** ``TraceARMS_ELBO(estimator="arms")`` (CARMS at categorical sites, with the default
unsorted stick-breaking coupling; ``categorical_coupling="inverse_cdf"`` for CARMS-I) or
``TraceARMS_IWAE(estimator="arms")``; LOORF and VIMCO are the baselines. ``"disarm"`` applies to
Bernoulli sites only and raises a ``ValueError`` naming site ``"z"``.

Reference:
    A. Dimitriev, M. Zhou. "CARMS: Categorical-Antithetic-REINFORCE Multi-Sample Gradient
    Estimator." NeurIPS 2021, arXiv:2110.14002 (code: ``alekdimi/carms``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from models._init import init_mlp, logit_mean
from models._ppl import PPL, numpyro_ppl, pyro_ppl

__all__ = [
    "NUM_HIDDEN_LAYERS",
    "CategoricalVAEConfig",
    "init_params",
    "make_model_guide",
    "numpyro_model_guide",
    "pyro_model_guide",
]

NUM_HIDDEN_LAYERS = {"linear": 0, "nonlinear": 2}
"""Hidden layers (of width ``hidden_size``) in the encoder and in the decoder, per variant."""


@dataclass(frozen=True)
class CategoricalVAEConfig:
    """Sizes of the categorical VAE.

    Attributes:
        variant: ``"linear"`` or ``"nonlinear"`` (a key of :data:`NUM_HIDDEN_LAYERS`).
        num_latents: ``L``, the number of categorical latents.
        num_categories: ``K``, the classes of each latent.
        hidden_size: ``H``, the width of the hidden layers of the nonlinear variant.
        seed: Seed of the NumPy generator that draws the initial weights.
    """

    variant: str = "linear"
    num_latents: int = 20
    num_categories: int = 10
    hidden_size: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in NUM_HIDDEN_LAYERS:
            raise ValueError(
                f"unknown variant {self.variant!r}; valid variants are {sorted(NUM_HIDDEN_LAYERS)}"
            )

    @property
    def code_size(self) -> int:
        """``L * K``: encoder output and decoder input width."""
        return self.num_latents * self.num_categories

    def layer_sizes(self, num_pixels: int) -> tuple[list[int], list[int]]:
        """Encoder and decoder widths, input first."""
        hidden = [self.hidden_size] * NUM_HIDDEN_LAYERS[self.variant]
        return [num_pixels, *hidden, self.code_size], [self.code_size, *hidden, num_pixels]


def init_params(config: CategoricalVAEConfig, data_mean: np.ndarray) -> dict[str, np.ndarray]:
    """Initial values of every parameter, by name (NumPy, float64)."""
    rng = np.random.default_rng(config.seed)
    enc, dec = config.layer_sizes(np.shape(data_mean)[-1])
    return {
        **init_mlp(rng, "encoder", enc),
        **init_mlp(rng, "decoder", dec, out_bias=logit_mean(data_mean)),
        "prior_logits": np.zeros((config.num_latents, config.num_categories)),
    }


def make_model_guide(
    ppl: PPL, config: CategoricalVAEConfig, data_mean: np.ndarray
) -> tuple[Callable[..., None], Callable[..., None]]:
    """The model and guide, written once for either backend.

    Args:
        ppl: The backend namespace (:func:`~models._ppl.numpyro_ppl` or ``pyro_ppl``).
        config: Sizes.
        data_mean: Training mean per pixel, ``[D]``.

    Returns:
        ``(model, guide)``, both called as ``fn(x, num_data=None)`` with ``x`` a ``[B, D]`` batch
        of binary pixels; ``num_data`` (the data set size) scales the batch to a full-data ELBO.
    """
    init = init_params(config, data_mean)
    enc_layers, dec_layers = (len(s) - 1 for s in config.layer_sizes(np.shape(data_mean)[-1]))
    encoder = ppl.mlp("encoder", init, enc_layers)
    decoder = ppl.mlp("decoder", init, dec_layers)
    dist = ppl.dist
    latent_shape = (config.num_latents, config.num_categories)

    def model(x: Any, num_data: int | None = None) -> None:
        prior_logits = ppl.param("prior_logits", init["prior_logits"], x)
        with ppl.data_plate(x.shape[-2], num_data):
            z = ppl.sample("z", dist.Categorical(logits=prior_logits).to_event(1))
            logits = decoder(ppl.one_hot_flat(z, config.num_categories, x))
            ppl.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)

    def guide(x: Any, num_data: int | None = None) -> None:
        with ppl.data_plate(x.shape[-2], num_data):
            h = encoder(x - ppl.constant(data_mean, x))
            logits = h.reshape(tuple(h.shape[:-1]) + latent_shape)
            ppl.sample("z", dist.Categorical(logits=logits).to_event(1))

    return model, guide


def numpyro_model_guide(
    config: CategoricalVAEConfig, data_mean: np.ndarray
) -> tuple[Callable[..., None], Callable[..., None]]:
    """NumPyro model and guide (weights are ``numpyro.param`` sites); see :func:`make_model_guide`."""
    return make_model_guide(numpyro_ppl(), config, data_mean)


def pyro_model_guide(
    config: CategoricalVAEConfig, data_mean: np.ndarray
) -> tuple[Callable[..., None], Callable[..., None]]:
    """Pyro model and guide (``pyro.module``-registered MLPs); see :func:`make_model_guide`."""
    return make_model_guide(pyro_ppl(), config, data_mean)
