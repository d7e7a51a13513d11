"""Vector environments, space checks, running observation normalisation and reward scaling.

Every vector env here follows gymnasium 1.x's SAME_STEP autoreset semantics: the step that ends an
episode returns the *reset* observation of the next episode, and ``final_obs`` carries the last
observation of the finished one so a truncated episode can be bootstrapped from it (terminated
ones are not). ``LeanVecEnv`` is a plain loop over envs (gymnasium's SyncVectorEnv adds ~30 %
per step on CartPole through info merging); ``GymVecEnv`` wraps ``gymnasium.vector`` (sync or
async, i.e. one process per env) with ``AutoresetMode.SAME_STEP``, or a user's own ``VectorEnv``.
Where the envs come from (an id, an instance, a factory) is ``core/envs.py``'s ``EnvSource``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from ..config import ConfigError, check_choice
from .envs import FLATTENED, env_source
from .envs import check_env_id as check_env_id  # re-exported: the CLI checks --env with it
from .features import image_layout
from .snapshot import env_restore, env_snapshot

# ---------------------------------------------------------------------------------------------
# making and checking single envs
# ---------------------------------------------------------------------------------------------


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, render_mode: str | None = None) -> gym.Env:
    """``gym.make`` plus flattening of Dict/Tuple/Discrete observations into a float vector."""
    return env_source(env_id, env_kwargs).make(render_mode)


def check_action_space(env_id: str, space: gym.Space, algo: str) -> None:
    if not isinstance(space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise ConfigError(f"{algo} cannot handle the action space {space} of {env_id}: "
                          "allowed are Discrete and Box")
    if isinstance(space, gym.spaces.Box) and not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ConfigError(f"{env_id}: Box action space {space} must have finite bounds")


def space_spec(obs_space: gym.Space, act_space: gym.Space) -> dict[str, Any]:
    """A JSON description of the (flattened) spaces, saved with the model: ``obs_dim`` (the stored flat
    size), ``obs_shape`` and ``obs_dtype`` (uint8 or float32), ``layout`` of an image-shaped observation
    (``core.features.image_layout``; None otherwise), and the action space."""
    spec: dict[str, Any] = {"obs_dim": int(np.prod(obs_space.shape)), "obs_shape": [int(d) for d in obs_space.shape],
                            "obs_dtype": "uint8" if getattr(obs_space, "dtype", None) == np.uint8 else "float32",
                            "layout": image_layout(obs_space.shape)}
    if isinstance(act_space, gym.spaces.Discrete):
        spec.update(action="discrete", act_dim=int(act_space.n), act_start=int(act_space.start))
    else:
        spec.update(action="box", act_dim=int(np.prod(act_space.shape)), act_shape=list(act_space.shape),
                    low=act_space.low.astype(float).ravel().tolist(),
                    high=act_space.high.astype(float).ravel().tolist())
    return spec


# ---------------------------------------------------------------------------------------------
# vector envs
# ---------------------------------------------------------------------------------------------


def _keeps_record(env: gym.Env) -> bool:
    """Whether ``env`` logs its episodes itself, also where they do not end with the learner's: a wrapper
    says so with ``keeps_episode_record = True`` (the atari wrapper: a game over several lives)."""
    try:
        return bool(env.get_wrapper_attr("keeps_episode_record"))
    except AttributeError:
        return False


def _log_episode(venv: Any, episodes: list, i: int, record: dict[str, Any] | None) -> None:
    """Append env ``i``'s finished episode to ``episodes``: the env's own record where it keeps one
    (gymnasium's ``info["episode"]``, as RecordEpisodeStatistics writes it, and as the atari wrapper does
    at the end of a game, with the true score); an env that keeps one is logged only by it (a lost life
    ends the learner's episode, not the game); else the return and length counted here."""
    if record is not None:
        venv.reports[i] = True
        episodes.append((float(record["r"]), int(record["l"])))
    elif not venv.reports[i]:
        episodes.append((float(venv.ep_returns[i]), int(venv.ep_lengths[i])))


class LeanVecEnv:
    """A minimal synchronous vector env: a Python loop over ``gym.Env`` objects, SAME_STEP autoreset."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]], seeds: list[int]) -> None:
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.seeds = list(seeds)
        self.obs_dim = int(np.prod(self.single_observation_space.shape))
        self.obs_dtype = np.dtype(np.float64)
        """observations are returned as float64, or as uint8 where the caller sets it (pixels kept as bytes)"""
        self._obs = np.zeros((self.num_envs, self.obs_dim), dtype=self.obs_dtype)
        self.ep_returns = np.zeros(self.num_envs)
        self.ep_lengths = np.zeros(self.num_envs, dtype=np.int64)
        self.reports = np.array([_keeps_record(e) for e in self.envs], dtype=bool)  # (_log_episode)

    def reset(self) -> np.ndarray:
        self._obs = np.zeros((self.num_envs, self.obs_dim), dtype=self.obs_dtype)
        for i, env in enumerate(self.envs):
            o, _ = env.reset(seed=self.seeds[i])
            self._obs[i] = np.ravel(o)
        self.ep_returns[:] = 0
        self.ep_lengths[:] = 0
        return self._obs.copy()

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
        """``(obs, rewards, terminations, truncations, final_obs, episodes)``; ``final_obs[i]`` is
        meaningful where the episode ended; ``episodes`` lists ``(return, length)`` of finished ones."""
        n = self.num_envs
        obs = np.empty((n, self.obs_dim), self.obs_dtype)
        final = np.zeros((n, self.obs_dim), self.obs_dtype)
        rew = np.empty(n)
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        episodes = []
        for i, env in enumerate(self.envs):
            o, r, te, tr, info = env.step(actions[i])
            rew[i] = r
            self.ep_returns[i] += r
            self.ep_lengths[i] += 1
            if te or tr:
                term[i], trunc[i] = te, tr and not te
                final[i] = np.ravel(o)
                _log_episode(self, episodes, i, info.get("episode"))
                self.ep_returns[i] = 0.0
                self.ep_lengths[i] = 0
                o, _ = env.reset()
            obs[i] = np.ravel(o)
        self._obs = obs
        return obs, rew, term, trunc, final, episodes

    def get_state(self) -> dict[str, Any]:
        snaps = [env_snapshot(e) for e in self.envs]
        exact = all(s[1] for s in snaps)  # the envs' state and observations are needed (and stored) only then
        return {"envs": [s[0] for s in snaps] if exact else None, "exact": exact,
                "obs": self._obs.tolist() if exact else None,
                "ep_returns": self.ep_returns.tolist(), "ep_lengths": self.ep_lengths.tolist()}

    def set_state(self, state: dict[str, Any], reseed: int | None = None) -> np.ndarray:
        """Restore a ``get_state`` snapshot; where it was not exact, start fresh episodes seeded by
        ``reseed`` instead (deterministic, but not identical to an uninterrupted run)."""
        if state.get("exact") and reseed is None:
            for env, layers in zip(self.envs, state["envs"]):
                env_restore(env, layers)
            self._obs = np.asarray(state["obs"], dtype=self.obs_dtype)
            self.ep_returns = np.asarray(state["ep_returns"], dtype=np.float64)
            self.ep_lengths = np.asarray(state["ep_lengths"], dtype=np.int64)
            return self._obs.copy()
        self.seeds = [int(reseed or 0) + i for i in range(self.num_envs)]
        return self.reset()

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _ignoring_sigint(make: Callable[[], gym.Env]) -> gym.Env:
    """Run in an async worker process before it makes its env: ignore SIGINT there. A terminal's Ctrl+C
    goes to every process of the group; a worker that died of it would leave the trainer unable to
    finish its step and write the checkpoint it is stopping for (core/run.py StopSignals). The
    trainer closes the workers itself."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return make()


class GymVecEnv:
    """``gymnasium.vector.SyncVectorEnv``/``AsyncVectorEnv`` with SAME_STEP autoreset, same interface as
    ``LeanVecEnv``. Async runs each env in its own process (worth it for slow envs, e.g. MuJoCo).
    ``GymVecEnv.adopt`` wraps a user's own ``VectorEnv`` instead."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]], seeds: list[int], kind: str = "sync") -> None:
        if kind == "async":  # Ctrl+C reaches the whole process group: only the trainer should act on it
            env_fns = [functools.partial(_ignoring_sigint, fn) for fn in env_fns]
        cls = gym.vector.AsyncVectorEnv if kind == "async" else gym.vector.SyncVectorEnv
        self._attach(cls(env_fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP), seeds)

    @classmethod
    def adopt(cls, venv: Any, seeds: list[int]) -> GymVecEnv:
        """A user's ``VectorEnv`` as it is (its wrappers, its env count). SAME_STEP autoreset passes
        through; DISABLED is reset here (``reset_mask``) at the step that ends an episode. NEXT_STEP is
        refused: its reset step takes an action and returns a reward-0 transition from the last
        observation of one episode to the first of the next, which a fixed-shape rollout cannot drop."""
        modes = gym.vector.AutoresetMode
        raw = venv.metadata.get("autoreset_mode", modes.NEXT_STEP)  # gymnasium's default when unset
        try:
            mode = modes(raw)
        except ValueError:
            mode = None
        if mode not in (modes.SAME_STEP, modes.DISABLED):
            raise ConfigError(f"the {type(venv).__name__} resets with autoreset_mode={raw!s}; rlworks needs SAME_STEP "
                              "or DISABLED: make it with gymnasium.make_vec(ID, num_envs=N, vectorization_mode='sync', "
                              "vector_kwargs={'autoreset_mode': gymnasium.vector.AutoresetMode.SAME_STEP}), or pass "
                              "the env id or a factory with n_envs=N")
        space = venv.single_observation_space
        if not isinstance(space, (gym.spaces.Box, *FLATTENED)):
            raise ConfigError(f"observation space {space} is not supported; use Box, Dict, Tuple or Discrete")
        self = cls.__new__(cls)
        self._attach(venv, seeds, mode)
        return self

    def _attach(self, venv: Any, seeds: list[int], mode: Any = gym.vector.AutoresetMode.SAME_STEP) -> None:
        self.venv, self.mode = venv, mode
        self.num_envs = self.venv.num_envs
        # Dict/Tuple/Discrete observations are flattened here, one env at a time: gymnasium's vector
        # FlattenObservation refuses SAME_STEP envs
        space = self.venv.single_observation_space
        self._structured = None if isinstance(space, gym.spaces.Box) else space
        self.single_observation_space = space if self._structured is None else gym.spaces.flatten_space(space)
        self.single_action_space = self.venv.single_action_space
        self.seeds = list(seeds)
        self.obs_dim = int(np.prod(self.single_observation_space.shape))
        self.obs_dtype = np.dtype(np.float64)  # as LeanVecEnv's
        self.ep_returns = np.zeros(self.num_envs)
        self.ep_lengths = np.zeros(self.num_envs, dtype=np.int64)
        # (_log_episode; an async env's workers are not asked: the first record it returns marks it)
        self.reports = np.array([_keeps_record(e) for e in getattr(self.venv, "envs", ())] or [False] * self.num_envs,
                                dtype=bool)

    def reset(self) -> np.ndarray:
        # the seeds are consecutive (seed + i), which is what every VectorEnv makes of one int seed
        obs, _ = self.venv.reset(seed=int(self.seeds[0]))
        self.ep_returns[:] = 0
        self.ep_lengths[:] = 0
        return self._batch(obs)

    def _batch(self, obs: Any) -> np.ndarray:
        if self._structured is not None:
            obs = [self._flat(o) for o in gym.vector.utils.iterate(self.venv.observation_space, obs)]
        return np.asarray(obs, dtype=self.obs_dtype).reshape(self.num_envs, -1)

    def _flat(self, one: Any) -> np.ndarray:
        return np.ravel(one if self._structured is None else gym.spaces.flatten(self._structured, one))

    def step(self, actions):
        obs, rew, term, trunc, info = self.venv.step(actions)
        obs = self._batch(obs)
        rew = np.asarray(rew, dtype=np.float64)
        term = np.asarray(term, dtype=bool)
        trunc = np.asarray(trunc, dtype=bool) & ~term
        final = np.zeros_like(obs)
        done = term | trunc
        self.ep_returns += rew
        self.ep_lengths += 1
        episodes = []
        if done.any():
            if self.mode == gym.vector.AutoresetMode.DISABLED:  # obs holds the last observations: reset those envs
                final[done] = obs[done]
                new, _ = self.venv.reset(options={"reset_mask": done})
                obs = self._batch(new)
            else:
                mask = info.get("_final_obs", done)
                for i in np.flatnonzero(done & mask):
                    final[i] = self._flat(info["final_obs"][i])
            # an env's own record of its episodes: per env (in final_info) or from a vector wrapper
            fin = info.get("final_info") if self.mode == gym.vector.AutoresetMode.SAME_STEP else info
            for where in (fin or {}, info):
                if "episode" in where and "_episode" in where:
                    rec, has = where["episode"], where["_episode"]
                    break
            else:
                rec, has = None, np.zeros(self.num_envs, dtype=bool)
            for i in np.flatnonzero(done):
                _log_episode(self, episodes, i, {"r": rec["r"][i], "l": rec["l"][i]} if has[i] else None)
            self.ep_returns[done] = 0.0
            self.ep_lengths[done] = 0
        return obs, rew, term, trunc, final, episodes

    def get_state(self) -> dict[str, Any]:
        return {"exact": False}

    def set_state(self, state: dict[str, Any], reseed: int | None = None) -> np.ndarray:
        self.seeds = [int(reseed or 0) + i for i in range(self.num_envs)]
        return self.reset()

    def close(self) -> None:
        self.venv.close()


def make_vec_env(env: Any, n_envs: int, seeds: list[int], kind: str = "lean",
                 env_kwargs: dict[str, Any] | None = None):
    """``n_envs`` envs from ``env`` (an id, an ``EnvSource`` or any form ``core.envs.env_source`` takes);
    ``kind`` is ``lean`` (default), ``sync`` or ``async``. A user's VectorEnv is used as it is (its own
    env count and kind); an env instance is the first env and the others are made from its spec."""
    check_choice("vec_env", kind, ("lean", "sync", "async"))
    source = env_source(env, env_kwargs)
    if source.vector is not None:
        if n_envs != source.num_envs:
            raise ConfigError(f"n_envs={n_envs} but {source.what} has {source.num_envs}; set n_envs={source.num_envs}")
        return GymVecEnv.adopt(source.vector, seeds)
    if n_envs > 1 and not source.copyable:
        raise ConfigError(f"n_envs={n_envs} needs {n_envs} envs, but {source.what} has no spec to make more from; "
                          "pass a zero-argument factory that returns a new env, or set n_envs=1")
    fns = [functools.partial(source.make, reuse=True) for _ in range(n_envs)]
    return LeanVecEnv(fns, seeds) if kind == "lean" else GymVecEnv(fns, seeds, kind)


# ---------------------------------------------------------------------------------------------
# running normalisation (statistics are part of the model: saved and loaded with it)
# ---------------------------------------------------------------------------------------------


class RunningMeanStd:
    """Streaming mean/variance (Chan et al. 1979 parallel update), float64."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape)
        self.var = np.ones(shape)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        b_mean, b_var, b_count = x.mean(0), x.var(0), x.shape[0]
        delta = b_mean - self.mean
        tot = self.count + b_count
        self.mean = self.mean + delta * b_count / tot
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / tot
        self.var = m2 / tot
        self.count = tot

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.mean = np.asarray(d["mean"], dtype=np.float64)
        self.var = np.asarray(d["var"], dtype=np.float64)
        self.count = float(d["count"])


