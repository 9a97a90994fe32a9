"""Backend-neutral estimator mathematics (torch or JAX arrays in, arrays out; noise passed in).

Nothing here imports Pyro or NumPyro. Every function takes arrays with the sample axis first and
works unchanged on ``torch.Tensor`` and ``jax.Array`` (see ``ppl_arms/core/_ops.py``).
"""

from ppl_arms.core.arms import arms_coefficients, arms_debias, arms_pair_probability
from ppl_arms.core.bernoulli import (
    BernoulliParts,
    bernoulli_directions,
    bernoulli_gradient,
    bernoulli_parts,
    threshold_sample,
)
from ppl_arms.core.carms import (
    carms_coefficients,
    carms_orderings,
    carms_pair_list_weights,
    carms_pair_probability,
    carms_pair_weights,
    carms_sample,
    interval_edges,
    ordering_index,
)
from ppl_arms.core.categorical import (
    categorical_directions,
    categorical_gradient,
    categorical_score,
    dense_pair_weights,
    pair_list_coefficients,
    pairwise_coefficients,
    sample_pairs,
)
from ppl_arms.core.copulas import (
    NORMAL_QUANTILE_BOUND,
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
    DisARM,
    DistKind,
    NoiseSpec,
    SiteEstimator,
    StickBreakingCARMS,
    directions,
    independent_uniforms,
)
from ppl_arms.core.iwae import iwae_bound, leave_one_out_logsumexp, local_signals, vimco_signals
from ppl_arms.core.loorf import loorf_coefficients
from ppl_arms.core.reinforce import reinforce_coefficients
from ppl_arms.core.stick_breaking import (
    stick_breaking_coefficients,
    stick_breaking_noise_shape,
    stick_breaking_pair_list_weights,
    stick_breaking_pair_weights,
    stick_breaking_sample,
)
from ppl_arms.core.surrogate import (
    carrier,
    finite_signals,
    logit_score,
    score_carrier,
    site_carrier,
    site_coefficients,
    summed_directions,
    with_gradient,
)

__all__ = [
    "ARMS",
    "CARMS",
    "LOORF",
    "NORMAL_QUANTILE_BOUND",
    "REINFORCE",
    "BernoulliParts",
    "Copula",
    "DirichletCopula",
    "DisARM",
    "DistKind",
    "GaussianCopula",
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
    "bernoulli_parts",
    "bivariate_normal_cdf",
    "carms_coefficients",
    "carms_orderings",
    "carms_pair_list_weights",
    "carms_pair_probability",
    "carms_pair_weights",
    "carms_sample",
    "carrier",
    "categorical_directions",
    "categorical_gradient",
    "categorical_score",
    "dense_pair_weights",
    "directions",
    "disarm_coefficients",
    "finite_signals",
    "independent_uniforms",
    "interval_edges",
    "iwae_bound",
    "leave_one_out_logsumexp",
    "local_signals",
    "logit_score",
    "loorf_coefficients",
    "ordering_index",
    "pair_list_coefficients",
    "pairwise_coefficients",
    "reinforce_coefficients",
    "sample_pairs",
    "score_carrier",
    "site_carrier",
    "site_coefficients",
    "stick_breaking_coefficients",
    "stick_breaking_noise_shape",
    "stick_breaking_pair_list_weights",
    "stick_breaking_pair_weights",
    "stick_breaking_sample",
    "summed_directions",
    "threshold_sample",
    "vimco_signals",
    "with_gradient",
]
