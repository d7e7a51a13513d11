"""One place where randomness starts.

Training never touches the process's global generators (CONVENTIONS rule 11): every consumer (each
env, the sampling generators, workers) takes a child of ``numpy.random.SeedSequence(seed)`` via
``spawn_seeds`` so streams never overlap (NumPy's recommended practice for parallel streams:
https://numpy.org/doc/stable/reference/random/parallel.html), and initial weights are drawn inside
``seeded_init(seed)``, which restores torch's global RNG afterwards. ``seed_everything`` is for
scripts that want the global generators seeded too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def seed_everything(seed: int) -> np.random.SeedSequence:
    """Seed python/numpy/torch global state and return the root SeedSequence for ``seed``."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.SeedSequence(seed)


@contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Draw initial weights from ``seed`` (``nn.Module`` constructors use torch's global RNG), leaving
    the caller's global RNG state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


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
