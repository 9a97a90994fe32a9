"""Testing helpers shipped with ppl_arms: exact-enumeration oracles and standard-error checks.

Users adding their own estimators can validate them with the same tools the test suite uses.
"""

from ppl_arms.testing.factorized import (
    conditional_means,
    enumerate_configurations,
    exact_gradient,
    pairwise_expectation,
)
from ppl_arms.testing.stats import MonteCarloCheck, assert_unbiased, monte_carlo_moments

__all__ = [
    "MonteCarloCheck",
    "assert_unbiased",
    "conditional_means",
    "enumerate_configurations",
    "exact_gradient",
    "monte_carlo_moments",
    "pairwise_expectation",
]
