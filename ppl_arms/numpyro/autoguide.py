r"""``AutoMixedMeanField``: a mean-field autoguide for models with discrete and continuous latents.

NumPyro's autoguides build their guides with continuous-only machinery (``initialize_model`` and
``biject_to``), so they reject every discrete latent site. This guide covers every latent site of an
unmodified model:

* a Bernoulli site gets learnable logits, one per element: :math:`q(z)=\mathrm{Bern}(\sigma(\phi))`;
* a Categorical site gets a learnable logit vector per element:
  :math:`q(z)=\mathrm{Cat}(\mathrm{softmax}(\phi))`;
* any other site gets a Normal in unconstrained space pushed through ``biject_to(support)``,
  exactly as :class:`numpyro.infer.autoguide.AutoNormal` does (same parameter names and defaults).

All factors are independent (mean field). Parameters of sites inside plates are sized by the full
plate and indexed by the subsample indices, as in ``AutoNormal``, so subsampled models train the
right parameters. The discrete sites are plain, non-reparameterised Bernoulli/Categorical sites, so
:class:`~ppl_arms.numpyro.TraceARMS_ELBO` couples them (ARMS/CARMS gradients).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from jax import random
from numpyro import handlers
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.distributions.util import periodic_repeat
from numpyro.infer.autoguide import AutoGuide
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.util import helpful_support_errors

from ppl_arms import _autoguide
from ppl_arms._autoguide import LOGIT_CLIP, SiteKind, SiteSpec
from ppl_arms.numpyro._sites import unwrap

__all__ = ["AutoMixedMeanField"]


def _is_discrete_latent(site: dict[str, Any]) -> bool:
    return (
        site["type"] == "sample"
        and not site["is_observed"]
        and bool(site["fn"].support.is_discrete)
    )


@_autoguide.with_mean_field_doc
class AutoMixedMeanField(AutoGuide):
    """Mean-field guide over every latent site: logits for discrete sites, Normals for the rest.

    {MEAN_FIELD}

    Parameters are named ``"{site}_{prefix}_logits"`` (discrete) and ``"{site}_{prefix}_loc"``,
    ``"{site}_{prefix}_scale"`` (continuous, as in :class:`~numpyro.infer.autoguide.AutoNormal`).
    Train it with :class:`~ppl_arms.numpyro.TraceARMS_ELBO` (or any loss with
    ``can_infer_discrete``). :meth:`sample_posterior` returns the latent sites at full plate size.

    *Composition.* Combine it with hand-written guides for sites it cannot parameterise (a Poisson
    latent, say) through :class:`~numpyro.infer.autoguide.AutoGuideList`, hiding those sites with
    :func:`numpyro.handlers.block`. NumPyro's ``AutoGuideList`` inspects its *own* model with
    continuous-only machinery, so build the list on a model whose discrete latent sites are hidden::

        guide = AutoGuideList(handlers.block(model, hide=["z", "k"]))
        guide.append(AutoMixedMeanField(handlers.block(model, hide=["k"])))
        guide.append(guide_for_k)

    Args:
        model: The NumPyro model.
        prefix: Prefix of the parameter names.
        init_loc_fn: Initialisation strategy for the continuous sites (any of NumPyro's
            ``init_to_*``); discrete sites take a draw from the model in the prototype run.
        init_scale: Initial scale of the continuous sites' unconstrained Normals.
        init_logits: ``"uniform"`` (all logits zero) or ``"prior"`` (the logits of the site's
            distribution in the prototype run, clipped to ``[-10, 10]``).
        create_plates: As in :class:`~numpyro.infer.autoguide.AutoNormal`: a function of the model's
            arguments returning plates to use (e.g. to control subsampling).

    Raises:
        ValueError: At the first call, for a discrete latent site that is neither Bernoulli nor
            Categorical; the message names the site and the ``AutoGuideList`` recipe.
    """

    scale_constraint = constraints.softplus_positive

    def __init__(
        self,
        model: Callable,
        *,
        prefix: str = "auto",
        init_loc_fn: Callable = init_to_uniform,
        init_scale: float = 0.1,
        init_logits: str = "uniform",
        create_plates: Callable | None = None,
    ) -> None:
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}")
        _autoguide.check_init_logits(init_logits)
        self._init_scale = init_scale
        self._init_logits = init_logits
        self._sites: dict[str, SiteSpec] = {}
        self._init_values: dict[str, jax.Array] = {}
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn, create_plates=create_plates)

    # -- prototype ---------------------------------------------------------------------------------

    def _init_strategy(self, site: dict[str, Any]) -> Any:
        if _is_discrete_latent(site):
            return None  # drawn from the model; the logits are initialised separately
        return self.init_loc_fn(site)

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        rng_key = numpyro.prng_key()
        if rng_key is None:
            rng_key = random.PRNGKey(0)
        with handlers.block():
            seeded = handlers.seed(self.model, rng_key)
            fn = handlers.substitute(seeded, substitute_fn=self._init_strategy)
            trace = handlers.trace(fn).get_trace(*args, **kwargs)
        # Only sample and plate sites: deterministic sites belong to the model (AutoGuideList
        # rejects sub-guides whose prototype shows them).
        self.prototype_trace = {k: s for k, s in trace.items() if s["type"] in ("sample", "plate")}
        self._prototype_frames = {}
        self._prototype_frame_full_sizes = {
            k: s["args"][0] for k, s in trace.items() if s["type"] == "plate"
        }
        discrete = [k for k, s in trace.items() if _is_discrete_latent(s)]
        self._sites, self._init_values = {}, {}
        for name, site in self.prototype_trace.items():
            if site["type"] != "sample" or site["is_observed"]:
                continue
            for frame in site["cond_indep_stack"]:
                known = self._prototype_frames.setdefault(frame.name, frame)
                if known != frame:
                    raise ValueError(
                        f"plate '{frame.name}' has inconsistent dim or size across sites "
                        f"(at site '{name}'); give it the same dim and size everywhere"
                    )
            if _is_discrete_latent(site):
                spec, init = self._discrete_site(name, site, discrete)
            else:
                spec, init = self._continuous_site(name, site)
            for frame in site["cond_indep_stack"]:
                full_size = self._prototype_frame_full_sizes[frame.name]
                if full_size != frame.size:
                    init = periodic_repeat(init, full_size, frame.dim - spec.param_event_dim)
            self._sites[name] = spec
            self._init_values[name] = init

    def _discrete_site(
        self, name: str, site: dict[str, Any], discrete: list[str]
    ) -> tuple[SiteSpec, jax.Array]:
        info = unwrap(site["fn"])
        value = jnp.asarray(site["value"])
        spec, shape = _autoguide.discrete_site(
            name, info, jnp.shape(value), site["fn"].event_dim, value.dtype, "numpyro", discrete
        )
        dtype = jnp.result_type(float)
        if self._init_logits == "prior":
            logits = jnp.asarray(info.base.logits, dtype)
            if spec.kind is SiteKind.CATEGORICAL:
                logits = logits - jnp.max(logits, axis=-1, keepdims=True)
            init = jnp.broadcast_to(jnp.clip(logits, -LOGIT_CLIP, LOGIT_CLIP), shape)
        else:
            init = jnp.zeros(shape, dtype)
        return spec, init

    def _continuous_site(self, name: str, site: dict[str, Any]) -> tuple[SiteSpec, jax.Array]:
        with helpful_support_errors(site):
            transform = biject_to(site["fn"].support)
        value = site["value"]
        init = transform.inv(value)
        event_dim = site["fn"].event_dim
        param_event_dim = event_dim + jnp.ndim(init) - jnp.ndim(value)
        spec = SiteSpec(SiteKind.CONTINUOUS, event_dim, param_event_dim, jnp.result_type(value))
        return spec, init

    # -- the guide ---------------------------------------------------------------------------------

    def _param_name(self, name: str, what: str) -> str:
        return f"{name}_{self.prefix}_{what}"

    def _transform(self, name: str) -> Any:
        return biject_to(self.prototype_trace[name]["fn"].support)

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, jax.Array]:
        """Sample every latent site (the guide has the model's signature)."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name, spec in self._sites.items():
            site = self.prototype_trace[name]
            init = self._init_values[name]
            with ExitStack() as stack:
                for frame in site["cond_indep_stack"]:
                    stack.enter_context(plates[frame.name])
                if spec.kind is SiteKind.CONTINUOUS:
                    result[name] = self._sample_continuous(name, site, spec, init)
                    continue
                logits = numpyro.param(
                    self._param_name(name, "logits"), init, event_dim=spec.param_event_dim
                )
                fn = (
                    dist.Bernoulli(logits=logits)
                    if spec.kind is SiteKind.BERNOULLI
                    else dist.Categorical(logits=logits)
                )
                result[name] = numpyro.sample(name, fn.to_event(spec.event_dim))
        return result

    def _sample_continuous(
        self, name: str, site: dict[str, Any], spec: SiteSpec, init: jax.Array
    ) -> jax.Array:
        loc = numpyro.param(self._param_name(name, "loc"), init, event_dim=spec.param_event_dim)
        scale = numpyro.param(
            self._param_name(name, "scale"),
            jnp.full(jnp.shape(init), self._init_scale),
            constraint=self.scale_constraint,
            event_dim=spec.param_event_dim,
        )
        fn = dist.Normal(loc, scale).to_event(spec.param_event_dim)
        support = site["fn"].support
        if support is constraints.real or (
            isinstance(support, constraints.independent)
            and support.base_constraint is constraints.real
        ):
            return numpyro.sample(name, fn)
        return numpyro.sample(name, dist.TransformedDistribution(fn, self._transform(name)))

    # -- summaries ---------------------------------------------------------------------------------

    def _factor(self, name: str, params: dict[str, jax.Array]) -> dist.Distribution:
        spec = self._sites[name]
        if spec.kind is SiteKind.BERNOULLI:
            return dist.Bernoulli(logits=params[self._param_name(name, "logits")])
        if spec.kind is SiteKind.CATEGORICAL:
            return dist.Categorical(logits=params[self._param_name(name, "logits")])
        loc = params[self._param_name(name, "loc")]
        return dist.Normal(loc, params[self._param_name(name, "scale")])

    def _check_ready(self) -> None:
        if self.prototype_trace is None:
            raise _autoguide.not_ready_error("svi.init", "posterior samples, medians or quantiles")

    def sample_posterior(
        self,
        rng_key: jax.Array,
        params: dict[str, jax.Array],
        *args: Any,
        sample_shape: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> dict[str, jax.Array]:
        """Draw the latent sites from the fitted guide, at full plate size.

        Args:
            rng_key: A JAX key.
            params: The fitted parameters (``svi.get_params(state)``).
            *args: Unused (the guide does not depend on the data); accepted for the
                :class:`~numpyro.infer.autoguide.AutoGuide` signature.
            sample_shape: Leading shape of the draws.
            **kwargs: Unused, as ``*args``.

        Returns:
            A dict from latent site name to draws of shape ``sample_shape + site shape``.
        """
        self._check_ready()
        out = {}
        for i, name in enumerate(self._sites):
            spec = self._sites[name]
            draw = self._factor(name, params).sample(random.fold_in(rng_key, i), sample_shape)
            if spec.kind is SiteKind.CONTINUOUS:
                draw = self._transform(name)(draw)
            out[name] = draw.astype(spec.dtype)
        return out

    def median(self, params: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Mode of each discrete factor and transformed Normal median of each continuous one."""
        self._check_ready()

        def continuous(name: str, spec: SiteSpec) -> jax.Array:
            return self._transform(name)(params[self._param_name(name, "loc")])

        def discrete(name: str, spec: SiteSpec) -> jax.Array:
            logits = params[self._param_name(name, "logits")]
            mode = logits > 0 if spec.kind is SiteKind.BERNOULLI else jnp.argmax(logits, axis=-1)
            return mode.astype(spec.dtype)

        return _autoguide.per_site(self._sites, continuous, discrete)

    def quantiles(
        self, params: dict[str, jax.Array], quantiles: Sequence[float] | jax.Array
    ) -> dict[str, jax.Array]:
        """Quantiles of each factor, shape ``[len(quantiles), *site shape]`` (see the class doc)."""
        self._check_ready()
        q = jnp.asarray(quantiles, dtype=jnp.result_type(float))

        def continuous(name: str, spec: SiteSpec) -> jax.Array:
            loc = params[self._param_name(name, "loc")]
            u = jnp.reshape(q, (-1,) + (1,) * jnp.ndim(loc))
            return self._transform(name)(self._factor(name, params).icdf(u))

        def discrete(name: str, spec: SiteSpec) -> jax.Array:
            probs = self._factor(name, params).probs
            u = jnp.reshape(q, (-1,) + (1,) * jnp.ndim(probs))
            if spec.kind is SiteKind.BERNOULLI:
                value = u > 1 - probs
            else:
                cdf = jnp.cumsum(probs, axis=-1)
                k = jnp.shape(probs)[-1]
                value = jnp.minimum(jnp.sum(cdf < u, axis=-1), k - 1)
            return value.astype(spec.dtype)

        return _autoguide.per_site(self._sites, continuous, discrete)
