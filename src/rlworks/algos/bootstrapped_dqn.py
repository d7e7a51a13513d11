"""Bootstrapped DQN (Osband, Blundell, Pritzel & Van Roy 2016, "Deep Exploration via Bootstrapped DQN")
with randomized prior functions (Osband, Aslanides & Cassirer 2018, "Randomized Prior Functions for Deep
Reinforcement Learning").

K Q-heads share a torso. Each transition is stored with a Bernoulli(``mask_prob``) mask per head, and head
k learns only from the transitions its mask keeps (2016, §3, Algorithm 1): K bootstrap estimates of Q. At
the start of every episode the agent samples one head and follows it greedily for the whole episode — a
Thompson-style draw from the approximate posterior over Q, which commits to a plan for many steps (deep
exploration) where ε-greedy dithers one step at a time. Each head adds a fixed, randomly initialised prior
network scaled by β: Q_k = f_k + β·p_k (2018, §3, eq. 5), so that heads disagree where there is no data,
even on states no reward has reached. Evaluation is greedy by a vote of the heads.

Reads top to bottom: config → networks → loss → ``update`` (autograd) → the training round → ``train``.
The replay buffer, the target network (hard copies every ``target_update_interval`` steps, or Polyak with
``tau < 1``), the TD targets (``dqn.td_targets``, per head; Double DQN with each head's own argmax) and the
loop are DQN's.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, check_range
from ..core import features
from ..core.features import build_encoder
from ..core.nets import ACTIVATIONS, mlp
from ..core.optim import Adam
from ..core.run import RunContext
from ..core.seeding import seeded_init
from . import backends, dqn, offpolicy
from .agent import to_tensor


@dataclass(frozen=True)
class BootstrappedDQNConfig(dqn.DQNConfig):
    n_heads: int = 10
    """K, the number of bootstrap heads (Osband et al. 2016 use 10)"""
    mask_prob: float = 0.5
    """p of the Bernoulli bootstrap masks: each head learns from a transition with probability p
    (Osband et al. 2016, §3; p = 1 trains every head on every transition, which with priors still explores)"""
    prior_scale: float = 3.0
    """β of the randomized prior functions, Q_k = f_k + β p_k (Osband et al. 2018); 0 = no prior networks"""
    head_hidden: tuple[int, ...] = ()
    """hidden layer sizes of each head after the shared torso ([] = a linear head per Q)"""
    exploration_initial_eps: float = 0.0
    """ε at the start: 0, the sampled head alone explores (an ε > 0 adds dithering on top)"""
    exploration_final_eps: float = 0.0
    """ε after the decay"""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("n_heads", self.n_heads, 1)
        check_range("mask_prob", self.mask_prob, 0, 1, low_open=True)
        check_range("prior_scale", self.prior_scale, 0)
        for h in self.head_hidden:
            check_range("head_hidden", h, 1)
        if self.dueling:
            raise ConfigError("dueling=True is not available for bootstrapped-dqn (its heads are plain Q heads)")
        if self.prioritized:
            raise ConfigError("prioritized=True is not available for bootstrapped-dqn: one priority per transition "
                              "does not fit K heads that each see their own bootstrap sample")


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------


class LinearHeads(nn.Module):
    """K independent linear layers applied at once: (B, in) or (K, B, in) -> (K, B, out).
    Each head is initialised as ``nn.Linear`` would be (uniform ±1/√in)."""

    def __init__(self, k: int, n_in: int, n_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(k, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(k, 1, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return heads_product(x, self.weight) + self.bias


ONE_HOT_MIN_WIDTH = 256
"""inputs at least this wide are checked for one-hot rows (the check costs about as much as one dense
product of 64 outputs, so it pays only before the K heads' first layers)"""


def heads_product(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (B, in) or (K, B, in) times each head's weights (K, in, out) -> (K, B, out); (B, in) broadcasts
    over the heads. When every row of a wide (B, in) batch has at most one non-zero entry (a one-hot
    observation such as DeepSea's grid, or its all-zero last one), the product is that entry times one row
    of each head's weights: the rows are taken instead, B·K·out operations instead of B·in·K·out, with the
    same result and the same gradients (through the row lookup)."""
    if x.dim() == 2 and x.shape[1] >= ONE_HOT_MIN_WIDTH and bool(((x != 0).sum(-1) <= 1).all()):
        idx = x.abs().argmax(-1)  # (B,) the non-zero column (0 for an all-zero row, whose value is 0)
        return weight[:, idx, :] * x.gather(-1, idx.unsqueeze(-1))
    return torch.matmul(x, weight)


class EnsembleQ(nn.Module):
    """A torso (optional encoder, then an MLP) shared by K Q-heads: obs (B, ...) -> Q (K, B, n_actions)."""

    def __init__(self, obs_dim: int, n_actions: int, n_heads: int, hidden: tuple[int, ...],
                 head_hidden: tuple[int, ...], activation: str, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        width = encoder.features_dim if encoder is not None else obs_dim
        if hidden:
            self.torso = nn.Sequential(mlp(width, hidden[:-1], hidden[-1], activation=activation, ortho_init=False),
                                       ACTIVATIONS[activation]())
            for m in self.torso.modules():
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)
            width = hidden[-1]
        else:
            self.torso = nn.Identity()
        layers: list[nn.Module] = []
        for h in head_hidden:
            layers += [LinearHeads(n_heads, width, h), ACTIVATIONS[activation]()]
            width = h
        self.heads = nn.Sequential(*layers, LinearHeads(n_heads, width, n_actions))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.encoder is not None:
            obs = self.encoder(obs)
        return self.heads(self.torso(obs))


class BootstrappedQ(nn.Module):
    """The K heads with their randomized priors: Q_k(s, ·) = f_k(s, ·) + β p_k(s, ·) (Osband et al. 2018,
    eq. 5). ``prior`` has the same architecture as ``net`` and its own random weights, and it is never
    trained (its parameters do not require gradients and the optimizer does not hold them)."""

    def __init__(self, net: EnsembleQ, prior: EnsembleQ | None, prior_scale: float) -> None:
        super().__init__()
        self.net, self.prior_scale = net, float(prior_scale)
        self.prior = prior.requires_grad_(False) if prior is not None else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # (B, ...) -> (K, B, n_actions)
        q = self.net(obs)
        if self.prior is None:
            return q
        return q + self.prior_scale * self.prior(obs)

    @property
    def n_heads(self) -> int:
        return self.net.heads[-1].weight.shape[0]

    def trainable(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        """Greedy by a vote of the heads (ties: the lowest action), or, not deterministic, the greedy action
        of one head drawn per observation (an agent outside training has no episodes to hold a head for)."""
        q = self(obs)
        greedy = q.argmax(-1)  # (K, B)
        if deterministic:
            return vote(greedy, q.shape[-1])
        heads = torch.randint(self.n_heads, greedy.shape[1:], generator=generator, device=greedy.device)
        return greedy.gather(0, heads.unsqueeze(0)).squeeze(0)


def vote(greedy: torch.Tensor, n_actions: int) -> torch.Tensor:
    """The action most heads pick: greedy (K, B) -> (B,)."""
    counts = F.one_hot(greedy, n_actions).sum(0)  # (B, n_actions)
    return counts.argmax(-1)


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: BootstrappedDQNConfig) -> BootstrappedQ:
    def make() -> EnsembleQ:
        return EnsembleQ(spec["obs_dim"], spec["act_dim"], int(net["n_heads"]), tuple(net["hidden"]),
                         tuple(net["head_hidden"]), net["activation"],
                         encoder=build_encoder(net.get("features", "mlp"), spec))

    return BootstrappedQ(make(), make() if net["prior_scale"] > 0 else None, net["prior_scale"])


@dataclass
class BootstrappedDQNState:
    """What Bootstrapped DQN learns and the counters its round reads; checkpointed field by field
    (core/state.py), the head each env is following included, so a resumed run continues exactly."""

    q: BootstrappedQ
    q_target: BootstrappedQ
    q_opt: Adam
    active_head: torch.Tensor = field(default_factory=lambda: torch.zeros(1, dtype=torch.int64))
    """(n_envs,) the head each env follows in its current episode"""
    synced_at: int = 0
    n_updates: int = 0


# ---------------------------------------------------------------------------------------------
# loss and update
# ---------------------------------------------------------------------------------------------


def masked_loss(q_taken: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Huber TD loss of every head on the transitions its bootstrap mask keeps (Osband et al. 2016, Alg. 1):
    (K, B) each. Summed over the batch per head, divided by B and averaged over the heads, so the shared
    torso's gradient is the mean of the heads' (the 1/K normalisation of Osband et al. 2016, §6.1)."""
    per = F.smooth_l1_loss(q_taken, targets, reduction="none")
    return (masks * per).sum(-1).mean() / q_taken.shape[-1]


def update(st: BootstrappedDQNState, cfg: BootstrappedDQNConfig, obs: torch.Tensor, actions: torch.Tensor,
           targets: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One gradient step of every head; ``targets`` and ``masks`` are (K, B). Returns (loss, Q(s, a)) detached."""
    q = st.q(obs)  # (K, B, n_actions)
    q_taken = q.gather(-1, actions.expand(q.shape[0], -1).unsqueeze(-1)).squeeze(-1)  # (K, B)
    loss = masked_loss(q_taken, targets, masks)
    st.q_opt.zero_grad()
    loss.backward()
    if cfg.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(st.q_opt.params, cfg.max_grad_norm)
    st.q_opt.step()
    return loss.detach(), q_taken.detach()


def train_round(s: offpolicy.Session, gradient_steps: int, step=update) -> offpolicy.Metrics:
    """DQN's target sync and schedule, then ``gradient_steps`` updates of all heads on their masked batches.
    The metrics are computed when a line is logged; ``losses/prior_values`` (the largest β·|p_k(s, a)| in
    the batch) tells the Q-divergence guard how much of Q the fixed priors carry."""
    cfg: BootstrappedDQNConfig = s.config
    st: BootstrappedDQNState = s.state
    dqn.start_round(s)
    for _ in range(gradient_steps):
        mb = offpolicy.sample_batch(s, cfg.batch_size)
        with torch.no_grad():  # y_k = r + γ (1 - terminated) Q_target,k(s', a'_k), per head
            targets = dqn.td_targets(mb["returns"], mb["discounts"], st.q_target(mb["next_obs"]),
                                     st.q(mb["next_obs"]) if cfg.double_q else None)
        loss, q_taken = step(st, cfg, mb["obs"], mb["actions"], targets, mb["masks"].T.to(targets.dtype))
        st.n_updates += 1

    def metrics() -> dict[str, torch.Tensor]:
        out = {"losses/q_loss": loss, "losses/q_values": q_taken.mean(),
               "charts/epsilon": torch.tensor(dqn.epsilon(cfg, s.global_step, s.total_steps))}
        if st.q.prior is not None:
            with torch.no_grad():
                out["losses/prior_values"] = st.q.prior_scale * st.q.prior(mb["obs"]).abs().max()
        return out

    return metrics


# ---------------------------------------------------------------------------------------------
# acting: one head per episode
# ---------------------------------------------------------------------------------------------


def thompson_actions(s: offpolicy.Session, obs: np.ndarray) -> np.ndarray:
    """Each env acts greedily with the head it drew at its episode's start (ε-greedy on top when ε > 0;
    the uniform and random draws are always made, so the random stream does not depend on ε)."""
    N = obs.shape[0]
    explore = s.rng.random(N) < dqn.epsilon(s.config, s.global_step, s.total_steps)
    rand = s.rng.integers(0, s.spec["act_dim"], size=N)
    with torch.inference_mode():
        greedy = s.state.q(to_tensor(obs, s.device)).argmax(-1)  # (K, N)
        mine = greedy.gather(0, s.state.active_head.to(greedy.device).unsqueeze(0)).squeeze(0).cpu().numpy()
    return np.where(explore, rand, mine)


def draw_heads(s: offpolicy.Session, done: np.ndarray) -> None:
    """A new head for every env whose episode ended (Osband et al. 2016, Alg. 1: "pick k uniformly")."""
    idx = np.flatnonzero(done)
    s.state.active_head[idx] = torch.from_numpy(s.rng.integers(0, s.config.n_heads, size=idx.size))


def draw_masks(s: offpolicy.Session) -> dict[str, np.ndarray]:
    """The bootstrap masks stored with this step's transitions: (n_envs, K) ~ Bernoulli(mask_prob)."""
    return {"masks": s.rng.random((s.venv.num_envs, s.config.n_heads)) < s.config.mask_prob}


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR = BootstrappedDQNConfig, "q"


def build_state(spec: dict[str, Any], net: dict[str, Any], cfg: BootstrappedDQNConfig,
                device: torch.device) -> BootstrappedDQNState:
    q = build_actor(spec, net, cfg).to(device)
    return BootstrappedDQNState(q, copy.deepcopy(q).requires_grad_(False),
                                Adam(q.trainable(), lr=cfg.learning_rate, eps=cfg.adam_eps))


def train(env_id: str, config: BootstrappedDQNConfig | None = None, *, total_steps: int, seed: int = 0,
          device: str = "cpu", run: RunContext | None = None) -> offpolicy.OffPolicyAgent:
    """Train Bootstrapped DQN on ``env_id`` (Discrete actions) for ``total_steps`` environment steps and
    return the agent (it acts by a vote of its heads). ``run.resume_from`` continues a run exactly."""
    cfg = config or BootstrappedDQNConfig()
    s = offpolicy.build_session("bootstrapped-dqn", env_id, cfg, seed=seed, total_steps=total_steps, device=device,
                                action="discrete", act_dtype=np.int64,
                                extras={"masks": ((cfg.n_heads,), np.bool_)})
    with offpolicy.closing(s):
        kind = features.resolve(cfg.features, s.spec, s.env.name)
        s.net = {"hidden": list(cfg.hidden), "head_hidden": list(cfg.head_hidden), "activation": cfg.activation,
                 "n_heads": cfg.n_heads, "prior_scale": cfg.prior_scale, "features": kind}
        with seeded_init(seed):
            s.state = build_state(s.spec, s.net, cfg, s.device)
        s.state.active_head = torch.from_numpy(s.rng.integers(0, cfg.n_heads, size=s.venv.num_envs))
        s.backend = backends.resolve("bootstrapped-dqn", cfg.backend, fused=False)
        step = backends.choose(s.backend, update)

        def round_(s: offpolicy.Session, gradient_steps: int) -> dict[str, torch.Tensor]:
            return train_round(s, gradient_steps, step)

        return offpolicy.run(s, thompson_actions, round_, run or RunContext(), compiled=step,
                             on_done=draw_heads, on_store=draw_masks)
