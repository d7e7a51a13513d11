"""Analytic gradients for the MLP actor-critic: the engine of the policy-gradient "fused" backend.

For the small MLPs of classic control on CPU, autograd's bookkeeping costs more than the arithmetic
of a gradient step. A policy-gradient loss only needs, per sample, three scalars — ∂L/∂log π(a|s),
∂L/∂H(π(·|s)) and ∂L/∂V(s) — which ``algos/fused/policy_gradient.py`` derives from each algorithm's
loss; this module back-propagates them through the distribution and the two MLPs by hand (measured
in docs/benchmarks.md). ``tests/unit/test_fastgrad.py`` checks it against autograd.

Supported: Linear/Tanh/ReLU stacks on the flat observation (no LayerNorm, no feature extractor or
shared trunk), Categorical, DiagGaussian and gSDE
(``core.sde``, detached features) heads; anything else falls back to autograd (``supported(model)``
is False). ``mlp_forward``/``mlp_backward``/``activation_backward`` are the building blocks, also
used by DQN's and SAC's hand-written updates.
"""

from __future__ import annotations

import torch
from torch import nn

from .nets import ActorCritic
from .sde import EPS as SDE_EPS


def supported(model: ActorCritic) -> bool:
    if not getattr(model, "plain", True):  # a feature extractor or a shared trunk: autograd's job
        return False
    mods = list(model.actor) + (list(model.critic) if model.critic is not None else [])
    return all(isinstance(m, (nn.Linear, nn.Tanh, nn.ReLU)) for m in mods)


def activation_backward(g: torch.Tensor, out: torch.Tensor, relu: bool, *, inplace: bool = False) -> torch.Tensor:
    """∂L/∂pre-activation from ∂L/∂out and the activation's output, as the single kernels autograd
    uses (``g * (out > 0)`` would also convert the mask to float: two extra passes over the tensor).
    ``inplace`` writes the result over ``g`` (a temporary the caller owns): no new buffer."""
    if relu:
        if inplace:
            return torch.ops.aten.threshold_backward.grad_input(g, out, 0, grad_input=g)
        return torch.ops.aten.threshold_backward(g, out, 0)
    if inplace:
        return torch.ops.aten.tanh_backward.grad_input(g, out, grad_input=g)
    return torch.ops.aten.tanh_backward(g, out)  # g·(1 − tanh²) in one kernel


def mlp_forward(layers, x: torch.Tensor) -> list[torch.Tensor]:
    """Input and every layer's output of a Linear/ReLU/Tanh stack (no autograd), for ``mlp_backward``;
    the last entry is the stack's output. An activation after a Linear overwrites the Linear's output
    (its backward needs only its own output), so a pre-activation entry is the activation's output:
    no new buffer, one pass fewer over it."""
    acts = [x]
    owned = False  # is x a temporary of this function (then an activation may overwrite it)?
    for layer in layers:
        if isinstance(layer, nn.Linear):
            x, owned = torch.addmm(layer.bias, x, layer.weight.t()), True
        elif isinstance(layer, nn.Tanh):
            x = x.tanh_() if owned else torch.tanh(x)
        else:
            x = x.relu_() if owned else torch.relu(x)
        acts.append(x)
    return acts


def mlp_backward(layers, acts: list[torch.Tensor], g: torch.Tensor, *, accumulate: bool = False) -> None:
    """Back-propagate ``g`` = ∂L/∂output through the stack by hand, setting each parameter's ``.grad``
    (adding to it with ``accumulate``, for losses that share a trunk)."""
    put = _accumulate if accumulate else _set
    owned = False  # is g a temporary of this function (then the activation steps overwrite it)?
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if isinstance(layer, nn.Linear):
            put(layer.weight, g.t().mm(acts[i]))
            put(layer.bias, g.sum(0))
            if i > 0:
                g, owned = g.mm(layer.weight), True
        else:
            g = activation_backward(g, acts[i + 1], isinstance(layer, nn.ReLU), inplace=owned)


def _set(p: torch.Tensor, g: torch.Tensor) -> None:
    p.grad = g


def _accumulate(p: torch.Tensor, g: torch.Tensor) -> None:
    if p.grad is None:
        p.grad = g
    else:
        p.grad.add_(g)


class Forward:
    """Outputs of one forward pass, kept for ``backward``."""

    __slots__ = ("acts", "aux", "entropy", "logprobs", "out", "v_acts", "values")


