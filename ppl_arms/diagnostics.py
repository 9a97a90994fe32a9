r"""Gradient-variance diagnostics, backend-neutral part: the table of per-parameter statistics.

The backends (:func:`ppl_arms.numpyro.gradient_variance`, :func:`ppl_arms.pyro.gradient_variance`)
draw :math:`R` independent gradient estimates :math:`g^{(1)},\dots,g^{(R)}` of a loss at fixed
parameter values and hand them to :func:`gradient_table`. For each parameter (with elements
:math:`j`) the table reports

.. math::
    \hat\mu_j=\frac1R\sum_r g^{(r)}_j,\qquad
    \hat\sigma^2_j=\frac1{R-1}\sum_r\big(g^{(r)}_j-\hat\mu_j\big)^2,\qquad
    \mathrm{SNR}=\frac{\lVert\hat\mu\rVert_2}{\sqrt{\sum_j\hat\sigma^2_j}},

the total variance :math:`\sum_j\hat\sigma^2_j` (the trace of the estimator's covariance, the usual
single number for comparing estimators at equal cost) and the element-wise SNR
:math:`|\hat\mu_j|/\hat\sigma_j` (Rainforth et al., 2018). Rows can be regrouped by the guide sites
whose distribution depends on each parameter (:meth:`GradientVarianceTable.by_site`).

References:
    T. Rainforth, A. R. Kosiorek, T. A. Le, C. J. Maddison, M. Igl, F. Wood, Y. W. Teh. "Tighter
    Variational Bounds are Not Necessarily Better." ICML 2018.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "GradientStats",
    "GradientVarianceTable",
    "check_num_estimates",
    "gradient_table",
    "parameter_sites",
]

MODEL_GROUP = "(no guide site)"
"""Row name of :meth:`GradientVarianceTable.by_site` for parameters no guide site depends on."""


@dataclass(frozen=True)
class GradientStats:
    """Mean and variance of ``R`` gradient estimates of one parameter (or a group of them).

    Attributes:
        name: The parameter name (or the site name, after :meth:`GradientVarianceTable.by_site`).
        sites: The guide sample sites whose distribution depends on the parameter.
        mean: Element-wise mean of the estimates (the parameter's shape).
        variance: Element-wise sample variance (``ddof=1``) of the estimates.
        num_estimates: ``R``.
    """

    name: str
    sites: tuple[str, ...]
    mean: np.ndarray
    variance: np.ndarray
    num_estimates: int

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.size(self.mean))

    @property
    def mean_norm(self) -> float:
        """Euclidean norm of the mean gradient."""
        return float(np.sqrt(np.sum(np.square(self.mean))))

    @property
    def total_variance(self) -> float:
        """Sum of the element variances (trace of the covariance of one estimate)."""
        return float(np.sum(self.variance))

    @property
    def snr(self) -> float:
        """``‖mean‖ / sqrt(total variance)`` (``inf`` for an exact gradient, ``nan`` for 0/0)."""
        return _ratio(self.mean_norm, np.sqrt(self.total_variance))

    @property
    def elementwise_snr(self) -> np.ndarray:
        """``|mean_j| / sd_j`` per element (``inf`` where the variance is zero)."""
        sd = np.sqrt(self.variance)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(
                sd > 0, np.abs(self.mean) / sd, np.where(self.mean != 0, np.inf, np.nan)
            )

    @property
    def standard_error(self) -> np.ndarray:
        """Standard error of the mean, element-wise."""
        return np.sqrt(self.variance / self.num_estimates)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python summary (JSON-serialisable)."""
        return {
            "name": self.name,
            "sites": list(self.sites),
            "size": self.size,
            "mean_norm": self.mean_norm,
            "total_variance": self.total_variance,
            "snr": self.snr,
            "mean": np.asarray(self.mean, dtype=float).tolist(),
            "variance": np.asarray(self.variance, dtype=float).tolist(),
        }


def _ratio(a: float, b: float) -> float:
    if b > 0:
        return float(a / b)
    return float("inf") if a > 0 else float("nan")


@dataclass(frozen=True)
class GradientVarianceTable:
    """Per-parameter gradient statistics of one loss at fixed parameter values.

    ``str(table)`` is a fixed-width table; :meth:`to_dict` gives plain Python (JSON); ``table[name]``
    is one row. :attr:`total_variance` is the single number for comparing estimators.

    Attributes:
        rows: One :class:`GradientStats` per parameter (or per site after :meth:`by_site`).
        num_estimates: ``R``, the number of gradient estimates.
        loss: A description of the loss (its ``repr``).
    """

    rows: tuple[GradientStats, ...]
    num_estimates: int
    loss: str = ""
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({row.name: i for i, row in enumerate(self.rows)})

    def __getitem__(self, name: str) -> GradientStats:
        if name not in self._index:
            raise KeyError(f"no row {name!r}; rows are {list(self._index)}")
        return self.rows[self._index[name]]

    def __iter__(self) -> Any:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def names(self) -> list[str]:
        """Row names, in order."""
        return [row.name for row in self.rows]

    @property
    def total_variance(self) -> float:
        """Sum of all element variances over all rows."""
        return float(sum(row.total_variance for row in self.rows))

    def by_site(self) -> GradientVarianceTable:
        """Regroup the rows by guide site: one row per set of sites that parameters feed.

        A parameter that only one site depends on (a logit table, a ``loc``) joins that site's row;
        a parameter shared by several sites (an encoder) gets a row named ``"a+b"``; parameters no
        guide site depends on (model parameters) are grouped as ``"(no guide site)"``.
        """
        groups: dict[tuple[str, ...], list[GradientStats]] = {}
        for row in self.rows:
            groups.setdefault(row.sites, []).append(row)
        rows = []
        for sites, members in groups.items():
            name = "+".join(sites) if sites else MODEL_GROUP
            rows.append(
                GradientStats(
                    name,
                    sites,
                    np.concatenate([np.ravel(m.mean) for m in members]),
                    np.concatenate([np.ravel(m.variance) for m in members]),
                    self.num_estimates,
                )
            )
        return GradientVarianceTable(tuple(rows), self.num_estimates, self.loss)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python summary: the loss, ``R``, the total variance and every row."""
        return {
            "loss": self.loss,
            "num_estimates": self.num_estimates,
            "total_variance": self.total_variance,
            "rows": [row.to_dict() for row in self.rows],
        }

    def to_pandas(self) -> Any:
        """The summary columns as a :class:`pandas.DataFrame` indexed by row name."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "name": r.name,
                    "sites": ",".join(r.sites),
                    "size": r.size,
                    "mean_norm": r.mean_norm,
                    "total_variance": r.total_variance,
                    "snr": r.snr,
                }
                for r in self.rows
            ]
        ).set_index("name")

    def __str__(self) -> str:
        header = ("parameter", "size", "sites", "|mean|", "variance", "SNR")
        body = [
            (
                r.name,
                str(r.size),
                ",".join(r.sites) or "-",
                f"{r.mean_norm:.4g}",
                f"{r.total_variance:.4g}",
                f"{r.snr:.3g}",
            )
            for r in self.rows
        ]
        size = sum(r.size for r in self.rows)
        body.append(("total", str(size), "", "", f"{self.total_variance:.4g}", ""))
        widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]

        def fmt(line: Sequence[str]) -> str:
            cells = [
                cell.ljust(w) if c < 3 else cell.rjust(w)
                for c, (cell, w) in enumerate(zip(line, widths, strict=True))
            ]
            return "  ".join(cells).rstrip()

        rule = "  ".join("-" * w for w in widths)
        title = f"gradient variance over {self.num_estimates} estimates" + (
            f" of {self.loss}" if self.loss else ""
        )
        return "\n".join(
            [title, fmt(header), rule, *(fmt(b) for b in body[:-1]), rule, fmt(body[-1])]
        )


