"""Gradient variance of every estimator at fixed checkpoints, as ratios to LOORF and TraceGraph.

``python -m benchmarks.variance`` measures, for the binary and the categorical VAE (linear) in both
backends, at two checkpoints shared by all estimators (the initial parameters, and the parameters
after ``--train-steps`` steps of training with ARMS), and for ``n in {2, 4, 8}`` evaluations per data
point, the mean per-coordinate variance of the guide (encoder) gradient over ``R`` independent
estimates on one fixed minibatch. Ratios are to LOORF at the same ``n`` and to the host library's
``TraceGraph_ELBO`` at the same ``n``.

In the same run it times every estimator's SVI step on the same model and minibatch size
(``--timing-rounds`` interleaved rounds of ``--timing-steps`` steps, with
:func:`benchmarks.speed.time_steps`) and reports the **work-normalised variance**, variance x step
time relative to LOORF: the variance ratio times the median over rounds of the step-time ratio to
LOORF in the same round. Below 1, an estimator reaches a given gradient variance for less compute
than LOORF. Writes ``variance.json`` and ``variance.md``.
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
from benchmarks.speed import _Stepper, paired_quartiles, round_medians, time_steps
from models import MODELS
from models.data import dynamic_binarize, get_dataset

__all__ = ["main", "measure"]

ESTIMATORS = ("arms", "arms-gaussian", "disarm", "loorf", "reinforce", "graph-arms", "tracegraph")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """All variances for the parsed arguments, as a nested dict."""
    data = get_dataset(args.dataset, args.data_path)
    rng = np.random.default_rng(args.seed)
    batch = dynamic_binarize(data.train[: args.batch_size], rng)
    out: dict[str, Any] = {"config": vars(args), "results": [], "timings": []}
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
                        for name in _applicable(args.estimators, model, n):
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
                if args.timing_rounds:  # after the variances: Pyro steppers reset the param store
                    out["timings"] += step_times(backend, model, config, data, args)
    return out


def _applicable(estimators: list[str], model: str, n: int) -> list[str]:
    """The estimators that apply to ``model`` at ``n`` (DisARM: Bernoulli sites, even ``n``)."""
    return [
        name
        for name in estimators
        if not (LOSSES[name].bernoulli_only and (MODELS[model].is_categorical or n % 2))
    ]


def step_times(
    backend: str, model: str, config: dict, data: Any, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Interleaved SVI step times of every estimator at every ``n``, with paired ratios to LOORF."""
    rows = []
    for n in args.num_particles:

        def stepper(name: str, n: int = n) -> _Stepper:
            kw = {"model": model, "config": config, "batch_size": args.batch_size}
            return _Stepper(backend, name, data, None, n, args.seed, **kw)

        names = _applicable(args.estimators, model, n)
        times = time_steps(backend, stepper, names, args.timing_rounds, args.timing_steps)
        paired = paired_quartiles(
            round_medians(times, args.timing_rounds, args.timing_steps), "loorf"
        )
        rows += [
            {
                "backend": backend,
                "model": model,
                "n": n,
                "estimator": name,
                "median_step_seconds": float(np.median(times[name])),
                "paired_step_ratio_to_loorf_quartiles": paired.get(name),
            }
            for name in names
        ]
    return rows


def table(out: dict[str, Any]) -> str:
    """Markdown tables: one per (backend, model, checkpoint), rows = estimators, columns = n.

    With step times (``out["timings"]``), each cell ends with the work-normalised variance
    relative to LOORF, and one more table per (backend, model) gives the step times.
    """
    rows = out["results"]
    lookup = {
        (r["backend"], r["model"], r["checkpoint"], r["n"], r["estimator"]): r["variance"]
        for r in rows
    }
    step_ratio = {
        (t["backend"], t["model"], t["n"], t["estimator"]): t[
            "paired_step_ratio_to_loorf_quartiles"
        ]
        for t in out.get("timings", [])
    }
    timed = bool(step_ratio)
    ns = sorted({r["n"] for r in rows})
    lines = []
    for key in sorted({(r["backend"], r["model"], r["checkpoint"]) for r in rows}):
        backend, model, when = key
        lines += [
            f"### {backend}, {model}, {when} parameters",
            "",
            "| estimator | "
            + " | ".join(
                f"n={n}: variance, /LOORF, /TraceGraph" + (", var x time /LOORF" if timed else "")
                for n in ns
            )
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
                cell = f"{v:.3g}, {ratio_l}, {ratio_g}"
                if timed:
                    q = step_ratio.get((backend, model, n, est))
                    cell += f", {v / loorf * q[1]:.2f}" if loorf and q else ", -"
                cells.append(cell)
            if any(c != "-" for c in cells):
                lines.append(f"| {est} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines + _time_tables(out))


def _time_tables(out: dict[str, Any]) -> list[str]:
    """Step-time tables, one per (backend, model): median ms and the paired ratio to LOORF."""
    timings = out.get("timings", [])
    if not timings:
        return []
    cfg = out["config"]
    ns = sorted({t["n"] for t in timings})
    lines = []
    for backend, model in sorted({(t["backend"], t["model"]) for t in timings}):
        cell = {
            (t["n"], t["estimator"]): t
            for t in timings
            if (t["backend"], t["model"]) == (backend, model)
        }
        lines += [
            f"### {backend}, {model}: SVI step time ({cfg['timing_rounds']} interleaved rounds "
            f"of {cfg['timing_steps']} steps, batch {cfg['batch_size']})",
            "",
            "| estimator | "
            + " | ".join(f"n={n}: median ms, /LOORF paired by round (quartiles)" for n in ns)
            + " |",
            "|---|" + "---|" * len(ns),
        ]
        for est in cfg["estimators"]:
            cells = []
            for n in ns:
                t = cell.get((n, est))
                q = t and t["paired_step_ratio_to_loorf_quartiles"]
                ms = f"{1000 * t['median_step_seconds']:.2f}" if t else "-"
                cells.append(f"{ms}, {q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f})" if q else ms)
            if any(c != "-" for c in cells):
                lines.append(f"| {est} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


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
    p.add_argument(
        "--timing-rounds",
        type=int,
        default=5,
        help="interleaved rounds of step timing per (model, n), for the work-normalised "
        "variance (0: no timing)",
    )
    p.add_argument("--timing-steps", type=int, default=10, help="timed steps per round")
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
