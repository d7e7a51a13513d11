"""K-step segments of a dataset's episodes: the Decision Transformer's minibatches (Chen et al. 2021), drawn
from an offline session's device tensors (``algos/offline.py``) with returns-to-go and timesteps added.
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import ConfigError
from .offline import Session


def add_sequence_tensors(s: Session, return_scale: float) -> None:
    """Add to ``s.data``, per transition t of the (whole) dataset: ``rtg`` = R̂_t / ``return_scale``, the
    undiscounted return-to-go R̂_t = Σ_{t' ≥ t} r_t' to the end of t's episode (``core.returns``, γ = 1);
    ``timesteps``, t's step within its episode; ``episode_end``, the row one past its episode's last."""
    from ..core.returns import discounted_returns

    data = s.dataset
    if len(s.data["obs"]) != len(data):
        raise ConfigError("sequence sampling needs the whole dataset (no row selection)")
    starts, lengths = data.episode_starts, data.episode_lengths
    ends = np.zeros((len(data), 1))
    ends[starts + lengths - 1] = 1.0  # the episode ends after this row: nothing flows back across it
    rewards = data.rewards.astype(np.float64)[:, None]  # (T, 1): one "env" of T steps
    rtg = discounted_returns(rewards, np.zeros_like(rewards), ends, ends, 1.0)[:, 0]
    episode = np.repeat(np.arange(len(starts)), lengths)
    out = {"rtg": (rtg / return_scale).astype(np.float32), "timesteps": np.arange(len(data)) - starts[episode],
           "episode_end": (starts + lengths)[episode]}
    s.data.update({k: torch.from_numpy(np.ascontiguousarray(v)).to(s.device) for k, v in out.items()})


def segment_rows(first: torch.Tensor, episode_end: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of the segments that start at ``first`` (B,): up to ``k`` steps, cut at the episode's end
    and padded on the left to ``k`` (as the authors' ``get_batch``). Returns ``rows`` (B, k), a valid row
    index everywhere (the first row at the padding), and ``mask`` (B, k), False at the padding."""
    length = torch.clamp(episode_end[first] - first, max=k)  # (B,) real steps in each segment
    pad = (k - length)[:, None]  # (B, 1)
    j = torch.arange(k, device=first.device)[None, :]  # (1, k)
    mask = j >= pad
    rows = torch.where(mask, first[:, None] + j - pad, first[:, None])
    return rows, mask


def sample_segments(s: Session, n: int, k: int) -> dict[str, torch.Tensor]:
    """``n`` segments of ``k`` steps (``add_sequence_tensors`` first): each starts at a transition drawn
    uniformly — an episode in proportion to its length, then a start in it uniformly, as the authors'
    ``get_batch`` — and runs to at most the episode's end. Every tensor (B, k, ...) with zeros at the
    padding, and ``mask`` (B, k)."""
    first = torch.randint(len(s.data["obs"]), (n,), generator=s.generator, device=s.device)
    rows, mask = segment_rows(first, s.data["episode_end"], k)
    out = {"mask": mask}
    for key in ("obs", "actions", "rtg", "timesteps"):
        v = s.data[key][rows]  # (B, k, ...)
        m = mask.view(*mask.shape, *([1] * (v.dim() - 2)))
        out[key] = torch.where(m, v, torch.zeros((), dtype=v.dtype, device=v.device))
    return out
