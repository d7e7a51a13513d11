"""What DQN, SAC and TD3 share, called visibly from each algorithm's ``train()``: building the
env/replay buffer/session, the act–store–update loop with logging and checkpoint hooks, the
checkpoint state (networks, optimizers, RNGs, env snapshots, the replay buffer — so ``--resume``
continues bit for bit). The acting ``OffPolicyAgent`` lives in ``algos/agent.py``.

This is plumbing, not a base class: networks, losses and update rules stay in each algorithm's file.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ..config import ConfigError
from ..core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..core import allocator, optim
from ..core.guards import NonFiniteError, check_array, check_module
from ..core.logging import Logger, NullLogger
from ..core.replay import Batch as ReplayBatch, ReplayBuffer
from ..core.seeding import seed_everything, spawn_seeds, torch_generator
from ..core.vec import make_vec_env, space_spec
from .agent import OffPolicyAgent, scale_actions, to_tensor

LIBRARY_VERSION = "0.1.0"
_POINT_TO = {"discrete": "dqn", "box": "sac or td3"}


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


def adam(params, lr: float, eps: float) -> optim.Adam:
    """``core.optim.Adam``: torch's fused Adam kernel without ``torch.optim``'s per-step wrappers
    (~3× faster than the default per-tensor loop for these MLPs on CPU, and as deterministic)."""
    return optim.Adam(params, lr=lr, eps=eps)


def tensor_batch(b: ReplayBatch, device: torch.device) -> dict[str, torch.Tensor]:
    """A sampled ``Batch`` as tensors (one ``from_numpy`` per field, no copies on CPU)."""
    return {"obs": to_tensor(b.obs, device), "actions": torch.from_numpy(b.actions).to(device),
            "returns": torch.from_numpy(b.returns).to(device), "discounts": torch.from_numpy(b.discounts).to(device),
            "next_obs": to_tensor(b.next_obs, device), "weights": torch.from_numpy(b.weights).to(device)}


# ---------------------------------------------------------------------------------------------
# session: everything a running off-policy training holds
# ---------------------------------------------------------------------------------------------


@dataclass
class Session:
    algo: str
    env_id: str
    config: Any
    seed: int
    total_steps: int
    device: torch.device
    spec: dict[str, Any]
    net: dict[str, Any]
    venv: Any
    buffer: ReplayBuffer
    rng: np.random.Generator  # exploration and minibatch sampling
    generator: torch.Generator  # policy noise
    modules: dict[str, nn.Module] = field(default_factory=dict)
    optimizers: dict[str, optim.Adam] = field(default_factory=dict)
    actor: str = "actor"  # the module the Agent acts with
    obs: np.ndarray | None = None  # current observations (N, obs_dim), storage dtype
    global_step: int = 0  # environment steps (all envs)
    iteration: int = 0  # vector-env steps
    n_updates: int = 0  # gradient steps
    vars: dict[str, Any] = field(default_factory=dict)  # algorithm counters (JSON, checkpointed)
    cache: dict[str, Any] = field(default_factory=dict)  # derived, rebuilt on demand (not checkpointed)
    recent: deque = field(default_factory=lambda: deque(maxlen=20))
    exact_resume: bool = True

    def agent(self) -> "OffPolicyAgent":
        return OffPolicyAgent(self.algo, self.env_id, self.config, self.modules[self.actor], self.spec, self.net,
                              meta={"global_step": self.global_step, "seed": self.seed,
                                    "library_version": LIBRARY_VERSION})


def build_session(algo: str, env_id: str, cfg: Any, *, seed: int, total_steps: int, device: str, action: str,
                  act_dtype: Any) -> Session:
    """Envs, replay buffer and RNGs for ``cfg`` (which has n_envs, buffer_size, gamma, n_step?,
    prioritized?, per_alpha?); ``action`` is the action space the algorithm needs."""
    if total_steps < 1:
        raise ConfigError(f"total_steps={total_steps} is out of range: allowed [1, inf)")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but torch.cuda.is_available() is False; use --device cpu")
    root = seed_everything(seed)
    env_seed, torch_seed, np_seed = spawn_seeds(root, 3)
    venv = make_vec_env(env_id, cfg.n_envs, [env_seed + i for i in range(cfg.n_envs)], kind="lean")
    space = venv.single_action_space
    kind = "discrete" if isinstance(space, gym.spaces.Discrete) else "box" if isinstance(space, gym.spaces.Box) else None
    if kind != action:
        venv.close()
        hint = f"; use {_POINT_TO[kind]} for it" if kind else ""
        raise ConfigError(f"{algo} needs a {'Discrete' if action == 'discrete' else 'Box'} action space, but "
                          f"{env_id} has {space}{hint}")
    if kind == "box" and not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        venv.close()
        raise ConfigError(f"{env_id}: Box action space {space} must have finite bounds for {algo}")
    spec = space_spec(venv.single_observation_space, space)
    obs_space = venv.single_observation_space
    spec["obs_dtype"] = "uint8" if getattr(obs_space, "dtype", None) == np.uint8 else "float32"
    act_shape = () if kind == "discrete" else (spec["act_dim"],)
    buffer = ReplayBuffer(cfg.buffer_size, cfg.n_envs, (spec["obs_dim"],), obs_dtype=np.dtype(spec["obs_dtype"]),
                          act_shape=act_shape, act_dtype=act_dtype, n_step=getattr(cfg, "n_step", 1),
                          gamma=cfg.gamma, prioritized=getattr(cfg, "prioritized", False),
                          alpha=getattr(cfg, "per_alpha", 0.6))
    s = Session(algo, env_id, cfg, int(seed), int(total_steps), dev, spec, {}, venv, buffer,
                np.random.default_rng(np_seed), torch_generator(torch_seed, dev))
    s.obs = _receive(s, venv.reset())
    return s


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


def run(s: Session, act: ActFn, train_round: TrainFn, *, logger: Logger | None = None,
        checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0, log_every: int = 1000,
        callback: Callable[[Session], bool] | None = None, stop_at: int | None = None) -> "OffPolicyAgent":
    """Act → store → (every ``train_freq`` vector steps after ``learning_starts``) ``train_round(s,
    gradient_steps)``, until ``total_steps`` (or ``stop_at``) env steps. Metrics stay tensors until a
    log line is written (no per-step sync); losses are checked for NaN/inf there and before every
    checkpoint. ``callback(s)`` runs after each step, excluded from ``perf/sps``, and may stop the run."""
    # Adam's second-moment estimates decay into the denormal range, where x86 float arithmetic is
    # 10-100x slower (measured: the fused Adam step went from ~440 µs to ~55 µs on DQN's 256x256 net);
    # flushing denormals to zero is deterministic; torch's default (off) is restored at the end
    ftz = torch.set_flush_denormal(True)
    allocator.retain_freed_memory()  # no page faults on each update's temporaries (core/allocator.py)
    try:
        return _loop(s, act, train_round, logger or NullLogger(), checkpoint_dir, checkpoint_every, log_every,
                     callback, stop_at)
    finally:
        if ftz:
            torch.set_flush_denormal(False)
        # SAC's and TD3's rounds run in inference mode, so the gradients they leave in ``.grad`` are
        # inference tensors, which a later autograd ``backward`` on these modules could not add to
        for m in s.modules.values():
            for p in m.parameters():
                p.grad = None


def _loop(s: Session, act: ActFn, train_round: TrainFn, logger: Logger, checkpoint_dir: str | Path | None,
          checkpoint_every: int, log_every: int, callback: Callable[[Session], bool] | None,
          stop_at: int | None) -> "OffPolicyAgent":
    cfg = s.config
    N = s.venv.num_envs
    end = s.total_steps if stop_at is None else min(stop_at, s.total_steps)
    train_time, last_logged = 0.0, s.global_step
    sps_steps, sps_time, sps_updates = 0, 0.0, 0
    metrics: Metrics = {}
    while s.global_step < end:
        t0 = time.perf_counter()
        prev = s.global_step
        actions = random_actions(s) if s.global_step < cfg.learning_starts else act(s, s.obs)
        raw, rewards, term, trunc, final, episodes = s.venv.step(env_actions(s, actions))
        s.global_step += N
        s.iteration += 1
        check_array("reward", rewards, f"from the environment at step {s.global_step}")
        nxt = _receive(s, raw)
        real_next = nxt
        done = term | trunc
        if done.any():  # the buffer needs the true final observation of each finished episode
            check_array("observation", final[done], f"(final) from the environment at step {s.global_step}")
            real_next = nxt.copy()
            real_next[done] = final[done]
        s.buffer.add(s.obs, actions, rewards, real_next, term, trunc)
        s.obs = nxt
        for ret, _ in episodes:
            s.recent.append(ret)
        if s.global_step > cfg.learning_starts and s.iteration % cfg.train_freq == 0:
            before = s.n_updates
            metrics = train_round(s, cfg.gradient_steps)
            sps_updates += s.n_updates - before
        dt = time.perf_counter() - t0
        train_time += dt
        sps_steps += s.global_step - prev
        sps_time += dt
        step = s.global_step
        if step - last_logged >= log_every or step >= end:
            if callable(metrics):
                metrics = metrics()
            out = {k: float(v) for k, v in metrics.items()}
            for k, v in out.items():
                if k.startswith("losses/") and not math.isfinite(v):
                    raise NonFiniteError("loss", f"{k} = {v} at step {step}")
            check_module("parameter", s.modules[s.actor])
            out["charts/episodic_return"] = float(np.mean(s.recent)) if s.recent else float("nan")
            out["perf/sps"] = sps_steps / max(sps_time, 1e-9)
            out["perf/ups"] = sps_updates / max(sps_time, 1e-9)
            logger.log(step, out)
            last_logged, sps_steps, sps_time, sps_updates = step, 0, 0.0, 0
        if checkpoint_dir is not None and (
            (checkpoint_every and step // checkpoint_every > prev // checkpoint_every) or step >= end
        ):
            for m in s.modules.values():
                check_module("parameter", m)
            tensors, state = session_state(s)
            save_checkpoint(checkpoint_dir, step, tensors, state, buffer_state(s))
        if callback is not None and callback(s):
            break
    agent = s.agent()
    agent.meta["train_seconds"] = train_time
    agent.meta["n_updates"] = s.n_updates
    return agent


# ---------------------------------------------------------------------------------------------
# checkpoint state
# ---------------------------------------------------------------------------------------------


def session_state(s: Session) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    for name, m in s.modules.items():
        tensors.update({f"{name}/{k}": v for k, v in m.state_dict().items()})
    for oname, opt in s.optimizers.items():
        tensors.update({f"optim/{oname}/{k}": v for k, v in opt.state_dict().items()})
    tensors["rng/torch"] = s.generator.get_state()
    tensors["rng/torch_global"] = torch.get_rng_state()
    state = {
        "agent": s.agent().state(),
        "train": {"algo": s.algo, "env_id": s.env_id, "seed": s.seed, "total_steps": s.total_steps,
                  "iteration": s.iteration, "n_updates": s.n_updates, "vars": s.vars, "recent": list(s.recent),
                  "lr": {k: o.param_groups[0]["lr"] for k, o in s.optimizers.items()},
                  "rng_numpy": s.rng.bit_generator.state, "device": str(s.device)},
        "sampler": {"global_step": s.global_step, "venv": s.venv.get_state()},
        "library_version": LIBRARY_VERSION,
    }
    return tensors, state


def buffer_state(s: Session) -> dict[str, np.ndarray]:
    return {**{f"replay/{k}": v for k, v in s.buffer.state_dict().items()}, "current_obs": s.obs}


def restore_session(s: Session, path: str | Path) -> Path:
    """Load a training checkpoint written by ``run`` into ``s`` (which was built with the same
    config and seed). Envs whose state is not plain data (Box2D, MuJoCo) restart with fresh seeded
    episodes; the newest stored step is then marked truncated so no transition links across."""
    tensors, state, buffer, ckpt = load_checkpoint(path, device="cpu")
    if "train" not in state or buffer is None:
        raise CheckpointError(f"{ckpt / 'state.json'}: an agent checkpoint, not an off-policy training checkpoint")
    tr = state["train"]
    if tr.get("algo") != s.algo:
        raise CheckpointError(f"{ckpt / 'state.json'}: a {tr.get('algo')} checkpoint, not {s.algo}")
    try:
        for name, m in s.modules.items():
            m.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + "/")})
        for oname, opt in s.optimizers.items():
            pre = f"optim/{oname}/"
            opt.load_state_dict({k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre)})
            opt.param_groups[0]["lr"] = float(tr["lr"][oname])
        s.buffer.load_state_dict({k[7:]: v for k, v in buffer.items() if k.startswith("replay/")})
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{ckpt}: does not match this {s.algo} configuration ({exc})") from None
    s.generator.set_state(tensors["rng/torch"].to(torch.uint8))
    torch.set_rng_state(tensors["rng/torch_global"].to(torch.uint8))
    s.rng.bit_generator.state = tr["rng_numpy"]
    s.iteration, s.n_updates, s.vars = int(tr["iteration"]), int(tr["n_updates"]), dict(tr["vars"])
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