@torch.no_grad()
def forward(model: ActorCritic, obs: torch.Tensor, actions: torch.Tensor, entropy: bool = True) -> Forward:
    """log π(a|s), H(π(·|s)) (only if ``entropy``; else None), V(s) of a minibatch, plus what
    ``backward`` needs."""
    f = Forward()
    f.acts = mlp_forward(model.actor, obs)
    f.out = f.acts[-1]
    if model.critic is not None:
        f.v_acts = mlp_forward(model.critic, obs)
        v = f.v_acts[-1]
        f.values = v.squeeze(-1)
    else:
        f.v_acts, f.values = None, torch.zeros(obs.shape[0], dtype=obs.dtype, device=obs.device)
    if model.sde:  # σ(s) = sqrt(z² @ σ² + eps), z = last hidden features (detached)
        z2 = f.acts[-2] * f.acts[-2]  # (B, F)
        var_w = torch.exp(2.0 * model.log_std)  # (F, d)
        std = torch.sqrt(z2.mm(var_w) + SDE_EPS)  # (B, d)
        u = (actions - f.out) / std
        log_s = torch.log(std)
        f.logprobs = (-0.5 * u * u - log_s).sum(-1) - 0.5 * 1.8378770664093453 * u.shape[-1]
        f.entropy = (log_s + 0.5 * (1.0 + 1.8378770664093453)).sum(-1)
        f.aux = (u, std, z2, var_w)
    elif model.continuous:
        log_std = model.log_std
        inv_std = torch.exp(-log_std)
        z = (actions - f.out) * inv_std  # (B, d)
        f.logprobs = (-0.5 * z * z - log_std).sum(-1) - 0.5 * 1.8378770664093453 * z.shape[-1]
        f.entropy = (log_std.sum() + 0.5 * (1.0 + 1.8378770664093453) * z.shape[-1]).expand(obs.shape[0])
        f.aux = (z, inv_std)
    else:
        logp_all = torch.log_softmax(f.out, dim=-1)  # (B, n)
        p = logp_all.exp()
        f.logprobs = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        f.entropy = -(p * logp_all).sum(-1) if entropy else None
        f.aux = (logp_all, p, actions)
    return f


@torch.no_grad()
def backward(model: ActorCritic, f: Forward, g_logp: torch.Tensor, g_ent: torch.Tensor | float,
             g_value: torch.Tensor | None) -> None:
    """Accumulate parameter gradients of L given ∂L/∂log π (B,), ∂L/∂H (B,) or scalar, ∂L/∂V (B,)."""
    if model.sde:
        u, std, z2, var_w = f.aux
        g_out = g_logp.unsqueeze(-1) * u / std  # ∂log π/∂μ = u/σ(s)
        # ∂log π/∂σ(s) = (u² − 1)/σ(s), ∂H/∂σ(s) = 1/σ(s); ∂σ(s)_k/∂log σ_jk = z_j² σ_jk² / σ(s)_k
        g_ent_col = g_ent.unsqueeze(-1) if torch.is_tensor(g_ent) else g_ent
        g_std = (g_logp.unsqueeze(-1) * (u * u - 1.0) + g_ent_col) / (std * std)
        _accumulate(model.log_std, z2.t().mm(g_std) * var_w)
    elif model.continuous:
        z, inv_std = f.aux
        g_out = g_logp.unsqueeze(-1) * z * inv_std  # ∂log π/∂μ = z/σ
        g_ent_sum = g_ent.sum() if torch.is_tensor(g_ent) else g_ent * z.shape[0]
        g_log_std = (g_logp.unsqueeze(-1) * (z * z - 1.0)).sum(0) + g_ent_sum  # ∂H/∂log σ = 1
        _accumulate(model.log_std, g_log_std)
    else:
        logp_all, p, actions = f.aux
        onehot = torch.zeros_like(p).scatter_(-1, actions.long().unsqueeze(-1), 1.0)
        # ∂log π(a)/∂logits = onehot(a) − p;  ∂H/∂logits = −p (log p + H)
        g_out = g_logp.unsqueeze(-1) * (onehot - p)
        if torch.is_tensor(g_ent) or g_ent != 0.0:
            g_ent_col = g_ent.unsqueeze(-1) if torch.is_tensor(g_ent) else g_ent
            ent = f.entropy if f.entropy is not None else -(p * logp_all).sum(-1)
            g_out = g_out - g_ent_col * p * (logp_all + ent.unsqueeze(-1))
    mlp_backward(model.actor, f.acts, g_out, accumulate=True)
    if g_value is not None and model.critic is not None:
        mlp_backward(model.critic, f.v_acts, g_value.unsqueeze(-1), accumulate=True)
