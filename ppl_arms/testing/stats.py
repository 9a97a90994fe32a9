"""Standard-error based Monte Carlo checks (tolerances derived from the estimate's own spread)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["MonteCarloCheck", "assert_unbiased", "monte_carlo_moments"]


@dataclass(frozen=True)
class MonteCarloCheck:
    """The result of comparing a Monte Carlo mean with an exact value, cell by cell."""

    mean: np.ndarray
    stderr: np.ndarray
    exact: np.ndarray
    z: np.ndarray
    replicates: int

    @property
    def max_z(self) -> float:
        """Largest absolute z-score over all cells."""
        return float(np.max(np.abs(self.z)))


def monte_carlo_moments(
    draw: Callable[[int], np.ndarray], replicates: int, chunk: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Accumulate mean and variance of ``draw(m) -> [m, ...]`` over ``replicates`` rows in chunks.

    Returns:
        ``(mean, variance, replicates)`` with the per-cell sample variance (ddof 1).
    """
    total = None
    total_sq = None
    count = 0
    while count < replicates:
        m = min(chunk, replicates - count)
        x = np.asarray(draw(m), dtype=np.float64)
        s, s2 = x.sum(axis=0), (x * x).sum(axis=0)
        total = s if total is None else total + s
        total_sq = s2 if total_sq is None else total_sq + s2
        count += m
    mean = total / count
    var = (total_sq - count * mean * mean) / (count - 1)
    return mean, np.maximum(var, 0.0), count


def assert_unbiased(
    samples_or_moments: np.ndarray | tuple[np.ndarray, np.ndarray, int],
    exact: np.ndarray,
    z_max: float = 4.5,
    atol: float = 1e-12,
    what: str = "estimate",
) -> MonteCarloCheck:
    """Assert ``|mean - exact| < z_max * stderr + atol`` in every cell.

    Cells whose standard error is zero (deterministic estimates) must match to ``atol``. With ``C``
    cells and a correct estimator, the chance of a false failure is about ``C * 2 * Phi(-z_max)``
    (``3.4e-6`` per cell at ``z_max = 4.5``).

    Args:
        samples_or_moments: Replicates ``[R, ...]`` or ``(mean, variance, R)``.
        exact: The exact expectation, broadcastable with one replicate.
        z_max: Allowed multiple of the standard error.
        atol: Absolute slack for rounding.
        what: Name used in the failure message.

    Returns:
        The :class:`MonteCarloCheck` (for reporting).
    """
    if isinstance(samples_or_moments, tuple):
        mean, var, r = samples_or_moments
    else:
        x = np.asarray(samples_or_moments, dtype=np.float64)
        r = x.shape[0]
        mean, var = x.mean(axis=0), x.var(axis=0, ddof=1)
    stderr = np.sqrt(var / r)
    exact = np.broadcast_to(np.asarray(exact, dtype=np.float64), mean.shape)
    diff = mean - exact
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(stderr > 0, diff / stderr, np.where(np.abs(diff) <= atol, 0.0, np.inf))
    check = MonteCarloCheck(mean, stderr, exact, z, r)
    bad = np.abs(diff) > z_max * stderr + atol
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what} is biased beyond {z_max} standard errors (max |z| = {check.max_z:.2f}, "
            f"{r} replicates): at cell {idx} mean {mean[idx]:.6g} vs exact {exact[idx]:.6g} "
            f"(stderr {stderr[idx]:.3g})"
        )
    return check
