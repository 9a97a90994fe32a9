"""Backend-neutral estimator mathematics (torch or JAX arrays in, arrays out; noise passed in).

Nothing here imports Pyro or NumPyro. Every function takes arrays with the sample axis first and
works unchanged on ``torch.Tensor`` and ``jax.Array`` (see ``ppl_arms/core/_ops.py``).

The package exports what a user of the estimators needs, and what someone writing or validating a
new estimator calls: the per-site estimator classes, the copulas, each estimator's coefficients,
samplers and pair laws, the gradients and directions they define, the IWAE learning signals and the
gradient carrier (:func:`with_gradient`, :func:`carrier`, :func:`site_carrier`). The helpers behind
them (pair lists, orderings, interval edges, score and signal plumbing of the adapters) stay in
their modules, importable from there but not part of this surface.
"""

from ppl_arms.core.arms import arms_coefficients, arms_debias, arms_pair_probability
from ppl_arms.core.bernoulli import bernoulli_directions, bernoulli_gradient, threshold_sample
from ppl_arms.core.carms import (
    carms_coefficients,
    carms_orderings,
    carms_pair_probability,
    carms_pair_weights,
    carms_sample,
)
from ppl_arms.core.categorical import (
    categorical_directions,
    categorical_gradient,
    pairwise_coefficients,
)
from ppl_arms.core.copulas import (
    Copula,
    DirichletCopula,
    GaussianCopula,
    IndependentCopula,
    NoiseKind,
    antithetic_pairs,
    bivariate_normal_cdf,
)
from ppl_arms.core.disarm import disarm_coefficients
from ppl_arms.core.estimators import (
    ARMS,
    CARMS,
    LOORF,
    REINFORCE,
    RODEO,
    DisARM,
    DistKind,
    DoubleCV,
    GradientInformed,
    NoiseSpec,
    SiteEstimator,
    StickBreakingCARMS,
    directions,
)
from ppl_arms.core.iwae import iwae_bound, leave_one_out_logsumexp, local_signals, vimco_signals
from ppl_arms.core.loorf import loorf_coefficients
from ppl_arms.core.reinforce import reinforce_coefficients
from ppl_arms.core.stick_breaking import (
    stick_breaking_coefficients,
    stick_breaking_pair_weights,
    stick_breaking_sample,
)
from ppl_arms.core.surrogate import carrier, site_carrier, with_gradient

__all__ = [
    "ARMS",
    "CARMS",
    "LOORF",
    "REINFORCE",
    "RODEO",
    "Copula",
    "DirichletCopula",
    "DisARM",
    "DistKind",
    "DoubleCV",
    "GaussianCopula",
    "GradientInformed",
    "IndependentCopula",
    "NoiseKind",
    "NoiseSpec",
    "SiteEstimator",
    "StickBreakingCARMS",
    "antithetic_pairs",
    "arms_coefficients",
    "arms_debias",
    "arms_pair_probability",
    "bernoulli_directions",
    "bernoulli_gradient",
    "bivariate_normal_cdf",
    "carms_coefficients",
    "carms_orderings",
    "carms_pair_probability",
    "carms_pair_weights",
    "carms_sample",
    "carrier",
    "categorical_directions",
    "categorical_gradient",
    "directions",
    "disarm_coefficients",
    "iwae_bound",
    "leave_one_out_logsumexp",
    "local_signals",
    "loorf_coefficients",
    "pairwise_coefficients",
    "reinforce_coefficients",
    "site_carrier",
    "stick_breaking_coefficients",
    "stick_breaking_pair_weights",
    "stick_breaking_sample",
    "threshold_sample",
    "vimco_signals",
    "with_gradient",
]
