"""The main job: train one model with several losses at an equal evaluation budget and compare.

Run ``python -m benchmarks.compare`` (defaults: binary VAE, sklearn digits, NumPyro, losses
``arms, loorf, disarm, reinforce, tracegraph``, ``N = 4`` evaluations per data point and step, about a
minute on 2 cores). For every loss it trains from the same initial parameters on the same
minibatches and reports:

* the final training objective (each loss's own: ELBO, or its multi-sample bound), per data point;
* the test multi-sample bound with the same number of evaluation samples for every loss;
* gradient variance of the guide (encoder) parameters, at the common initial parameters and at the
  end of each run, as the mean per-coordinate variance over ``R`` independent estimates, and its
  ratio to LOORF's;
* the **work-normalised variance**: gradient variance x median step time, relative to LOORF's (the
  variance ratio times the step-time ratio, both from this run): below 1, the loss reaches a given
  gradient variance for less compute than LOORF;
* steps per second (excluding the first, compiling step), compile time and wall time.

With ``--equal-time SECONDS`` every loss trains for the same wall-clock time instead of the same
number of steps (``--steps`` is ignored): the clock starts after each loss's first, compiling step,
and training stops at the first step that ends past the budget. The table then reports the number
of steps each loss did, and ``curves.png`` plots the training objective against seconds.

It prints a table and writes ``compare.json`` (every number, the per-step losses, the command and
the versions), ``compare.md`` (the table), ``curves.png`` (training curves) and ``variance.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._precision import float32
from benchmarks.losses import LOSSES, make_loss
from benchmarks.runners import guide_variance, make_runner, train_batches
from models import MODELS
from models.data import DATASETS, dynamic_binarize, get_dataset

__all__ = ["MODEL_CONFIGS", "deadline_batches", "main", "run", "table"]

DEFAULT_LOSSES = ("arms", "loorf", "disarm", "reinforce", "tracegraph")
PAPER_LATENTS = 200
"""The ARMS paper's latent size for 784-pixel images; smaller data get half their pixel count."""


