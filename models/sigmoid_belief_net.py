r"""Sigmoid belief net with two stochastic layers of Bernoulli latents (``200-200`` by default).

**Model.**

.. math::
    z_2\sim\mathrm{Bern}(\sigma(a)),\quad
    z_1\mid z_2\sim\mathrm{Bern}(\sigma(W_2(2z_2-1)+b_2)),\quad
    x\mid z_1\sim\mathrm{Bern}(\sigma(W_1(2z_1-1)+b_1)),

with learnable prior logits :math:`a` (initialised to 0). The layers take :math:`2z-1\in\{-1,1\}`,
the binary VAE's convention; this is the classic affine SBN :math:`Wz+b` with the bias
reparameterised (:math:`W(2z-1)+b=2Wz+(b-W\mathbf 1)`).

**Guide.** :math:`z_1\mid x\sim\mathrm{Bern}(\sigma(E_1(x-\bar x)+c_1))`,
:math:`z_2\mid z_1\sim\mathrm{Bern}(\sigma(E_2(2z_1-1)+c_2))`: the parameters of ``z2`` depend
on each particle's own ``z1``, so this model exercises *dependent* discrete sites. All layers are
affine (Glorot-uniform weights from ``numpy.random.default_rng(seed)``); the output bias starts
at :math:`\mathrm{logit}(\mathrm{clip}(\bar x,0.001,0.999))`.

**Discrete sites.** Guide sites ``"z1"`` (``[B, L1]``) and ``"z2"`` (``[B, L2]``), Bernoulli with
``.to_event(1)`` in the ``"data"`` plate; the observed site is ``"x"``.

**Estimator.** ``TraceGraphARMS_ELBO(estimator="arms")``: ARMS at ``z1``; at ``z2``, whose logits
differ across particles, the coupled draw would be biased, so the NumPyro losses detect this
inside ``jit`` and use i.i.d. samples with LOORF there; the graph version's learning signal for
``z2`` leaves out :math:`\log p(x\mid z_1)`, which does not depend on ``z2``.
``TraceARMS_IWAE`` works as well (one bound per data point).

References:
    R. M. Neal. "Connectionist learning of belief networks." Artificial Intelligence, 1992.
    A. Mnih, K. Gregor. "Neural Variational Inference and Learning in Belief Networks."
    ICML 2014, arXiv:1402.0030. A. Dimitriev, M. Zhou. "ARMS." ICML 2021, arXiv:2105.14141.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from models._init import init_mlp, logit_mean
from models._ppl import PPL, numpyro_ppl, pyro_ppl

__all__ = [
    "SigmoidBeliefNetConfig",
    "init_params",
    "make_model_guide",
    "numpyro_model_guide",
    "pyro_model_guide",
]

_AFFINE = 1
"""Every map of this model is a single affine layer."""


@dataclass(frozen=True)
class SigmoidBeliefNetConfig:
    """Sizes of the two-layer sigmoid belief net.

    Attributes:
        latent_sizes: ``(L1, L2)``: widths of the lower (``z1``, next to ``x``) and upper (``z2``)
            stochastic layers.
        seed: Seed of the NumPy generator that draws the initial weights.
    """

    latent_sizes: tuple[int, int] = (200, 200)
    seed: int = 0


def init_params(config: SigmoidBeliefNetConfig, data_mean: np.ndarray) -> dict[str, np.ndarray]:
    """Initial values of every parameter, by name (NumPy, float64)."""
    rng = np.random.default_rng(config.seed)
    num_pixels = np.shape(data_mean)[-1]
    size1, size2 = config.latent_sizes
    return {
        **init_mlp(rng, "encoder1", [num_pixels, size1]),
        **init_mlp(rng, "encoder2", [size1, size2]),
        **init_mlp(rng, "decoder2", [size2, size1]),
        **init_mlp(rng, "decoder1", [size1, num_pixels], out_bias=logit_mean(data_mean)),
        "prior_logits": np.zeros(size2),
    }


def make_model_guide(
    ppl: PPL, config: SigmoidBeliefNetConfig, data_mean: np.ndarray
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
    encoder1, encoder2, decoder2, decoder1 = (
        ppl.mlp(name, init, _AFFINE) for name in ("encoder1", "encoder2", "decoder2", "decoder1")
    )
    dist = ppl.dist

    def model(x: Any, num_data: int | None = None) -> None:
        prior_logits = ppl.param("prior_logits", init["prior_logits"], x)
        with ppl.data_plate(x.shape[-2], num_data):
            z2 = ppl.sample("z2", dist.Bernoulli(logits=prior_logits).to_event(1))
            z1_logits = decoder2(2.0 * ppl.to_float(z2, x) - 1.0)
            z1 = ppl.sample("z1", dist.Bernoulli(logits=z1_logits).to_event(1))
            x_logits = decoder1(2.0 * ppl.to_float(z1, x) - 1.0)
            ppl.sample("x", dist.Bernoulli(logits=x_logits).to_event(1), obs=x)

    def guide(x: Any, num_data: int | None = None) -> None:
        with ppl.data_plate(x.shape[-2], num_data):
            z1_logits = encoder1(x - ppl.constant(data_mean, x))
            z1 = ppl.sample("z1", dist.Bernoulli(logits=z1_logits).to_event(1))
            z2_logits = encoder2(2.0 * ppl.to_float(z1, x) - 1.0)
            ppl.sample("z2", dist.Bernoulli(logits=z2_logits).to_event(1))

    return model, guide


def numpyro_model_guide(
    config: SigmoidBeliefNetConfig, data_mean: np.ndarray
) -> tuple[Callable[..., None], Callable[..., None]]:
    """NumPyro model and guide (weights are ``numpyro.param`` sites); see :func:`make_model_guide`."""
    return make_model_guide(numpyro_ppl(), config, data_mean)


def pyro_model_guide(
    config: SigmoidBeliefNetConfig, data_mean: np.ndarray
) -> tuple[Callable[..., None], Callable[..., None]]:
    """Pyro model and guide (``pyro.module``-registered MLPs); see :func:`make_model_guide`."""
    return make_model_guide(pyro_ppl(), config, data_mean)
