"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic: Off-Policy Maximum Entropy Deep RL
with a Stochastic Actor", and "Soft Actor-Critic Algorithms and Applications", arXiv:1812.05905):

* twin Q-networks, the minimum of the two in every target (clipped double Q, Fujimoto et al. 2018),
  evaluated as one batched network (both critics in one set of ``bmm`` calls);
* target critics updated by Polyak averaging with rate τ;
* a squashed Gaussian policy a = tanh(u), u ~ N(μ(s), σ(s)), with the change-of-variables
  correction log π(a|s) = log N(u) − Σ log(1 − tanh²(u)) (Haarnoja et al. 2018, App. C);
* automatic entropy temperature: α minimises −α (log π + H̄) with target entropy H̄ = −|A|
  (arXiv:1812.05905 §5); ``autotune = false`` keeps α fixed at ``ent_coef``;
* actions live in [-1, 1] (buffer, networks) and are rescaled to the Box bounds for the env.

Reads top to bottom: config → networks → pure loss functions → update round → train().
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, check_choice, check_range
from ..core import fastgrad
from ..core.logging import Logger
from ..core.nets import ACTIVATIONS, mlp
from . import offpolicy

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # as SB3 and the authors' code (softlearning)


@dataclass(frozen=True)
class SACConfig:
    n_envs: int = 1
    """number of parallel environments"""
    buffer_size: int = 1_000_000
    """replay buffer capacity in transitions"""
    learning_starts: int = 100
    """environment steps of uniformly random actions before learning starts"""
    batch_size: int = 256
    """transitions per gradient step"""
    learning_rate: float = 3e-4
    """Adam step size of actor, critics and temperature"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target critics"""
    train_freq: int = 1
    """vector-env steps between training rounds"""
    gradient_steps: int = 1
    """gradient steps per training round"""
    target_update_interval: int = 1
    """gradient steps between target-critic updates"""
    ent_coef: float = 1.0
    """entropy temperature α: the initial value with autotune, else fixed"""
    autotune: bool = True
    """learn α toward the target entropy (Haarnoja et al. 2018b §5)"""
    target_entropy_scale: float = 1.0
    """target entropy = −scale · |A| (the paper's heuristic is scale 1)"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden layer sizes of the actor and of each critic"""
    activation: str = "relu"
    """hidden activation: relu or tanh"""
    adam_eps: float = 1e-8
    """Adam epsilon"""

    def __post_init__(self) -> None:
        for name in ("n_envs", "batch_size", "train_freq", "gradient_steps", "target_update_interval"):
            check_range(name, getattr(self, name), 1)
        check_range("buffer_size", self.buffer_size, 2 * self.n_envs)
        check_range("learning_starts", self.learning_starts, 0)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("gamma", self.gamma, 0, 1)
        check_range("tau", self.tau, 0, 1, low_open=True)
        check_range("ent_coef", self.ent_coef, 0, low_open=True)
        check_range("target_entropy_scale", self.target_entropy_scale, 0)
        check_range("adam_eps", self.adam_eps, 0, low_open=True)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ConfigError(f"hidden={self.hidden!r} must be a non-empty list of positive layer sizes")


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------