def _binary_latents(num_pixels: int, latents: int | None) -> int:
    return latents if latents is not None else min(PAPER_LATENTS, num_pixels // 2)


MODEL_CONFIGS: dict[str, Any] = {
    "binary_vae_linear": lambda d, k: {"num_latents": _binary_latents(d, k)},
    "binary_vae_nonlinear": lambda d, k: {"num_latents": _binary_latents(d, k)},
    "categorical_vae_linear": lambda d, k: {} if k is None else {"num_latents": k},
    "categorical_vae_nonlinear": lambda d, k: {} if k is None else {"num_latents": k},
    "structured_prediction": lambda d, k: {} if k is None else {"num_latents": k},
    "sigmoid_belief_net": lambda d, k: {"latent_sizes": (_binary_latents(d, k),) * 2},
}
"""Model -> ``f(num_pixels, --latents) -> config overrides`` (categorical models keep 20 x 10)."""


def deadline_batches(
    batches: Iterable[np.ndarray],
    seconds: float,
    elapsed: list[float],
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[np.ndarray]:
    """The ``batches`` for training until ``seconds`` have passed after the first step.

    The clock starts when the second batch is requested, i.e. once the first (compiling) step is
    done. Every later request marks the end of a step: ``elapsed`` receives the seconds since the
    start at each, so ``elapsed[i]`` is when step ``i`` ended (``elapsed[0] = 0``) and ends with one
    entry per step done. No batch is handed out once a step has ended past ``seconds``.
    """
    it = iter(batches)
    first = next(it, None)
    if first is None:
        return
    yield first
    start = clock()
    elapsed.append(0.0)
    for x in it:
        if elapsed[-1] >= seconds:
            return
        yield x
        elapsed.append(clock() - start)


def _variance(runner: Any, loss: Any, params: dict, x: np.ndarray, r: int, seed: int) -> float:
    return guide_variance(runner.variance(loss, params, x, r, seed))


def _init_params(backend: str, runner: Any, x: np.ndarray, seed: int) -> dict:
    if backend == "numpyro":
        import jax
        import jax.numpy as jnp
        from numpyro.infer import SVI
        from numpyro.optim import Adam

        from ppl_arms.numpyro import TraceARMS_ELBO

        svi = SVI(runner.model, runner.guide, Adam(1e-3), TraceARMS_ELBO(2))
        return svi.get_params(svi.init(jax.random.key(seed), jnp.asarray(x)))
    import pyro
    import torch
    from pyro import poutine

    from benchmarks.runners import pyro_checkpoint

    pyro.clear_param_store()
    tr = poutine.trace(runner.guide).get_trace(torch.as_tensor(x))
    poutine.trace(poutine.replay(runner.model, tr)).get_trace(torch.as_tensor(x))
    return pyro_checkpoint()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the comparison described by parsed command-line ``args``; returns the results dict."""
    from tqdm import tqdm

    data = get_dataset(args.dataset, args.data_path)
    config = MODEL_CONFIGS[args.model](data.num_pixels, args.latents)
    rng = np.random.default_rng(args.seed + 1)
    test = dynamic_binarize(data.test[: args.test_size], rng)  # one fixed binarisation
    var_batch = dynamic_binarize(data.train[: args.batch_size], rng)
    nesting = 1
    results: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.compare", *args.argv]),
        "config": {**vars(args), "model_config": config},
        "environment": _environment(),
        "runs": {},
    }
    init_runner = make_runner(args.backend, args.model, data, args.lr, **config)
    init_params = _init_params(args.backend, init_runner, var_batch, args.seed)
    for name in args.losses:
        spec = LOSSES[name]
        if spec.bernoulli_only and MODELS[args.model].is_categorical:
            results["runs"][name] = {"skipped": f"{name} applies to Bernoulli sites only"}
            continue
        loss = make_loss(name, args.backend, args.num_particles, nesting)
        runner = make_runner(args.backend, args.model, data, args.lr, **config)
        clock: list[float] = []
        if args.equal_time is None:
            batches = train_batches(data, args.batch_size, args.steps, args.seed)
        else:  # the same minibatches, as many as fit in the time budget
            batches = deadline_batches(
                train_batches(data, args.batch_size, 10**9, args.seed), args.equal_time, clock
            )
        total = args.steps - 1 if args.equal_time is None else None
        with tqdm(total=total, desc=f"{name:>12}", leave=True, disable=args.quiet) as bar:
            res = runner.train(loss, batches, args.seed, progress=bar.update)
        tail = max(1, len(res.losses) // 10)
        per_point = -np.asarray(res.losses) / args.batch_size
        run_out: dict[str, Any] = {
            "steps": len(res.losses),
            "objective": spec.objective,
            "bound_size": spec.bound_size(args.num_particles),
            "evaluations_per_step": args.num_particles,
            "final_train_objective": float(np.mean(per_point[-tail:])),
            "test_bound": runner.bound(test, args.eval_samples, args.seed),
            "steps_per_second": float(1.0 / np.median(res.step_seconds))
            if res.step_seconds
            else None,
            "compile_seconds": res.compile_seconds,
            "wall_seconds": res.wall_seconds,
            "train_curve": per_point.tolist(),
            "note": spec.note,
        }
        if args.equal_time is not None:
            run_out["train_clock_seconds"] = clock  # when each step ended, after the first
        end_params = runner.params
        run_out["grad_variance_init"] = _variance(
            runner, loss, init_params, var_batch, args.variance_replicates, args.seed
        )
        run_out["grad_variance_end"] = _variance(
            runner, loss, end_params, var_batch, args.variance_replicates, args.seed
        )
        results["runs"][name] = run_out
    _ratios(results["runs"])
    return results


def _ratios(runs: dict[str, Any]) -> None:
    ref = runs.get("loorf", {})
    for out in runs.values():
        for when in ("init", "end"):
            key = f"grad_variance_{when}"
            if key in out and ref.get(key):
                out[f"{key}_vs_loorf"] = out[key] / ref[key]
            work = work_normalised(out, ref, when)
            if work is not None:
                out[f"work_normalised_variance_{when}_vs_loorf"] = work


def work_normalised(run: dict[str, Any], ref: dict[str, Any], when: str) -> float | None:
    """``run``'s gradient variance x median step time over ``ref``'s (``when``: init or end).

    Computed from a run's recorded ``grad_variance_<when>`` and ``steps_per_second`` (so it also
    applies to results saved before it existed); ``None`` if either run lacks one of them.
    """
    key = f"grad_variance_{when}"
    if not (run.get(key) and run.get("steps_per_second")):
        return None
    if not (ref.get(key) and ref.get("steps_per_second")):
        return None
    return (run[key] / run["steps_per_second"]) / (ref[key] / ref["steps_per_second"])


def _environment() -> dict[str, str]:
    import importlib.metadata as md

    versions = {}
    for pkg in ("ppl_arms", "jax", "numpyro", "torch", "pyro-ppl", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {"python": platform.python_version(), "machine": platform.machine(), **versions}


def _fmt(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(results: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    cfg = results["config"]
    equal_time = cfg.get("equal_time")
    budget = (
        f"{cfg['steps']} steps"
        if equal_time is None
        else f"equal wall-clock: {equal_time:g} s of training per loss after its compiling step"
    )
    head = (
        f"model `{cfg['model']}` on `{cfg['dataset']}`, backend {cfg['backend']}, "
        f"N = {cfg['num_particles']} evaluations per data point and step, {budget}, "
        f"batch {cfg['batch_size']}, test bound with {cfg['eval_samples']} samples on "
        f"{cfg['test_size']} test images, gradient variance over {cfg['variance_replicates']} "
        "estimates; work-norm. = variance x median step time, relative to LOORF's"
    )
    columns = [
        "loss", "objective", *(["steps"] if equal_time is not None else []),
        "final train objective", "test bound",
        "grad var (init)", "vs LOORF", "work-norm. vs LOORF",
        "grad var (end)", "vs LOORF", "work-norm. vs LOORF",
        "steps/s", "compile s", "wall s",
    ]  # fmt: skip
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    ref = results["runs"].get("loorf", {})
    for name, r in results["runs"].items():
        if "skipped" in r:
            rows.append(f"| {name} | {r['skipped']} |" + " |" * (len(columns) - 2))
            continue
        objective = r["objective"] if r["objective"] == "elbo" else f"bound n={r['bound_size']}"
        steps = [str(len(r["train_curve"]))] if equal_time is not None else []
        cells = [
            name, objective, *steps,
            f"{r['final_train_objective']:.3f}", f"{r['test_bound']:.3f}",
            f"{r['grad_variance_init']:.3g}", _fmt(r.get("grad_variance_init_vs_loorf"), ".2f"),
            _fmt(work_normalised(r, ref, "init"), ".2f"),
            f"{r['grad_variance_end']:.3g}", _fmt(r.get("grad_variance_end_vs_loorf"), ".2f"),
            _fmt(work_normalised(r, ref, "end"), ".2f"),
            _fmt(r["steps_per_second"], ".0f"), f"{r['compile_seconds']:.1f}",
            f"{r['wall_seconds']:.1f}",
        ]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    notes = [f"- `{n}`: {r['note']}" for n, r in results["runs"].items() if r.get("note")]
    return "\n".join([head, "", *rows, "", *notes]) + "\n"


def plots(results: dict[str, Any], out: Path) -> None:
    """Training curves and gradient variances as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {k: v for k, v in results["runs"].items() if "skipped" not in v}
    equal_time = results["config"].get("equal_time") is not None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, r in runs.items():
        curve = np.asarray(r["train_curve"])
        window = max(1, len(curve) // 50)
        smooth = np.convolve(curve, np.ones(window) / window, mode="valid")
        if equal_time:  # each window's mean at the time its last step ended
            ax.plot(np.asarray(r["train_clock_seconds"])[window - 1 :], smooth, label=name)
        else:
            ax.plot(np.arange(len(smooth)) + window, smooth, label=name)
    ax.set_xlabel("seconds of training (after the compiling step)" if equal_time else "step")
    ax.set_ylabel("training objective per data point")
    ax.set_title(f"{results['config']['model']} on {results['config']['dataset']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    names = list(runs)
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, [runs[n]["grad_variance_init"] for n in names], 0.4, label="initial params")
    ax.bar(pos + 0.2, [runs[n]["grad_variance_end"] for n in names], 0.4, label="end of run")
    ax.set_yscale("log")
    ax.set_xticks(pos, names, rotation=30, ha="right")
    ax.set_ylabel("mean gradient variance (guide params)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "variance.png", dpi=120)
    plt.close(fig)


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--backend", choices=["numpyro", "pyro"], default="numpyro")
    p.add_argument("--model", choices=sorted(MODELS), default="binary_vae_linear")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    p.add_argument(
        "--data-path", default=None, help="directory of MNIST/Omniglot/Fashion-MNIST files"
    )
    p.add_argument(
        "--losses",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        default=list(DEFAULT_LOSSES),
        help=f"comma-separated, from: {', '.join(LOSSES)}",
    )
    p.add_argument(
        "--num-particles", type=int, default=4, help="model evaluations per point and step"
    )
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument(
        "--equal-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help="train every loss for SECONDS of wall-clock time (after its compiling step) "
        "instead of --steps steps",
    )
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--latents", type=int, default=None, help="latent size (default: pixels / 2, <= 200)"
    )
    p.add_argument("--eval-samples", type=int, default=100)
    p.add_argument("--test-size", type=int, default=300)
    p.add_argument("--variance-replicates", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/compare")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, run, print the table and write the outputs."""
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    unknown = [x for x in args.losses if x not in LOSSES]
    if unknown:
        raise SystemExit(f"unknown losses {unknown}; valid names are {sorted(LOSSES)}")
    start = time.perf_counter()
    # NumPyro in float32, its default (the Pyro runner keeps torch's default dtype)
    with float32(args.backend) if args.backend == "numpyro" else nullcontext():
        results = run(args)
    results["total_seconds"] = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = table(results)
    (out / "compare.md").write_text(text)
    (out / "compare.json").write_text(json.dumps(results, indent=1))
    plots(results, out)
    print(text)
    print(
        f"total {results['total_seconds']:.0f} s; wrote {out}/compare.{{md,json}}, curves.png, variance.png"
    )
    return results


if __name__ == "__main__":
    main()
