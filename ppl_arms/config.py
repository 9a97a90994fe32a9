"""Estimator names, per-site resolution, and validation shared by the Pyro and NumPyro adapters.

This is the only place where estimator *names* (strings from the public API and from
``infer={"estimator": ...}``) are mapped to estimator objects, through the tables below
(:data:`ESTIMATORS`, :data:`IWAE_ESTIMATORS`, :data:`COPULAS`, :data:`CATEGORICAL_COUPLINGS`).

Names accepted at discrete guide sites:

============= ================================ ================================ ===================
name          Bernoulli                        Categorical                      other non-reparam.
============= ================================ ================================ ===================
``arms``      :class:`~ppl_arms.core.ARMS`     :class:`~ppl_arms.core.CARMS`    LOORF
``loorf``     LOORF                            LOORF                            LOORF
``disarm``    :class:`~ppl_arms.core.DisARM`   error (Bernoulli only)           LOORF
``reinforce`` REINFORCE                        REINFORCE                        REINFORCE
``double_cv`` :class:`~ppl_arms.core.DoubleCV` DoubleCV (one-hot values)        LOORF
``rodeo``     :class:`~ppl_arms.core.RODEO`    RODEO (one-hot values)           LOORF
============= ================================ ================================ ===================

``double_cv`` and ``rodeo`` also read the gradient of the learning signal with respect to the
sample (ELBO losses only); where the model uses a value non-differentiably they are LOORF, with a
warning. Their learned parameters are registered as parameters of the loss named
:func:`learned_name` (prefix :data:`LEARNED_PREFIX`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ppl_arms.core.copulas import Copula, DirichletCopula, GaussianCopula
from ppl_arms.core.estimators import (
    ARMS,
    CARMS,
    LOORF,
    REINFORCE,
    RODEO,
    DisARM,
    DistKind,
    DoubleCV,
    SiteEstimator,
    StickBreakingCARMS,
)

__all__ = [
    "CATEGORICAL_COUPLINGS",
    "COPULAS",
    "DEFAULT_CATEGORICAL_COUPLING",
    "ESTIMATORS",
    "INFER_KEY",
    "IWAE_ESTIMATORS",
    "LEARNED_PREFIX",
    "EstimatorConfig",
    "IWAEEstimator",
    "SiteMarker",
    "check_choice",
    "check_latent_site",
    "check_num_particles",
    "learned_name",
    "log_density_error",
]

INFER_KEY = "estimator"
"""The key read from the ``infer`` dict of sample sites, as in ``infer={"estimator": "loorf"}``."""

COPULAS: Mapping[str, Callable[[], Copula]] = {
    "dirichlet": DirichletCopula,
    "gaussian": GaussianCopula,
}
"""Copula names accepted by ``copula=`` and ``infer={"copula": ...}``."""

CATEGORICAL_COUPLINGS: Mapping[str, Callable[[Copula], SiteEstimator]] = {
    "stick_breaking_unsorted": lambda copula: StickBreakingCARMS(copula, sort=False),
    "stick_breaking": StickBreakingCARMS,
    "inverse_cdf": CARMS,
}
"""The couplings ``"arms"`` can use at categorical sites (costs per element, ``n`` samples, ``K``
categories):

* ``"stick_breaking_unsorted"`` (the default, :data:`DEFAULT_CATEGORICAL_COUPLING`): stick breaking
  in category index order with the most probable category moved last, :math:`O(nK+n^2)`, no sort;
* ``"stick_breaking"``: sticks in ascending order of probability (Dong et al.), :math:`O(nK+n^2)`
  plus a sort of the ``K`` probabilities (slow under XLA on CPU);
* ``"inverse_cdf"``: CARMS-I, pair pmf averaged over ``K(K-1)/2`` orderings,
  :math:`O(K^3+n^2K^2)`.

