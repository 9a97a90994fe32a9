"""The losses the benchmarks compare, by name: ours and the host libraries'.

This is the only place where benchmark *names* map to loss objects (one dict, no ``if``/``elif``).
Every entry states its cost in model evaluations per data point and step, so runs can be compared
at an equal evaluation budget ``N`` (``--num-particles``):

* ELBO losses (``arms``, ``loorf``, ``disarm``, ``reinforce``, ``double-cv``, ``rodeo``, the
  hosts' ``tracegraph``/``trace``) use ``N`` particles (``double-cv`` and ``rodeo`` also take one
  gradient of the learning signal with respect to the samples: a backward pass, no evaluation);
* the local IWAE estimators (``iwae-arms``, ``iwae-loorf``) evaluate ``n`` i.i.d. plus ``n`` coupled
  samples, so they get a bound of ``n = N/2`` samples; ``iwae-vimco`` and the hosts' ``renyi`` use
  a bound of ``N`` samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models._ppl import Host, host

__all__ = ["LOSSES", "LossSpec", "available", "make_loss"]


@dataclass(frozen=True)
class LossSpec:
    """How to build one benchmarked loss, in either backend.

    Attributes:
        build: ``f(host, N, nesting) -> loss``: the loss for a :class:`models._ppl.Host`, an
            evaluation budget ``N`` and the model's plate nesting.
        objective: ``"elbo"`` or ``"bound"`` (the multi-sample bound the loss optimises).
        bound_size: ``f(N) -> n``, the bound's number of samples (``1`` for ELBO losses).
        ours: Whether it is a ppl_arms loss.
        bernoulli_only: Whether it rejects categorical sites (DisARM).
        note: A short caveat printed in the table (e.g. a known bias).
        backends: The backends that have it (the compiled Pyro losses exist in Pyro only:
            NumPyro steps are compiled by ``jax.jit`` whatever the loss).
    """

    build: Callable[[Host, int, int], Any]
    objective: str = "elbo"
    bound_size: Callable[[int], int] = lambda n: 1
    ours: bool = True
    bernoulli_only: bool = False
    note: str = ""
    backends: frozenset[str] = frozenset({"numpyro", "pyro"})


def _ours(cls: str, **kw: Any) -> Callable[[Host, int, int], Any]:
    def build(h: Host, n: int, nesting: int) -> Any:
        return getattr(h.adapter, cls)(n, **h.loss_kwargs(nesting), **kw)

    return build


def _iwae(estimator: str, half: bool) -> Callable[[Host, int, int], Any]:
    def build(h: Host, n: int, nesting: int) -> Any:
        return _ours("TraceARMS_IWAE", estimator=estimator)(h, n // 2 if half else n, nesting)

    return build


def _host(cls: str, **kw: Any) -> Callable[[Host, int, int], Any]:
    def build(h: Host, n: int, nesting: int) -> Any:
        return getattr(h.infer, cls)(num_particles=n, **h.host_loss_kwargs(nesting), **kw)

    return build


LOSSES: Mapping[str, LossSpec] = {
    "arms": LossSpec(_ours("TraceARMS_ELBO")),
    "arms-gaussian": LossSpec(_ours("TraceARMS_ELBO", copula="gaussian")),
    "graph-arms": LossSpec(_ours("TraceGraphARMS_ELBO")),
    "loorf": LossSpec(_ours("TraceARMS_ELBO", estimator="loorf")),
    "disarm": LossSpec(_ours("TraceARMS_ELBO", estimator="disarm"), bernoulli_only=True),
    "reinforce": LossSpec(_ours("TraceARMS_ELBO", estimator="reinforce")),
    "double-cv": LossSpec(
        _ours("TraceARMS_ELBO", estimator="double_cv"),
        note="Double CV: LOORF + Taylor control variate; one extra backward pass per step",
    ),
    "rodeo": LossSpec(
        _ours("TraceARMS_ELBO", estimator="rodeo"),
        note="RODEO: Stein control variates; one extra backward pass per step",
    ),
    "iwae-arms": LossSpec(_iwae("arms", half=True), "bound", lambda n: n // 2),
    "iwae-loorf": LossSpec(_iwae("loorf", half=True), "bound", lambda n: n // 2),
    "iwae-vimco": LossSpec(_iwae("vimco", half=False), "bound", lambda n: n),
    "tracegraph": LossSpec(
        _host("TraceGraph_ELBO"),
        ours=False,
        note="host TraceGraph_ELBO (NumPyro: no baseline, score scaled twice under subsampling)",
    ),
    "trace": LossSpec(
        _host("Trace_ELBO"),
        ours=False,
        note="host Trace_ELBO (NumPyro: no score term for discrete sites, biased)",
    ),
    "jit-arms": LossSpec(
        _ours("JitTraceARMS_ELBO", ignore_jit_warnings=True),
        backends=frozenset({"pyro"}),
        note="TraceARMS_ELBO recorded once with torch.jit.trace (Pyro only)",
    ),
    "jit-trace": LossSpec(
        _host("JitTrace_ELBO", ignore_jit_warnings=True),
        ours=False,
        backends=frozenset({"pyro"}),
        note="host JitTrace_ELBO (Pyro only)",
    ),
    "renyi": LossSpec(
        _host("RenyiELBO", alpha=0.0),
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
    if backend not in LOSSES[name].backends:
        raise ValueError(f"loss {name!r} exists in {sorted(LOSSES[name].backends)} only")
    return LOSSES[name].build(host(backend), num_particles, nesting)


def available(names: Sequence[str], backend: str) -> list[str]:
    """The losses of ``names`` that ``backend`` has, in order."""
    return [k for k in names if backend in LOSSES[k].backends]