class ObsNormalizer:
    """(obs − μ) / σ clipped to ±clip, μ and σ tracked online from training observations
    (Andrychowicz et al. 2021 §3.2 recommend it; Huang et al. 2022 continuous detail #4)."""

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        self.rms = RunningMeanStd((dim,))
        self.clip, self.eps = clip, eps

    def __call__(self, obs: np.ndarray, update: bool = False) -> np.ndarray:
        if update:
            self.rms.update(obs.reshape(-1, self.rms.mean.shape[0]))
        return np.clip((obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps), -self.clip, self.clip)

    def state_dict(self) -> dict[str, Any]:
        return {"rms": self.rms.state_dict(), "clip": self.clip, "eps": self.eps}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.rms.load_state_dict(d["rms"])
        self.clip, self.eps = float(d["clip"]), float(d["eps"])


class RewardScaler:
    """Divide rewards by the running std of the discounted return (Engstrom et al. 2020,
    "Implementation Matters in Deep Policy Gradients", §3; Huang et al. 2022 continuous detail #6)."""

    def __init__(self, n_envs: int, gamma: float, clip: float = 10.0, eps: float = 1e-8) -> None:
        self.rms = RunningMeanStd(())
        self.ret = np.zeros(n_envs)
        self.gamma, self.clip, self.eps = gamma, clip, eps

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        self.ret = self.ret * self.gamma + rewards
        self.rms.update(self.ret)
        out = np.clip(rewards / np.sqrt(self.rms.var + self.eps), -self.clip, self.clip)
        self.ret[dones] = 0.0
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"rms": self.rms.state_dict(), "ret": self.ret.tolist(), "gamma": self.gamma, "clip": self.clip}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.rms.load_state_dict(d["rms"])
        self.ret = np.asarray(d["ret"], dtype=np.float64)
        self.gamma, self.clip = float(d["gamma"]), float(d["clip"])
