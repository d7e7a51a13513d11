"""Categorical ("support") representation of values and rewards for MuZero (Schrittwieser et al. 2020,
appendix F).

MuZero predicts values and rewards as distributions over the integer atoms ``-S..S`` of a *rescaled*
scalar: a target x is first squashed by the invertible transform of Pohlen et al. 2018 ("Observe and
Look Further", §3.2),

    h(x) = sign(x) (sqrt(|x| + 1) − 1) + ε x,

clamped to [−S, S] and written as a two-hot vector over the 2S+1 atoms (the probability split between the
two neighbouring atoms so that the expectation is exactly h(x)); the network's logits are trained with
cross-entropy against it. A prediction goes back to a scalar by the expectation of the softmax over the
atoms followed by h⁻¹.

Both transforms are written in forms free of cancellation (``|x| / (sqrt(|x|+1) + 1)`` instead of
``sqrt(|x|+1) − 1``, and a rationalised closed form of h⁻¹), so ``h_inv(h(x))`` is exact to a few ulps in
float32 for tiny and huge |x| alike.
"""

from __future__ import annotations

import torch

DEFAULT_EPS = 1e-3  # ε of MuZero's Atari experiments (appendix F)


def h(x: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """h(x) = sign(x)(sqrt(|x|+1) − 1) + εx (Pohlen et al. 2018), elementwise, any shape."""
    a = x.abs()
    # sqrt(|x|+1) − 1 = |x| / (sqrt(|x|+1) + 1): no cancellation for small |x|
    return torch.sign(x) * (a / (torch.sqrt(a + 1.0) + 1.0)) + eps * x


def h_inv(y: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """The exact inverse of ``h``, elementwise, any shape.

    Pohlen et al. 2018 (Proposition A.2): h⁻¹(y) = sign(y) (((sqrt(1 + 4ε(|y| + 1 + ε)) − 1) / (2ε))² − 1).
    With s = sqrt(1 + 4ε(|y|+1+ε)) and q = (s − 1)/(2ε) = 2(|y|+1+ε)/(1+s), the bracket is
    q² − 1 = (q − 1)(q + 1) with q − 1 = 4|y|(|y|+1+ε) / ((1 + 2|y| + 2ε + s)(1 + s)) — the same value
    without the two cancellations of the textbook form (s − 1 for small ε|y|, q² − 1 for small |y|).
    """
    a = y.abs()
    c = a + 1.0 + eps
    s = torch.sqrt(1.0 + 4.0 * eps * c)
    q_minus_1 = 4.0 * a * c / ((1.0 + 2.0 * a + 2.0 * eps + s) * (1.0 + s))
    return torch.sign(y) * q_minus_1 * (q_minus_1 + 2.0)


def scalar_to_support(x: torch.Tensor, support_size: int, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Two-hot targets over the atoms −S..S: (...) -> (..., 2S+1) probabilities (MuZero appendix F).

    h(x) is clamped to [−S, S]; with lo = floor(h(x)) the atom lo gets 1 − (h(x) − lo) and the atom lo+1 gets
    h(x) − lo, so that Σ_i p_i · atom_i = clamp(h(x)).
    """
    S = int(support_size)
    y = h(x, eps).clamp(-S, S)  # (...)
    lo = y.floor()
    p_hi = y - lo
    idx_lo = (lo + S).long()  # (...) in 0..2S
    idx_hi = (idx_lo + 1).clamp(max=2 * S)  # at y = S the upper weight is 0: fold it onto the last atom
    out = torch.zeros(*x.shape, 2 * S + 1, dtype=y.dtype, device=x.device)  # (..., 2S+1)
    out.scatter_add_(-1, idx_lo.unsqueeze(-1), (1.0 - p_hi).unsqueeze(-1))
    out.scatter_add_(-1, idx_hi.unsqueeze(-1), p_hi.unsqueeze(-1))
    return out


def support_to_scalar(logits: torch.Tensor, support_size: int, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Scalars from logits over the atoms −S..S: (..., 2S+1) -> (...): h⁻¹(E_softmax[atom])."""
    S = int(support_size)
    if logits.shape[-1] != 2 * S + 1:
        raise ValueError(f"expected {2 * S + 1} atoms in the last axis for support_size {S}, got {logits.shape[-1]}")
    probs = torch.softmax(logits, dim=-1)  # (..., 2S+1)
    atoms = torch.arange(-S, S + 1, dtype=probs.dtype, device=probs.device)  # (2S+1,)
    return h_inv((probs * atoms).sum(-1), eps)  # (...)
