r"""Toy gradient-variance benchmarks of the ARMS and CARMS papers, measured with :mod:`ppl_arms.core`.

Two problems, each estimated ``R`` times independently at fixed parameters; the reported number is
the variance across the ``R`` estimates of the gradient with respect to the logits.

**ARMS toy** (binary). One Bernoulli variable with probability ``p`` and
:math:`f(z)=(z-0.49)^2`, so the exact gradient with respect to the logit is
:math:`p(1-p)\,(1-2\cdot0.49)`. For a grid of 49 values of ``p`` in ``(0, 1)`` and for
``N in {2, 4, 6, 8, 10}`` function evaluations per estimate: ARMS with the Dirichlet copula
(ARMS-D, ``n = N``), ARMS with the Gaussian copula (ARMS-N, ``n = N``), DisARM with ``N/2``
independent antithetic pairs, and LOORF with ``N`` i.i.d. samples.

**CARMS toy** (categorical). ``D = 3`` independent categorical variables with ``K = 3`` classes,
``n = 3`` samples, and the linear :math:`f(z)=\sum_{d,c}C_{dc}\,[z_d=c]` with
``C = [[3, 6, 9], [12, 15, 18], [21, 24, 27]]``. The probabilities of each variable are one draw
from ``Dirichlet(alpha * 1)`` (NumPy generator seeded with 1, re-seeded for every ``alpha``), the
logits are ``log p``, and ``alpha in {1, 10, 100, 1000}``. Estimators: CARMS-I with the Dirichlet
and the Gaussian copula, CARMS with the stick-breaking coupling (Dirichlet copula), and LOORF.
Reported: the log-variance of each of the 9 logits' gradients.

All noise is drawn with NumPy generators (one per problem, ``N`` and estimator, derived from
``--seed``) and converted to float64 torch tensors; the estimators are the core's
:class:`~ppl_arms.core.SiteEstimator` objects (``noise_specs`` / ``coupling`` / ``sample`` /
``coefficients``). Every cell's Monte Carlo mean is also compared with the exact gradient (the
largest absolute z-score is stored in the JSON as an unbiasedness sanity check).

Run::

    python -m benchmarks.toy [--out docs/results/toy] [--replicates R] [--seed S]

Outputs in ``--out``: ``toy_arms.png``, ``toy_carms.png``, ``toy.json`` (all numbers) and
``toy.md`` (the tables, which are also printed).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ppl_arms.core import (
    ARMS,
    CARMS,
    LOORF,
    DirichletCopula,
    DisARM,
    GaussianCopula,
    NoiseKind,
    NoiseSpec,
    SiteEstimator,
    StickBreakingCARMS,
    bernoulli_gradient,
    categorical_gradient,
    threshold_sample,
)
from ppl_arms.version import __version__

__all__ = [
    "ARMS_ESTIMATORS",
    "ARMS_EVALUATIONS",
    "CARMS_ALPHAS",
    "CARMS_ESTIMATORS",
    "arms_toy",
    "carms_toy",
    "main",
]

# --- ARMS toy -------------------------------------------------------------------------------------
ARMS_TARGET = 0.49
"""The constant in :math:`f(z)=(z-0.49)^2`."""
ARMS_EVALUATIONS = (2, 4, 6, 8, 10)
"""Total function evaluations ``N`` per gradient estimate."""
P_GRID_DENOMINATOR = 50
"""The ``p`` grid is ``1/50, 2/50, ..., 49/50`` (49 points, ``p = 1/2`` exactly included)."""

ARMS_ESTIMATORS: dict[str, Callable[[], SiteEstimator]] = {
    "ARMS-D": lambda: ARMS(DirichletCopula()),
    "ARMS-N": lambda: ARMS(GaussianCopula()),
    "DisARM": DisARM,
    "LOORF": LOORF,
}
"""Binary estimators compared at equal evaluations (DisARM uses ``N/2`` pairs)."""

# --- CARMS toy ------------------------------------------------------------------------------------
CARMS_COEFFICIENTS = np.array([[3.0, 6.0, 9.0], [12.0, 15.0, 18.0], [21.0, 24.0, 27.0]])
"""``C[d, c]`` of the linear :math:`f(z)=\\sum_{d,c}C_{dc}[z_d=c]` (``D = K = 3``)."""
CARMS_ALPHAS = (1.0, 10.0, 100.0, 1000.0)
"""Dirichlet concentrations of the categorical probabilities."""
CARMS_SAMPLES = 3
"""Samples ``n`` per estimate."""
CARMS_PROBS_SEED = 1
"""Seed of the NumPy generator that draws the probabilities (as in the reference toy)."""
LOG_VARIANCE_OFFSET = 1e-12
"""Added before taking logs, ``log(Var + 1e-12)``, as in the reference code's plot."""

