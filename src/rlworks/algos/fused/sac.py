"""SAC's update (``algos/sac.py: update``) with its gradients written out by hand.

The same losses, the same order and the same random draws as the autograd update; no autograd graph
(for these MLPs its bookkeeping costs about as much as the arithmetic), and the whole step runs in
inference mode, so none of its ~190 torch calls pays the autograd and version-counter dispatch.
``tests/unit/test_backends.py`` checks it against the autograd update over 50 steps.
"""

from __future__ import annotations

import numpy as np
import torch

from ...core import fastgrad
from .. import offpolicy
from ..sac import LOG_STD_MAX, LOG_STD_MIN, SACConfig, SACState, SquashedGaussianActor, critic_loss, squashed_log_prob
from . import twinq


def _trunk(actor: SquashedGaussianActor) -> list[torch.nn.Module]:
    return [*actor.trunk[0], actor.trunk[1]]


def sample_cached(actor: SquashedGaussianActor, obs: torch.Tensor, generator: torch.Generator | None, keep: int):
    """``actor.sample`` (same arithmetic, same draws) keeping what ``actor_backward`` needs for the first
    ``keep`` rows."""
    layers = _trunk(actor)
    acts = fastgrad.mlp_forward(layers, obs)
    h = acts[-1]
    mu = torch.addmm(actor.mu.bias, h, actor.mu.weight.t())
    raw = torch.addmm(actor.log_std.bias, h, actor.log_std.weight.t())
    log_std = raw.clamp(LOG_STD_MIN, LOG_STD_MAX)
    noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    noise_std = noise * log_std.exp()  # u − μ = σ·ε, also ∂u/∂log σ
    u = mu + noise_std
    a = torch.tanh(u)
    cache = (layers, [t[:keep] for t in acts], (raw == log_std)[:keep], noise_std[:keep], a[:keep])
    return a, squashed_log_prob(u, noise, log_std), cache


def actor_backward(actor: SquashedGaussianActor, cache, g_a: torch.Tensor, g_logp: torch.Tensor) -> None:
    """Parameter gradients from ∂L/∂a (B, d) and ∂L/∂log π (a scalar for every row), through the
    reparameterisation u = μ + σ·ε, a = tanh u: ∂log π/∂u = 2 tanh u (the derivative of
    −log(1 − tanh² u)), ∂log π/∂log σ = −1 (ε is fixed), ∂u/∂log σ = σ·ε; the clamp passes gradient
    inside [−20, 2]."""
    layers, acts, in_range, noise_std, a = cache
    gl = g_logp.unsqueeze(-1)
    g_u = torch.addcmul(g_a, g_a, a * a, value=-1.0).addcmul_(gl, a, value=2.0)  # g_a (1 − a²) + 2 gl a
    g_ls = torch.where(in_range, (g_u * noise_std).sub_(gl), 0.0)
    h = acts[-1]
    actor.mu.weight.grad, actor.mu.bias.grad = g_u.t().mm(h), g_u.sum(0)
    actor.log_std.weight.grad, actor.log_std.bias.grad = g_ls.t().mm(h), g_ls.sum(0)
    fastgrad.mlp_backward(layers, acts, g_u.mm(actor.mu.weight).addmm_(g_ls, actor.log_std.weight))


def update(st: SACState, cfg: SACConfig, batch: dict[str, torch.Tensor], generator: torch.Generator | None):
    """``sac.update`` by hand; returns a function computing the logged losses (called only when logged)."""
    B, obs_dim = batch["obs"].shape[0], batch["obs"].shape[1]
    actor, critic, log_alpha = st.actor, st.critic, st.log_alpha.value
    with torch.inference_mode():
        both_obs = torch.cat([batch["obs"], batch["next_obs"]])
        a_both, logp_both, cache = sample_cached(actor, both_obs, generator, keep=B)
        a_pi, next_a, logp_pi, next_logp = a_both[:B], a_both[B:], logp_both[:B], logp_both[B:]
        alpha = log_alpha.exp()
        if st.alpha_opt is not None:  # ∂J/∂log α = −E[log π + H̄]
            log_alpha.grad = -(logp_pi + st.target_entropy).mean()
            st.alpha_opt.step()
        q_next = twinq.forward(st.critic_target, batch["next_obs"], next_a)[0]
        y = torch.addcmul(batch["returns"], batch["discounts"], torch.addcmul(q_next.amin(0), alpha, next_logp,
                                                                              value=-1.0))
        q, acts = twinq.forward(critic, batch["obs"], batch["actions"])
        twinq.backward(critic, acts, (q - y).div_(B))  # ∂/∂Q_i of ½ Σ_i mean (Q_i − y)²
        st.critic_opt.step()
        # actor: ∂/∂a of −mean(min_i Q_i(s, a)) flows through the smaller critic of each sample
        q_pi, acts_pi = twinq.forward(critic, batch["obs"], a_pi)
        g_a = twinq.min_input_grad(critic, acts_pi, q_pi, -1.0 / B, input_from=obs_dim)
        actor_backward(actor, cache, g_a, alpha / B)  # ∂/∂log π of mean(α log π), the same on every row
        st.actor_opt.step()
        st.n_updates += 1
        if st.n_updates % cfg.target_update_interval == 0:
            offpolicy.polyak_update(*st.polyak, cfg.tau)

    def metrics() -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"losses/q_loss": critic_loss(q, y), "losses/q_values": q.mean(),
                    "losses/actor_loss": (alpha * logp_pi - q_pi.amin(0)).mean(), "losses/alpha": alpha,
                    "losses/entropy": -logp_pi.mean()}

    return metrics


def act(s: offpolicy.Session, obs: np.ndarray) -> np.ndarray:
    """``actor.act(deterministic=False)`` through the raw ops, without the unused log-probability."""
    actor = s.state.actor
    with torch.inference_mode():
        h = fastgrad.mlp_forward(_trunk(actor), offpolicy.to_tensor(obs, s.device))[-1]
        mu = torch.addmm(actor.mu.bias, h, actor.mu.weight.t())
        log_std = torch.addmm(actor.log_std.bias, h, actor.log_std.weight.t()).clamp_(LOG_STD_MIN, LOG_STD_MAX)
        noise = torch.randn(mu.shape, generator=s.generator, device=mu.device, dtype=mu.dtype)
        return mu.add_(noise * log_std.exp_()).tanh_().cpu().numpy()
