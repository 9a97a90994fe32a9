"""The main job runs end to end with a tiny budget and writes its table, JSON and PNGs."""

import json
import math

import pytest

from benchmarks import compare
from benchmarks.losses import LOSSES, make_loss

TINY = [
    "--steps", "4", "--eval-samples", "3", "--test-size", "10", "--variance-replicates", "3",
    "--batch-size", "8", "--quiet",
]  # fmt: skip


@pytest.mark.parametrize(
    "backend",
    # NumPyro compiles each loss's step, evaluation and variance programs (about 50 s of CPU);
    # its default-suite coverage is test_disarm_is_skipped_on_categorical_models below.
    [pytest.param("numpyro", marks=pytest.mark.slow), "pyro"],
)
def test_compare_end_to_end(tmp_path, backend):
    out = tmp_path / backend
    results = compare.main(
        [*TINY, "--backend", backend, "--losses", "arms,loorf,disarm,iwae-vimco,tracegraph",
         "--out", str(out)]
    )  # fmt: skip
    for name in ["compare.md", "compare.json", "curves.png", "variance.png"]:
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "compare.json").read_text())
    assert set(saved["runs"]) == {"arms", "loorf", "disarm", "iwae-vimco", "tracegraph"}
    for run in saved["runs"].values():
        for key in [
            "final_train_objective",
            "test_bound",
            "grad_variance_init",
            "grad_variance_end",
        ]:
            assert math.isfinite(run[key]), (key, run)
        assert run["grad_variance_init"] > 0
        assert len(run["train_curve"]) == 4
    assert saved["runs"]["loorf"]["grad_variance_init_vs_loorf"] == pytest.approx(1.0)
    for when in ("init", "end"):
        assert saved["runs"]["loorf"][f"work_normalised_variance_{when}_vs_loorf"] == pytest.approx(
            1
        )
        arms = saved["runs"]["arms"]
        expected = arms[f"grad_variance_{when}_vs_loorf"] * (
            saved["runs"]["loorf"]["steps_per_second"] / arms["steps_per_second"]
        )
        assert arms[f"work_normalised_variance_{when}_vs_loorf"] == pytest.approx(expected)
    table = (out / "compare.md").read_text()
    assert "| arms | elbo |" in table and "| iwae-vimco | bound n=4 |" in table
    assert "| work-norm. vs LOORF |" in table and "| steps |" not in table
    assert results["config"]["backend"] == backend


def test_work_normalised_variance_is_variance_times_step_time_over_loorfs():
    loorf = {"grad_variance_end": 2.0, "steps_per_second": 400.0}
    carms = {"grad_variance_end": 1.0, "steps_per_second": 100.0}  # half the variance, 4x slower
    assert compare.work_normalised(carms, loorf, "end") == pytest.approx(2.0)
    assert compare.work_normalised(loorf, loorf, "end") == pytest.approx(1.0)
    assert compare.work_normalised(carms, {}, "end") is None  # no LOORF run
    assert compare.work_normalised({**carms, "steps_per_second": None}, loorf, "end") is None


def test_deadline_batches_stop_after_the_time_budget():
    ticks = iter([10.0, 10.1, 10.2, 10.35, 10.5, 10.6])
    elapsed: list[float] = []
    got = list(compare.deadline_batches(iter(range(100)), 0.3, elapsed, clock=lambda: next(ticks)))
    # the clock starts once the first (compiling) step is done; the step ending at 0.35 s is the last
    assert got == [0, 1, 2, 3]
    assert elapsed == pytest.approx([0.0, 0.1, 0.2, 0.35])  # when each step ended
    finite: list[float] = []
    assert list(compare.deadline_batches(iter([7, 8]), 60.0, finite)) == [7, 8]
    assert len(finite) == 2  # one entry per step done, also when the batches run out


