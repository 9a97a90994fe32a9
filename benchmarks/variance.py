"""Gradient variance of every estimator at fixed checkpoints, as ratios to LOORF and TraceGraph.

``python -m benchmarks.variance`` measures, for the binary and the categorical VAE (linear) in both
backends, at two checkpoints shared by all estimators (the initial parameters, and the parameters
after ``--train-steps`` steps of training with ARMS), and for ``n in {2, 4, 8}`` evaluations per data
point, the mean per-coordinate variance of the guide (encoder) gradient over ``R`` independent
estimates on one fixed minibatch. Ratios are to LOORF at the same ``n`` and to the host library's
``TraceGraph_ELBO`` at the same ``n``. Writes ``variance.json`` and ``variance.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._precision import float32
from benchmarks.compare import MODEL_CONFIGS, _init_params
from benchmarks.losses import LOSSES, make_loss
from benchmarks.runners import guide_variance, make_runner, train_batches
from models import MODELS
from models.data import dynamic_binarize, get_dataset

__all__ = ["main", "measure"]

ESTIMATORS = ("arms", "arms-gaussian", "disarm", "loorf", "reinforce", "graph-arms", "tracegraph")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """All variances for the parsed arguments, as a nested dict."""
    data = get_dataset(args.dataset, args.data_path)
    rng = np.random.default_rng(args.seed)
    batch = dynamic_binarize(data.train[: args.batch_size], rng)
    out: dict[str, Any] = {"config": vars(args), "results": []}
    for backend in args.backends:
        # float32 as in training; the Pyro runner keeps torch's default dtype
        with float32(backend) if backend == "numpyro" else nullcontext():
            for model in args.models:
                config = MODEL_CONFIGS[model](data.num_pixels, None)
                runner = make_runner(backend, model, data, args.lr, **config)
                checkpoints = {"initial": _init_params(backend, runner, batch, args.seed)}
                trainer = make_runner(backend, model, data, args.lr, **config)
                trainer.train(
                    make_loss("arms", backend, 4),
                    train_batches(data, args.batch_size, args.train_steps, args.seed),
                    args.seed,
                )
                checkpoints["trained"] = trainer.params
                for when, params in checkpoints.items():
                    for n in args.num_particles:
                        for name in args.estimators:
                            if LOSSES[name].bernoulli_only and (
                                MODELS[model].is_categorical or n % 2
                            ):
                                continue
                            loss = make_loss(name, backend, n)
                            table = trainer.variance(
                                loss, params, batch, args.replicates, args.seed
                            )
                            out["results"].append(
                                {
                                    "backend": backend,
                                    "model": model,
                                    "checkpoint": when,
                                    "n": n,
                                    "estimator": name,
                                    "variance": guide_variance(table),
                                }
                            )
    return out


def table(out: dict[str, Any]) -> str:
    """Markdown tables: one per (backend, model, checkpoint), rows = estimators, columns = n."""
    rows = out["results"]
    lookup = {
        (r["backend"], r["model"], r["checkpoint"], r["n"], r["estimator"]): r["variance"]
        for r in rows
    }
    ns = sorted({r["n"] for r in rows})
    lines = []
    for key in sorted({(r["backend"], r["model"], r["checkpoint"]) for r in rows}):
        backend, model, when = key
        lines += [
            f"### {backend}, {model}, {when} parameters",
            "",
            "| estimator | "
            + " | ".join(f"n={n}: variance, /LOORF, /TraceGraph" for n in ns)
            + " |",
            "|---|" + "---|" * len(ns),
        ]
        for est in out["config"]["estimators"]:
            cells = []
            for n in ns:
                v = lookup.get((*key, n, est))
                if v is None:
                    cells.append("-")
                    continue
                loorf = lookup.get((*key, n, "loorf"))
                graph = lookup.get((*key, n, "tracegraph"))
                ratio_l = f"{v / loorf:.2f}" if loorf else "-"
                ratio_g = f"{v / graph:.3f}" if graph else "-"
                cells.append(f"{v:.3g}, {ratio_l}, {ratio_g}")
            if any(c != "-" for c in cells):
                lines.append(f"| {est} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, measure, print and write the tables."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.variance", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--backends", type=lambda s: s.split(","), default=["numpyro", "pyro"])
    p.add_argument(
        "--models",
        type=lambda s: s.split(","),
        default=["binary_vae_linear", "categorical_vae_linear"],
    )
    p.add_argument("--estimators", type=lambda s: s.split(","), default=list(ESTIMATORS))
    p.add_argument(
        "--num-particles", type=lambda s: [int(x) for x in s.split(",")], default=[2, 4, 8]
    )
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-path", default=None)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--train-steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--replicates", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/variance")
    args = p.parse_args(argv)
    start = time.perf_counter()
    out = measure(args)
    out["total_seconds"] = time.perf_counter() - start
    path = Path(args.out)
    path.mkdir(parents=True, exist_ok=True)
    text = table(out)
    (path / "variance.md").write_text(text)
    (path / "variance.json").write_text(json.dumps(out, indent=1))
    print(text)
    print(f"total {out['total_seconds']:.0f} s; wrote {path}/variance.{{md,json}}")
    return out


if __name__ == "__main__":
    main()
