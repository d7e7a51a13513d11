"""Runs that survive: a signal mid-run checkpoints and resumes exactly, ``keep_checkpoints``, the fallback to
the newest intact checkpoint, acting without the replay buffer, ``rlworks.train(..., run_dir=...)`` and the
run folder's logs (each algorithm's own CSV columns, episode lengths, every episode for the curve)."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import rlworks
from rlworks.algos import dqn, ppo
from rlworks.config import ConfigError
from rlworks.core.checkpoint import (
    CheckpointError,
    intact_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from rlworks.core.logging import RunLogger
from rlworks.core.run import Pace, RunContext, StopSignals, TrainingInterrupted

DQN = dqn.DQNConfig(learning_starts=200, train_freq=4, gradient_steps=1, batch_size=32, hidden=(32, 32),
                    buffer_size=2000, target_update_interval=100)


def _signal_at(step: int, sig: int = signal.SIGINT):
    """A callback that sends ``sig`` to this process once training reaches ``step``."""
    sent = []

    def callback(session) -> bool:
        if session.global_step >= step and not sent:
            sent.append(True)
            os.kill(os.getpid(), sig)
        return False

    return callback


def _tensors(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(ckpt)[0]


# ---------------------------------------------------------------------------------------------
# signals
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_the_step_and_resume_equals_an_uninterrupted_run(tmp_path, sig):
    torch.set_num_threads(1)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(TrainingInterrupted) as info:
        dqn.train("CartPole-v1", DQN, total_steps=800, seed=1,
                  run=RunContext(checkpoint_dir=tmp_path / "a", callback=_signal_at(400, sig)))
    # the signal came during the callback of step 400; the loop noticed it after its next step
    assert info.value.signum == sig and info.value.step == 401
    assert info.value.checkpoint == tmp_path / "a" / "step-401"
    assert (tmp_path / "a" / "latest").read_text().strip() == "step-401"
    assert {s: signal.getsignal(s) for s in before} == before  # the caller's handlers are back
    dqn.train("CartPole-v1", DQN, total_steps=800, seed=1, run=RunContext(checkpoint_dir=tmp_path / "a",
                                                                           resume_from=tmp_path / "a"))
    dqn.train("CartPole-v1", DQN, total_steps=800, seed=1, run=RunContext(checkpoint_dir=tmp_path / "b"))
    resumed, straight = _tensors(tmp_path / "a" / "step-800"), _tensors(tmp_path / "b" / "step-800")
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in resumed)


def test_on_policy_loop_stops_after_its_iteration(tmp_path):
    torch.set_num_threads(1)
    cfg = ppo.PPOConfig(n_envs=2, n_steps=64, hidden=(16, 16))
    with pytest.raises(TrainingInterrupted) as info:
        ppo.train("CartPole-v1", cfg, total_steps=4096, seed=0,
                  run=RunContext(checkpoint_dir=tmp_path, callback=_signal_at(256)))
    assert info.value.step == 384 and (tmp_path / "step-384" / "MANIFEST.json").is_file()


def test_stop_signals_change_nothing_outside_the_main_thread():
    seen = []

    def worker():
        with StopSignals() as stop:
            seen.append(stop._previous)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [{}]


# ---------------------------------------------------------------------------------------------
# checkpoints: keep, intact fallback, acting without the buffer
# ---------------------------------------------------------------------------------------------


def _save(root: Path, step: int, **kw) -> Path:
    return save_checkpoint(root, step, {"w": torch.full((2,), float(step))}, {"step": step},
                           {"x": np.arange(3)}, **kw)


def test_pace_counts_a_window_between_logged_lines_and_the_whole_run():
    from collections import deque

    recent = deque([10.0], maxlen=3)
    pace = Pace(100, recent)
    pace.add(0.5, steps=4, updates=2)
    pace.episodes([(20.0, 7), (30.0, 9), (40.0, 11)])
    assert not pace.due(104, every=10, end=1000) and pace.due(110, every=10, end=1000) and pace.due(104, 10, 104)
    pace.add(1.5, steps=4)
    out = pace.window(108)
    assert out == {"charts/episodic_return": 30.0, "charts/episodic_length": 9.0, "perf/sps": 4.0, "perf/ups": 1.0}
    assert list(recent) == [20.0, 30.0, 40.0]  # the session's own deque, kept to its maxlen
    pace.add(0.25, updates=1)
    assert pace.window(109, sps=False) == {"charts/episodic_return": 30.0, "charts/episodic_length": 9.0,
                                           "perf/ups": 4.0}  # a new window from step 108
    assert pace.train_seconds == 2.25 and pace.last_logged == 109 and not pace.due(110, 10, 1000)
    empty = Pace(0, deque(maxlen=20)).window(1, ups=False)
    assert np.isnan(empty["charts/episodic_return"]) and np.isnan(empty["charts/episodic_length"])
    assert Pace(0).window(5, sps=False) == {"perf/ups": 0.0}  # offline: no episodes, no env steps


def test_keep_counts_the_checkpoint_just_written_as_newest(tmp_path):
    for step in (1, 2, 3, 4):
        _save(tmp_path, step)
    _save(tmp_path, 2, keep=2)  # a run resumed from step-1 reaches step 2 again: 3 and 4 are another past
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-1", "step-2"]
    assert (tmp_path / "latest").read_text().strip() == "step-2"


def test_keep_checkpoints_in_the_loop(tmp_path):
    torch.set_num_threads(1)
    dqn.train("CartPole-v1", DQN, total_steps=500, seed=0,
              run=RunContext(checkpoint_dir=tmp_path, checkpoint_every=100, keep_checkpoints=2))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-400", "step-500"]


def test_intact_checkpoint_falls_back_and_says_why(tmp_path):
    for step in (1, 2, 3):
        _save(tmp_path, step)
    (tmp_path / "step-3" / "buffer.npz").write_bytes(b"junk")
    (tmp_path / "step-2" / "MANIFEST.json").unlink()
    ckpt, damaged = intact_checkpoint(tmp_path)
    assert ckpt.name == "step-1"
    assert [p.name for p, _ in damaged] == ["step-3", "step-2"]
    assert "buffer.npz" in damaged[0][1] and "MANIFEST.json" in damaged[1][1]
    (tmp_path / "step-1" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="step-3"):
        intact_checkpoint(tmp_path)


def test_acting_needs_no_buffer(tmp_path):
    ck = _save(tmp_path, 1)
    (ck / "buffer.npz").write_bytes(b"damaged")
    tensors, state, buffer, _ = load_checkpoint(tmp_path)
    assert buffer is None and state["step"] == 1
    with pytest.raises(CheckpointError, match="buffer.npz"):
        load_checkpoint(tmp_path, with_buffer=True)
    (ck / "model.safetensors").write_bytes(b"damaged")
    with pytest.raises(CheckpointError, match="model.safetensors"):  # what acting needs is still verified
        load_checkpoint(tmp_path)


# ---------------------------------------------------------------------------------------------
# rlworks.train(..., run_dir=...) and the logs
# ---------------------------------------------------------------------------------------------


def _header(run: Path) -> list[str]:
    with open(run / "metrics.csv", newline="") as fh:
        return next(csv.reader(fh))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_dir_writes_the_cli_run_folder_with_each_algorithms_own_columns(tmp_path):
    ppo_run, dqn_run = tmp_path / "ppo", tmp_path / "dqn"
    rlworks.train("ppo", "CartPole-v1", total_steps=4096, seed=0, run_dir=ppo_run, n_steps=128, log_every=256,
                  eval_every=0)  # without the preset's evaluations: no eval columns
    rlworks.train("dqn", "CartPole-v1", total_steps=3000, seed=0, run_dir=dqn_run, learning_starts=1000,
                  log_every=250, eval_every=1500, eval_episodes=2)
    for run in (ppo_run, dqn_run):
        meta = json.loads((run / "config.json").read_text())
        assert meta["kind"] == "deep" and meta["env_id"] == "CartPole-v1" and meta["checkpoint_every"] > 0
        assert (run / "learning_curve.png").stat().st_size > 0
        assert list((run / "tb").glob("events.out.tfevents.*"))
        assert (run / "checkpoints" / "latest").is_file()
        lengths = [float(r["charts/episodic_length"]) for r in _rows(run / "metrics.csv")
                   if r["charts/episodic_length"] not in ("", "nan")]
        assert lengths and all(8 <= n <= 500 for n in lengths)
        episodes = _rows(run / "episodes.csv")
        assert len(episodes) > 10  # the curve's raw points: every episode, not one per log line
        assert len(episodes) > len(_rows(run / "metrics.csv"))
        ends = [int(r["step"]) for r in episodes]
        assert ends == sorted(ends)
    # each episode at the step it ended, not at the end of its 8 x 128-step rollout; and the run goes on to its end
    assert any(int(r["step"]) % 1024 for r in _rows(ppo_run / "episodes.csv"))
    assert _rows(ppo_run / "metrics.csv")[-1]["step"] == "4096" and (ppo_run / "checkpoints" / "step-4096").is_dir()
    ppo_cols, dqn_cols = _header(ppo_run), _header(dqn_run)
    assert "losses/clipfrac" in ppo_cols and not {"losses/q_loss", "charts/epsilon", "eval/mean_return"} & set(ppo_cols)
    # DQN's losses first appear once learning starts: the file widened, earlier rows kept
    assert {"losses/q_loss", "eval/mean_return"} <= set(dqn_cols) and "losses/policy_loss" not in dqn_cols
    rows = _rows(dqn_run / "metrics.csv")
    assert rows[0]["step"] == "250" and rows[0]["losses/q_loss"] == ""
    assert any(r["losses/q_loss"] for r in rows) and [r["step"] for r in rows if r["eval/mean_return"]] == ["1500",
                                                                                                           "3000"]
    assert (dqn_run / "best" / "latest").is_file()
    agent = rlworks.load(dqn_run)
    assert agent.meta["global_step"] == 3000


def test_run_dir_resumes_and_refuses_a_used_folder(tmp_path):
    run = tmp_path / "run"
    rlworks.train("a2c", "CartPole-v1", total_steps=1000, seed=0, run_dir=run, checkpoint_every=500)
    with pytest.raises(ConfigError, match="already holds a run"):
        rlworks.train("a2c", "CartPole-v1", total_steps=1000, seed=0, run_dir=run)
    agent = rlworks.train("a2c", "CartPole-v1", total_steps=2000, seed=0, run_dir=run, resume_from=run)
    assert agent.meta["global_step"] == 2000
    steps = [int(r["step"]) for r in _rows(run / "metrics.csv")]
    assert steps == sorted(steps) and steps[-1] == 2000


@pytest.mark.parametrize("existed", [False, True])
def test_a_run_that_cannot_start_leaves_no_folder(tmp_path, existed):
    run = tmp_path / "runs" / "bad"
    if existed:
        run.mkdir(parents=True)
        (run / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="Discrete"):
        rlworks.train("dqn", "Pendulum-v1", total_steps=1000, run_dir=run)
    if existed:
        assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    else:
        assert not (tmp_path / "runs").exists()


def test_run_logger_resume_keeps_its_header_and_cuts_later_rows(tmp_path):
    lg = RunLogger(tmp_path, tensorboard=False)
    for step in (10, 20, 30):
        lg.log_episodes(step, [(float(step), 5)])
        lg.log(step, {"losses/a": 1.0})
    lg.close()
    lg = RunLogger(tmp_path, tensorboard=False, resume_step=20, columns=("eval/mean_return",))
    lg.log(25, {"losses/a": 2.0})
    lg.close()
    assert _header(tmp_path) == ["step", "time", "losses/a", "eval/mean_return"]
    assert [r["step"] for r in _rows(tmp_path / "metrics.csv")] == ["10", "20", "25"]
    assert [r["step"] for r in _rows(tmp_path / "episodes.csv")] == ["10", "20"]
