"""Determinism, exact resume, save/load, corrupt and half-written checkpoints, NaN guards, no pickle."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rlworks import algos
from rlworks.config import ConfigError
from rlworks.core.checkpoint import CheckpointError, load_checkpoint
from rlworks.core.guards import NonFiniteError

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny MLPs: one thread is fastest, and on a loaded 2-core machine more threads spin and stall
    torch.set_num_threads(1)


def _run(code: str, timeout: int = 180) -> str:
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=ENV,
                         timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    return lines[-1] if lines else ""


FINGERPRINT = """
import hashlib, json, torch
torch.set_num_threads(1)
from rlworks import algos
rets = []
class L:
    def log(self, step, m):  # training rows (the CartPole presets' evaluation rows carry eval/* only)
        if "charts/episodic_return" in m: rets.append(m["charts/episodic_return"])
a = algos.train({algo!r}, "CartPole-v1", total_steps={steps}, seed=11, logger=L(), log_every=1)
h = hashlib.sha256()
for k, v in sorted(a.model.state_dict().items()):
    h.update(v.numpy().tobytes())
print(json.dumps([h.hexdigest(), rets]))
"""


@pytest.mark.parametrize("algo,steps", [("ppo", 3072), ("a2c", 2000), ("reinforce", 4096)])
def test_same_seed_bit_identical_in_fresh_processes(algo, steps):
    code = FINGERPRINT.format(algo=algo, steps=steps)
    a, b = _run(code), _run(code)
    assert a == b
    assert json.loads(a)[1], "no returns were logged"


RESUME = """
import sys, torch
torch.set_num_threads(1)
from rlworks.commands import deep
sys.exit(deep.{fn}({args}))
"""


def _tensors(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(ckpt)[0]


@pytest.mark.parametrize("algo,n", [("ppo", 2048), ("a2c", 1200)])
def test_train_2n_equals_train_n_checkpoint_resume_n(tmp_path, algo, n):
    run = tmp_path / "full"
    extra = ["--n-steps", "64"] if algo == "ppo" else []
    args = ["--total-steps", str(2 * n), "--checkpoint-every", str(n), "--run-dir", str(run), "--quiet",
            "--norm-obs", "--norm-reward", "--seed", "5", *extra]
    _run(RESUME.format(fn="train", args=f"{algo!r}, 'CartPole-v1', {args!r}"))
    half = tmp_path / "half"
    shutil.copytree(run, half)
    for p in (half / "checkpoints").glob("step-*"):
        if p.name != f"step-{n}":
            shutil.rmtree(p)
    (half / "checkpoints" / "latest").write_text(f"step-{n}\n")
    _run(RESUME.format(fn="resume", args=f"{str(half)!r}, []"))
    full_t = _tensors(run / "checkpoints" / f"step-{2 * n}")
    half_t = _tensors(half / "checkpoints" / f"step-{2 * n}")
    assert full_t.keys() == half_t.keys()
    for k in full_t:
        assert torch.equal(full_t[k], half_t[k]), k
    sf = json.loads((run / "checkpoints" / f"step-{2 * n}" / "state.json").read_text())
    sh = json.loads((half / "checkpoints" / f"step-{2 * n}" / "state.json").read_text())
    assert sf["sampler"] == sh["sampler"]  # env states, normalisation statistics, step counters
    assert sf["train"]["recent"] == sh["train"]["recent"]


def test_save_load_round_trip_same_actions(tmp_path):
    torch.set_num_threads(1)
    agent = algos.train("ppo", "Pendulum-v1", total_steps=1024, seed=0, n_steps=128, norm_obs=True)
    agent.save(tmp_path / "agent")
    loaded = algos.load(tmp_path / "agent")
    obs = np.random.default_rng(0).uniform(-1, 1, size=(50, 3))
    np.testing.assert_array_equal(agent.act(obs), loaded.act(obs))
    assert all(np.array_equal(agent.act(o), loaded.act(o)) for o in obs[:10])
    assert loaded.obs_norm_state == agent.obs_norm_state
    assert loaded.evaluate(2, seed=1) == agent.evaluate(2, seed=1)


def test_corrupt_latest_names_file_previous_loadable(tmp_path):
    torch.set_num_threads(1)
    algos.train("ppo", "CartPole-v1", total_steps=2048, seed=0, n_steps=128, checkpoint_dir=tmp_path,
                checkpoint_every=1024)
    latest = tmp_path / (tmp_path / "latest").read_text().strip()
    data = bytearray((latest / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01
    (latest / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"step-2048/model\.safetensors"):
        algos.load(tmp_path)
    assert algos.load(tmp_path / "step-1024").act(np.zeros(4)) in (0, 1)


WRITER = """
import sys, torch
from rlworks.core.checkpoint import save_checkpoint
big = {"w%d" % i: torch.randn(1_000_000) for i in range(6)}
step = 0
print("ready", flush=True)
while True:
    step += 1
    save_checkpoint(sys.argv[1], step, big, {"step": step}, keep=3)
