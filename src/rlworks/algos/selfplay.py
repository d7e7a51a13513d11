"""What MuZero and AlphaZero share, called visibly from each algorithm's ``train()``: the self-play session
(vector envs, one ``GameHistory`` per env, the game replay, RNGs), the act → record → learn loop with
logging, checkpoints, Ctrl+C and resume, and the checkpoint state. Plumbing, not a base class: the
networks, the search glue and the losses stay in each algorithm's file.

An algorithm plugs in two functions:

* ``plan(s, obs) -> (actions (N,), policies (N, A), root_values (N,))``: search at each env's state;
* ``learn(s, n) -> metrics``: ``n`` gradient steps on the replay.

Gradient steps follow the env steps at ``config.updates_per_step`` (a replay ratio) once
``config.learning_starts`` env steps are in the replay.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from .._version import __version__
from ..config import ConfigError
from ..core.checkpoint import (
    CheckpointError,
    load_training_checkpoint,
    matching_configuration,
    save_checkpoint,
)
from ..core.envs import EnvSource, env_source
from ..core.evaluation import EvalResult, evaluate_lockstep
from ..core.guards import check_array, check_losses
from ..core.run import Pace, RunContext, StopSignals
from ..core.seeding import spawn_seeds, torch_generator
from ..core.state import load_state_tensors, modules, state_tensors
from ..core.vec import make_vec_env, space_spec
from ..search import (
    visit_policy,
)
from .agent import OffPolicyAgent
from .games import GameHistory, GameReplay
from .offpolicy import polyak_update
from .planning import legal_rule


def learn_rounds(s: Session, n: int, update: Callable[[Any, Any, dict[str, torch.Tensor]], tuple[torch.Tensor, dict]],
                 after: Callable[[Session], None] | None = None) -> dict[str, torch.Tensor]:
    """``n`` gradient steps: sample a batch of positions with their targets, ``update(state, config, batch)``
    (which returns the new priorities), write the priorities back; ``after(s)`` after each step."""
    metrics: dict[str, torch.Tensor] = {}
    for _ in range(n):
        b = s.replay.sample(s.config.batch_size)
        batch = {k: torch.as_tensor(v, device=s.device) for k, v in b.items()}
        priorities, metrics = update(s.state, s.config, batch)
        s.replay.update_priorities(b["indices"], priorities.detach().cpu().numpy())
        s.state.n_updates += 1
        if s.averaged is not None:  # θ̄ ← β θ̄ + (1 − β) θ
            polyak_update(*s.polyak, 1.0 - s.config.weight_average)
        if after is not None:
            after(s)
    return metrics


class SearchAgent(OffPolicyAgent):
    """An agent that acts by searching: ``evaluate`` runs its episodes side by side, so each step is one
    batched search for all of them (a video, or an env given by the caller, plays them one by one)."""

    def evaluate(self, episodes: int = 10, seed: int | None = None, env: Any = None, *, video: Any = None,
                 deterministic: bool = True) -> EvalResult:
        if video is not None or env is not None or self.env is None or not self.env.copyable:
            return super().evaluate(episodes, seed, env, video=video, deterministic=deterministic)
        return evaluate_lockstep(lambda obs: self.act(obs, deterministic), self.env.for_evaluation(), episodes,
                                 seed=seed)


@dataclass
class Session:
    algo: str
    env_id: str | None
    config: Any
    seed: int
    total_steps: int
    device: torch.device
    spec: dict[str, Any]
    net: dict[str, Any]
    venv: Any
    replay: GameReplay
    rng: np.random.Generator  # exploration (temperature sampling, root noise)
    generator: torch.Generator
    env: EnvSource
    state: Any = None  # the algorithm's networks, optimizer and counters (core/state.py checkpoints them)
    obs: np.ndarray | None = None
    games: list[GameHistory] = field(default_factory=list)  # the game each env is playing
    global_step: int = 0
    iteration: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=20))
    players: int = 1  # 2: alternating zero-sum self-play (rewards for the mover; the discount flips sign)
    opening: np.ndarray | None = None  # with opening_moves: the random moves left before each game is recorded
    backend: str = "autograd"
    averaged: torch.nn.Module | None = None  # with weight_average: the acting module with the averaged weights
    polyak: tuple[list, list] = field(default_factory=lambda: ([], []))  # (θ̄, θ) paired once

    @property
    def n_updates(self) -> int:
        return self.state.n_updates

    @property
    def modules(self) -> dict[str, torch.nn.Module]:
        return modules(self.state)

    def step_discount(self) -> float:
        """mctx's convention: the next state's value is worth ±γ from this one's mover."""
        return -self.config.discount if self.players == 2 else self.config.discount

    @property
    def acting(self) -> torch.nn.Module:
        """The acting module with the latest weights (the algorithm's ``acting_model``)."""
        from . import module

        return module(self.algo).acting_model(self)

    def agent(self, *, latest: bool = False) -> SearchAgent:
        """The agent as it stands: acting with the averaged weights where ``weight_average`` keeps them, else (or
        with ``latest``) with the latest weights."""
        from . import module

        mod = module(self.algo)
        model = self.acting if latest or self.averaged is None else self.averaged
        return mod.AGENT(self.algo, self.env_id, self.config, model, self.spec, self.net,
                         meta={"global_step": self.global_step, "seed": self.seed, "library_version": __version__,
                               "backend": self.backend}, env=self.env)


