"""MLPs with orthogonal initialisation and an actor-critic module.

Orthogonal init with gain √2 for hidden layers, 0.01 for the policy output and 1 for the value
output follows Huang et al. 2022 ("The 37 Implementation Details of PPO", detail #2) and
Andrychowicz et al. 2021 (§3, "What Matters in On-Policy RL": small policy-output init matters).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..config import check_choice, check_range
from . import features
from .distributions import Categorical, DiagGaussian
from .sde import StateDependentGaussian

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    *,
    activation: str = "tanh",
    layer_norm: bool = False,
    ortho_init: bool = True,
    out_gain: float = 1.0,
) -> nn.Sequential:
    """Linear → [LayerNorm] → activation, repeated, then a linear output layer."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        lin = nn.Linear(d, h)
        if ortho_init:
            nn.init.orthogonal_(lin.weight, math.sqrt(2.0))
            nn.init.zeros_(lin.bias)
        layers.append(lin)
        if layer_norm:  # Ba et al. 2016; helps on some continuous-control tasks (Andrychowicz et al. 2021)
            layers.append(nn.LayerNorm(h))
        layers.append(ACTIVATIONS[activation]())
        d = h
    out = nn.Linear(d, out_dim)
    if ortho_init:
        nn.init.orthogonal_(out.weight, out_gain)
        nn.init.zeros_(out.bias)
    layers.append(out)
    return nn.Sequential(*layers)


