"""Planning a latent guide site: the coupling handlers' shared decisions, before any draw.

Both adapters' coupling handlers derive from :class:`PlannedSites` and call
:meth:`~PlannedSites.plan` at each unobserved guide sample site; through :func:`plan_site` it
checks the site, picks its estimator and records its :class:`~ppl_arms._records.SitePlan` and
unwrapped distribution (or keeps the host's own draw). The normalisers then ask the handler for
each planned site's :class:`~ppl_arms._records.Latent` (:meth:`~PlannedSites.latent`) and the loss
for what its coupled particles share (:meth:`~PlannedSites.coupled`). Only the drawing itself (the
host's random numbers and particle layout) stays in the adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ppl_arms._records import Latent, SiteGradient, SitePlan, latent
from ppl_arms._sites import SiteDistribution
from ppl_arms._typing import Array
from ppl_arms.config import INFER_KEY, EstimatorConfig, check_latent_site
from ppl_arms.core.carriers import Coupled
from ppl_arms.core.estimators import DistKind

__all__ = ["PlannedSites", "SiteFacts", "plan_site"]


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


class PlannedSites:
    """What a coupling handler records about the guide sites it plans, for the loss.

    Attributes:
        config: The loss's estimator configuration.
        vimco: Refuse per-site estimators (``TraceARMS_IWAE(estimator='vimco')``).
        plans: Per estimated site, its plan.
        distributions: Per estimated site, its unwrapped distribution.
        shared: Per site, boolean ``[*coords]``: coordinates whose parameters are equal across the
            coupled particles (only where the handler had to compare them).
        lead: Per site, the coupled particles' common logits, where the handler found them.
    """

    def _init_plans(self, config: EstimatorConfig, vimco: bool) -> None:
        self.config = config
        self.vimco = vimco
        self.plans: dict[str, SitePlan] = {}
        self.distributions: dict[str, SiteDistribution] = {}
        self.shared: dict[str, Array] = {}
        self.lead: dict[str, Array] = {}

    def plan(
        self, msg: dict[str, Any], valued: str | None, unwrap: Callable[[Any], SiteDistribution]
    ) -> tuple[SitePlan, SiteDistribution] | None:
        """Plan the sample site of ``msg`` (:func:`plan_site`) and record it.

        Args:
            msg: The host's message of an unobserved sample site.
            valued: ``None`` if the site is to be sampled, else how it already got a value.
            unwrap: The adapter's unwrapping of the site's distribution.
        """
        name = msg["name"]
        infer = msg.get("infer") or {}
        planned = plan_site(self.config, name, infer, msg["fn"], valued, unwrap, self.vimco)
        if planned is not None:
            self.plans[name], self.distributions[name] = planned  # type: ignore[assignment]
        return planned  # type: ignore[return-value]

    def coupled(self, name: str) -> Coupled:
        """What the coupled particles of site ``name`` share."""
        return Coupled(self.shared.get(name), self.lead.get(name))

    def latent(
        self, name: str, value: Any, scale: Any, gradient: SiteGradient | None
    ) -> Latent | None:
        """The :class:`~ppl_arms._records.Latent` of site ``name`` (``None`` if not planned).

        Args:
            name: The site's name.
            value: Its value in the trace.
            scale: Its scale in the trace.
            gradient: Its :class:`~ppl_arms._records.SiteGradient`, if its estimator reads one.
        """
        if name not in self.plans:
            return None
        return latent(self.plans[name], self.distributions[name], value, scale, gradient)
