"""``AutoMixedMeanField``: a mean-field autoguide for models with discrete and continuous latents.

NumPyro's autoguides build their guides with continuous-only machinery (``initialize_model`` and
``biject_to``), so they reject every discrete latent site. This guide covers every latent site of an
unmodified model: logits for the Bernoulli and Categorical sites, Normals pushed through
``biject_to(support)`` for the others, with ``AutoNormal``'s parameter names and defaults (see the
class).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from ppl_arms._autoguide import MixedMeanField, Param, SiteKind, SiteSpec, continuous_spec
from ppl_arms.numpyro._sites import SiteDistribution, unwrap

__all__ = ["AutoMixedMeanField"]


def _is_discrete_latent(site: dict[str, Any]) -> bool:
    return (
        site["type"] == "sample"
        and not site["is_observed"]
        and bool(site["fn"].support.is_discrete)
    )


@_autoguide.with_mean_field_doc
class AutoMixedMeanField(MixedMeanField, AutoGuide):
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
        {INIT}
        create_plates: As in :class:`~numpyro.infer.autoguide.AutoNormal`: a function of the model's
            arguments returning plates to use (e.g. to control subsampling).

    {RAISES}
    """

    scale_constraint = constraints.softplus_positive
    backend = "numpyro"
    _not_ready = ("svi.init", "posterior samples, medians or quantiles")
    _unwrap = staticmethod(unwrap)
    _periodic_repeat = staticmethod(periodic_repeat)

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
            value = jnp.asarray(site["value"])
            self._sites[name], self._init_values[name] = self._layout(name, site, value, discrete)

    def _prior_logits(self, info: SiteDistribution) -> jax.Array:
        return jnp.asarray(info.base.logits, jnp.result_type(float))

    def _continuous_site(
        self, site: dict[str, Any], value: jax.Array
    ) -> tuple[SiteSpec, jax.Array]:
        with helpful_support_errors(site):
            transform = biject_to(site["fn"].support)
        init = transform.inv(value)
        return continuous_spec(site["fn"].event_dim, init, value, jnp.result_type(value)), init

    def _full_size(self, frame: Any) -> int:
        return self._prototype_frame_full_sizes[frame.name]

    # -- the guide ---------------------------------------------------------------------------------

    def _param_name(self, name: str, what: Param) -> str:
        return f"{name}_{self.prefix}_{what}"

    def _transform(self, name: str) -> Any:
        return biject_to(self.prototype_trace[name]["fn"].support)

    def _plate_frames(self, name: str) -> list[Any]:
        return self.prototype_trace[name]["cond_indep_stack"]

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, jax.Array]:
        """Sample every latent site (the guide has the model's signature)."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        return self._sample_sites(self._create_plates(*args, **kwargs))

    def _discrete_fn(self, spec: SiteSpec, logits: jax.Array) -> dist.Distribution:
        if spec.kind is SiteKind.BERNOULLI:
            return dist.Bernoulli(logits=logits)
        return dist.Categorical(logits=logits)

    def _sample_discrete(self, name: str, spec: SiteSpec) -> jax.Array:
        init = self._init_values[name]
        logits = numpyro.param(
            self._param_name(name, Param.LOGITS), init, event_dim=spec.param_event_dim
        )
        return numpyro.sample(name, self._discrete_fn(spec, logits).to_event(spec.event_dim))

    def _sample_continuous(self, name: str, spec: SiteSpec) -> jax.Array:
        init = self._init_values[name]
        loc = numpyro.param(self._param_name(name, Param.LOC), init, event_dim=spec.param_event_dim)
        scale = numpyro.param(
            self._param_name(name, Param.SCALE),
            jnp.full(jnp.shape(init), self._init_scale),
            constraint=self.scale_constraint,
            event_dim=spec.param_event_dim,
        )
        fn = dist.Normal(loc, scale).to_event(spec.param_event_dim)
        support = self.prototype_trace[name]["fn"].support
        if support is constraints.real or (
            isinstance(support, constraints.independent)
            and support.base_constraint is constraints.real
        ):
            return numpyro.sample(name, fn)
        return numpyro.sample(name, dist.TransformedDistribution(fn, self._transform(name)))

    # -- summaries ---------------------------------------------------------------------------------

    def _param(self, params: dict[str, jax.Array], name: str, what: Param) -> jax.Array:
        return params[self._param_name(name, what)]

    def _probs(self, spec: SiteSpec, logits: jax.Array) -> jax.Array:
        return self._discrete_fn(spec, logits).probs

    @staticmethod
    def _normal_icdf(loc: jax.Array, scale: jax.Array, u: jax.Array) -> jax.Array:
        return dist.Normal(loc, scale).icdf(u)

    def _discrete_value(self, spec: SiteSpec, index: jax.Array, k: int) -> jax.Array:
        return index.astype(spec.dtype)

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
        for i, (name, spec) in enumerate(self._sites.items()):
            key = random.fold_in(rng_key, i)
            if spec.kind is SiteKind.CONTINUOUS:
                loc, scale = (self._param(params, name, p) for p in (Param.LOC, Param.SCALE))
                draw = self._transform(name)(dist.Normal(loc, scale).sample(key, sample_shape))
            else:
                logits = self._param(params, name, Param.LOGITS)
                draw = self._discrete_fn(spec, logits).sample(key, sample_shape)
            out[name] = draw.astype(spec.dtype)
        return out

    def median(self, params: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Mode of each discrete factor and transformed Normal median of each continuous one."""
        self._check_ready()
        return self.medians(params)

    def quantiles(
        self, params: dict[str, jax.Array], quantiles: Sequence[float] | jax.Array
    ) -> dict[str, jax.Array]:
        """Quantiles of each factor, shape ``[len(quantiles), *site shape]`` (see the class doc)."""
        self._check_ready()
        return self.quantile_values(params, quantiles)