CARMS_ESTIMATORS: dict[str, Callable[[], SiteEstimator]] = {
    "CARMS-I (Dirichlet)": lambda: CARMS(DirichletCopula()),
    "CARMS-I (Gaussian)": lambda: CARMS(GaussianCopula()),
    "CARMS-SB (Dirichlet)": lambda: StickBreakingCARMS(DirichletCopula()),
    "LOORF": LOORF,
}
"""Categorical estimators compared at ``n = 3`` (SB: stick-breaking coupling)."""

# --- run settings ---------------------------------------------------------------------------------
DEFAULT_REPLICATES = 20_000
DEFAULT_SEED = 0
DEFAULT_OUT = Path("docs/results/toy")
ZERO_VARIANCE_RTOL = 1e-12
"""Plotted variances below this fraction of the panel's largest are rounding noise of an exactly
zero variance (DisARM, and every estimator with ``N = 2``, at ``p = 1/2``) and are left out."""
Z_SCORE_ATOL = 1e-12
"""Absolute slack for rounding when comparing a mean with the exact gradient (zero-variance cells)."""
CHUNK_ELEMENTS = 1_000_000
"""Upper bound on ``replicates x elements`` per chunk, which bounds the memory of one call."""
_ARMS_PROBLEM, _CARMS_PROBLEM = 0, 1


@dataclass(frozen=True)
class Moments:
    """Mean, variance (ddof 1) and the largest |z| against the exact gradient, per cell.

    ``max_abs_z`` skips cells with zero sample variance (possible with very few replicates).
    """

    mean: np.ndarray
    variance: np.ndarray
    max_abs_z: float


def _noise(rng: np.random.Generator, spec: NoiseSpec) -> torch.Tensor:
    draw = rng.standard_normal if spec.kind is NoiseKind.NORMAL else rng.random
    return torch.from_numpy(draw(spec.shape))