All three give exact weights. The default is the unsorted stick breaking at every ``K``: on the
categorical VAE its gradient variance equals or beats CARMS-I's and the sorted sticks' at ``K = 10``,
and it is the cheapest in both backends (docs/benchmarks/carms_cost.md).
"""

DEFAULT_CATEGORICAL_COUPLING = "stick_breaking_unsorted"
"""The coupling used at categorical sites unless ``categorical_coupling=`` says otherwise."""

_Factory = Callable[["EstimatorConfig"], SiteEstimator]

ESTIMATORS: Mapping[str, Mapping[DistKind, _Factory]] = {
    "arms": {
        DistKind.BERNOULLI: lambda cfg: ARMS(cfg.copula_obj),
        DistKind.CATEGORICAL: lambda cfg: CATEGORICAL_COUPLINGS[cfg.categorical_coupling](
            cfg.copula_obj
        ),
        DistKind.OTHER: lambda cfg: LOORF(),
    },
    "loorf": {kind: (lambda cfg: LOORF()) for kind in DistKind},
    "disarm": {
        DistKind.BERNOULLI: lambda cfg: DisARM(),
        DistKind.OTHER: lambda cfg: LOORF(),
    },
    "reinforce": {kind: (lambda cfg: REINFORCE()) for kind in DistKind},
    "double_cv": {
        DistKind.BERNOULLI: lambda cfg: DoubleCV(),
        DistKind.CATEGORICAL: lambda cfg: DoubleCV(),
        DistKind.OTHER: lambda cfg: LOORF(),
    },
    "rodeo": {
        DistKind.BERNOULLI: lambda cfg: RODEO(),
        DistKind.CATEGORICAL: lambda cfg: RODEO(),
        DistKind.OTHER: lambda cfg: LOORF(),
    },
}
"""Estimator families by name and distribution kind (see the module docstring)."""

LEARNED_PREFIX = "_ppl_arms"
"""Reserved prefix of the parameters that the losses register for estimators' learned parts."""


def learned_name(estimator: str, site: str, leaf: str) -> str:
    """The parameter name of one learned leaf of a site's estimator.

    ``"_ppl_arms/<estimator>/<site>/<leaf>"``, e.g. ``"_ppl_arms/rodeo/z/beta"``: a Pyro param
    (in the param store, trained by the ``SVI`` optimiser) or a NumPyro param (read from the
    loss's ``param_map``). Do not use the prefix for parameters of your own.
    """
    return f"{LEARNED_PREFIX}/{estimator}/{site}/{leaf}"


@dataclass(frozen=True)
class IWAEEstimator:
    """What an estimator name of ``TraceARMS_IWAE`` means for the loss.

    Three layouts of the particles (``n = num_particles``):

    * local (``vimco=False``, ``hybrid_coupled=0``): ``n`` i.i.d. particles in the bound plus ``n``
      coupled ones for the local learning signals (``2n`` evaluations, bound of ``n``);
    * VIMCO (``vimco=True``): ``n`` i.i.d. particles (``n`` evaluations, bound of ``n``);
    * hybrid (``hybrid_coupled=m``): ``n - m`` i.i.d. then ``m`` coupled particles, every coupled
      one inside its own bound with the i.i.d. ones (``n`` evaluations, bound of ``n - m + 1``;
      :mod:`ppl_arms.core.iwae_hybrid`).

    Attributes:
        site_estimator: The per-site family (a key of :data:`ESTIMATORS`) used over the coupled
            particles, and for the sites VIMCO cannot couple.
        vimco: VIMCO's leave-one-out signals on one set of ``n`` i.i.d. particles.
        hybrid_coupled: ``m > 0``: the hybrid layout with ``m`` coupled particles.
    """

    site_estimator: str
    vimco: bool = False
    hybrid_coupled: int = 0

    @property
    def num_sets(self) -> int:
        """How many sets of ``n`` particles one loss evaluation draws."""
        return 1 if self.vimco or self.hybrid_coupled else 2

    def coupled_range(self, n: int) -> tuple[int, int]:
        """``(first, count)``: the coupled particles are ``first .. first + count - 1``."""
        if self.hybrid_coupled:
            return n - self.hybrid_coupled, self.hybrid_coupled
        return n, n

    def bound_size(self, n: int) -> int:
        """The number of samples inside the bound for ``num_particles=n``."""
        return n - self.hybrid_coupled + 1 if self.hybrid_coupled else n

    def check(self, n: int, name: str) -> None:
        """Raise a ``ValueError`` if ``num_particles=n`` leaves the hybrid no i.i.d. particle."""
        if self.hybrid_coupled and n <= self.hybrid_coupled:
            raise ValueError(
                f"IWAE estimator {name!r} draws {self.hybrid_coupled} coupled particles plus at "
                f"least one i.i.d. particle: use num_particles >= {self.hybrid_coupled + 1}, "
                f"got {n}"
            )


