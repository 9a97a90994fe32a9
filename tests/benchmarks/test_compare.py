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


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
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
    table = (out / "compare.md").read_text()
    assert "| arms | elbo |" in table and "| iwae-vimco | bound n=4 |" in table
    assert results["config"]["backend"] == backend


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
    loss = make_loss(name, backend, 4)
    assert loss.num_particles in (2, 4)


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
