"""The tabular CLI as a user meets it: subprocesses, run directories, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CLI = [sys.executable, "-m", "rlworks.cli"]


def rlworks(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], check=False, capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rlworks: error: ")
    assert "Traceback" not in proc.stderr + proc.stdout
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "ql"
    proc = rlworks("train", "q-learning", "--env", "rlworks/GridWorld-v0", "--episodes", "400",
                   "--epsilon", "0.2", "--seed", "3", "--run-dir", str(run))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "max Q and greedy action" in proc.stdout
    return run


def test_train_writes_a_complete_run_directory(trained_run: Path) -> None:
    for name in ("config.json", "metrics.csv", "q_table.npy", "learning_curve.png", "MANIFEST.json"):
        assert (trained_run / name).is_file(), name
    config = json.loads((trained_run / "config.json").read_text())
    assert config["algo"] == "q-learning" and config["episodes"] == 400 and config["seed"] == 3
    assert config["env"] == "rlworks/GridWorld-v0"
    q = np.load(trained_run / "q_table.npy", allow_pickle=False)
    assert q.shape == (25, 4)
    rows = (trained_run / "metrics.csv").read_text().splitlines()
    assert rows[0] == "episode,return,length,epsilon,alpha" and len(rows) == 401


def test_cli_run_matches_the_python_api(trained_run: Path) -> None:
    from rlworks.tabular import q_learning

    result = q_learning("rlworks/GridWorld-v0", episodes=400, alpha=0.1, gamma=0.95, epsilon=0.2, seed=3)
    q = np.load(trained_run / "q_table.npy", allow_pickle=False)
    np.testing.assert_array_equal(q, result.q)  # bit for bit, across processes


def test_eval_in_a_new_process(trained_run: Path) -> None:
    proc = rlworks("eval", str(trained_run), "--episodes", "20")
    assert proc.returncode == 0, proc.stderr
    assert "mean return" in proc.stdout and "success rate" in proc.stdout


def test_plan_prints_the_optimal_values() -> None:
    proc = rlworks("plan", "value-iteration", "--env", "FrozenLake-v1", "--gamma", "0.9")
    assert proc.returncode == 0, proc.stderr
    assert "V*(start)" in proc.stdout


def test_list_and_help() -> None:
    proc = rlworks("list")
    assert proc.returncode == 0 and "q-learning" in proc.stdout and "rlworks/GridWorld-v0" in proc.stdout
    proc = rlworks("train", "sarsa", "--help")
    assert proc.returncode == 0
    for flag in ("--episodes", "--alpha", "--gamma", "--epsilon", "--seed", "--epsilon-schedule", "--run-dir"):
        assert flag in proc.stdout, flag
    assert rlworks("--help").returncode == 0


@pytest.mark.parametrize(
    "args, needles",
    [
        (("train", "qlearning"), ("unknown algorithm", "did you mean 'q-learning'")),
        (("train", "q-learning", "--env", "FrozenLak-v1"), ("unknown env", "FrozenLake-v1")),
        (("train", "q-learning", "--env", "CartPole-v1"), ("Discrete", "CartPole-v1")),
        (("train", "sarsa", "--env", "Pendulum-v1"), ("Discrete", "Box")),
        (("train", "q-learning", "--alpha", "0"), ("alpha", "(0.0, 1.0]")),
        (("train", "q-learning", "--alpha", "1.5"), ("alpha",)),
        (("train", "q-learning", "--gamma", "1.01"), ("gamma", "[0.0, 1.0]")),
        (("train", "q-learning", "--epsilon", "-0.1"), ("epsilon",)),
        (("train", "expected-sarsa", "--episodes", "-5"), ("episodes",)),
        (("train", "q-learning", "--episodes", "ten"), ("--episodes",)),
        (("train", "q-learning", "--planning-steps", "5"), ("dyna-q",)),
        (("train", "q-learning", "--epsilon-schedule", "linear"), ("--epsilon-end",)),
        (("train", "q-learning", "--layout", "S.X/..G"), ("row 0, column 2", "'X'")),
        (("train", "q-learning", "--layout", "S.W/WWW/..G"), ("unreachable",)),
        (("plan", "value-iteraton", "--env", "FrozenLake-v1"), ("did you mean 'value-iteration'",)),
        (("plan", "value-iteration", "--env", "CartPole-v1"), ("Discrete",)),
        (("trian",), ("did you mean 'train'",)),
        (("eval", "/definitely/not/here"), ("does not exist",)),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needles) -> None:
    assert_one_line_error(rlworks(*args), *needles)


def test_corrupt_or_incomplete_run_directory(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    flipped = tmp_path / "flipped"
    shutil.copytree(trained_run, flipped)
    data = bytearray((flipped / "q_table.npy").read_bytes())
    data[-3] ^= 0xFF
    (flipped / "q_table.npy").write_bytes(bytes(data))
    assert_one_line_error(rlworks("eval", str(flipped)), "q_table.npy", "corrupt")

    missing = tmp_path / "missing"
    shutil.copytree(trained_run, missing)
    (missing / "MANIFEST.json").unlink()
    assert_one_line_error(rlworks("eval", str(missing)), "MANIFEST.json")

    truncated = tmp_path / "truncated"
    shutil.copytree(trained_run, truncated)
    (truncated / "config.json").write_text("{not json")
    assert_one_line_error(rlworks("eval", str(truncated)), "config.json")

    # the original run is untouched and still evaluates
    assert rlworks("eval", str(trained_run), "--episodes", "2").returncode == 0
