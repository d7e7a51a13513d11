"""Action distributions as small stateless helpers over raw tensors.

``torch.distributions`` validates arguments and allocates objects on every call; for a 64-unit MLP
that overhead dominates a rollout step, so these work directly on logits / (mean, log_std).
Sampling always takes an explicit ``torch.Generator`` so runs are reproducible bit for bit.
"""

from __future__ import annotations

import math

import torch

_LOG_2PI = math.log(2.0 * math.pi)


class Categorical:
    """Distribution over ``n`` discrete actions parameterised by logits ``(B, n)``."""

    continuous = False

    @staticmethod
    def sample(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        # inverse-CDF sampling with one uniform per row: cheap and exact
        probs = torch.softmax(logits, dim=-1)
        u = torch.rand(logits.shape[:-1] + (1,), generator=generator, device=logits.device, dtype=probs.dtype)
        idx = (probs.cumsum(-1) < u).sum(-1)
        return idx.clamp_(max=logits.shape[-1] - 1)

    @staticmethod
    def log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits, dim=-1)
        return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def entropy(logits: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits, dim=-1)
        return -(logp.exp() * logp).sum(-1)

    @staticmethod
    def mode(logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(-1)


class DiagGaussian:
    """Diagonal Gaussian with a state-independent log-std (Schulman et al. 2017, PPO §6.1;
    Huang et al. 2022, continuous-action detail #1). Parameters: ``mean (B, d)``, ``log_std (d,)``."""

    continuous = True

    @staticmethod
    def sample(mean: torch.Tensor, log_std: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + noise * log_std.exp()

    @staticmethod
    def log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)

    @staticmethod
    def entropy(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        ent = (log_std + 0.5 * (1.0 + _LOG_2PI)).sum(-1)
        return ent.expand(mean.shape[:-1])

    @staticmethod
    def mode(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
        return mean
