"""``AutoMixedMeanField``: a mean-field autoguide for models with discrete and continuous latents.

Pyro's continuous autoguides (``AutoNormal`` and friends) reject discrete latent sites, and
``AutoDiscreteParallel`` needs enumeration. This guide covers every latent site of an unmodified
model: logits for the Bernoulli, Categorical and OneHotCategorical sites, Normals pushed through
``biject_to(support)`` for the others (see the class).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from ppl_arms._autoguide import MixedMeanField, Param, SiteKind, SiteSpec, continuous_spec
from ppl_arms.pyro._sites import SiteDistribution, unwrap

__all__ = ["AutoMixedMeanField"]

_MODULES = {Param.LOC: "locs", Param.SCALE: "scales", Param.LOGITS: "logits"}
"""The submodule holding each kind of parameter."""


def _is_discrete(site: dict[str, Any]) -> bool:
    return bool(site["fn"].support.is_discrete)


@_autoguide.with_mean_field_doc
class AutoMixedMeanField(MixedMeanField, AutoGuide):
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
        {INIT}
        create_plates: As in :class:`~pyro.infer.autoguide.AutoNormal`.

    {RAISES}
    """

    scale_constraint = constraints.softplus_positive
    backend = "pyro"
    _not_ready = ("one svi.step", "medians or quantiles")
    _unwrap = staticmethod(unwrap)

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
            spec, init = self._layout(name, site, site["value"].detach(), discrete)
            self._sites[name] = spec
            init = init.contiguous()
            if spec.kind is SiteKind.CONTINUOUS:
                scale = torch.full_like(init, self._init_scale)
                self._add_param(Param.LOC, name, init, constraints.real, spec)
                self._add_param(Param.SCALE, name, scale, self.scale_constraint, spec)
            else:
                self._add_param(Param.LOGITS, name, init, constraints.real, spec)

    def _add_param(
        self, what: Param, name: str, init: torch.Tensor, constraint: Any, spec: SiteSpec
    ) -> None:
        param = PyroParam(init, constraint, spec.param_event_dim)
        deep_setattr(getattr(self, _MODULES[what]), name, param)

    def _prior_logits(self, info: SiteDistribution) -> torch.Tensor:
        return info.base.logits.detach()

    def _continuous_site(
        self, site: dict[str, Any], value: torch.Tensor
    ) -> tuple[SiteSpec, torch.Tensor]:
        with helpful_support_errors(site):
            init = biject_to(site["fn"].support).inv(value).detach()
        return continuous_spec(site["fn"].event_dim, init, value, init.dtype), init

    def _full_size(self, frame: Any) -> int:
        return frame.full_size or frame.size

    @staticmethod
    def _periodic_repeat(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
        return periodic_repeat(x, size, dim).contiguous()

    # -- the guide ---------------------------------------------------------------------------------

    def _transform(self, name: str) -> Any:
        return biject_to(self.prototype_trace.nodes[name]["fn"].support)

    def _plate_frames(self, name: str) -> list[Any]:
        stack = self.prototype_trace.nodes[name]["cond_indep_stack"]
        return [frame for frame in stack if frame.vectorized]

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Sample every latent site (the guide has the model's signature).

        Returns:
            A dict from site name to sampled value.
        """
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        return self._sample_sites(self._create_plates(*args, **kwargs))

    def _param(self, params: None, name: str, what: Param) -> torch.Tensor:
        return attrgetter(name)(getattr(self, _MODULES[what]))

    def _sample_discrete(self, name: str, spec: SiteSpec) -> torch.Tensor:
        logits = self._param(None, name, Param.LOGITS)
        if spec.kind is SiteKind.BERNOULLI:
            fn = dist.Bernoulli(logits=logits)
        elif spec.one_hot:
            fn = dist.OneHotCategorical(logits=logits)
        else:
            fn = dist.Categorical(logits=logits)
        return pyro.sample(name, fn.to_event(spec.event_dim - spec.one_hot))

    def _sample_continuous(self, name: str, spec: SiteSpec) -> torch.Tensor:
        transform = self._transform(name)
        loc = self._param(None, name, Param.LOC)
        scale = self._param(None, name, Param.SCALE)
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
                log_density, log_density.dim() - value.dim() + spec.event_dim
            )
        delta = dist.Delta(value, log_density=log_density, event_dim=spec.event_dim)
        return pyro.sample(name, delta)

    # -- summaries ---------------------------------------------------------------------------------

    def _probs(self, spec: SiteSpec, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if spec.kind is SiteKind.BERNOULLI else logits.softmax(-1)

    @staticmethod
    def _normal_icdf(loc: torch.Tensor, scale: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return dist.Normal(loc, scale).icdf(u)

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
        # An identity transform returns the ``loc`` parameter itself: hand out copies.
        return {name: value.clone() for name, value in self.medians().items()}

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
        return self.quantile_values(None, quantiles)