"""


def test_sigkill_mid_save_never_leaves_latest_broken(tmp_path):
    for delay in (0.9, 1.3, 1.7):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=ENV)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (tmp_path / "latest").exists():
            _, state, _, path = load_checkpoint(tmp_path)  # must verify cleanly
            assert path.name == f"step-{state['step']}"
    assert (tmp_path / "latest").exists(), "the writer never completed a checkpoint"


PAUSING_WRITER = """
import os, sys, time, torch
import rlworks.core.checkpoint as ck
phase = sys.argv[2]
real_replace, real_save = os.replace, ck.save_file
calls = {"n": 0}

def pause(tag):
    print(tag, flush=True)
    time.sleep(60)

def replace(src, dst):
    calls["n"] += 1
    if phase == "move" and calls["n"] == 3:  # 2nd save: moving the complete temp dir into place
        pause("paused")
    if phase == "latest" and calls["n"] == 4:  # 2nd save: replacing the latest file
        pause("paused")
    return real_replace(src, dst)

def save_file(tensors, path):
    real_save(tensors, path)
    if phase == "write" and calls["n"] >= 2:  # 2nd save: model written, half of it torn off
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
        pause("paused")

ck.os.replace, ck.save_file = replace, save_file
for step in (1, 2):
    ck.save_checkpoint(sys.argv[1], step, {"w": torch.full((1000,), float(step))}, {"step": step})
