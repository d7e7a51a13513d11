"""What DQN, SAC and TD3 share, called visibly from each algorithm's ``train()``: building the
env/replay buffer/session, the act–store–update loop with logging and checkpoint hooks, the
checkpoint state (networks, optimizers, RNGs, env snapshots, the replay buffer — so ``--resume``
continues bit for bit). The acting ``OffPolicyAgent`` lives in ``algos/agent.py``.

This is plumbing, not a base class: networks, losses and update rules stay in each algorithm's file.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from .._version import __version__
from ..config import ConfigError
from ..core import features
from ..core.checkpoint import (
    load_training_checkpoint,
    matching_configuration,
    save_checkpoint,
)
from ..core.envs import EnvSource, env_source
from ..core.guards import QGuard, check_array, check_losses, check_module
from ..core.optim import eager
from ..core.replay import Batch as ReplayBatch
from ..core.replay import ReplayBuffer
from ..core.run import Pace, RunContext, StopSignals
from ..core.seeding import spawn_seeds, torch_generator
from ..core.state import load_state_tensors, modules, state_tensors
from ..core.vec import make_vec_env, space_spec
from .agent import OffPolicyAgent, scale_actions, to_tensor

# ---------------------------------------------------------------------------------------------
# small tensor helpers shared by the three algorithms
# ---------------------------------------------------------------------------------------------


def polyak_update(target: list[torch.Tensor], online: list[torch.Tensor], tau: float) -> None:
    """θ' ← (1-τ)θ' + τθ in one fused call (Lillicrap et al. 2016, DDPG §7); τ = 1 copies."""
    with torch.no_grad():
        if tau >= 1.0:
            torch._foreach_copy_(target, online)
        else:
            torch._foreach_lerp_(target, online, tau)


def count_update(state: Any, every: int) -> bool:
    """Count one gradient step in ``state.n_updates``; True when the count is a multiple of ``every``.
    Kept out of compiled graphs, which would otherwise specialise on the counter's value."""
    if torch.compiler.is_compiling():
        return eager(count_update)(state, every)
    state.n_updates += 1
    return state.n_updates % every == 0


def tensor_batch(b: ReplayBatch, device: torch.device) -> dict[str, torch.Tensor]:
    """A sampled ``Batch`` as tensors (one ``from_numpy`` per field, no copies on CPU)."""
    return {"obs": to_tensor(b.obs, device), "actions": torch.from_numpy(b.actions).to(device),
            "returns": torch.from_numpy(b.returns).to(device), "discounts": torch.from_numpy(b.discounts).to(device),
            "next_obs": to_tensor(b.next_obs, device), "weights": torch.from_numpy(b.weights).to(device),
            **{k: torch.from_numpy(v).to(device) for k, v in b.extras.items()}}


def sample_batch(s: Session, n: int) -> dict[str, torch.Tensor]:
    """``n`` uniformly sampled transitions from the replay buffer, as tensors on the session's device."""
    return tensor_batch(s.buffer.sample(n, s.rng), s.device)


# ---------------------------------------------------------------------------------------------
# session: everything a running off-policy training holds
# ---------------------------------------------------------------------------------------------


@dataclass
class Session:
    """Everything a running off-policy training holds: the plumbing here, what the algorithm learns in
    ``state`` (its own dataclass of networks, optimizers and counters, checkpointed by core/state.py)."""

    algo: str
    env_id: str | None
    config: Any
    seed: int
    total_steps: int
    device: torch.device
    spec: dict[str, Any]
    net: dict[str, Any]  # how to rebuild the acting network (saved with the agent)
    venv: Any
    buffer: ReplayBuffer
    rng: np.random.Generator  # exploration and minibatch sampling
    generator: torch.Generator  # policy noise
    state: Any = None
    backend: str = "autograd"
    actor: str = "actor"  # the field of ``state`` the agent acts with
    obs: np.ndarray | None = None  # current observations (N, obs_dim), storage dtype
    global_step: int = 0  # environment steps (all envs)
    iteration: int = 0  # vector-env steps
    recent: deque = field(default_factory=lambda: deque(maxlen=20))
    exact_resume: bool = True
    env: EnvSource | None = None  # where the envs came from (the agent evaluates on it and records it)

    @property
    def n_updates(self) -> int:
        return self.state.n_updates

    @property
    def modules(self) -> dict[str, torch.nn.Module]:
        return modules(self.state)

    def agent(self) -> OffPolicyAgent:
        return OffPolicyAgent(self.algo, self.env_id, self.config, getattr(self.state, self.actor), self.spec,
                              self.net, meta={"global_step": self.global_step, "seed": self.seed,
                                              "library_version": __version__, "backend": self.backend}, env=self.env)