def _coupled_or_iid(
    estimator: SiteEstimator,
    n: int,
    logits: torch.Tensor,
    shape: tuple[int, ...],
    num_categories: int,
    rng: np.random.Generator,
    iid: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``n`` samples per element: the estimator's coupling, or i.i.d. for LOORF."""
    if estimator.coupled:
        specs = estimator.noise_specs(n, shape, num_categories)
        coupled = estimator.coupling(tuple(_noise(rng, s) for s in specs))
        return estimator.sample(coupled, logits)
    return iid(torch.from_numpy(rng.random((n, *shape))), logits)


def _iid_categorical(u: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    cdf = torch.cumsum(torch.softmax(logits, -1), -1)[..., :-1]
    return (u[..., None] >= cdf).sum(-1)


def _moments(
    gradient: Callable[[int], np.ndarray], replicates: int, chunk: int, exact: np.ndarray
) -> Moments:
    draws = []
    done = 0
    while done < replicates:
        m = min(chunk, replicates - done)
        draws.append(gradient(m))
        done += m
    g = np.concatenate(draws)
    mean, variance = g.mean(axis=0), g.var(axis=0, ddof=1)
    stderr = np.sqrt(variance / replicates)
    excess = np.maximum(np.abs(mean - exact) - Z_SCORE_ATOL, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A cell whose estimates all agree (zero sample variance) has no usable standard error.
        z = np.where((excess > 0) & (stderr > 0), excess / stderr, 0.0)
    return Moments(mean, variance, float(np.max(z)))


def _generator(seed: int, problem: int, setting: int, estimator: int) -> np.random.Generator:
    return np.random.default_rng([seed, problem, setting, estimator])


def _arms_gradients(
    m: int, estimator: SiteEstimator, n: int, logits: torch.Tensor, rng: np.random.Generator
) -> np.ndarray:
    """``m`` independent ARMS-toy gradient estimates at every grid point, ``[m, P]``."""
    shape = (m, *logits.shape)
    z = _coupled_or_iid(estimator, n, logits, shape, 2, rng, threshold_sample)
    f = (z - ARMS_TARGET) ** 2
    return bernoulli_gradient(estimator.coefficients(f, z, logits), z, logits).numpy()


def _carms_gradients(
    m: int, estimator: SiteEstimator, logits: torch.Tensor, rng: np.random.Generator
) -> np.ndarray:
    """``m`` independent CARMS-toy gradient estimates, ``[m, D, K]``."""
    d, k = logits.shape
    full = logits.expand(m, d, k)
    z = _coupled_or_iid(estimator, CARMS_SAMPLES, full, (m, d), k, rng, _iid_categorical)
    f = torch.from_numpy(CARMS_COEFFICIENTS)[torch.arange(d), z].sum(-1)  # [n, m]
    c = estimator.coefficients(f[..., None], z, full)
    return categorical_gradient(c, z, full).numpy()


def p_grid() -> np.ndarray:
    """The 49 probabilities of the ARMS toy."""
    return np.arange(1, P_GRID_DENOMINATOR) / P_GRID_DENOMINATOR


def arms_toy(
    replicates: int = DEFAULT_REPLICATES,
    seed: int = DEFAULT_SEED,
    evaluations: Sequence[int] = ARMS_EVALUATIONS,
    estimators: Sequence[str] = tuple(ARMS_ESTIMATORS),
) -> dict:
    """Gradient variance of the binary estimators over the ``p`` grid.

    Returns:
        ``{"p": [...], "exact": [...], "results": {N: {name: {...}}}}`` with per-``p`` variance and
        mean, their mean over ``p``, and the largest |z| of the mean against the exact gradient.
    """
    p = p_grid()
    logits = torch.from_numpy(np.log(p) - np.log1p(-p))
    exact = p * (1 - p) * (1 - 2 * ARMS_TARGET)
    results: dict[int, dict[str, dict]] = {}
    for n in evaluations:
        results[n] = {}
        chunk = max(1, CHUNK_ELEMENTS // (n * len(p)))
        for e, name in enumerate(estimators):
            est = ARMS_ESTIMATORS[name]()
            rng = _generator(seed, _ARMS_PROBLEM, n, e)

            draw = partial(_arms_gradients, estimator=est, n=n, logits=logits, rng=rng)
            mom = _moments(draw, replicates, chunk, exact)
            results[n][name] = {
                "variance": mom.variance.tolist(),
                "mean": mom.mean.tolist(),
                "mean_variance": float(mom.variance.mean()),
                "max_abs_z": mom.max_abs_z,
            }
    return {"p": p.tolist(), "exact": exact.tolist(), "results": results}


def carms_probabilities(alpha: float) -> np.ndarray:
    """The ``[D, K]`` probabilities of the CARMS toy for one concentration."""
    d, k = CARMS_COEFFICIENTS.shape
    return np.random.default_rng(CARMS_PROBS_SEED).dirichlet(alpha * np.ones(k), size=d)


def carms_toy(
    replicates: int = DEFAULT_REPLICATES,
    seed: int = DEFAULT_SEED,
    alphas: Sequence[float] = CARMS_ALPHAS,
    estimators: Sequence[str] = tuple(CARMS_ESTIMATORS),
) -> dict:
    """Per-logit gradient log-variance of the categorical estimators for each ``alpha``.

    Returns:
        ``{alpha: {"probs": ..., "results": {name: {...}}}}`` with the 9 variances, their logs
        (``log(Var + 1e-12)``), the median and standard deviation of the logs, and the largest |z|.
    """
    d, k = CARMS_COEFFICIENTS.shape
    n = CARMS_SAMPLES
    chunk = max(1, CHUNK_ELEMENTS // (n * n * d * k * k))
    out: dict[float, dict] = {}
    for a, alpha in enumerate(alphas):
        probs = carms_probabilities(alpha)
        base_logits = torch.from_numpy(np.log(probs))
        exact = probs * (CARMS_COEFFICIENTS - (probs * CARMS_COEFFICIENTS).sum(-1, keepdims=True))
        rows: dict[str, dict] = {}
        for e, name in enumerate(estimators):
            est = CARMS_ESTIMATORS[name]()
            rng = _generator(seed, _CARMS_PROBLEM, a, e)

            draw = partial(_carms_gradients, estimator=est, logits=base_logits, rng=rng)
            mom = _moments(draw, replicates, chunk, exact)
            log_var = np.log(mom.variance + LOG_VARIANCE_OFFSET).ravel()
            rows[name] = {
                "variance": mom.variance.ravel().tolist(),
                "log_variance": log_var.tolist(),
                "median_log_variance": float(np.median(log_var)),
                "std_log_variance": float(np.std(log_var)),
                "max_abs_z": mom.max_abs_z,
            }
        entropy = float(-(probs * np.log(probs)).sum(-1).mean())
        out[alpha] = {"probs": probs.tolist(), "mean_entropy": entropy, "results": rows}
    return out


# --- reporting ------------------------------------------------------------------------------------


def arms_table(arms: dict) -> str:
    """Markdown table: mean variance over ``p``, ratio to LOORF, share of ``p`` below LOORF."""
    lines = [
        "| N | estimator | mean variance over p | ratio to LOORF | p points below LOORF |",
        "|---|---|---|---|---|",
    ]
    for n, by_est in arms["results"].items():
        ref = by_est.get("LOORF")
        for name, r in by_est.items():
            ratio = r["mean_variance"] / ref["mean_variance"] if ref else math.nan
            if ref and name != "LOORF":
                below = np.less(r["variance"], ref["variance"])
                share = f"{int(below.sum())}/{below.size}"
            else:
                share = "–"
            lines.append(f"| {n} | {name} | {r['mean_variance']:.3e} | {ratio:.3f} | {share} |")
    return "\n".join(lines)


def carms_table(carms: dict) -> str:
    """Markdown table: median ± std of the 9 log-variances per estimator and ``alpha``."""
    names = list(next(iter(carms.values()))["results"])
    lines = [
        "| estimator | " + " | ".join(f"α = {alpha:g}" for alpha in carms) + " |",
        "|---|" + "---|" * len(carms),
    ]
    for name in names:
        cells = [
            f"{v['results'][name]['median_log_variance']:.2f} ± "
            f"{v['results'][name]['std_log_variance']:.2f}"
            for v in carms.values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_arms(arms: dict, path: Path) -> None:
    """Variance against ``p`` (log scale), one panel per ``N``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = np.asarray(arms["p"])
    panels = list(arms["results"].items())
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, (n, by_est) in zip(axes[0], panels, strict=True):
        floor = ZERO_VARIANCE_RTOL * max(max(r["variance"]) for r in by_est.values())
        for name, r in by_est.items():
            var = np.asarray(r["variance"])
            ax.plot(p, np.where(var > floor, var, np.nan), label=name, lw=1.4)
        ax.set_yscale("log")
        ax.set_title(f"N = {n} evaluations")
        ax.set_xlabel("p")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("gradient variance")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("f(z) = (z - 0.49)², z ~ Bernoulli(p)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_carms(carms: dict, path: Path) -> None:
    """Boxplots of the 9 per-logit log-variances, one panel per ``alpha``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(carms.items())
    fig, axes = plt.subplots(1, len(panels), figsize=(3.9 * len(panels), 3.8), squeeze=False)
    for ax, (alpha, v) in zip(axes[0], panels, strict=True):
        names = list(v["results"])
        data = [v["results"][name]["log_variance"] for name in names]
        ax.boxplot(data)
        ax.set_xticks(range(1, len(names) + 1), [nm.replace(" ", "\n") for nm in names], fontsize=7)
        ax.set_title(f"α = {alpha:g} (mean entropy {v['mean_entropy']:.2f})", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("log gradient variance per logit")
    fig.suptitle("CARMS toy: D = 3, K = 3, n = 3")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--replicates", type=int, default=DEFAULT_REPLICATES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.replicates < 2:
        parser.error("--replicates must be at least 2 (a variance needs two estimates)")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    """Run both toys, write the figures, JSON and Markdown, and print the tables."""
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    arms = arms_toy(args.replicates, args.seed)
    arms_seconds = time.perf_counter() - start
    carms = carms_toy(args.replicates, args.seed)
    carms_seconds = time.perf_counter() - start - arms_seconds
    plot_arms(arms, args.out / "toy_arms.png")
    plot_carms(carms, args.out / "toy_carms.png")

    command = "python -m benchmarks.toy"
    if args.out != DEFAULT_OUT:
        command += f" --out {args.out}"
    command += f" --replicates {args.replicates} --seed {args.seed}"
    tables = (
        f"# Toy gradient-variance benchmarks\n\n"
        f"Generated by `{command}` (ppl_arms {__version__}, {args.replicates} independent "
        f"estimates per cell).\n\n"
        f"## ARMS toy: f(z) = (z - 0.49)^2, 49 values of p\n\n{arms_table(arms)}\n\n"
        f"## CARMS toy: median ± std of log(Var + 1e-12) over the 9 logits (n = 3)\n\n"
        f"{carms_table(carms)}\n"
    )
    (args.out / "toy.md").write_text(tables)
    record = {
        "command": command,
        "version": __version__,
        "replicates": args.replicates,
        "seed": args.seed,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "seconds": {"arms": round(arms_seconds, 1), "carms": round(carms_seconds, 1)},
        "arms": {**arms, "results": {str(n): r for n, r in arms["results"].items()}},
        "carms": {f"{alpha:g}": v for alpha, v in carms.items()},
    }
    (args.out / "toy.json").write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    print(tables)
    print(f"ARMS toy {arms_seconds:.1f} s, CARMS toy {carms_seconds:.1f} s; wrote {args.out}")
    return record


if __name__ == "__main__":
    main(sys.argv[1:])
