"""DQN's update (``algos/dqn.py: update``) with its gradient written out by hand: ∂Huber/∂δ = clip(δ, −1, 1),
then the chain rule through the Linear/ReLU/Tanh layers and the dueling aggregation. Tested against
the autograd update (``tests/unit/test_backends.py``)."""

from __future__ import annotations

import torch

from ...core import fastgrad
from ..dqn import DQNConfig, DQNState


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale gradients so their global L2 norm is at most ``max_norm`` (what
    ``torch.nn.utils.clip_grad_norm_`` computes, minus its per-call checks)."""
    grads = [p.grad for p in params]
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp(max=1.0))
    return total


@torch.no_grad()
def update(st: DQNState, cfg: DQNConfig, obs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor,
           weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``dqn.update`` by hand; returns (loss, Q(s, a))."""
    net, B = st.q, obs.shape[0]
    if net.dueling:
        trunk = [*net.trunk[0], net.trunk[1]]
        acts = fastgrad.mlp_forward(trunk, obs)
        h = acts[-1]
        adv = torch.addmm(net.advantage.bias, h, net.advantage.weight.t())
        val = torch.addmm(net.value.bias, h, net.value.weight.t())
        q = val + adv - adv.mean(-1, keepdim=True)
    else:
        acts = fastgrad.mlp_forward(list(net.q), obs)
        q = acts[-1]
    idx = actions.unsqueeze(-1)
    q_taken = q.gather(-1, idx).squeeze(-1)
    delta = q_taken - targets
    huber = torch.where(delta.abs() < 1.0, 0.5 * delta * delta, delta.abs() - 0.5)
    g = delta.clamp(-1.0, 1.0) / B
    if weights is not None:
        huber, g = huber * weights, g * weights
    loss = huber.mean()
    g_q = torch.zeros_like(q).scatter_(-1, idx, g.unsqueeze(-1))  # (B, n_actions)
    if net.dueling:  # Q = V + A − mean(A): ∂/∂A = g − mean(g), ∂/∂V = Σ g
        g_adv = g_q - g_q.mean(-1, keepdim=True)
        g_val = g_q.sum(-1, keepdim=True)
        net.advantage.weight.grad, net.advantage.bias.grad = g_adv.t().mm(h), g_adv.sum(0)
        net.value.weight.grad, net.value.bias.grad = g_val.t().mm(h), g_val.sum(0)
        fastgrad.mlp_backward(trunk, acts, g_adv.mm(net.advantage.weight) + g_val.mm(net.value.weight))
    else:
        fastgrad.mlp_backward(list(net.q), acts, g_q)
    if cfg.max_grad_norm > 0:
        clip_grad_norm(st.q_opt.params, cfg.max_grad_norm)
    st.q_opt.step()
    return loss, q_taken
