"""Deep Q-Network (Mnih et al. 2015, "Human-level control through deep reinforcement learning") with
the Rainbow-era improvements, each switchable (Hessel et al. 2018 study them together):

* Double DQN — the online network picks the next action, the target network values it
  (van Hasselt et al. 2016, eq. 4);
* Dueling heads — Q = V + A − mean(A) (Wang et al. 2016, eq. 9);
* n-step returns (Sutton 1988; Sutton & Barto 2018 §7.1) — assembled by the replay buffer;
* prioritized replay (Schaul et al. 2016, proportional) with β annealed to 1;
* target network with hard copies every ``target_update_interval`` env steps, or Polyak
  averaging with ``tau < 1`` (Lillicrap et al. 2016);
* Huber loss (``smooth_l1_loss``, Mnih et al. 2015 "error clipping"), ε-greedy with a linear schedule.

Reads top to bottom: config → network → pure target/loss functions → update round → train().
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, check_choice, check_range
from ..core import fastgrad
from ..core.logging import Logger
from ..core.nets import ACTIVATIONS, NumpyActor, mlp
from . import offpolicy


@dataclass(frozen=True)
class DQNConfig:
    n_envs: int = 1
    """number of parallel environments"""
    buffer_size: int = 100_000
    """replay buffer capacity in transitions"""
    learning_starts: int = 1000
    """environment steps of uniformly random actions before learning starts"""
    batch_size: int = 64
    """transitions per gradient step"""
    learning_rate: float = 2.3e-3
    """Adam step size"""
    anneal_lr: bool = False
    """decay the learning rate linearly to 0 over the run (as the on-policy algorithms can)"""
    adam_eps: float = 1e-8
    """Adam epsilon"""
    gamma: float = 0.99
    """discount factor"""
    train_freq: int = 4
    """vector-env steps between training rounds"""
    gradient_steps: int = 1
    """gradient steps per training round"""
    target_update_interval: int = 1000
    """environment steps between target-network updates (Mnih et al. 2015 "C")"""
    tau: float = 1.0
    """target update rate: 1 copies the online network (hard update), < 1 is Polyak averaging"""
    exploration_fraction: float = 0.1
    """fraction of total_steps over which ε decays linearly"""
    exploration_initial_eps: float = 1.0
    """ε at the start"""
    exploration_final_eps: float = 0.05
    """ε after the decay (also used by act(deterministic=False))"""
    max_grad_norm: float = 10.0
    """global gradient-norm clip; 0 disables"""
    double_q: bool = False
    """Double DQN targets: online argmax, target value (van Hasselt et al. 2016)"""
    dueling: bool = False
    """dueling value/advantage heads (Wang et al. 2016)"""
    n_step: int = 1
    """n-step returns (Sutton & Barto 2018 §7.1; Hessel et al. 2018)"""
    prioritized: bool = False
    """proportional prioritized experience replay (Schaul et al. 2016)"""
    per_alpha: float = 0.6
    """PER priority exponent α (0 = uniform)"""
    per_beta0: float = 0.4
    """PER importance-weight exponent β at the start, annealed linearly to 1 over the run"""
    hidden: tuple[int, ...] = (64, 64)
    """hidden layer sizes of the Q-network"""
    activation: str = "relu"
    """hidden activation: relu or tanh"""

    def __post_init__(self) -> None:
        for name in ("n_envs", "batch_size", "train_freq", "gradient_steps", "target_update_interval", "n_step"):
            check_range(name, getattr(self, name), 1)
        check_range("buffer_size", self.buffer_size, 2 * self.n_envs)
        check_range("learning_starts", self.learning_starts, 0)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("adam_eps", self.adam_eps, 0, low_open=True)
        check_range("gamma", self.gamma, 0, 1)
        check_range("tau", self.tau, 0, 1, low_open=True)
        check_range("exploration_fraction", self.exploration_fraction, 0, 1)
        check_range("exploration_initial_eps", self.exploration_initial_eps, 0, 1)
        check_range("exploration_final_eps", self.exploration_final_eps, 0, 1)
        check_range("max_grad_norm", self.max_grad_norm, 0)
        check_range("per_alpha", self.per_alpha, 0)
        check_range("per_beta0", self.per_beta0, 0, 1)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ConfigError(f"hidden={self.hidden!r} must be a non-empty list of positive layer sizes")


# ---------------------------------------------------------------------------------------------
# network
# ---------------------------------------------------------------------------------------------


class QNetwork(nn.Module):
    """MLP from observations to one Q-value per action; optionally dueling heads."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...], activation: str, dueling: bool,
                 eval_eps: float = 0.05) -> None:
        super().__init__()
        self.n_actions, self.dueling, self.eval_eps = n_actions, dueling, eval_eps
        if dueling:  # shared trunk, then V(s) and A(s, ·) streams (Wang et al. 2016, Fig. 1)
            self.trunk = nn.Sequential(mlp(obs_dim, hidden[:-1], hidden[-1], activation=activation, ortho_init=False),
                                       ACTIVATIONS[activation]())
            self.value = nn.Linear(hidden[-1], 1)
            self.advantage = nn.Linear(hidden[-1], n_actions)
        else:
            self.q = mlp(obs_dim, hidden, n_actions, activation=activation, ortho_init=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # (B, obs_dim) -> (B, n_actions)
        if not self.dueling:
            return self.q(obs)
        h = self.trunk(obs)
        adv = self.advantage(h)
        # subtracting the mean advantage makes V and A identifiable (Wang et al. 2016, eq. 9)
        return self.value(h) + adv - adv.mean(-1, keepdim=True)

    def greedy_layers(self) -> list[nn.Module]:
        """A plain layer stack whose output has the same argmax as Q (for dueling: A(s, ·))."""
        if not self.dueling:
            return list(self.q)
        return [*self.trunk[0], self.trunk[1], self.advantage]

    def act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        greedy = self(obs).argmax(-1)
        if deterministic:
            return greedy
        explore = torch.rand(greedy.shape, generator=generator) < self.eval_eps
        rand = torch.randint(self.n_actions, greedy.shape, generator=generator)
        return torch.where(explore, rand, greedy)


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: DQNConfig) -> QNetwork:
    return QNetwork(spec["obs_dim"], spec["act_dim"], tuple(net["hidden"]), net["activation"], net["dueling"],
                    eval_eps=cfg.exploration_final_eps)


