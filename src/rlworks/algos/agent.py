"""The trained policy a user holds: ``act``, ``evaluate``, ``save``; ``load_agent`` reads it back.

Two kinds with one interface: ``Agent`` (PPO, A2C, REINFORCE: an actor-critic MLP acting in numpy,
with its observation statistics) and ``OffPolicyAgent`` (DQN, SAC, TD3: the algorithm's own torch
actor). Either is the acting half only (network, observation statistics, action space); learning
state (optimizer, RNG, env snapshots, replay buffer) lives in training checkpoints, which are also
loadable as agents.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import ConfigError, from_saved
from ..core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..core.envs import EnvSource, env_source, wrapper_names
from ..core.evaluation import EvalResult, evaluate
from ..core.features import build_encoder
from ..core.nets import ActorCritic, NumpyActor
from ..core.sde import EPS as SDE_EPS
from ..core.vec import ObsNormalizer
from . import OFFLINE_ALGOS, OFFPOLICY_ALGOS, REGISTRY, SEARCH_ALGOS

AGENT_FORMAT = "rlworks.agent/1"
OFFPOLICY_AGENT_FORMAT = "rlworks.offpolicy-agent/1"


def build_model(spec: dict[str, Any], net: dict[str, Any]) -> ActorCritic:
    """The actor-critic ``net`` describes (``onpolicy.network``); a ``net`` saved before the network options
    (no ``features``, ``actor_hidden``, ...) builds the separate MLPs it was."""
    kind = net.get("features", "mlp")
    return ActorCritic(spec["obs_dim"], spec["act_dim"], continuous=spec["action"] == "box",
                       hidden=tuple(net["hidden"]), activation=net["activation"], layer_norm=net["layer_norm"],
                       ortho_init=net.get("ortho_init", True), log_std_init=net.get("log_std_init", 0.0),
                       critic=net["critic"], sde=net.get("sde", False), actor_hidden=net.get("actor_hidden"),
                       critic_hidden=net.get("critic_hidden"), shared_trunk=net.get("shared_trunk", False),
                       make_encoder=None if kind == "mlp" else lambda: build_encoder(kind, spec))


def as_batch(obs: Any, spec: dict[str, Any]) -> tuple[np.ndarray, bool]:
    """``obs`` (one observation as the env returns it, or a batch of them on the first axis) as a flat
    (B, obs_dim) array, and whether it was a single one."""
    x = np.asarray(obs)
    shape = tuple(spec.get("obs_shape") or ())
    if shape and x.shape == shape:
        single = True
    elif shape and x.shape[1:] == shape:
        single = False
    else:  # a spec saved before obs_shape was recorded
        single = x.ndim <= 1 or (x.size == spec["obs_dim"] and x.ndim != 2)
    return x.reshape(1 if single else x.shape[0], spec["obs_dim"]), single


class _AgentCommon:
    """What both agents share on top of their own ``act`` and ``state``: evaluation, saving, repr.
    ``TENSORS`` names the checkpoint's weight prefix (``model/`` or ``actor/``)."""

    TENSORS = "model"

    def __init__(self, algo: str, env_id: str | None, config: Any, model: nn.Module, spec: dict[str, Any],
                 net: dict[str, Any], env_kwargs: dict[str, Any] | None = None,
                 meta: dict[str, Any] | None = None, *, env: Any = None) -> None:
        self.algo, self.config, self.model = algo, config, model
        self.spec, self.net = spec, dict(net)
        self._bind_env(env_id, env_kwargs, env)
        self.meta = dict(meta or {})
        self._gen = torch.Generator().manual_seed(0)  # sampled actions (deterministic=False)

    def _bind_env(self, env_id: str | None, env_kwargs: dict[str, Any] | None, env: Any) -> None:
        """``env``: the training run's ``EnvSource``, or the JSON record a checkpoint kept of it (None:
        an older checkpoint, which knew only ``env_id`` and ``env_kwargs``)."""
        if isinstance(env, EnvSource):
            self.env, self.env_record = env, env.record()
        else:
            self.env_record = dict(env) if env else {"form": "id", "id": env_id, "what": env_id, "wrappers": [],
                                                      "kwargs": dict(env_kwargs or {}), "rebuildable": bool(env_id)}
            self.env = EnvSource.from_record(self.env_record)
        self.env_id = self.env_record.get("id")
        self.env_kwargs = dict(self.env_record.get("kwargs") or {})

    def evaluate(self, episodes: int = 10, seed: int | None = None, env: Any = None, *,
                 video: str | Path | None = None, deterministic: bool = True) -> EvalResult:
        """Mean and std of the return over ``episodes`` episodes (deterministic actions by default), on
        the env the agent was trained on, rebuilt — or on ``env`` (an env instance, played as it is, or a
        zero-argument factory), to which the training run's named wrappers are applied. ``env`` is needed
        where the agent cannot rebuild its env: trained on an instance without a spec or on a factory,
        then saved and loaded (a factory is never pickled)."""
        if env is not None:
            wrappers = ([w for _, w in self.env.wrappers] if self.env is not None
                        else [w for w in self.env_record.get("wrappers", []) if w in wrapper_names()])
            source = env_source(env, wrappers=wrappers).for_evaluation()
        elif self.env is None or not self.env.copyable:
            what = self.env_record.get("what") or "an unrecorded env"
            raise ConfigError(f"{self!r} cannot rebuild its env ({what}); pass env= to evaluate: a gymnasium.Env "
                              "or a zero-argument factory returning one")
        else:
            source = self.env.for_evaluation()  # e.g. Atari: whole games, the true score (core/atari.py)
        return evaluate(lambda o: self.act(o, deterministic), source, episodes, seed=seed, video=video)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[Any, None]:
        """Stable-Baselines3's call: ``(action, None)``. Like SB3, ``deterministic`` defaults to False
        (``act`` defaults to True); ``state`` and ``episode_start`` exist for recurrent policies and are
        ignored (none of these policies is recurrent), so SB3 code runs unchanged."""
        if state is not None:
            raise ConfigError("predict(state=...) is for recurrent policies; this policy has no recurrent state")
        return self.act(observation, deterministic), None

    def save(self, path: str | Path, *, keep: int | None = None) -> Path:
        """Write the agent as a checkpoint directory (``path/step-<N>/`` + ``path/latest``); ``keep``
        keeps only that many newest step directories there."""
        tensors = {f"{self.TENSORS}/{k}": v for k, v in self.model.state_dict().items()}
        return save_checkpoint(path, int(self.meta.get("global_step", 0)), tensors, {"agent": self.state()}, keep=keep)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.algo!r}, {self.env_id!r}, steps={self.meta.get('global_step', 0)})"


