"""benchmarks/gpu_check.py in its no-GPU mode, small: the script that a first GPU machine runs
must not rot where no GPU is."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, cli_env


# ~50 s of subprocesses; out of the default run to keep the suite under 10 minutes on 2 cores
# (pytest -m slow runs it)
@pytest.mark.slow
def test_gpu_check_runs_without_a_gpu_and_says_so(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "gpu_check.py"),
            f"--out={tmp_path}",
            "--max_resolution=8",
            "--steps=2",
        ],
        cwd=ROOT,
        env={**cli_env(), "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "no GPU found" in result.stdout
    report = json.load(open(tmp_path / "gpu_check.json"))
    assert report["tiny"] and report["devices"]["gpus"] == []
    assert [(r["resolution"], r["precision"]) for r in report["stages"]] == [
        (4, "float32"),
        (4, "mixed bfloat16 + XLA"),
        (8, "float32"),
        (8, "mixed bfloat16 + XLA"),
    ]
    assert all(r["images_per_s"] > 0 and r["estimate_gib"] > 0 for r in report["stages"])
    phase = report["phase"]
    assert phase["ok"] and phase["checkpoints_before_kill"] and phase["snapshots_before_kill"]
    # The kill lands within half a second of both files appearing, so later checkpoints may
    # exist by then; the resume must start from the newest one written before the kill.
    newest = max(
        {n.split(".")[0] for n in phase["checkpoints_before_kill"]},
        key=lambda name: int(name.split("-")[1]),
    )
    assert phase["resumed_from"].startswith("resuming from kimg")
    assert f"({newest})" in phase["resumed_from"]
    assert report["two_replicas"]["ok"] and "2 replicas" in report["two_replicas"]["running_on"]
    table = open(tmp_path / "gpu_check.md").read()
    assert "| 8² | 128 | float32 |" in table and "phase: killed after" in table
