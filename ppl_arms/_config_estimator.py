"""``config_estimator``, written once: the marking messenger's logic and the public function.

Each adapter keeps only what touches its host: a ``Messenger`` subclass that mixes in
:class:`MarkSites` and hands each sample message to :meth:`MarkSites.mark`, and a ``wrap`` function
that applies it to a program. :func:`make_config_estimator` builds the public function from them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from types import TracebackType
from typing import Any

from ppl_arms.config import SiteMarker

__all__ = ["MarkSites", "make_config_estimator"]

_DOC = """Set ``infer={{"estimator": estimator}}`` on the discrete latent sites of a guide.

    The enumeration-free counterpart of :func:`{enumerate_ref}`. Sites that already carry an
    ``"estimator"`` keep it; reparameterised sites are left alone (naming one in ``sites`` is an
    error, as is naming a site that the first run of ``fn`` never samples: a misspelt name fails at
    the first trace). Works as a function or a decorator::

        guide = config_estimator(guide, "loorf", sites=["assignment"])

        @config_estimator(estimator="disarm")
        def guide(data): ...

    Args:
        fn: The guide (or any model-like callable). ``None`` returns a decorator.
        estimator: ``"arms"``, ``"loorf"``, ``"disarm"``, ``"reinforce"``, ``"double_cv"`` or
            ``"rodeo"``.
        sites: Names of the sites to mark; ``None`` marks every discrete latent site.
        copula: Optionally also set ``infer={{"copula": ...}}`` (``"dirichlet"`` or ``"gaussian"``).

    Returns:
        The wrapped callable (or a decorator when ``fn`` is ``None``).
    """


class MarkSites:
    """Mixin of both adapters' marking messengers: adds the entries, checks ``sites`` once.

    Put it before the host's ``Messenger`` in the bases; it takes the :class:`SiteMarker` as the
    keyword ``marker`` and passes every other argument on to the host's constructor.
    """

    def __init__(self, *args: Any, marker: SiteMarker, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marker = marker
        self._seen: set[str] = set()
        self._checked = False

    def __enter__(self) -> Any:
        self._seen = set()
        return super().__enter__()  # type: ignore[misc]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc_value, traceback)  # type: ignore[misc]
        if exc_type is None and not self._checked:
            # the first complete run: every name in ``sites`` must have been sampled
            self.marker.check_seen(self._seen)
            self._checked = True

    def mark(self, msg: dict[str, Any], reparameterized: bool) -> None:
        """Record a sample message's site and add its ``infer`` entries (to a copy of the dict).

        Args:
            msg: The host's message of a sample site (subsample sites excluded).
            reparameterized: Whether the site's distribution has ``rsample``.
        """
        self._seen.add(msg["name"])
        infer = msg.get("infer") or {}
        extra = self.marker.entries(msg["name"], not msg["is_observed"], reparameterized, infer)
        if extra:
            msg["infer"] = {**infer, **extra}  # a copy: user dicts are never mutated


def make_config_estimator(
    wrap: Callable[[Callable, SiteMarker], Callable], module: str, enumerate_ref: str
) -> Callable[..., Any]:
    """The public ``config_estimator`` of one adapter.

    Args:
        wrap: Applies the adapter's marking messenger to a program.
        module: The adapter module that exports the function (its ``__module__``).
        enumerate_ref: The host's ``config_enumerate``, for the docstring.

    Returns:
        The function, with its docstring.
    """

    def config_estimator(
        fn: Callable | None = None,
        estimator: str = "arms",
        sites: Iterable[str] | None = None,
        copula: str | None = None,
    ) -> Any:
        marker = SiteMarker(estimator, None if sites is None else frozenset(sites), copula)
        if fn is None:
            return partial(config_estimator, estimator=estimator, sites=sites, copula=copula)
        return wrap(fn, marker)

    config_estimator.__doc__ = _DOC.format(enumerate_ref=enumerate_ref)
    config_estimator.__module__ = module
    config_estimator.__qualname__ = config_estimator.__name__
    return config_estimator
