"""One categorical site of ``K`` categories in a plate: the default coupling's step next to LOORF's.

The bad-input matrix's large-``K`` row (``docs/errors.md``): with the default settings, one step
of ``TraceARMS_ELBO`` at ``K = 200`` should cost at most 5x the LOORF step, in both backends.
Steps (gradient of the loss, NumPyro under ``jit``, Pyro eager with one intra-op thread) alternate
between the two losses round after round; the printed ratio is the median of the per-round ratios.

    python -m benchmarks.large_k --k 200 --size 500 --rounds 7
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _numpyro_ratios(k: int, size: int, rounds: int, steps: int, x: np.ndarray) -> list[float]:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from ppl_arms import numpyro as ours

    def model():
        with numpyro.plate("d", size):
            z = numpyro.sample("z", dist.Categorical(logits=jnp.zeros(k)))
            numpyro.sample("x", dist.Normal(z * 0.01, 1.0), obs=jnp.asarray(x))

    def guide():
        phi = numpyro.param("phi", jnp.zeros((size, k)))
        with numpyro.plate("d", size):
            numpyro.sample("z", dist.Categorical(logits=phi))

    params = {"phi": jnp.zeros((size, k))}
    steps_by_loss = {}
    for name, kwargs in (("default", {}), ("loorf", {"estimator": "loorf"})):
        loss = ours.TraceARMS_ELBO(num_particles=4, **kwargs)
        grad = jax.jit(jax.grad(lambda p, key, loss=loss: loss.loss(key, p, model, guide)))
        jax.block_until_ready(grad(params, jax.random.key(0)))  # compile outside the timing
        steps_by_loss[name] = grad

    def run(name: str) -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            jax.block_until_ready(steps_by_loss[name](params, jax.random.key(i)))
        return time.perf_counter() - t0

    return [run("default") / run("loorf") for _ in range(rounds)]


def _pyro_ratios(k: int, size: int, rounds: int, steps: int, x: np.ndarray) -> list[float]:
    import pyro
    import pyro.distributions as dist
    import torch

    from ppl_arms import pyro as ours

    torch.set_num_threads(1)
    xt = torch.as_tensor(x, dtype=torch.float32)

    def model():
        with pyro.plate("d", size):
            z = pyro.sample("z", dist.Categorical(logits=torch.zeros(k)))
            pyro.sample("x", dist.Normal(z * 0.01, 1.0), obs=xt)

    def guide():
        phi = pyro.param("phi", torch.zeros(size, k))
        with pyro.plate("d", size):
            pyro.sample("z", dist.Categorical(logits=phi))

    losses = {
        "default": ours.TraceARMS_ELBO(num_particles=4),
        "loorf": ours.TraceARMS_ELBO(num_particles=4, estimator="loorf"),
    }

    def run(name: str) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            pyro.clear_param_store()
            losses[name].differentiable_loss(model, guide).backward()
        return time.perf_counter() - t0

    run("default"), run("loorf")  # warm-up
    return [run("default") / run("loorf") for _ in range(rounds)]


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Print and return the median default/LOORF step-time ratio per backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--size", type=int, default=500, help="plate size (elements)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="steps per loss and round")
    args = parser.parse_args(argv)
    os.environ.setdefault("JAX_ENABLE_X64", "0")
    x = np.random.default_rng(0).normal(size=args.size)
    out = {}
    for backend, fn in (("numpyro", _numpyro_ratios), ("pyro", _pyro_ratios)):
        ratios = fn(args.k, args.size, args.rounds, args.steps, x)
        out[backend] = float(np.median(ratios))
        verdict = "met" if out[backend] <= 5 else "MISSED"
        print(
            f"{backend}: K={args.k}, {args.size} elements, n=4: default/LOORF step "
            f"{out[backend]:.2f} (rounds {np.round(ratios, 2).tolist()}; target <= 5: {verdict})"
        )
    return out


if __name__ == "__main__":
    main()
