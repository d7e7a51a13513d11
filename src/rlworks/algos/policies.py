"""The policies an on-policy rollout acts with (the sampler's ``Policy`` protocol): ``TorchPolicy`` (the
model itself, any device) and ``NumpyPolicy`` (the same maths in NumPy on zero-copy views of the CPU
parameters, for the small MLPs where torch's per-call dispatch outweighs the arithmetic)."""

from __future__ import annotations

import numpy as np
import torch

from ..core.nets import ActorCritic, numpy_layers, numpy_mlp
from ..core.sde import NumpyNoise, StateDependentGaussian


class TorchPolicy:
    """Adapts an ``ActorCritic`` to the sampler's ``Policy`` protocol (batched, no autograd).
    gSDE weights θ_ε are drawn from ``generator`` at ``reset_noise`` and every ``sde_sample_freq`` steps."""

    def __init__(self, model: ActorCritic, generator: torch.Generator, device: torch.device,
                 sde_sample_freq: int = 0) -> None:
        self.model, self.generator, self.device = model, generator, device
        self.sde_sample_freq, self.weights, self.steps = int(sde_sample_freq), None, 0

    def reset_noise(self, n: int) -> None:
        if self.model.sde:
            with torch.inference_mode():
                self.weights = StateDependentGaussian.sample_weights(self.model.log_std, n, self.generator)
            self.steps = 0

    def step(self, obs: np.ndarray):
        with torch.inference_mode():
            x = torch.from_numpy(obs).to(self.device)
            if not self.model.sde:
                a, lp, v = self.model.sample(x, self.generator)
                return a.cpu().numpy(), lp.cpu().numpy(), v.cpu().numpy()
            n = x.shape[0]
            if self.weights is None or self.weights.shape[0] != n or (
                    self.sde_sample_freq > 0 and self.steps > 0 and self.steps % self.sde_sample_freq == 0):
                steps = self.steps
                self.reset_noise(n)
                self.steps = steps
            self.steps += 1
            mean, log_std, h = self.model.dist_params(x)
            a = mean + StateDependentGaussian.noise(h, self.weights)
            lp = StateDependentGaussian.log_prob(mean, log_std, h, a)
            return a.cpu().numpy(), lp.cpu().numpy(), self.model.value(x).cpu().numpy()

    def values(self, obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model.value(torch.from_numpy(obs).to(self.device)).cpu().numpy()


class NumpyPolicy:
    """Rollout-time policy evaluated in NumPy on zero-copy views of the CPU parameters.

    Acting on a few observations costs ~20 torch ops whose dispatch outweighs the arithmetic; the
    same maths in NumPy takes a fraction of that. Sampling uses its own ``numpy.random.Generator``
    (checkpointed)."""

    def __init__(self, model: ActorCritic, rng: np.random.Generator, sde_sample_freq: int = 0) -> None:
        self.model, self.rng = model, rng
        self.actor = numpy_layers(model.actor, copy=False)
        self.critic = numpy_layers(model.critic, copy=False) if model.critic is not None else None
        self.log_std = model.log_std.detach().numpy() if model.continuous else None
        self.sde = NumpyNoise(self.log_std, sde_sample_freq, rng) if model.sde else None

    def reset_noise(self, n: int) -> None:
        if self.sde is not None:
            self.sde.reset(n)

    def step(self, obs: np.ndarray):
        n = obs.shape[0]
        if self.sde is not None:  # gSDE (core.sde): ε(s) = z(s) θ_ε, σ(s) = sqrt(z² @ σ² + eps)
            h = numpy_mlp(self.actor[:-1], obs)
            out = numpy_mlp(self.actor[-1:], h)
            eps, std = self.sde(h)
            u = eps / std
            logp = (-0.5 * u * u - np.log(std)).sum(-1) - 0.5 * _LOG_2PI * out.shape[-1]
            return out + eps, logp, self.values(obs)
        out = numpy_mlp(self.actor, obs)
        if self.log_std is None:
            z = out - out.max(-1, keepdims=True)
            e = np.exp(z)
            total = e.sum(-1, keepdims=True)
            u = self.rng.random((n, 1), dtype=np.float32) * total  # inverse-CDF sampling
            a = np.minimum((e.cumsum(-1) < u).sum(-1), out.shape[-1] - 1)
            logp = z[np.arange(n), a] - np.log(total[:, 0])
        else:
            noise = self.rng.standard_normal(out.shape, dtype=np.float32)
            a = out + noise * np.exp(self.log_std)
            logp = (-0.5 * noise * noise - self.log_std).sum(-1) - 0.5 * _LOG_2PI * out.shape[-1]
        return a, logp, self.values(obs)

    def values(self, obs: np.ndarray) -> np.ndarray:
        if self.critic is None:
            return np.zeros(obs.shape[0], dtype=np.float32)
        return numpy_mlp(self.critic, obs)[:, 0]


_LOG_2PI = float(np.log(2 * np.pi))
