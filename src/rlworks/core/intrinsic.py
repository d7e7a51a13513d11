"""Intrinsic rewards for exploration: RND and ICM, modules that know no algorithm.

* RND (Burda, Edwards, Storkey & Klimov 2018, "Exploration by Random Network Distillation",
  arXiv:1810.12894): a fixed, randomly initialised target network f and a predictor f̂ trained to
  match it; the bonus is the prediction error ||f̂(s') − f(s')||², large on states seen rarely.
* ICM (Pathak, Agrawal, Efros & Darrell 2017, "Curiosity-driven Exploration by Self-supervised
  Prediction", arXiv:1705.05363): a feature map φ trained by an inverse model (predict a_t from φ(s_t),
  φ(s_{t+1})) and a forward model predicting φ(s_{t+1}) from φ(s_t), a_t; the bonus is the forward
  model's error η/2·||φ̂(s_{t+1}) − φ(s_{t+1})||² in that learned feature space.

``IntrinsicOptions`` holds the config fields (PPO and A2C inherit them); ``Intrinsic`` is the module
with the running statistics it needs (observation normalisation, the intrinsic return's scale).
An algorithm computes ``rewards`` for a rollout, then calls ``fit`` once on the same rollout, and
learns a second value head with its own discount on the non-episodic intrinsic return
(``non_episodic_values``; algos/onpolicy.py ``intrinsic_stream``; docs/intrinsic.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, check_choice, check_range
from .nets import mlp
from .returns import next_values_from
from .vec import ObsNormalizer, RunningMeanStd

INTRINSIC = ("none", "rnd", "icm")


@dataclass(frozen=True)
class IntrinsicOptions:
    """The intrinsic-reward fields of PPO and A2C, written once: their configs inherit them, and
    ``check_intrinsic`` validates them. Every field but ``intrinsic`` matters only when it is not none."""

    intrinsic: str = "none"
    """exploration bonus: none, rnd (random network distillation, Burda et al. 2018) or icm (curiosity,
    Pathak et al. 2017); adds an intrinsic value head and a second advantage (docs/intrinsic.md)"""
    int_coef: float = 1.0
    """weight of the intrinsic advantage: A = ext_coef·A_ext + int_coef·A_int (Burda et al. 2018 §3: 1)"""
    ext_coef: float = 2.0
    """weight of the extrinsic advantage when intrinsic is on (Burda et al. 2018 §3: 2)"""
    gamma_int: float = 0.99
    """discount of the intrinsic return, which episode ends do not cut (Burda et al. 2018 §2.3: 0.99)"""
    intrinsic_lr: float = 1e-4
    """Adam step size of the RND predictor / the ICM models (Burda et al. 2018 use 1e-4); they take one pass
    over each rollout in minibatches of batch_size (A2C: one step on the rollout)"""
    intrinsic_batch_size: int = 0
    """minibatch size of that pass (0: the algorithm's batch_size; a whole rollout = one step per rollout, as
    Pathak et al. 2017 train ICM with A3C: one gradient step per rollout fragment)"""
    intrinsic_hidden: tuple[int, ...] = (64, 64)
    """hidden layer sizes of the RND networks / of the ICM feature map (MLPs on the flat observation)"""
    intrinsic_features: int = 64
    """output size of the RND target and predictor / of the ICM features φ"""
    norm_int_reward: bool = True
    """divide the intrinsic reward by a running std of the discounted intrinsic return (Burda et al. 2018
    §2.4; used for ICM too by Burda et al. 2019, "Large-Scale Study of Curiosity-Driven Learning" §2.2)"""
    icm_beta: float = 0.2
    """ICM loss (1−β)·L_inverse + β·L_forward (Pathak et al. 2017 eq. 7: β = 0.2)"""
    icm_eta: float = 0.01
    """ICM reward scale η in η/2·||φ̂(s') − φ(s')||² (the authors' code: 0.01); with norm_int_reward the
    running normalisation divides it out, so it matters only with norm_int_reward=false"""

    def check_intrinsic(self) -> None:
        """Validate the fields above (and, in the config that inherits them, that ``backend`` is not fused)."""
        check_choice("intrinsic", self.intrinsic, INTRINSIC)
        for name in ("int_coef", "ext_coef", "icm_eta"):
            check_range(name, getattr(self, name), 0)
        check_range("gamma_int", self.gamma_int, 0, 1)
        check_range("intrinsic_lr", self.intrinsic_lr, 0, 1, low_open=True)
        check_range("intrinsic_features", self.intrinsic_features, 1)
        check_range("intrinsic_batch_size", self.intrinsic_batch_size, 0)
        check_range("icm_beta", self.icm_beta, 0, 1)
        for h in self.intrinsic_hidden:
            check_range("intrinsic_hidden", h, 1)
        if self.intrinsic != "none" and getattr(self, "backend", "auto") == "fused":
            raise ConfigError(f"backend='fused' cannot train the intrinsic value head of intrinsic="
                              f"{self.intrinsic!r}: use backend auto, autograd or compile")


# ---------------------------------------------------------------------------------------------
# the two bonus networks: bonus(obs, next_obs, actions) -> (B,), loss(...) -> (scalar, metrics)
# ---------------------------------------------------------------------------------------------


class RND(nn.Module):
    """Random network distillation (Burda et al. 2018 §2.2). The target is frozen at its random init
    (no gradient ever reaches it); the predictor is one layer deeper, as in the paper's Atari networks."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...], features: int) -> None:
        super().__init__()
        self.target = mlp(obs_dim, hidden, features, activation="relu", out_gain=1.0)
        self.predictor = mlp(obs_dim, (*hidden, hidden[-1]) if hidden else (), features, activation="relu",
                             out_gain=1.0)
        self.target.requires_grad_(False)

    def error(self, next_obs: torch.Tensor) -> torch.Tensor:  # (B,)
        with torch.no_grad():
            target = self.target(next_obs)
        return (self.predictor(next_obs) - target).pow(2).mean(-1)

    def bonus(self, obs: torch.Tensor, next_obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        # i_t = ||f̂(s_{t+1}) − f(s_{t+1})||² (§2.2), as a mean over the features: the scale is normalised away
        return self.error(next_obs)

    def loss(self, obs, next_obs, actions) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = self.error(next_obs).mean()
        return loss, {"losses/intrinsic_loss": loss.detach()}


class ICM(nn.Module):
    """Intrinsic curiosity module (Pathak et al. 2017 §2.2): features φ, an inverse model
    g(φ(s), φ(s')) → a and a forward model f(φ(s), a) → φ̂(s'). Discrete actions: the inverse model gives
    logits (cross-entropy loss) and the forward model takes a one-hot action; Box actions: it regresses
    the action (mean squared error)."""

    def __init__(self, obs_dim: int, act_dim: int, continuous: bool, hidden: tuple[int, ...], features: int,
                 beta: float, eta: float) -> None:
        super().__init__()
        self.continuous, self.act_dim, self.beta, self.eta = continuous, act_dim, beta, eta
        width = hidden[-1] if hidden else features
        self.phi = mlp(obs_dim, hidden, features, activation="relu", out_gain=1.0)
        self.inverse = mlp(2 * features, (width,), act_dim, activation="relu", out_gain=1.0)
        self.forward_model = mlp(features + act_dim, (width,), features, activation="relu", out_gain=1.0)

    def _action_input(self, actions: torch.Tensor) -> torch.Tensor:
        if self.continuous:
            return actions.float()
        return F.one_hot(actions.long(), self.act_dim).float()

    def forward_error(self, phi: torch.Tensor, phi_next: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """½||φ̂(s') − φ(s')||² per sample (B,); the target φ(s') is held fixed: the forward loss trains the
        forward model, φ is shaped by the inverse loss (as in Burda et al. 2019's curiosity code)."""
        pred = self.forward_model(torch.cat([phi, self._action_input(actions)], -1))
        return 0.5 * (pred - phi_next.detach()).pow(2).sum(-1)

    def bonus(self, obs: torch.Tensor, next_obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        # r^i_t = η/2·||φ̂(s_{t+1}) − φ(s_{t+1})||² (Pathak et al. 2017 eq. 6)
        return self.eta * self.forward_error(self.phi(obs), self.phi(next_obs), actions)

    def loss(self, obs, next_obs, actions) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        phi, phi_next = self.phi(obs), self.phi(next_obs)
        out = self.inverse(torch.cat([phi, phi_next], -1))
        if self.continuous:
            inverse = (out - actions.float()).pow(2).sum(-1).mean()
        else:
            inverse = F.cross_entropy(out, actions.long())
        forward = self.forward_error(phi, phi_next, actions).mean()
        loss = (1 - self.beta) * inverse + self.beta * forward  # Pathak et al. 2017 eq. 7
        return loss, {"losses/intrinsic_loss": loss.detach(), "losses/icm_inverse": inverse.detach(),
                      "losses/icm_forward": forward.detach()}

    def predict_action(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """The inverse model's guess of the action between two (normalised) observations."""
        out = self.inverse(torch.cat([self.phi(obs), self.phi(next_obs)], -1))
        return out if self.continuous else out.argmax(-1)


# ---------------------------------------------------------------------------------------------
# the module an algorithm holds: a bonus network and its running statistics
# ---------------------------------------------------------------------------------------------


class Intrinsic(nn.Module):
    """RND or ICM (``net``) with the statistics they need, all checkpointed: the networks' parameters as
    tensors, the statistics by ``stats_state`` (JSON). Observations are the raw ones the env gave,
    normalised here by their own running mean and std, clipped to [-5, 5] (Burda et al. 2018 §2.4; the
    same for ICM, whose paper fed pixels scaled to [0, 1]: vector observations need a scale)."""

    def __init__(self, cfg: IntrinsicOptions, obs_dim: int, act_dim: int, continuous: bool, n_envs: int) -> None:
        super().__init__()
        hidden = tuple(cfg.intrinsic_hidden)
        if cfg.intrinsic == "rnd":
            self.net: RND | ICM = RND(obs_dim, hidden, cfg.intrinsic_features)
        elif cfg.intrinsic == "icm":
            self.net = ICM(obs_dim, act_dim, continuous, hidden, cfg.intrinsic_features, cfg.icm_beta, cfg.icm_eta)
        else:
            raise ValueError(f"no intrinsic module for intrinsic={cfg.intrinsic!r}")
        self.kind, self.gamma, self.normalize = cfg.intrinsic, cfg.gamma_int, cfg.norm_int_reward
        self.obs_norm = ObsNormalizer(obs_dim, clip=5.0)
        self.ret_rms = RunningMeanStd(())  # of the discounted intrinsic return, per env, never reset
        self.ret = np.zeros(n_envs)

    def _tensor(self, obs: np.ndarray) -> torch.Tensor:
        device = next(self.net.parameters()).device
        return torch.from_numpy(self.obs_norm(obs).astype(np.float32)).to(device)

    def rewards(self, obs: np.ndarray, next_obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Intrinsic rewards (T, N) of a rollout's transitions: ``obs`` and ``next_obs`` raw (T, N, obs_dim),
        ``next_obs`` the true s_{t+1} (the final observation where an episode ended). Updates the
        observation statistics with ``next_obs`` first and, with ``norm_int_reward``, the return scale."""
        T, N = obs.shape[:2]
        self.obs_norm.rms.update(next_obs.reshape(T * N, -1))
        with torch.no_grad():
            r = self.net.bonus(self._tensor(obs.reshape(T * N, -1)), self._tensor(next_obs.reshape(T * N, -1)),
                               torch.from_numpy(actions.reshape((T * N,) + actions.shape[2:])))
        r = r.cpu().numpy().astype(np.float64).reshape(T, N)
        if self.normalize:  # r / std(Σ γ_int^k r_{t-k}), the sum running over episode ends (Burda §2.4)
            rets = np.empty_like(r)
            for t in range(T):
                self.ret = self.ret * self.gamma + r[t]
                rets[t] = self.ret
            self.ret_rms.update(rets.reshape(-1))
            r = r / np.sqrt(self.ret_rms.var + 1e-8)
        return r.astype(np.float32)

    def fit(self, optimizer: Any, obs: np.ndarray, next_obs: np.ndarray, actions: np.ndarray, batch_size: int,
            generator: torch.Generator) -> dict[str, float]:
        """One pass of minibatch gradient steps over a rollout's transitions (shapes as in ``rewards``);
        the metrics averaged over the minibatches."""
        T, N = obs.shape[:2]
        device = next(self.net.parameters()).device
        b_obs = self._tensor(obs.reshape(T * N, -1))
        b_next = self._tensor(next_obs.reshape(T * N, -1))
        b_actions = torch.from_numpy(actions.reshape((T * N,) + actions.shape[2:])).to(device)
        perm = torch.randperm(T * N, generator=generator, device=device)
        sums: dict[str, torch.Tensor] = {}
        count = 0
        for start in range(0, T * N, batch_size):
            mb = perm[start:start + batch_size]
            loss, info = self.net.loss(b_obs[mb], b_next[mb], b_actions[mb])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for k, v in info.items():
                sums[k] = sums[k] + v if k in sums else v
            count += 1
        return {k: float(v) / count for k, v in sums.items()}

    def trainable(self) -> list[nn.Parameter]:
        """What the optimizer steps: everything but RND's frozen target."""
        return [p for p in self.net.parameters() if p.requires_grad]

    def stats_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "obs_norm": self.obs_norm.state_dict(), "ret_rms": self.ret_rms.state_dict(),
                "ret": self.ret.tolist()}

    def load_stats_state(self, d: dict[str, Any]) -> None:
        if d.get("kind") != self.kind:
            raise ConfigError(f"the checkpoint's intrinsic module is {d.get('kind')!r}, this run's is {self.kind!r}")
        self.obs_norm.load_state_dict(d["obs_norm"])
        self.ret_rms.load_state_dict(d["ret_rms"])
        self.ret = np.asarray(d["ret"], dtype=np.float64)


def non_episodic_values(value: Callable[[torch.Tensor], torch.Tensor], obs: np.ndarray, last_obs: np.ndarray,
                        device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(V(s_t), V(s_{t+1})), each (T, N), of a non-episodic return (Burda et al. 2018 §2.3): the stream runs
    on through episode ends, so the value after an episode's last step is that of the next episode's first
    observation, as in the paper's code. ``obs`` (T, N, ...) the rollout's, ``last_obs`` (N, ...) the one it
    stopped at, both as ``value`` takes them; one batched pass (the parameters did not change during the
    rollout)."""
    T, N = obs.shape[:2]
    with torch.inference_mode():
        x = torch.from_numpy(obs.reshape((T * N,) + obs.shape[2:])).to(device)
        values = value(x).reshape(T, N).cpu().numpy()
        last = value(torch.from_numpy(np.ascontiguousarray(last_obs, dtype=obs.dtype)).to(device)).cpu().numpy()
    never = np.zeros((T, N), dtype=bool)
    return values, next_values_from(values, last, never, values)
