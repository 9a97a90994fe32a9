r"""Binary VAE: one stochastic layer of Bernoulli latents, as in the ARMS paper.

**Model.** :math:`z\sim\prod_l\mathrm{Bern}(\sigma(a_l))` with learnable prior logits :math:`a`
(initialised to 0), :math:`x\mid z\sim\prod_d\mathrm{Bern}(\sigma(\mathrm{dec}(2z-1))_d)`.
**Guide.** :math:`z\mid x\sim\prod_l\mathrm{Bern}(\sigma(\mathrm{enc}(x-\bar x))_l)`, with
:math:`\bar x` the training mean (``demean_input`` in the reference code).

Two architectures (``variant``):

* ``"linear"``: encoder ``D -> L`` logits, decoder ``L -> D``;
* ``"nonlinear"``: encoder ``D -> H -> H -> L``, decoder ``L -> H -> H -> D``, LeakyReLU(0.3)
  between layers (the paper's ``H = L = 200``).

The decoder's output bias starts at :math:`\mathrm{logit}(\mathrm{clip}(\bar x, 0.001, 0.999))`
(``initialize_with_bias``); weights are Glorot-uniform from ``numpy.random.default_rng(seed)``.

**Discrete sites.** One guide site ``"z"``: Bernoulli, shape ``[B, L]`` with ``.to_event(1)``
inside the ``"data"`` plate (``dim=-1``). The observed site is ``"x"``.

**Estimator.** ``TraceARMS_ELBO(estimator="arms")`` (ARMS-D) for the ELBO,
``TraceARMS_IWAE(estimator="arms")`` for the multi-sample bound; DisARM and LOORF are the
baselines the paper compares with. All sites are coupled (the logits do not depend on other
samples).

**Size.** ``L = 200`` is the paper's choice for 784-pixel images; for the 64-pixel sklearn digits
a latent size of the order of the pixel count or below (e.g. 32) keeps the model from being
mostly unused latents, and the tests use much smaller sizes.

Reference:
    A. Dimitriev, M. Zhou. "ARMS: Antithetic-REINFORCE-Multi-Sample Gradient for Binary
    Variables." ICML 2021, arXiv:2105.14141 (code: ``alekdimi/arms``).
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
    "BinaryVAEConfig",
    "init_params",
    "make_model_guide",
    "numpyro_model_guide",
    "pyro_model_guide",
]

NUM_HIDDEN_LAYERS = {"linear": 0, "nonlinear": 2}
"""Hidden layers (of width ``hidden_size``) in the encoder and in the decoder, per variant."""


@dataclass(frozen=True)
class BinaryVAEConfig:
    """Sizes of the binary VAE.

    Attributes:
        variant: ``"linear"`` or ``"nonlinear"`` (a key of :data:`NUM_HIDDEN_LAYERS`).
        num_latents: ``L``, the number of Bernoulli latents.
        hidden_size: ``H``, the width of the hidden layers of the nonlinear variant.
        seed: Seed of the NumPy generator that draws the initial weights.
    """

    variant: str = "linear"
    num_latents: int = 200
    hidden_size: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in NUM_HIDDEN_LAYERS:
            raise ValueError(
                f"unknown variant {self.variant!r}; valid variants are {sorted(NUM_HIDDEN_LAYERS)}"
            )

    def layer_sizes(self, num_pixels: int) -> tuple[list[int], list[int]]:
        """Encoder and decoder widths, input first."""
        hidden = [self.hidden_size] * NUM_HIDDEN_LAYERS[self.variant]
        return [num_pixels, *hidden, self.num_latents], [self.num_latents, *hidden, num_pixels]


def init_params(config: BinaryVAEConfig, data_mean: np.ndarray) -> dict[str, np.ndarray]:
    """Initial values of every parameter, by name (NumPy, float64)."""
    rng = np.random.default_rng(config.seed)
    enc, dec = config.layer_sizes(np.shape(data_mean)[-1])
    return {
        **init_mlp(rng, "encoder", enc),
        **init_mlp(rng, "decoder", dec, out_bias=logit_mean(data_mean)),
        "prior_logits": np.zeros(config.num_latents),
    }


def make_model_guide(
    ppl: PPL, config: BinaryVAEConfig, data_mean: np.ndarray
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

    def model(x: Any, num_data: int | None = None) -> None:
        prior_logits = ppl.param("prior_logits", init["prior_logits"], x)
        with ppl.data_plate(x.shape[-2], num_data):
            z = ppl.sample("z", dist.Bernoulli(logits=prior_logits).to_event(1))
            logits = decoder(2.0 * ppl.to_float(z, x) - 1.0)
            ppl.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)

    def guide(x: Any, num_data: int | None = None) -> None:
        with ppl.data_plate(x.shape[-2], num_data):
            logits = encoder(x - ppl.constant(data_mean, x))
            ppl.sample("z", dist.Bernoulli(logits=logits).to_event(1))

    return model, guide


def numpyro_model_guide(
    config: BinaryVAEConfig, data_mean: np.ndarray
) -> tuple[Callable[..., None], Callable[..., None]]:
    """NumPyro model and guide (weights are ``numpyro.param`` sites); see :func:`make_model_guide`."""
    return make_model_guide(numpyro_ppl(), config, data_mean)


def pyro_model_guide(
    config: BinaryVAEConfig, data_mean: np.ndarray
) -> tuple[Callable[..., None], Callable[..., None]]:
    """Pyro model and guide (``pyro.module``-registered MLPs); see :func:`make_model_guide`."""
    return make_model_guide(pyro_ppl(), config, data_mean)
