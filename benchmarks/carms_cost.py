"""What CARMS with the default settings costs next to LOORF, at several category counts ``K``.

``python -m benchmarks.carms_cost`` builds the linear categorical VAE (``L = 20`` latents of ``K``
categories; default data: Fashion-MNIST if installed, else digits), batch 50, ``n = 4`` particles,
and for each ``K`` in ``--k-sizes`` measures, side by side in one run:

* the **step time** of ``TraceARMS_ELBO()`` with the default settings (CARMS at the categorical
  site, :data:`ppl_arms.config.EstimatorConfig` defaults) and of ``estimator="loorf"``, in both
  backends (NumPyro under ``jit``, Pyro eager with vectorised particles). The two losses are run
  **interleaved**, round after round, and the ratio is the median over rounds of the per-round
  ratio of median step times (paired by round, so load that drifts between rounds cancels);
* the **gradient variance** of the guide (mean per-coordinate variance over ``--replicates``
  estimates at the initial parameters, in the first of ``--backends``) of both losses, and their
  ratio;
* the **work-normalised variance** ratio, variance x step time, CARMS over LOORF.

The verdict compares the step ratios with the targets of :data:`TARGETS` (issue: ``<= 1.3`` at
``K = 10``, ``<= 2`` at ``K = 50``, ``<= 5`` at ``K = 200``) and the variance ratio with 1.
``--quick`` runs one step per loss in Pyro at ``K = 3`` on digits (the smoke test).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._precision import float32
from benchmarks.compare import _init_params
from benchmarks.runners import (
    guide_variance,
    host_loss_warnings_silenced,
    make_runner,
    train_batches,
)
from models import build_model
from models.data import dynamic_binarize, get_dataset

__all__ = ["TARGETS", "main"]

TARGETS = {10: 1.3, 50: 2.0, 200: 5.0}
"""Allowed ratio of the default CARMS step time to LOORF's, by ``K`` (issue targets)."""

LOSS_OPTIONS = {"carms": {}, "loorf": {"estimator": "loorf"}}
"""The two losses compared: the defaults (CARMS at categorical sites) and LOORF."""

MODEL = "categorical_vae_linear"


def _loss(backend: str, name: str, n: int) -> Any:
    if backend == "numpyro":
        import ppl_arms.numpyro as ours

        return ours.TraceARMS_ELBO(n, **LOSS_OPTIONS[name])
    import ppl_arms.pyro as ours

    return ours.TraceARMS_ELBO(n, max_plate_nesting=1, **LOSS_OPTIONS[name])


class _Stepper:
    """One loss's SVI step on the categorical VAE, ready to be timed (as in benchmarks.speed)."""

    def __init__(self, backend: str, name: str, data: Any, k: int, n: int, seed: int) -> None:
        self.backend = backend
        model, guide = build_model(MODEL, backend, data.train_mean, num_categories=k)
        self.batches = train_batches(data, 50, 10**9, seed)
        loss = _loss(backend, name, n)
        if backend == "numpyro":
            import jax
            import jax.numpy as jnp
            from numpyro.infer import SVI
            from numpyro.optim import Adam

            self.jnp = jnp
            svi = SVI(model, guide, Adam(1e-3), loss)
            with host_loss_warnings_silenced():
                self.state = svi.init(jax.random.key(seed), jnp.asarray(next(self.batches)))
            self.update = jax.jit(svi.update)
        else:
            import pyro
            import torch

            self.torch = torch
            pyro.clear_param_store()
            self.svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss)
        self.step(next(self.batches))  # compile / warm up
        self.store = self._save()

    def _save(self) -> Any:
        if self.backend == "pyro":
            import pyro

            return pyro.get_param_store().get_state()
        return None

    def step(self, x: Any) -> None:
        if self.backend == "numpyro":
            self.state, value = self.update(self.state, self.jnp.asarray(x))
            float(value)  # blocks until done
        else:
            self.svi.step(self.torch.as_tensor(x))


def step_ratio(backend: str, data: Any, k: int, args: argparse.Namespace) -> dict[str, Any]:
    """Median step times and the paired-by-round ratio CARMS/LOORF at one ``K``."""
    import pyro

    steppers = {
        name: _Stepper(backend, name, data, k, args.num_particles, args.seed)
        for name in LOSS_OPTIONS
    }
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(args.rounds):
        for name, stepper in steppers.items():
            if backend == "pyro":
                pyro.get_param_store().set_state(stepper.store)
            for _ in range(args.steps):
                x = next(stepper.batches)  # binarising the batch is not part of the step
                t = time.perf_counter()
                stepper.step(x)
                times[name].append(time.perf_counter() - t)
            stepper.store = stepper._save()
    rounds = {
        name: np.median(np.reshape(v, (args.rounds, args.steps)), axis=1)
        for name, v in times.items()
    }
    paired = rounds["carms"] / rounds["loorf"]
    return {
        "median_seconds": {name: float(np.median(v)) for name, v in times.items()},
        "paired_ratio_quartiles": [float(x) for x in np.quantile(paired, [0.25, 0.5, 0.75])],
    }


