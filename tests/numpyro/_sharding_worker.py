"""Sharded vs single-device NumPyro losses and SVI, run with several forced host devices.

Started by ``test_sharding.py`` in a subprocess whose ``XLA_FLAGS`` force the host device count
before JAX is imported (``tests/conftest.py`` imports JAX, so the flag cannot be set in-process).
Prints one JSON line with everything the test asserts on. Arguments choose the losses
(``elbo``, ``graph``; default both).
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import numpyro.optim
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from numpyro.infer import SVI

from ppl_arms.numpyro import TraceARMS_ELBO, TraceGraphARMS_ELBO

N, K, SUBSAMPLE = 64, 3, 32


def _local(array, idx, subsample_size):
    # Without subsampling use the arrays as they are: indexing with the plate's indices would be
    # a gather, which the partitioner does not keep sharded.
    return array if subsample_size is None else array[idx]


def model(x, y, subsample_size=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    with numpyro.plate("data", N, subsample_size=subsample_size) as idx:
        z = numpyro.sample("z", dist.Bernoulli(logits=jnp.zeros(())))
        c = numpyro.sample("c", dist.Categorical(logits=jnp.zeros(K)))
        loc = mu + 2.0 * z - 1.0
        numpyro.sample("x", dist.Normal(loc, 1.0), obs=_local(x, idx, subsample_size))
        loc = c.astype(x.dtype) - 1.0
        numpyro.sample("y", dist.Normal(loc, 0.5), obs=_local(y, idx, subsample_size))


def guide(x, y, subsample_size=None):
    loc = numpyro.param("loc", 0.1)
    scale = numpyro.param("scale", 1.0, constraint=dist.constraints.positive)
    numpyro.sample("mu", dist.Normal(loc, scale))
    phi = numpyro.param("phi", jnp.zeros(N))
    psi = numpyro.param("psi", jnp.zeros((N, K)))
    with numpyro.plate("data", N, subsample_size=subsample_size) as idx:
        numpyro.sample("z", dist.Bernoulli(logits=_local(phi, idx, subsample_size)))
        numpyro.sample("c", dist.Categorical(logits=_local(psi, idx, subsample_size)))


def data_parallel(tree, mesh):
    """Shard every array whose leading axis is the data plate (size N); replicate the rest."""
    along_data = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())

    def put(a):
        a = jnp.asarray(a) if not isinstance(a, jax.Array) else a
        return jax.device_put(a, along_data if a.ndim and a.shape[0] == N else replicated)

    return jax.tree.map(put, tree)


COMPILES = []
"""Backend compilations, recorded through ``jax.monitoring``."""


def _record(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        COMPILES.append(duration)


jax.monitoring.register_event_duration_secs_listener(_record)


def close(a, b):
    """Largest absolute difference over two pytrees, and the largest magnitude in the second."""
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    diff = scale = 0.0
    for u, v in pairs:
        u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
        diff = max(diff, float(np.abs(u - v).max(initial=0.0)))
        scale = max(scale, float(np.abs(v).max(initial=0.0)))
    return {"max_abs_diff": diff, "max_abs": scale}


def main() -> None:
    devices = jax.devices()
    mesh = Mesh(np.array(devices), ("data",))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=N))
    y = jnp.asarray(rng.integers(0, K, size=N) - 1.0 + 0.3 * rng.normal(size=N))
    params = {
        "loc": jnp.asarray(0.2),
        "scale": jnp.asarray(0.7),
        "phi": jnp.asarray(rng.normal(size=N)),
        "psi": jnp.asarray(rng.normal(size=(N, K))),
    }
    key = jax.random.key(7)
    report = {"devices": len(devices), "cases": {}}
    losses = {"elbo": TraceARMS_ELBO, "graph": TraceGraphARMS_ELBO}
    chosen = {name: losses[name] for name in sys.argv[1:] or losses}
    for name, cls in chosen.items():
        loss = cls(4)
        for sub in (None, SUBSAMPLE):

            def value_and_grad(p, xs, ys, k, loss=loss, sub=sub):
                return jax.value_and_grad(
                    lambda q: loss.loss(k, q, model, guide, xs, ys, subsample_size=sub)
                )(p)

            step = jax.jit(value_and_grad)
            single = step(params, x, y, key)
            sharded = step(data_parallel(params, mesh), *data_parallel((x, y), mesh), key)
            along_data = NamedSharding(mesh, P("data"))
            report["cases"][f"{name}-{sub}"] = {
                "value": close(sharded[0], single[0]),
                "grad": close(sharded[1], single[1]),
                "local_grads_sharded": all(
                    sharded[1][k].sharding.is_equivalent_to(along_data, sharded[1][k].ndim)
                    for k in ("phi", "psi")
                ),
            }
        # SVI: one jitted update, several steps, sharded state and data
        svi = SVI(model, guide, numpyro.optim.SGD(0.01), loss=loss)
        state = svi.init(jax.random.key(1), x, y)
        single_update = jax.jit(svi.update)
        single_state, single_losses = state, []
        for _ in range(5):
            single_state, value = single_update(single_state, x, y)
            single_losses.append(float(value))
        sharded_state = data_parallel(state, mesh)
        xs, ys = data_parallel((x, y), mesh)
        # pin the state's layout, so step k + 1 sees the shardings step k was compiled for
        layout = jax.tree.map(lambda a: a.sharding, sharded_state)
        update = jax.jit(svi.update, out_shardings=(layout, NamedSharding(mesh, P())))
        sharded_losses = []
        compiles_per_step = []
        for _ in range(5):
            before = len(COMPILES)
            sharded_state, value = update(sharded_state, xs, ys)
            sharded_losses.append(float(value))
            compiles_per_step.append(len(COMPILES) - before)
        report["cases"][f"svi-{name}"] = {
            "losses": close(np.array(sharded_losses), np.array(single_losses)),
            "params": close(svi.get_params(sharded_state), svi.get_params(single_state)),
            "compiles_per_step": compiles_per_step,
            "state_sharded": all(
                a.sharding == b
                for a, b in zip(
                    jax.tree.leaves(sharded_state), jax.tree.leaves(layout), strict=True
                )
            ),
        }
    # particles spread over a second mesh axis, data over the first
    grid = Mesh(np.array(devices).reshape(2, -1), ("data", "particles"))
    for name, cls in chosen.items():
        plain = cls(4)
        spread = cls(4, particle_sharding=NamedSharding(grid, P("particles")))

        def value_and_grad(p, xs, ys, k, loss):
            return jax.value_and_grad(lambda q: loss.loss(k, q, model, guide, xs, ys))(p)

        single = jax.jit(value_and_grad, static_argnums=4)(params, x, y, key, plain)
        both = jax.jit(value_and_grad, static_argnums=4)(
            data_parallel(params, grid), *data_parallel((x, y), grid), key, spread
        )
        report["cases"][f"particles-{name}"] = {
            "value": close(both[0], single[0]),
            "grad": close(both[1], single[1]),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())
