r"""``AutoMixedMeanField``: a mean-field autoguide for models with discrete and continuous latents.

Pyro's continuous autoguides (``AutoNormal`` and friends) reject discrete latent sites, and
``AutoDiscreteParallel`` needs enumeration. This guide covers every latent site of an unmodified
model:

* a Bernoulli site gets learnable logits, one per element: :math:`q(z)=\mathrm{Bern}(\sigma(\phi))`;
* a Categorical or OneHotCategorical site gets a learnable logit vector per element;
* any other site gets a Normal in unconstrained space pushed through ``biject_to(support)``,
  exactly as :class:`pyro.infer.autoguide.AutoNormal` does.

All factors are independent (mean field). Parameters of sites inside plates are sized by the full
plate and indexed by the subsample indices, as in ``AutoNormal``. The discrete sites are plain,
non-reparameterised Bernoulli/Categorical sites, so :class:`~ppl_arms.pyro.TraceARMS_ELBO` couples
them (ARMS/CARMS gradients).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from functools import partial
from operator import attrgetter
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.distributions.util import sum_rightmost
from pyro.infer.autoguide import AutoGuide
from pyro.infer.autoguide.initialization import InitMessenger, init_to_feasible
from pyro.infer.autoguide.utils import deep_setattr, helpful_support_errors
from pyro.nn import PyroModule, PyroParam
from pyro.ops.tensor_utils import periodic_repeat
from torch.distributions import biject_to

from ppl_arms import _autoguide
from ppl_arms._autoguide import LOGIT_CLIP, SiteKind, SiteSpec
from ppl_arms.pyro._sites import unwrap

__all__ = ["AutoMixedMeanField"]


def _is_discrete(site: dict[str, Any]) -> bool:
    return bool(site["fn"].support.is_discrete)


@_autoguide.with_mean_field_doc
class AutoMixedMeanField(AutoGuide):
    """Mean-field guide over every latent site: logits for discrete sites, Normals for the rest.

    {MEAN_FIELD}

    Parameters live in the submodules ``locs`` and ``scales`` (continuous sites, as in
    :class:`~pyro.infer.autoguide.AutoNormal`) and ``logits`` (discrete sites), e.g.
    ``"AutoMixedMeanField.logits.z"`` in the param store. Train it with
    :class:`~ppl_arms.pyro.TraceARMS_ELBO`.

    *Composition.* Combine it with hand-written guides for sites it cannot parameterise (a Poisson
    latent, say) through :class:`~pyro.infer.autoguide.AutoGuideList`::

        guide = AutoGuideList(model)
        guide.append(AutoMixedMeanField(poutine.block(model, hide=["k"])))
        guide.append(guide_for_k)

    Args:
        model: The Pyro model.
        init_loc_fn: Initialisation strategy for the continuous sites (any of Pyro's ``init_to_*``);
            discrete sites take a draw from the model in the prototype run.
        init_scale: Initial scale of the continuous sites' unconstrained Normals.
        init_logits: ``"uniform"`` (all logits zero) or ``"prior"`` (the logits of the site's
            distribution in the prototype run, clipped to ``[-10, 10]``).
        create_plates: As in :class:`~pyro.infer.autoguide.AutoNormal`.

    Raises:
        ValueError: At the first call, for a discrete latent site that is neither Bernoulli nor
            (one-hot) categorical; the message names the site and the ``AutoGuideList`` recipe.
    """

    scale_constraint = constraints.softplus_positive

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = init_to_feasible,
        init_scale: float = 0.1,
        init_logits: str = "uniform",
        create_plates: Callable | None = None,
    ) -> None:
        if not isinstance(init_scale, float) or not init_scale > 0:
            raise ValueError(f"init_scale must be a positive float, got {init_scale!r}")
        _autoguide.check_init_logits(init_logits)
        self.init_loc_fn = init_loc_fn
        self._init_scale = init_scale
        self._init_logits = init_logits
        super().__init__(InitMessenger(self._init_strategy)(model), create_plates=create_plates)
        self._sites: dict[str, SiteSpec] = {}

    def _init_strategy(self, site: dict[str, Any]) -> torch.Tensor:
        if _is_discrete(site):
            return site["fn"].sample().detach()  # the logits are initialised separately
        return self.init_loc_fn(site)

    # -- prototype ---------------------------------------------------------------------------------

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        super()._setup_prototype(*args, **kwargs)
        self._sites = {}
        self.locs = PyroModule()
        self.scales = PyroModule()
        self.logits = PyroModule()
        nodes = list(self.prototype_trace.iter_stochastic_nodes())
        discrete = [name for name, site in nodes if _is_discrete(site)]
        for name, site in nodes:
            if _is_discrete(site):
                spec, init = self._discrete_site(name, site, discrete)
            else:
                spec, init = self._continuous_site(site)
            for frame in site["cond_indep_stack"]:
                full_size = frame.full_size or frame.size
                if full_size != frame.size:
                    dim = frame.dim - spec.param_event_dim
                    init = periodic_repeat(init, full_size, dim).contiguous()
            self._sites[name] = spec
            if spec.kind is SiteKind.CONTINUOUS:
                deep_setattr(
                    self.locs, name, PyroParam(init, constraints.real, spec.param_event_dim)
                )
                scale = torch.full_like(init, self._init_scale)
                deep_setattr(
                    self.scales,
                    name,
                    PyroParam(scale, self.scale_constraint, spec.param_event_dim),
                )
            else:
                deep_setattr(
                    self.logits, name, PyroParam(init, constraints.real, spec.param_event_dim)
                )

    def _discrete_site(
        self, name: str, site: dict[str, Any], discrete: list[str]
    ) -> tuple[SiteSpec, torch.Tensor]:
        info = unwrap(site["fn"])
        value = site["value"].detach()
        event_dim = site["fn"].event_dim
        spec, shape = _autoguide.discrete_site(
            name, info, value.shape, event_dim, value.dtype, "pyro", discrete
        )
        logits = info.base.logits.detach()
        if self._init_logits == "prior":
            if spec.kind is SiteKind.CATEGORICAL:
                logits = logits - logits.max(-1, keepdim=True).values
            init = logits.clamp(-LOGIT_CLIP, LOGIT_CLIP).expand(shape).clone()
        else:
            init = torch.zeros(shape, dtype=logits.dtype, device=logits.device)
        return spec, init

    def _continuous_site(self, site: dict[str, Any]) -> tuple[SiteSpec, torch.Tensor]:
        with helpful_support_errors(site):
            init = biject_to(site["fn"].support).inv(site["value"].detach()).detach()
        event_dim = site["fn"].event_dim
        param_event_dim = event_dim + init.dim() - site["value"].dim()
        return SiteSpec(SiteKind.CONTINUOUS, event_dim, param_event_dim, init.dtype), init

    # -- the guide ---------------------------------------------------------------------------------

    def _transform(self, name: str) -> Any:
        return biject_to(self.prototype_trace.nodes[name]["fn"].support)

    def _discrete_fn(self, spec: SiteSpec, logits: torch.Tensor) -> Any:
        if spec.kind is SiteKind.BERNOULLI:
            return dist.Bernoulli(logits=logits)
        if spec.one_hot:
            return dist.OneHotCategorical(logits=logits)
        return dist.Categorical(logits=logits)

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Sample every latent site (the guide has the model's signature).

        Returns:
            A dict from site name to sampled value.
        """
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        plates = self._create_plates(*args, **kwargs)
        result = {}
        for name, site in self.prototype_trace.iter_stochastic_nodes():
            spec = self._sites[name]
            with ExitStack() as stack:
                for frame in site["cond_indep_stack"]:
                    if frame.vectorized:
                        stack.enter_context(plates[frame.name])
                if spec.kind is SiteKind.CONTINUOUS:
                    result[name] = self._sample_continuous(name, site)
                else:
                    logits = attrgetter(name)(self.logits)
                    fn = self._discrete_fn(spec, logits).to_event(spec.event_dim - spec.one_hot)
                    result[name] = pyro.sample(name, fn)
        return result

    def _sample_continuous(self, name: str, site: dict[str, Any]) -> torch.Tensor:
        spec = self._sites[name]
        transform = self._transform(name)
        loc = attrgetter(name)(self.locs)
        scale = attrgetter(name)(self.scales)
        unconstrained = pyro.sample(
            name + "_unconstrained",
            dist.Normal(loc, scale).to_event(spec.param_event_dim),
            infer={"is_auxiliary": True},
        )
        value = transform(unconstrained)
        if poutine.get_mask() is False:
            log_density = 0.0
        else:
            log_density = transform.inv.log_abs_det_jacobian(value, unconstrained)
            log_density = sum_rightmost(
                log_density, log_density.dim() - value.dim() + site["fn"].event_dim
            )
        delta = dist.Delta(value, log_density=log_density, event_dim=site["fn"].event_dim)
        return pyro.sample(name, delta)

    # -- summaries ---------------------------------------------------------------------------------

    def _check_ready(self) -> None:
        if self.prototype_trace is None:
            raise _autoguide.not_ready_error("one svi.step", "medians or quantiles")

    def _discrete_value(self, spec: SiteSpec, index: torch.Tensor, k: int) -> torch.Tensor:
        if spec.one_hot:
            return torch.nn.functional.one_hot(index.long(), k).to(spec.dtype)
        return index.to(spec.dtype)

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Mode of each discrete factor and transformed Normal median of each continuous one.

        Returns:
            A dict from latent site name to its value.
        """
        self._check_ready()
        return _autoguide.per_site(self._sites, self._continuous_median, self._discrete_median)

    def _continuous_median(self, name: str, spec: SiteSpec) -> torch.Tensor:
        loc = attrgetter(name)(self.locs)
        value = self._transform(name)(loc)
        return value.clone() if value is loc else value

    def _discrete_median(self, name: str, spec: SiteSpec) -> torch.Tensor:
        logits = attrgetter(name)(self.logits)
        if spec.kind is SiteKind.BERNOULLI:
            return (logits > 0).to(spec.dtype)
        return self._discrete_value(spec, logits.argmax(-1), logits.shape[-1])

    @torch.no_grad()
    def quantiles(
        self, quantiles: Sequence[float] | torch.Tensor, *args: Any, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """Quantiles of each factor, shape ``[len(quantiles), *site shape]`` (see the class doc).

        Args:
            quantiles: Requested quantiles in ``[0, 1]``.
            *args: Unused (the host's signature).
            **kwargs: Unused (the host's signature).

        Returns:
            A dict from latent site name to its quantiles.
        """
        self._check_ready()
        return _autoguide.per_site(
            self._sites,
            partial(self._continuous_quantiles, quantiles),
            partial(self._discrete_quantiles, quantiles),
        )

    def _continuous_quantiles(self, quantiles: Any, name: str, spec: SiteSpec) -> torch.Tensor:
        loc = attrgetter(name)(self.locs)
        scale = attrgetter(name)(self.scales)
        q = torch.as_tensor(quantiles, dtype=loc.dtype, device=loc.device)
        q = q.reshape((-1,) + (1,) * loc.dim())
        return self._transform(name)(dist.Normal(loc, scale).icdf(q))

    def _discrete_quantiles(self, quantiles: Any, name: str, spec: SiteSpec) -> torch.Tensor:
        logits = attrgetter(name)(self.logits)
        q = torch.as_tensor(quantiles, dtype=logits.dtype, device=logits.device)
        q = q.reshape((-1,) + (1,) * logits.dim())
        if spec.kind is SiteKind.BERNOULLI:
            return (q > 1 - torch.sigmoid(logits)).to(spec.dtype)
        k = logits.shape[-1]
        cdf = logits.softmax(-1).cumsum(-1)
        index = (cdf < q).sum(-1).clamp(max=k - 1)
        return self._discrete_value(spec, index, k)