class Agent(_AgentCommon):
    """A policy for ``env_id``. ``act(obs)`` takes one observation (or a batch, first axis) as the
    env returns it and gives an action the env accepts."""

    def __init__(self, algo: str, env_id: str | None, config: Any, model: ActorCritic, spec: dict[str, Any],
                 net: dict[str, Any], obs_norm: dict[str, Any] | None = None,
                 env_kwargs: dict[str, Any] | None = None, meta: dict[str, Any] | None = None, *,
                 env: Any = None) -> None:
        super().__init__(algo, env_id, config, model, spec, net, env_kwargs, meta, env=env)
        self.obs_norm_state = copy.deepcopy(obs_norm)
        self._norm = None
        if obs_norm is not None:
            self._norm = ObsNormalizer(spec["obs_dim"])
            self._norm.load_state_dict(obs_norm)
        self._np_actor: NumpyActor | None = None
        self._rng = np.random.default_rng(0)
        if spec["action"] == "box":
            self._low = np.asarray(spec["low"])
            self._high = np.asarray(spec["high"])
            self._log_std = model.log_std.detach().cpu().double().numpy()

    # -- acting ---------------------------------------------------------------------------------
    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """Action for one observation (or an array of actions for a batch of them)."""
        x, single = as_batch(obs, self.spec)
        if not self.model.plain:  # a feature extractor (CNN) or a shared trunk: the torch module acts
            out, h = self._torch_actor(x)
        else:
            x = x.astype(np.float64)
            if self._norm is not None:
                x = self._norm(x)
            if self._np_actor is None:
                self._np_actor = NumpyActor(self.model)
            out = self._np_actor(x)  # (B, act_dim): logits or means
        if self.spec["action"] == "discrete":
            if deterministic:
                a = out.argmax(-1)
            else:
                p = np.exp(out - out.max(-1, keepdims=True))
                p /= p.sum(-1, keepdims=True)
                a = (p.cumsum(-1) < self._rng.random((p.shape[0], 1))).sum(-1).clip(max=p.shape[-1] - 1)
            a = a + self.spec["act_start"]
            return int(a[0]) if single else a
        if not deterministic and self.model.sde:  # gSDE marginal: N(μ, σ(s)²) (core.sde)
            h = self._np_actor.features(x)[1] if self.model.plain else h
            std = np.sqrt((h * h) @ np.exp(2.0 * self._log_std) + SDE_EPS)
            out = out + self._rng.standard_normal(out.shape) * std
        elif not deterministic:
            out = out + self._rng.standard_normal(out.shape) * np.exp(self._log_std)
        a = np.clip(out, self._low, self._high).astype(np.float32)
        return a[0].reshape(self.spec["act_shape"]) if single else a.reshape((-1, *self.spec["act_shape"]))

    def _torch_actor(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(actor output, last hidden features) in float64, from the torch module; pixels go in as bytes."""
        if x.dtype != np.uint8:
            x = x.astype(np.float32)
            if self._norm is not None:
                x = self._norm(x).astype(np.float32)
        with torch.inference_mode():
            t = torch.from_numpy(np.require(x, requirements=["C", "W"])).to(self._device)
            out, h = self.model.actor_features(t)
            return out.double().cpu().numpy(), h.double().cpu().numpy()

    @property
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- persistence ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"format": AGENT_FORMAT, "algo": self.algo, "env_id": self.env_id, "env_kwargs": self.env_kwargs,
                "env": self.env_record, "config": dataclasses.asdict(self.config), "spec": self.spec,
                "net": self.net, "obs_norm": self.obs_norm_state, "meta": self.meta}


def to_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """One ``from_numpy`` per batch; uint8 images become floats in [0, 1] only here."""
    t = torch.from_numpy(x)
    if t.dtype == torch.uint8:
        return t.to(device).float().div_(255.0)
    return t.to(device, torch.float32) if t.dtype != torch.float32 else t.to(device)


def scale_actions(a: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """[-1, 1] → the Box bounds (SAC and TD3 act, and store actions, in [-1, 1])."""
    low, high = np.asarray(spec["low"], np.float32), np.asarray(spec["high"], np.float32)
    return low + (a + 1.0) * 0.5 * (high - low)


# ---------------------------------------------------------------------------------------------
# the off-policy agent (DQN, SAC, TD3): the same interface, a torch actor
# ---------------------------------------------------------------------------------------------


class OffPolicyAgent(_AgentCommon):
    """A trained DQN/SAC/TD3 policy: ``act(obs, deterministic=True)``, ``evaluate``, ``save``.

    The actor module (DQN's Q-network, SAC's squashed-Gaussian actor, TD3's deterministic actor)
    implements ``act(obs_tensor, deterministic, generator) -> actions`` in [-1, 1] (Box) or
    indices (Discrete); actions are rescaled to the env's bounds here."""

    TENSORS = "actor"

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """Action for one observation (or an array of actions for a batch of them)."""
        x, single = as_batch(obs, self.spec)
        x = x.astype(np.dtype(self.spec.get("obs_dtype", "float32")), copy=False)
        with torch.inference_mode():
            a = self.model.act(to_tensor(x, next(self.model.parameters()).device), deterministic, self._gen)
            a = a.cpu().numpy()
        if self.spec["action"] == "discrete":
            a = a + self.spec["act_start"]
            return int(a[0]) if single else a
        a = scale_actions(a.astype(np.float32), self.spec)
        return a[0].reshape(self.spec["act_shape"]) if single else a.reshape((-1, *self.spec["act_shape"]))

    def state(self) -> dict[str, Any]:
        return {"format": OFFPOLICY_AGENT_FORMAT, "algo": self.algo, "env_id": self.env_id,
                "env_kwargs": self.env_kwargs, "env": self.env_record, "config": dataclasses.asdict(self.config),
                "spec": self.spec, "net": self.net, "meta": self.meta}


def offpolicy_agent_from_checkpoint(tensors: dict[str, torch.Tensor], state: dict[str, Any], ckpt: Path,
                          device: str = "cpu") -> OffPolicyAgent:
    a = state.get("agent")
    mod = REGISTRY[a["algo"]].load_module() if isinstance(a, dict) and a.get("algo") in OFFPOLICY_ALGOS + \
        OFFLINE_ALGOS + SEARCH_ALGOS else None  # the registry maps a name (bootstrapped-dqn) to its file
    agent_class = getattr(mod, "AGENT", OffPolicyAgent)  # the Decision Transformer's keeps a context as it acts
    if mod is None or a.get("format") != getattr(agent_class, "FORMAT", OFFPOLICY_AGENT_FORMAT):
        raise CheckpointError(f"{ckpt / 'state.json'}: not an rlworks off-policy agent checkpoint")
    cfg = from_saved(mod.CONFIG, a["config"], ckpt / "state.json")
    model = mod.build_actor(a["spec"], a["net"], cfg).to(device)
    # an offline training checkpoint holds the acting module as "agent/" (beside the raw networks it trains);
    # an off-policy one names it after its role (q, actor); an agent save uses "actor/"
    names = {k.split("/", 1)[0] for k in tensors}
    prefix = next(f"{p}/" for p in ("agent", "actor", mod.ACTOR) if p in names or p == mod.ACTOR)
    try:
        model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    except RuntimeError as exc:
        raise CheckpointError(f"{ckpt / 'model.safetensors'}: weights do not fit the saved network ({exc})") from None
    model.eval()
    return agent_class(a["algo"], a["env_id"], cfg, model, a["spec"], a["net"], a["env_kwargs"], a["meta"],
                       env=a.get("env"))


def load_agent(path: str | Path, device: str = "cpu") -> Agent | OffPolicyAgent:
    """Load an agent from an agent dir, a run dir, a ``checkpoints`` dir or a ``step-N`` dir."""
    from . import config_class  # the registry maps algo name -> config dataclass

    tensors, state, _, ckpt = load_checkpoint(path, device=device)
    a = state.get("agent")
    if isinstance(a, dict) and (a.get("format") == OFFPOLICY_AGENT_FORMAT or a.get("algo") in OFFLINE_ALGOS):
        return offpolicy_agent_from_checkpoint(tensors, state, ckpt, device)
    if not isinstance(a, dict) or a.get("format") != AGENT_FORMAT:
        raise CheckpointError(f"{ckpt / 'state.json'}: not an rlworks deep-RL agent checkpoint")
    model = build_model(a["spec"], a["net"]).to(device)
    model.load_state_dict({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
    model.eval()
    cfg = from_saved(config_class(a["algo"]), a["config"], ckpt / "state.json")
    return Agent(a["algo"], a["env_id"], cfg, model, a["spec"], a["net"], a["obs_norm"], a["env_kwargs"], a["meta"],
                 env=a.get("env"))
