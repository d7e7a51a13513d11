"""The on-policy algorithms' backends (algos/backends.py) against their autograd update.

Two sessions built from the same seed start from identical models, optimizers and minibatch
generators; each update both learn from the same fresh rollout (collected by the autograd session's
policy), so they differ only in how the gradient is computed. After 50 updates the parameters must
agree to float32 accuracy.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rlworks import algos
from rlworks.algos import a2c, onpolicy, ppo, reinforce
from rlworks.config import ConfigError
from rlworks.core import fastgrad

MODULES = {"ppo": ppo, "a2c": a2c, "reinforce": reinforce}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _session(algo: str, env_id: str, backend: str, **over) -> onpolicy.Session:
    mod = MODULES[algo]
    cfg = mod.CONFIG(backend=backend, **over)
    critic = getattr(cfg, "baseline", True)
    s = onpolicy.build_session(algo, env_id, cfg, seed=7, total_steps=10**6, device="cpu", critic=critic,
                               make_optimizer=mod.make_optimizer(cfg))
    loss_fn = {"ppo": ppo.minibatch_loss, "a2c": a2c.batch_loss, "reinforce": reinforce.batch_loss}[algo]
    onpolicy.set_backend(s, backend, fused=fastgrad.supported(s.model), loss_fn=loss_fn)
    return s


def _compare(algo: str, env_id: str, backend: str, updates: int = 50, rtol: float = 1e-5, atol: float = 1e-6,
             **over) -> dict[str, float]:
    ref, other = _session(algo, env_id, "autograd", **over), _session(algo, env_id, backend, **over)
    try:
        assert other.backend == backend
        for k, v in ref.model.state_dict().items():
            assert torch.equal(v, other.model.state_dict()[k]), k
        policy = onpolicy.NumpyPolicy(ref.model, ref.rng, getattr(ref.config, "sde_sample_freq", 0))
        for i in range(updates):
            policy.reset_noise(ref.sampler.venv.num_envs)
            rollout = ref.sampler.collect(policy, ref.config.n_steps)
            remaining = 1.0 - i / (2 * updates)  # annealed learning rate (and clip, ent_coef where configured)
            m_ref = MODULES[algo].update(ref, rollout, remaining)
            m_other = MODULES[algo].update(other, rollout, remaining)
        worst = {}
        for (name, p), q in zip(ref.model.named_parameters(), other.model.parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=rtol, atol=atol, msg=lambda m, name=name: f"{name}: {m}")
            worst[name] = float((q - p).detach().abs().max())
        for k, v in m_ref.items():  # the logged losses agree too
            assert m_other[k] == pytest.approx(v, rel=1e-3, abs=1e-5, nan_ok=True), k
        return worst
    finally:
        ref.sampler.venv.close()
        other.sampler.venv.close()


# small rollouts; a learning rate and clip range at which the ratio clip is active on a good share of samples
SMALL_PPO = {"n_envs": 2, "n_steps": 32, "batch_size": 16, "n_epochs": 4, "learning_rate": 1e-3, "clip_coef": 0.1}
FUSED_CASES = [
    ("ppo", "CartPole-v1", {**SMALL_PPO, "ent_coef": 0.01, "anneal_clip": True}),
    ("ppo", "CartPole-v1", {**SMALL_PPO, "activation": "relu", "clip_vloss": True, "norm_adv": False}),
    ("ppo", "Pendulum-v1", {**SMALL_PPO, "ent_coef": 0.01, "norm_obs": True, "norm_reward": True}),
    ("ppo", "Pendulum-v1", {**SMALL_PPO, "activation": "relu", "use_sde": True, "sde_sample_freq": 4, "ent_coef": 0.01,
                            "clip_vloss": True, "max_grad_norm": 0.0}),
    ("ppo", "Pendulum-v1", {**SMALL_PPO, "use_sde": True, "log_std_init": -1.0, "norm_obs": True}),
    ("a2c", "CartPole-v1", {"n_envs": 4, "ent_coef": 0.01, "anneal_ent": True}),
    ("a2c", "CartPole-v1", {"n_envs": 4, "activation": "relu", "norm_adv": True, "optimizer": "adam"}),
    ("a2c", "Pendulum-v1", {"n_envs": 4, "ent_coef": 0.01, "norm_obs": True}),
    ("a2c", "Pendulum-v1", {"n_envs": 4, "activation": "relu", "norm_adv": True}),
]


@pytest.mark.parametrize("algo,env_id,over", FUSED_CASES, ids=lambda x: x if isinstance(x, str) else "")
def test_fused_matches_autograd_over_50_updates(algo, env_id, over):
    _compare(algo, env_id, "fused", **over)


COMPILE_CASES = [
    ("ppo", "CartPole-v1", {"n_envs": 4, "n_steps": 32, "batch_size": 48, "n_epochs": 2, "ent_coef": 0.01,
                            "anneal_clip": True}),  # 128 = 2 × 48 + 32: a last, partial minibatch
    ("ppo", "Pendulum-v1", {**SMALL_PPO, "use_sde": True, "clip_vloss": True}),
    ("reinforce", "CartPole-v1", {"n_steps": 128, "ent_coef": 0.01}),
]


@pytest.mark.parametrize("algo,env_id,over", COMPILE_CASES, ids=lambda x: x if isinstance(x, str) else "")
def test_compile_matches_autograd_over_50_updates(algo, env_id, over):
    from torch._dynamo.utils import counters

    counters.clear()
    _compare(algo, env_id, "compile", **over)
    # static shapes: one graph for the full minibatches and, where the rollout does not divide, one for
    # the last partial one; an annealed clip is a tensor input, not a constant (no recompilation)
    cfg = MODULES[algo].CONFIG(**over)
    n = cfg.n_envs * cfg.n_steps
    bs = getattr(cfg, "batch_size", n)  # REINFORCE and A2C: one batch per rollout
    assert counters["stats"]["unique_graphs"] == (1 if n % bs == 0 else 2), dict(counters["stats"])


def test_compile_backend_trains_ppo_and_records_compile_time():
    agent = algos.train("ppo", "CartPole-v1", total_steps=2048, seed=0, backend="compile", n_envs=4, n_steps=64,
                        batch_size=64, n_epochs=2)
    assert agent.meta["backend"] == "compile"
    assert agent.meta["compile_seconds"] > 0
    assert agent.meta["global_step"] == 2048
    assert all(bool(torch.isfinite(p).all()) for p in agent.model.parameters())


def test_auto_picks_fused_and_falls_back_to_autograd_with_layer_norm():
    agent = algos.train("ppo", "CartPole-v1", total_steps=64, n_envs=1, n_steps=64, batch_size=32)
    assert agent.meta["backend"] == "fused" and "compile_seconds" not in agent.meta
    agent = algos.train("a2c", "CartPole-v1", total_steps=64, layer_norm=True)
    assert agent.meta["backend"] == "autograd"
    with pytest.raises(ConfigError, match="backend='fused' is not available for a2c"):
        algos.train("a2c", "CartPole-v1", total_steps=64, layer_norm=True, backend="fused")
    assert algos.train("reinforce", "CartPole-v1", total_steps=64).meta["backend"] == "autograd"
    with pytest.raises(ConfigError, match="backend='fused' is not available for reinforce"):
        algos.train("reinforce", "CartPole-v1", total_steps=64, backend="fused")


@pytest.mark.parametrize("cls", [ppo.PPOConfig, a2c.A2CConfig, reinforce.ReinforceConfig])
def test_bad_backend_is_one_config_error_naming_field_and_choices(cls):
    with pytest.raises(ConfigError) as info:
        cls(backend="jit")
    msg = str(info.value)
    assert "\n" not in msg and "backend='jit'" in msg
    for choice in ("auto", "autograd", "compile", "fused"):
        assert repr(choice) in msg
    assert dataclasses.asdict(cls())["backend"] == "auto"
