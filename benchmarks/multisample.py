"""Multi-sample bounds at equal model evaluations: what the trained model's test likelihood says.

``python -m benchmarks.multisample`` trains the ARMS paper's binary VAEs (linear and nonlinear) on
Fashion-MNIST (Debian package ``dataset-fashion-mnist``, dynamically binarised) with the
``TraceARMS_IWAE`` estimators at ``N`` model evaluations per data point and step (default ``N = 4``
and ``8``) and several seeds, every run from the same initial parameters on the same minibatches
for a given seed, and reports per run:

* the **test log-likelihood estimate** of the trained model: the ``--eval-samples``-sample bound
  (default 5,000) on a fixed subset of the test set (the first ``--test-size`` images, one fixed
  binarisation), the same for every loss;
* the final training objective (each loss's own bound, per data point, mean of the last 10% of
  steps) and the bound size it optimises;
* for the first seed only (``--variance-replicates`` > 0), the gradient variance of the encoder
  parameters at the end of training (mean per-coordinate variance over independent estimates);
* steps per second, compile and wall seconds.

The losses, at ``N`` evaluations (:data:`LOSSES`):

* ``iwae-vimco``: VIMCO, bound of ``N``;
* ``iwae-arms``: local ARMS, ``N/2`` i.i.d. + ``N/2`` coupled, bound of ``N/2``;
* ``iwae-disarm``: local DisARM (``N/4`` antithetic pairs), bound of ``N/2``; at ``N = 4`` it is
  ``iwae-arms`` (ARMS with two samples is DisARM), so it runs at ``N >= 8`` only;
* ``iwae-vimco-arms``: the VIMCO-ARMS hybrid, ``N - 2`` i.i.d. + an antithetic pair, bound of
  ``N - 1``;
* ``iwae-vimco-n-1``: a reference, not a contender: VIMCO with ``N - 1`` particles (``N - 1``
  evaluations), the hybrid's bound size without its antithetic sample.

It prints one line per run, and writes ``multisample.json`` (every number, updated after each run,
the command and the versions), ``multisample.md`` (the table: mean and standard error over seeds,
and the paired difference to VIMCO's test log-likelihood) and ``multisample.png``. ``--quick`` is a
seconds-long smoke run (sklearn digits, a few steps, a few test images). ``--step-times`` trains
nothing: it times every loss's jitted NumPyro step **interleaved** (``--rounds`` rounds of 10 steps
per loss on one batch) and prints the median per-round step-time ratio to VIMCO's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._precision import float32
from benchmarks.compare import MODEL_CONFIGS, _environment
from benchmarks.runners import guide_variance, make_runner, train_batches
from models._ppl import host
from models.data import dynamic_binarize, get_dataset

__all__ = ["LOSSES", "MultiSampleLoss", "main", "summarise", "table"]


@dataclass(frozen=True)
class MultiSampleLoss:
    """One ``TraceARMS_IWAE`` estimator at an evaluation budget ``N``.

    Attributes:
        estimator: The ``estimator=`` name.
        num_particles: ``f(N) -> num_particles`` so that one step costs ``N`` evaluations.
        bound_size: ``f(N) -> n``, the number of samples inside the optimised bound.
        min_evaluations: The smallest ``N`` the loss runs at in this benchmark.
        evaluations_used: ``f(N) ->`` the evaluations one step really makes (``N`` but for the
            reference runs).
    """

    estimator: str
    num_particles: Callable[[int], int]
    bound_size: Callable[[int], int]
    min_evaluations: int = 4
    evaluations_used: Callable[[int], int] = lambda n: n

    def build(self, backend: str, evaluations: int) -> Any:
        """The loss for ``backend`` at ``evaluations`` per data point and step."""
        h = host(backend)
        n = self.num_particles(evaluations)
        return h.adapter.TraceARMS_IWAE(n, estimator=self.estimator, **h.loss_kwargs(1))


LOSSES: Mapping[str, MultiSampleLoss] = {
    "iwae-vimco": MultiSampleLoss("vimco", lambda n: n, lambda n: n),
    "iwae-arms": MultiSampleLoss("arms", lambda n: n // 2, lambda n: n // 2),
    "iwae-disarm": MultiSampleLoss("disarm", lambda n: n // 2, lambda n: n // 2, 8),
    "iwae-vimco-arms": MultiSampleLoss("vimco-arms", lambda n: n, lambda n: n - 1),
    "iwae-vimco-n-1": MultiSampleLoss(
        "vimco", lambda n: n - 1, lambda n: n - 1, evaluations_used=lambda n: n - 1
    ),
}
"""Benchmark name -> the ``TraceARMS_IWAE`` estimator and its split of the ``N`` evaluations."""

MODELS = ("binary_vae_linear", "binary_vae_nonlinear")


def _variance(runner: Any, loss: Any, x: np.ndarray, replicates: int, seed: int) -> float:
    return guide_variance(runner.variance(loss, runner.params, x, replicates, seed))


def run_one(
    args: argparse.Namespace,
    data: Any,
    test: np.ndarray,
    var_batch: np.ndarray,
    model: str,
    evaluations: int,
    name: str,
    seed: int,
) -> dict[str, Any]:
    """Train ``model`` with loss ``name`` at ``evaluations`` for one seed; returns its numbers."""
    spec = LOSSES[name]
    config = MODEL_CONFIGS[model](data.num_pixels, args.latents)
    runner = make_runner(args.backend, model, data, args.lr, **config)
    loss = spec.build(args.backend, evaluations)
    batches = train_batches(data, args.batch_size, args.steps, seed)
    res = runner.train(loss, batches, seed)
    per_point = -np.asarray(res.losses) / args.batch_size
    tail = max(1, len(per_point) // 10)
    start = time.perf_counter()
    test_ll = runner.bound(test, args.eval_samples, seed)
    out: dict[str, Any] = {
        "model": model,
        "evaluations": evaluations,
        "loss": name,
        "seed": seed,
        "bound_size": spec.bound_size(evaluations),
        "evaluations_used": spec.evaluations_used(evaluations),
        "steps": len(res.losses),
        "final_train_objective": float(np.mean(per_point[-tail:])),
        "test_log_likelihood": test_ll,
        "eval_seconds": time.perf_counter() - start,
        "steps_per_second": float(1.0 / np.median(res.step_seconds)) if res.step_seconds else None,
        "compile_seconds": res.compile_seconds,
        "wall_seconds": res.wall_seconds,
    }
    if args.variance_replicates > 0 and seed == args.seeds[0]:
        out["grad_variance_end"] = _variance(
            runner, loss, var_batch, args.variance_replicates, seed
        )
    return out


def step_time_ratios(args: argparse.Namespace, data: Any) -> dict[str, Any]:
    """Per (model, N): each loss's jitted step time over VIMCO's, measured interleaved (NumPyro)."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import SVI
    from numpyro.optim import Adam

    from models import build_model

    x = jnp.asarray(dynamic_binarize(data.train[: args.batch_size], np.random.default_rng(0)))
    out: dict[str, Any] = {}
    for model in args.models:
        config = MODEL_CONFIGS[model](data.num_pixels, args.latents)
        m, g = build_model(model, "numpyro", data.train_mean, **config)
        for evaluations in args.evaluations:
            names = [k for k in args.losses if evaluations >= LOSSES[k].min_evaluations]
            steps = {}
            for name in names:
                svi = SVI(m, g, Adam(args.lr), LOSSES[name].build("numpyro", evaluations))
                update = jax.jit(svi.update)
                state, value = update(svi.init(jax.random.key(0), x), x)  # compile
                value.block_until_ready()
                steps[name] = [update, state]
            times: dict[str, list[float]] = {k: [] for k in names}
            for _ in range(args.rounds):
                for name in names:
                    update, state = steps[name]
                    start = time.perf_counter()
                    for _ in range(10):
                        state, value = update(state, x)
                    value.block_until_ready()
                    times[name].append((time.perf_counter() - start) / 10)
                    steps[name][1] = state
            ref = np.asarray(times["iwae-vimco"])
            ratios = {k: float(np.median(np.asarray(times[k]) / ref)) for k in names}
            out[f"{model} N={evaluations}"] = {"vimco_seconds": float(np.median(ref)), **ratios}
            print(f"{model} N={evaluations}: step time / VIMCO's: {ratios}", flush=True)
    return out


