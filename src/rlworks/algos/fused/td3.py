"""TD3's update (``algos/td3.py: update``) with its gradients written out by hand, in inference mode
(see ``fused/sac.py``). The critics go through ``fused/twinq.py``; the actor's gradient comes back
through the first critic only, with 2-D products. Tested against the autograd update
(``tests/unit/test_backends.py``)."""

from __future__ import annotations

import torch

from ...core import fastgrad
from .. import offpolicy
from ..td3 import TD3Config, TD3State, actor_loss, critic_loss, smoothed_target_actions, td3_targets
from . import twinq


def update(st: TD3State, cfg: TD3Config, batch: dict[str, torch.Tensor], generator: torch.Generator | None):
    """``td3.update`` by hand; returns a function computing the logged losses (called only when logged)."""
    B = batch["obs"].shape[0]
    q_pi = None
    with torch.inference_mode():
        next_mu = torch.tanh(fastgrad.mlp_forward(list(st.actor_target.net), batch["next_obs"])[-1])
        noise = torch.randn(next_mu.shape, generator=generator, device=next_mu.device) * cfg.target_policy_noise
        next_a = smoothed_target_actions(next_mu, noise, cfg.target_noise_clip)
        y = td3_targets(batch["returns"], batch["discounts"],
                        twinq.forward(st.critic_target, batch["next_obs"], next_a)[0])
        q, acts = twinq.forward(st.critic, batch["obs"], batch["actions"])
        twinq.backward(st.critic, acts, (q - y.unsqueeze(0)).mul_(2.0 / B))  # ∂/∂Q_i of Σ_i mean (Q_i − y)²
        st.critic_opt.step()
        st.n_updates += 1
        if st.n_updates % cfg.policy_delay == 0:  # delayed policy and target updates (§5.2)
            layers = list(st.actor.net)
            actor_acts = fastgrad.mlp_forward(layers, batch["obs"])
            a_pi = torch.tanh(actor_acts[-1])
            q_pi, g_a = twinq.input_grad(st.critic, 0, batch["obs"], a_pi, -1.0 / B)  # ∂/∂a of −mean Q_1(s, a)
            fastgrad.mlp_backward(layers, actor_acts, torch.ops.aten.tanh_backward(g_a, a_pi))
            st.actor_opt.step()
            offpolicy.polyak_update(*st.polyak, cfg.tau)

    def metrics() -> dict[str, torch.Tensor]:
        with torch.no_grad():
            out = {"losses/q_loss": critic_loss(q, y), "losses/q_values": q.mean()}
            if q_pi is not None:
                out["losses/actor_loss"] = actor_loss(q_pi)
            return out

    return metrics
