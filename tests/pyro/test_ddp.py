"""Pyro under torch ``DistributedDataParallel`` with two gloo processes started by torchrun.

Each rank evaluates ``TraceARMS_ELBO(4)(model, guide)`` (an ``nn.Module``) on its shard of the
data plate, with the subsample scale ``N / M`` from ``pyro.plate(..., subsample=idx)``; DDP averages
the gradients. The expectation of the averaged gradient must be the exact full-data gradient
(exact enumeration), and a short Adam run must keep the replicas identical and improve the exact
ELBO. The worker is ``_ddp_worker.py``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "pyro" / "_ddp_worker.py"
# The gradient's cells are checked at this many standard errors (ppl_arms.testing.assert_unbiased
# default); the worker reports the largest |z| it saw.
Z_MAX = 4.5


def _torchrun(mode: str) -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(WORKER),
            mode,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


@pytest.mark.slow  # two torchrun processes (about 20 s)
def test_ddp_short_training_run():
    report = _torchrun("train")
    assert report["world"] == 2
    assert report["same_parameters"], "the DDP replicas diverged"
    assert report["elbo_after"] > report["elbo_before"] + 1.0, report


@pytest.mark.slow
def test_ddp_averaged_gradient_is_unbiased_for_the_full_data_gradient():
    report = _torchrun("expectation")
    assert report["world"] == 2
    assert report["max_z"] < Z_MAX, report
