r"""Scaling of one loss step with the number of discrete latent elements, in both backends.

``python -m benchmarks.scale`` measures one step (loss and gradient) of ``TraceARMS_ELBO`` and
``TraceGraphARMS_ELBO`` with ``n = 4`` particles on the simplest large model: one discrete site of
``N`` elements in a plate and a cheap likelihood,

.. code-block:: text

    model:  z_i ~ Bernoulli(1/2)  (or Categorical(uniform K)),  x_i ~ Normal(z_i, 1),  i < N
    guide:  z_i ~ Bernoulli(logits=phi_i)  (or Categorical(logits=psi_i)),  phi / psi parameters

NumPyro steps are ``jax.jit(jax.value_and_grad(loss.loss))``; Pyro steps are
``loss_and_grads(...)`` (loss and backward pass, the form every Pyro ELBO has). Four tables are printed and saved:

1. **time and peak memory per step against N** (default ``1e5 .. 1e7``): Bernoulli ARMS (both
   losses) and CARMS at ``K = 10``. Step time is the median of ``--repeats`` steps after one
   warm-up step (JAX compiles before it, timed separately).
2. **linear growth and the memory constant**: the step-time ratio between the largest and smallest
   ``N``, the per-element time ratio (at most about one when time grows linearly) and the slope of
   ``log time`` against ``log N`` (:func:`growth`); peak memory over the memory of the ``n``
   particles' samples and log-probabilities, ``n * N * (sample bytes + log-prob bytes)``
   ("unit"), per size, and the marginal constant ``(peak(N2) - peak(N1)) / (unit(N2) - unit(N1))``
   between the two largest sizes, which removes the fixed cost of the interpreter, the libraries
   and compilation.
3. **CARMS cost per element against K** (``--k-values``, default 2, 5, 10, 50), inverse-CDF CARMS
   against the stick-breaking coupling: marginal time and memory per element between two sizes
   (``--k-sizes``; inverse-CDF CARMS costs ``O(K^3)`` per element, so its sizes shrink by
   ``(10 / K)^2`` above ``K = 10``, see :func:`k_sizes`).
4. **NumPyro on 1, 2, 4 forced host devices** (``--xla_force_host_platform_device_count``): the
   data plate's arrays sharded over the devices with ``NamedSharding``, in float64. On one machine's CPU
   cores this is a correctness-of-scaling run (same loss on every device count, one compile), **not
   a speed claim**: the emulated devices share the same cores.

**How peak memory is measured.** Each (backend, loss, size) runs in its own subprocess, which
builds data and parameters (waiting for JAX's asynchronous dispatch), resets the kernel's RSS
high-water mark (``5`` into ``/proc/self/clear_refs``) and records its resident set size
(``/proc/self/statm``), then reports its peak resident set size at the end (``VmHWM`` in
``/proc/self/status``, the high-water mark since the reset; not ``ru_maxrss``, which keeps the size
the process inherited from its parent at fork and which the reset does not clear). "Peak" below
is the difference: memory the steps needed beyond the model's inputs and parameters, including
allocator caching and, for JAX, compilation. The reset keeps a transient allocation while building
the inputs from hiding the steps' peak; a fresh process per size keeps one measurement's cached
allocations out of the next one's baseline. For JAX the compiler's own buffer assignment
(``compiled.memory_analysis().temp_size_in_bytes``) is recorded too: the exact size of the step's
temporary buffers. Minor page faults per timed step (``ru_minflt``) are recorded as well: glibc
serves allocations above its mmap threshold (at most 32 MiB) with fresh mappings and unmaps them on
free, so at ``N = 1e7`` every step faults its temporaries in again; ``--env MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=<large>`` keeps them mapped instead. ``--in-process`` (tests) runs the steps
in the driver: fast, memory not meaningful.

**Threads.** Each worker runs with one intra-op thread by default (``--threads``: torch's
``set_num_threads``, ``OMP_NUM_THREADS``, and XLA's CPU flags
``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``). On a shared machine,
several intra-op threads wait on each other at every operation's barrier whenever one is
descheduled: with two torch threads under load a 1e5-entry ``index_select`` took 48 ms against
0.06 ms with one, which made Pyro's CARMS step 30 times slower than its single-threaded time.

Outputs in ``--out`` (default ``docs/results/scale``): ``scale.json`` (all numbers, with the
machine and versions) and ``scale.md`` (the tables, which are also printed).

Run::

    python -m benchmarks.scale [--backend both|numpyro|pyro] [--sizes 1e5 1e6 1e7] [--out DIR]
        [--cases arms graph carms] [--k-values 2 5 10 50] [--devices 1 2 4] [--repeats 3]
        [--threads 1] [--env KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

NUM_PARTICLES = 4
DEFAULT_SIZES = (1e5, 3e5, 1e6, 3e6, 1e7)
DEFAULT_K = (2, 5, 10, 50)
K_SIZES = (5e4, 2e5)
"""Element counts of the CARMS-against-K table (per-element costs are marginal between them);
inverse-CDF CARMS shrinks them by ``(10 / K)^2`` above ``K = 10`` (:func:`k_sizes`)."""
COUPLINGS = ("inverse_cdf", "stick_breaking")
DEVICE_COUNTS = (1, 2, 4)
DEVICE_SIZE = 1e6
SCALING_CASES = {
    "arms": ("bernoulli", "trace", "inverse_cdf", 2),
    "graph": ("bernoulli", "graph", "inverse_cdf", 2),
    "host": ("bernoulli", "host", "inverse_cdf", 2),
    "carms": ("categorical", "trace", "inverse_cdf", 10),
}
"""(site, loss, categorical coupling, K) of the rows of the scaling table, by ``--cases`` name.
``"host"`` is the host library's own ``TraceGraph_ELBO`` (REINFORCE with its baselines) on the
same Bernoulli model: the reference of the host-ratio table."""
LOSS_LABELS = {
    "trace": "TraceARMS_ELBO",
    "graph": "TraceGraphARMS_ELBO",
    "host": "host TraceGraph_ELBO",
}
"""Row labels of the loss names of :data:`SCALING_CASES`."""
HOST_TIME_TARGET = 1.2
HOST_MEMORY_TARGET = 1.5
"""Issue #12's targets: one ARMS step at most this many times the host ``TraceGraph_ELBO``'s step
time and peak memory at the same ``N``."""
MIB = 2**20


# ----------------------------------------------------------------------------------- workers


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    """This process's peak RSS: ``VmHWM`` (which ``clear_refs`` resets), else ``ru_maxrss``.

    Not ``ru_maxrss`` first: on Linux it keeps the RSS the process had when it was forked (a
    benchmark's child inherits its parent's size across ``exec``) and ``clear_refs`` does not reset
    it, so a child started from a large parent reported the parent's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _baseline_bytes() -> tuple[int, str]:
    """This process's RSS now, after resetting the kernel's RSS high-water mark if it can.

    Writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0) resets the peak to the current RSS, so
    the peak read later covers only what follows; without the reset, a transient allocation while
    building data or parameters could exceed the steps' peak and hide it.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        method = "VmHWM reset at the baseline (/proc/self/clear_refs)"
    except OSError:
        method = "ru_maxrss since process start (high-water mark not resettable)"
    return _rss_bytes(), method


def _numpyro_step(site: str, loss_name: str, coupling: str, k: int, size: int) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from ppl_arms.numpyro import TraceARMS_ELBO, TraceGraphARMS_ELBO

    categorical = site == "categorical"
    shape = (size, k) if categorical else (size,)

    def model(x):
        with numpyro.plate("data", size):
            prior = dist.Categorical(logits=jnp.zeros(k)) if categorical else dist.Bernoulli(0.5)
            z = numpyro.sample("z", prior)
            numpyro.sample("x", dist.Normal(z.astype(x.dtype), 1.0), obs=x)

    def guide(x):
        logits = numpyro.param("logits", jnp.zeros(shape))
        with numpyro.plate("data", size):
            q = dist.Categorical(logits=logits) if categorical else dist.Bernoulli(logits=logits)
            numpyro.sample("z", q)

    losses = {
        "trace": lambda: TraceARMS_ELBO(NUM_PARTICLES, categorical_coupling=coupling),
        "graph": lambda: TraceGraphARMS_ELBO(NUM_PARTICLES, categorical_coupling=coupling),
        "host": lambda: numpyro.infer.TraceGraph_ELBO(NUM_PARTICLES),
    }
    loss = losses[loss_name]()
    x = jax.random.normal(jax.random.key(0), (size,))
    params = {"logits": 0.1 * jax.random.normal(jax.random.key(1), shape)}

    def value_and_grad(p, key):
        return jax.value_and_grad(lambda q: loss.loss(key, q, model, guide, x))(p)

    jax.block_until_ready((x, params))  # dispatch is asynchronous: allocate before the baseline
    baseline, method = _baseline_bytes()
    start = time.perf_counter()
    compiled = jax.jit(value_and_grad).lower(params, jax.random.key(2)).compile()
    compile_s = time.perf_counter() - start
    analysis = compiled.memory_analysis()

    def step(i: int) -> float:
        t = time.perf_counter()
        _, grads = compiled(params, jax.random.key(3 + i))
        jax.block_until_ready(grads)
        return time.perf_counter() - t

    return {
        "baseline": baseline,
        "memory_method": method,
        "compile_s": compile_s,
        "step": step,
        "xla_temp_bytes": int(analysis.temp_size_in_bytes),
        "sample_bytes": jnp.dtype(jnp.int64 if jax.config.jax_enable_x64 else jnp.int32).itemsize,
        "float_bytes": x.dtype.itemsize,
    }


def _pyro_step(site: str, loss_name: str, coupling: str, k: int, size: int) -> dict[str, Any]:
    import pyro
    import pyro.distributions as dist
    import torch

    from ppl_arms.pyro import TraceARMS_ELBO, TraceGraphARMS_ELBO

    categorical = site == "categorical"
    shape = (size, k) if categorical else (size,)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(size, generator=generator)
    init = 0.1 * torch.randn(shape, generator=generator)

    def model(x):
        with pyro.plate("data", size):
            if categorical:
                z = pyro.sample("z", dist.Categorical(logits=torch.zeros(k)))
            else:
                z = pyro.sample("z", dist.Bernoulli(probs=torch.tensor(0.5)))
            pyro.sample("x", dist.Normal(z.to(x.dtype), 1.0), obs=x)

    def guide(x):
        logits = pyro.param("logits", init)
        with pyro.plate("data", size):
            q = dist.Categorical(logits=logits) if categorical else dist.Bernoulli(logits=logits)
            pyro.sample("z", q)

    arms = {"categorical_coupling": coupling, "max_plate_nesting": 1}
    losses = {
        "trace": lambda: TraceARMS_ELBO(NUM_PARTICLES, **arms),
        "graph": lambda: TraceGraphARMS_ELBO(NUM_PARTICLES, **arms),
        # the host's vectorised particles, as ours: one pass with a particle plate
        "host": lambda: pyro.infer.TraceGraph_ELBO(
            NUM_PARTICLES, vectorize_particles=True, max_plate_nesting=1
        ),
    }
    loss = losses[loss_name]()
    pyro.clear_param_store()  # one measurement per process, but --in-process runs several
    pyro.set_rng_seed(0)
    guide(x)  # create the parameter
    params = [pyro.param("logits").unconstrained()]
    baseline, method = _baseline_bytes()

    def step(i: int) -> float:
        t = time.perf_counter()
        loss.loss_and_grads(model, guide, x)  # the host's TraceGraph_ELBO has only this form
        elapsed = time.perf_counter() - t
        for p in params:
            p.grad = None
        return elapsed

    return {
        "baseline": baseline,
        "memory_method": method,
        "compile_s": 0.0,
        "step": step,
        "xla_temp_bytes": None,
        "sample_bytes": (torch.empty((), dtype=torch.long) if categorical else x).element_size(),
        "float_bytes": x.element_size(),
    }


def measure_step(
    backend: str, site: str, loss: str, coupling: str, k: int, size: int, repeats: int
) -> dict[str, Any]:
    """One (backend, case, size) measurement in this process: a warm-up step, then ``repeats``."""
    builder = _numpyro_step if backend == "numpyro" else _pyro_step
    setup = builder(site, loss, coupling, k, size)
    warmup = setup["step"](0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = [setup["step"](1 + i) for i in range(repeats)]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    unit = NUM_PARTICLES * size * (setup["sample_bytes"] + setup["float_bytes"])
    peak = _peak_rss_bytes()
    return {
        "backend": backend,
        "site": site,
        "loss": loss,
        "coupling": coupling,
        "k": k,
        "size": size,
        "warmup_s": warmup,
        "compile_s": setup["compile_s"],
        "times_s": times,
        "median_s": statistics.median(times),
        "baseline_rss_bytes": setup["baseline"],
        "peak_rss_bytes": peak,
        "extra_bytes": peak - setup["baseline"],
        "unit_bytes": unit,
        "xla_temp_bytes": setup["xla_temp_bytes"],
        "memory_method": setup["memory_method"],
        "minor_faults_per_step": faults / max(repeats, 1),
    }


def _worker_step(args: argparse.Namespace) -> None:
    if args.backend == "pyro":
        import torch

        torch.set_num_threads(args.threads)
    report = measure_step(
        args.backend, args.site, args.loss, args.coupling, args.k, int(args.size), args.repeats
    )
    print(json.dumps(report))


def _worker_devices(args: argparse.Namespace) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import numpyro
    import numpyro.distributions as dist
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from ppl_arms.numpyro import TraceARMS_ELBO

    size = int(args.size)

    def model(x):
        with numpyro.plate("data", size):
            z = numpyro.sample("z", dist.Bernoulli(0.5))
            numpyro.sample("x", dist.Normal(z.astype(x.dtype), 1.0), obs=x)

    def guide(x):
        logits = numpyro.param("logits", jnp.zeros(size))
        with numpyro.plate("data", size):
            numpyro.sample("z", dist.Bernoulli(logits=logits))

    loss = TraceARMS_ELBO(NUM_PARTICLES)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    along_data = NamedSharding(mesh, P("data"))
    x = jax.device_put(jax.random.normal(jax.random.key(0), (size,)), along_data)
    params = {
        "logits": jax.device_put(0.1 * jax.random.normal(jax.random.key(1), (size,)), along_data)
    }

    def value_and_grad(p, key):
        return jax.value_and_grad(lambda q: loss.loss(key, q, model, guide, x))(p)

    start = time.perf_counter()
    compiled = jax.jit(value_and_grad).lower(params, jax.random.key(2)).compile()
    compile_s = time.perf_counter() - start
    value, grads = compiled(params, jax.random.key(2))
    jax.block_until_ready(grads)
    times = []
    for i in range(args.repeats):
        t = time.perf_counter()
        _, g = compiled(params, jax.random.key(3 + i))
        jax.block_until_ready(g)
        times.append(time.perf_counter() - t)
    print(
        json.dumps(
            {
                "devices": len(jax.devices()),
                "size": size,
                "dtype": str(grads["logits"].dtype),
                "compile_s": compile_s,
                "times_s": times,
                "median_s": statistics.median(times),
                "loss": float(value),
                "grad_sum": float(jnp.sum(grads["logits"])),
                "grad_sharding": str(grads["logits"].sharding.spec),
            }
        )
    )


# ----------------------------------------------------------------------------------- driver


ROOT = Path(__file__).resolve().parents[1]


def _thread_env(threads: int, xla_flags: str = "") -> dict[str, str]:
    """Environment of a worker: intra-op threads of torch and XLA's CPU backend.

    On a shared machine, several intra-op threads wait on each other at every operation's barrier
    whenever one of them is descheduled (measured here: a 1e5-entry ``index_select`` took 48 ms with
    2 torch threads under load and 0.06 ms with 1), so the default is one thread per process.
    """
    flags = [f for f in (os.environ.get("XLA_FLAGS", ""), xla_flags) if f]
    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if threads == 1:
        flags.append("--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    return env


EXTRA_ENV: dict[str, str] = {}
"""Extra environment of every worker (``--env KEY=VALUE``, e.g. glibc malloc tunables)."""


def _run(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.update(EXTRA_ENV)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", *argv],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {argv} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _step(
    backend: str,
    site: str,
    loss: str,
    coupling: str,
    k: int,
    size: float,
    repeats: int,
    threads: int = 1,
    isolated: bool = True,
) -> dict[str, Any]:
    """One measurement, in a fresh process unless ``isolated`` is false (tests: memory invalid)."""
    if not isolated:
        row = measure_step(backend, site, loss, coupling, k, int(size), repeats)
    else:
        argv = ["--worker", "step", "--backend", backend, "--site", site, "--loss", loss]
        argv += ["--coupling", coupling, "--k", str(k), "--size", str(int(size))]
        argv += ["--repeats", str(repeats), "--threads", str(threads)]
        row = _run(argv, _thread_env(threads))
    row["isolated"] = isolated
    row["threads"] = threads
    return row


def _fmt_size(size: int) -> str:
    exponent = len(str(size)) - 1
    mantissa = size / 10**exponent
    return f"{mantissa:g}e{exponent}"


def _label(site: str, loss: str, coupling: str, k: int) -> str:
    name = LOSS_LABELS[loss]
    if site == "bernoulli":
        return f"{name}, Bernoulli"
    kind = "CARMS" if coupling == "inverse_cdf" else "stick-breaking CARMS"
    return f"{name}, {kind} K={k}"


def _marginal(rows: list[dict[str, Any]], key: str, per: str) -> float | None:
    """Slope of ``key`` against ``per`` between the two largest sizes (fixed costs cancel)."""
    if len(rows) < 2:
        return None
    a, b = sorted(rows, key=lambda r: r["size"])[-2:]
    return (b[key] - a[key]) / (b[per] - a[per])


def k_sizes(coupling: str, k: int, sizes: list[float]) -> list[int]:
    """Element counts of one row of the K table.

    Inverse-CDF CARMS costs ``O(K^3 + n^2 K^2)`` per element (a sum over ``K(K-1)/2`` orderings), so
    its sizes shrink by ``(10 / K)^2`` above ``K = 10`` to keep a step within seconds; the
    per-element cost is a marginal between two sizes either way.
    """
    scale = min(1.0, (10 / k) ** 2) if coupling == "inverse_cdf" else 1.0
    return [round(size * scale) for size in sizes]


def scaling_table(
    backends: list[str],
    sizes: list[float],
    repeats: int,
    cases: list[str],
    threads: int = 1,
    isolated: bool = True,
) -> list[dict[str, Any]]:
    """Rows of tables 1 and 2 (one subprocess per backend, case and size)."""
    rows = []
    for backend in backends:
        for name in cases:
            site, loss, coupling, k = SCALING_CASES[name]
            for size in sizes:
                label = _label(site, loss, coupling, k)
                print(f"  {backend}: {label}, N={_fmt_size(int(size))}", flush=True)
                rows.append(
                    _step(backend, site, loss, coupling, k, size, repeats, threads, isolated)
                )
    return rows


def k_table(
    backends: list[str],
    ks: list[int],
    sizes: list[float],
    repeats: int,
    threads: int = 1,
    isolated: bool = True,
) -> list[dict[str, Any]]:
    """Rows of table 3: marginal per-element cost of CARMS against K, both couplings."""
    rows = []
    for backend in backends:
        for coupling in COUPLINGS:
            for k in ks:
                row_sizes = k_sizes(coupling, k, sizes)
                print(f"  {backend}: {coupling}, K={k}, N={row_sizes}", flush=True)
                runs = [
                    _step(
                        backend, "categorical", "trace", coupling, k, size, repeats, threads,
                        isolated,
                    )
                    for size in row_sizes
                ]  # fmt: skip
                us = _marginal(runs, "median_s", "size")
                per_byte = _marginal(runs, "extra_bytes", "size")
                rows.append(
                    {
                        "backend": backend,
                        "coupling": coupling,
                        "k": k,
                        "sizes": [r["size"] for r in runs],
                        "median_s": [r["median_s"] for r in runs],
                        "extra_bytes": [r["extra_bytes"] for r in runs],
                        "xla_temp_bytes": [r["xla_temp_bytes"] for r in runs],
                        "us_per_element": None if us is None else 1e6 * us,
                        "bytes_per_element": per_byte,
                    }
                )
    return rows


def device_table(
    counts: list[int], size: float, repeats: int, threads: int = 1
) -> list[dict[str, Any]]:
    """Rows of table 4: NumPyro with the data plate sharded over forced host devices."""
    rows = []
    for count in counts:
        print(f"  numpyro: {count} forced host device(s)", flush=True)
        # float64, so that equal losses across device counts show to ~1e-12
        env = _thread_env(threads, f"--xla_force_host_platform_device_count={count}")
        env["JAX_ENABLE_X64"] = "1"
        argv = ["--worker", "devices", "--size", str(int(size)), "--repeats", str(repeats)]
        rows.append(_run(argv, env))
    return rows


def _f(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "n/a" if value is None else format(scale * value, spec)


def growth(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Linear-growth check of one (backend, case): ratios between the largest and smallest N.

    ``time_ratio / size_ratio`` is the per-element time at ``N_max`` over that at ``N_min``: at most
    about one when time grows (at most) linearly. ``exponent`` is the least-squares slope of
    ``log time`` against ``log N`` over all sizes (1 = linear), ``exponent_top`` that between the
    two largest sizes, where fixed costs matter least.
    """
    rows = sorted(rows, key=lambda r: r["size"])
    small, large = rows[0], rows[-1]
    out: dict[str, Any] = {
        "size_min": small["size"],
        "size_max": large["size"],
        "size_ratio": large["size"] / small["size"],
        "time_ratio": large["median_s"] / small["median_s"],
        "per_element_ratio": (large["median_s"] / large["size"])
        / (small["median_s"] / small["size"]),
        "exponent": None,
        "exponent_top": None,
        "memory_constant_marginal": _marginal(rows, "extra_bytes", "unit_bytes"),
        "memory_constant_max": large["extra_bytes"] / large["unit_bytes"],
        "xla_temp_constant_max": None
        if large["xla_temp_bytes"] is None
        else large["xla_temp_bytes"] / large["unit_bytes"],
        "us_per_element_marginal": _f(_marginal(rows, "median_s", "size"), ".6g", 1e6),
    }
    if len(rows) >= 2:
        xs = [math.log(r["size"]) for r in rows]
        ys = [math.log(r["median_s"]) for r in rows]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        out["exponent"] = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        out["exponent_top"] = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return out