"""


@pytest.mark.parametrize("phase", ["write", "move", "latest"])
def test_sigkill_at_each_phase_of_a_save_keeps_latest_loadable(tmp_path, phase):
    proc = subprocess.Popen([sys.executable, "-c", PAUSING_WRITER, str(tmp_path), phase], stdout=subprocess.PIPE,
                            env=ENV)
    assert proc.stdout.readline().strip() == b"paused"  # the writer is inside its second save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    tensors, state, _, path = load_checkpoint(tmp_path)
    assert state["step"] == 1 and path.name == "step-1" and float(tensors["w"][0]) == 1.0
    if phase == "latest":  # step-2 was complete before the kill: loadable by name, not yet "latest"
        assert load_checkpoint(tmp_path / "step-2")[1]["step"] == 2


# rlworks-test/NaNObs-v0 and NaNReward-v0 are registered in conftest.py


@pytest.mark.parametrize("env_id,origin", [("rlworks-test/NaNObs-v0", "observation"),
                                           ("rlworks-test/NaNReward-v0", "reward")])
def test_nan_injection_stops_training_naming_origin(tmp_path, env_id, origin):
    with pytest.raises(NonFiniteError, match=f"non-finite {origin}") as info:
        algos.train("ppo", env_id, total_steps=4096, seed=0, n_envs=2, n_steps=64, checkpoint_dir=tmp_path,
                    checkpoint_every=128)
    assert info.value.origin == origin
    for ck in tmp_path.glob("step-*"):
        for t in load_checkpoint(ck)[0].values():
            assert not t.is_floating_point() or bool(torch.isfinite(t).all())


def test_nan_parameter_is_never_checkpointed(tmp_path):
    def poison(session):
        if session.iteration == 2:
            with torch.no_grad():
                next(session.model.parameters()).fill_(float("nan"))
        return False

    with pytest.raises(NonFiniteError):
        algos.train("ppo", "CartPole-v1", total_steps=4096, seed=0, n_envs=2, n_steps=64, batch_size=64,
                    checkpoint_dir=tmp_path,
                    checkpoint_every=128, callback=poison)
    steps = sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("step-*"))
    assert steps and max(steps) <= 256
    for ck in tmp_path.glob("step-*"):
        assert all(bool(torch.isfinite(t).all()) for t in load_checkpoint(ck)[0].values() if t.is_floating_point())


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("target", ["model.safetensors", "state.json", "buffer.npz"])
def test_pickle_payload_is_refused_and_never_runs(tmp_path, target, resign):
    torch.set_num_threads(1)
    agent = algos.train("ppo", "CartPole-v1", total_steps=512, seed=0, n_steps=64)
    ck = agent.save(tmp_path / "agent")
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Evil(str(marker)))
    if target == "buffer.npz":  # a pickled object array disguised as a buffer
        with open(ck / target, "wb") as fh:
            np.save(fh, np.array([_Evil(str(marker))], dtype=object), allow_pickle=True)
    else:
        (ck / target).write_bytes(payload)
    # the attacker also rewrites the manifest so the hashes match
    resign(ck, target)
    if target == "buffer.npz":  # acting never reads the buffer; loading it to train refuses the pickle
        algos.load(tmp_path / "agent")
        with pytest.raises(CheckpointError, match=r"buffer\.npz"):
            load_checkpoint(tmp_path / "agent", with_buffer=True)
    else:
        with pytest.raises((CheckpointError, ConfigError), match=target.replace(".", r"\.")):
            algos.load(tmp_path / "agent")
    assert not marker.exists()


@pytest.mark.parametrize("vec_env", ["sync", "async"])
def test_gymnasium_vector_envs_train_and_are_deterministic(vec_env):
    kw = {"total_steps": 512, "seed": 2, "n_envs": 2, "n_steps": 64, "batch_size": 64, "vec_env": vec_env}
    a, b = algos.train("ppo", "CartPole-v1", **kw), algos.train("ppo", "CartPole-v1", **kw)
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), k


def test_resume_with_opaque_env_state_reseeds_deterministically(tmp_path):
    """Box2D state is not plain data: resume starts fresh episodes, deterministically."""
    algos.train("a2c", "LunarLander-v3", checkpoint_dir=tmp_path / "a", n_steps=128, n_envs=2, total_steps=1024,
                seed=0, checkpoint_every=512)
    state = json.loads((tmp_path / "a" / "step-512" / "state.json").read_text())
    assert state["sampler"]["venv"]["exact"] is False
    outs = []
    for name in ("b", "c"):
        shutil.copytree(tmp_path / "a", tmp_path / name)
        agent = algos.train("a2c", "LunarLander-v3", checkpoint_dir=tmp_path / name, n_steps=128, n_envs=2,
                            total_steps=1024, seed=0, checkpoint_every=512,
                            resume_from=tmp_path / name / "step-512")
        outs.append(agent.model.state_dict())
    for k in outs[0]:
        assert torch.equal(outs[0][k], outs[1][k]), k


def test_ppo_gsde_resume_equals_uninterrupted_run(tmp_path):
    """gSDE's θ_ε is drawn from the checkpointed generator at each rollout start: resume is exact."""
    kw = {"total_steps": 1024, "seed": 3, "n_envs": 2, "n_steps": 64, "batch_size": 64, "use_sde": True,
          "sde_sample_freq": 3, "norm_obs": True, "norm_reward": True, "checkpoint_every": 512}
    full = algos.train("ppo", "Pendulum-v1", checkpoint_dir=tmp_path / "full", **kw)
    shutil.copytree(tmp_path / "full", tmp_path / "half")
    half = algos.train("ppo", "Pendulum-v1", checkpoint_dir=tmp_path / "half",
                       resume_from=tmp_path / "half" / "step-512", **kw)
    again = algos.train("ppo", "Pendulum-v1", **{k: v for k, v in kw.items() if k != "checkpoint_every"})
    assert full.model.log_std.shape == (64, 1)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, half.model.state_dict()[k]), k
        assert torch.equal(v, again.model.state_dict()[k]), k
    a = algos.load(tmp_path / "full")
    obs = np.array([0.3, -0.9, 1.2], dtype=np.float32)
    assert np.array_equal(a.act(obs), full.act(obs))  # deterministic action = the mean
    assert a.act(obs, deterministic=False).shape == (1,)