def build_session(algo: str, env: Any, cfg: Any, *, seed: int, total_steps: int, device: str) -> Session:
    """Envs (``cfg.n_envs``), the game replay and the RNGs, for a Discrete-action env."""
    if total_steps < 1:
        raise ConfigError(f"total_steps={total_steps} is out of range: allowed [1, inf)")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but torch.cuda.is_available() is False; use --device cpu")
    env_seed, torch_seed, np_seed, replay_seed = spawn_seeds(np.random.SeedSequence(int(seed)), 4)
    source = env_source(env)
    venv = make_vec_env(source, cfg.n_envs, [env_seed + i for i in range(cfg.n_envs)], kind="lean")
    space = venv.single_action_space
    if not isinstance(space, gym.spaces.Discrete):
        venv.close()
        raise ConfigError(f"{algo} searches over a Discrete action space, but {source.name} has {space}; "
                          "use sac or td3 for it")
    spec = space_spec(venv.single_observation_space, space)
    symmetries = None
    if cfg.augment_symmetries:
        from ..envs.simulators import SIMULATORS

        make = getattr(SIMULATORS.get(source.env_id or ""), "symmetries", None)
        if make is None:
            venv.close()
            raise ConfigError(f"augment_symmetries: rlworks knows no symmetries of {source.name} (it knows those "
                              f"of rlworks/TicTacToe-v0)")
        symmetries = make()
    replay = GameReplay(cfg.replay_size, spec["act_dim"], (spec["obs_dim"],), num_unroll=cfg.num_unroll,
                        td_steps=cfg.td_steps, alpha=cfg.per_alpha, beta=cfg.per_beta, seed=replay_seed,
                        symmetries=symmetries)
    players = int(getattr(venv.envs[0].unwrapped, "players", 1)) if hasattr(venv, "envs") else 1
    s = Session(algo, source.env_id, cfg, int(seed), int(total_steps), dev, spec, {}, venv, replay,
                np.random.default_rng(np_seed), torch_generator(torch_seed, dev), source, players=players)
    s.obs = venv.reset().astype(np.float32)
    s.games = [GameHistory() for _ in range(venv.num_envs)]
    if cfg.opening_moves:
        s.opening = s.rng.integers(0, cfg.opening_moves + 1, size=venv.num_envs)
    return s


