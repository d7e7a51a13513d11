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

Reads top to bottom: config → network → pure target/loss functions → ``update`` (autograd) → the
training round → ``train``. The ``fused`` backend (``algos/fused/dqn.py``) computes the same update
with hand-written gradients.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import BACKENDS, ConfigError, check_choice, check_range
from ..core import features
from ..core.features import build_encoder
from ..core.nets import ACTIVATIONS, NumpyActor, mlp
from ..core.optim import Adam
from ..core.run import RunContext
from ..core.seeding import seeded_init
from . import backends, offpolicy


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
    """hidden layer sizes of the Q-network (after the feature extractor; [] = a linear head, as SB3's CnnPolicy)"""
    features: str = "auto"
    """feature extractor: auto (cnn for uint8 images of at least 36x36, else mlp), mlp (the flat
    observation), cnn (Nature CNN, Mnih et al. 2015) or 'package.module:ClassName', your own nn.Module built
    as ClassName(obs_shape) with an int features_dim (core/features.py, docs/deep-rl.md "Networks")"""
    activation: str = "relu"
    """hidden activation: relu or tanh"""
    backend: str = "auto"
    """how the update runs: auto, autograd, compile or fused (algos/backends.py)"""

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
        check_choice("backend", self.backend, BACKENDS)
        features.check_network(self)
        if self.dueling and not self.hidden:
            raise ConfigError("dueling=True needs at least one hidden layer (the trunk both streams share)")


# ---------------------------------------------------------------------------------------------
# network
# ---------------------------------------------------------------------------------------------


class QNetwork(nn.Module):
    """MLP from observations (or from an ``encoder``'s features, e.g. the Nature CNN's) to one Q-value per
    action; optionally dueling heads."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...], activation: str, dueling: bool,
                 eval_eps: float = 0.05, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.n_actions, self.dueling, self.eval_eps = n_actions, dueling, eval_eps
        self.encoder = encoder
        if encoder is not None:
            obs_dim = encoder.features_dim
        if dueling:  # shared trunk, then V(s) and A(s, ·) streams (Wang et al. 2016, Fig. 1)
            self.trunk = nn.Sequential(mlp(obs_dim, hidden[:-1], hidden[-1], activation=activation, ortho_init=False),
                                       ACTIVATIONS[activation]())
            self.value = nn.Linear(hidden[-1], 1)
            self.advantage = nn.Linear(hidden[-1], n_actions)
        else:
            self.q = mlp(obs_dim, hidden, n_actions, activation=activation, ortho_init=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # (B, obs_dim) -> (B, n_actions)
        if self.encoder is not None:
            obs = self.encoder(obs)
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
                    eval_eps=cfg.exploration_final_eps, encoder=build_encoder(net.get("features", "mlp"), spec))


@dataclass
class DQNState:
    """What DQN learns and the counters its round reads; checkpointed field by field (core/state.py)."""

    q: QNetwork
    q_target: QNetwork
    q_opt: Adam
    synced_at: int = 0
    """the env step of the last target-network update"""
    n_updates: int = 0


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


def epsilon(cfg: DQNConfig, step: int, total_steps: int) -> float:
    """Linear decay from initial to final ε over ``exploration_fraction`` of the run (as SB3)."""
    frac = min(1.0, step / max(cfg.exploration_fraction * total_steps, 1e-9))
    return cfg.exploration_initial_eps + frac * (cfg.exploration_final_eps - cfg.exploration_initial_eps)


# ---------------------------------------------------------------------------------------------
# the update and the training round
# ---------------------------------------------------------------------------------------------


def update(st: DQNState, cfg: DQNConfig, obs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor,
           weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One gradient step of the Huber TD loss on Q(s, a); returns (loss, Q(s, a)) detached."""
    q_taken = st.q(obs).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    loss = q_loss(q_taken, targets, weights)
    st.q_opt.zero_grad()
    loss.backward()
    if cfg.max_grad_norm > 0:  # global gradient-norm clip (as SB3's DQN)
        torch.nn.utils.clip_grad_norm_(st.q_opt.params, cfg.max_grad_norm)
    st.q_opt.step()
    return loss.detach(), q_taken.detach()


def start_round(s: offpolicy.Session) -> None:
    """What happens before a round's gradient steps: the target sync (counted in env steps) and the
    learning-rate schedule. (Bootstrapped DQN's rounds start the same way.)"""
    cfg, st = s.config, s.state
    # a crossing of the target interval during collection is applied here, before the next gradient
    # step, which is when it first matters (the online net has not changed since)
    interval = cfg.target_update_interval
    if s.global_step // interval > st.synced_at // interval:
        offpolicy.polyak_update(list(st.q_target.parameters()), list(st.q.parameters()), cfg.tau)
        st.synced_at = s.global_step
    if cfg.anneal_lr:  # a function of the step count alone, so resume needs no extra state
        st.q_opt.param_groups[0]["lr"] = cfg.learning_rate * max(1.0 - s.global_step / s.total_steps, 0.0)


