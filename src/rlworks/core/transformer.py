"""A small causal transformer block of GPT-2's shape (Radford et al. 2019): pre-LayerNorm, causal multi-head
self-attention and a 4x MLP, each added back to its input. It knows no algorithm: the caller gives the
boolean attention mask (True where token i may attend to token j) and the generator dropout draws from,
so that a seeded run drops the same units again on resume (None: no dropout, as at evaluation).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def dropout(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout drawing from ``generator`` (None: off, as at evaluation)."""
    if generator is None or p == 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    return x * keep / (1.0 - p)


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, n_head: int, p: float) -> None:
        super().__init__()
        self.n_head, self.p = n_head, p
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_head, D // self.n_head).permute(2, 0, 3, 1, 4)  # (B, H, L, d)
        att = q @ k.transpose(-2, -1) / math.sqrt(D // self.n_head)  # (B, H, L, L)
        att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
        y = dropout(att, self.p, g) @ v  # (B, H, L, d)
        return dropout(self.proj(y.transpose(1, 2).reshape(B, L, D)), self.p, g)


class Block(nn.Module):
    """x + attn(LN(x)), then x + MLP(LN(x)) (GPT-2's pre-LayerNorm block)."""

    def __init__(self, dim: int, n_head: int, p: float, activation: str) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_head, p)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU() if activation == "relu" else nn.GELU(),
                                 nn.Linear(4 * dim, dim))
        self.p = p

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), allowed, g)
        return x + dropout(self.mlp(self.ln2(x)), self.p, g)
