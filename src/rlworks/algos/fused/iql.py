"""IQL's update (``algos/iql.py: update``) with its gradients written out by hand, in inference mode
(see ``fused/sac.py``).

The same losses in the same order (V, then π, then Q, then the target), no autograd graph. V and π are
``Linear``/activation stacks through ``core.fastgrad``; the critics go through ``fused/twinq.py``. The
gradients written out, with w the (constant) advantage weights and B the batch size:

* V, expectile loss: ∂L_V/∂V(s) = −2 |τ − 1(u < 0)| u / B, u = min_i Q'_i(s, a) − V(s);
* π, Box (mean m = tanh MLP(s), log σ clamped to [−5, 2], z = (a − m)/σ): ∂log π/∂m = z/σ, then through
  tanh; ∂log π/∂log σ = z² − 1, zero where the clamp holds log σ outside its range;
  Discrete (logits ℓ): ∂log π(a)/∂ℓ = onehot(a) − softmax(ℓ); both scaled by ∂L_π/∂log π = −w / B;
* Q: ∂L_Q/∂Q_i = 2 (Q_i − y) / B.

The new V(s) (advantages) and V(s') (the target) come from one pass over both batches.
``tests/unit/test_backends_iql.py`` checks it against the autograd update.
"""

from __future__ import annotations

import math

import torch

from ...core import fastgrad
from .. import offpolicy
from ..iql import LOG_STD_MAX, LOG_STD_MIN, GaussianPolicy, IQLConfig, IQLState, q_input
from . import twinq

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _actor_backward(actor: torch.nn.Module, obs: torch.Tensor, actions: torch.Tensor, onehot: torch.Tensor,
                    g_logp: torch.Tensor) -> torch.Tensor:
    """log π(a|s) (B,), setting the policy's gradients of Σ_b g_logp_b · log π(a_b|s_b)."""
    gl = g_logp.unsqueeze(-1)
    if isinstance(actor, GaussianPolicy):
        layers = list(actor.mu)
        acts = fastgrad.mlp_forward(layers, obs)
        mean = acts[-1].tanh_()  # the output layer's own output: mlp_backward does not read it
        raw = actor.log_std
        log_std = raw.clamp(LOG_STD_MIN, LOG_STD_MAX)
        inv_std = torch.exp(-log_std)
        z = (actions - mean).mul_(inv_std)
        z2 = z * z
        logp = (z2 * -0.5 - log_std).sum(-1) - HALF_LOG_2PI * z.shape[-1]
        g_ls = g_logp.unsqueeze(0).mm(z2).squeeze(0) - g_logp.sum()  # Σ_b g_b (z_b² − 1)
        actor.log_std.grad = torch.where((raw >= LOG_STD_MIN) & (raw <= LOG_STD_MAX), g_ls, 0.0)
        g_out = torch.ops.aten.tanh_backward(z.mul_(inv_std).mul_(gl), mean)
    else:  # CategoricalPolicy
        layers = list(actor.net)
        acts = fastgrad.mlp_forward(layers, obs)
        logp_all = torch.log_softmax(acts[-1], -1)
        logp = (logp_all * onehot).sum(-1)
        g_out = (onehot - logp_all.exp()).mul_(gl)
    fastgrad.mlp_backward(layers, acts, g_out)
    return logp


def update(st: IQLState, cfg: IQLConfig, batch: dict[str, torch.Tensor], actor_lr: float
           ) -> dict[str, torch.Tensor]:
    """``iql.update`` by hand: the same step, the same metrics."""
    obs, actions = batch["obs"], batch["actions"]
    B = obs.shape[0]
    with torch.inference_mode():
        act = q_input(actions, st.act_dim)
        q_target = twinq.forward(st.critic_target, obs, act)[0].amin(0)  # (B,)

        layers = list(st.value)  # V on the expectile loss
        acts = fastgrad.mlp_forward(layers, obs)
        diff = q_target - acts[-1].squeeze(-1)
        wdiff = torch.where(diff < 0, 1.0 - cfg.expectile, cfg.expectile).mul_(diff)
        v_loss = (wdiff * diff).mean()
        fastgrad.mlp_backward(layers, acts, wdiff.mul_(-2.0 / B).unsqueeze(-1))
        st.value_opt.step()

        v_both = fastgrad.mlp_forward(layers, torch.cat([obs, batch["next_obs"]]))[-1].squeeze(-1)
        v, v_next = v_both[:B], v_both[B:]  # the new V (authors: new_value)
        weights = torch.exp((q_target - v).mul_(cfg.beta)).clamp_(max=cfg.max_weight)
        y = torch.addcmul(batch["returns"], batch["discounts"], v_next)

        logp = _actor_backward(st.actor, obs, actions, act, weights * (-1.0 / B))  # π by AWR
        pi_loss = -(weights * logp).mean()
        st.actor_opt.param_groups[0]["lr"] = actor_lr
        st.actor_opt.step()

        q, acts_q = twinq.forward(st.critic, obs, act)  # Q on r + γ V(s')
        d = q - y.unsqueeze(0)
        q_loss = d.pow(2).mean(-1).sum()
        twinq.backward(st.critic, acts_q, d.mul_(2.0 / B))
        st.critic_opt.step()
        st.n_updates += 1
        offpolicy.polyak_update(*st.polyak, cfg.tau)
        return {"losses/value_loss": v_loss, "losses/actor_loss": pi_loss, "losses/q_loss": q_loss,
                "losses/q_values": q.mean(), "losses/v_values": v.mean(), "losses/mean_weight": weights.mean()}