def train_round(s: offpolicy.Session, gradient_steps: int, step=update) -> dict[str, torch.Tensor]:
    """Target sync, then ``gradient_steps`` updates with ``step`` (the backend)."""
    cfg: DQNConfig = s.config
    st: DQNState = s.state
    start_round(s)
    beta = cfg.per_beta0 + (1.0 - cfg.per_beta0) * min(1.0, s.global_step / s.total_steps)
    B = cfg.batch_size
    if not cfg.prioritized:
        # the buffer and the target network do not change during a round (as in SB3, targets move
        # between rounds): draw every minibatch at once and value all next states in one forward pass
        pre = offpolicy.sample_batch(s, B * gradient_steps)
        if not cfg.double_q:
            with torch.no_grad():
                pre_targets = td_targets(pre["returns"], pre["discounts"], st.q_target(pre["next_obs"]), None)
    for i in range(gradient_steps):
        if cfg.prioritized:
            sampled = s.buffer.sample(B, s.rng, beta)
            mb = offpolicy.tensor_batch(sampled, s.device)
        else:
            mb = {k: v[i * B:(i + 1) * B] for k, v in pre.items()}
        if cfg.double_q or cfg.prioritized:
            with torch.no_grad():
                targets = td_targets(mb["returns"], mb["discounts"], st.q_target(mb["next_obs"]),
                                     st.q(mb["next_obs"]) if cfg.double_q else None)
        else:
            targets = pre_targets[i * B:(i + 1) * B]
        loss, q_taken = step(st, cfg, mb["obs"], mb["actions"], targets, mb["weights"] if cfg.prioritized else None)
        if cfg.prioritized:
            s.buffer.update_priorities(sampled.indices, (q_taken - targets).cpu().numpy())
        st.n_updates += 1
    return {"losses/q_loss": loss, "losses/q_values": q_taken.mean(),
            "charts/epsilon": torch.tensor(epsilon(cfg, s.global_step, s.total_steps))}


class EpsilonGreedy:
    """ε-greedy actions for a batch of observations (one uniform and one random action per env, always
    drawn, so the random stream does not depend on ε). The greedy action comes from a NumPy copy of
    the Q-network (one observation through torch costs tens of µs of dispatch), refreshed after every
    training round."""

    def __init__(self) -> None:
        self.greedy: NumpyActor | None = None

    def __call__(self, s: offpolicy.Session, obs: np.ndarray) -> np.ndarray:
        N = obs.shape[0]
        explore = s.rng.random(N) < epsilon(s.config, s.global_step, s.total_steps)
        rand = s.rng.integers(0, s.spec["act_dim"], size=N)
        if explore.all():
            return rand
        if s.state.q.encoder is not None:  # a CNN: one batched torch forward
            with torch.inference_mode():
                greedy = s.state.q(offpolicy.to_tensor(obs, s.device)).argmax(-1).cpu().numpy()
            return np.where(explore, rand, greedy)
        if self.greedy is None:
            self.greedy = NumpyActor(SimpleNamespace(actor=s.state.q.greedy_layers()))
        x = obs.astype(np.float64) / 255.0 if obs.dtype == np.uint8 else obs
        return np.where(explore, rand, self.greedy(x).argmax(-1))


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR = DQNConfig, "q"


def build_state(spec: dict[str, Any], net: dict[str, Any], cfg: DQNConfig, device: torch.device) -> DQNState:
    q = build_actor(spec, net, cfg).to(device)
    return DQNState(q, copy.deepcopy(q).requires_grad_(False), Adam(q.parameters(), lr=cfg.learning_rate,
                                                                     eps=cfg.adam_eps))


def train(env_id: str, config: DQNConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          run: RunContext | None = None) -> offpolicy.OffPolicyAgent:
    """Train DQN on ``env_id`` (Discrete actions) for ``total_steps`` environment steps and return the
    agent. With ``run.resume_from`` (a training checkpoint) continue that run exactly where it stopped."""
    from .fused import dqn as fused

    cfg = config or DQNConfig()
    s = offpolicy.build_session("dqn", env_id, cfg, seed=seed, total_steps=total_steps, device=device,
                                action="discrete", act_dtype=np.int64)
    with offpolicy.closing(s):
        kind = features.resolve(cfg.features, s.spec, s.env.name)
        s.net = {"hidden": list(cfg.hidden), "activation": cfg.activation, "dueling": cfg.dueling, "features": kind}
        with seeded_init(seed):
            s.state = build_state(s.spec, s.net, cfg, s.device)
        s.backend = backends.resolve("dqn", cfg.backend, fused=kind == "mlp", network=f"features={kind!r}")
        step = backends.choose(s.backend, update, fused.update)
        act = EpsilonGreedy()

        def round_(s: offpolicy.Session, gradient_steps: int) -> dict[str, torch.Tensor]:
            act.greedy = None  # the Q-network changes: refresh the acting copy on the next greedy action
            return train_round(s, gradient_steps, step)

        return offpolicy.run(s, act, round_, run or RunContext(), compiled=step)
