"""Decision Transformer (Chen et al. 2021, "Decision Transformer: Reinforcement Learning via Sequence Modeling"):
offline RL as supervised sequence modelling. A trajectory is the token sequence (§3)

    τ = (R̂_1, s_1, a_1, R̂_2, s_2, a_2, …, R̂_T, s_T, a_T),     R̂_t = Σ_{t'=t}^{T} r_t'   (the return-to-go)

and a causal transformer over the last K steps (3K tokens) predicts a_t from the token of s_t, which sees
R̂_≤t, s_≤t and a_<t but nothing later (Algorithm 1):

* embeddings: a linear map per modality (R̂, s, a; a Discrete action by a lookup table) plus a learned
  embedding of the episode timestep t, added to each of t's three tokens, then LayerNorm (§3, "Architecture");
* a GPT (Radford et al. 2018): ``n_layer`` pre-LayerNorm blocks of causal multi-head self-attention and an MLP,
  softmax(Q Kᵀ / √d + M) V with M = −∞ above the diagonal and at the left padding of a short segment;
* loss: mean squared error on Box actions (the head ends in tanh, actions rescaled to [-1, 1]) or cross-entropy
  on Discrete ones, over every real (unpadded) step of each segment;
* AdamW (decoupled weight decay, Loshchilov & Hutter 2019) with a linear learning-rate warm-up and gradient
  norm clipping (the authors' Gym settings: Appendix A, Table 8).

Acting conditions on a target return: R̂_1 = ``target_return``, and after each reward R̂_{t+1} = R̂_t − r_t
(§3, "Evaluation"); the context is the last K (R̂, s, a). ``DTAgent.episode()`` keeps it; ``DTAgent.evaluate``
plays episodes with it. Returns-to-go enter the network divided by ``return_scale`` (the authors' ``scale``).

The GPT is rlworks' own (~60 lines below) rather than ``transformers.DecisionTransformerModel``: the only
dependency is torch, dropout draws from the run's seeded generator (so a resumed run is bit-exact), and the
attention mask is the paper's math in plain sight. Sequences are sampled by ``algos/offline.py``.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._version import __version__
from ..config import ConfigError, check_choice, check_range
from ..core.envs import env_source, wrapper_names
from ..core.evaluation import EvalResult, evaluate
from ..core.optim import Adam
from ..core.run import RunContext
from ..core.runtime import bf16_products
from ..core.seeding import seeded_init
from ..core.transformer import Block, dropout
from . import offline, segments
from .agent import _AgentCommon, as_batch, scale_actions


@dataclass(frozen=True)
class DTConfig:
    dataset: str | None = None
    """the dataset to learn from: a Minari dataset id (rlworks.train also takes an OfflineDataset)"""
    target_return: float | None = None
    """R̂_1, the return asked for when acting (evaluate(target_return=...) overrides it); None: the best
    episode return in the dataset"""
    context_length: int = 20
    """K: steps of (R̂, s, a) the transformer sees (3K tokens)"""
    n_layer: int = 3
    """transformer blocks"""
    n_head: int = 1
    """attention heads per block"""
    embed_dim: int = 128
    """token embedding width"""
    dropout: float = 0.1
    """dropout on embeddings, attention weights and residual branches"""
    activation: str = "relu"
    """MLP activation in each block: relu (the authors' Gym runs) or gelu (GPT)"""
    return_scale: float = 1000.0
    """returns-to-go are divided by this before embedding (the authors' ``scale``)"""
    max_ep_len: int = 1000
    """timesteps embedded; later steps share the last embedding"""
    batch_size: int = 64
    """segments per gradient step"""
    learning_rate: float = 1e-4
    """AdamW step size after warm-up"""
    weight_decay: float = 1e-4
    """AdamW decoupled weight decay"""
    warmup_steps: int = 10_000
    """the learning rate rises linearly to learning_rate over these gradient steps"""
    grad_clip: float = 0.25
    """max global gradient norm"""
    norm_obs: bool = True
    """standardise observations by the dataset's mean and std (+1e-3)"""

    def __post_init__(self) -> None:
        for name in ("context_length", "n_layer", "n_head", "embed_dim", "max_ep_len", "batch_size"):
            check_range(name, getattr(self, name), 1)
        check_range("dropout", self.dropout, 0, 1, high_open=True)
        check_choice("activation", self.activation, ("relu", "gelu"))
        check_range("return_scale", self.return_scale, 0, low_open=True)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("weight_decay", self.weight_decay, 0, 1)
        check_range("warmup_steps", self.warmup_steps, 0)
        check_range("grad_clip", self.grad_clip, 0, low_open=True)
        if self.embed_dim % self.n_head:
            raise ConfigError(f"embed_dim={self.embed_dim} must be a multiple of n_head={self.n_head}")


# ---------------------------------------------------------------------------------------------
# networks: a small GPT (its blocks: core/transformer.py)
# ---------------------------------------------------------------------------------------------


def attention_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, 3K, 3K) True where token i may attend to token j: j ≤ i (causal) and j not padding; a
    padding token attends to itself only (its output is never used, but a softmax needs one entry)."""
    tokens = mask.repeat_interleave(3, dim=1)  # (B, 3K): R̂_t, s_t, a_t share step t's mask
    L = tokens.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool, device=mask.device).tril()
    eye = torch.eye(L, dtype=torch.bool, device=mask.device)
    return (causal & (tokens[:, None, :] | eye))[:, None]


class DecisionTransformer(nn.Module):
    """Action predictions (B, K, act_dim) — logits (Discrete) or tanh means in [-1, 1] (Box) — from
    segments of ``rtg`` (B, K), ``obs`` (B, K, obs_dim), ``actions`` (B, K) indices or (B, K, act_dim),
    ``timesteps`` (B, K) and ``mask`` (B, K); a_t is predicted from the token of s_t."""

    def __init__(self, spec: dict[str, Any], net: dict[str, Any]) -> None:
        super().__init__()
        dim, self.p = net["embed_dim"], net["dropout"]
        self.discrete, self.max_ep_len = spec["action"] == "discrete", net["max_ep_len"]
        self.embed_timestep = nn.Embedding(net["max_ep_len"], dim)
        self.embed_return = nn.Linear(1, dim)
        self.embed_state = nn.Linear(spec["obs_dim"], dim)
        self.embed_action = nn.Embedding(spec["act_dim"], dim) if self.discrete else nn.Linear(spec["act_dim"], dim)
        self.embed_ln = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(Block(dim, net["n_head"], self.p, net["activation"])
                                    for _ in range(net["n_layer"]))
        self.ln_f = nn.LayerNorm(dim)
        self.predict_action = nn.Linear(dim, spec["act_dim"])

    def forward(self, rtg: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor, timesteps: torch.Tensor,
                mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        B, K = mask.shape
        time = self.embed_timestep(timesteps.clamp(max=self.max_ep_len - 1))  # (B, K, D)
        tokens = torch.stack((self.embed_return(rtg[..., None]) + time, self.embed_state(obs) + time,
                              self.embed_action(actions) + time), dim=2)  # (B, K, 3, D)
        x = dropout(self.embed_ln(tokens.reshape(B, 3 * K, -1)), self.p, generator)  # (B, 3K, D)
        allowed = attention_mask(mask)
        for block in self.blocks[:-1]:
            x = block(x, allowed, generator)
        states = torch.arange(1, 3 * K, 3, device=x.device)  # the tokens of s_t, the only outputs read
        h = self.ln_f(self.blocks[-1](x, allowed, generator, at=states))  # (B, K, D): the last block there only
        out = self.predict_action(h)
        return out if self.discrete else torch.tanh(out)


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: DTConfig) -> offline.NormalizedPolicy:
    """The acting module of a saved agent: the transformer behind the observation statistics."""
    n = spec["obs_dim"]
    return offline.NormalizedPolicy(DecisionTransformer(spec, net), torch.zeros(n), torch.ones(n))


@dataclass
class DTState:
    model: nn.Module
    optim: Adam
    n_updates: int = 0


# ---------------------------------------------------------------------------------------------
# loss (pure function) and the update
# ---------------------------------------------------------------------------------------------


def action_loss(pred: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (Discrete: ``pred`` logits) or mean squared error (Box) over the unpadded steps."""
    if actions.dtype == torch.int64:
        return F.cross_entropy(pred[mask], actions[mask])
    return (pred[mask] - actions[mask]).pow(2).mean()


