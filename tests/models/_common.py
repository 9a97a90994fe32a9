"""Shared sizes and data for the model-zoo tests (digits, tiny layers, small batches)."""

import numpy as np

from models import MODELS, dynamic_binarize

BATCH_SIZE = 6
NUM_PARTICLES = 4
STEP_SIZE = 1e-2

# Tiny sizes per registered model, so each SVI step costs milliseconds.
SMALL = {
    "binary_vae_linear": {"num_latents": 8},
    "binary_vae_nonlinear": {"num_latents": 8, "hidden_size": 12},
    "categorical_vae_linear": {"num_latents": 4, "num_categories": 3},
    "categorical_vae_nonlinear": {"num_latents": 4, "num_categories": 3, "hidden_size": 12},
    "structured_prediction": {"num_latents": 4, "num_categories": 3, "hidden_size": 12},
    "sigmoid_belief_net": {"latent_sizes": (8, 8)},  # site shapes shared with binary_vae
}
assert set(SMALL) == set(MODELS), "every registered model needs tiny test sizes"

MODEL_NAMES = sorted(MODELS)


def binary_batch(digits, size=BATCH_SIZE, seed=0):
    """A float64 [size, 64] batch of dynamically binarised training digits."""
    rng = np.random.default_rng(seed)
    return dynamic_binarize(digits.train[:size].astype(np.float64), rng)
