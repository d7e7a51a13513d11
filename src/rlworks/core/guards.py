"""Non-finite guards: stop training at the first NaN/inf and say where it came from.

A NaN that reaches the optimiser silently destroys every parameter; failing fast with the origin
(observation, reward, loss, gradient, parameter) makes the bug findable, and checkpoints refuse
non-finite tensors so a broken model is never saved.
"""

from __future__ import annotations

import numpy as np
import torch

ORIGINS = ("observation", "reward", "loss", "gradient", "parameter", "checkpoint")


class NonFiniteError(RuntimeError):
    """Training produced or received a NaN/inf; ``origin`` is one of ``ORIGINS``."""

    def __init__(self, origin: str, detail: str) -> None:
        self.origin = origin
        super().__init__(f"non-finite {origin}: {detail}")


def check_array(origin: str, x: np.ndarray, where: str = "") -> None:
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(np.asarray(x)))[0].tolist()
        raise NonFiniteError(origin, f"{where} value {np.asarray(x)[tuple(bad)]!r} at index {bad}".strip())


def check_tensor(origin: str, x: torch.Tensor, where: str = "") -> None:
    if not bool(torch.isfinite(x).all()):
        raise NonFiniteError(origin, f"{where} contains NaN/inf".strip())


def check_module(origin: str, module: torch.nn.Module) -> None:
    """Check every parameter (``origin='parameter'``) or every gradient (``origin='gradient'``)."""
    for name, p in module.named_parameters():
        t = p.grad if origin == "gradient" else p
        if t is not None and not bool(torch.isfinite(t).all()):
            raise NonFiniteError(origin, f"{name} contains NaN/inf")