# ---------------------------------------------------------------------------------------------
# targets, loss, schedules (pure functions)
# ---------------------------------------------------------------------------------------------


def td_targets(returns: torch.Tensor, discounts: torch.Tensor, q_next_target: torch.Tensor,
               q_next_online: torch.Tensor | None) -> torch.Tensor:
    """y = R^(n) + γ^n (1 - terminated) Q_target(s', a'), a' = argmax_a Q_online(s', a) for Double DQN
    (van Hasselt et al. 2016) or argmax_a Q_target(s', a) otherwise (Mnih et al. 2015)."""
    if q_next_online is not None:
        a_star = q_next_online.argmax(-1, keepdim=True)
        v_next = q_next_target.gather(-1, a_star).squeeze(-1)
    else:
        v_next = q_next_target.max(-1).values
    return returns + discounts * v_next


def q_loss(q_taken: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Huber loss (δ = 1), importance-weighted under prioritized replay (Schaul et al. 2016, Alg. 1)."""
    if weights is None:
        return F.smooth_l1_loss(q_taken, targets)
    return (weights * F.smooth_l1_loss(q_taken, targets, reduction="none")).mean()


def q_loss_and_grad(net: QNetwork, obs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor,
                    weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``q_loss`` of Q(obs, actions) and its gradient written into ``p.grad`` by hand: for a small MLP
    autograd's bookkeeping costs about as much as the arithmetic. ∂Huber/∂δ = clip(δ, −1, 1); the
    chain rule through Linear/ReLU/Tanh layers and the dueling aggregation is spelled out below and
    checked against autograd in tests/unit/test_offpolicy_losses.py. Returns (loss, Q(obs, actions))."""
    B = obs.shape[0]
    with torch.no_grad():
        if net.dueling:
            trunk = [*net.trunk[0], net.trunk[1]]
            acts = fastgrad.mlp_forward(trunk, obs)
            h = acts[-1]
            adv = torch.addmm(net.advantage.bias, h, net.advantage.weight.t())
            val = torch.addmm(net.value.bias, h, net.value.weight.t())
            q = val + adv - adv.mean(-1, keepdim=True)
        else:
            acts = fastgrad.mlp_forward(list(net.q), obs)
            q = acts[-1]
        idx = actions.unsqueeze(-1)
        q_taken = q.gather(-1, idx).squeeze(-1)
        delta = q_taken - targets
        huber = torch.where(delta.abs() < 1.0, 0.5 * delta * delta, delta.abs() - 0.5)
        g = delta.clamp(-1.0, 1.0) / B
        if weights is not None:
            huber, g = huber * weights, g * weights
        loss = huber.mean()
        g_q = torch.zeros_like(q).scatter_(-1, idx, g.unsqueeze(-1))  # (B, n_actions)
        if net.dueling:  # Q = V + A − mean(A): ∂/∂A = g − mean(g), ∂/∂V = Σ g
            g_adv = g_q - g_q.mean(-1, keepdim=True)
            g_val = g_q.sum(-1, keepdim=True)
            net.advantage.weight.grad, net.advantage.bias.grad = g_adv.t().mm(h), g_adv.sum(0)
            net.value.weight.grad, net.value.bias.grad = g_val.t().mm(h), g_val.sum(0)
            fastgrad.mlp_backward(trunk, acts, g_adv.mm(net.advantage.weight) + g_val.mm(net.value.weight))
        else:
            fastgrad.mlp_backward(list(net.q), acts, g_q)
    return loss, q_taken


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale gradients so their global L2 norm is at most ``max_norm`` (what
    ``torch.nn.utils.clip_grad_norm_`` computes, minus its per-call checks)."""
    grads = [p.grad for p in params]
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp(max=1.0))
    return total


def epsilon(cfg: DQNConfig, step: int, total_steps: int) -> float:
    """Linear decay from initial to final ε over ``exploration_fraction`` of the run (as SB3)."""
    frac = min(1.0, step / max(cfg.exploration_fraction * total_steps, 1e-9))
    return cfg.exploration_initial_eps + frac * (cfg.exploration_final_eps - cfg.exploration_initial_eps)


# ---------------------------------------------------------------------------------------------
# acting and the update round
# ---------------------------------------------------------------------------------------------


def act(s: offpolicy.Session, obs: np.ndarray) -> np.ndarray:
    """ε-greedy actions for a batch of observations (one uniform and one random action per env,
    always drawn, so the random stream does not depend on ε)."""
    N = obs.shape[0]
    explore = s.rng.random(N) < epsilon(s.config, s.global_step, s.total_steps)
    rand = s.rng.integers(0, s.spec["act_dim"], size=N)
    if explore.all():
        return rand
    # one observation through torch costs ~50 µs of dispatch; a NumPy copy of the weights (refreshed
    # after every training round) costs a few µs
    if "greedy" not in s.cache:
        s.cache["greedy"] = NumpyActor(SimpleNamespace(actor=s.modules["q"].greedy_layers()))
    x = obs.astype(np.float64) / 255.0 if obs.dtype == np.uint8 else obs
    greedy = s.cache["greedy"](x).argmax(-1)
    return np.where(explore, rand, greedy)


def train_round(s: offpolicy.Session, gradient_steps: int) -> dict[str, torch.Tensor]:
    cfg: DQNConfig = s.config
    q, q_target, opt = s.modules["q"], s.modules["q_target"], s.optimizers["q"]
    # target update, counted in env steps; a crossing during collection is applied here, before the
    # next gradient step, which is when it first matters (the online net has not changed since)
    I = cfg.target_update_interval
    if s.global_step // I > s.vars["synced_at"] // I:
        offpolicy.polyak_update(list(q_target.parameters()), list(q.parameters()), cfg.tau)
        s.vars["synced_at"] = s.global_step
    s.cache.pop("greedy", None)
    beta = cfg.per_beta0 + (1.0 - cfg.per_beta0) * min(1.0, s.global_step / s.total_steps)
    if cfg.anneal_lr:  # a function of the step count alone, so resume needs no extra state
        opt.param_groups[0]["lr"] = cfg.learning_rate * max(1.0 - s.global_step / s.total_steps, 0.0)
    dev, B = s.device, cfg.batch_size
    params = list(q.parameters())
    if not cfg.prioritized:
        # the buffer and the target network do not change during a round (as in SB3, targets move
        # between rounds): draw every minibatch at once and value all next states in one forward pass
        pre = offpolicy.tensor_batch(s.buffer.sample(B * gradient_steps, s.rng), dev)
        if not cfg.double_q:
            with torch.no_grad():
                pre_targets = td_targets(pre["returns"], pre["discounts"], q_target(pre["next_obs"]), None)
    for i in range(gradient_steps):
        if cfg.prioritized:
            b = s.buffer.sample(B, s.rng, beta)
            mb = offpolicy.tensor_batch(b, dev)
        else:
            mb = {k: v[i * B:(i + 1) * B] for k, v in pre.items()}
        with torch.no_grad():
            if cfg.double_q or cfg.prioritized:
                targets = td_targets(mb["returns"], mb["discounts"], q_target(mb["next_obs"]),
                                     q(mb["next_obs"]) if cfg.double_q else None)
            else:
                targets = pre_targets[i * B:(i + 1) * B]
        loss, q_taken = q_loss_and_grad(q, mb["obs"], mb["actions"], targets,
                                        mb["weights"] if cfg.prioritized else None)
        if cfg.max_grad_norm > 0:
            clip_grad_norm(params, cfg.max_grad_norm)
        opt.step()
        if cfg.prioritized:
            s.buffer.update_priorities(b.indices, (q_taken.detach() - targets).cpu().numpy())
        s.n_updates += 1
    return {"losses/q_loss": loss.detach(), "losses/q_values": q_taken.detach().mean(),
            "charts/epsilon": torch.tensor(epsilon(cfg, s.global_step, s.total_steps))}


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR = DQNConfig, "q"


def train(env_id: str, config: DQNConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          logger: Logger | None = None, checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0,
          log_every: int = 1000, callback: Callable[[offpolicy.Session], bool] | None = None,
          resume_from: str | Path | None = None, stop_at: int | None = None,
          on_start: Callable[[offpolicy.Session], None] | None = None) -> offpolicy.OffPolicyAgent:
    """Train DQN on ``env_id`` (Discrete actions) for ``total_steps`` environment steps and return the
    agent. With ``resume_from`` (a training checkpoint) continue that run exactly where it stopped."""
    cfg = config or DQNConfig()
    s = offpolicy.build_session("dqn", env_id, cfg, seed=seed, total_steps=total_steps, device=device,
                                action="discrete", act_dtype=np.int64)
    try:
        s.net = {"hidden": list(cfg.hidden), "activation": cfg.activation, "dueling": cfg.dueling}
        q = build_actor(s.spec, s.net, cfg).to(s.device)
        q_target = copy.deepcopy(q).requires_grad_(False)
        s.modules, s.actor = {"q": q, "q_target": q_target}, "q"
        s.optimizers = {"q": offpolicy.adam(q.parameters(), cfg.learning_rate, cfg.adam_eps)}
        s.vars = {"synced_at": 0}
        if resume_from is not None:
            offpolicy.restore_session(s, resume_from)
        if on_start is not None:
            on_start(s)
        return offpolicy.run(s, act, train_round, logger=logger, checkpoint_dir=checkpoint_dir,
                             checkpoint_every=checkpoint_every, log_every=log_every, callback=callback,
                             stop_at=stop_at)
    finally:
        s.venv.close()