class BoardEncoder(nn.Module):
    """A flat observation read as C planes of an H×W board (``planes`` = (C, H, W)): a 3×3 convolution, residual
    blocks of two more (AlphaZero's tower, Silver et al. 2017, at a toy's size, without batch norm), then a linear
    layer to ``out_dim``. The filters share their weights across the board, so a pattern learned in one place is
    recognised in every other, where an MLP must learn each place apart."""

    def __init__(self, planes: Sequence[int], channels: int, blocks: int, out_dim: int, activation: str = "relu"
                 ) -> None:
        super().__init__()
        self.planes = tuple(int(n) for n in planes)
        C, H, W = self.planes

        def conv(c_in: int) -> nn.Conv2d:  # 3×3, the board's size kept
            return nn.Conv2d(c_in, channels, 3, padding=1)

        self.stem = nn.Sequential(conv(C), ACTIVATIONS[activation]())
        self.blocks = nn.ModuleList(nn.Sequential(conv(channels), ACTIVATIONS[activation](), conv(channels))
                                    for _ in range(blocks))
        self.act = ACTIVATIONS[activation]()
        self.out = nn.Linear(channels * H * W, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        h = self.stem(x.reshape(-1, *self.planes))
        for block in self.blocks:
            h = self.act(h + block(h))
        return self.out(h.flatten(1)).reshape(*lead, -1)


@dataclass(frozen=True)
class ActorCriticOptions:
    """The network fields of the actor-critic algorithms (PPO, A2C, REINFORCE), written once: their
    config dataclasses inherit them, and ``check_network`` validates them."""

    hidden: tuple[int, ...] = (64, 64)
    """hidden layer sizes of the actor and of the critic (separate networks), or with shared_trunk of the trunk"""
    actor_hidden: tuple[int, ...] | None = None
    """hidden layer sizes of the actor alone (default: hidden; with shared_trunk: none, a linear head on the
    trunk)"""
    critic_hidden: tuple[int, ...] | None = None
    """hidden layer sizes of the critic alone (default: hidden; with shared_trunk: none)"""
    shared_trunk: bool = False
    """one feature extractor followed by the hidden layers feeds both heads (SB3's CnnPolicy, CleanRL's
    ppo_atari.py); False: the actor and the critic are separate networks"""
    features: str = "auto"
    """feature extractor: auto (cnn for uint8 images of at least 36x36, else mlp), mlp (the flat
    observation), cnn (Nature CNN, Mnih et al. 2015) or 'package.module:ClassName', your own nn.Module built
    as ClassName(obs_shape) with an int features_dim (core/features.py, docs/deep-rl.md "Networks")"""
    activation: str = "tanh"
    """hidden activation: tanh or relu (Andrychowicz et al. 2021 §3.4 favour tanh)"""
    layer_norm: bool = False
    """LayerNorm after each hidden layer"""
    ortho_init: bool = True
    """orthogonal init, gains √2 / 0.01 (policy) / 1 (value) (Huang et al. 2022 #2)"""
    log_std_init: float = 0.0
    """initial log standard deviation of Gaussian policies (Box actions); with PPO's use_sde, of every gSDE
    weight"""

    def check_network(self) -> None:
        check_range("log_std_init", self.log_std_init, -20, 5)
        check_choice("activation", self.activation, ("tanh", "relu"))
        features.check_network(self)


class ActorCritic(nn.Module):
    """An actor and a critic on the observation's features, separate (as SB3's MlpPolicy and CleanRL's
    ppo.py) or sharing a trunk (as SB3's CnnPolicy and CleanRL's ppo_atari.py).

    ``make_encoder`` builds the feature extractor (``core.features``; None: the flat observation). Separate
    (``shared_trunk=False``): each of actor and critic has its own extractor and hidden layers
    (``actor_hidden``, ``critic_hidden``, default ``hidden``). Shared: one extractor followed by the
    ``hidden`` layers (``trunk``) feeds both heads, each with its own layers on top (``actor_hidden``,
    ``critic_hidden``, default none: a linear head).

    Discrete actions: the actor outputs logits. Continuous: it outputs the mean and ``log_std`` is a
    free parameter vector, or with ``sde`` a (last hidden size, act_dim) matrix of gSDE noise scales
    (``core.sde``). ``critic`` is ``None`` when the algorithm has no value function.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        *,
        continuous: bool,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        layer_norm: bool = False,
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        critic: bool = True,
        sde: bool = False,
        actor_hidden: Sequence[int] | None = None,
        critic_hidden: Sequence[int] | None = None,
        shared_trunk: bool = False,
        make_encoder: Callable[[], nn.Module | None] | None = None,
    ) -> None:
        super().__init__()
        if sde and not continuous:
            raise ValueError("gSDE (sde=True) needs continuous actions")
        self.continuous, self.sde = continuous, sde
        self.dist = StateDependentGaussian if sde else DiagGaussian if continuous else Categorical
        kw = dict(activation=activation, layer_norm=layer_norm, ortho_init=ortho_init)
        make_encoder = make_encoder or (lambda: None)
        self.trunk = self.actor_encoder = self.critic_encoder = None
        if shared_trunk:
            enc = make_encoder()
            d = enc.features_dim if enc is not None else obs_dim
            layers = [enc] if enc is not None else []
            if hidden:  # the hidden stack without an output layer: mlp's layers up to its last activation
                trunk = mlp(d, hidden[:-1], hidden[-1], out_gain=math.sqrt(2.0), **kw)
                layers += list(trunk) + _norm_act(hidden[-1], layer_norm, activation)
                d = hidden[-1]
            self.trunk = nn.Sequential(*layers)
            a_hidden = tuple(actor_hidden or ())
            c_hidden = tuple(critic_hidden or ())
            a_in = c_in = d
        else:
            self.actor_encoder = make_encoder()
            self.critic_encoder = make_encoder() if critic else None
            a_in = self.actor_encoder.features_dim if self.actor_encoder is not None else obs_dim
            c_in = self.critic_encoder.features_dim if self.critic_encoder is not None else obs_dim
            a_hidden = tuple(hidden if actor_hidden is None else actor_hidden)
            c_hidden = tuple(hidden if critic_hidden is None else critic_hidden)
        self.actor = mlp(a_in, a_hidden, act_dim, out_gain=0.01, **kw)
        self.critic = mlp(c_in, c_hidden, 1, out_gain=1.0, **kw) if critic else None
        self.ortho_init = ortho_init
        if continuous:
            feat = a_hidden[-1] if a_hidden else a_in
            shape = (int(feat), act_dim) if sde else (act_dim,)  # gSDE: σ per (feature, action)
            self.log_std = nn.Parameter(torch.full(shape, float(log_std_init)))

    @property
    def plain(self) -> bool:
        """Flat observation → two MLPs: what the NumPy acting path and the fused backends handle."""
        return self.trunk is None and self.actor_encoder is None and self.critic_encoder is None

    def encode(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(actor input, critic input): the shared trunk's output once, or each extractor's features."""
        if self.trunk is not None:
            h = self.trunk(obs)
            return h, h
        return self._actor_in(obs), (self.critic_encoder(obs) if self.critic_encoder is not None else obs)

    def _actor_in(self, obs: torch.Tensor) -> torch.Tensor:
        if self.trunk is not None:
            return self.trunk(obs)
        return self.actor_encoder(obs) if self.actor_encoder is not None else obs

    def actor_features(self, obs: torch.Tensor, *, encoded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(actor output, last hidden features) — the features drive gSDE's noise."""
        h = obs if encoded else self._actor_in(obs)
        for layer in self.actor[:-1]:
            h = layer(h)
        return self.actor[-1](h), h

    # -- distribution helpers: the same call works for every action kind ---------------------------
    def dist_params(self, obs: torch.Tensor, *, encoded: bool = False) -> tuple[torch.Tensor, ...]:
        if self.sde:  # features detached: SB3's default learn_features=False (Raffin et al. 2021)
            out, h = self.actor_features(obs, encoded=encoded)
            return out, self.log_std, h.detach()
        out = self.actor(obs if encoded else self._actor_in(obs))
        return (out, self.log_std) if self.continuous else (out,)

    def value(self, obs: torch.Tensor, *, encoded: bool = False) -> torch.Tensor:
        if self.critic is None:
            return torch.zeros(obs.shape[0], device=obs.device,
                               dtype=obs.dtype if obs.dtype.is_floating_point else torch.float32)
        if not encoded:
            obs = self.trunk(obs) if self.trunk is not None else (
                self.critic_encoder(obs) if self.critic_encoder is not None else obs)
        return self.critic(obs).squeeze(-1)

    def critic_features(self, obs: torch.Tensor, *, encoded: bool = False) -> torch.Tensor:
        """The critic's last hidden features: what its output layer (and a ``value_head``) reads."""
        if not encoded:
            obs = self.trunk(obs) if self.trunk is not None else (
                self.critic_encoder(obs) if self.critic_encoder is not None else obs)
        return self.critic[:-1](obs)

    def value_head(self) -> nn.Linear:
        """A second value output on the critic's last hidden features, freshly initialised like the critic's
        own (for the intrinsic value of core/intrinsic.py: two heads on one critic body, as Burda et al.
        2018 §2.3). It is not a part of this module, so that agents and their checkpoints stay as they are:
        the algorithm holds, trains and checkpoints it."""
        head = nn.Linear(self.critic[-1].in_features, 1)
        if self.ortho_init:
            nn.init.orthogonal_(head.weight, 1.0)
            nn.init.zeros_(head.bias)
        return head

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None):
        """(actions, logprobs, values) for a batch of observations."""
        xa, xc = self.encode(obs)
        params = self.dist_params(xa, encoded=True)
        actions = self.dist.sample(*params, generator)
        return actions, self.dist.log_prob(*params, actions), self.value(xc, encoded=True)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor, value_head: nn.Module | None = None):
        """(logprobs, entropy, values) of given actions: what every policy-gradient loss needs; with a
        ``value_head`` (``value_head()``), its values on the critic's features come fourth."""
        xa, xc = self.encode(obs)
        params = self.dist_params(xa, encoded=True)
        if value_head is None:
            return self.dist.log_prob(*params, actions), self.dist.entropy(*params), self.value(xc, encoded=True)
        h = self.critic_features(xc, encoded=True)
        return (self.dist.log_prob(*params, actions), self.dist.entropy(*params), self.critic[-1](h).squeeze(-1),
                value_head(h).squeeze(-1))


