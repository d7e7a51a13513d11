"""The CLI's runs: Ctrl+C/SIGTERM checkpoint and exit 130/143, then --resume finishes; --keep-checkpoints; a run
that cannot start leaves no folder; eval of an ``agent.save`` folder and of a run whose replay buffer is damaged;
resume falls back to the newest intact checkpoint and says which."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlworks.cli", *args], check=False, capture_output=True, text=True,
                          env=ENV, timeout=300, cwd=cwd)


def _latest(run: Path) -> str:
    return (run / "checkpoints" / "latest").read_text().strip()


def _interrupt(args: list[str], run: Path, sig: int) -> tuple[subprocess.CompletedProcess, str]:
    """Start ``rlworks train ARGS``, send ``sig`` once its first checkpoint is on disk; (result, that checkpoint)."""
    proc = subprocess.Popen([sys.executable, "-m", "rlworks.cli", "train", *args, "--run-dir", str(run), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "latest").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    first = _latest(run)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), first


@pytest.mark.parametrize("algo,sig,code,extra", [
    ("dqn", signal.SIGINT, 130, ["--learning-starts", "500"]),
    ("ppo", signal.SIGTERM, 143, []),
])
def test_signal_writes_a_checkpoint_and_resume_finishes_the_run(tmp_path, algo, sig, code, extra):
    run = tmp_path / "run"
    total = 30_720  # a whole number of PPO rollouts (8 envs x 32 steps)
    out, first = _interrupt([algo, "--env", "CartPole-v1", "--total-steps", str(total), "--checkpoint-every",
                             "1000", *extra], run, sig)
    assert out.returncode == code, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    step = int(lines[0].split("interrupted at step ")[1].split(";")[0])
    assert lines[0] == (f"rlworks: interrupted at step {step}; checkpoint written; resume with "
                        f"rlworks train --resume {run}")
    assert int(first.split("-")[1]) <= step < total
    assert _latest(run) == f"step-{step}"
    state = json.loads((run / "checkpoints" / f"step-{step}" / "state.json").read_text())
    assert state["sampler"]["global_step"] == step
    done = cli("train", "--resume", str(run), "--quiet")
    assert done.returncode == 0, done.stderr
    assert _latest(run) == f"step-{total}"
    with open(run / "metrics.csv", newline="") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == sorted(steps) and steps[-1] == total


def test_ctrl_c_to_the_process_group_with_async_workers(tmp_path):
    """A terminal's Ctrl+C reaches every process of the group, the env workers of ``--vec-env async`` too:
    they ignore it, so the trainer still finishes its step, checkpoints and exits 130."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "rlworks.cli", "train", "ppo", "--env", "CartPole-v1",
                             "--vec-env", "async", "--n-envs", "2", "--total-steps", "100000", "--checkpoint-every",
                             "1000", "--run-dir", str(run), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, start_new_session=True)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "latest").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted at step" in err and "Traceback" not in err, err[-2000:]
    step = int(err.split("interrupted at step ")[1].split(";")[0])
    assert _latest(run) == f"step-{step}"


def test_keep_checkpoints(tmp_path):
    run = tmp_path / "run"
    out = cli("train", "a2c", "--env", "CartPole-v1", "--total-steps", "2000", "--checkpoint-every", "400",
              "--keep-checkpoints", "2", "--run-dir", str(run), "--quiet")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-1600", "step-2000"]
    assert json.loads((run / "config.json").read_text())["keep_checkpoints"] == 2
    out = cli("train", "--resume", str(run), "--total-steps", "2800", "--quiet")  # the run's setting holds
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-2400", "step-2800"]


FAILS = [
    ["dqn", "--env", "Pendulum-v1"],  # wrong action space
    ["ppo", "--env", "NoSuchEnv-v0"],  # bad env id
]
if not torch.cuda.is_available():
    FAILS.append(["ppo", "--env", "CartPole-v1", "--device", "cuda"])


@pytest.mark.parametrize("args", FAILS)
def test_a_run_that_cannot_start_leaves_no_folder(tmp_path, args):
    out = cli("train", *args, "--total-steps", "1000", cwd=tmp_path)  # the default runs/ALGO-ENV-... folder
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert list(tmp_path.iterdir()) == []
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    out = cli("train", *args, "--total-steps", "1000", "--run-dir", str(mine))
    assert out.returncode == 2, out.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"


def test_eval_takes_an_agent_save_folder(tmp_path):
    code = ("import rlworks; rlworks.train('a2c', 'CartPole-v1', total_steps=400, seed=0)"
            f".save({str(tmp_path / 'agent')!r})")
    subprocess.run([sys.executable, "-c", code], check=True, env=ENV, timeout=300)
    out = cli("eval", str(tmp_path / "agent"), "--episodes", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("a2c CartPole-v1 step 400: return")


def test_damaged_buffer_stops_neither_eval_nor_resume(tmp_path):
    run = tmp_path / "run"
    out = cli("train", "sac", "--env", "Pendulum-v1", "--total-steps", "300", "--learning-starts", "100",
              "--batch-size", "32", "--checkpoint-every", "150", "--run-dir", str(run), "--quiet")
    assert out.returncode == 0, out.stderr
    (run / "checkpoints" / "step-300" / "buffer.npz").write_bytes(b"not a buffer")
    ev = cli("eval", str(run), "--episodes", "1")
    assert ev.returncode == 0, ev.stderr  # acting needs no buffer
    assert ev.stdout.startswith("sac Pendulum-v1 step 300:")
    named = cli("train", "--resume", str(run), "--checkpoint", "step-300", "--total-steps", "400", "--quiet")
    assert named.returncode == 2 and "buffer.npz" in named.stderr  # a checkpoint asked for by name is not replaced
    out = cli("train", "--resume", str(run), "--total-steps", "400", "--quiet")
    assert out.returncode == 0, out.stderr
    line = out.stderr.strip()
    assert line.startswith("step-300 is damaged (") and "buffer.npz" in line
    assert line.endswith("; resuming from step-150")
    assert _latest(run) == "step-400"


def test_env_kwargs_and_wrappers_reach_the_env_and_survive_resume(tmp_path):
    run = tmp_path / "run"
    out = cli("train", "ppo", "--env", "FrozenLake-v1", "--env-kwargs", "is_slippery=false", "map_name=8x8",
              "--wrapper", "RecordEpisodeStatistics", "--total-steps", "256", "--n-envs", "2", "--n-steps", "64",
              "--batch-size", "64", "--run-dir", str(run), "--quiet")
    assert out.returncode == 0, out.stderr
    env = json.loads((run / "config.json").read_text())["env"]
    assert env["kwargs"] == {"is_slippery": False, "map_name": "8x8"}
    assert env["wrappers"] == ["RecordEpisodeStatistics"]
    out = cli("train", "--resume", str(run), "--total-steps", "512", "--quiet")
    assert out.returncode == 0, out.stderr
    assert _latest(run) == "step-512"
    out = cli("eval", str(run), "--episodes", "2")
    assert out.returncode == 0, out.stderr


def test_a_bad_wrapper_or_env_kwarg_is_one_line(tmp_path):
    out = cli("train", "ppo", "--env", "CartPole-v1", "--wrapper", "NormalizeRewardz", "--run-dir",
              str(tmp_path / "r"))
    assert out.returncode == 2 and "NormalizeReward" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = cli("train", "ppo", "--env", "CartPole-v1", "--env-kwargs", "novalue", "--run-dir", str(tmp_path / "r"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "r").exists()