def learning_rate(cfg: DTConfig, step: int) -> float:
    """Linear warm-up: lr · min(1, (step + 1) / warmup_steps) (the authors' LambdaLR)."""
    return cfg.learning_rate * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))


def update(st: DTState, cfg: DTConfig, batch: dict[str, torch.Tensor], g: torch.Generator) -> dict[str, torch.Tensor]:
    """One AdamW step on the action loss of a minibatch of segments. Under ``matmul_precision="medium"`` on CPU
    the forward takes bfloat16 products (``core.runtime.bf16_products``: weights, gradients and the loss stay
    float32), as transformers are commonly trained in mixed precision."""
    with bf16_products(batch["obs"].device):
        pred = st.model(batch["rtg"], batch["obs"], batch["actions"], batch["timesteps"], batch["mask"], g).float()
    loss = action_loss(pred, batch["actions"], batch["mask"])
    st.optim.zero_grad()
    loss.backward()
    grad_norm = nn.utils.clip_grad_norm_(st.model.parameters(), cfg.grad_clip)
    lr = learning_rate(cfg, st.n_updates)
    st.optim.param_groups[0]["lr"] = lr
    with torch.no_grad():  # AdamW: θ ← θ − lr·λ·θ, then the Adam step (torch.optim.AdamW's order)
        torch._foreach_mul_(st.optim.params, 1.0 - lr * cfg.weight_decay)
    st.optim.step()
    st.n_updates += 1
    metrics = {"losses/action_loss": loss.detach(), "losses/grad_norm": grad_norm.detach(),
               "charts/learning_rate": torch.tensor(lr)}
    if batch["actions"].dtype == torch.int64:
        metrics["charts/accuracy"] = (pred.detach().argmax(-1) == batch["actions"])[batch["mask"]].float().mean()
    return metrics


