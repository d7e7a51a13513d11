"""How an algorithm's update runs: the config field ``backend``.

* ``"autograd"``: the update as written in the algorithm's file (losses, ``.backward()``, optimizer
  steps). It runs on any device and is the reference every other backend is tested against.
* ``"compile"``: the same update through ``torch.compile`` (LeanRL's route). Compilation happens on
  the first call; ``CompiledUpdate.compile_seconds`` says how long it took.
* ``"fused"``: a hand-written forward/backward of the same losses (``algos/fused/``), for the small
  MLPs of classic control on CPU where autograd's bookkeeping costs about as much as the arithmetic.
  Kept only where it measured ≥ 5 % faster (docs/benchmarks.md).
* ``"auto"`` (the default): ``"fused"`` where the algorithm has one for this network, else ``"autograd"``.

``tests/unit/test_backends.py`` checks every backend against ``"autograd"`` over 50 updates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..config import BACKENDS, ConfigError, check_choice


def resolve(algo: str, requested: str, *, fused: bool, network: str | None = None) -> str:
    """The backend to run: ``requested`` unless it is "auto"; ``fused`` says whether the algorithm
    has a fused update for this configuration. ``network`` describes a network the fused updates do
    not handle (they are MLPs on the flat observation only), for the error message."""
    check_choice("backend", requested, BACKENDS)
    if requested == "auto":
        return "fused" if fused else "autograd"
    if requested == "fused" and not fused:
        why = (f"handles MLPs on the flat observation only; this {algo} network has {network}" if network
               else f"is not available for {algo} with this configuration")
        raise ConfigError(f"backend='fused' {why}: use backend auto, autograd or compile")
    return requested


def choose(backend: str, update: Callable[..., Any], fused: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """The update function for a resolved ``backend``: ``update`` itself, compiled, or ``fused``."""
    if backend == "compile":
        return CompiledUpdate(update)
    if backend == "fused":
        assert fused is not None, "resolve() gives 'fused' only where there is one"
        return fused
    return update


class CompiledUpdate:
    """``torch.compile(fn)``; ``compile_seconds`` adds up the calls during which a graph was compiled
    (an update with graph breaks compiles its pieces over its first few calls)."""

    def __init__(self, fn: Callable[..., Any], **options: Any) -> None:
        import torch
        from torch._dynamo.utils import counters

        self.fn = torch.compile(fn, **options)
        self._graphs = counters["stats"]
        self.compile_seconds: float | None = None
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.calls > 20:  # compilation is over by then; no bookkeeping per update
            return self.fn(*args, **kwargs)
        self.calls += 1
        graphs = self._graphs["unique_graphs"]
        t0 = time.perf_counter()
        out = self.fn(*args, **kwargs)
        if self._graphs["unique_graphs"] != graphs:
            self.compile_seconds = (self.compile_seconds or 0.0) + time.perf_counter() - t0
        return out