def variance_ratio(backend: str, data: Any, k: int, args: argparse.Namespace) -> dict[str, float]:
    """Guide-gradient variance of both losses at the initial parameters."""
    rng = np.random.default_rng(args.seed)
    batch = dynamic_binarize(data.train[:50], rng)
    runner = make_runner(backend, MODEL, data, 1e-3, num_categories=k)
    params = _init_params(backend, runner, batch, args.seed)
    out = {
        name: guide_variance(
            runner.variance(
                _loss(backend, name, args.num_particles), params, batch, args.replicates, 1
            )
        )
        for name in LOSS_OPTIONS
    }
    return {**out, "ratio": out["carms"] / out["loorf"]}


def _dataset(name: str | None) -> Any:
    if name is not None:
        return get_dataset(name)
    try:
        return get_dataset("fashion_mnist")
    except FileNotFoundError:
        return get_dataset("digits")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, measure, print and write the table."""
    from ppl_arms.config import EstimatorConfig

    p = argparse.ArgumentParser(
        prog="python -m benchmarks.carms_cost", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--backends", type=lambda s: s.split(","), default=["numpyro", "pyro"])
    p.add_argument(
        "--k-sizes", type=lambda s: [int(x) for x in s.split(",")], default=sorted(TARGETS)
    )
    p.add_argument("--dataset", default=None, help="default: fashion_mnist if installed")
    p.add_argument("--num-particles", type=int, default=4)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--replicates", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    p.add_argument("--out", default="results/carms_cost")
    args = p.parse_args(argv)
    if args.quick:
        args.dataset, args.k_sizes, args.rounds, args.steps, args.replicates = (
            "digits",
            [3],
            1,
            1,
            4,
        )
        args.backends = ["pyro"]
    data = _dataset(args.dataset)
    args.dataset = data.name
    coupling = EstimatorConfig().categorical_coupling
    out: dict[str, Any] = {"config": vars(args), "default_coupling": coupling, "results": {}}
    lines = [
        f"### Default CARMS (`categorical_coupling={coupling!r}`) vs LOORF: linear categorical VAE "
        f"({data.num_pixels} pixels, 20 x K latents), batch 50, n = {args.num_particles}, "
        f"{args.rounds} interleaved rounds of {args.steps} steps",
        "",
        "| K | backend | CARMS step (ms) | LOORF step (ms) | CARMS / LOORF, paired (quartiles) "
        "| target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    variance_lines = [
        "",
        f"Gradient variance at the initial parameters ({args.backends[0]}, "
        f"{args.replicates} estimates):",
        "",
        "| K | variance CARMS / LOORF | work-normalised (variance x step), NumPyro | Pyro |",
        "|---|---|---|---|",
    ]
    for k in args.k_sizes:
        row: dict[str, Any] = {}
        for backend in args.backends:
            with float32(backend):
                row[backend] = step_ratio(backend, data, k, args)
            q = row[backend]["paired_ratio_quartiles"]
            med = row[backend]["median_seconds"]
            target = TARGETS.get(k)
            verdict = "-" if target is None else ("met" if q[1] <= target else "MISSED")
            lines.append(
                f"| {k} | {backend} | {1000 * med['carms']:.2f} | {1000 * med['loorf']:.2f} "
                f"| {q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f}) | {target or '-'} | {verdict} |"
            )
        with float32(args.backends[0]):
            row["variance"] = variance_ratio(args.backends[0], data, k, args)
        ratio = row["variance"]["ratio"]
        work = [
            f"{ratio * row[b]['paired_ratio_quartiles'][1]:.2f}" if b in row else "-"
            for b in ("numpyro", "pyro")
        ]
        variance_lines.append(f"| {k} | {ratio:.3f} | {work[0]} | {work[1]} |")
        out["results"][str(k)] = row
    text = "\n".join(lines + variance_lines)
    path = Path(args.out)
    path.mkdir(parents=True, exist_ok=True)
    (path / "carms_cost.md").write_text(text)
    (path / "carms_cost.json").write_text(json.dumps(out, indent=1))
    print(text)
    return out


if __name__ == "__main__":
    main()