def _mean_se(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs, dtype=float)
    se = float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")
    return float(a.mean()), se


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, N, loss): mean and standard error over seeds, and the paired gap to VIMCO."""
    rows = []
    keys = sorted(
        {(r["model"], r["evaluations"], r["loss"]) for r in runs},
        key=lambda k: (
            MODELS.index(k[0]) if k[0] in MODELS else 99,
            k[1],
            list(LOSSES).index(k[2]),
        ),
    )
    for model, evaluations, name in keys:
        mine = {r["seed"]: r for r in runs if (r["model"], r["evaluations"], r["loss"]) == (
            model, evaluations, name)}  # fmt: skip
        vimco = {r["seed"]: r for r in runs if (r["model"], r["evaluations"], r["loss"]) == (
            model, evaluations, "iwae-vimco")}  # fmt: skip
        paired = [mine[s]["test_log_likelihood"] - vimco[s]["test_log_likelihood"]
                  for s in sorted(mine) if s in vimco]  # fmt: skip
        variances = [r["grad_variance_end"] for r in mine.values() if "grad_variance_end" in r]
        speeds = [r["steps_per_second"] for r in mine.values() if r["steps_per_second"]]
        rows.append(
            {
                "model": model,
                "evaluations": evaluations,
                "loss": name,
                "bound_size": next(iter(mine.values()))["bound_size"],
                "evaluations_used": next(iter(mine.values())).get("evaluations_used", evaluations),
                "seeds": len(mine),
                "test_log_likelihood": _mean_se([r["test_log_likelihood"] for r in mine.values()]),
                "vs_vimco": _mean_se(paired) if paired else None,
                "final_train_objective": _mean_se(
                    [r["final_train_objective"] for r in mine.values()]
                ),
                "grad_variance_end": variances[0] if variances else None,
                "steps_per_second": float(np.median(speeds)) if speeds else None,
            }
        )
    return rows


def _pm(x: tuple[float, float] | None, spec: str = ".2f") -> str:
    if x is None:
        return "-"
    mean, se = x
    return f"{mean:{spec}}" if np.isnan(se) else f"{mean:{spec}} ± {se:{spec}}"


def table(results: dict[str, Any]) -> str:
    """The summary as a Markdown table (mean ± standard error over seeds)."""
    cfg = results["config"]
    head = (
        f"`{cfg['dataset']}`, backend {cfg['backend']}, {cfg['steps']} steps of batch "
        f"{cfg['batch_size']} (Adam, lr {cfg['lr']:g}), seeds {cfg['seeds']}; test log-likelihood = "
        f"{cfg['eval_samples']}-sample bound of the trained model on the first {cfg['test_size']} "
        "test images (one fixed binarisation); vs VIMCO = paired difference per seed; grad var = "
        "encoder gradient variance at the end of training (first seed, "
        f"{cfg['variance_replicates']} estimates)"
    )
    columns = [
        "model", "N", "loss", "evals", "bound n", "test log-lik.", "vs VIMCO", "train bound",
        "grad var (end)", "steps/s",
    ]  # fmt: skip
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in summarise(results["runs"]):
        var = r["grad_variance_end"]
        cells = [
            r["model"], str(r["evaluations"]), r["loss"], str(r["evaluations_used"]),
            str(r["bound_size"]),
            _pm(r["test_log_likelihood"]), _pm(r["vs_vimco"]), _pm(r["final_train_objective"]),
            "-" if var is None else f"{var:.3g}",
            "-" if r["steps_per_second"] is None else f"{r['steps_per_second']:.0f}",
        ]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, "", *rows]) + "\n"


def plot(results: dict[str, Any], out: Path) -> None:
    """Test log-likelihood minus VIMCO's (paired per seed) per model and ``N``, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summarise(results["runs"]) if r["vs_vimco"] is not None]
    groups = sorted({(r["model"], r["evaluations"]) for r in rows}, key=lambda g: (g[0], g[1]))
    names = [n for n in LOSSES if any(r["loss"] == n for r in rows)]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs, ys, es = [], [], []
        for g, (model, evaluations) in enumerate(groups):
            for r in rows:
                if (r["model"], r["evaluations"], r["loss"]) == (model, evaluations, name):
                    xs.append(g + (i - (len(names) - 1) / 2) * width)
                    ys.append(r["vs_vimco"][0])
                    es.append(0.0 if np.isnan(r["vs_vimco"][1]) else r["vs_vimco"][1])
        ax.bar(xs, ys, width, yerr=es, label=name, capsize=2)
    ax.axhline(0.0, color="k", lw=0.8)
    labels = [f"{m.removeprefix('binary_vae_')}\nN = {n}" for m, n in groups]
    ax.set_xticks(range(len(groups)), labels)
    ax.set_ylabel("test log-likelihood - VIMCO's (nats)")
    ax.set_title("multi-sample estimators at equal model evaluations (mean ± s.e. over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "multisample.png", dpi=120)
    plt.close(fig)


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.multisample", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--backend", choices=["numpyro", "pyro"], default="numpyro")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--data-path", default=None)
    p.add_argument("--models", type=lambda s: s.split(","), default=list(MODELS))
    p.add_argument("--losses", type=lambda s: s.split(","), default=list(LOSSES))
    p.add_argument("--evaluations", type=lambda s: [int(x) for x in s.split(",")], default=[4, 8])
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--latents", type=int, default=None)
    p.add_argument("--eval-samples", type=int, default=5000)
    p.add_argument("--test-size", type=int, default=100)
    p.add_argument("--variance-replicates", type=int, default=32)
    p.add_argument("--out", default="docs/results/multisample")
    p.add_argument(
        "--quick", action="store_true", help="seconds-long smoke run (digits, tiny budget)"
    )
    p.add_argument(
        "--retable", action="store_true", help="re-render the table and plot from the saved JSON"
    )
    p.add_argument(
        "--step-times", action="store_true", help="time the jitted steps interleaved (NumPyro)"
    )
    p.add_argument("--rounds", type=int, default=12, help="rounds of --step-times")
    return p


