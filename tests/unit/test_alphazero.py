"""AlphaZero's true-rules search and its simulators (envs/simulators.py)."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlworks  # noqa: F401  (registers rlworks/TicTacToe-v0)
from rlworks.algos import alphazero as az
from rlworks.config import ConfigError
from rlworks.envs.simulators import CartPoleSimulator, TicTacToeSimulator


def test_the_cartpole_simulator_is_gymnasiums_cartpole():
    env, sim = gym.make("CartPole-v1"), CartPoleSimulator()
    rng = np.random.default_rng(0)
    for episode in range(5):
        obs, _ = env.reset(seed=episode)
        state = torch.tensor(obs[None], dtype=torch.float64)
        done = False
        while not done:
            a = int(rng.integers(2))
            obs, r, term, trunc, _ = env.step(a)
            state, reward, ended, _ = sim.step(state, torch.tensor([a]))
            np.testing.assert_allclose(state[0].numpy(), obs, atol=1e-5)
            assert bool(ended[0]) == term and float(reward[0]) == r
            done = term or trunc
    # a fallen pole is an absorbing state with no reward
    fallen = torch.tensor([[0.0, 0.0, 0.5, 0.0]], dtype=torch.float64)
    nxt, reward, ended, _ = sim.step(fallen, torch.tensor([1]))
    assert torch.equal(nxt, fallen) and float(reward[0]) == 0.0 and bool(ended[0])


def test_the_tictactoe_simulator_follows_the_env_from_its_observations():
    env, sim = gym.make("rlworks/TicTacToe-v0", opponent="self-play"), TicTacToeSimulator()
    rng = np.random.default_rng(1)
    for game in range(30):
        obs, info = env.reset(seed=game)
        state = sim.from_obs(torch.tensor(obs[None]))
        done = False
        while not done:
            assert np.array_equal(sim.legal(state)[0].numpy(), info["action_mask"])
            a = int(rng.choice(np.flatnonzero(info["action_mask"])))
            obs, r, done, _, info = env.step(a)
            state, reward, ended, _ = sim.step(state, torch.tensor([a]))
            assert float(reward[0]) == r and bool(ended[0]) == done
            if not done:
                assert torch.equal(sim.observe(state)[0], torch.tensor(obs))


def _search(board, x_to_move, simulations=200):
    """A search with an untrained network (uniform prior, value 0) from one TicTacToe position."""
    torch.manual_seed(0)
    cfg = az.AlphaZeroConfig(num_simulations=simulations, hidden=(16,))
    net = az.AlphaZeroNet(27, 9, cfg.hidden, cfg.support_size)
    sim = TicTacToeSimulator()
    b = torch.tensor([board], dtype=torch.float64)
    obs = sim.observe(torch.cat([b, torch.tensor([[float(x_to_move)]], dtype=torch.float64)], -1)).float()
    return az.search(net, sim, obs, cfg, rng=None)


def test_the_search_takes_a_win_and_blocks_a_loss():
    # the mover (+1) wins at cell 2 (top row)
    assert int(_search([1, 1, 0, -1, -1, 0, 0, 0, 0], True).action[0]) == 2
    # the opponent (−1) threatens the middle row at cell 5; the mover has no win: it must block
    out = _search([1, 0, 0, -1, -1, 0, 1, 0, 0], False)
    assert int(out.action[0]) == 5
    assert out.visit_counts[0, [0, 3, 4, 6]].sum() == 0  # occupied cells are never visited


def test_an_env_without_a_simulator_is_refused():
    with pytest.raises(ConfigError, match="true rules"):
        az.train("Acrobot-v1", az.AlphaZeroConfig(n_envs=1, num_simulations=2), total_steps=10)


def test_temperature_moves_samples_the_opening_then_plays_the_most_visited():
    from types import SimpleNamespace

    from rlworks.algos.games import GameHistory
    from rlworks.algos.selfplay import choose_actions

    visits = torch.tensor([[1.0, 2.0, 5.0, 2.0]]).repeat(2, 1)  # env 0 at its first move, env 1 at its third
    games = [GameHistory(), GameHistory()]
    for _ in range(2):
        games[1].append(np.zeros(3, np.float32), 0, 0.0, 1.0, 0.0, np.full(4, 0.25, np.float32))
    out = SimpleNamespace(visit_counts=visits)

    def draws(m):
        cfg = az.AlphaZeroConfig(temperature_moves=m)
        s = SimpleNamespace(config=cfg, games=games, rng=np.random.default_rng(0))
        return np.stack([choose_actions(s, out, False, 1.0) for _ in range(400)])

    sampled, late = draws(2).T
    assert set(late) == {2}  # past its 2nd move: the most visited action, always
    assert set(sampled) == {0, 1, 2, 3} and abs(np.mean(sampled == 2) - 0.5) < 0.08  # N(a)^(1/1) / ΣN = 5/10
    assert len(set(draws(0)[:, 1])) > 1  # off (0): every move at the schedule's temperature
    with pytest.raises(ConfigError, match="temperature_moves"):
        az.AlphaZeroConfig(temperature_moves=-1)


def _recorded_games(opening_moves, steps=300, **over):
    from rlworks.core.run import RunContext

    games = []

    def watch(s):
        add = s.replay.add
        s.replay.add = lambda g, *a, **k: (games.append(g), add(g, *a, **k))[1]

    env = lambda: gym.make("rlworks/TicTacToe-v0", opponent="self-play")  # noqa: E731
    cfg = az.AlphaZeroConfig(n_envs=4, num_simulations=4, batch_size=8, learning_starts=10_000, hidden=(8,),
                             opening_moves=opening_moves, **over)
    az.train(env, cfg, total_steps=steps, seed=0, run=RunContext(on_start=watch))
    return games


def test_opening_moves_start_the_recorded_games_after_k_random_moves():
    from rlworks.envs.tictactoe import winner

    games = _recorded_games(3)
    marks = [int(g.obs[0][:18].sum()) for g in games]  # the first recorded position's marks: the moves before it
    assert set(marks) == {0, 1, 2, 3}, marks
    for g, k in zip(games, marks):
        # the canonical observation puts X's plane first when X moves: the parity of k says who moves
        assert g.obs[0][18] == (k % 2 == 0)
        board = [int(a) - int(b) for a, b in zip(g.obs[0][:9], g.obs[0][9:18])]
        assert winner(board) == 0 and len(g) <= 9 - k  # a live position; the game plays on from it
    firsts = [int(np.flatnonzero(g.obs[0][9:18])[0]) for g, k in zip(games, marks) if k == 1]
    assert len(set(firsts)) > 4, firsts  # X's random first move: not always the same cell
    assert {int(g.obs[0][:18].sum()) for g in _recorded_games(0)} == {0}
    with pytest.raises(ConfigError, match="opening_moves"):
        az.AlphaZeroConfig(opening_moves=-1)


def test_random_moves_are_recorded_as_such():
    """random_move_prob: recorded moves drawn uniformly among the legal ones, flagged ``explored`` (the replay cuts
    the value targets before them there, tests/unit/test_games.py); never in the unrecorded opening."""
    for prob, lo, hi in ((0.0, 0.0, 0.0), (0.3, 0.15, 0.45), (1.0, 1.0, 1.0)):
        games = _recorded_games(2, **{"random_move_prob": prob})
        flags = np.concatenate([g.explored for g in games])
        assert lo <= flags.mean() <= hi, (prob, flags.mean())
    for g in games:  # every move random: each legal in its position, and their first moves spread over the board
        for t, a in enumerate(g.actions):
            assert g.obs[t][a] == 0 and g.obs[t][9 + a] == 0
    assert len({int(g.actions[0]) for g in games}) > 4
    with pytest.raises(ConfigError, match="random_move_prob"):
        az.AlphaZeroConfig(random_move_prob=1.5)