def build_session(algo: str, env: Any, cfg: Any, *, seed: int, total_steps: int, device: str, action: str,
                  act_dtype: Any, extras: dict[str, tuple[tuple[int, ...], Any]] | None = None) -> Session:
    """Envs, replay buffer and RNGs for ``cfg`` (which has n_envs, buffer_size, gamma, n_step?,
    prioritized?, per_alpha?); ``action`` is the action space the algorithm needs. ``env``: any form
    ``core.envs.env_source`` takes (an id, an instance, a factory, a VectorEnv). ``extras``: further
    per-transition fields the buffer stores (name -> (shape, dtype)), filled by ``run``'s ``on_store``."""
    if total_steps < 1:
        raise ConfigError(f"total_steps={total_steps} is out of range: allowed [1, inf)")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but torch.cuda.is_available() is False; use --device cpu")
    # every stream is a child of the seed (core/seeding.py); no global RNG is touched
    env_seed, torch_seed, np_seed = spawn_seeds(np.random.SeedSequence(int(seed)), 3)
    source = env_source(env)
    venv = make_vec_env(source, cfg.n_envs, [env_seed + i for i in range(cfg.n_envs)], kind="lean")
    space = venv.single_action_space
    kind = ("discrete" if isinstance(space, gym.spaces.Discrete)
            else "box" if isinstance(space, gym.spaces.Box) else None)
    if kind != action:
        venv.close()
        from .registry import REGISTRY

        fits = [a.name for a in REGISTRY.values() if kind in a.actions and a.family == "off-policy"]
        hint = f"; use {' or '.join(fits)} for it" if kind and fits else ""
        raise ConfigError(f"{algo} needs a {'Discrete' if action == 'discrete' else 'Box'} action space, but "
                          f"{source.name} has {space}{hint}")
    if kind == "box" and not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        venv.close()
        raise ConfigError(f"{source.name}: Box action space {space} must have finite bounds for {algo}")
    spec = space_spec(venv.single_observation_space, space)  # obs_dtype: uint8 pixels are stored as bytes
    if not hasattr(cfg, "features"):  # no image extractor (SAC, TD3): refused before the buffer is allocated
        try:
            features.refuse_images(spec, algo, source.name)
        except ConfigError:
            venv.close()
            raise
    if spec["obs_dtype"] == "uint8":
        venv.obs_dtype = np.dtype(np.uint8)
    act_shape = () if kind == "discrete" else (spec["act_dim"],)
    buffer = ReplayBuffer(cfg.buffer_size, cfg.n_envs, (spec["obs_dim"],), obs_dtype=np.dtype(spec["obs_dtype"]),
                          act_shape=act_shape, act_dtype=act_dtype, n_step=getattr(cfg, "n_step", 1),
                          gamma=cfg.gamma, prioritized=getattr(cfg, "prioritized", False),
                          alpha=getattr(cfg, "per_alpha", 0.6), extras=extras)
    s = Session(algo, source.env_id, cfg, int(seed), int(total_steps), dev, spec, {}, venv, buffer,
                np.random.default_rng(np_seed), torch_generator(torch_seed, dev), actor=_actor_field(algo),
                env=source)
    s.obs = _receive(s, venv.reset())
    return s


def _actor_field(algo: str) -> str:
    from . import module

    return module(algo).ACTOR


@contextmanager
def closing(s: Session) -> Iterator[Session]:
    """Close the session's envs however training ends."""
    try:
        yield s
    finally:
        s.venv.close()


def describe_buffer(s: Session) -> str:
    """One line for the start of a run: how much memory the (preallocated) replay buffer holds."""
    b = s.buffer
    return (f"replay buffer: {b.nbytes / 2**20:,.1f} MiB for {b.rows * b.n_envs:,} transitions "
            f"(obs {b.obs.dtype} x {s.spec['obs_dim']}, stored once; n-step {b.n_step}"
            f"{', prioritized' if b.prioritized else ''})")


