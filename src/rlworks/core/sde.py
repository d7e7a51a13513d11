"""Generalized State-Dependent Exploration (gSDE): Raffin, Kober & Stulp 2021, "Smooth Exploration
for Robotic Reinforcement Learning" (CoRL), §3; as in Stable-Baselines3 (``use_sde=True``).

The action noise is a linear function of the policy's last hidden features ``z(s)``:

    a = μ(s) + ε(s),   ε(s) = z(s) θ_ε,   θ_ε ~ N(0, σ²) elementwise, shape (F, d)

``θ_ε`` is held fixed for ``sde_sample_freq`` steps (and resampled at every rollout start), so
exploration is smooth in time and a function of the state. Given ``z(s)``, ε(s) is Gaussian with
independent components of variance ``σ²(s)_k = Σ_j z_j(s)² σ_jk²``: log-probabilities and entropy
use that diagonal Gaussian. σ = exp(log_std) is learned per (feature, action); ``z`` is detached
(SB3's default ``learn_features=False``), so the features learn only through the mean.

Stateless helpers over raw tensors like ``core.distributions``; parameters ``(mean (B, d),
log_std (F, d), features (B, F))``. Sampling takes an explicit generator.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_LOG_2PI = math.log(2.0 * math.pi)
EPS = 1e-6
"""added to the variance σ(s)² as in SB3's StateDependentNoiseDistribution, so a zero feature
vector cannot give a zero variance"""


def state_std(log_std: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """σ(s) (B, d) = sqrt(z(s)² @ exp(log_std)² + EPS)."""
    return torch.sqrt(features.pow(2).mm(torch.exp(2.0 * log_std)) + EPS)


class StateDependentGaussian:
    """The gSDE action distribution given the features (θ_ε integrated out)."""

    continuous = True

    @staticmethod
    def sample_weights(log_std: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """θ_ε for ``n`` environments: (n, F, d), each entry ~ N(0, σ_jk²)."""
        noise = torch.randn((n, *log_std.shape), generator=generator, device=log_std.device, dtype=log_std.dtype)
        return noise * log_std.exp()

    @staticmethod
    def noise(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """ε(s) = z(s) θ_ε per environment: features (n, F), weights (n, F, d) → (n, d)."""
        return torch.bmm(features.unsqueeze(1), weights).squeeze(1)

    @staticmethod
    def sample(mean: torch.Tensor, log_std: torch.Tensor, features: torch.Tensor,
               generator: torch.Generator | None) -> torch.Tensor:
        """One action per row with fresh weights (what a per-step resample would give)."""
        w = StateDependentGaussian.sample_weights(log_std, mean.shape[0], generator)
        return mean + StateDependentGaussian.noise(features, w)

    @staticmethod
    def log_prob(mean: torch.Tensor, log_std: torch.Tensor, features: torch.Tensor,
                 actions: torch.Tensor) -> torch.Tensor:
        std = state_std(log_std, features)
        u = (actions - mean) / std
        return (-0.5 * u.pow(2) - torch.log(std) - 0.5 * _LOG_2PI).sum(-1)

    @staticmethod
    def entropy(mean: torch.Tensor, log_std: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return (torch.log(state_std(log_std, features)) + 0.5 * (1.0 + _LOG_2PI)).sum(-1)

    @staticmethod
    def mode(mean: torch.Tensor, log_std: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return mean


class NumpyNoise:
    """Rollout-time gSDE noise in NumPy: per-env weights θ_ε (N, F, d) drawn from ``rng`` at
    ``reset`` (every rollout start) and every ``sample_freq`` steps (0: only at ``reset``)."""

    def __init__(self, log_std: np.ndarray, sample_freq: int, rng: np.random.Generator) -> None:
        self.log_std, self.sample_freq, self.rng = log_std, int(sample_freq), rng
        self.weights: np.ndarray | None = None
        self.steps = 0

    def reset(self, n: int) -> None:
        shape = (n, *self.log_std.shape)
        self.weights = self.rng.standard_normal(shape, dtype=np.float32) * np.exp(self.log_std)
        self.steps = 0

    def __call__(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ε (n, d), σ(s) (n, d)) for features (n, F)."""
        n = features.shape[0]
        if self.weights is None or self.weights.shape[0] != n or (
                self.sample_freq > 0 and self.steps > 0 and self.steps % self.sample_freq == 0):
            steps = self.steps
            self.reset(n)
            self.steps = steps
        self.steps += 1
        eps = np.einsum("nf,nfd->nd", features, self.weights)
        std = np.sqrt((features * features) @ np.exp(2.0 * self.log_std) + EPS)
        return eps, std