IWAE_ESTIMATORS: Mapping[str, IWAEEstimator] = {
    "arms": IWAEEstimator("arms"),
    "loorf": IWAEEstimator("loorf"),
    "disarm": IWAEEstimator("disarm"),
    "vimco": IWAEEstimator("loorf", vimco=True),
    "vimco-arms": IWAEEstimator("arms", hybrid_coupled=2),
}
"""The estimator names accepted by ``TraceARMS_IWAE``: local ARMS/CARMS, local LOORF, local DisARM
(``2n`` evaluations, bound of ``n``), VIMCO (``n``, bound of ``n``) and the VIMCO-ARMS hybrid
(``n`` evaluations, bound of ``n - 1``: VIMCO at ``n - 2`` i.i.d. particles, ARMS/CARMS over an
antithetic coupled pair, each pair member in its own bound with the i.i.d. ones)."""


def check_choice(value: Any, valid: Any, what: str, site: str | None = None) -> None:
    """Raise a ``ValueError`` listing the valid choices if ``value`` is not one of them."""
    if value not in valid:
        where = f"site '{site}': " if site is not None else ""
        options = ", ".join(repr(v) for v in valid)
        raise ValueError(f"{where}unknown {what} {value!r}; valid choices are {options}")


def check_latent_site(
    name: str, infer: Mapping[str, Any], reparameterized: bool, dist_name: str, valued: str | None
) -> bool:
    """Check a latent guide site before its particles are drawn; ``True`` if it is pathwise.

    Shared by both adapters' coupling handlers, so that the same bad input gets the same error.

    Args:
        name: The site's name.
        infer: Its ``infer`` dict.
        reparameterized: Whether its distribution has ``rsample`` (pathwise gradients).
        dist_name: Its distribution's class name, for the message.
        valued: ``None`` if the site is to be sampled, else how it already got a value (e.g.
            ``"conditioned or replayed"``), which is an error.

    Returns:
        ``True`` for a reparameterised site (left to the host), ``False`` for a site to estimate.

    Raises:
        ValueError: naming the site, for enumeration marks, an estimator key on a
            reparameterised site, or a latent site that already has a value.
    """
    if infer.get("enumerate"):
        raise ValueError(
            f"site '{name}' is marked for enumeration (infer={{'enumerate': ...}}); "
            "ppl_arms losses sample every discrete site. Use TraceEnum_ELBO for enumerated "
            "sites, or remove the enumerate marking (e.g. drop config_enumerate)."
        )
    if reparameterized:
        if INFER_KEY in infer:
            raise ValueError(
                f"site '{name}' has infer={{'{INFER_KEY}': {infer[INFER_KEY]!r}}} but its "
                f"distribution {dist_name} is reparameterised and gets pathwise "
                "gradients; remove the key (estimators apply to discrete, non-reparameterised "
                "sites only)"
            )
        return True
    if valued is not None:
        raise ValueError(
            f"guide site '{name}' already has a value ({valued}); a latent guide site must be "
            "sampled for its gradient estimate to be valid"
        )
    return False


def log_density_error(site: str, value: float) -> ValueError:
    """The error for a sample site whose log-density is not finite for some particles.

    Shared by both adapters, which raise it when they can inspect the values (Pyro, and NumPyro
    outside ``jit`` and other JAX transformations).

    Args:
        site: The site, as ``"model site 'name'"`` or ``"guide site 'name'"``.
        value: One of its non-finite log-density values (``-inf``, ``inf`` or ``nan``).
    """
    if value == -math.inf:
        return ValueError(
            f"{site} has log-density -inf for some particles: the guide proposes values that the "
            "model rules out (e.g. a hard constraint written as factor(..., -inf)), so the "
            "objective is -inf and has no gradient. Give those values zero probability in the "
            "guide (e.g. mask the categories with -inf logits or zero probs), or write the "
            "constraint as a finite penalty. Under jit the loss is inf and those elements get "
            "no score gradient."
        )
    return ValueError(
        f"{site} has a non-finite log-density ({value}) for some particles; check the "
        "parameters and the support of its distribution"
    )


