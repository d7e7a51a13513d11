"""AlphaZero (Silver et al. 2018, "A general reinforcement learning algorithm that masters chess, shogi,
and Go through self-play"): the same tree search as MuZero, over the true rules of the game instead of a
learned model, with one network f(s) = (p, v).

* The search (``rlworks.search``) steps a batched simulator of the env (``envs/simulators.py``): TicTacToe's
  rules, or CartPole's equations. Legal moves come from the rules; the value's sign flips with the turn.
* Self-play targets: the search's visit distribution π for the policy and the game's outcome z (the
  discounted return to the end, ``td_steps`` long, so n-step bootstrapping is available for long tasks).
* Loss: (z − v)² (as cross-entropy on MuZero's categorical support, so one value head serves games and
  CartPole's returns of hundreds) − πᵀ log p, plus L2 weight decay (paper, "Methods": l = (z − v)² −
  πᵀ log p + c‖θ‖²).

Reads top to bottom: config → network → search glue → loss → ``update`` (autograd) → ``train``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, check_choice
from ..core.nets import ACTIVATIONS, mlp
from ..core.optim import Adam
from ..core.run import RunContext
from ..core.seeding import seeded_init
from ..core.support import scalar_to_support, support_to_scalar
from ..envs.simulators import SIMULATORS
from ..search import RootOutput, StepOutput, Tree
from . import selfplay
from .planning import SelfPlayOptions, act_from_search, search_with


@dataclass(frozen=True)
class AlphaZeroConfig(SelfPlayOptions):
    """AlphaZero's own fields and defaults; the shared ones: ``planning.SelfPlayOptions``."""

    dirichlet_alpha: float = 0.3  # chess's
    discount: float = 1.0  # board games are undiscounted
    td_steps: int = 500  # the game's outcome z (the paper); n-step bootstrapping for longer tasks
    batch_size: int = 256
    learning_rate: float = 1e-3
    replay_size: int = 50_000
    per_alpha: float = 0.0  # uniform replay, as the paper
    learning_starts: int = 500
    hidden: tuple[int, ...] = (128, 128)
    """hidden layers of the network"""
    activation: str = "relu"
    """activation"""

    num_unroll = 0  # the true rules need no learned dynamics: nothing is unrolled (for the shared replay)

    def __post_init__(self) -> None:
        self.check()
        check_choice("activation", self.activation, tuple(ACTIVATIONS))


