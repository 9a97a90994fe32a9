"""``config_estimator``: the enumeration-free counterpart of ``config_enumerate``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numpyro.primitives import Messenger

from ppl_arms._config_estimator import MarkSites, make_config_estimator
from ppl_arms.config import SiteMarker

__all__ = ["config_estimator"]


class _MarkSites(MarkSites, Messenger):
    def process_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "sample":
            self.mark(msg, bool(msg["fn"].has_rsample))


def _wrap(fn: Callable, marker: SiteMarker) -> Callable:
    return _MarkSites(fn, marker=marker)


config_estimator = make_config_estimator(_wrap, __name__, "numpyro.contrib.funsor.config_enumerate")