def _receive(s: Session, raw: np.ndarray) -> np.ndarray:
    check_array("observation", raw, f"from the environment after step {s.global_step}")
    return raw.astype(s.buffer.obs.dtype, copy=False)


def random_actions(s: Session) -> np.ndarray:
    """Uniform actions for warm-up (before ``learning_starts``), in buffer format."""
    N = s.venv.num_envs
    if s.spec["action"] == "discrete":
        return s.rng.integers(0, s.spec["act_dim"], size=N)
    return s.rng.uniform(-1.0, 1.0, size=(N, s.spec["act_dim"])).astype(np.float32)


def act_with_module(s: Session, obs: np.ndarray) -> np.ndarray:
    """Exploration actions from the acting network's own ``act`` (in buffer format)."""
    with torch.inference_mode():
        return getattr(s.state, s.actor).act(to_tensor(obs, s.device), False, s.generator).cpu().numpy()


def env_actions(s: Session, actions: np.ndarray):
    if s.spec["action"] == "discrete":
        return actions + s.spec["act_start"] if s.spec["act_start"] else actions
    return scale_actions(actions, s.spec).reshape((actions.shape[0], *s.spec["act_shape"]))


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------

ActFn = Callable[[Session, np.ndarray], np.ndarray]
#: what a round reports: its metrics, or a function computing them, called only when a line is logged
Metrics = dict[str, torch.Tensor] | Callable[[], dict[str, torch.Tensor]]
TrainFn = Callable[[Session, int], Metrics]
#: called with the done mask (N,) after a step where episodes ended (DDPG restarts its OU noise there)
DoneFn = Callable[[Session, np.ndarray], None]
#: the extra per-transition fields of one vector step, stored with it (Bootstrapped DQN's masks)
StoreFn = Callable[[Session], dict[str, np.ndarray]]


def run(s: Session, act: ActFn, train_round: TrainFn, ctx: RunContext, *, compiled: Any = None,
        on_done: DoneFn | None = None, on_store: StoreFn | None = None) -> OffPolicyAgent:
    """Resume if asked, then act → store → (every ``train_freq`` vector steps after ``learning_starts``)
    ``train_round(s, gradient_steps)``, until ``total_steps`` (or ``ctx.stop_at``) env steps. Metrics stay
    tensors until a log line is written (no per-step sync); losses are checked for NaN/inf there and
    before every checkpoint. ``ctx.callback(s)`` runs after each step, excluded from ``perf/sps``, and
    may stop the run. SIGINT/SIGTERM end the current step, write a checkpoint and raise
    ``TrainingInterrupted``. ``compiled``: the update, to report its compile time when it was compiled.
    ``on_done(s, done)`` runs after each step where an episode ended; ``on_store(s)`` gives the extra
    fields stored with each step's transitions."""
    if ctx.resume_from is not None:
        restore_session(s, ctx.resume_from)
    if ctx.on_start is not None:
        ctx.on_start(s)
    try:
        agent = _loop(s, act, train_round, ctx, on_done, on_store)
    finally:
        # the fused rounds run in inference mode, so the gradients they leave in ``.grad`` are inference
        # tensors, which a later autograd ``backward`` on these modules could not add to
        for m in s.modules.values():
            for p in m.parameters():
                p.grad = None
    if getattr(compiled, "compile_seconds", None) is not None:
        agent.meta["compile_seconds"] = compiled.compile_seconds
    return agent