# ---------------------------------------------------------------------------------------------
# the agent: acting with a context of the last K steps
# ---------------------------------------------------------------------------------------------


class Episode:
    """One episode's context: ``act(obs)`` gives a_t for s_t; ``reward(r)`` then lowers R̂ by r."""

    def __init__(self, agent: DTAgent, target_return: float, deterministic: bool = True) -> None:
        self.agent, self.deterministic = agent, deterministic
        k = agent.net["context_length"]
        self.rtg, self.obs, self.actions, self.timesteps = deque(maxlen=k), deque(maxlen=k), deque(maxlen=k), deque(
            maxlen=k)
        self.next_rtg, self.t = float(target_return), 0

    def act(self, obs: Any) -> Any:
        a = self.agent
        x, _ = as_batch(obs, a.spec)
        self.rtg.append(self.next_rtg)
        self.obs.append(torch.as_tensor(x[0], dtype=torch.float32))
        self.timesteps.append(self.t)
        discrete = a.spec["action"] == "discrete"
        self.actions.append(torch.tensor(0) if discrete else torch.zeros(a.spec["act_dim"]))  # a_t: not seen by s_t
        chosen = a.predict_last(torch.tensor(list(self.rtg))[None], torch.stack(list(self.obs))[None],
                                torch.stack(list(self.actions))[None], torch.tensor(list(self.timesteps))[None],
                                self.deterministic)
        self.actions[-1] = chosen[0]
        return a.env_actions(chosen, single=True)

    def reward(self, r: float) -> None:
        self.next_rtg -= float(r)
        self.t += 1


class _Tap(gym.Wrapper):
    """Opens a fresh ``Episode`` at each reset and passes each reward to it."""

    def __init__(self, env: gym.Env, open_episode: Any) -> None:
        super().__init__(env)
        self.open_episode, self.episode = open_episode, None

    def reset(self, **kwargs):
        self.episode = self.open_episode()
        return self.env.reset(**kwargs)

    def step(self, action):
        out = self.env.step(action)
        self.episode.reward(out[1])
        return out