def sample(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One action per row of ``probs`` (N, A), drawn with ``rng``."""
    u = rng.random(len(probs))[:, None]
    return np.minimum((probs.cumsum(1) < u).sum(1), probs.shape[1] - 1)


def random_actions(s: Session, obs: np.ndarray) -> np.ndarray:
    """A uniform draw among the legal moves of each observation (every action where rlworks knows no rules):
    the unrecorded opening moves of ``opening_moves`` and the recorded ones of ``random_move_prob``."""
    rule = legal_rule(s.env_id)
    legal = (np.ones((len(obs), s.spec["act_dim"]), bool) if rule is None
             else rule(torch.as_tensor(obs)).cpu().numpy())
    return sample(s.rng, legal / legal.sum(1, keepdims=True))


def choose_actions(s: Session, out: Any, gumbel: bool, temperature: float) -> np.ndarray:
    """The actions to play from a search result: Gumbel's own choice (its root noise already explores), or a
    draw from N(a)^(1/T) with the session's RNG (AlphaZero's and MuZero's visit-count temperature); with
    ``temperature_moves`` = m > 0, games past their m-th move take the most visited action instead."""
    if gumbel:
        return out.action.cpu().numpy()
    probs = visit_policy(out.visit_counts, temperature).cpu().numpy()
    m = s.config.temperature_moves
    if m > 0:
        late = np.array([len(g) >= m for g in s.games])
        greedy = visit_policy(out.visit_counts, 0.0).cpu().numpy()
        probs[late] = greedy[late]
    return sample(s.rng, probs)


PlanFn = Callable[[Session, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
LearnFn = Callable[[Session, int], dict[str, torch.Tensor]]
ValueFn = Callable[[Session, np.ndarray], np.ndarray]


def run(s: Session, plan: PlanFn, learn: LearnFn, value: ValueFn, ctx: RunContext) -> OffPolicyAgent:
    """Resume if asked; then search → step → record, learning as the replay ratio allows, until
    ``total_steps`` env steps (or ``ctx.stop_at``). ``value(s, obs)`` values the last observation of a
    truncated game (its n-step targets bootstrap from it). Logs, checkpoints, SIGINT/SIGTERM and the
    callback work as in ``offpolicy.run``."""
    if s.config.weight_average > 0:  # the average starts at the initial weights
        s.averaged = copy.deepcopy(s.acting).requires_grad_(False)
        s.polyak = (list(s.averaged.parameters()), list(s.acting.parameters()))
    if ctx.resume_from is not None:
        restore(s, ctx.resume_from)
    if ctx.on_start is not None:
        ctx.on_start(s)
    cfg = s.config
    N = s.venv.num_envs
    logger, log_every = ctx.log, ctx.every(1000)
    end = s.total_steps if ctx.stop_at is None else min(ctx.stop_at, s.total_steps)
    pace = Pace(s.global_step, s.recent)
    metrics: dict[str, torch.Tensor] = {}
    with StopSignals() as stop:
        while s.global_step < end:
            t0 = time.perf_counter()
            prev = s.global_step
            actions, policies, root_values = plan(s, s.obs)
            opening = np.zeros(N, bool) if s.opening is None else s.opening > 0
            explored = np.zeros(N, bool)  # recorded random moves (random_move_prob; games.py cuts targets there)
            if cfg.random_move_prob > 0:
                explored = ~opening & (s.rng.random(N) < cfg.random_move_prob)
            if (uniform := opening | explored).any():
                actions = actions.copy()
                actions[uniform] = random_actions(s, s.obs[uniform])
            raw, rewards, term, trunc, final, episodes = s.venv.step(actions)
            check_array("reward", rewards, f"from the environment at step {s.global_step}")
            s.global_step += N
            s.iteration += 1
            nxt = raw.astype(np.float32)
            done = term | trunc
            boot = value(s, final[trunc].astype(np.float32)) if trunc.any() else None
            b = 0
            for i in range(N):
                if opening[i]:  # a random opening move: the recorded game starts after it
                    s.opening[i] -= 1
                else:
                    s.games[i].append(s.obs[i], actions[i], rewards[i], s.step_discount(), root_values[i],
                                      policies[i], explored=bool(explored[i]))
                if done[i]:
                    v = 0.0
                    if trunc[i]:
                        v, b = float(boot[b]), b + 1
                    if len(s.games[i]):  # (a game that ended inside its opening has nothing to learn from)
                        s.replay.add(s.games[i].finish(final[i], terminated=bool(term[i]), bootstrap_value=v))
                    s.games[i] = GameHistory()
                    if s.opening is not None:
                        s.opening[i] = s.rng.integers(0, cfg.opening_moves + 1)
            s.obs = nxt
            pace.episodes(episodes)
            if episodes and ctx.on_episodes is not None:
                ctx.on_episodes(s.global_step, list(episodes))
            due = math.floor(max(s.global_step - cfg.learning_starts, 0) * cfg.updates_per_step) - s.n_updates
            before = s.n_updates
            if due > 0 and len(s.replay) > 0:
                metrics = learn(s, due)
            pace.add(time.perf_counter() - t0, s.global_step - prev, s.n_updates - before)
            step = s.global_step
            if pace.due(step, log_every, end):
                out = {k: float(v.detach()) for k, v in metrics.items()}
                check_losses(out, step)
                logger.log(step, out | pace.window(step))
            if ctx.after_step(s, stop, step, prev, end, lambda at: _save(s, ctx, at)):
                break
    agent = s.agent()
    agent.meta["train_seconds"] = pace.train_seconds
    agent.meta["n_updates"] = s.n_updates
    return agent


# ---------------------------------------------------------------------------------------------
# checkpoint state: networks, optimizer, RNGs, the envs, the replay and the games being played
# ---------------------------------------------------------------------------------------------

_LIVE = ("obs", "actions", "rewards", "discounts", "root_values", "policies", "explored")


def _save(s: Session, ctx: RunContext, step: int) -> Path:
    tensors, learned = state_tensors(s.state)
    tensors["rng/torch"] = s.generator.get_state()
    if s.averaged is not None:  # "agent/": what load_agent reads from a training checkpoint
        tensors.update({f"agent/{k}": v for k, v in s.averaged.state_dict().items()})
    state = {
        "agent": s.agent().state(),
        "train": {"algo": s.algo, "env_id": s.env_id, "seed": s.seed, "total_steps": s.total_steps,
                  "iteration": s.iteration, "state": learned, "recent": list(s.recent),
                  "rng_numpy": s.rng.bit_generator.state, "device": str(s.device)},
        "sampler": {"global_step": s.global_step, "venv": s.venv.get_state()},
        "library_version": __version__,
    }
    arrays = {f"replay/{k}": v for k, v in s.replay.state_dict().items()}
    arrays["current_obs"] = s.obs
    if s.opening is not None:
        arrays["opening"] = s.opening
    for i, g in enumerate(s.games):  # the unfinished games, so that a resumed run continues them
        for k in _LIVE:
            a = np.asarray(getattr(g, k), dtype=np.int64 if k == "actions" else np.float32)
            if k == "policies" and not len(a):
                a = np.zeros((0, s.spec["act_dim"]), np.float32)
            arrays[f"live/{i}/{k}"] = a
    return save_checkpoint(ctx.checkpoint_dir, step, tensors, state, arrays, keep=ctx.keep_checkpoints)


def restore(s: Session, path: str | Path) -> Path:
    """Load a training checkpoint written by ``run`` into ``s`` (built with the same config and seed)."""
    tensors, state, arrays, ckpt, tr = load_training_checkpoint(path, s.algo, f"a {s.algo}", with_buffer=True)
    with matching_configuration(ckpt, s.algo):
        load_state_tensors(s.state, tensors, tr["state"])
        s.replay.load_state_dict({k[7:]: v for k, v in arrays.items() if k.startswith("replay/")})
    if s.averaged is not None:
        if not any(k.startswith("agent/") for k in tensors):
            raise CheckpointError(f"{ckpt}: written without weight_average, which this configuration sets")
        s.averaged.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("agent/")})
    s.generator.set_state(tensors["rng/torch"].to(torch.uint8))
    s.rng.bit_generator.state = tr["rng_numpy"]
    s.iteration = int(tr["iteration"])
    s.recent = deque(tr["recent"], maxlen=20)
    s.global_step = int(state["sampler"]["global_step"])
    if s.opening is not None:
        if "opening" not in arrays:
            raise CheckpointError(f"{ckpt}: written without opening_moves, which this configuration sets")
        s.opening = arrays["opening"].astype(np.int64)
    venv_state = state["sampler"]["venv"]
    if venv_state.get("exact"):
        s.venv.set_state(venv_state)
        s.obs = arrays["current_obs"].astype(np.float32)
        s.games = []
        for i in range(s.venv.num_envs):
            g = GameHistory()
            live = {k: arrays[f"live/{i}/{k}"] for k in _LIVE if f"live/{i}/{k}" in arrays}
            for t in range(len(live["actions"])):  # ("explored" is absent from checkpoints written before it)
                g.append(live["obs"][t], live["actions"][t], live["rewards"][t], live["discounts"][t],
                         live["root_values"][t], live["policies"][t], explored="explored" in live and
                         bool(live["explored"][t]))
            s.games.append(g)
    else:  # envs whose state is not plain data restart; their unfinished games are dropped
        s.obs = s.venv.set_state(venv_state, reseed=s.seed + s.iteration * 7919).astype(np.float32)
        s.games = [GameHistory() for _ in range(s.venv.num_envs)]
    return ckpt
