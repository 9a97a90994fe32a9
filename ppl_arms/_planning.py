"""Planning a latent guide site: the coupling handlers' shared decisions, before any draw.

Both adapters' coupling handlers call :func:`plan_site` at each unobserved guide sample site once
they have unwrapped its distribution; it checks the site, picks its estimator and returns its
:class:`~ppl_arms._records.SitePlan` (or ``None`` when the host's own draw is kept). Only the
drawing itself (the host's random numbers and particle layout) stays in the adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ppl_arms._records import SitePlan
from ppl_arms.config import INFER_KEY, EstimatorConfig, check_latent_site
from ppl_arms.core.estimators import DistKind

__all__ = ["SiteFacts", "plan_site"]


class SiteFacts(Protocol):
    """What :func:`plan_site` reads from an adapter's unwrapped site distribution."""

    kind: DistKind
    event_ndims: int

    @property
    def num_categories(self) -> int:
        """``K`` for categorical sites, 2 for Bernoulli, 0 otherwise."""


def plan_site(
    config: EstimatorConfig,
    name: str,
    infer: Mapping[str, Any],
    fn: Any,
    valued: str | None,
    unwrap: Callable[[Any], SiteFacts],
    vimco: bool = False,
) -> tuple[SitePlan, SiteFacts] | None:
    """Check a latent guide site and plan its estimator.

    Args:
        config: The loss's estimator configuration.
        name: The site's name.
        infer: Its ``infer`` dict.
        fn: Its distribution (``has_rsample`` tells pathwise sites apart).
        valued: ``None`` if the site is to be sampled, else how it already got a value.
        unwrap: ``fn -> SiteFacts``: the adapter's unwrapping of the distribution.
        vimco: Whether the loss uses VIMCO signals at every site (per-site estimators refused).

    Returns:
        ``(plan, facts)``, or ``None`` for a site the host draws alone: reparameterised, or
        categorical with one category (a fixed value with zero score).

    Raises:
        ValueError: naming the site, for a bad site (:func:`~ppl_arms.config.check_latent_site`)
            or a per-site estimator under VIMCO.
    """
    if vimco and INFER_KEY in infer:
        raise ValueError(
            f"site '{name}' asks for infer={{'{INFER_KEY}': {infer[INFER_KEY]!r}}}, but "
            "TraceARMS_IWAE(estimator='vimco'), the default, uses VIMCO signals at every site; "
            "remove the key or pass estimator='arms' / 'loorf' / 'vimco-arms', which honour "
            "per-site estimators"
        )
    if check_latent_site(name, infer, fn.has_rsample, type(fn).__name__, valued):
        return None
    facts = unwrap(fn)
    estimator = config.for_site(facts.kind, name, infer)
    if facts.kind is DistKind.CATEGORICAL and facts.num_categories == 1:
        return None
    return SitePlan(name, facts.kind, estimator, facts.event_ndims), facts