def test_equal_time_mode_trains_for_seconds_and_plots_against_them(tmp_path):
    # Pyro: no compile, so the test stays fast
    results = compare.main(
        [*TINY, "--equal-time", "0.3", "--backend", "pyro", "--losses", "arms,loorf",
         "--out", str(tmp_path)]
    )  # fmt: skip
    for run in results["runs"].values():
        clock = run["train_clock_seconds"]
        assert run["steps"] == len(run["train_curve"]) == len(clock) >= 2
        assert clock[-1] >= 0.3 and clock[-2] < 0.3 and clock == sorted(clock)
        assert math.isfinite(run["test_bound"]) and math.isfinite(run["final_train_objective"])
    table = (tmp_path / "compare.md").read_text()
    assert "equal wall-clock: 0.3 s" in table and "| loss | objective | steps |" in table
    assert f"| arms | elbo | {results['runs']['arms']['steps']} |" in table
    assert (tmp_path / "curves.png").stat().st_size > 0


@pytest.mark.slow  # a benchmark run in two backends (about 9 s): plumbing, not estimator math
def test_disarm_is_skipped_on_categorical_models(tmp_path):
    results = compare.main(
        [
            *TINY,
            "--model",
            "categorical_vae_linear",
            "--losses",
            "arms,disarm",
            "--out",
            str(tmp_path),
        ]
    )
    assert "skipped" in results["runs"]["disarm"]
    assert (
        "| disarm | disarm applies to Bernoulli sites only |"
        in (tmp_path / "compare.md").read_text()
    )


def test_unknown_loss_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="unknown losses"):
        compare.main([*TINY, "--losses", "arms,bogus", "--out", str(tmp_path)])


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_every_registered_loss_builds(name, backend):
    if backend not in LOSSES[name].backends:
        with pytest.raises(ValueError, match=f"loss '{name}' exists in"):
            make_loss(name, backend, 4)
        return
    loss = make_loss(name, backend, 4)
    assert loss.num_particles in (2, 4)


@pytest.mark.slow  # trains every paper loss once (about 70 s of CPU)
@pytest.mark.skipif(
    not __import__("pathlib").Path("/usr/share/datasets/fashion-mnist").exists(),
    reason="needs the Debian package dataset-fashion-mnist (installed by .ci/run)",
)
def test_paper_runs_write_the_results_page(tmp_path):
    from benchmarks import paper

    paper.main(
        ["--out", str(tmp_path), "--scale", "0.0001", "--only", "binary_vae_linear",
         "--test-size", "10", "--eval-samples", "2", "--variance-replicates", "2"]
    )  # fmt: skip
    index = (tmp_path / "index.md").read_text()
    assert "## binary_vae_linear" in index and "| iwae-vimco |" in index
    assert (tmp_path / "binary_vae_linear" / "curves.png").exists()


def test_paper_retable_renders_saved_runs_with_the_work_normalised_column(tmp_path):
    import shutil
    from pathlib import Path

    from benchmarks import paper

    saved = Path(__file__).parents[2] / "docs" / "results" / "fashion_mnist"
    shutil.copy(saved / "summary.json", tmp_path)
    (tmp_path / "categorical_vae_linear").mkdir()
    shutil.copy(
        saved / "categorical_vae_linear" / "compare.json", tmp_path / "categorical_vae_linear"
    )
    paper.main(["--out", str(tmp_path), "--retable"])  # trains nothing
    runs = json.loads((tmp_path / "categorical_vae_linear" / "compare.json").read_text())["runs"]
    work = compare.work_normalised(runs["arms"], runs["loorf"], "end")
    table = (tmp_path / "categorical_vae_linear" / "compare.md").read_text()
    assert f"| {runs['arms']['grad_variance_end_vs_loorf']:.2f} | {work:.2f} |" in table
    index = (tmp_path / "index.md").read_text()
    assert index.startswith("Command: `python -m benchmarks.paper")
    assert "## categorical_vae_linear" in index and "## binary_vae_linear" not in index
