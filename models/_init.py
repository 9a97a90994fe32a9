"""Backend-neutral initial parameter values (NumPy), shared by the Pyro and NumPyro builds.

Weights are Glorot-uniform, drawn from a seeded :class:`numpy.random.Generator` in a fixed
order, biases are zero, and decoder output biases are the data's logit mean, as in the ARMS and
CARMS reference code (``initialize_with_bias``). Both backends start from the very same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "LEAKY_RELU_SLOPE",
    "MEAN_CLIP",
    "glorot_uniform",
    "init_mlp",
    "layer_names",
    "logit_mean",
]

LEAKY_RELU_SLOPE = 0.3
"""Negative slope of the LeakyReLU between hidden layers (ARMS/CARMS code)."""

MEAN_CLIP = 1e-3
"""The data mean is clipped to ``[MEAN_CLIP, 1 - MEAN_CLIP]`` before taking its logit."""

_GLOROT_NUMERATOR = 6.0
"""Glorot-uniform limit: ``sqrt(6 / (fan_in + fan_out))``."""


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    """A ``[fan_in, fan_out]`` Glorot-uniform (Xavier) weight matrix in float64."""
    limit = np.sqrt(_GLOROT_NUMERATOR / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def layer_names(prefix: str, num_layers: int) -> list[tuple[str, str]]:
    """``[(f"{prefix}.{i}.weight", f"{prefix}.{i}.bias") for i in range(num_layers)]``."""
    return [(f"{prefix}.{i}.weight", f"{prefix}.{i}.bias") for i in range(num_layers)]


def init_mlp(
    rng: np.random.Generator,
    prefix: str,
    sizes: Sequence[int],
    out_bias: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Initial weights of an MLP with layer widths ``sizes`` (input first, output last).

    Args:
        rng: Seeded generator; weights are drawn layer by layer.
        prefix: Name prefix, e.g. ``"encoder"``.
        sizes: ``[fan_in, hidden..., fan_out]``; ``len(sizes) - 1`` affine layers.
        out_bias: Initial bias of the last layer (zeros if ``None``).

    Returns:
        ``{f"{prefix}.{i}.weight": [fan_in, fan_out], f"{prefix}.{i}.bias": [fan_out]}``.
    """
    params: dict[str, np.ndarray] = {}
    names = layer_names(prefix, len(sizes) - 1)
    for (w_name, b_name), fan_in, fan_out in zip(names, sizes[:-1], sizes[1:], strict=True):
        params[w_name] = glorot_uniform(rng, fan_in, fan_out)
        params[b_name] = np.zeros(fan_out)
    if out_bias is not None:
        last = names[-1][1]
        params[last] = np.asarray(out_bias, dtype=np.float64).reshape(params[last].shape)
    return params


def logit_mean(data_mean: np.ndarray) -> np.ndarray:
    """``logit(clip(data_mean, MEAN_CLIP, 1 - MEAN_CLIP))``: the decoder's initial output bias."""
    p = np.clip(np.asarray(data_mean, dtype=np.float64), MEAN_CLIP, 1.0 - MEAN_CLIP)
    return np.log(p) - np.log1p(-p)
