"""`--device cuda`: every deep algorithm trains, checkpoints, resumes and loads on a CUDA device.

Skipped where torch sees no CUDA device (CI has none); run on a GPU machine with
``pytest tests/device``. CUDA matrix products are not bit-identical to CPU ones, so parity with
CPU is checked to a tolerance, and "resume" means "continues from the saved state", not bit-exact.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from rlworks import algos

# RLWORKS_TEST_DEVICE=cpu runs the same checks on CPU (to test the tests on a machine without a GPU)
DEVICE = os.environ.get("RLWORKS_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="needs a CUDA device")

# (algo, env, total_steps, overrides) — small budgets: this checks the device path, not learning
CASES = [
    ("ppo", "CartPole-v1", 2048, dict(n_envs=4, n_steps=128, batch_size=128, n_epochs=2)),
    ("ppo", "Pendulum-v1", 2048, dict(n_envs=2, n_steps=256, use_sde=True, sde_sample_freq=4, norm_obs=True,
                                      norm_reward=True)),
    ("a2c", "CartPole-v1", 2048, dict(n_envs=4, n_steps=8)),
    ("reinforce", "CartPole-v1", 2048, dict()),
    ("dqn", "CartPole-v1", 2000, dict(learning_starts=500, train_freq=4, double_q=True, dueling=True, n_step=3,
                                      prioritized=True)),
    ("sac", "Pendulum-v1", 800, dict(learning_starts=200)),
    ("td3", "Pendulum-v1", 800, dict(learning_starts=200)),
]


def _params(agent) -> dict[str, torch.Tensor]:
    model = agent.model
    return dict(model.state_dict())


def _obs(env_id: str, n: int = 32) -> np.ndarray:
    import gymnasium as gym

    env = gym.make(env_id)
    obs = np.stack([env.observation_space.sample() for _ in range(n)]).astype(np.float32)
    env.close()
    return obs


@pytest.mark.parametrize("algo,env_id,steps,kw", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_trains_on_cuda_and_loads_on_cpu_with_the_same_actions(tmp_path, algo, env_id, steps, kw):
    agent = algos.train(algo, env_id, total_steps=steps, seed=0, device=DEVICE, **kw)
    params = _params(agent)
    assert params and all(v.device.type == torch.device(DEVICE).type for v in params.values() if v.is_floating_point())
    assert all(torch.isfinite(v).all() for v in params.values() if v.is_floating_point())
    obs = _obs(env_id)
    cuda_actions = np.asarray(agent.act(obs))
    agent.save(tmp_path / "agent")
    cpu_agent = algos.load(tmp_path / "agent")  # device="cpu": a CUDA-trained agent loads on a CPU machine
    assert all(v.device.type == "cpu" for v in _params(cpu_agent).values())
    cpu_actions = np.asarray(cpu_agent.act(obs))
    if cuda_actions.dtype.kind in "iu":
        assert (cuda_actions == cpu_actions).mean() >= 0.9  # argmax ties/near-ties may flip across devices
    else:
        np.testing.assert_allclose(cuda_actions, cpu_actions, atol=1e-4)
    ev = agent.evaluate(2, seed=1)
    assert np.isfinite(ev.mean_return)


@pytest.mark.parametrize("algo,env_id,steps,kw", [CASES[0], CASES[4], CASES[5]], ids=["ppo", "dqn", "sac"])
def test_checkpoint_resume_on_cuda(tmp_path, algo, env_id, steps, kw):
    full = algos.train(algo, env_id, total_steps=steps, seed=1, device=DEVICE, checkpoint_dir=tmp_path / "run",
                       checkpoint_every=steps // 2, **kw)
    first = sorted(p.name for p in (tmp_path / "run").iterdir() if p.name.startswith("step-"))
    assert len(first) >= 2, first
    shutil.rmtree(tmp_path / "run" / first[-1])
    (tmp_path / "run" / "latest").write_text(first[0])
    resumed = algos.train(algo, env_id, total_steps=steps, seed=1, device=DEVICE, checkpoint_dir=tmp_path / "run",
                          checkpoint_every=steps // 2, resume_from=tmp_path / "run" / first[0], **kw)
    after = _params(resumed)
    assert after.keys() == _params(full).keys()
    for v in after.values():
        if v.is_floating_point():
            assert v.device.type == torch.device(DEVICE).type
            assert torch.isfinite(v).all()
    # a checkpoint written on CUDA loads as a CPU agent
    assert np.isfinite(algos.load(tmp_path / "run").evaluate(1, seed=0).mean_return)


def test_ppo_learns_cartpole_on_cuda():
    agent = algos.train("ppo", "CartPole-v1", total_steps=30_000, seed=0, device=DEVICE)
    assert agent.evaluate(10, seed=0).mean_return >= 195


def test_cli_train_and_eval_on_cuda(tmp_path):
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "rlworks", "train", "ppo", "--env", "CartPole-v1", "--device", DEVICE,
                          "--total-steps", "4096", "--run-dir", str(run)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((run / "config.json").read_text())["device"] == DEVICE
    ev = subprocess.run([sys.executable, "-m", "rlworks", "eval", str(run), "--episodes", "3"], capture_output=True,
                        text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "±" in ev.stdout or "+/-" in ev.stdout, ev.stdout


@pytest.mark.parametrize("algo,env_id,steps,kw", [
    ("ppo", "CartPole-v1", 2048, dict(n_envs=4, n_steps=128, batch_size=128, n_epochs=2)),
    ("sac", "Pendulum-v1", 600, dict(learning_starts=200)),
])
@pytest.mark.parametrize("backend", ["autograd", "compile"])
def test_autograd_and_compile_backends_train_on_the_device(algo, env_id, steps, kw, backend):
    agent = algos.train(algo, env_id, total_steps=steps, seed=0, device=DEVICE, backend=backend, **kw)
    assert agent.meta["backend"] == backend
    if backend == "compile":
        assert agent.meta["compile_seconds"] > 0
    assert np.isfinite(agent.evaluate(2, seed=0).mean_return)
