"""``rlworks.train(..., matmul_precision=...)``: torch's float32 product precision is set for the
duration of training only, and a wrong value is refused before anything is built."""

import pytest
import torch

import rlworks
from rlworks.config import ConfigError


def test_set_while_training_and_restored_after():
    before = torch.get_float32_matmul_precision()
    seen = []

    def callback(s) -> bool:
        seen.append(torch.get_float32_matmul_precision())
        return False

    rlworks.train("sac", "Pendulum-v1", total_steps=120, learning_starts=100, hidden=(16, 16), batch_size=8,
                  matmul_precision="medium", callback=callback)
    assert set(seen) == {"medium"}
    assert torch.get_float32_matmul_precision() == before


def test_restored_after_a_failed_run():
    before = torch.get_float32_matmul_precision()

    def boom(s) -> bool:
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        rlworks.train("dqn", "CartPole-v1", total_steps=50, learning_starts=10, hidden=(8,), matmul_precision="high",
                      callback=boom)
    assert torch.get_float32_matmul_precision() == before


def test_none_leaves_the_setting_alone():
    torch.set_float32_matmul_precision("high")
    try:
        seen = []
        rlworks.train("ppo", "CartPole-v1", total_steps=64, n_envs=1, n_steps=64, batch_size=32,
                      callback=lambda s: seen.append(torch.get_float32_matmul_precision()) or False)
        assert seen and set(seen) == {"high"}
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision("highest")


def test_a_wrong_value_is_refused():
    with pytest.raises(ConfigError, match="did you mean 'medium'"):
        rlworks.train("sac", "Pendulum-v1", total_steps=10, matmul_precision="meduim")
