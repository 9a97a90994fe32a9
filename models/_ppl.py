"""The one "write once for both backends" namespace of the models, the tests and the benchmarks.

:class:`Host` holds a backend's host primitives and its ``ppl_arms`` adapter; the adapter test
backends (``tests/adapters/backends.py``) and the benchmark losses (``benchmarks/losses.py``) take
theirs from :func:`host`. Each model in :mod:`models` is written once, as a function of a :class:`PPL` namespace, and built
for a backend by passing :func:`numpyro_ppl` or :func:`pyro_ppl`. The namespace holds the host
primitives (``sample``, ``plate``, the distributions module), parameter creation, and the handful of
array operations whose spelling differs between torch and JAX. Backends are imported only when
their namespace is requested, so the NumPyro models work without torch installed and vice versa.

Parameters are initialised from NumPy arrays (:mod:`models._init`), identical for both backends,
and take the dtype of the model's input at their first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from models._init import LEAKY_RELU_SLOPE, layer_names

__all__ = ["PPL", "Host", "host", "numpyro_ppl", "pyro_ppl"]

DATA_PLATE = "data"
"""Name of the plate over data points, at ``dim=-1`` in both backends."""


@dataclass(frozen=True)
class Host:
    """A backend's host library and ``ppl_arms`` adapter, for code written once for both.

    Attributes:
        name: ``"numpyro"`` or ``"pyro"``.
        sample: The host's ``sample``.
        plate: The host's ``plate``.
        param: The host's ``param``.
        dist: The host's distributions module.
        mask: The host's ``mask`` handler.
        scale: The host's ``scale`` handler.
        exp: The array library's ``exp``.
        adapter: ``ppl_arms.numpyro`` or ``ppl_arms.pyro``.
        infer: The host's ``infer`` module (its own losses).
        loss_kwargs: ``loss_kwargs(nesting)``: the keywords an ELBO of this host needs for a model
            with ``nesting`` plates (Pyro's ``max_plate_nesting``; none for NumPyro).
        host_loss_kwargs: The same for the host's own losses (Pyro also vectorises particles).
    """

    name: str
    sample: Callable[..., Any]
    plate: Callable[..., Any]
    param: Callable[..., Any]
    dist: ModuleType
    mask: Callable[..., Any]
    scale: Callable[..., Any]
    exp: Callable[[Any], Any]
    adapter: ModuleType
    infer: ModuleType
    loss_kwargs: Callable[[int], dict[str, Any]]
    host_loss_kwargs: Callable[[int], dict[str, Any]]


def _numpyro_host() -> Host:
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    import numpyro.infer
    from numpyro import handlers

    import ppl_arms.numpyro

    return Host(
        name="numpyro",
        sample=numpyro.sample,
        plate=numpyro.plate,
        param=numpyro.param,
        dist=dist,
        mask=handlers.mask,
        scale=handlers.scale,
        exp=jnp.exp,
        adapter=ppl_arms.numpyro,
        infer=numpyro.infer,
        loss_kwargs=lambda nesting: {},
        host_loss_kwargs=lambda nesting: {},
    )


def _pyro_host() -> Host:
    import pyro
    import pyro.distributions as dist
    import pyro.infer
    import torch
    from pyro import poutine

    import ppl_arms.pyro

    return Host(
        name="pyro",
        sample=pyro.sample,
        plate=pyro.plate,
        param=pyro.param,
        dist=dist,
        mask=poutine.mask,
        scale=poutine.scale,
        exp=torch.exp,
        adapter=ppl_arms.pyro,
        infer=pyro.infer,
        loss_kwargs=lambda nesting: {"max_plate_nesting": nesting},
        host_loss_kwargs=lambda nesting: {
            "vectorize_particles": True,
            "max_plate_nesting": nesting,
        },
    )


_HOSTS: Mapping[str, Callable[[], Host]] = {"numpyro": _numpyro_host, "pyro": _pyro_host}


def host(name: str) -> Host:
    """The :class:`Host` of backend ``name`` (``"numpyro"`` or ``"pyro"``), imported on request."""
    if name not in _HOSTS:
        raise ValueError(f"unknown backend {name!r}; valid backends are {sorted(_HOSTS)}")
    return _HOSTS[name]()


@dataclass(frozen=True)
class PPL:
    """A backend namespace for writing a model once.

    Attributes:
        name: ``"numpyro"`` or ``"pyro"``.
        sample: ``numpyro.sample`` or ``pyro.sample``.
        dist: The backend's distributions module.
        data_plate: ``data_plate(batch_size, num_data)``: the plate over data points at ``dim=-1``
            (subsampled with scale ``num_data / batch_size`` when ``num_data`` is given).
        param: ``param(name, init, like)``: a learnable array initialised from the NumPy array
            ``init`` with the dtype of the array ``like``.
        constant: ``constant(array, like)``: a NumPy array as a backend array of ``like``'s dtype.
        mlp: ``mlp(prefix, init, num_layers)``: a callable applying the MLP whose weights are
            ``init[f"{prefix}.{i}.weight"]`` (``[fan_in, fan_out]``) and biases, with LeakyReLU
            between layers and none after the last.
        to_float: ``to_float(z, like)``: cast a sample (integer or boolean) to ``like``'s dtype.
        one_hot_flat: ``one_hot_flat(z, num_categories, like)``: one-hot encode integer ``z`` of
            shape ``[..., L]`` to ``[..., L * K]`` in ``like``'s dtype.
        stop_gradient: ``jax.lax.stop_gradient`` or ``Tensor.detach``.
    """

    name: str
    sample: Callable[..., Any]
    dist: ModuleType
    data_plate: Callable[[int, int | None], Any]
    param: Callable[[str, np.ndarray, Any], Any]
    constant: Callable[[np.ndarray, Any], Any]
    mlp: Callable[[str, Mapping[str, np.ndarray], int], Callable[[Any], Any]]
    to_float: Callable[[Any, Any], Any]
    one_hot_flat: Callable[[Any, int, Any], Any]
    stop_gradient: Callable[[Any], Any]


def numpyro_ppl() -> PPL:
    """The NumPyro namespace: weights are ``numpyro.param`` sites named ``"{prefix}.{i}.weight"``."""
    import jax
    import jax.numpy as jnp
    import numpyro

    def data_plate(batch_size: int, num_data: int | None) -> Any:
        if num_data is None:
            return numpyro.plate(DATA_PLATE, batch_size, dim=-1)
        return numpyro.plate(DATA_PLATE, num_data, subsample_size=batch_size, dim=-1)

    def param(name: str, init: np.ndarray, like: Any) -> Any:
        return numpyro.param(name, jnp.asarray(init, dtype=like.dtype))

    def mlp(prefix: str, init: Mapping[str, np.ndarray], num_layers: int) -> Callable:
        names = layer_names(prefix, num_layers)

        def apply(h: Any) -> Any:
            for i, (w_name, b_name) in enumerate(names):
                if i:
                    h = jax.nn.leaky_relu(h, LEAKY_RELU_SLOPE)
                h = h @ param(w_name, init[w_name], h) + param(b_name, init[b_name], h)
            return h

        return apply

    def one_hot_flat(z: Any, num_categories: int, like: Any) -> Any:
        h = jax.nn.one_hot(z, num_categories, dtype=like.dtype)
        return jnp.reshape(h, (*h.shape[:-2], h.shape[-2] * num_categories))

    h = _numpyro_host()
    return PPL(
        name=h.name,
        sample=h.sample,
        dist=h.dist,
        data_plate=data_plate,
        param=param,
        constant=lambda a, like: jnp.asarray(a, dtype=like.dtype),
        mlp=mlp,
        to_float=lambda z, like: jnp.asarray(z, dtype=like.dtype),
        one_hot_flat=one_hot_flat,
        stop_gradient=jax.lax.stop_gradient,
    )


def pyro_ppl() -> PPL:
    """The Pyro namespace: each MLP is a ``torch.nn.Sequential`` registered with ``pyro.module``.

    The modules are created at their first call, with the dtype of that call's input, and copied
    from the NumPy initial values (``nn.Linear`` stores the transposed ``[fan_out, fan_in]``
    weight). Their parameters appear in the param store as ``"{prefix}$$${index}.weight"``.
    """
    import pyro
    import torch

    def data_plate(batch_size: int, num_data: int | None) -> Any:
        if num_data is None:
            return pyro.plate(DATA_PLATE, batch_size, dim=-1)
        return pyro.plate(DATA_PLATE, num_data, subsample_size=batch_size, dim=-1)

    def constant(a: np.ndarray, like: Any) -> Any:
        return torch.as_tensor(a, dtype=like.dtype, device=like.device)

    def param(name: str, init: np.ndarray, like: Any) -> Any:
        return pyro.param(name, lambda: constant(init, like).clone())

    def mlp(prefix: str, init: Mapping[str, np.ndarray], num_layers: int) -> Callable:
        names = layer_names(prefix, num_layers)
        built: list[torch.nn.Module] = []

        def make(like: torch.Tensor) -> torch.nn.Module:
            layers: list[torch.nn.Module] = []
            for i, (w_name, b_name) in enumerate(names):
                if i:
                    layers.append(torch.nn.LeakyReLU(LEAKY_RELU_SLOPE))
                fan_in, fan_out = init[w_name].shape
                linear = torch.nn.Linear(fan_in, fan_out, dtype=like.dtype, device=like.device)
                with torch.no_grad():
                    linear.weight.copy_(constant(init[w_name].T, like))
                    linear.bias.copy_(constant(init[b_name], like))
                layers.append(linear)
            return torch.nn.Sequential(*layers)

        def apply(h: torch.Tensor) -> torch.Tensor:
            if not built:
                built.append(make(h))
            return pyro.module(prefix, built[0])(h)

        return apply

    def one_hot_flat(z: Any, num_categories: int, like: Any) -> Any:
        h = torch.nn.functional.one_hot(z.long(), num_categories).to(like.dtype)
        return h.flatten(-2)

    h = _pyro_host()
    return PPL(
        name=h.name,
        sample=h.sample,
        dist=h.dist,
        data_plate=data_plate,
        param=param,
        constant=constant,
        mlp=mlp,
        to_float=lambda z, like: z.to(like.dtype),
        one_hot_flat=one_hot_flat,
        stop_gradient=lambda t: t.detach(),
    )