class TwinQ(nn.Module):
    """``n`` independent Q(s, a) MLPs evaluated together: weights stacked as (n, in, out) and every
    layer one ``bmm`` (then the bias added in place: ``baddbmm`` first copies the broadcast bias into
    the output, a slower extra pass), so both critics cost one set of kernel launches (also used by
    TD3). Initialised like ``nn.Linear`` (U(±1/√fan_in))."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str = "relu",
                 n: int = 2) -> None:
        super().__init__()
        sizes = [obs_dim + act_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(n, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, fan_out).uniform_(-bound, bound)))
        self.act_fn = torch.relu if activation == "relu" else torch.tanh
        self.n = n
        # the same Parameter objects as a plain list: indexing a ParameterList goes through Python
        # (≈ 2 µs a lookup, ≈ 40 lookups an update); deepcopy, load_state_dict and .to() keep them
        self._layers = list(zip(self.weights, self.biases))

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:  # -> (n, B)
        x = torch.cat([obs, actions], -1).unsqueeze(0).expand(self.n, -1, -1)  # (n, B, in)
        last = len(self._layers) - 1
        for i, (w, b) in enumerate(self._layers):
            x = torch.bmm(x, w) + b
            if i < last:
                x = self.act_fn(x)
        return x.squeeze(-1)

    def forward_cached(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Q-values (n, B) and every layer's input, for ``backward`` (call without autograd)."""
        x = torch.cat([obs, actions], -1).unsqueeze(0).expand(self.n, -1, -1)
        acts = [x]
        last = len(self._layers) - 1
        act_ = torch.relu_ if self.act_fn is torch.relu else torch.tanh_  # in place: no extra buffer
        for i, (w, b) in enumerate(self._layers):
            x = torch.bmm(x, w).add_(b)
            if i < last:
                x = act_(x)
            acts.append(x)
        return x.squeeze(-1), acts

    def backward(self, acts: list[torch.Tensor], g_q: torch.Tensor) -> None:
        """Back-propagate ∂L/∂Q (n, B) by hand, setting every weight's and bias's ``.grad``."""
        relu = self.act_fn is torch.relu
        g = g_q.unsqueeze(-1)  # (n, B, 1)
        last = len(self._layers) - 1
        for i in range(last, -1, -1):
            w, b = self._layers[i]
            if i == last:  # one output column: (gᵀx)ᵀ, since xᵀg with a single column takes a slow bmm path
                w.grad = torch.bmm(g.transpose(1, 2), acts[i]).transpose(1, 2)
            else:
                w.grad = torch.bmm(acts[i].transpose(1, 2), g)
            b.grad = g.sum(1, keepdim=True)
            if i > 0:
                g = g * w.transpose(1, 2) if i == last else torch.bmm(g, w.transpose(1, 2))  # outer product first
                g = fastgrad.activation_backward(g, acts[i], relu, inplace=True)

    def input_grad(self, c: int, obs: torch.Tensor, actions: torch.Tensor, scale: float
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Critic ``c`` alone: Q_c(s, a) (B,) and ∂/∂a of ``scale`` · Σ_b Q_c(s_b, a_b) (B, act_dim),
        with 2-D products (TD3's actor loss reads the first critic only; the other's forward would be
        wasted)."""
        relu = self.act_fn is torch.relu
        act_ = torch.relu_ if relu else torch.tanh_
        x = torch.cat([obs, actions], -1)
        acts = [x]
        last = len(self._layers) - 1
        for i, (w, b) in enumerate(self._layers):
            x = torch.addmm(b[c], x, w[c])
            if i < last:
                x = act_(x)
            acts.append(x)
        return x.squeeze(-1), self._input_grad_of(c, acts, scale, obs.shape[-1])

    def _input_grad_of(self, c: int, acts: list[torch.Tensor], scale: float, input_from: int) -> torch.Tensor:
        """∂/∂x[:, input_from:] of ``scale`` · Σ_rows Q_c, back through critic ``c`` alone, given the
        inputs of its layers 1 … last on those rows, 2-D, as ``acts[1:last + 1]`` (``acts[0]`` is not read;
        ``acts[last]``, the caller's temporary, is overwritten)."""
        relu = self.act_fn is torch.relu
        weights = [w for w, _ in self._layers]
        last = len(weights) - 1
        # the output layer's gradient scale·wᵀ is the same on every row: broadcast, masked in one pass
        g = fastgrad.activation_backward((weights[last][c].t() * scale).expand(acts[last].shape[0], -1), acts[last],
                                         relu, overwrite_out=True)
        for i in range(last - 1, 0, -1):
            g = fastgrad.activation_backward(g.mm(weights[i][c].t()), acts[i], relu, inplace=True)
        return g.mm(weights[0][c][input_from:].t())

    def min_input_grad(self, acts: list[torch.Tensor], q: torch.Tensor, scale: float, input_from: int,
                       masked: bool | None = None) -> torch.Tensor:
        """∂/∂x[:, input_from:] of ``scale`` · Σ_b min_i Q_i(x_b) (the actor loss's path to the action).
        Only the smaller critic of each sample carries gradient, so each critic back-propagates just
        the rows where it is the minimum: half the arithmetic of a masked pass through both. With
        reduced-precision products on CPU (``matmul_precision``) every critic takes all rows instead,
        the others' rows zeroed: the row counts change every step, and oneDNN compiles and caches a
        kernel for each new bfloat16 product shape (measured: +300 MB over 2,500 updates). ``masked``
        forces one way (both are tested against autograd)."""
        relu = self.act_fn is torch.relu
        # which samples each critic is the smaller one for (the first on ties, as argmin; with two critics
        # one comparison, 10× faster than argmin)
        if self.n == 2:
            second = q[1] < q[0]
            smallest = (~second, second)
        else:
            which = q.argmin(0)
            smallest = tuple(which == c for c in range(self.n))
        weights = [w for w, _ in self._layers]
        last = len(weights) - 1
        if masked is None:
            masked = q.device.type == "cpu" and torch.get_float32_matmul_precision() != "highest"
        if masked:
            mask = torch.stack(smallest).unsqueeze(-1).to(q.dtype).mul_(scale)  # (n, B, 1)
            g = mask * weights[last].transpose(1, 2)  # (n, B, hidden)
            for i in range(last, 0, -1):
                g = fastgrad.activation_backward(g, acts[i], relu, inplace=True)
                w = weights[i - 1] if i > 1 else weights[0][:, input_from:]
                g = torch.bmm(g, w.transpose(1, 2))
            return g.sum(0)
        out = torch.empty(q.shape[1], acts[0].shape[-1] - input_from, dtype=q.dtype, device=q.device)
        for c in range(self.n):
            rows = smallest[c].nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            rows_acts = [None, *(acts[i][c].index_select(0, rows) for i in range(1, last + 1))]
            out.index_copy_(0, rows, self._input_grad_of(c, rows_acts, scale, input_from))
        return out


class SquashedGaussianActor(nn.Module):
    """π(·|s) = tanh(N(μ(s), σ(s))) with a state-dependent log σ clamped to [−20, 2]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str = "relu") -> None:
        super().__init__()
        self.trunk = nn.Sequential(mlp(obs_dim, hidden[:-1], hidden[-1], activation=activation, ortho_init=False),
                                   ACTIVATIONS[activation]())
        self.mu = nn.Linear(hidden[-1], act_dim)
        self.log_std = nn.Linear(hidden[-1], act_dim)
        self._trunk_layers = [*self.trunk[0], self.trunk[1]]  # flat, for fastgrad (no Sequential lookups)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
        return self.mu(h), self.log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action in (−1, 1) and its log-probability (B,)."""
        mu, log_std = self(obs)
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        u = mu + noise * log_std.exp()
        return torch.tanh(u), squashed_log_prob(u, noise, log_std)

    def act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        """tanh(μ) or a sample, without autograd; the same arithmetic and random draws as ``sample``,
        through the raw ops and without the log-probability (acting is once per env step, where the
        module calls and the unused log π were a twentieth of a Pendulum step)."""
        h = fastgrad.mlp_forward(self._trunk_layers, obs)[-1]
        mu = torch.addmm(self.mu.bias, h, self.mu.weight.t())
        if deterministic:
            return mu.tanh_()
        log_std = torch.addmm(self.log_std.bias, h, self.log_std.weight.t()).clamp_(LOG_STD_MIN, LOG_STD_MAX)
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu.add_(noise * log_std.exp_()).tanh_()

    def sample_cached(self, obs: torch.Tensor, generator: torch.Generator | None,
                      keep: int | None = None):
        """``sample`` without autograd, keeping what ``backward`` needs (same random draws) for the
        first ``keep`` rows (all by default): the update samples for s and s' in one pass."""
        layers = self._trunk_layers
        acts = fastgrad.mlp_forward(layers, obs)
        h = acts[-1]
        mu = torch.addmm(self.mu.bias, h, self.mu.weight.t())
        raw = torch.addmm(self.log_std.bias, h, self.log_std.weight.t())
        log_std = raw.clamp(LOG_STD_MIN, LOG_STD_MAX)
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        noise_std = noise * log_std.exp()  # u − μ = σ·ε, also ∂u/∂log σ
        u = mu + noise_std
        a = torch.tanh(u)
        cache = (layers, acts, raw == log_std, noise_std, a)  # raw == log_std: inside the clamp
        if keep is not None:
            cache = (layers, [t[:keep] for t in acts], *(t[:keep] for t in cache[2:]))
        return a, squashed_log_prob(u, noise, log_std), cache

    def backward(self, cache, g_a: torch.Tensor, g_logp: torch.Tensor) -> None:
        """Parameter gradients from ∂L/∂a (B, d) and ∂L/∂log π (B,), or one scalar for every row, through
        the reparameterisation u = μ + σ·ε, a = tanh u: ∂log π/∂u = 2 tanh u (the derivative of
        −log(1 − tanh² u)), ∂log π/∂log σ = −1 (ε is fixed), ∂u/∂log σ = σ·ε; the clamp passes gradient
        inside [−20, 2]."""
        layers, acts, in_range, noise_std, a = cache
        gl = g_logp.unsqueeze(-1)
        g_u = torch.addcmul(g_a, g_a, a * a, value=-1.0).addcmul_(gl, a, value=2.0)  # g_a (1 − a²) + 2 gl a
        g_ls = torch.where(in_range, (g_u * noise_std).sub_(gl), 0.0)
        h = acts[-1]
        self.mu.weight.grad, self.mu.bias.grad = g_u.t().mm(h), g_u.sum(0)
        self.log_std.weight.grad, self.log_std.bias.grad = g_ls.t().mm(h), g_ls.sum(0)
        g_h = g_u.mm(self.mu.weight).addmm_(g_ls, self.log_std.weight)  # ∂L/∂h, in one buffer
        fastgrad.mlp_backward(layers, acts, g_h, overwrite_g=True)


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: Any = None) -> SquashedGaussianActor:
    return SquashedGaussianActor(spec["obs_dim"], spec["act_dim"], tuple(net["hidden"]), net["activation"])


# ---------------------------------------------------------------------------------------------
# losses (pure functions)
# ---------------------------------------------------------------------------------------------


def squashed_log_prob(u: torch.Tensor, noise: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log π(tanh u) = Σ_i [log N(u_i; μ_i, σ_i) − log(1 − tanh² u_i)] (Haarnoja et al. 2018 eq. 21), with
    (u−μ)/σ = noise and the stable identity −log(1 − tanh² u) = 2 (u + softplus(−2u) − log 2): per
    dimension −½ε² − log σ + 2 (u + softplus(−2u)), less the constants ½ log 2π + 2 log 2."""
    per_dim = F.softplus(u * -2.0).add_(u).mul_(2.0).sub_(log_std).addcmul_(noise, noise, value=-0.5)
    return per_dim.sum(-1) - u.shape[-1] * (0.5 * math.log(2.0 * math.pi) + 2.0 * math.log(2.0))


def critic_loss(q: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """½ Σ_critics MSE(Q_i, y) (as SB3); ``q`` is (n_critics, B)."""
    return 0.5 * (q - targets.unsqueeze(0)).pow(2).mean(-1).sum()


def soft_targets(returns: torch.Tensor, discounts: torch.Tensor, q_next: torch.Tensor, next_logp: torch.Tensor,
                 alpha: torch.Tensor) -> torch.Tensor:
    """y = r + γ (1 − terminated) (min_i Q'_i(s', a') − α log π(a'|s')), a' ~ π(·|s')."""
    return torch.addcmul(returns, discounts, torch.addcmul(q_next.amin(0), alpha, next_logp, value=-1.0))


def actor_loss(q_pi: torch.Tensor, logp: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """E[α log π(a|s) − min_i Q_i(s, a)], a ~ π(·|s) reparameterised (Haarnoja et al. 2018 eq. 7)."""
    return (alpha * logp - q_pi.min(0).values).mean()


def temperature_loss(log_alpha: torch.Tensor, logp: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """J(α) = E[−α (log π + H̄)] (arXiv:1812.05905 eq. 18), optimised in log α as SB3 and CleanRL do:
    α grows while the entropy −log π is below the target H̄ and shrinks above it."""
    return -(log_alpha * (logp.detach() + target_entropy)).mean()


def temperature_grad(logp: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """∂J/∂ log α = −E[log π + H̄], written out to save a backward pass per update."""
    return -(logp.detach() + target_entropy).mean()


# ---------------------------------------------------------------------------------------------
# acting and the update round
# ---------------------------------------------------------------------------------------------


def act(s: offpolicy.Session, obs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        a = s.modules["actor"].act(offpolicy.to_tensor(obs, s.device), False, s.generator)
    return a.cpu().numpy()


def train_round(s: offpolicy.Session, gradient_steps: int) -> offpolicy.Metrics:
    """``gradient_steps`` SAC updates in SB3's order: temperature (with this step's policy samples),
    critics (target from the next-state policy), actor (through the just-updated critics), Polyak.
    The gradients of the losses above are written out by hand (no autograd graph: for these MLPs its
    bookkeeping costs about as much as the arithmetic); tests/unit/test_offpolicy_losses.py checks
    the whole update against the same update through autograd."""
    cfg: SACConfig = s.config
    actor, critic, critic_target = s.modules["actor"], s.modules["critic"], s.modules["critic_target"]
    log_alpha = s.modules["log_alpha"].value
    target_entropy = -cfg.target_entropy_scale * s.spec["act_dim"]
    if "polyak" not in s.cache:  # listing a module's parameters walks it in Python: once per session
        s.cache["polyak"] = (list(critic_target.parameters()), list(critic.parameters()))
    target_params, critic_params = s.cache["polyak"]
    B, obs_dim = cfg.batch_size, s.spec["obs_dim"]
    # inference mode, not just no_grad: nothing here is differentiated by autograd, and each of the
    # update's ~200 torch calls then skips the autograd and version-counter dispatch (in-process A/B:
    # 0.96-0.97× the time per update); parameters and optimizer state are updated in place as before
    with torch.inference_mode():
        for _ in range(gradient_steps):
            mb = offpolicy.tensor_batch(s.buffer.sample(B, s.rng), s.device)
            # a ~ π(·|s) for the actor and temperature losses and a' ~ π(·|s') for the target, in one
            # pass (the actor is unchanged until its own step; the draws are those of two passes)
            both_obs = torch.cat([mb["obs"], mb["next_obs"]])
            a_both, logp_both, cache = actor.sample_cached(both_obs, s.generator, keep=B)
            a_pi, next_a, logp_pi, next_logp = a_both[:B], a_both[B:], logp_both[:B], logp_both[B:]
            alpha = log_alpha.exp()
            if cfg.autotune:  # the temperature step uses this step's policy samples (as SB3)
                log_alpha.grad = temperature_grad(logp_pi, target_entropy)
                s.optimizers["alpha"].step()
            q_next = critic_target.forward_cached(mb["next_obs"], next_a)[0]
            y = soft_targets(mb["returns"], mb["discounts"], q_next, next_logp, alpha)
            q, acts = critic.forward_cached(mb["obs"], mb["actions"])
            critic.backward(acts, (q - y).div_(B))  # ∂/∂Q_i of ½ Σ_i mean (Q_i − y)²
            s.optimizers["critic"].step()
            # actor: ∂/∂a of −mean(min_i Q_i(s, a)) flows through the smaller critic of each sample
            q_pi, acts_pi = critic.forward_cached(mb["obs"], a_pi)
            g_a = critic.min_input_grad(acts_pi, q_pi, -1.0 / B, input_from=obs_dim)
            actor.backward(cache, g_a, alpha / B)  # ∂/∂log π of mean(α log π), the same on every row
            s.optimizers["actor"].step()
            s.n_updates += 1
            if s.n_updates % cfg.target_update_interval == 0:
                offpolicy.polyak_update(target_params, critic_params, cfg.tau)
    # the losses themselves are only logged, for the round's last step, and only when the loop writes
    # a log line (every ``log_every`` steps): about 10 small ops that cost 1-2 % of each update
    def metrics() -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"losses/q_loss": critic_loss(q, y), "losses/q_values": q.mean(),
                    "losses/actor_loss": actor_loss(q_pi, logp_pi, alpha), "losses/alpha": alpha,
                    "losses/entropy": -logp_pi.mean()}

    return metrics


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR = SACConfig, "actor"


class Scalar(nn.Module):
    """A learnable scalar (log α) as a module, so it is checkpointed like the networks."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))


def train(env_id: str, config: SACConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          logger: Logger | None = None, checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0,
          log_every: int = 1000, callback: Callable[[offpolicy.Session], bool] | None = None,
          resume_from: str | Path | None = None, stop_at: int | None = None,
          on_start: Callable[[offpolicy.Session], None] | None = None) -> offpolicy.OffPolicyAgent:
    """Train SAC on ``env_id`` (Box actions) for ``total_steps`` environment steps and return the agent.
    With ``resume_from`` (a training checkpoint) continue that run exactly where it stopped."""
    cfg = config or SACConfig()
    s = offpolicy.build_session("sac", env_id, cfg, seed=seed, total_steps=total_steps, device=device,
                                action="box", act_dtype=np.float32)
    try:
        s.net = {"hidden": list(cfg.hidden), "activation": cfg.activation}
        actor = build_actor(s.spec, s.net).to(s.device)
        critic = TwinQ(s.spec["obs_dim"], s.spec["act_dim"], cfg.hidden, cfg.activation).to(s.device)
        critic_target = copy.deepcopy(critic).requires_grad_(False)
        log_alpha = Scalar(math.log(cfg.ent_coef)).to(s.device)
        s.modules = {"actor": actor, "critic": critic, "critic_target": critic_target, "log_alpha": log_alpha}
        lr, eps = cfg.learning_rate, cfg.adam_eps
        s.optimizers = {"actor": offpolicy.adam(actor.parameters(), lr, eps),
                        "critic": offpolicy.adam(critic.parameters(), lr, eps)}
        if cfg.autotune:
            s.optimizers["alpha"] = offpolicy.adam(log_alpha.parameters(), lr, eps)
        if resume_from is not None:
            offpolicy.restore_session(s, resume_from)
        if on_start is not None:
            on_start(s)
        return offpolicy.run(s, act, train_round, logger=logger, checkpoint_dir=checkpoint_dir,
                             checkpoint_every=checkpoint_every, log_every=log_every, callback=callback,
                             stop_at=stop_at)
    finally:
        s.venv.close()
