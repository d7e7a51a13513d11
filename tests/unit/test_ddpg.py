"""DDPG is TD3 with its three tricks off (algos/ddpg.py): one critic, the actor and targets updated every
step, no target-policy smoothing; its update is Lillicrap et al.'s Algorithm 1, written out here by hand."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch

import rlworks
from rlworks.algos import ddpg, td3
from rlworks.config import ConfigError

OBS, ACT, B = 3, 2, 16


def test_config_is_td3_with_the_tricks_off():
    cfg = ddpg.DDPGConfig()
    assert (cfg.n_critics, cfg.policy_delay, cfg.target_policy_noise) == (1, 1, 0.0)
    assert td3.TD3Config().n_critics == 2
    st = ddpg.build_state({"obs_dim": OBS, "act_dim": ACT}, cfg, torch.device("cpu"))
    assert st.critic.n == st.critic_target.n == 1 and st.noise is None
    # DDPG's own update is TD3's with the three tricks off, step for step
    a = ddpg.build_state({"obs_dim": OBS, "act_dim": ACT}, cfg, torch.device("cpu"))
    b = ddpg.build_state({"obs_dim": OBS, "act_dim": ACT}, cfg, torch.device("cpu"))
    for name in ("actor", "critic", "actor_target", "critic_target"):
        getattr(b, name).load_state_dict(getattr(a, name).state_dict())
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        batch = {"obs": torch.randn(8, OBS, generator=g), "next_obs": torch.randn(8, OBS, generator=g),
                 "actions": torch.rand(8, ACT, generator=g) * 2 - 1, "returns": torch.randn(8, generator=g),
                 "discounts": torch.full((8,), 0.99)}
        ddpg.update(a, cfg, batch, None), td3.update(b, cfg, batch, torch.Generator().manual_seed(1))
    for x, y in zip([*a.actor.parameters(), *a.critic.parameters()], [*b.actor.parameters(), *b.critic.parameters()]):
        torch.testing.assert_close(x, y)
    assert a.n_updates == b.n_updates == 3
    ou = ddpg.build_state({"obs_dim": OBS, "act_dim": ACT}, ddpg.DDPGConfig(action_noise="ou", n_envs=2),
                          torch.device("cpu"))
    assert ou.noise.x.shape == (2, ACT) and ou.noise.theta == 0.15 and ou.noise.dt == 1e-2


def _algorithm_1(st, cfg, b) -> None:
    """Lillicrap et al. 2015, Algorithm 1, one minibatch: y = r + γ Q'(s', μ'(s')); critic on (y − Q)²;
    actor along ∇_a Q ∇_θ μ; θ' ← τθ + (1 − τ)θ'."""
    with torch.no_grad():
        y = b["returns"] + b["discounts"] * st.critic_target(b["next_obs"], st.actor_target(b["next_obs"]))[0]
    loss = (y - st.critic(b["obs"], b["actions"])[0]).pow(2).mean()
    st.critic_opt.zero_grad()
    loss.backward()
    st.critic_opt.step()
    pi_loss = -st.critic(b["obs"], st.actor(b["obs"]))[0].mean()
    st.actor_opt.zero_grad()
    pi_loss.backward()
    st.actor_opt.step()
    with torch.no_grad():
        for net in ("actor", "critic"):
            for t, p in zip(getattr(st, f"{net}_target").parameters(), getattr(st, net).parameters()):
                t.mul_(1 - cfg.tau).add_(cfg.tau * p)


def test_update_is_algorithm_1():
    torch.manual_seed(0)
    cfg = ddpg.DDPGConfig(hidden=(16, 16), tau=0.05)
    a = ddpg.build_state({"obs_dim": OBS, "act_dim": ACT}, cfg, torch.device("cpu"))
    b = copy.deepcopy(a)
    g = torch.Generator().manual_seed(1)
    for _ in range(10):
        batch = {"obs": torch.randn(B, OBS, generator=g), "next_obs": torch.randn(B, OBS, generator=g),
                 "actions": torch.rand(B, ACT, generator=g) * 2 - 1, "returns": torch.randn(B, generator=g),
                 "discounts": 0.99 * (torch.rand(B, generator=g) > 0.1).float()}
        ddpg.update(a, cfg, batch, torch.Generator().manual_seed(2))
        _algorithm_1(b, cfg, batch)
    assert a.n_updates == 10
    for net in ("actor", "critic", "actor_target", "critic_target"):
        for (k, p), q in zip(getattr(a, net).state_dict().items(), getattr(b, net).state_dict().values()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=f"{net}.{k}")


@pytest.mark.parametrize("field,value,needle", [("action_noise", "pink", "action_noise='pink'"),
                                                ("ou_theta", 0.0, "ou_theta=0.0"),
                                                ("exploration_noise", -0.1, "exploration_noise=-0.1")])
def test_bad_noise_settings_are_config_errors(field, value, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        ddpg.DDPGConfig(**{field: value})


def test_ou_noise_drives_exploration_and_restarts_at_episode_ends():
    seen = {}

    def watch(s) -> bool:
        if s.global_step in (150, 199, 200, 260):
            seen[s.global_step] = s.state.noise.x.clone()
        return False

    agent = rlworks.train("ddpg", "Pendulum-v1", total_steps=260, seed=0, learning_starts=100, batch_size=16,
                          hidden=(16, 16), action_noise="ou", ou_dt=1.0, callback=watch)
    assert agent.meta["n_updates"] == 160
    assert (seen[150] != 0).all() and (seen[199] != 0).all()
    assert torch.equal(seen[200], torch.zeros(1, 1))  # Pendulum's episode ends at 200 steps: restarted
    assert (seen[260] != 0).all()


def test_ddpg_on_a_discrete_action_space_is_one_clear_error():
    with pytest.raises(ConfigError, match="ddpg needs a Box action space.*CartPole-v1.*dqn"):
        rlworks.train("ddpg", "CartPole-v1", total_steps=10)
    out = subprocess.run([sys.executable, "-m", "rlworks.cli", "train", "ddpg", "--env", "CartPole-v1",
                          "--total-steps", "10", "--quiet"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr and "Box action space" in lines[0]


def test_cli_help_and_presets():
    out = subprocess.run([sys.executable, "-m", "rlworks.cli", "train", "ddpg", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0
    for flag in ("--action-noise", "--exploration-noise", "--ou-theta", "--ou-dt"):
        assert flag in out.stdout
    assert "--policy-delay" not in out.stdout  # the tricks are off, not options
    cfg, name = rlworks.algos.preset_config("ddpg", "Pendulum-v1", None)
    assert name == "Pendulum-v1" and cfg.hidden == (400, 300)
    zoo, _ = rlworks.algos.preset_config("ddpg", "Pendulum-v1", "rlzoo")
    assert (zoo.learning_starts, zoo.gamma, zoo.action_noise) == (10_000, 0.98, "gaussian")


def test_checkpoint_names_the_noise(tmp_path):
    rlworks.train("ddpg", "Pendulum-v1", total_steps=120, seed=0, learning_starts=100, batch_size=16,
                  hidden=(8, 8), action_noise="ou", checkpoint_dir=tmp_path)
    from rlworks.core.checkpoint import load_checkpoint

    tensors, _, _, _ = load_checkpoint(tmp_path)
    assert "noise/x" in tensors and "critic/weights.0" in tensors
