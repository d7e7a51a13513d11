"""Adam and RMSprop as a few fused/foreach ATen calls, without ``torch.optim``.

Why not ``torch.optim``: constructing the first ``torch.optim`` optimizer in a process imports
``torch._dynamo``, a start-up cost comparable to a whole short CartPole PPO run (docs/deep-rl.md).
The maths is the same as ``torch.optim.Adam(fused=True)`` (one ``torch._fused_adam_`` kernel) and
``torch.optim.RMSprop`` (α, ε outside the square root, no momentum), which is what OpenAI baselines
and SB3 use for A2C.

State is plain tensors (``state_dict()``) plus JSON hyperparameters, so checkpoints stay
safetensors + JSON. ``param_groups[0]["lr"]`` is read at every step (for annealing).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import torch


@functools.cache
def eager(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` excluded from ``torch.compile`` graphs (a graph break around it). Asked for only while
    compiling, so that nothing imports ``torch._dynamo`` (+1 s, +70 MB) unless backend "compile" runs."""
    return torch.compiler.disable(fn)


class _Base:
    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float) -> None:
        self.params = [p for p in params]
        self.param_groups = [{"lr": float(lr)}]
        #: per-parameter state tensors by name; each optimizer fills it in its constructor
        self.buffers: dict[str, list[torch.Tensor]] = {}

    def step(self) -> None:
        """One optimizer step. Under ``torch.compile`` it runs eagerly: the fused kernel updates its
        tensors in place, which a compiled graph refuses (the loss's graphs are still compiled)."""
        if torch.compiler.is_compiling():
            return eager(type(self)._step)(self)
        self._step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def _grads(self) -> list[torch.Tensor]:
        return [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{name}/{i}": t for name, ts in self.buffers.items() for i, t in enumerate(ts)}

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, ts in self.buffers.items():
            for i, t in enumerate(ts):
                key = f"{name}/{i}"
                if key not in tensors:
                    raise KeyError(f"optimizer state {key!r} missing")
                t.copy_(tensors[key])


class Adam(_Base):
    """Adam (Kingma & Ba 2015) with bias correction; one fused kernel per step."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, lr)
        self.betas, self.eps = betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        # one step counter per parameter, as torch.optim keeps them: a shared tensor aliased in a list
        # breaks torch.compile (and safetensors refuses shared storage); all advance in one foreach add
        device = self.params[0].device if self.params else None
        self.steps = [torch.zeros((), dtype=torch.float32, device=device) for _ in self.params]
        self.buffers = {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "step": self.steps}

    @torch.no_grad()
    def _step(self) -> None:
        torch._foreach_add_(self.steps, 1.0)
        torch._fused_adam_(self.params, self._grads(), self.exp_avg, self.exp_avg_sq, [], self.steps,
                           lr=self.param_groups[0]["lr"], beta1=self.betas[0], beta2=self.betas[1],
                           weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)


class RMSprop(_Base):
    """RMSprop (Tieleman & Hinton 2012) as torch.optim.RMSprop computes it (ε added after the root)."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8) -> None:
        super().__init__(params, lr)
        self.alpha, self.eps = alpha, eps
        self.square_avg = [torch.zeros_like(p) for p in self.params]
        self.buffers = {"square_avg": self.square_avg}

    @torch.no_grad()
    def _step(self) -> None:
        grads = self._grads()
        torch._foreach_mul_(self.square_avg, self.alpha)
        torch._foreach_addcmul_(self.square_avg, grads, grads, 1.0 - self.alpha)
        avg = torch._foreach_sqrt(self.square_avg)
        torch._foreach_add_(avg, self.eps)
        torch._foreach_addcdiv_(self.params, grads, avg, -self.param_groups[0]["lr"])