def _norm_act(width: int, layer_norm: bool, activation: str) -> list[nn.Module]:
    return ([nn.LayerNorm(width)] if layer_norm else []) + [ACTIVATIONS[activation]()]


def numpy_layers(seq: nn.Sequential, *, copy: bool = True) -> list[tuple[str, tuple]]:
    """The layers of an MLP as NumPy arrays: float64 copies (``copy=True``) or zero-copy float32 views of
    the live CPU parameters (``copy=False``; they follow in-place optimizer updates)."""
    def arr(t: torch.Tensor) -> np.ndarray:
        t = t.detach()
        return t.cpu().double().numpy().copy() if copy else t.numpy()

    ops: list[tuple[str, tuple]] = []
    for layer in seq:
        if isinstance(layer, nn.Linear):
            ops.append(("linear", (arr(layer.weight).T, arr(layer.bias))))
        elif isinstance(layer, nn.LayerNorm):
            ops.append(("ln", (arr(layer.weight), arr(layer.bias), layer.eps)))
        elif isinstance(layer, nn.Tanh):
            ops.append(("tanh", ()))
        elif isinstance(layer, nn.ReLU):
            ops.append(("relu", ()))
        else:  # pragma: no cover - mlp() builds only the layers above
            raise TypeError(f"unsupported layer {layer!r}")
    return ops


