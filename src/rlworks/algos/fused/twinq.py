"""Hand-written forward/backward passes through ``core.nets.TwinQ`` (the critics of SAC and TD3).

For 256×256 critics on a 256-sample batch on CPU, autograd's graph bookkeeping costs about as much
as the arithmetic; these passes keep each layer's output and back-propagate by hand with the same
kernels autograd would call. ``tests/unit/test_backends.py`` checks the updates built on them against
the autograd updates in ``algos/sac.py`` and ``algos/td3.py``. Call them without autograd.
"""

from __future__ import annotations

import torch

from ...core import fastgrad
from ...core.nets import TwinQ


def forward(q: TwinQ, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Q-values (n, B) and every layer's input, for ``backward``."""
    x = torch.cat([obs, actions], -1).unsqueeze(0).expand(q.n, -1, -1)
    acts = [x]
    last = len(q.layers) - 1
    act_ = torch.relu_ if q.relu else torch.tanh_  # in place: the backward needs only the output
    for i, (w, b) in enumerate(q.layers):
        x = torch.bmm(x, w).add_(b)  # bmm then an in-place bias: baddbmm first copies the bias into the output
        if i < last:
            x = act_(x)
        acts.append(x)
    return x.squeeze(-1), acts


def backward(q: TwinQ, acts: list[torch.Tensor], g_q: torch.Tensor) -> None:
    """Back-propagate ∂L/∂Q (n, B), setting every weight's and bias's ``.grad``."""
    g = g_q.unsqueeze(-1)  # (n, B, 1)
    last = len(q.layers) - 1
    for i in range(last, -1, -1):
        w, b = q.layers[i]
        if i == last:  # one output column: (gᵀx)ᵀ, since xᵀg with a single column takes a slow bmm path
            w.grad = torch.bmm(g.transpose(1, 2), acts[i]).transpose(1, 2)
        else:
            w.grad = torch.bmm(acts[i].transpose(1, 2), g)
        b.grad = g.sum(1, keepdim=True)
        if i > 0:
            g = g * w.transpose(1, 2) if i == last else torch.bmm(g, w.transpose(1, 2))  # outer product first
            g = fastgrad.activation_backward(g, acts[i], q.relu, inplace=True)


def input_grad(q: TwinQ, c: int, obs: torch.Tensor, actions: torch.Tensor, scale: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Critic ``c`` alone: Q_c(s, a) (B,) and ∂/∂a of ``scale`` · Σ_b Q_c(s_b, a_b) (B, act_dim), with
    2-D products (TD3's actor loss reads the first critic only; the other's forward would be wasted)."""
    act_ = torch.relu_ if q.relu else torch.tanh_
    x = torch.cat([obs, actions], -1)
    acts = [x]
    last = len(q.layers) - 1
    for i, (w, b) in enumerate(q.layers):
        x = torch.addmm(b[c], x, w[c])
        if i < last:
            x = act_(x)
        acts.append(x)
    return x.squeeze(-1), _input_grad_of(q, c, acts, scale, obs.shape[-1])


def _input_grad_of(q: TwinQ, c: int, acts: list[torch.Tensor], scale: float, input_from: int) -> torch.Tensor:
    """∂/∂x[:, input_from:] of ``scale`` · Σ_rows Q_c, back through critic ``c`` alone, given the inputs
    of its layers 1 … last on those rows, 2-D, as ``acts[1:last + 1]`` (``acts[0]`` is not read)."""
    weights = [w for w, _ in q.layers]
    last = len(weights) - 1
    # the output layer's gradient scale·wᵀ is the same on every row
    g = fastgrad.activation_backward((weights[last][c].t() * scale).expand(acts[last].shape[0], -1), acts[last],
                                     q.relu)
    for i in range(last - 1, 0, -1):
        g = fastgrad.activation_backward(g.mm(weights[i][c].t()), acts[i], q.relu, inplace=True)
    return g.mm(weights[0][c][input_from:].t())


def min_input_grad(q: TwinQ, acts: list[torch.Tensor], values: torch.Tensor, scale: float, input_from: int,
                   masked: bool | None = None) -> torch.Tensor:
    """∂/∂x[:, input_from:] of ``scale`` · Σ_b min_i Q_i(x_b) (the actor loss's path to the action).
    Only the smaller critic of each sample carries gradient, so each critic back-propagates just the rows
    where it is the minimum: half the arithmetic of a masked pass through both. With reduced-precision
    products on CPU (``matmul_precision``) every critic takes all rows instead, the others' rows zeroed:
    the row counts change every step, and oneDNN compiles and caches a kernel for each new bfloat16
    product shape (measured: +300 MB over 2,500 updates). ``masked`` forces one way (both are tested)."""
    # which samples each critic is the smaller one for (the first on ties, as amin's gradient in autograd)
    if q.n == 2:
        second = values[1] < values[0]
        smallest = (~second, second)
    else:
        which = values.argmin(0)
        smallest = tuple(which == c for c in range(q.n))
    weights = [w for w, _ in q.layers]
    last = len(weights) - 1
    if masked is None:
        masked = values.device.type == "cpu" and torch.get_float32_matmul_precision() != "highest"
    if masked:
        mask = torch.stack(smallest).unsqueeze(-1).to(values.dtype).mul_(scale)  # (n, B, 1)
        g = mask * weights[last].transpose(1, 2)  # (n, B, hidden)
        for i in range(last, 0, -1):
            g = fastgrad.activation_backward(g, acts[i], q.relu, inplace=True)
            w = weights[i - 1] if i > 1 else weights[0][:, input_from:]
            g = torch.bmm(g, w.transpose(1, 2))
        return g.sum(0)
    out = torch.empty(values.shape[1], acts[0].shape[-1] - input_from, dtype=values.dtype, device=values.device)
    for c in range(q.n):
        rows = smallest[c].nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        rows_acts = [None, *(acts[i][c].index_select(0, rows) for i in range(1, last + 1))]
        out.index_copy_(0, rows, _input_grad_of(q, c, rows_acts, scale, input_from))
    return out
