"""``config_estimator``: the enumeration-free counterpart of ``config_enumerate``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from types import TracebackType
from typing import Any, Self

from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample

from ppl_arms.config import SiteMarker

__all__ = ["config_estimator"]


class _MarkSites(Messenger):
    def __init__(self, marker: SiteMarker) -> None:
        super().__init__()
        self.marker = marker
        self._seen: set[str] = set()
        self._checked = False

    def __enter__(self) -> Self:
        self._seen = set()
        return super().__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc_value, traceback)
        if exc_type is None and not self._checked:
            # the first complete run: every name in ``sites`` must have been sampled
            self.marker.check_seen(self._seen)
            self._checked = True

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if isinstance(msg["fn"], _Subsample):
            return
        self._seen.add(msg["name"])
        infer = msg.get("infer") or {}
        extra = self.marker.entries(
            msg["name"],
            not msg["is_observed"],
            bool(getattr(msg["fn"], "has_rsample", False)),
            infer,
        )
        if extra:
            msg["infer"] = {**infer, **extra}  # a copy: user dicts are never mutated


def config_estimator(
    fn: Callable | None = None,
    estimator: str = "arms",
    sites: Iterable[str] | None = None,
    copula: str | None = None,
) -> Any:
    """Set ``infer={"estimator": estimator}`` on the discrete latent sites of a guide.

    The enumeration-free counterpart of :func:`pyro.infer.config_enumerate`. Sites that already
    carry an ``"estimator"`` keep it; reparameterised sites are left alone (naming one in ``sites``
    is an error, as is naming a site that the first run of ``fn`` never samples: a misspelt name
    fails at the first trace). Works as a function or a decorator::

        guide = config_estimator(guide, "loorf", sites=["assignment"])

        @config_estimator(estimator="disarm")
        def guide(data): ...

    Args:
        fn: The guide (or any model-like callable). ``None`` returns a decorator.
        estimator: ``"arms"``, ``"loorf"``, ``"disarm"`` or ``"reinforce"``.
        sites: Names of the sites to mark; ``None`` marks every discrete latent site.
        copula: Optionally also set ``infer={"copula": ...}`` (``"dirichlet"`` or ``"gaussian"``).

    Returns:
        The wrapped callable (or a decorator when ``fn`` is ``None``).
    """
    marker = SiteMarker(estimator, None if sites is None else frozenset(sites), copula)
    if fn is None:
        return partial(config_estimator, estimator=estimator, sites=sites, copula=copula)
    return _MarkSites(marker)(fn)
