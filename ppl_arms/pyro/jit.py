"""Compiled variants of the Pyro losses: ``JitTraceARMS_ELBO``, ``JitTraceGraphARMS_ELBO``, ``JitTraceARMS_IWAE``.

They follow Pyro's :class:`~pyro.infer.JitTrace_ELBO`: the whole surrogate loss (coupled guide
draws, model replay, log-densities, learning signals and the estimator's surrogate) is recorded
once with :func:`torch.jit.trace` as a function of the unconstrained parameters and the tensor
arguments, and later steps run the recorded graph without the Python of Pyro's effect handlers.
The random draws (the copula noise and any reparameterised guide draws) are recorded as torch
sampling ops, so each call draws fresh numbers from torch's global generator, in the order the
eager loss draws them: for the same seed a compiled loss gives the eager loss's value and gradient.

Differences from Pyro's ``pyro.ops.jit.trace``:

* a new trace is recorded when the shapes, dtypes or devices of the tensor arguments change (Pyro
  retraces only when their number or the keyword arguments change, and would reuse a trace
  recorded at another batch size); :attr:`num_compilations` counts the traces;
* the parameter-discovery run and the recording run draw from a forked random stream, so the
  first call consumes the random numbers of one step, as the eager loss does.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Hashable
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.ops.jit import _hashable_args_kwargs
from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample
from pyro.util import ignore_jit_warnings, warn_if_nan

from ppl_arms.pyro.elbo import TraceARMS_ELBO, TraceGraphARMS_ELBO
from ppl_arms.pyro.iwae import TraceARMS_IWAE

__all__ = ["JitTraceARMS_ELBO", "JitTraceARMS_IWAE", "JitTraceGraphARMS_ELBO"]

_TRACE_DEPRECATED = "`torch.jit.trace` is (deprecated|not supported)"
_SHAPE_ONLY_MODULES = r"(ppl_arms|pyro\.infer\.util)(\.|$)"
"""Modules whose tracer warnings (tensor sizes turned into Python values) are silenced: their
Python branches and constants depend on shapes only, and a new shape records a new trace."""


def _signature(args: tuple) -> tuple[Hashable, ...]:
    sig = []
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor):
            raise TypeError(
                f"compiled ppl_arms losses take tensors as positional arguments (argument {i} is a "
                f"{type(a).__name__}); pass other inputs as keyword arguments, which are part of "
                "the compilation key"
            )
        sig.append((tuple(a.shape), a.dtype, a.device, a.requires_grad))
    return tuple(sig)


class _SampleDetached(Messenger):
    """Draw the values of non-reparameterised latent sites that no inner handler has set, detached.

    Used outermost, so that it acts after the coupling and the replay. Eager samplers run under
    ``torch.no_grad``, which a trace does not record: the recorded graph would differentiate
    through the sampler (and fail where torch has no derivative, e.g. ``aten::binomial``). The
    draw is the one Pyro would make (same call, same random numbers); the detach is recorded.
    """

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        fn = msg["fn"]
        if msg["is_observed"] or msg["value"] is not None or msg["done"]:
            return
        if isinstance(fn, _Subsample) or getattr(fn, "has_rsample", True):
            return
        msg["value"] = fn(*msg["args"], **msg["kwargs"]).detach()
        msg["done"] = True


class _Compiled:
    """One recorded loss: the traced function and the parameter names it takes first."""

    def __init__(
        self, fn: Callable[..., torch.Tensor], param_names: list[str], params: tuple
    ) -> None:
        self.fn = fn
        self.param_names = param_names
        self.param_signature = _signature(params)


class _JitMixin:
    """Compile ``differentiable_loss`` with :func:`torch.jit.trace`, one trace per input signature."""

    ignore_jit_warnings: bool
    jit_options: dict[str, Any]

    def __init__(
        self,
        *args: Any,
        ignore_jit_warnings: bool = False,
        jit_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)  # the eager loss's arguments
        self.ignore_jit_warnings = ignore_jit_warnings
        self.jit_options = {"check_trace": False, **(jit_options or {})}
        self._compiled: dict[Hashable, _Compiled] = {}
        self._num_traces = 0

    @property
    def num_compilations(self) -> int:
        """How many traces have been recorded so far.

        One per model, guide and signature of the inputs (shapes, dtypes and devices of the
        tensor arguments and of the parameters, values of the keyword arguments).
        """
        return self._num_traces

    def _surrogate(self, model: Callable, guide: Callable, kwargs: dict) -> Callable:
        weakself = weakref.ref(self)

        def surrogate(*args: Any) -> torch.Tensor:
            elbo = weakself()
            assert elbo is not None
            with _SampleDetached():
                for traces in elbo._traces(model, guide, args, kwargs):  # type: ignore[attr-defined]
                    return elbo._loss(*traces)  # type: ignore[attr-defined]
            raise AssertionError("unreachable")  # pragma: no cover

        return surrogate

    @staticmethod
    def _capture(surrogate: Callable, args: tuple) -> list[str]:
        """Run the loss eagerly once, off the random stream; return the names of its params.

        This validates the programs, guesses ``max_plate_nesting`` and creates missing params.
        """
        fork = torch.random.fork_rng(devices=[])
        with fork, poutine.block(), poutine.trace(param_only=True) as capture:
            surrogate(*args)
        return sorted(capture.trace.nodes)

    def _compile(self, model: Callable, guide: Callable, args: tuple, kwargs: dict) -> _Compiled:
        surrogate = self._surrogate(model, guide, kwargs)
        names = self._capture(surrogate, args)

        def recorded(*params_and_args: torch.Tensor) -> torch.Tensor:
            constrained = {}
            for name, unconstrained in zip(names, params_and_args[: len(names)], strict=True):
                constrained[name] = pyro.param(name)  # recomputed from ``unconstrained``
                assert constrained[name].unconstrained() is unconstrained
            return poutine.replay(surrogate, params=constrained)(*params_and_args[len(names) :])

        if self.ignore_jit_warnings:
            recorded = ignore_jit_warnings()(recorded)
        params = tuple(pyro.param(name).unconstrained() for name in names)
        # The recording run draws from a forked stream too: the compiled call that follows draws
        # what the eager loss would.
        fork = torch.random.fork_rng(devices=[])
        no_checks = pyro.validation_enabled(False)
        with fork, no_checks, torch.enable_grad(), warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=_TRACE_DEPRECATED, category=DeprecationWarning
            )
            # Our own Python reads shapes only; shapes key the cache, so these are safe.
            warnings.filterwarnings(
                "ignore", category=torch.jit.TracerWarning, module=_SHAPE_ONLY_MODULES
            )
            fn = torch.jit.trace(recorded, params + args, **self.jit_options)
        self._num_traces += 1
        return _Compiled(fn, names, params)

    def _params(
        self, compiled: _Compiled, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> list[torch.Tensor] | None:
        """The trace's unconstrained params, or ``None`` if they no longer fit the trace."""
        store = pyro.get_param_store()
        if any(name not in store for name in compiled.param_names):
            # the param store was cleared: create the params again (off the random stream)
            self._capture(self._surrogate(model, guide, kwargs), args)
        params = [pyro.param(name).unconstrained() for name in compiled.param_names]
        return params if _signature(tuple(params)) == compiled.param_signature else None

    def differentiable_loss(
        self, model: Callable, guide: Callable, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The negated ELBO estimate, from the compiled surrogate (recorded on first use).

        Tensor inputs go in ``*args`` (their shapes, dtypes and devices key the compilation);
        other inputs go in ``**kwargs`` (their values key it).
        """
        key = (id(model), id(guide), _signature(args), _hashable_args_kwargs((), kwargs)[1])
        compiled = self._compiled.get(key)
        params = None
        if compiled is not None:
            params = self._params(compiled, model, guide, args, kwargs)
        if params is None:  # first call, or params re-created at other shapes
            compiled = self._compiled[key] = self._compile(model, guide, args, kwargs)
            params = [pyro.param(name).unconstrained() for name in compiled.param_names]
        hidden = poutine.block(hide=compiled.param_names)
        with hidden, poutine.trace(param_only=True) as capture:
            loss = compiled.fn(*params, *args)
        new = set(capture.trace.nodes) - set(compiled.param_names)
        if new:
            raise NotImplementedError(
                f"compiled losses need every param created on the first call; new: {sorted(new)}"
            )
        warn_if_nan(loss, "loss")
        return loss


class JitTraceARMS_ELBO(_JitMixin, TraceARMS_ELBO):
    """:class:`~ppl_arms.pyro.TraceARMS_ELBO` compiled with :func:`torch.jit.trace`.

    Like Pyro's :class:`~pyro.infer.JitTrace_ELBO`, it needs models with static structure that
    read no global state except the param store; tensor inputs are passed positionally (a new
    trace is recorded when their shapes, dtypes or devices change), other inputs as keyword
    arguments (a new trace per distinct value). Every param must exist after the first call.
    Values and gradients equal the eager loss's for the same seed.

    Args:
        *args: Those of :class:`~ppl_arms.pyro.TraceARMS_ELBO`.
        ignore_jit_warnings: Silence :class:`torch.jit.TracerWarning` while recording.
        jit_options: Keyword arguments of :func:`torch.jit.trace` (``check_trace`` defaults to
            ``False``, as in Pyro).
        **kwargs: Those of :class:`~ppl_arms.pyro.TraceARMS_ELBO`.
    """


class JitTraceGraphARMS_ELBO(_JitMixin, TraceGraphARMS_ELBO):
    """:class:`~ppl_arms.pyro.TraceGraphARMS_ELBO` compiled with :func:`torch.jit.trace`.

    The dependency graph (provenance) is found while recording, so it must not change between
    calls (static structure). Args and conventions as :class:`JitTraceARMS_ELBO`.
    """


class JitTraceARMS_IWAE(_JitMixin, TraceARMS_IWAE):
    """:class:`~ppl_arms.pyro.TraceARMS_IWAE` compiled with :func:`torch.jit.trace`.

    Args and conventions as :class:`JitTraceARMS_ELBO`.
    """
