"""The losses the benchmarks compare, by name: ours and the host libraries'.

This is the only place where benchmark *names* map to loss objects (one dict, no ``if``/``elif``).
Every entry states its cost in model evaluations per data point and step, so runs can be compared
at an equal evaluation budget ``N`` (``--num-particles``):

* ELBO losses (``arms``, ``loorf``, ``disarm``, ``reinforce``, the hosts' ``tracegraph``/``trace``)
  use ``N`` particles;
* the local IWAE estimators (``iwae-arms``, ``iwae-loorf``) evaluate ``n`` i.i.d. plus ``n`` coupled
  samples, so they get a bound of ``n = N/2`` samples; ``iwae-vimco`` and the hosts' ``renyi`` use
  a bound of ``N`` samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LOSSES", "LossSpec", "make_loss"]


@dataclass(frozen=True)
class LossSpec:
    """How to build one benchmarked loss.

    Attributes:
        numpyro: ``f(N) -> loss`` for NumPyro, or ``None`` if unavailable there.
        pyro: ``f(N) -> loss`` for Pyro (given the model's plate nesting via ``nesting``).
        objective: ``"elbo"`` or ``"bound"`` (the multi-sample bound the loss optimises).
        bound_size: ``f(N) -> n``, the bound's number of samples (``1`` for ELBO losses).
        ours: Whether it is a ppl_arms loss.
        bernoulli_only: Whether it rejects categorical sites (DisARM).
        note: A short caveat printed in the table (e.g. a known bias).
    """

    numpyro: Callable[[int], Any] | None
    pyro: Callable[[int, int], Any] | None
    objective: str = "elbo"
    bound_size: Callable[[int], int] = lambda n: 1
    ours: bool = True
    bernoulli_only: bool = False
    note: str = ""


def _np(name: str, **kw: Any) -> Callable[[int], Any]:
    def build(n: int) -> Any:
        import ppl_arms.numpyro as ours

        return getattr(ours, name)(n, **kw)

    return build


def _py(name: str, **kw: Any) -> Callable[[int, int], Any]:
    def build(n: int, nesting: int) -> Any:
        import ppl_arms.pyro as ours

        return getattr(ours, name)(n, max_plate_nesting=nesting, **kw)

    return build


def _np_iwae(estimator: str, half: bool) -> Callable[[int], Any]:
    return lambda n: _np("TraceARMS_IWAE", estimator=estimator)(n // 2 if half else n)


def _py_iwae(estimator: str, half: bool) -> Callable[[int, int], Any]:
    return lambda n, nesting: _py("TraceARMS_IWAE", estimator=estimator)(
        n // 2 if half else n, nesting
    )


def _host_numpyro(cls: str, **kw: Any) -> Callable[[int], Any]:
    def build(n: int) -> Any:
        import numpyro.infer

        return getattr(numpyro.infer, cls)(num_particles=n, **kw)

    return build


def _host_pyro(cls: str, **kw: Any) -> Callable[[int, int], Any]:
    def build(n: int, nesting: int) -> Any:
        import pyro.infer

        return getattr(pyro.infer, cls)(
            num_particles=n, vectorize_particles=True, max_plate_nesting=nesting, **kw
        )

    return build


LOSSES: Mapping[str, LossSpec] = {
    "arms": LossSpec(_np("TraceARMS_ELBO"), _py("TraceARMS_ELBO")),
    "arms-gaussian": LossSpec(
        _np("TraceARMS_ELBO", copula="gaussian"), _py("TraceARMS_ELBO", copula="gaussian")
    ),
    "graph-arms": LossSpec(_np("TraceGraphARMS_ELBO"), _py("TraceGraphARMS_ELBO")),
    "loorf": LossSpec(
        _np("TraceARMS_ELBO", estimator="loorf"), _py("TraceARMS_ELBO", estimator="loorf")
    ),
    "disarm": LossSpec(
        _np("TraceARMS_ELBO", estimator="disarm"),
        _py("TraceARMS_ELBO", estimator="disarm"),
        bernoulli_only=True,
    ),
    "reinforce": LossSpec(
        _np("TraceARMS_ELBO", estimator="reinforce"),
        _py("TraceARMS_ELBO", estimator="reinforce"),
    ),
    "iwae-arms": LossSpec(
        _np_iwae("arms", half=True),
        _py_iwae("arms", half=True),
        "bound",
        lambda n: n // 2,
    ),
    "iwae-loorf": LossSpec(
        _np_iwae("loorf", half=True),
        _py_iwae("loorf", half=True),
        "bound",
        lambda n: n // 2,
    ),
    "iwae-vimco": LossSpec(
        _np_iwae("vimco", half=False), _py_iwae("vimco", half=False), "bound", lambda n: n
    ),
    "tracegraph": LossSpec(
        _host_numpyro("TraceGraph_ELBO"),
        _host_pyro("TraceGraph_ELBO"),
        ours=False,
        note="host TraceGraph_ELBO (NumPyro: no baseline, score scaled twice under subsampling)",
    ),
    "trace": LossSpec(
        _host_numpyro("Trace_ELBO"),
        _host_pyro("Trace_ELBO"),
        ours=False,
        note="host Trace_ELBO (NumPyro: no score term for discrete sites, biased)",
    ),
    "renyi": LossSpec(
        _host_numpyro("RenyiELBO", alpha=0.0),
        _host_pyro("RenyiELBO", alpha=0.0),
        "bound",
        lambda n: n,
        ours=False,
        note="host RenyiELBO(alpha=0): zero (Pyro) or wrong-sign (NumPyro) discrete gradients",
    ),
}
"""Benchmark loss name -> :class:`LossSpec`."""


def make_loss(name: str, backend: str, num_particles: int, nesting: int = 1) -> Any:
    """Build the loss ``name`` for ``backend`` at an evaluation budget of ``num_particles``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names are {sorted(LOSSES)}")
    spec = LOSSES[name]
    if backend == "numpyro":
        return spec.numpyro(num_particles)
    if backend == "pyro":
        return spec.pyro(num_particles, nesting)
    raise ValueError(f"unknown backend {backend!r}; valid backends are ['numpyro', 'pyro']")
