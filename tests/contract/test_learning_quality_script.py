"""``benchmarks/learning_quality.py`` (the script behind docs/benchmarks.md's learning-quality tables)
runs for rlworks and for SB3's own implementation, writing the same JSON either way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "learning_quality.py"


@pytest.mark.parametrize("lib", ["rlworks", "sb3"])
def test_learning_quality_writes_per_seed_results(tmp_path, lib):
    if lib == "sb3":
        pytest.importorskip("stable_baselines3")
    out = tmp_path / "lq.json"
    args = ["--algo", "ppo", "--env", "CartPole-v1", "--total-steps", "2048", "--seeds", "3", "--json", str(out),
            "--lib", lib, "--n_steps", "256"]
    run = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["lib"] == lib and data["complete"] and data["overrides"] == {"n_steps": 256}
    (row,) = data["seeds"]
    assert row["seed"] == 3 and 1 <= row["mean_return"] <= 500 and row["train_seconds"] > 0
    assert row["curve"] and all(0 < step <= 2048 for step, _ in row["curve"])
    assert f"median of 1 seeds = {data['median']:.1f}" in run.stdout
