"""One place where randomness starts.

``seed_everything(seed)`` seeds Python, NumPy's legacy global generator and torch, and returns a
``numpy.random.SeedSequence``; every other consumer (each env, the sampling generator, workers)
takes a child of that sequence via ``spawn_seeds`` so streams never overlap (NumPy's recommended
practice for parallel streams: https://numpy.org/doc/stable/reference/random/parallel.html).
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> np.random.SeedSequence:
    """Seed python/numpy/torch global state and return the root SeedSequence for ``seed``."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.SeedSequence(seed)


def spawn_seeds(seq: np.random.SeedSequence | int, n: int) -> list[int]:
    """``n`` independent 32-bit integer seeds derived from ``seq`` (an int or a SeedSequence)."""
    if not isinstance(seq, np.random.SeedSequence):
        seq = np.random.SeedSequence(int(seq))
    return [int(child.generate_state(1)[0]) for child in seq.spawn(n)]


def torch_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A private torch generator (sampling never touches torch's global RNG)."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g