def _markdown(report: dict[str, Any]) -> str:
    threads = report["threads"]
    out = [
        "# Scaling of one step with the number of discrete latent elements",
        "",
        f"Machine: {report['machine']}. {report['versions']}. One step = loss and gradient, "
        f"`n = {NUM_PARTICLES}` particles, {report['dtype']}, {threads} intra-op thread(s) per "
        f"process; time = median of {report['repeats']} steps after a warm-up step (JAX compiles "
        "before the warm-up). Peak = peak RSS of the step's fresh process after its baseline "
        f"({report['memory_method']}) minus its RSS at the baseline (data and parameters built), "
        "so it includes JAX's compilation and allocator caching. Unit = memory of the particles' "
        "samples and log-probabilities, `n * N * (sample + log-prob bytes)`.",
        "",
    ]
    if report.get("note"):
        out += [report["note"], ""]
    if report.get("env"):
        settings = " ".join(f"{k}={v}" for k, v in report["env"].items())
        out += [f"Worker environment: `{settings}`.", ""]
    if not report["isolated"]:
        out += ["**In-process run (tests): the memory columns are not meaningful.**", ""]
    scaling = report["scaling"]
    if scaling:
        out += [
            "## Time and peak memory per step against N",
            "",
            "| backend | loss, site | N | step (s) | µs / element | peak (MiB) | unit (MiB) "
            "| peak / unit | XLA temp / unit | page faults / step |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in scaling:
            xla = r["xla_temp_bytes"]
            xla_ratio = "" if xla is None else f"{xla / r['unit_bytes']:.2f}"
            faults = r.get("minor_faults_per_step")
            out.append(
                f"| {r['backend']} | {_label(r['site'], r['loss'], r['coupling'], r['k'])} "
                f"| {_fmt_size(r['size'])} | {r['median_s']:.4g} "
                f"| {1e6 * r['median_s'] / r['size']:.3f} | {r['extra_bytes'] / MIB:.0f} "
                f"| {r['unit_bytes'] / MIB:.1f} | {r['extra_bytes'] / r['unit_bytes']:.2f} "
                f"| {xla_ratio} | {_f(faults, '.3g')} |"
            )
        out += [
            "",
            "## Linear growth and the memory constant",
            "",
            "Time ratio = step time at N_max over N_min; per-element ratio = that over "
            "N_max / N_min (≤ 1: at most linear); exponent = least-squares slope of log time "
            "against log N over all sizes (top: between the two largest). Memory constant: "
            "Δpeak / Δunit between the two largest sizes (fixed costs cancel), peak / unit and "
            "XLA temp / unit at N_max.",
            "",
            "| backend | loss, site | N_max / N_min | time ratio | per-element ratio | exponent "
            "| exponent (top) | Δpeak / Δunit | peak / unit | XLA temp / unit |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for (backend, label), rows in _groups(scaling).items():
            g = growth(rows)
            out.append(
                f"| {backend} | {label} | {g['size_ratio']:.0f} | {g['time_ratio']:.1f} "
                f"| {g['per_element_ratio']:.2f} | {_f(g['exponent'], '.2f')} "
                f"| {_f(g['exponent_top'], '.2f')} | {_f(g['memory_constant_marginal'], '.2f')} "
                f"| {g['memory_constant_max']:.2f} | {_f(g['xla_temp_constant_max'], '.2f')} |"
            )
        out.append("")
    ratios = report.get("host_ratios") or []
    if ratios:
        out += [
            "## Against the host's TraceGraph_ELBO",
            "",
            f"Our Bernoulli ARMS step over the host library's own `TraceGraph_ELBO` step (same "
            f"model, `n = {NUM_PARTICLES}`, the host's vectorised particles in Pyro), measured in "
            f"the same run. Targets (issue #12): time ≤ {HOST_TIME_TARGET}x, peak memory ≤ "
            f"{HOST_MEMORY_TARGET}x.",
            "",
            "| backend | loss | N | time / host | peak memory / host | verdict |",
            "|---|---|---:|---:|---:|---|",
        ]
        for r in ratios:
            verdict = "met" if r["time_met"] and r["memory_met"] else "missed"
            out.append(
                f"| {r['backend']} | {LOSS_LABELS[r['loss']]} | {_fmt_size(r['size'])} "
                f"| {r['time_ratio']:.2f} | {_f(r['memory_ratio'], '.2f')} | {verdict} |"
            )
        out.append("")
    if report["k_table"]:
        out += [
            "## CARMS cost per element against K",
            "",
            "Marginal between the two sizes of each row (fixed costs cancel). Inverse-CDF CARMS "
            "sums over K(K-1)/2 orderings per element, so its sizes shrink as (10/K)² above "
            "K = 10.",
            "",
            "| backend | coupling | K | N | step (s) | µs / element | µs / element / K "
            "| bytes / element | XLA temp bytes / element |",
            "|---|---|---:|---|---|---:|---:|---:|---:|",
        ]
        for r in report["k_table"]:
            temp = r["xla_temp_bytes"][-1]
            temp_per = "" if temp is None else f"{temp / r['sizes'][-1]:.0f}"
            us = r["us_per_element"]
            out.append(
                f"| {r['backend']} | {r['coupling']} | {r['k']} "
                f"| {', '.join(_fmt_size(n) for n in r['sizes'])} "
                f"| {', '.join(f'{t:.3g}' for t in r['median_s'])} | {_f(us, '.3g')} "
                f"| {_f(None if us is None else us / r['k'], '.3g')} "
                f"| {_f(r['bytes_per_element'], '.0f')} | {temp_per} |"
            )
        out.append("")
    if report["devices"]:
        reference = report["devices"][0]["loss"]
        out += [
            "## NumPyro, data plate sharded over forced host devices",
            "",
            "**CPU emulation**: the devices are forced host devices "
            "(`--xla_force_host_platform_device_count`) sharing this machine's "
            f"{report['cpus']} cores, so this checks correctness of scaling (same loss on every "
            "device count, one compile, gradients sharded along the data plate), **not a speed "
            "claim**. float64.",
            "",
            "| devices | N | compile (s) | step (s) | loss | loss − loss(first row) | Σ gradient "
            "| gradient sharding |",
            "|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in report["devices"]:
            out.append(
                f"| {r['devices']} | {_fmt_size(r['size'])} | {r['compile_s']:.2f} "
                f"| {r['median_s']:.3f} | {r['loss']:.10f} | {r['loss'] - reference:.1e} "
                f"| {r['grad_sum']:.10f} | `{r['grad_sharding']}` |"
            )
        out.append("")
    return "\n".join(out)


def host_ratios(scaling: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each Bernoulli ARMS row over the host ``TraceGraph_ELBO`` row of its backend and ``N``.

    Returns:
        One record per (backend, loss, N) that has a host row: the step-time ratio, the ratio of
        the peak memory beyond the baseline, and whether each is within issue #12's target.
    """
    hosts = {(r["backend"], r["size"]): r for r in scaling if r["loss"] == "host"}
    out = []
    for r in scaling:
        host = hosts.get((r["backend"], r["size"]))
        if host is None or r["loss"] == "host" or r["site"] != host["site"]:
            continue
        time_ratio = r["median_s"] / host["median_s"]
        memory_ratio = r["extra_bytes"] / host["extra_bytes"] if host["extra_bytes"] > 0 else None
        out.append(
            {
                "backend": r["backend"],
                "loss": r["loss"],
                "size": r["size"],
                "time_ratio": time_ratio,
                "memory_ratio": memory_ratio,
                "time_met": time_ratio <= HOST_TIME_TARGET,
                "memory_met": memory_ratio is not None and memory_ratio <= HOST_MEMORY_TARGET,
            }
        )
    return out


def _groups(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["backend"], _label(r["site"], r["loss"], r["coupling"], r["k"]))
        groups.setdefault(key, []).append(r)
    return {k: sorted(v, key=lambda r: r["size"]) for k, v in groups.items()}


def _versions() -> str:
    import jax
    import numpyro
    import pyro
    import torch

    from ppl_arms.version import __version__

    return (
        f"ppl_arms {__version__}, torch {torch.__version__}, pyro {pyro.__version__}, "
        f"jax {jax.__version__}, numpyro {numpyro.__version__}"
    )


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """Run the benchmark (or, with ``--worker``, one measurement in this process)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["both", "numpyro", "pyro"], default="both")
    parser.add_argument("--sizes", type=float, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument(
        "--cases", nargs="+", choices=list(SCALING_CASES), default=list(SCALING_CASES),
        help="rows of the scaling table (default: all)",
    )  # fmt: skip
    parser.add_argument("--k-values", type=int, nargs="*", default=list(DEFAULT_K))
    parser.add_argument(
        "--k-sizes", type=float, nargs=2, default=list(K_SIZES),
        help="the two element counts of the K table (inverse-CDF shrinks them above K = 10)",
    )  # fmt: skip
    parser.add_argument("--devices", type=int, nargs="*", default=list(DEVICE_COUNTS))
    parser.add_argument("--device-size", type=float, default=DEVICE_SIZE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="intra-op threads per process (torch, XLA CPU); 1 is stable on a shared machine",
    )  # fmt: skip
    parser.add_argument(
        "--in-process", action="store_true",
        help="run the step measurements in this process (fast, for tests; memory not meaningful)",
    )  # fmt: skip
    parser.add_argument("--note", default="", help="a line added under the header of scale.md")
    parser.add_argument(
        "--env", nargs="*", default=[], metavar="KEY=VALUE",
        help="extra environment of the worker processes (e.g. MALLOC_MMAP_MAX_=0)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("docs/results/scale"))
    # worker mode (one measurement per process)
    parser.add_argument("--worker", choices=["step", "devices"], help=argparse.SUPPRESS)
    parser.add_argument("--site", default="bernoulli", help=argparse.SUPPRESS)
    parser.add_argument("--loss", default="trace", help=argparse.SUPPRESS)
    parser.add_argument("--coupling", default="inverse_cdf", help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=float, default=1e5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "step":
        _worker_step(args)
        return None
    if args.worker == "devices":
        _worker_devices(args)
        return None

    isolated = not args.in_process
    EXTRA_ENV.clear()
    EXTRA_ENV.update(item.split("=", 1) for item in args.env)
    backends = ["numpyro", "pyro"] if args.backend == "both" else [args.backend]
    start = time.perf_counter()
    print("table 1-2: step time and peak memory against N", flush=True)
    scaling = scaling_table(backends, args.sizes, args.repeats, args.cases, args.threads, isolated)
    print("table 3: CARMS cost per element against K", flush=True)
    ks = (
        k_table(backends, args.k_values, args.k_sizes, args.repeats, args.threads, isolated)
        if args.k_values
        else []
    )
    print(
        "table 4: NumPyro over forced host devices (CPU emulation, not a speed claim)", flush=True
    )
    devices = (
        device_table(args.devices, args.device_size, args.repeats, args.threads)
        if args.devices and "numpyro" in backends
        else []
    )
    methods = {r["memory_method"] for r in scaling} or {"n/a"}
    report = {
        "command": "python -m benchmarks.scale "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "cpus": os.cpu_count(),
        "versions": _versions(),
        "dtype": "float32 (JAX default without x64, torch default)",
        "repeats": args.repeats,
        "threads": args.threads,
        "isolated": isolated,
        "memory_method": "; ".join(sorted(methods)),
        "num_particles": NUM_PARTICLES,
        "note": args.note,
        "env": dict(EXTRA_ENV),
        "wall_s": None,
        "scaling": scaling,
        "host_ratios": host_ratios(scaling),
        "growth": [
            {"backend": backend, "case": label, **growth(rows)}
            for (backend, label), rows in _groups(scaling).items()
        ],
        "k_table": ks,
        "devices": devices,
    }
    report["wall_s"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(report, indent=1) + "\n")
    markdown = _markdown(report)
    (args.out / "scale.md").write_text(markdown + "\n")
    print()
    print(markdown)
    return report


if __name__ == "__main__":
    main()
