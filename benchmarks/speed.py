"""Step time and peak memory of our losses vs the host libraries' ``Trace_ELBO``/``TraceGraph_ELBO``.

``python -m benchmarks.speed`` builds one model (default: the ARMS paper's linear binary VAE at
full size, 200 latents, on Fashion-MNIST if installed, else digits), batch 50, ``N = 4`` particles,
and times one SVI step per loss. The losses are run **interleaved**, round after round (``--rounds``
rounds of ``--steps`` steps each), so that machine noise hits all of them alike; the table gives the
median step time per loss and its ratio to the host ``Trace_ELBO`` and ``TraceGraph_ELBO`` measured
side by side. NumPyro steps are ``jit``-compiled (the compile is excluded); Pyro uses vectorised
particles. Peak memory is measured in a fresh subprocess per loss: once it has loaded the data,
it resets the kernel's high-water mark of its resident set size (``/proc/self/clear_refs``), then
imports the backend, builds the model and runs ``--memory-steps`` steps; the table gives the peak
above that baseline (libraries, parameters, compilation and the steps' buffers, not the data set),
to compare between losses. With ``--variance-replicates R`` (default 200) it also measures each
loss's guide-gradient variance at the model's initial parameters on one minibatch (``R``
estimates) and reports the **work-normalised variance**, variance x step time, relative to LOORF:
the variance ratio times the paired-by-round step-time ratio, both from this run (below 1: the loss
reaches a given variance for less compute than LOORF). Targets from the issue: NumPyro
TraceARMS_ELBO <= 1.10 x Trace_ELBO and faster than TraceGraph_ELBO; Pyro TraceARMS_ELBO <= 1.25 x
Trace_ELBO and faster than TraceGraph_ELBO.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._precision import float32
from benchmarks.compare import _fmt, _init_params, _variance
from benchmarks.losses import available, make_loss
from benchmarks.runners import host_loss_warnings_silenced, make_runner, train_batches
from benchmarks.scale import _baseline_bytes, _peak_rss_bytes
from models import build_model
from models.data import get_dataset

__all__ = ["main"]

LOSSES = ("trace", "tracegraph", "arms", "graph-arms", "loorf", "iwae-arms", "jit-arms")
JIT_SPEEDUP_TARGET = 1.5
"""Required speed-up of Pyro's compiled ``JitTraceARMS_ELBO`` step over the eager one."""
TARGETS = {"numpyro": 1.05, "pyro": 1.10}
"""Allowed ratio of TraceARMS_ELBO's step time to the host Trace_ELBO's, and of
TraceGraphARMS_ELBO's to the host TraceGraph_ELBO's, per backend (issue #12)."""


def _dataset(name: str | None) -> Any:
    if name is not None:
        return get_dataset(name)
    try:
        return get_dataset("fashion_mnist")
    except FileNotFoundError:
        return get_dataset("digits")


class _Stepper:
    """One loss's compiled SVI step on a fixed model, ready to be timed."""

    def __init__(
        self,
        backend: str,
        loss_name: str,
        data: Any,
        latents: int | None,
        n: int,
        seed: int,
        *,
        model: str = "binary_vae_linear",
        config: dict[str, Any] | None = None,
        batch_size: int = 50,
    ):
        self.backend = backend
        config = {"num_latents": latents} if config is None else config
        self.model, self.guide = build_model(model, backend, data.train_mean, **config)
        self.loss = make_loss(loss_name, backend, n)
        self.batches = train_batches(data, batch_size, 10**9, seed)
        if backend == "numpyro":
            import jax
            import jax.numpy as jnp
            from numpyro.infer import SVI
            from numpyro.optim import Adam

            self.jnp = jnp
            self.svi = SVI(self.model, self.guide, Adam(1e-3), self.loss)
            x = jnp.asarray(next(self.batches))
            with host_loss_warnings_silenced():
                self.state = self.svi.init(jax.random.key(seed), x)
            self.update = jax.jit(self.svi.update)
        else:
            import pyro
            import torch

            self.torch = torch
            pyro.clear_param_store()
            self.svi = pyro.infer.SVI(
                self.model, self.guide, pyro.optim.Adam({"lr": 1e-3}), self.loss
            )
        self.step()  # compile / warm up

    def step(self, x: Any = None) -> float:
        """One SVI step on ``x`` (default: the next minibatch)."""
        x = next(self.batches) if x is None else x
        if self.backend == "numpyro":
            self.state, value = self.update(self.state, self.jnp.asarray(x))
            return float(value)  # blocks until done
        # Pyro's param store is global: ``time_steps`` swaps each stepper's own store in
        return float(self.svi.step(self.torch.as_tensor(x)))


