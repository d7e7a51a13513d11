"""A small causal transformer block of GPT-2's shape (Radford et al. 2019): pre-LayerNorm, causal multi-head
self-attention and a 4x MLP, each added back to its input. It knows no algorithm: the caller gives the
boolean attention mask (True where token i may attend to token j) and the generator dropout draws from,
so that a seeded run drops the same units again on resume (None: no dropout, as at evaluation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, g: torch.Generator | None,
                at: torch.Tensor | None = None) -> torch.Tensor:
        B, L, D = x.shape
        H, d = self.n_head, D // self.n_head
        if at is None:
            q, k, v = self.qkv(x).view(B, L, 3, H, d).permute(2, 0, 3, 1, 4)  # (B, H, L, d)
        else:  # queries at the tokens ``at`` only (M of them); keys and values at every token
            w_q, w_kv = self.qkv.weight.split([D, 2 * D])
            b_q, b_kv = self.qkv.bias.split([D, 2 * D])
            q = F.linear(x[:, at], w_q, b_q).view(B, -1, H, d).transpose(1, 2)  # (B, H, M, d)
            k, v = F.linear(x, w_kv, b_kv).view(B, L, 2, H, d).permute(2, 0, 3, 1, 4)  # (B, H, L, d)
            allowed = allowed[:, :, at]
        att = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, H, L or M, L)
        att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
        y = dropout(att, self.p, g) @ v  # (B, H, L or M, d)
        return dropout(self.proj(y.transpose(1, 2).reshape(B, -1, D)), self.p, g)


class Block(nn.Module):
    """x + attn(LN(x)), then x + MLP(LN(x)) (GPT-2's pre-LayerNorm block)."""

    def __init__(self, dim: int, n_head: int, p: float, activation: str) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_head, p)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU() if activation == "relu" else nn.GELU(),
                                 nn.Linear(4 * dim, dim))
        self.p = p

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, g: torch.Generator | None,
                at: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, D) → (B, L, D); with ``at`` (token indices) only those tokens' outputs (B, M, D): each still
        attends to every token it may, and the rest of the block runs on M rows instead of L."""
        y = x + self.attn(self.ln1(x), allowed, g) if at is None else x[:, at] + self.attn(self.ln1(x), allowed, g, at)
        return y + dropout(self.mlp(self.ln2(y)), self.p, g)