def check_num_particles(value: Any) -> None:
    """Raise a ``ValueError`` naming ``num_particles`` unless ``value`` is an integer ``>= 2``.

    Python and NumPy integers are accepted; ``bool``, floats (even ``4.0``) and strings are not,
    so a bad value fails when the loss is built rather than later in shape code. Every loss
    constructor reaches this check through :class:`EstimatorConfig`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"num_particles must be an integer >= 2 (the number of coupled samples), got "
            f"{value!r} of type {type(value).__name__}; pass e.g. num_particles=4"
        )
    if value < 2:
        raise ValueError(
            f"num_particles must be >= 2 for leave-one-out and antithetic estimators, got "
            f"{value}; pass e.g. num_particles=4"
        )


@dataclass(frozen=True)
class EstimatorConfig:
    """The loss-level estimator choice, resolved per site with ``infer`` overrides.

    Args:
        estimator: Default estimator name for discrete guide sites (a key of :data:`ESTIMATORS`).
        copula: Copula name (a key of :data:`COPULAS`) for ARMS/CARMS.
        categorical_coupling: A key of :data:`CATEGORICAL_COUPLINGS`.
        num_samples: Number of coupled samples per site (the particles that share the coupling).
    """

    estimator: str = "arms"
    copula: str = "dirichlet"
    categorical_coupling: str = DEFAULT_CATEGORICAL_COUPLING
    num_samples: int = 4

    def __post_init__(self) -> None:
        check_choice(self.estimator, ESTIMATORS, "estimator")
        check_choice(self.copula, COPULAS, "copula")
        check_choice(self.categorical_coupling, CATEGORICAL_COUPLINGS, "categorical_coupling")
        check_num_particles(self.num_samples)
        for make in ESTIMATORS[self.estimator].values():  # the estimator's own rules on n
            make(self).check(self.num_samples)

    @property
    def copula_obj(self) -> Copula:
        """The copula instance."""
        return COPULAS[self.copula]()

    def for_site(self, kind: DistKind, site: str, infer: Mapping[str, Any]) -> SiteEstimator:
        """The estimator of one discrete (non-reparameterised) guide site.

        Args:
            kind: The site's distribution kind.
            site: The site name (for error messages).
            infer: The site's ``infer`` dict; ``"estimator"`` and ``"copula"`` override the loss.

        Returns:
            A checked :class:`~ppl_arms.core.SiteEstimator`.
        """
        name = infer.get(INFER_KEY, self.estimator)
        check_choice(name, ESTIMATORS, "estimator", site)
        copula = infer.get("copula", self.copula)
        check_choice(copula, COPULAS, "copula", site)
        family = ESTIMATORS[name]
        if kind not in family:
            raise ValueError(
                f"site '{site}': estimator {name!r} does not apply to a {kind.value} site "
                f"(DisARM is for Bernoulli sites only); use 'arms' (CARMS at categorical sites) "
                f"or 'loorf', globally or with infer={{'estimator': 'arms'}} on this site"
            )
        cfg = self if copula == self.copula else _replace_copula(self, copula)
        est = family[kind](cfg)
        est.check(self.num_samples, site)
        return est


def _replace_copula(cfg: EstimatorConfig, copula: str) -> EstimatorConfig:
    return EstimatorConfig(cfg.estimator, copula, cfg.categorical_coupling, cfg.num_samples)


@dataclass(frozen=True)
class SiteMarker:
    """The decision behind ``config_estimator``: which sites get which ``infer`` entries.

    Args:
        estimator: The estimator name to set (a key of :data:`ESTIMATORS`).
        sites: Site names to mark, or ``None`` for every discrete latent site.
        copula: Optional copula name to set alongside.
    """

    estimator: str
    sites: frozenset[str] | None = None
    copula: str | None = None

    def __post_init__(self) -> None:
        check_choice(self.estimator, ESTIMATORS, "estimator")
        if self.copula is not None:
            check_choice(self.copula, COPULAS, "copula")

    def entries(
        self, name: str, is_latent_sample: bool, reparameterized: bool, infer: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``infer`` entries to add at a site (never overwriting the site's own settings)."""
        if not is_latent_sample or (self.sites is not None and name not in self.sites):
            return {}
        if reparameterized:
            if self.sites is not None:
                raise ValueError(
                    f"config_estimator(sites=...) names site '{name}', which is reparameterised "
                    "and gets pathwise gradients; name only discrete sites"
                )
            return {}
        out: dict[str, Any] = {}
        if INFER_KEY not in infer:
            out[INFER_KEY] = self.estimator
        if self.copula is not None and "copula" not in infer:
            out["copula"] = self.copula
        return out

    def check_seen(self, seen: Collection[str]) -> None:
        """Raise a ``ValueError`` if ``sites`` names a site that a run of the program never sampled.

        The adapters call this once the wrapped program has returned, with the names of the
        sample sites it reached, so that a misspelt name fails at the first trace instead of
        being ignored.
        """
        if self.sites is None:
            return
        missing = sorted(self.sites - set(seen))
        if missing:
            names = ", ".join(repr(m) for m in missing)
            found = ", ".join(repr(s) for s in sorted(seen)) or "none"
            raise ValueError(
                f"config_estimator(sites=...) names {names}, which the program never samples "
                f"(its sample sites: {found}); check the spelling, or drop the name"
            )