def check_num_estimates(num_estimates: int) -> None:
    """Raise a ``ValueError`` unless ``num_estimates >= 2`` (a variance needs two estimates)."""
    if num_estimates < 2:
        raise ValueError(f"num_estimates must be >= 2 for a variance, got {num_estimates}")


def parameter_sites(
    site_params: Mapping[str, Iterable[str]], params: Iterable[str]
) -> dict[str, tuple[str, ...]]:
    """Invert "guide site -> parameters it depends on" into the ``sites`` of :func:`gradient_table`.

    Args:
        site_params: Guide site name to the parameters its log-density or value depends on.
        params: Every parameter name (those no site depends on get an empty tuple).

    Returns:
        Parameter name to the sorted names of the guide sites that depend on it.
    """
    out: dict[str, list[str]] = {p: [] for p in params}
    for site, names in site_params.items():
        for p in names:
            out[p].append(site)
    return {p: tuple(sorted(s)) for p, s in out.items()}


def gradient_table(
    gradients: Mapping[str, Any],
    sites: Mapping[str, Sequence[str]] | None = None,
    loss: str = "",
) -> GradientVarianceTable:
    """Build the table from stacked gradient estimates.

    Args:
        gradients: Parameter name to estimates ``[R, *shape]`` (any array convertible by NumPy).
        sites: Parameter name to the guide sites whose distribution depends on it.
        loss: A description of the loss.

    Returns:
        The :class:`GradientVarianceTable`, rows in the order of ``gradients``.
    """
    rows = []
    num = None
    for name, g in gradients.items():
        g = np.asarray(g, dtype=np.float64)
        if num is None:
            num = g.shape[0]
        if g.shape[0] != num:
            raise ValueError(f"parameter '{name}' has {g.shape[0]} estimates, expected {num}")
        if num < 2:
            raise ValueError(f"need at least 2 gradient estimates for a variance, got {num}")
        site_names = tuple(sorted((sites or {}).get(name, ())))
        rows.append(GradientStats(name, site_names, g.mean(0), g.var(0, ddof=1), num))
    if num is None:
        raise ValueError("no parameters: the model and guide have no param sites")
    return GradientVarianceTable(tuple(rows), num, loss)
