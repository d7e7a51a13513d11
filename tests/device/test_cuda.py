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


def test_rlhf_samples_and_a_ppo_iteration_run_on_the_device():
    """The RLHF sampler and PPO's rollout and update with every model on the device: the uniforms come from a CPU
    generator (``lm.uniforms``), so the device samples what the CPU samples from the same weights (up to the last
    bits of the logits), and the update leaves finite weights there."""
    import copy

    from transformers import GPT2ForSequenceClassification

    from rlworks.core.optim import Adam
    from rlworks.rlhf import lm, ppo
    from rlworks.rlhf.task import ReviewTask

    rng = np.random.default_rng(0)
    task = ReviewTask()
    tok = lm.train_tokenizer(task.corpus(300, rng), vocab_size=300)
    prompts = task.prompts(16, rng)
    torch.manual_seed(0)
    policy = lm.new_model(tok, n_layer=2, n_head=2, n_embd=32).eval()
    config = copy.deepcopy(policy.config)
    config.num_labels = 1
    scorer, value = GPT2ForSequenceClassification(config).eval(), GPT2ForSequenceClassification(config).eval()
    q, qm = lm.encode_prompts(tok, prompts)

    def draw(model):
        gen = torch.Generator().manual_seed(3)
        return lm.sample(model, q, qm, 12, tok.eos_token_id, tok.pad_token_id, generator=gen)

    on_cpu = draw(policy)
    policy, ref, scorer, value = (m.to(DEVICE) for m in (policy, copy.deepcopy(policy), scorer, value))
    there = draw(policy)
    assert there.response.device.type == torch.device(DEVICE).type
    width = min(on_cpu.response.shape[1], there.response.shape[1])
    same = (on_cpu.response[:, :width] == there.response[:, :width].cpu()).float().mean()
    assert same >= 0.95, same
    cfg = ppo.PPOConfig(rollouts=16, minibatch_size=8, epochs=1, max_new_tokens=12)
    gen = torch.Generator().manual_seed(0)
    batch = ppo.rollout(policy, ref, scorer, value, tok, prompts, cfg, cfg.beta, (0.0, 1.0), gen)
    stats = ppo.update(policy, value, Adam(list(policy.parameters()) + list(value.parameters()), lr=1e-4), batch,
                       cfg, gen)
    assert all(np.isfinite(v) for v in stats.values())
    assert all(p.device.type == torch.device(DEVICE).type and torch.isfinite(p).all() for p in policy.parameters())


@pytest.mark.parametrize("kind", ["puct", "gumbel"])
def test_muzero_search_runs_on_the_device_as_on_the_cpu(kind):
    """The batched tree held on the device (the tensor walk, one network call per simulation for all roots) gives
    the CPU's visit counts for the same network and noise, up to near-ties that the last bits of a GPU's products
    can flip."""
    from rlworks.algos.muzero import MuZeroConfig, MuZeroNet, search
    from rlworks.search import Tree

    torch.manual_seed(0)
    net = MuZeroNet(4, 2, 32, (32,), 10).eval()
    cfg = MuZeroConfig(num_simulations=16, walk="tensor", search=kind)
    obs = torch.as_tensor(np.random.default_rng(0).uniform(-0.05, 0.05, size=(64, 4)), dtype=torch.float32)
    counts = {}
    for device in ("cpu", DEVICE):
        tree = Tree(64, 2, 17, (32,), device=device)
        with torch.inference_mode():
            out = search(net.to(device), obs.to(device), cfg, discount=0.997, rng=np.random.default_rng(1), tree=tree)
        assert out.visit_counts.device.type == torch.device(device).type
        counts[device] = out.visit_counts.cpu()
    assert (counts["cpu"] == counts[DEVICE]).all(-1).float().mean() >= 0.9
    assert (counts[DEVICE].sum(-1) == 16).all()
