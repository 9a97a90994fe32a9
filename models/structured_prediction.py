r"""Structured output prediction: the bottom half of an image from its top half (CARMS paper).

**Objective.** With categorical latents :math:`z` (``L`` variables, ``K`` classes) drawn from
:math:`q_\phi(z\mid x_{\rm top})` and a decoder :math:`p_\theta(x_{\rm bottom}\mid z)`, maximise

.. math::
    J(\phi,\theta)=\mathbb E_{q_\phi(z\mid x_{\rm top})}\big[\log p_\theta(x_{\rm bottom}\mid z)\big]

with no prior and no KL term (the CARMS ``--mle`` experiment); the test metric is
:math:`\log\frac1M\sum_m p_\theta(x_{\rm bottom}\mid z_m)`.

**PPL form.** An SVI loss computes :math:`\mathbb E_q[\log p(x,z)-\log q(z)]`, so the model is
given a "prior" for ``z`` equal to the guide's distribution **with its parameters detached**
(``stop_gradient`` / ``.detach()``): the model runs the same encoder, with the same parameter
names, on the same top half. Then, per sample,
:math:`\log p(z)-\log q(z)=0` exactly, the ELBO equals :math:`\log p(x_{\rm bottom}\mid z)`, the
multi-sample bound equals the test metric, and the gradient is exactly that of :math:`J`:
:math:`\nabla_\phi\,\mathbb E_{q_\phi}[\log p(x_b\mid z)+\log q_{\bar\phi}(z)-\log q_\phi(z)]`
at :math:`\bar\phi=\phi` is :math:`\nabla_\phi J-\mathbb E_q[\nabla_\phi\log q_\phi]=\nabla_\phi J`.
Detaching is what makes this the cleanest form: with a non-detached copy the loss would also
differentiate :math:`\log p_\phi(z)` and add :math:`\nabla_\phi\log q_\phi(z)` per sample, which is
zero in expectation (still unbiased) but pure extra variance. No estimator or loss needs to know
about this model.

**Architecture.** Top half: the first ``D // 2`` pixels (rows ``0..R/2-1`` of an ``R``-row image);
bottom half: the rest. Encoder ``D/2 -> H -> L*K`` on :math:`x_{\rm top}-\bar x_{\rm top}`,
decoder ``L*K -> H -> D/2`` on the flattened one-hot code, LeakyReLU(0.3), decoder output bias
:math:`\mathrm{logit}(\mathrm{clip}(\bar x_{\rm bottom},0.001,0.999))`, Glorot-uniform weights. The
reference code tiles both halves twice to 784 numbers and halves the reported metric; using the
halves directly gives the same objective without that bookkeeping.

**Discrete sites.** Guide site ``"z"``: integer ``Categorical``, shape ``[B, L]``, ``.to_event(1)``
in the ``"data"`` plate; the model has the same site (detached copy) and the observed site
``"x_bottom"``.

**Estimator.** ``TraceARMS_ELBO(estimator="arms")`` (CARMS) for :math:`J`, or
``TraceARMS_IWAE(estimator="arms")`` for the multi-sample objective
:math:`\log\frac1n\sum_i p(x_{\rm bottom}\mid z_i)`; LOORF and VIMCO are the baselines.

Reference:
    A. Dimitriev, M. Zhou. "CARMS: Categorical-Antithetic-REINFORCE Multi-Sample Gradient
    Estimator." NeurIPS 2021, arXiv:2110.14002 (structured output prediction experiment).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from models._init import init_mlp, logit_mean
from models._ppl import PPL, numpyro_ppl, pyro_ppl

__all__ = [
    "NUM_LAYERS",
    "StructuredPredictionConfig",
    "init_params",
    "make_model_guide",
    "numpyro_model_guide",
    "pyro_model_guide",
    "split_halves",
]

NUM_LAYERS = 2
"""Affine layers of the encoder and of the decoder (one hidden layer each)."""


@dataclass(frozen=True)
class StructuredPredictionConfig:
    """Sizes of the structured-prediction model.

    Attributes:
        num_latents: ``L``, the number of categorical latents.
        num_categories: ``K``, the classes of each latent.
        hidden_size: ``H``, the width of the one hidden layer of encoder and decoder.
        seed: Seed of the NumPy generator that draws the initial weights.
    """

    num_latents: int = 20
    num_categories: int = 10
    hidden_size: int = 200
    seed: int = 0

    @property
    def code_size(self) -> int:
        """``L * K``: encoder output and decoder input width."""
        return self.num_latents * self.num_categories


def split_halves(num_pixels: int) -> int:
    """Index of the first bottom-half pixel: ``num_pixels // 2`` (``num_pixels`` must be even)."""
    if num_pixels % 2:
        raise ValueError(f"structured prediction needs an even number of pixels, got {num_pixels}")
    return num_pixels // 2


