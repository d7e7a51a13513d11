"""Process-wide settings: ``rlworks.train`` leaves the process as it found it (threads, flush-to-zero,
matmul precision, malloc), and ``core.runtime.tuned`` restores what it changed, also after an error."""

from __future__ import annotations

import pytest
import torch

import rlworks
from rlworks.core import allocator, runtime


@pytest.fixture
def malloc_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: calls.append(1) or True)
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
