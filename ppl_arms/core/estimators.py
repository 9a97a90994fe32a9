r"""Per-site estimator objects: what the adapters call at each discrete sample site.

An adapter needs four things from the estimator of a site: which base noise to draw (if it couples
samples), how to turn that noise into ``n`` coupled samples, the per-sample coefficients given the
learning signals, and the per-sample gradient directions that the surrogate multiplies into the
logits. :class:`SiteEstimator` bundles them; each subclass is a thin wrapper over the pure functions
of its own module. Objects are immutable and hashable (safe as static arguments under ``jit``).

Noise arrays always carry a leading axis of size ``n`` (one row per sample) or ``1`` (shared by all
samples of an element, such as the CARMS ordering), so an adapter that materialises one sample per
particle (NumPyro under ``vmap``) can pick its row with ``noise[i]`` or ``noise[0]``.

The same base noise also gives *independent* samples (:meth:`SiteEstimator.independent`): the rows
of the copula's base noise are i.i.d., so sampling each particle from its own row with its own
parameters is an exact i.i.d. draw. Adapters use it where a site's parameters differ across
particles (the LOORF fallback), so they need no second random draw per site.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ppl_arms._typing import Array, Shape
from ppl_arms.core._ops import get_ops
from ppl_arms.core.arms import arms_coefficients
from ppl_arms.core.bernoulli import bernoulli_directions, threshold_sample
from ppl_arms.core.carms import carms_coefficients, carms_sample, ordering_index
from ppl_arms.core.categorical import categorical_directions
from ppl_arms.core.copulas import (
    Copula,
    DirichletCopula,
    NoiseKind,
    antithetic_pairs,
)
from ppl_arms.core.disarm import disarm_coefficients
from ppl_arms.core.double_cv import categorical_double_cv_directions, double_cv_directions
from ppl_arms.core.loorf import loorf_coefficients
from ppl_arms.core.reinforce import reinforce_coefficients
from ppl_arms.core.rodeo import (
    RodeoParams,
    categorical_rodeo_directions,
    rodeo_directions,
    rodeo_params,
)
from ppl_arms.core.stick_breaking import (
    stick_breaking_coefficients,
    stick_breaking_noise_shape,
    stick_breaking_sample,
)

__all__ = [
    "ARMS",
    "CARMS",
    "LOORF",
    "REINFORCE",
    "RODEO",
    "DisARM",
    "DistKind",
    "DoubleCV",
    "GradientInformed",
    "NoiseSpec",
    "SiteEstimator",
    "StickBreakingCARMS",
    "directions",
    "independent_uniforms",
]


class DistKind(enum.StrEnum):
    """The distribution families the estimators distinguish."""

    BERNOULLI = "bernoulli"
    """Bernoulli (probs or logits); values in ``{0, 1}``; logits have the element shape."""
    CATEGORICAL = "categorical"
    """Categorical or one-hot categorical; integer values; logits have a trailing ``K`` axis."""
    OTHER = "other"
    """Any other non-reparameterised distribution; only score-function estimators apply."""


def _where(site: str | None) -> str:
    """The prefix naming the site in an error message (none at the loss level)."""
    return "" if site is None else f"site '{site}': "


@dataclass(frozen=True)
class NoiseSpec:
    """One base-noise array to draw: its kind and shape (leading axis ``n`` or ``1``)."""

    kind: NoiseKind
    shape: Shape


def independent_uniforms(kind: NoiseKind, noise: Array) -> Array:
    """Exact i.i.d. uniforms from i.i.d. base noise: the noise itself, or ``Phi(noise)``."""
    return get_ops(noise).ndtr(noise) if kind is NoiseKind.NORMAL else noise


def directions(kind: DistKind, coefficients: Array, z: Array, logits: Array) -> Array:
    """Per-sample gradient directions for the logit carrier of a Bernoulli or categorical site."""
    if kind is DistKind.CATEGORICAL:
        return categorical_directions(coefficients, z, logits)
    return bernoulli_directions(coefficients, z, logits)


class SiteEstimator(ABC):
    """Base class of the per-site estimators.

    Attributes:
        name: Public name, as accepted by ``infer={"estimator": name}`` (a family may map several
            classes to one name, e.g. ``"arms"`` is :class:`ARMS` at Bernoulli and :class:`CARMS` at
            categorical sites).
        kinds: Distribution kinds this estimator handles.
        coupled: Whether it draws its own coupled samples from noise; if ``False`` the host library
            samples i.i.d. and only :meth:`coefficients` is used.
        needs_sample_gradient: Whether it reads the gradient of the learning signal with respect
            to the sample (:class:`GradientInformed`); the losses compute that gradient only when
            some site's estimator sets this flag.
    """

    name: ClassVar[str]
    kinds: ClassVar[frozenset[DistKind]]
    coupled: ClassVar[bool] = False
    needs_sample_gradient: ClassVar[bool] = False

    def check(self, n: int, site: str | None = None) -> None:
        """Raise ``ValueError`` (naming ``site``, if given) if ``n`` samples cannot be used.

        The one home of the per-estimator rules on ``n``: the losses call it at construction
        (``site=None``) and again per site, where ``infer`` may pick another estimator.
        """
        if n < 2 and type(self) is not REINFORCE:
            raise ValueError(
                f"{_where(site)}estimator '{self.name}' needs num_particles >= 2, got {n}"
            )

    def noise_specs(self, n: int, shape: Shape, num_categories: int) -> tuple[NoiseSpec, ...]:
        """Base noise needed for ``n`` coupled samples of elements of ``shape`` (empty if i.i.d.)."""
        return ()

    def coupling(self, noise: tuple[Array, ...]) -> tuple[Array, ...]:
        """Transform base noise into coupled uniforms (same structure; computed once per site)."""
        return noise

    def sample(self, coupled: tuple[Array, ...], logits: Array) -> Array:
        """Samples ``[m, *shape]`` from ``m`` rows of :meth:`coupling` output and the logits."""
        raise TypeError(f"estimator '{self.name}' does not draw coupled samples")

    def independent(self, noise: tuple[Array, ...]) -> tuple[Array, ...] | None:
        """Independent uniforms with :meth:`coupling`'s structure, from the same base noise.

        Row ``i`` fed to :meth:`sample` with any parameters gives an exact sample, independent of
        the other rows' (the i.i.d. fallback at elements whose parameters differ across
        particles). ``None`` when the noise has fewer than ``n`` independent rows (DisARM's ``n/2``
        pairs); the adapter then draws i.i.d. samples itself.
        """
        return None

    @abstractmethod
    def coefficients(self, f: Array, z: Array, logits: Array | None) -> Array:
        """Per-sample coefficients ``[n, *shape]`` from learning signals ``f`` ``[n, *shape]``."""

    def learned_init(self, like: Array) -> dict[str, Array]:
        """Initial values of the learned parameters by leaf name, as scalars of ``like``'s dtype.

        Empty for estimators without learned parts; the losses register each leaf as a parameter
        named by :func:`ppl_arms.config.learned_name`.
        """
        return {}


@dataclass(frozen=True, repr=True)
class REINFORCE(SiteEstimator):
    """Plain REINFORCE, no baseline (:mod:`ppl_arms.core.reinforce`); i.i.d. host samples."""

    name: ClassVar[str] = "reinforce"
    kinds: ClassVar[frozenset[DistKind]] = frozenset(DistKind)

    def coefficients(self, f: Array, z: Array, logits: Array | None) -> Array:  # noqa: D102
        return reinforce_coefficients(f)


@dataclass(frozen=True, repr=True)
class LOORF(SiteEstimator):
    """Leave-one-out REINFORCE (:mod:`ppl_arms.core.loorf`); i.i.d. host samples."""

    name: ClassVar[str] = "loorf"
    kinds: ClassVar[frozenset[DistKind]] = frozenset(DistKind)

    def coefficients(self, f: Array, z: Array, logits: Array | None) -> Array:  # noqa: D102
        return loorf_coefficients(f)


@dataclass(frozen=True, repr=True)
class ARMS(SiteEstimator):
    """ARMS for Bernoulli sites (:mod:`ppl_arms.core.arms`) with the given copula."""

    copula: Copula = field(default_factory=DirichletCopula)

    name: ClassVar[str] = "arms"
    kinds: ClassVar[frozenset[DistKind]] = frozenset({DistKind.BERNOULLI})
    coupled: ClassVar[bool] = True

    def noise_specs(self, n: int, shape: Shape, num_categories: int) -> tuple[NoiseSpec, ...]:  # noqa: D102
        return (NoiseSpec(self.copula.noise, self.copula.noise_shape(n, shape)),)

    def coupling(self, noise: tuple[Array, ...]) -> tuple[Array, ...]:  # noqa: D102
        return (self.copula.uniforms(noise[0]),)

    def independent(self, noise: tuple[Array, ...]) -> tuple[Array, ...]:  # noqa: D102
        return (independent_uniforms(self.copula.noise, noise[0]),)

    def sample(self, coupled: tuple[Array, ...], logits: Array) -> Array:  # noqa: D102
        return threshold_sample(coupled[0], logits)

    def coefficients(self, f: Array, z: Array, logits: Array | None) -> Array:  # noqa: D102
        return arms_coefficients(f, logits, self.copula)


@dataclass(frozen=True, repr=True)
class DisARM(SiteEstimator):
    """DisARM with ``n/2`` antithetic pairs for Bernoulli sites (:mod:`ppl_arms.core.disarm`)."""

    name: ClassVar[str] = "disarm"
    kinds: ClassVar[frozenset[DistKind]] = frozenset({DistKind.BERNOULLI})
    coupled: ClassVar[bool] = True

    def check(self, n: int, site: str | None = None) -> None:  # noqa: D102
        super().check(n, site)
        if n % 2:
            raise ValueError(
                f"{_where(site)}estimator='disarm' uses num_particles/2 antithetic pairs and needs "
                f"an even num_particles, got {n}; use an even number or estimator='arms' "
                "(any n >= 2)"
            )

    def noise_specs(self, n: int, shape: Shape, num_categories: int) -> tuple[NoiseSpec, ...]:  # noqa: D102
        return (NoiseSpec(NoiseKind.UNIFORM, (n // 2, *shape)),)

    def coupling(self, noise: tuple[Array, ...]) -> tuple[Array, ...]:  # noqa: D102
        return (antithetic_pairs(noise[0]),)

    def sample(self, coupled: tuple[Array, ...], logits: Array) -> Array:  # noqa: D102
        return threshold_sample(coupled[0], logits)

    def coefficients(self, f: Array, z: Array, logits: Array | None) -> Array:  # noqa: D102
        return disarm_coefficients(f, logits)


@dataclass(frozen=True, repr=True)
class CARMS(SiteEstimator):
    """CARMS-I (inverse CDF with random orderings) for categorical sites (:mod:`.carms`)."""

    copula: Copula = field(default_factory=DirichletCopula)

    name: ClassVar[str] = "arms"
    kinds: ClassVar[frozenset[DistKind]] = frozenset({DistKind.CATEGORICAL})
    coupled: ClassVar[bool] = True

    def noise_specs(self, n: int, shape: Shape, num_categories: int) -> tuple[NoiseSpec, ...]:  # noqa: D102
        return (
            NoiseSpec(self.copula.noise, self.copula.noise_shape(n, shape)),
            NoiseSpec(NoiseKind.UNIFORM, (1, *shape)),
        )

    def coupling(self, noise: tuple[Array, ...]) -> tuple[Array, ...]:  # noqa: D102
        return (self.copula.uniforms(noise[0]), noise[1])

    def independent(self, noise: tuple[Array, ...]) -> tuple[Array, ...]:  # noqa: D102
        # Given the ordering, independent uniforms give independent samples, each with the exact
        # marginal whatever the ordering, so the samples are independent unconditionally too.
        return (independent_uniforms(self.copula.noise, noise[0]), noise[1])

    def sample(self, coupled: tuple[Array, ...], logits: Array) -> Array:  # noqa: D102
        k = get_ops(logits).shape(logits)[-1]
        return carms_sample(coupled[0], ordering_index(coupled[1][0], k), logits)

    def coefficients(self, f: Array, z: Array, logits: Array | None) -> Array:  # noqa: D102
        return carms_coefficients(f, z, logits, self.copula)


@dataclass(frozen=True, repr=True)
class StickBreakingCARMS(SiteEstimator):
    """CARMS with the stick-breaking coupling, O(nK) per element (:mod:`.stick_breaking`).

    Attributes:
        copula: The copula of each stick's ``n`` uniforms.
        sort: Sticks in ascending order of probability (``True``, Dong et al.) or in category
            index order (``False``: no sort, the default coupling ``"stick_breaking_unsorted"``).
            Both are exact; the order changes the variance, not the expectation.
    """

    copula: Copula = field(default_factory=DirichletCopula)
    sort: bool = True

    name: ClassVar[str] = "arms"
    kinds: ClassVar[frozenset[DistKind]] = frozenset({DistKind.CATEGORICAL})
    coupled: ClassVar[bool] = True

    def noise_specs(self, n: int, shape: Shape, num_categories: int) -> tuple[NoiseSpec, ...]:  # noqa: D102
        return (NoiseSpec(self.copula.noise, stick_breaking_noise_shape(n, shape, num_categories)),)

    def coupling(self, noise: tuple[Array, ...]) -> tuple[Array, ...]:  # noqa: D102
        return (self.copula.uniforms(noise[0]),)

    def independent(self, noise: tuple[Array, ...]) -> tuple[Array, ...]:  # noqa: D102
        return (independent_uniforms(self.copula.noise, noise[0]),)

    def sample(self, coupled: tuple[Array, ...], logits: Array) -> Array:  # noqa: D102
        return stick_breaking_sample(coupled[0], logits, self.sort)

    def coefficients(self, f: Array, z: Array, logits: Array | None) -> Array:  # noqa: D102
        return stick_breaking_coefficients(f, z, logits, self.copula, self.sort)


class GradientInformed(SiteEstimator):
    r"""Base of the estimators that also use :math:`\partial f/\partial z` (Double CV, RODEO).

    They draw i.i.d. samples (the host's), and instead of score coefficients they give per-sample
    *directions* on the logits from the learning signals ``f``, the samples, the logits, the
    per-particle gradient ``df_dz`` of the learning signal with respect to the sample evaluated as
    a float (the adapters' ``sample_gradients``), and optional learned parameters. Every input
    value gives an unbiased estimate; ``df_dz = 0`` gives LOORF exactly.

    The learned parameters are named leaves (:meth:`learned_init`); the adapters register them as
    parameters of the loss under the reserved prefix of :func:`ppl_arms.config.learned_name` and
    train them by :func:`~ppl_arms.core.taylor.variance_surrogate`
    (:class:`~ppl_arms.core.carriers.GradientCarrier`).
    """

    kinds: ClassVar[frozenset[DistKind]] = frozenset({DistKind.BERNOULLI, DistKind.CATEGORICAL})
    needs_sample_gradient: ClassVar[bool] = True
    _directions: ClassVar[Mapping[DistKind, Callable[..., Array]]]
    """The core function of each kind, called as ``fn(f, z, df_dz, logits, params)``."""

    def coefficients(self, f: Array, z: Array, logits: Array | None) -> Array:
        """Refused: the estimate is not a score-coefficient sum without ``df_dz``."""
        raise TypeError(
            f"estimator '{self.name}' needs the gradient of the learning signal with respect to "
            "the sample, which only TraceARMS_ELBO and TraceGraphARMS_ELBO compute; use 'loorf' "
            "or 'arms' at this site in other losses"
        )

    @abstractmethod
    def _params(self, logits: Array, learned: Mapping[str, Array]) -> Any:
        """The core functions' parameter argument from the learned leaves (missing: initial)."""

    def gradient_directions(
        self,
        kind: DistKind,
        f: Array,
        z: Array,
        logits: Array,
        df_dz: Array,
        learned: Mapping[str, Array],
    ) -> Array:
        """Per-sample directions ``[n, *coords(, K)]`` on the logits.

        Args:
            kind: Bernoulli or categorical.
            f: Learning signals ``[n, *fshape]`` with one axis per axis of ``z`` (detached).
            z: Samples ``[n, *coords]`` (0/1, or integer categories).
            logits: Detached logits ``[n, *coords(, K)]`` or without the sample axis.
            df_dz: Per-particle gradient of ``f`` with respect to the (one-hot) sample,
                ``[n, *coords(, K)]``.
            learned: Values of some or all of the leaves of :meth:`learned_init` (differentiable;
                missing leaves take their initial values).
        """
        return self._directions[kind](f, z, df_dz, logits, self._params(logits, learned))


@dataclass(frozen=True, repr=True)
class DoubleCV(GradientInformed):
    r"""Double control variates (Titsias and Shi, 2022; :mod:`ppl_arms.core.double_cv`).

    LOORF plus a first-order Taylor control variate of :math:`f` around the other particles, whose
    expectation is added back in closed form. Learned: ``alpha``, the scale of the Taylor control
    variate (initially 1, the plain expansion; 0 is LOORF).
    """

    name: ClassVar[str] = "double_cv"

    _directions: ClassVar[Mapping[DistKind, Callable[..., Array]]] = {
        DistKind.BERNOULLI: double_cv_directions,
        DistKind.CATEGORICAL: categorical_double_cv_directions,
    }

    def learned_init(self, like: Array) -> dict[str, Array]:  # noqa: D102
        return {"alpha": get_ops(like).const(1.0, like)}

    def _params(self, logits: Array, learned: Mapping[str, Array]) -> Array | float:
        return learned.get("alpha", 1.0)


@dataclass(frozen=True, repr=True)
class RODEO(GradientInformed):
    r"""RODEO: discrete Stein control variates (Shi et al., 2022; :mod:`ppl_arms.core.rodeo`).

    Learned: ``alpha`` (weight of the Stein-corrected baseline, initially 0) and ``beta`` (weight of
    the score control variate, initially 1); no residual network (width ``H = 0``).
    """

    name: ClassVar[str] = "rodeo"

    _directions: ClassVar[Mapping[DistKind, Callable[..., Array]]] = {
        DistKind.BERNOULLI: rodeo_directions,
        DistKind.CATEGORICAL: categorical_rodeo_directions,
    }

    def learned_init(self, like: Array) -> dict[str, Array]:  # noqa: D102
        params = rodeo_params(like)
        return {"alpha": params.alpha, "beta": params.beta}

    def _params(self, logits: Array, learned: Mapping[str, Array]) -> RodeoParams:
        return rodeo_params(logits)._replace(**learned)