def numpy_mlp(ops: list[tuple[str, tuple]], x: np.ndarray) -> np.ndarray:
    for kind, p in ops:
        if kind == "linear":
            x = x @ p[0]
            x += p[1]
        elif kind == "tanh":
            x = np.tanh(x, out=x)
        elif kind == "relu":
            x = np.maximum(x, 0.0, out=x)
        else:
            mu = x.mean(-1, keepdims=True)
            var = ((x - mu) ** 2).mean(-1, keepdims=True)
            x = (x - mu) / np.sqrt(var + p[2]) * p[0] + p[1]
    return x


class NumpyActor:
    """A frozen NumPy copy of the actor for single-observation inference.

    One observation through a 64×64 MLP costs tens of microseconds in torch (dispatch overhead) and
    a few microseconds in NumPy; evaluation and deployment call ``act`` one observation at a time.
    """

    def __init__(self, model: ActorCritic) -> None:
        self.ops = numpy_layers(model.actor)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return numpy_mlp(self.ops, x)

    def features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(output, last hidden features), for gSDE."""
        h = numpy_mlp(self.ops[:-1], x)
        return numpy_mlp(self.ops[-1:], h.copy()), h


class TwinQ(nn.Module):
    """``n`` independent Q(s, a) MLPs evaluated together (clipped double Q: Fujimoto et al. 2018 §4.2):
    weights stacked as (n, in, out) and every layer one ``bmm``, so both critics cost one set of kernel
    launches. Initialised like ``nn.Linear`` (U(±1/√fan_in)). ``forward`` gives Q-values (n, B)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str = "relu",
                 n: int = 2) -> None:
        super().__init__()
        sizes = [obs_dim + act_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(n, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, fan_out).uniform_(-bound, bound)))
        self.relu = activation == "relu"
        self.n = n
        # the same Parameter objects as a plain list (indexing a ParameterList goes through Python);
        # deepcopy, load_state_dict and .to() keep them
        self.layers = list(zip(self.weights, self.biases))

    #: from this many rows on (CQL's sampled actions: 3·N·B), one ``addmm`` per critic beats the stacked ``bmm``
    #: on CPU (measured at 7,680 rows: 6 % in float32, 1.6x with bfloat16 products); below it the single
    #: launch wins
    WIDE_ROWS = 1024

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:  # -> (n, B)
        x = torch.cat([obs, actions], -1)
        last = len(self.layers) - 1
        if x.shape[0] >= self.WIDE_ROWS and x.device.type == "cpu":
            return torch.stack([self._one(x, k) for k in range(self.n)])
        x = x.unsqueeze(0).expand(self.n, -1, -1)  # (n, B, obs_dim + act_dim)
        for i, (w, b) in enumerate(self.layers):
            x = torch.bmm(x, w) + b
            if i < last:
                x = torch.relu(x) if self.relu else torch.tanh(x)
        return x.squeeze(-1)

    def _one(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Critic ``k`` alone on the rows ``x`` (B, obs_dim + act_dim) → (B,): the same layers, one addmm each."""
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            x = torch.addmm(b[k], x, w[k])
            if i < last:
                x = torch.relu(x) if self.relu else torch.tanh(x)
        return x.squeeze(-1)
