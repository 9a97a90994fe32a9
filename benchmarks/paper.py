"""The papers' architectures on Fashion-MNIST: the results page of the docs.

``python -m benchmarks.paper`` runs :mod:`benchmarks.compare` for the linear and nonlinear binary
VAEs (ARMS paper), the linear and nonlinear categorical VAEs and structured output prediction
(CARMS paper) on Fashion-MNIST (Debian package ``dataset-fashion-mnist``, dynamically binarised),
with ``N = 4`` model evaluations per data point and step for every loss, and writes each run's
table, JSON and figures under ``--out`` (default ``docs/results/fashion_mnist``) plus an
``index.md`` that collects the tables. ``--scale`` multiplies every run's number of steps (the
default fits in about an hour on 2 cores); ``--only`` selects runs by model name;
``--equal-time SECONDS`` trains every loss for the same wall-clock time instead of the same number
of steps. ``--retable`` trains nothing: it re-renders the tables (``compare.md`` and ``index.md``)
from the ``compare.json`` and ``summary.json`` already under ``--out``, e.g. to add a column derived
from recorded numbers (the work-normalised variance, from each run's recorded variances and step
times).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import compare

__all__ = ["RUNS", "main"]


@dataclass(frozen=True)
class PaperRun:
    """One model with the losses compared on it."""

    model: str
    losses: tuple[str, ...]
    steps: int


RUNS = (
    PaperRun(
        "binary_vae_linear",
        ("arms", "arms-gaussian", "loorf", "disarm", "tracegraph", "iwae-arms", "iwae-vimco"),
        20_000,
    ),
    PaperRun("binary_vae_nonlinear", ("arms", "loorf", "disarm", "tracegraph"), 20_000),
    PaperRun("categorical_vae_linear", ("arms", "loorf", "tracegraph"), 10_000),
    PaperRun("categorical_vae_nonlinear", ("arms", "loorf"), 10_000),
    PaperRun("structured_prediction", ("arms", "loorf"), 10_000),
)
"""The runs of the results page (``arms`` is CARMS on the categorical models)."""


def main(argv: list[str] | None = None) -> None:
    """Run the selected paper runs and write the results page's inputs."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.paper", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--out", default="docs/results/fashion_mnist")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every run's steps")
    p.add_argument("--only", type=lambda s: s.split(","), default=None, help="model names")
    p.add_argument("--backend", choices=["numpyro", "pyro"], default="numpyro")
    p.add_argument("--data-path", default=None)
    p.add_argument("--test-size", type=int, default=10_000)
    p.add_argument("--eval-samples", type=int, default=100)
    p.add_argument("--variance-replicates", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--equal-time", type=float, default=None, metavar="SECONDS")
    p.add_argument("--retable", action="store_true", help="re-render the saved runs' tables")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.retable:
        retable(out, args.only)
        return
    out.mkdir(parents=True, exist_ok=True)
    sections, summary = [], {}
    start = time.perf_counter()
    for run in RUNS:
        if args.only is not None and run.model not in args.only:
            continue
        steps = max(2, int(run.steps * args.scale))
        results = compare.main(
            [
                "--backend", args.backend, "--model", run.model, "--dataset", "fashion_mnist",
                "--losses", ",".join(run.losses), "--steps", str(steps),
                "--test-size", str(args.test_size), "--eval-samples", str(args.eval_samples),
                "--variance-replicates", str(args.variance_replicates), "--seed", str(args.seed),
                "--out", str(out / run.model), "--quiet",
                *(["--data-path", args.data_path] if args.data_path else []),
                *(["--equal-time", str(args.equal_time)] if args.equal_time is not None else []),
            ]
        )  # fmt: skip
        summary[run.model] = {k: v for k, v in results.items() if k != "runs"}
        sections.append(_section(run.model, results))
    total = time.perf_counter() - start
    command = " ".join(["python -m benchmarks.paper", *argv])
    _write_index(out, command, total, sections)
    (out / "summary.json").write_text(
        json.dumps({"command": command, "total_seconds": total, "runs": summary}, indent=1)
    )
    print(f"total {total / 60:.1f} min; wrote {out}/index.md")


def _section(model: str, results: dict) -> str:
    return (
        f"## {model}\n\n{compare.table(results)}\n"
        f"![training curves]({model}/curves.png)\n![gradient variance]({model}/variance.png)\n"
    )


def _write_index(out: Path, command: str, total: float, sections: list[str]) -> None:
    (out / "index.md").write_text(
        f"Command: `{command.strip()}` ({total / 60:.0f} min on this machine).\n\n"
        + "\n".join(sections)
    )


def retable(out: Path, only: list[str] | None = None) -> None:
    """Rewrite ``compare.md`` and ``index.md`` under ``out`` from the saved JSON (no training)."""
    summary = json.loads((out / "summary.json").read_text())
    sections = []
    for run in RUNS:
        path = out / run.model / "compare.json"
        if (only is not None and run.model not in only) or not path.exists():
            continue
        results = json.loads(path.read_text())
        (out / run.model / "compare.md").write_text(compare.table(results))
        sections.append(_section(run.model, results))
    _write_index(out, summary["command"], summary["total_seconds"], sections)
    print(f"re-rendered {len(sections)} tables from {out}/*/compare.json; wrote {out}/index.md")


if __name__ == "__main__":
    main()
