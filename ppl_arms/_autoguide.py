"""The backend-neutral half of ``AutoMixedMeanField``: site layouts, initial logits, summaries.

Both adapters' guides derive from :class:`MixedMeanField`, which lays out each latent site's
parameters from the prototype trace and computes :meth:`~MixedMeanField.medians` and
:meth:`~MixedMeanField.quantile_values` once, on :mod:`ppl_arms.core._ops`. Each adapter keeps what
touches its host: tracing the prototype, storing and reading parameters, its distributions and
``biject_to``, and the sample statements.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from ppl_arms._docs import fill_doc
from ppl_arms._typing import Array
from ppl_arms.core._ops import get_ops
from ppl_arms.core.estimators import DistKind

__all__ = [
    "INIT_ARGS_DOC",
    "INIT_LOGITS",
    "MEAN_FIELD_DOC",
    "RAISES_DOC",
    "MixedMeanField",
    "Param",
    "SiteKind",
    "SiteSpec",
    "check_init_logits",
    "check_supported",
    "continuous_spec",
    "discrete_site",
    "initial_logits",
    "not_ready_error",
    "per_site",
    "unsupported_discrete_message",
    "with_mean_field_doc",
]

MEAN_FIELD_DOC = r"""The factorisation of ``q`` and the point summaries.

    A Bernoulli site gets learnable logits, one per element; a categorical site a logit vector per
    element; any other site a Normal in unconstrained space pushed through ``biject_to(support)``,
    exactly as the host's ``AutoNormal`` does. All factors are independent (mean field):

    .. math::
        q(z)=\prod_{\text{Bernoulli }s}\prod_e\mathrm{Bern}(z_{s,e};\sigma(\phi_{s,e}))
        \prod_{\text{Categorical }s}\prod_e\mathrm{Cat}(z_{s,e};\mathrm{softmax}(\phi_{s,e}))
        \prod_{\text{other }s}T_{s\#}\mathcal N(\mu_s,\mathrm{diag}\,\sigma_s^2),

    with :math:`T_s=` ``biject_to(support)``. Parameters of sites inside plates are sized by the
    full plate and indexed by the subsample indices, as in ``AutoNormal``, so subsampled models
    train the right parameters. The discrete sites are plain, non-reparameterised sites, so the
    adapter's ``TraceARMS_ELBO`` couples them (ARMS/CARMS gradients).

    *Point summaries.* :meth:`median` gives the mode of each discrete factor (the logit sign for
    Bernoulli, the arg-max for categorical; a tie goes to 0 and to the first category, as in
    ``argmax``) and the transformed Normal median of each continuous factor. :meth:`quantiles` gives
    the generalised inverse CDF :math:`\inf\{k: F(k)\ge u\}` of each discrete factor (categories
    in index order) and the transformed Normal quantiles of the continuous factors."""
"""What both adapters' ``AutoMixedMeanField`` docstrings say alike (without this first line), put
in place of their ``{MEAN_FIELD}`` line by :func:`with_mean_field_doc`."""

INIT_ARGS_DOC = """
init_loc_fn: Initialisation strategy for the continuous sites (any of the host's
    ``init_to_*``); discrete sites take a draw from the model in the prototype run.
init_scale: Initial scale of the continuous sites' unconstrained Normals.
init_logits: ``"uniform"`` (all logits zero) or ``"prior"`` (the logits of the site's
    distribution in the prototype run, clipped to ``[-10, 10]``).
"""
"""Both ``AutoMixedMeanField``'s initialisation arguments (their ``{INIT}`` line)."""

RAISES_DOC = """
Raises:
    ValueError: At the first call, for a discrete latent site that is neither Bernoulli nor
        categorical (``Categorical``, or Pyro's ``OneHotCategorical``); the message names the
        site and the ``AutoGuideList`` recipe.
"""
"""Both ``AutoMixedMeanField``'s ``Raises`` section (their ``{RAISES}`` line)."""

with_mean_field_doc = fill_doc(
    MEAN_FIELD=MEAN_FIELD_DOC.split("\n", 2)[2], INIT=INIT_ARGS_DOC, RAISES=RAISES_DOC
)
"""Class decorator: fill the ``{MEAN_FIELD}``, ``{INIT}`` and ``{RAISES}`` lines of the docstring
(:data:`MEAN_FIELD_DOC`, :data:`INIT_ARGS_DOC`, :data:`RAISES_DOC`)."""


INIT_LOGITS = ("uniform", "prior")
"""Initialisations of the discrete sites' logits: all zeros, or the prototype prior's logits."""

LOGIT_CLIP = 10.0
"""Bound on initial logits taken from the prior (a prior probability of 0 or 1 has infinite logit)."""


class SiteKind(enum.StrEnum):
    """How ``AutoMixedMeanField`` parameterises a latent site."""

    CONTINUOUS = "continuous"
    """A Normal in unconstrained space, pushed through ``biject_to(support)`` (as ``AutoNormal``)."""
    BERNOULLI = "bernoulli"
    """Learnable logits, one per element, of a non-reparameterised Bernoulli."""
    CATEGORICAL = "categorical"
    """Learnable logits, a vector per element, of a non-reparameterised (one-hot) categorical."""


@dataclass(frozen=True)
class SiteSpec:
    """How one latent site is parameterised (fixed by the prototype trace).

    Attributes:
        kind: Continuous, Bernoulli or categorical.
        event_dim: Event dims of the site's distribution.
        param_event_dim: Event dims of its parameters: the unconstrained event dims (continuous),
            or ``event_dim`` plus one for an integer-valued categorical's logit axis.
        dtype: Dtype of the site's values.
        one_hot: Whether the site is a ``OneHotCategorical`` (values carry the category axis).
    """

    kind: SiteKind
    event_dim: int
    param_event_dim: int
    dtype: Any
    one_hot: bool = False


class Param(enum.StrEnum):
    """The parameters of a factor: a continuous site's ``loc`` and ``scale``, a discrete's logits."""

    LOC = "loc"
    SCALE = "scale"
    LOGITS = "logits"


def continuous_spec(event_dim: int, init: Array, value: Array, dtype: Any) -> SiteSpec:
    """The layout of a continuous site whose unconstrained initial value is ``init``.

    Args:
        event_dim: Event dims of the site's distribution.
        init: The unconstrained initial value (``biject_to(support).inv(value)``).
        value: The site's value in the prototype trace.
        dtype: Dtype of the site's values.
    """
    param_event_dim = event_dim + len(get_ops(init).shape(init)) - len(get_ops(value).shape(value))
    return SiteSpec(SiteKind.CONTINUOUS, event_dim, param_event_dim, dtype)


def initial_logits(spec: SiteSpec, shape: tuple[int, ...], prior: Array, init_logits: str) -> Array:
    """A discrete site's initial logits of shape ``shape`` (see :data:`INIT_LOGITS`).

    Args:
        spec: The site's layout.
        shape: Shape of its logits (:func:`discrete_site`).
        prior: The logits of the site's distribution in the prototype run (their dtype is the
            parameters').
        init_logits: ``"uniform"`` (zeros) or ``"prior"`` (``prior``, each categorical's maximum
            moved to 0, clipped to ``[-LOGIT_CLIP, LOGIT_CLIP]``).
    """
    ops = get_ops(prior)
    if init_logits != "prior":
        return ops.zeros(shape, like=prior)
    if spec.kind is SiteKind.CATEGORICAL:
        prior = prior - ops.max(prior, axis=-1, keepdims=True)
    return ops.broadcast_to(ops.minimum(ops.maximum(prior, -LOGIT_CLIP), LOGIT_CLIP), shape)


def discrete_site(
    name: str,
    info: Any,
    value_shape: Sequence[int],
    event_dim: int,
    dtype: Any,
    backend: str,
    discrete_sites: list[str],
) -> tuple[SiteSpec, tuple[int, ...]]:
    """The layout of a discrete latent site's logits; an error for a site the guide cannot fit.

    Args:
        name: The site name.
        info: The site's unwrapped distribution (an adapter's ``_sites.unwrap``): its ``kind``,
            ``base`` and ``num_categories``, and ``one_hot`` where the host has one-hot sites.
        value_shape: Shape of the site's value in the prototype trace.
        event_dim: Event dims of the site's distribution.
        dtype: Dtype of the site's values.
        backend: ``"pyro"`` or ``"numpyro"`` (for the error).
        discrete_sites: Every discrete latent site of the model (for the error).

    Returns:
        The site's :class:`SiteSpec` and the shape of its logits.

    Raises:
        ValueError: For a discrete site that is neither Bernoulli nor categorical (see
            :func:`check_supported`).
    """
    check_supported(name, info.kind, type(info.base).__name__, backend, discrete_sites)
    shape = tuple(value_shape)
    if info.kind is DistKind.BERNOULLI:
        return SiteSpec(SiteKind.BERNOULLI, event_dim, event_dim, dtype), shape
    if getattr(info, "one_hot", False):
        return SiteSpec(SiteKind.CATEGORICAL, event_dim, event_dim, dtype, True), shape
    spec = SiteSpec(SiteKind.CATEGORICAL, event_dim, event_dim + 1, dtype)
    return spec, (*shape, info.num_categories)


def check_supported(
    name: str, dist_kind: DistKind, dist_name: str, backend: str, discrete_sites: list[str]
) -> None:
    """Raise :func:`unsupported_discrete_message`'s ``ValueError`` for a site of kind ``OTHER``.

    Args:
        name: The site name.
        dist_kind: The kind of its innermost distribution.
        dist_name: That distribution's class name.
        backend: ``"pyro"`` or ``"numpyro"``.
        discrete_sites: Every discrete latent site of the model.
    """
    if dist_kind is DistKind.OTHER:
        raise ValueError(unsupported_discrete_message(name, dist_name, backend, discrete_sites))


def per_site(
    sites: Mapping[str, SiteSpec],
    continuous: Callable[[str, SiteSpec], Any],
    discrete: Callable[[str, SiteSpec], Any],
) -> dict[str, Any]:
    """A summary of every factor: ``continuous`` or ``discrete`` of each site, by its kind.

    Args:
        sites: The guide's sites.
        continuous: The summary of a continuous factor, from its name and spec.
        discrete: The summary of a Bernoulli or categorical factor.

    Returns:
        A dict from site name to its summary, in the order of ``sites``.
    """
    return {
        name: (continuous if spec.kind is SiteKind.CONTINUOUS else discrete)(name, spec)
        for name, spec in sites.items()
    }


def not_ready_error(first_call: str, asked: str) -> RuntimeError:
    """The error for a summary asked of an autoguide that has not seen the model yet.

    Args:
        first_call: What runs the model once, e.g. ``"one svi.step"``.
        asked: What was asked for, e.g. ``"medians or quantiles"``.
    """
    return RuntimeError(
        f"AutoMixedMeanField has not seen the model yet: run it once (e.g. {first_call}) "
        f"before asking for {asked}"
    )


def check_init_logits(init_logits: str) -> None:
    """Raise a ``ValueError`` naming the valid choices if ``init_logits`` is unknown."""
    if init_logits not in INIT_LOGITS:
        options = ", ".join(repr(v) for v in INIT_LOGITS)
        raise ValueError(f"unknown init_logits {init_logits!r}; valid choices are {options}")


def unsupported_discrete_message(
    name: str, dist_name: str, backend: str, discrete_sites: list[str]
) -> str:
    """The error for a discrete latent site that the mean-field autoguide cannot parameterise.

    Args:
        name: The site name.
        dist_name: The innermost distribution's class name.
        backend: ``"pyro"`` or ``"numpyro"`` (the recipe differs in its ``block`` handler).
        discrete_sites: Every discrete latent site of the model (NumPyro's recipe hides them from
            the ``AutoGuideList`` itself).

    Returns:
        A message naming the site and the fix.
    """
    block = "poutine.block" if backend == "pyro" else "handlers.block"
    # NumPyro's AutoGuideList inspects its own model with continuous-only machinery, so there the
    # list itself must be built on a model whose discrete latent sites are hidden.
    outer = (
        "AutoGuideList(model)"
        if backend == "pyro"
        else f"AutoGuideList(handlers.block(model, hide={sorted(discrete_sites)!r}))"
    )
    return (
        f"site '{name}': AutoMixedMeanField parameterises Bernoulli and Categorical discrete "
        f"sites (and continuous sites), not {dist_name}. Write a guide for site '{name}' and "
        f"combine it with the autoguide: guide = {outer}; "
        f"guide.append(AutoMixedMeanField({block}(model, hide=['{name}']))); "
        f"guide.append(your_guide_for_{name})"
    )


class MixedMeanField:
    """What both adapters' ``AutoMixedMeanField`` do alike; a mixin before the host's ``AutoGuide``.

    The adapter gives the host's pieces, annotated below: the backend's name and the arguments of
    :func:`not_ready_error` (for errors), its
    ``_sites.unwrap`` and ``periodic_repeat``; a continuous site's layout and unconstrained initial
    value from its prototype message and value (see :func:`continuous_spec`); a prototype plate's
    full size; the frames of the plates to enter when sampling a site; ``biject_to`` of a site's
    support; a fitted parameter from ``params`` (or from the guide), site name and :class:`Param`;
    the sample statements of a continuous and a discrete site; a discrete factor's probabilities
    and the Normal inverse CDF, as the host's distributions compute them; and a discrete site's
    value from its category indices (or 0/1) and ``K``, in the site's dtype.
    """

    backend: str
    prototype_trace: Any
    _not_ready: tuple[str, str]
    _init_logits: str
    _sites: dict[str, SiteSpec]
    _unwrap: Callable[[Any], Any]
    _prior_logits: Callable[[Any], Array]
    _periodic_repeat: Callable[[Array, int, int], Array]
    _continuous_site: Callable[[dict[str, Any], Array], tuple[SiteSpec, Array]]
    _full_size: Callable[[Any], int]
    _plate_frames: Callable[[str], Iterable[Any]]
    _transform: Callable[[str], Callable[[Array], Array]]
    _param: Callable[[Any, str, Param], Array]
    _sample_continuous: Callable[[str, SiteSpec], Array]
    _sample_discrete: Callable[[str, SiteSpec], Array]
    _probs: Callable[[SiteSpec, Array], Array]
    _normal_icdf: Callable[[Array, Array, Array], Array]
    _discrete_value: Callable[[SiteSpec, Array, int], Array]

    # -- prototype ---------------------------------------------------------------------------------

    def _layout(
        self, name: str, site: dict[str, Any], value: Array, discrete: list[str]
    ) -> tuple[SiteSpec, Array]:
        """A latent site's layout and initial parameter, at full plate size.

        Args:
            name: The site name.
            site: Its prototype message.
            value: Its prototype value (detached).
            discrete: Every discrete latent site of the model.
        """
        if name not in discrete:
            spec, init = self._continuous_site(site, value)
        else:
            info = self._unwrap(site["fn"])
            shape = get_ops(value).shape(value)
            event_dim = site["fn"].event_dim
            spec, shape = discrete_site(
                name, info, shape, event_dim, value.dtype, self.backend, discrete
            )
            init = initial_logits(spec, shape, self._prior_logits(info), self._init_logits)
        for frame in site["cond_indep_stack"]:
            full_size = self._full_size(frame)
            if full_size != frame.size:
                init = self._periodic_repeat(init, full_size, frame.dim - spec.param_event_dim)
        return spec, init

    # -- the guide ---------------------------------------------------------------------------------

    def _sample_sites(self, plates: Mapping[str, Any]) -> dict[str, Array]:
        """Sample every latent site inside its plates (from ``_create_plates``)."""
        result = {}
        for name, spec in self._sites.items():
            with ExitStack() as stack:
                for frame in self._plate_frames(name):
                    stack.enter_context(plates[frame.name])
                if spec.kind is SiteKind.CONTINUOUS:
                    result[name] = self._sample_continuous(name, spec)
                else:
                    result[name] = self._sample_discrete(name, spec)
        return result

    # -- summaries ---------------------------------------------------------------------------------

    def _check_ready(self) -> None:
        """Raise :func:`not_ready_error` before the first call (no prototype trace yet)."""
        if self.prototype_trace is None:
            raise not_ready_error(*self._not_ready)

    def medians(self, params: Any = None) -> dict[str, Array]:
        """Mode of each discrete factor and transformed Normal median of each continuous one.

        Args:
            params: The fitted parameters, where the host keeps them outside the guide.
        """

        def continuous(name: str, spec: SiteSpec) -> Array:
            return self._transform(name)(self._param(params, name, Param.LOC))

        def discrete(name: str, spec: SiteSpec) -> Array:
            logits = self._param(params, name, Param.LOGITS)
            index = logits > 0 if spec.kind is SiteKind.BERNOULLI else logits.argmax(-1)
            return self._discrete_value(spec, index, get_ops(logits).shape(logits)[-1])

        return per_site(self._sites, continuous, discrete)

    def quantile_values(self, params: Any, quantiles: Sequence[float] | Array) -> dict[str, Array]:
        """Quantiles of each factor, shape ``[len(quantiles), *site shape]`` (see the class doc).

        Args:
            params: The fitted parameters, where the host keeps them outside the guide.
            quantiles: Requested quantiles in ``[0, 1]``.
        """

        def levels(like: Array) -> Array:
            ops = get_ops(like)
            return ops.reshape(ops.const(quantiles, like), (-1,) + (1,) * len(ops.shape(like)))

        def continuous(name: str, spec: SiteSpec) -> Array:
            loc = self._param(params, name, Param.LOC)
            scale = self._param(params, name, Param.SCALE)
            return self._transform(name)(self._normal_icdf(loc, scale, levels(loc)))

        def discrete(name: str, spec: SiteSpec) -> Array:
            probs = self._probs(spec, self._param(params, name, Param.LOGITS))
            ops = get_ops(probs)
            u = levels(probs)
            k = ops.shape(probs)[-1]
            if spec.kind is SiteKind.BERNOULLI:
                return self._discrete_value(spec, u > 1 - probs, k)
            index = ops.sum(ops.cumsum(probs, axis=-1) < u, axis=-1)
            return self._discrete_value(spec, ops.minimum(index, k - 1), k)

        return per_site(self._sites, continuous, discrete)
