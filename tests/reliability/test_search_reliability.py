"""MuZero and AlphaZero: a run stopped at a checkpoint and resumed ends exactly where the uninterrupted run
ends (networks, optimizer, replay with its priorities, RNGs, envs and the games being played)."""

import shutil

import pytest
import torch

from rlworks.algos import alphazero, muzero
from rlworks.core.checkpoint import load_checkpoint
from rlworks.core.run import RunContext

CASES = {
    "muzero": (muzero, "CartPole-v1", None, dict(n_envs=2, num_simulations=4, batch_size=8, learning_starts=40,
                                                 latent_dim=8, hidden=(16,), num_unroll=3, td_steps=3,
                                                 replay_size=2000, updates_per_step=0.25)),
    "muzero-symmetries": (muzero, "rlworks/TicTacToe-v0", {"opponent": "self-play"},
                          dict(n_envs=2, num_simulations=4, batch_size=8, learning_starts=20, latent_dim=8,
                               hidden=(16,), num_unroll=2, td_steps=9, replay_size=2000, updates_per_step=0.5,
                               augment_symmetries=True, reanalyse_policy_fraction=0.5, opening_moves=2,
                               reanalyse_noise=True, reanalyse_value_mix=0.5, random_move_prob=0.2)),
    "alphazero": (alphazero, "rlworks/TicTacToe-v0", {"opponent": "self-play"},
                  dict(n_envs=2, num_simulations=6, batch_size=8, learning_starts=20, hidden=(16,), replay_size=2000,
                       updates_per_step=0.5, weight_average=0.9)),
}


def _train(name, steps, **run):
    import gymnasium as gym

    mod, env_id, kwargs, over = CASES[name]
    env = (lambda: gym.make(env_id, **kwargs)) if kwargs else env_id
    return mod.train(env, mod.CONFIG(**over), total_steps=steps, seed=3, run=RunContext(**run))


@pytest.mark.parametrize("name,n", [("muzero", 100), ("muzero-symmetries", 60), ("alphazero", 60)])
def test_train_2n_equals_train_n_then_resume(tmp_path, name, n, same_checkpoints):
    torch.set_num_threads(1)
    full = tmp_path / "full"
    _train(name, 2 * n, checkpoint_dir=full, checkpoint_every=n)
    half = tmp_path / "half"
    half.mkdir()
    shutil.copytree(full / f"step-{n}", half / f"step-{n}")
    (half / "latest").write_text(f"step-{n}\n")
    _, _, arrays, _ = load_checkpoint(half, with_buffer=True)
    assert any(len(v) for k, v in arrays.items() if k.startswith("live/") and k.endswith("/actions")), \
        "the checkpoint should fall in the middle of a game (pick another n if the envs change)"
    assert any(k.startswith("replay/") for k in arrays)
    _train(name, 2 * n, checkpoint_dir=half, checkpoint_every=n, resume_from=half / f"step-{n}")
    same_checkpoints(full / f"step-{2 * n}", half / f"step-{2 * n}")
