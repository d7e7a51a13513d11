"""Process-wide settings: ``rlworks.train`` leaves the process as it found it (threads, flush-to-zero,
matmul precision, malloc), and ``core.runtime.tuned`` restores what it changed, also after an error."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import rlworks
from rlworks.core import runtime


@pytest.fixture
def malloc_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(runtime, "retain_freed_memory_for_process", lambda: calls.append(1) or True)
    return calls


def test_flush_denormal_probe_reads_the_setting():
    before = runtime.flush_denormal_enabled()
    try:
        torch.set_flush_denormal(True)
        assert runtime.flush_denormal_enabled()
        torch.set_flush_denormal(False)
        assert not runtime.flush_denormal_enabled()
    finally:
        torch.set_flush_denormal(before)


@pytest.mark.parametrize("algo,env", [("ppo", "CartPole-v1"), ("dqn", "CartPole-v1"), ("sac", "Pendulum-v1")])
@pytest.mark.parametrize("threads,ftz", [(2, False), (3, True)])
def test_train_leaves_the_process_as_it_found_it(algo, env, threads, ftz, malloc_calls):
    old_threads, old_ftz = torch.get_num_threads(), runtime.flush_denormal_enabled()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(ftz)
    seen = []
    try:
        kw = {"n_envs": 1, "n_steps": 32, "batch_size": 16} if algo == "ppo" else {"learning_starts": 20,
                                                                                   "batch_size": 8, "hidden": (8,)}
        rlworks.train(algo, env, total_steps=64, seed=0, callback=lambda s: seen.append(
            (torch.get_num_threads(), runtime.flush_denormal_enabled())) or False, **kw)
        assert seen and set(seen) == {(1, True)}  # tuned while training: one thread, denormals flushed
        assert torch.get_num_threads() == threads
        assert runtime.flush_denormal_enabled() == ftz
        assert malloc_calls == []  # a library call never changes glibc's thresholds (no way to restore them)
    finally:
        torch.set_num_threads(old_threads)
        torch.set_flush_denormal(old_ftz)


def test_tuned_restores_after_an_error(malloc_calls):
    threads, precision, ftz = torch.get_num_threads(), torch.get_float32_matmul_precision(), \
        runtime.flush_denormal_enabled()
    with pytest.raises(RuntimeError, match="boom"):
        with runtime.tuned(1, matmul_precision="medium", flush_denormal=not ftz, retain_freed_memory=True):
            assert torch.get_float32_matmul_precision() == "medium"
            raise RuntimeError("boom")
    assert (torch.get_num_threads(), torch.get_float32_matmul_precision(), runtime.flush_denormal_enabled()) == \
        (threads, precision, ftz)
    assert malloc_calls == [1]  # only when asked (the CLI, the benchmarks)


def test_training_leaves_the_global_rngs_as_it_found_them():
    """The initial weights come from the seed inside a forked torch RNG (core.seeding.seeded_init); python's,
    NumPy's and torch's global generators are not touched (so neither is what a caller draws next)."""
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    for algo, env in (("ppo", "CartPole-v1"), ("a2c", "CartPole-v1"), ("reinforce", "CartPole-v1"),
                      ("dqn", "CartPole-v1"), ("sac", "Pendulum-v1"), ("td3", "Pendulum-v1")):
        kw = ({"n_envs": 1, "n_steps": 64, **({"batch_size": 32} if algo == "ppo" else {})}
              if algo in ("ppo", "a2c", "reinforce") else {"learning_starts": 20, "batch_size": 8, "hidden": (8,)})
        rlworks.train(algo, env, total_steps=64, seed=5, **kw)
    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])