def time_interleaved(args: argparse.Namespace, backend: str, data: Any) -> dict[str, list[float]]:
    """Per-step times of every loss, interleaved round by round."""
    return time_steps(
        backend,
        lambda name: _Stepper(backend, name, data, args.latents, args.num_particles, args.seed),
        args.losses,
        args.rounds,
        args.steps,
    )


def time_steps(
    backend: str,
    make: Callable[[str], _Stepper],
    names: Sequence[str],
    rounds: int,
    steps: int,
) -> dict[str, list[float]]:
    """Per-step seconds of the steppers ``make(name)``, interleaved: ``rounds`` rounds of ``steps``.

    Shared by :mod:`benchmarks.variance` (step times next to its variances) and this benchmark.
    Each stepper is built (and compiled) before any timing; Pyro steppers swap in their own
    param store.
    """
    import pyro

    stores: dict[str, Any] = {}
    steppers = {}
    for name in names:
        steppers[name] = make(name)
        if backend == "pyro":
            stores[name] = pyro.get_param_store().get_state()
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name, stepper in steppers.items():
            if backend == "pyro":
                pyro.get_param_store().set_state(stores[name])
            for _ in range(steps):
                x = next(stepper.batches)  # binarising the batch is not part of the step
                t = time.perf_counter()
                stepper.step(x)
                times[name].append(time.perf_counter() - t)
            if backend == "pyro":
                stores[name] = pyro.get_param_store().get_state()
    return times


def round_medians(times: dict[str, list[float]], rounds: int, steps: int) -> dict[str, np.ndarray]:
    """Each loss's median step time in each round of :func:`time_steps`."""
    return {k: np.median(np.reshape(v, (rounds, steps)), axis=1) for k, v in times.items()}


def paired_quartiles(medians: dict[str, np.ndarray], reference: str) -> dict[str, list[float]]:
    """Quartiles over rounds of each loss's round median over ``reference``'s in the same round.

    Pairing by round cancels load that drifts between rounds. Empty if ``reference`` was not timed.
    """
    if reference not in medians:
        return {}
    return {
        k: [float(x) for x in np.quantile(v / medians[reference], [0.25, 0.5, 0.75])]
        for k, v in medians.items()
    }


def ratios(values: dict[str, float], reference: str) -> dict[str, float]:
    """``values`` divided by ``values[reference]`` (empty if the reference is missing or zero)."""
    ref = values.get(reference)
    return {k: v / ref for k, v in values.items()} if ref else {}


def init_variances(backend: str, data: Any, args: argparse.Namespace) -> dict[str, float]:
    """Guide-gradient variance of every loss at the model's initial parameters, on one batch."""
    runner = make_runner(backend, "binary_vae_linear", data, 1e-3, num_latents=args.latents)
    batch = next(train_batches(data, 50, 1, args.seed + 1))
    params = _init_params(backend, runner, batch, args.seed)
    return {
        k: _variance(
            runner,
            make_loss(k, backend, args.num_particles),
            params,
            batch,
            args.variance_replicates,
            args.seed,
        )
        for k in args.losses
    }


def peak_memory_mb(backend: str, loss: str, args: argparse.Namespace) -> float:
    """Peak RSS (MB) of a fresh process running ``--memory-steps`` steps of ``loss``."""
    code = (
        "from benchmarks.speed import _memory_child; "
        f"_memory_child({backend!r}, {loss!r}, {args.dataset!r}, {args.latents}, "
        f"{args.num_particles}, {args.memory_steps}, {args.seed})"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1]) / 1024.0