class AlphaZeroNet(nn.Module):
    """f(s) = (policy logits, value logits on the support), one MLP trunk."""

    def __init__(self, obs_dim: int, num_actions: int, hidden: tuple[int, ...], support_size: int,
                 activation: str = "relu") -> None:
        super().__init__()
        self.support_size = support_size
        self.trunk = mlp(obs_dim, hidden[:-1], hidden[-1], activation=activation, ortho_init=False)
        self.act_fn = ACTIVATIONS[activation]()
        self.policy_head = nn.Linear(hidden[-1], num_actions)
        self.value_head = nn.Linear(hidden[-1], 2 * support_size + 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.act_fn(self.trunk(obs))
        return self.policy_head(x), self.value_head(x)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return support_to_scalar(self(obs)[1], self.support_size)


# ---------------------------------------------------------------------------------------------
# search glue: the simulator as the search's model, the network at its leaves
# ---------------------------------------------------------------------------------------------


def search(net: AlphaZeroNet, sim: Any, obs: torch.Tensor, cfg: AlphaZeroConfig, *,
           rng: np.random.Generator | None, tree: Tree | None = None):
    """One batched search from each observation over the simulator's rules; ``rng`` adds root noise."""
    states = sim.from_obs(obs.to(torch.float64))  # the rules in float64, as the envs compute them
    logits, v_logits = net(obs)
    legal = sim.legal(states)
    root = RootOutput(prior_logits=logits, value=support_to_scalar(v_logits, net.support_size), embedding=states)
    sign = -1.0 if sim.players == 2 else 1.0

    def recurrent_fn(states: torch.Tensor, action: torch.Tensor) -> StepOutput:
        nxt, reward, done, legal = sim.step(states, action)
        p_logits, v = net(sim.observe(nxt).to(logits.dtype))
        value = torch.where(done, 0.0, support_to_scalar(v, net.support_size))  # no future after the end
        discount = torch.where(done, 0.0, sign * cfg.discount).to(logits.dtype)
        return StepOutput(reward=reward.to(logits.dtype), discount=discount, prior_logits=p_logits, value=value,
                          embedding=nxt, legal=legal)

    return search_with(cfg, root, recurrent_fn, legal=legal, rng=rng, tree=tree)


class AlphaZeroPlanner(nn.Module):
    """The acting module: ``act(obs)`` searches the env's rules (``use_search=False``: the raw policy head)."""

    def __init__(self, net: AlphaZeroNet, cfg: AlphaZeroConfig, env_id: str) -> None:
        super().__init__()
        self.net, self.cfg, self.sim = net, cfg, SIMULATORS[env_id]()
        self.use_search = True

    @torch.no_grad()
    def explain(self, obs: torch.Tensor):
        """The deterministic search from each observation, with the raw priors and legal masks: what
        ``rlworks eval --show-search`` draws."""
        legal = self.sim.legal(self.sim.from_obs(obs))
        logits = self.net(obs)[0]
        prior = (logits if legal is None else logits.masked_fill(~legal, float("-inf"))).softmax(-1)
        return prior, search(self.net, self.sim, obs, self.cfg, rng=None), legal

    def act(self, obs: torch.Tensor, deterministic: bool = True, generator: torch.Generator | None = None
            ) -> torch.Tensor:
        if not self.use_search:
            logits = self.net(obs)[0]
            legal = self.sim.legal(self.sim.from_obs(obs))
            if legal is not None:
                logits = logits.masked_fill(~legal, float("-inf"))
            return logits.argmax(-1) if deterministic else torch.multinomial(logits.softmax(-1), 1,
                                                                              generator=generator).squeeze(-1)
        rng = None if deterministic else np.random.default_rng(
            int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        out = search(self.net, self.sim, obs, self.cfg, rng=rng)
        return act_from_search(out, self.cfg.search, deterministic, generator)


# ---------------------------------------------------------------------------------------------
# loss and update
# ---------------------------------------------------------------------------------------------


def loss_fn(net: AlphaZeroNet, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor,
                                                                         dict[str, torch.Tensor]]:
    """Per-sample (z − v)² as support cross-entropy − πᵀ log p (B,), and v for the new priorities."""
    z = batch["value_prefix"][:, 0] + batch["bootstrap_scale"][:, 0] * batch["bootstrap_stored"][:, 0]
    logits, v_logits = net(batch["obs"])
    value = -(scalar_to_support(z, net.support_size) * F.log_softmax(v_logits, -1)).sum(-1)
    policy = -(batch["target_policies"][:, 0] * F.log_softmax(logits, -1).clamp(min=-1e4)).sum(-1)
    v = support_to_scalar(v_logits.detach(), net.support_size)
    parts = {"losses/value": value.detach().mean(), "losses/policy": policy.detach().mean()}
    return value + policy, (v - z).abs(), parts


@dataclass
class AlphaZeroState:
    planner: AlphaZeroPlanner
    opt: Adam
    n_updates: int = 0


def update(st: AlphaZeroState, cfg: AlphaZeroConfig, batch: dict[str, torch.Tensor]
           ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    loss, priorities, parts = loss_fn(st.planner.net, batch)
    st.opt.zero_grad(set_to_none=True)
    l2 = cfg.weight_decay * sum(p.square().sum() for p in st.planner.net.parameters())
    ((loss * batch["weights"]).mean() + l2).backward()
    if cfg.max_grad_norm > 0:
        nn.utils.clip_grad_norm_(st.planner.net.parameters(), cfg.max_grad_norm)
    st.opt.step()
    return priorities, {**parts, "losses/loss": loss.mean().detach()}


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR, AGENT = AlphaZeroConfig, "planner", selfplay.SearchAgent


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: AlphaZeroConfig) -> AlphaZeroPlanner:
    model = AlphaZeroNet(spec["obs_dim"], spec["act_dim"], tuple(cfg.hidden), cfg.support_size, cfg.activation)
    return AlphaZeroPlanner(model, cfg, net["simulator"])


def acting_model(s: selfplay.Session) -> AlphaZeroPlanner:
    return s.state.planner


def train(env_id: Any, config: AlphaZeroConfig | None = None, *, total_steps: int, seed: int = 0,
          device: str = "cpu", run: RunContext | None = None) -> selfplay.SearchAgent:
    """Train AlphaZero by self-play on an env whose rules rlworks simulates (``SIMULATORS``)."""
    cfg = config or AlphaZeroConfig()
    s = selfplay.build_session("alphazero", env_id, cfg, seed=seed, total_steps=total_steps, device=device)
    try:
        if s.env_id not in SIMULATORS:
            raise ConfigError(f"alphazero searches over an env's true rules, which rlworks has for "
                              f"{', '.join(SIMULATORS)}; {s.env.name} is not one of them (muzero learns a model of any "
                              "Discrete-action env)")
        s.net = {"simulator": s.env_id}
        with seeded_init(seed):
            planner = build_actor(s.spec, s.net, cfg).to(s.device)
        s.state = AlphaZeroState(planner, Adam(planner.net.parameters(), lr=cfg.learning_rate))
        sim = planner.sim
        state_dim = sim.from_obs(torch.zeros(1, s.spec["obs_dim"])).shape[1]
        tree = Tree(s.venv.num_envs, s.spec["act_dim"], cfg.num_simulations + 1, (state_dim,),
                    embedding_dtype=torch.float64, device=s.device)

        def plan(s: selfplay.Session, obs: np.ndarray):
            with torch.inference_mode():
                out = search(s.state.planner.net, sim, torch.as_tensor(obs, device=s.device), cfg, rng=s.rng,
                             tree=tree)
            actions = selfplay.choose_actions(s, out, cfg.search == "gumbel",
                                              cfg.temperature(s.global_step / s.total_steps))
            return actions, out.policy.cpu().numpy(), out.root_value.cpu().numpy()

        def value(s: selfplay.Session, obs: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return s.state.planner.net.value(torch.as_tensor(obs, device=s.device)).cpu().numpy()

        def learn(s: selfplay.Session, n: int) -> dict[str, torch.Tensor]:
            return selfplay.learn_rounds(s, n, update)

        return selfplay.run(s, plan, learn, value, run or RunContext())
    finally:
        s.venv.close()