def _loop(s: Session, act: ActFn, train_round: TrainFn, ctx: RunContext, on_done: DoneFn | None,
          on_store: StoreFn | None) -> OffPolicyAgent:
    cfg = s.config
    N = s.venv.num_envs
    logger, log_every = ctx.log, ctx.every(1000)
    end = s.total_steps if ctx.stop_at is None else min(ctx.stop_at, s.total_steps)
    pace = Pace(s.global_step, s.recent)
    metrics: Metrics = {}
    guard = QGuard(s.algo, cfg.gamma)
    with StopSignals() as stop:
        while s.global_step < end:
            t0 = time.perf_counter()
            prev = s.global_step
            actions = random_actions(s) if s.global_step < cfg.learning_starts else act(s, s.obs)
            raw, rewards, term, trunc, final, episodes = s.venv.step(env_actions(s, actions))
            s.global_step += N
            s.iteration += 1
            check_array("reward", rewards, f"from the environment at step {s.global_step}")
            guard.rewards(rewards)
            nxt = _receive(s, raw)
            real_next = nxt
            done = term | trunc
            extras = on_store(s) if on_store is not None else None  # drawn before on_done touches the RNG
            if done.any():  # the buffer needs the true final observation of each finished episode
                check_array("observation", final[done], f"(final) from the environment at step {s.global_step}")
                real_next = nxt.copy()
                real_next[done] = final[done]
                if on_done is not None:
                    on_done(s, done)
            s.buffer.add(s.obs, actions, rewards, real_next, term, trunc, extras)
            s.obs = nxt
            pace.episodes(episodes)
            if episodes and ctx.on_episodes is not None:
                ctx.on_episodes(s.global_step, list(episodes))
            before = s.n_updates
            if s.global_step > cfg.learning_starts and s.iteration % cfg.train_freq == 0:
                metrics = train_round(s, cfg.gradient_steps)
            pace.add(time.perf_counter() - t0, s.global_step - prev, s.n_updates - before)
            step = s.global_step
            if pace.due(step, log_every, end):
                if callable(metrics):
                    metrics = metrics()
                out = {k: float(v) for k, v in metrics.items()}
                check_losses(out, step)
                check_module("parameter", getattr(s.state, s.actor))
                guard.check(step, out)
                logger.log(step, out | pace.window(step))
            if ctx.after_step(s, stop, step, prev, end, lambda at: _save(s, ctx, at)):
                break
    agent = s.agent()
    agent.meta["train_seconds"] = pace.train_seconds
    agent.meta["n_updates"] = s.n_updates
    if guard.warned_at is not None:
        agent.meta["q_diverged_at"] = guard.warned_at
    return agent


def _save(s: Session, ctx: RunContext, step: int) -> Path:
    for m in s.modules.values():
        check_module("parameter", m)
    tensors, state = session_state(s)
    return save_checkpoint(ctx.checkpoint_dir, step, tensors, state, buffer_state(s), keep=ctx.keep_checkpoints)


# ---------------------------------------------------------------------------------------------
# checkpoint state
# ---------------------------------------------------------------------------------------------


def session_state(s: Session) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, learned = state_tensors(s.state)
    tensors["rng/torch"] = s.generator.get_state()
    state = {
        "agent": s.agent().state(),
        "train": {"algo": s.algo, "env_id": s.env_id, "seed": s.seed, "total_steps": s.total_steps,
                  "iteration": s.iteration, "state": learned, "recent": list(s.recent),
                  "rng_numpy": s.rng.bit_generator.state, "device": str(s.device)},
        "sampler": {"global_step": s.global_step, "venv": s.venv.get_state()},
        "library_version": __version__,
    }
    return tensors, state


def buffer_state(s: Session) -> dict[str, np.ndarray]:
    return {**{f"replay/{k}": v for k, v in s.buffer.state_dict().items()}, "current_obs": s.obs}


def restore_session(s: Session, path: str | Path) -> Path:
    """Load a training checkpoint written by ``run`` into ``s`` (which was built with the same
    config and seed). Envs whose state is not plain data (Box2D, MuJoCo) restart with fresh seeded
    episodes; the newest stored step is then marked truncated so no transition links across."""
    tensors, state, buffer, ckpt, tr = load_training_checkpoint(path, s.algo, "an off-policy", with_buffer=True)
    with matching_configuration(ckpt, s.algo):
        load_state_tensors(s.state, tensors, tr["state"])
        s.buffer.load_state_dict({k[7:]: v for k, v in buffer.items() if k.startswith("replay/")})
    s.generator.set_state(tensors["rng/torch"].to(torch.uint8))
    s.rng.bit_generator.state = tr["rng_numpy"]
    s.iteration = int(tr["iteration"])
    s.recent = deque(tr["recent"], maxlen=20)
    s.global_step = int(state["sampler"]["global_step"])
    venv_state = state["sampler"]["venv"]
    s.exact_resume = bool(venv_state.get("exact"))
    if s.exact_resume:
        s.venv.set_state(venv_state)
        s.obs = buffer["current_obs"].astype(s.buffer.obs.dtype)
    else:
        s.buffer.truncate_newest(buffer["current_obs"].astype(s.buffer.obs.dtype))
        s.obs = _receive(s, s.venv.set_state(venv_state, reseed=s.seed + s.iteration * 7919))
    return ckpt