def _memory_child(
    backend: str, loss: str, dataset: str | None, latents: int, n: int, steps: int, seed: int
) -> None:
    if backend == "numpyro":
        import jax

        jax.config.update("jax_enable_x64", False)
    data = _dataset(dataset)
    baseline, _ = _baseline_bytes()  # after loading the data; resets the high-water mark
    stepper = _Stepper(backend, loss, data, latents, n, seed)
    for _ in range(steps):
        stepper.step()
    print((_peak_rss_bytes() - baseline) // 1024)  # KiB


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, time and measure, print and write the tables."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--backends", type=lambda s: s.split(","), default=["numpyro", "pyro"])
    p.add_argument("--losses", type=lambda s: s.split(","), default=list(LOSSES))
    p.add_argument(
        "--dataset", default=None, help="default: fashion_mnist if installed, else digits"
    )
    p.add_argument("--latents", type=int, default=200)
    p.add_argument("--num-particles", type=int, default=4)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--memory-steps", type=int, default=20)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument(
        "--variance-replicates",
        type=int,
        default=200,
        help="gradient estimates per loss for the variance at the initial parameters (0: none)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/speed")
    args = p.parse_args(argv)
    data = _dataset(args.dataset)
    args.dataset = data.name
    out: dict[str, Any] = {"config": vars(args), "backends": {}}
    lines = []
    for backend in args.backends:
        # this backend's losses (e.g. the jit losses exist in Pyro only)
        bargs = argparse.Namespace(**{**vars(args), "losses": available(args.losses, backend)})
        with float32(backend):
            times = time_interleaved(bargs, backend, data)
            var = init_variances(backend, data, bargs) if bargs.variance_replicates else {}
        med = {k: float(np.median(v)) for k, v in times.items()}
        # paired by round: each round's median against the reference's median in the same round,
        # which cancels load that drifts between rounds
        rounds = round_medians(times, bargs.rounds, bargs.steps)
        paired = paired_quartiles(rounds, "trace")
        # work-normalised variance: variance x step time, both relative to LOORF's in this run
        to_loorf = paired_quartiles(rounds, "loorf")
        var_ratio = ratios(var, "loorf")
        work = {k: var_ratio[k] * to_loorf[k][1] for k in var_ratio if k in to_loorf}
        mem = (
            {} if bargs.no_memory else {k: peak_memory_mb(backend, k, bargs) for k in bargs.losses}
        )
        out["backends"][backend] = {
            "median_seconds": med,
            "round_medians_seconds": {k: v.tolist() for k, v in rounds.items()},
            "paired_ratio_to_trace_quartiles": paired,
            "paired_ratio_to_loorf_quartiles": to_loorf,
            "grad_variance_init": var,
            "work_normalised_variance_vs_loorf": work,
            "peak_rss_mb": mem,
        }
        lines += [
            f"### {backend}: linear binary VAE ({data.num_pixels}-{bargs.latents}), batch 50, "
            f"N = {bargs.num_particles}, {bargs.rounds} interleaved rounds of {bargs.steps} steps",
            "",
            "| loss | median step (ms) | / Trace_ELBO | / TraceGraph_ELBO "
            "| / Trace_ELBO, paired by round (quartiles) | peak RSS above data (MB) "
            "| grad var (init) | / LOORF | var x step time / LOORF |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for k in bargs.losses:
            ratio_t = med[k] / med["trace"] if "trace" in med else float("nan")
            ratio_g = med[k] / med["tracegraph"] if "tracegraph" in med else float("nan")
            rss = f"{mem[k]:.0f}" if k in mem else "-"
            q = paired.get(k)
            quart = f"{q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f})" if q else "-"
            lines.append(
                f"| {k} | {1000 * med[k]:.2f} | {ratio_t:.2f} | {ratio_g:.2f} | {quart} | {rss} "
                f"| {_fmt(var.get(k), '.3g')} | {_fmt(var_ratio.get(k), '.2f')} "
                f"| {_fmt(work.get(k), '.2f')} |"
            )
        if "arms" in med and "trace" in med:
            ratio = paired["arms"][1]  # the median of the paired per-round ratios
            verdict = "met" if ratio <= TARGETS[backend] else "MISSED"
            graph = ""
            if "tracegraph" in med:
                faster = "faster" if med["arms"] < med["tracegraph"] else "not faster"
                graph = f"; TraceARMS_ELBO is {faster} than TraceGraph_ELBO"
            lines.append(
                f"\nTraceARMS_ELBO / Trace_ELBO = {ratio:.2f}, paired by round (target <= {TARGETS[backend]}: "
                f"{verdict}){graph}.\n"
            )
        if "graph-arms" in rounds and "tracegraph" in rounds:
            ratio = float(np.median(rounds["graph-arms"] / rounds["tracegraph"]))
            verdict = "met" if ratio <= TARGETS[backend] else "MISSED"
            lines.append(
                f"TraceGraphARMS_ELBO / TraceGraph_ELBO = {ratio:.2f}, paired by round (target <= "
                f"{TARGETS[backend]}: {verdict}).\n"
            )
        if "arms" in rounds and "jit-arms" in rounds:
            speedup = float(np.median(rounds["arms"] / rounds["jit-arms"]))
            verdict = "met" if speedup >= JIT_SPEEDUP_TARGET else "MISSED"
            lines.append(
                f"JitTraceARMS_ELBO is {speedup:.2f}x faster than the eager TraceARMS_ELBO, paired "
                f"by round (target >= {JIT_SPEEDUP_TARGET}: {verdict}).\n"
            )
    text = "\n".join(lines)
    path = Path(args.out)
    path.mkdir(parents=True, exist_ok=True)
    (path / "speed.md").write_text(text)
    (path / "speed.json").write_text(json.dumps(out, indent=1))
    print(text)
    return out


if __name__ == "__main__":
    main()
