"""Non-finite guards: stop training at the first NaN/inf and say where it came from.

A NaN that reaches the optimiser silently destroys every parameter; failing fast with the origin
(observation, reward, loss, gradient, parameter) makes the bug findable, and checkpoints refuse
non-finite tensors so a broken model is never saved. ``QGuard`` warns (once) when an off-policy
critic's Q-values leave the range the rewards allow: finite, but diverging.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

ORIGINS = ("observation", "reward", "loss", "gradient", "parameter", "checkpoint")


class NonFiniteError(RuntimeError):
    """Training produced or received a NaN/inf; ``origin`` is one of ``ORIGINS``."""

    def __init__(self, origin: str, detail: str) -> None:
        self.origin = origin
        super().__init__(f"non-finite {origin}: {detail}")


def check_array(origin: str, x: np.ndarray, where: str = "") -> None:
    if np.asarray(x).dtype.kind in "biu":  # integers (e.g. uint8 pixels) are always finite
        return
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(np.asarray(x)))[0].tolist()
        raise NonFiniteError(origin, f"{where} value {np.asarray(x)[tuple(bad)]!r} at index {bad}".strip())


def check_tensor(origin: str, x: torch.Tensor, where: str = "") -> None:
    if not bool(torch.isfinite(x).all()):
        raise NonFiniteError(origin, f"{where} contains NaN/inf".strip())


def check_losses(metrics: dict[str, float], step: int) -> None:
    """Raise ``NonFiniteError`` if a logged ``losses/...`` value is NaN or infinite."""
    for k, v in metrics.items():
        if k.startswith("losses/") and not math.isfinite(v):
            raise NonFiniteError("loss", f"{k} = {v} at step {step}")


def check_module(origin: str, module: torch.nn.Module) -> None:
    """Check every parameter (``origin='parameter'``) or every gradient (``origin='gradient'``)."""
    for name, p in module.named_parameters():
        t = p.grad if origin == "gradient" else p
        if t is not None and not bool(torch.isfinite(t).all()):
            raise NonFiniteError(origin, f"{name} contains NaN/inf")


# ---------------------------------------------------------------------------------------------
# Q-values beyond what the rewards allow (off-policy critics)
# ---------------------------------------------------------------------------------------------


class QDivergenceWarning(RuntimeWarning):
    """The critic's Q-values left the range the rewards allow: the "deadly triad" at work (Sutton & Barto
    2018 §11.3; van Hasselt et al. 2018, "Deep Reinforcement Learning and the Deadly Triad")."""


#: how far beyond the bound a logged Q-value may go before it is called diverging
Q_MARGIN = 2.0


class QGuard:
    """Warns once per run when the logged mean Q-value (``losses/q_values``) leaves the range the
    rewards allow. A discounted return sums rewards weighted γ^t, so |Q| ≤ R / (1 − γ), where R is the
    largest |reward| observed so far in this run (plus, for SAC's soft values, the largest entropy bonus
    α·|H| logged so far, which the targets add each step, and for Bootstrapped DQN the largest β·|p(s, a)|
    logged as ``losses/prior_values``: its fixed prior functions are part of every Q and of every target
    bootstrapped from them, so a head's Q follows its most optimistic prior by design). The warning fires
    above ``Q_MARGIN`` times that bound. No bound exists for γ = 1 or before any non-zero reward, so nothing
    is checked then."""

    def __init__(self, algo: str, gamma: float) -> None:
        self.algo, self.gamma = algo, float(gamma)
        self.reward_max, self.bonus_max, self.prior_max = 0.0, 0.0, 0.0
        self.warned_at: int | None = None

    def rewards(self, rewards: np.ndarray) -> None:
        r = float(np.abs(rewards).max()) if rewards.size else 0.0
        if r > self.reward_max:
            self.reward_max = r

    def check(self, step: int, out: dict[str, float]) -> None:
        if "losses/alpha" in out and "losses/entropy" in out:
            self.bonus_max = max(self.bonus_max, abs(out["losses/alpha"] * out["losses/entropy"]))
        self.prior_max = max(self.prior_max, abs(out.get("losses/prior_values", 0.0)))
        q = out.get("losses/q_values")
        if self.warned_at is not None or q is None or self.gamma >= 1.0 or self.reward_max <= 0.0:
            return
        scale = self.reward_max + self.bonus_max + self.prior_max
        bound = scale / (1.0 - self.gamma)
        if not (abs(q) <= Q_MARGIN * bound):  # NaN counts as diverged too
            self.warned_at = step
            warnings.warn(f"{self.algo}: the mean Q-value is {q:.4g} at step {step}, beyond what the rewards allow "
                          f"(|Q| <= max|r| (+ bonus, prior) / (1 - gamma) = {scale:.4g} / {1 - self.gamma:.4g} = "
                          f"{bound:.4g}, warned above {Q_MARGIN:g}x that): the critic is diverging; try a lower "
                          "learning_rate, anneal_lr, a larger target_update_interval or double_q",
                          QDivergenceWarning, stacklevel=2)
