"""``config_estimator``: the enumeration-free counterpart of ``config_enumerate``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numpyro.primitives import Messenger

from ppl_arms._config_estimator import MarkSites, make_config_estimator
from ppl_arms.config import INFER_KEY, SiteMarker
from ppl_arms.numpyro.learned import learned_params

__all__ = ["config_estimator"]


class _MarkSites(MarkSites, Messenger):
    def process_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "sample":
            self.mark(msg, bool(msg["fn"].has_rsample))

    def postprocess_message(self, msg: dict[str, Any]) -> None:
        # NumPyro's SVI collects its parameters from one run of the guide, never of the loss: the
        # learned parts of a site's estimator (Double CV, RODEO) are declared here, next to the
        # site, so that SVI trains them with no user code (nothing for other estimators).
        if msg["type"] == "sample" and not msg["is_observed"]:
            estimator = (msg.get("infer") or {}).get(INFER_KEY)
            if estimator is not None:
                learned_params(msg["name"], estimator)


def _wrap(fn: Callable, marker: SiteMarker) -> Callable:
    return _MarkSites(fn, marker=marker)


config_estimator = make_config_estimator(_wrap, __name__, "numpyro.contrib.funsor.config_enumerate")