QUICK = {
    "dataset": "digits",
    "models": ["binary_vae_linear"],
    "steps": 3,
    "batch_size": 8,
    "eval_samples": 4,
    "test_size": 5,
    "variance_replicates": 3,
    "seeds": [0, 1],
    "evaluations": [8],
}
"""Overrides of ``--quick``."""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, run every (model, N, seed, loss), write and print the results."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    if args.retable:
        return _write(json.loads((Path(args.out) / "multisample.json").read_text()), Path(args.out))
    unknown = [x for x in args.losses if x not in LOSSES]
    if unknown:
        raise SystemExit(f"unknown losses {unknown}; valid names are {sorted(LOSSES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = get_dataset(args.dataset, args.data_path)
    rng = np.random.default_rng(12345)
    test = dynamic_binarize(data.test[: args.test_size], rng)  # one fixed binarisation
    var_batch = dynamic_binarize(data.train[: args.batch_size], rng)
    if args.step_times:
        with float32("numpyro"):
            ratios = step_time_ratios(args, data)
        (out / "step_times.json").write_text(json.dumps(ratios, indent=1))
        return ratios
    cfg = {k: v for k, v in vars(args).items() if k not in ("quick", "retable", "step_times")}
    results: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.multisample", *argv]),
        "config": cfg,
        "environment": _environment(),
        "runs": [],
    }
    plan = [  # seeds outermost: a stopped run still covers every configuration
        (model, evaluations, seed, name)
        for seed in args.seeds
        for model in args.models
        for evaluations in args.evaluations
        for name in args.losses
        if evaluations >= LOSSES[name].min_evaluations
    ]
    start = time.perf_counter()
    context = float32(args.backend) if args.backend == "numpyro" else nullcontext()
    with context:
        for i, (model, evaluations, seed, name) in enumerate(plan):
            r = run_one(args, data, test, var_batch, model, evaluations, name, seed)
            results["runs"].append(r)
            results["total_seconds"] = time.perf_counter() - start
            (out / "multisample.json").write_text(json.dumps(results, indent=1))
            print(
                f"[{i + 1}/{len(plan)} {results['total_seconds'] / 60:5.1f} min] {model} "
                f"N={evaluations} seed={seed} {name:>16}: test {r['test_log_likelihood']:.2f}, "
                f"train {r['final_train_objective']:.2f} (bound n={r['bound_size']}), "
                f"{r['wall_seconds']:.0f} s train + {r['eval_seconds']:.0f} s eval",
                flush=True,
            )
    return _write(results, out)


def _write(results: dict[str, Any], out: Path) -> dict[str, Any]:
    text = table(results)
    (out / "multisample.md").write_text(text)
    plot(results, out)
    print(text)
    print(f"total {results['total_seconds'] / 60:.1f} min; wrote {out}/multisample.{{md,json,png}}")
    return results


if __name__ == "__main__":
    main()