def init_params(config: StructuredPredictionConfig, data_mean: np.ndarray) -> dict[str, np.ndarray]:
    """Initial values of every parameter, by name (NumPy, float64)."""
    rng = np.random.default_rng(config.seed)
    half = split_halves(np.shape(data_mean)[-1])
    bottom_mean = np.asarray(data_mean)[half:]
    return {
        **init_mlp(rng, "encoder", [half, config.hidden_size, config.code_size]),
        **init_mlp(
            rng,
            "decoder",
            [config.code_size, config.hidden_size, bottom_mean.shape[-1]],
            out_bias=logit_mean(bottom_mean),
        ),
    }


def make_model_guide(
    ppl: PPL, config: StructuredPredictionConfig, data_mean: np.ndarray
) -> tuple[Callable[..., None], Callable[..., None]]:
    """The model and guide, written once for either backend.

    Args:
        ppl: The backend namespace (:func:`~models._ppl.numpyro_ppl` or ``pyro_ppl``).
        config: Sizes.
        data_mean: Training mean per pixel of the *whole* image, ``[D]``.

    Returns:
        ``(model, guide)``, both called as ``fn(x, num_data=None)`` with ``x`` a ``[B, D]`` batch
        of whole binary images (the top half is the input, the bottom half the target).
    """
    init = init_params(config, data_mean)
    half = split_halves(np.shape(data_mean)[-1])
    top_mean = np.asarray(data_mean)[:half]
    encoder = ppl.mlp("encoder", init, NUM_LAYERS)
    decoder = ppl.mlp("decoder", init, NUM_LAYERS)
    dist = ppl.dist
    latent_shape = (config.num_latents, config.num_categories)

    def code_logits(x: Any) -> Any:
        h = encoder(x[..., :half] - ppl.constant(top_mean, x))
        return h.reshape(tuple(h.shape[:-1]) + latent_shape)

    def model(x: Any, num_data: int | None = None) -> None:
        with ppl.data_plate(x.shape[-2], num_data):
            # the guide's own distribution, detached: log p(z) - log q(z) = 0, no extra gradient
            logits = ppl.stop_gradient(code_logits(x))
            z = ppl.sample("z", dist.Categorical(logits=logits).to_event(1))
            out = decoder(ppl.one_hot_flat(z, config.num_categories, x))
            ppl.sample("x_bottom", dist.Bernoulli(logits=out).to_event(1), obs=x[..., half:])

    def guide(x: Any, num_data: int | None = None) -> None:
        with ppl.data_plate(x.shape[-2], num_data):
            ppl.sample("z", dist.Categorical(logits=code_logits(x)).to_event(1))

    return model, guide


def numpyro_model_guide(
    config: StructuredPredictionConfig, data_mean: np.ndarray
) -> tuple[Callable[..., None], Callable[..., None]]:
    """NumPyro model and guide (weights are ``numpyro.param`` sites); see :func:`make_model_guide`."""
    return make_model_guide(numpyro_ppl(), config, data_mean)


def pyro_model_guide(
    config: StructuredPredictionConfig, data_mean: np.ndarray
) -> tuple[Callable[..., None], Callable[..., None]]:
    """Pyro model and guide (``pyro.module``-registered MLPs); see :func:`make_model_guide`."""
    return make_model_guide(pyro_ppl(), config, data_mean)