class DTAgent(_AgentCommon):
    """A trained Decision Transformer. ``episode(target_return)`` gives a context to act with step by step;
    ``evaluate(..., target_return=...)`` plays whole episodes with one. ``act(obs)`` alone answers as at the
    first step of an episode (R̂ = the target, t = 0, no history)."""

    FORMAT = "rlworks.dt-agent/1"
    TENSORS = "actor"

    @property
    def target_return(self) -> float:
        return float(self.net["target_return"])

    def episode(self, target_return: float | None = None, deterministic: bool = True) -> Episode:
        return Episode(self, self.target_return if target_return is None else target_return, deterministic)

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        x, single = as_batch(obs, self.spec)
        B, discrete = len(x), self.spec["action"] == "discrete"
        actions = torch.zeros(B, 1, dtype=torch.int64) if discrete else torch.zeros(B, 1, self.spec["act_dim"])
        obs_t = torch.as_tensor(x, dtype=torch.float32)[:, None]  # (B, 1, obs_dim): a context of one step
        chosen = self.predict_last(torch.full((B, 1), self.target_return), obs_t, actions,
                                   torch.zeros(B, 1, dtype=torch.int64), deterministic)
        return self.env_actions(chosen, single)

    def predict_last(self, rtg: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor, timesteps: torch.Tensor,
                     deterministic: bool) -> torch.Tensor:
        """The action (network units, on the CPU) for the last state of each context (B, L, ...): raw returns-to-go
        and observations in, no padding."""
        model = self.model
        dev = next(model.parameters()).device
        with torch.inference_mode():
            obs = (obs.to(dev) - model.mean) / model.std
            pred = model.policy(rtg.to(dev, torch.float32) / self.net["return_scale"], obs, actions.to(dev),
                                timesteps.to(dev), torch.ones(rtg.shape, dtype=torch.bool, device=dev))[:, -1]
            if self.spec["action"] != "discrete":
                return pred.cpu()
            if deterministic:
                return pred.argmax(-1).cpu()
            return torch.multinomial(pred.softmax(-1), 1, generator=self._gen)[:, 0].cpu()

    def env_actions(self, chosen: torch.Tensor, single: bool) -> Any:
        """Network actions (B, ...) as the env takes them: indices from ``act_start``, Box actions in the bounds."""
        if self.spec["action"] == "discrete":
            a = chosen.numpy() + self.spec["act_start"]
            return int(a[0]) if single else a
        a = scale_actions(chosen.numpy().astype(np.float32), self.spec)
        return a[0].reshape(self.spec["act_shape"]) if single else a.reshape((-1, *self.spec["act_shape"]))

    def evaluate(self, episodes: int = 10, seed: int | None = None, env: Any = None, *,
                 video: str | Path | None = None, deterministic: bool = True,
                 target_return: float | None = None) -> EvalResult:
        """As ``Agent.evaluate``, each episode conditioned on ``target_return`` (default: the agent's)."""
        if env is not None:
            wrappers = [w for w in self.env_record.get("wrappers", []) if w in wrapper_names()]
            source = env_source(env, wrappers=wrappers).for_evaluation()
        elif self.env is None or not self.env.copyable:
            raise ConfigError(f"{self!r} cannot rebuild its env; pass env= to evaluate")
        else:
            source = self.env.for_evaluation()
        inner = source.make("rgb_array" if video is not None else None, reuse=True)
        tap = _Tap(inner, lambda: self.episode(target_return, deterministic))
        try:
            return evaluate(lambda o: tap.episode.act(o), tap, episodes, seed=seed, video=video)
        finally:
            if inner is not env:
                inner.close()

    def state(self) -> dict[str, Any]:
        return {"format": self.FORMAT, "algo": self.algo, "env_id": self.env_id,
                "env_kwargs": self.env_kwargs, "env": self.env_record, "config": dataclasses.asdict(self.config),
                "spec": self.spec, "net": self.net, "meta": self.meta}


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR, AGENT = DTConfig, "model", DTAgent


def train(env: Any, config: DTConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          run: RunContext | None = None) -> DTAgent:
    """Train a Decision Transformer for ``total_steps`` gradient steps and return the agent. ``env``: the env to
    evaluate on, or an ``offline.OfflineSource`` holding it and the dataset (else ``config.dataset`` is loaded)."""
    cfg = config or DTConfig()
    s = offline.build_session("dt", env, cfg, seed=seed, total_steps=total_steps, device=device)
    segments.add_sequence_tensors(s, cfg.return_scale)
    target = cfg.target_return if cfg.target_return is not None else float(s.dataset.episode_returns.max())
    s.net = {k: getattr(cfg, k) for k in ("context_length", "n_layer", "n_head", "embed_dim", "dropout",
                                          "activation", "return_scale", "max_ep_len")}
    s.net["target_return"] = target
    with seeded_init(seed):
        model = DecisionTransformer(s.spec, s.net).to(s.device)
    s.state = DTState(model, Adam(model.parameters(), lr=learning_rate(cfg, 0)))
    s.actor = "model"

    def make_agent(s: offline.Session) -> DTAgent:
        policy = offline.NormalizedPolicy(s.state.model, s.obs_mean, s.obs_std)
        meta = {"global_step": s.global_step, "seed": s.seed, "library_version": __version__,
                "dataset": s.dataset.dataset_id,
                "transitions": len(s.data["obs"])}
        return DTAgent("dt", s.env_id, cfg, policy, s.spec, s.net, meta=meta, env=s.env)

    s.make_agent = make_agent
    k = cfg.context_length
    return offline.run(s, lambda s, batch: update(s.state, cfg, batch, s.generator), run or RunContext(),
                       sample=lambda s, n: segments.sample_segments(s, n, k))
