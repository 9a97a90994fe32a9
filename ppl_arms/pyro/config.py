"""``config_estimator``: the enumeration-free counterpart of ``config_enumerate``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample

from ppl_arms._config_estimator import MarkSites, make_config_estimator
from ppl_arms.config import SiteMarker

__all__ = ["config_estimator"]


class _MarkSites(MarkSites, Messenger):
    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if not isinstance(msg["fn"], _Subsample):
            self.mark(msg, bool(getattr(msg["fn"], "has_rsample", False)))


def _wrap(fn: Callable, marker: SiteMarker) -> Callable:
    return _MarkSites(marker=marker)(fn)


config_estimator = make_config_estimator(_wrap, __name__, "pyro.infer.config_enumerate")
