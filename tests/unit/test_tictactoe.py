"""TicTacToe: env contract, perfect play, opponents, batched torch rules against the env, save/restore."""

from __future__ import annotations

import copy
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlworks  # noqa: F401  (registers the envs)
from rlworks.envs import TICTACTOE_ID, IllegalActionError, TicTacToe, TicTacToeRules
from rlworks.envs.tictactoe import _solve, exact_outcomes, minimax_value, observe, optimal_moves, winner

EMPTY = (0,) * 9


def random_legal(rng: np.random.Generator, info: dict) -> int:
    return int(rng.choice(np.flatnonzero(info["action_mask"])))


# agent_plays="first": check_env steps with actions sampled blind to the mask, and as O the agent's first
# sampled action can hit the opponent's opening mark (an IllegalActionError, by design). With "alternate",
# two seeded resets in a row switch sides, which check_env's step-determinism check cannot allow.
@pytest.mark.parametrize("opponent", ["random", "minimax", "self-play"])
def test_check_env(opponent):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env reports some problems only as warnings
        check_env(gym.make(TICTACTOE_ID, opponent=opponent, agent_plays="first").unwrapped)


def test_registration_and_spaces():
    env = gym.make(TICTACTOE_ID)
    assert env.spec.max_episode_steps is None
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, (27,), np.float32)
    assert env.action_space == gym.spaces.Discrete(9)
    obs, info = env.reset(seed=0)  # the first reset of "alternate": the agent is X on an empty board
    np.testing.assert_array_equal(obs, np.r_[np.zeros(18), np.ones(9)].astype(np.float32))
    assert info["to_play"] == 0 and info["action_mask"].dtype == bool and info["action_mask"].all()


def test_bad_kwargs_name_the_allowed_values():
    with pytest.raises(ValueError, match="'random', 'minimax', 'self-play'"):
        TicTacToe(opponent="perfect")
    with pytest.raises(ValueError, match="'first', 'second', 'alternate'"):
        TicTacToe(agent_plays="both")


def test_alternate_counts_resets_since_construction():
    env = TicTacToe(opponent="random")  # agent_plays="alternate" by default
    marks = []
    for seed in (None, None, 0, 0, 1):
        obs, info = env.reset(seed=seed)
        marks.append((int((env.board != 0).sum()), info["to_play"], float(obs[18])))
    # even resets: agent X on an empty board; odd: the opponent (X) has moved and the agent (O) is to move
    assert marks == [(0, 0, 1.0), (1, 1, 0.0), (0, 0, 1.0), (1, 1, 0.0), (0, 0, 1.0)]


def test_observation_is_canonical():
    env = TicTacToe(opponent="self-play")
    env.reset(seed=0)
    env.step(4)  # X centre
    obs, reward, terminated, _, info = env.step(0)  # O corner; X to move
    assert reward == 0.0 and not terminated and info["to_play"] == 0
    assert obs[4] == 1 and obs[9 + 0] == 1 and obs[:9].sum() == 1 and obs[9:18].sum() == 1 and obs[18:].all()
    obs, *_, info = env.step(8)
    assert info["to_play"] == 1 and obs[0] == 1 and obs[9 + 4] == 1 and obs[9 + 8] == 1 and not obs[18:].any()
    np.testing.assert_array_equal(info["action_mask"], env.board == 0)


def test_minimax_values():
    _solve.cache_clear()
    assert minimax_value(EMPTY, 1) == 0
    assert _solve.cache_info().currsize == 5478  # every reachable position, solved once
    assert sorted(optimal_moves(EMPTY, 1)) == list(range(9))  # every opening draws
    # X: 0, 1; O: 3, 4 with X to move: X completes the top row at 2 (anything else lets O win at 5)
    board = (1, 1, 0, -1, -1, 0, 0, 0, 0)
    assert minimax_value(board, 1) == 1 and optimal_moves(board, 1) == [2]
    # X in a corner: O must take the centre, every other reply loses
    corner = (1, 0, 0, 0, 0, 0, 0, 0, 0)
    assert optimal_moves(corner, -1) == [4] and minimax_value(corner, -1) == 0
    assert minimax_value((1, 0, 0, 0, 0, 0, 0, 0, -1), 1) == 1  # O answered in the opposite corner: X forks
    finished = (1, 1, 1, -1, -1, 0, 0, 0, 0)  # X has the top row: worth -1 to O, no moves left
    assert minimax_value(finished, -1) == -1 and optimal_moves(finished, -1) == []
    with pytest.raises(ValueError, match="9 cells"):
        minimax_value((2,) * 9, 1)


def test_minimax_vs_minimax_always_draws():
    rng = np.random.default_rng(0)
    env = TicTacToe(opponent="self-play")
    openings = set()
    for game in range(50):
        env.reset(seed=game)
        rewards, terminated = [], False
        while not terminated:
            move = int(rng.choice(optimal_moves(env.board, env.to_play)))
            if not rewards:
                openings.add(move)
            _, reward, terminated, _, _ = env.step(move)
            rewards.append(reward)
        assert rewards == [0.0] * 9 and winner(env.board) == 0
    assert len(openings) > 3  # random tie-breaks: not one fixed game


@pytest.mark.parametrize("agent_plays", ["first", "second"])
def test_minimax_opponent_never_loses(agent_plays):
    env = TicTacToe(opponent="minimax", agent_plays=agent_plays)
    rng = np.random.default_rng(1)
    returns, first_marks = [], set()
    for game in range(200):
        obs, info = env.reset(seed=game)
        if agent_plays == "second":
            first_marks.add(int(np.flatnonzero(obs[9:18])[0]))
        ret, terminated = 0.0, False
        while not terminated:
            _, reward, terminated, _, info = env.step(random_legal(rng, info))
            ret += reward
        returns.append(ret)
    assert max(returns) <= 0.0 and min(returns) == -1.0  # never beaten, and it does punish random play
    if agent_plays == "second":
        assert len(first_marks) >= 5  # ties broken at random: all 9 openings are optimal


def test_perfect_agent_never_loses_to_random_opponent():
    env = TicTacToe(opponent="random")  # alternate: both sides
    returns = []
    for game in range(100):
        env.reset(seed=game)
        ret, terminated = 0.0, False
        while not terminated:
            _, reward, terminated, _, _ = env.step(int(env.np_random.choice(optimal_moves(env.board, env.to_play))))
            ret += reward
        returns.append(ret)
    assert min(returns) >= 0.0 and np.mean(returns) > 0.5


def _lowest_empty(obs: np.ndarray) -> list[int]:
    """An imperfect deterministic policy: the first empty cell."""
    return [int(np.flatnonzero(o[:9] + o[9:18] == 0)[0]) for o in obs]


def _perfect(obs: np.ndarray) -> list[int]:
    return [optimal_moves(o[:9] * (1 if o[18] else -1) - o[9:18] * (1 if o[18] else -1), 1 if o[18] else -1)[0]
            for o in obs]


@pytest.mark.parametrize("opponent", ["random", "minimax"])
@pytest.mark.parametrize("side", ["first", "second"])
def test_exact_outcomes_match_played_games(opponent, side):
    exact = exact_outcomes(_lowest_empty, opponent, side)
    assert exact["wins"] + exact["draws"] + exact["losses"] == pytest.approx(1.0)
    env = gym.make(TICTACTOE_ID, opponent=opponent, agent_plays=side)
    returns = []
    for i in range(2000):
        obs, _ = env.reset(seed=i)
        done = False
        while not done:
            obs, r, done, _, _ = env.step(_lowest_empty(obs[None])[0])
        returns.append(r)
    played = {"wins": np.mean(np.array(returns) > 0), "draws": np.mean(np.array(returns) == 0),
              "losses": np.mean(np.array(returns) < 0)}
    for k, p in played.items():  # 2,000 games: the standard error is at most 0.011
        assert abs(p - exact[k]) < 0.045, (k, p, exact[k])
    if opponent == "minimax":
        assert exact["losses"] == pytest.approx(1.0)  # the first empty cell loses to perfect play from either side


def test_exact_outcomes_of_perfect_play_and_observation():
    for side in ("first", "second"):
        assert exact_outcomes(_perfect, "minimax", side)["draws"] == pytest.approx(1.0)
        res = exact_outcomes(_perfect, "random", side)
        assert res["losses"] == 0.0 and res["mistakes"] == 0 and res["positions"] > 0
        res = exact_outcomes(_lowest_empty, "random", side, details=True)
        assert res["mistakes"] == len(res["mistake_list"]) > 0
        board, move, best, reach = res["mistake_list"][0]
        assert move not in best and best == optimal_moves(board, 1 if side == "first" else -1) and 0 < reach <= 1
    env = gym.make(TICTACTOE_ID, opponent="random", agent_plays="second")
    obs, _ = env.reset(seed=3)
    state = env.unwrapped.get_state()
    np.testing.assert_array_equal(obs, observe(state[:9], int(state[9])))
    with pytest.raises(IllegalActionError):
        exact_outcomes(lambda obs: [4] * len(obs), "random", "second")  # the centre, whoever holds it


def test_illegal_actions_raise():
    env = TicTacToe(opponent="self-play")
    with pytest.raises(IllegalActionError, match=r"call reset\(\)"):
        env.step(0)  # before any reset
    env.reset(seed=0)
    env.step(4)
    with pytest.raises(
        IllegalActionError,
        match=r"action 4 is not legal here \(cell occupied\); legal actions: "
        r"\[0, 1, 2, 3, 5, 6, 7, 8\]",
    ):
        env.step(4)
    for bad in (9, -1, 2.5):
        with pytest.raises(IllegalActionError, match=r"legal actions: \[0, 1, 2, 3, 5, 6, 7, 8\]"):
            env.step(bad)
    assert issubclass(IllegalActionError, ValueError)
    for move in (0, 2, 3):  # O 0, X 2, O 3
        env.step(move)
    _, reward, terminated, _, info = env.step(6)  # X completes the diagonal 2-4-6
    assert winner(env.board) == 1 and terminated and reward == 1.0 and not info["action_mask"].any()
    with pytest.raises(IllegalActionError, match=r"no game in progress.*legal actions: \[\]"):
        env.step(5)


@pytest.mark.parametrize("dtype", [torch.int8, torch.float32])
def test_batched_rules_agree_with_env(dtype):
    n_games = 200
    rng = np.random.default_rng(2)
    envs = [TicTacToe(opponent="self-play") for _ in range(n_games)]
    infos = [env.reset(seed=i)[1] for i, env in enumerate(envs)]
    boards, x_to_move = TicTacToeRules.from_state(np.stack([env.get_state() for env in envs]))
    boards = boards.to(dtype)
    assert TicTacToeRules.legal(boards).all()
    done = np.zeros(n_games, dtype=bool)
    for _ in range(9):
        actions = [random_legal(rng, info) if not d else 0 for info, d in zip(infos, done)]
        nxt, reward, batch_done, legal = TicTacToeRules.step(boards, torch.tensor(actions))
        x_to_move = torch.where(torch.as_tensor(done), x_to_move, ~x_to_move)
        for i, env in enumerate(envs):
            if done[i]:  # a finished board steps to itself
                assert torch.equal(nxt[i], boards[i]) and reward[i] == 0 and batch_done[i] and not legal[i].any()
                continue
            obs, r, terminated, _, infos[i] = env.step(actions[i])
            assert reward[i].item() == r and batch_done[i].item() == terminated
            np.testing.assert_array_equal(legal[i].numpy(), infos[i]["action_mask"])
            np.testing.assert_array_equal(TicTacToeRules.observe(nxt[i : i + 1], x_to_move[i : i + 1])[0].numpy(), obs)
            assert torch.equal(TicTacToeRules.from_state(env.get_state())[0][0].to(dtype), nxt[i])
            done[i] = terminated
        assert nxt.dtype == dtype and reward.dtype == torch.float32 and legal.shape == (n_games, 9)
        boards = nxt
    assert done.all() and TicTacToeRules.finished(boards).all()
    assert 0 < sum(winner(env.board) == 0 for env in envs) < n_games  # draws and wins both occurred


def test_batched_rules_edge_cases():
    won = torch.tensor([[-1, -1, -1, 1, 1, 0, 0, 0, 0]], dtype=torch.int8)  # the previous mover has a line
    full = torch.tensor([[1, -1, 1, 1, -1, -1, -1, 1, 1]], dtype=torch.int8)  # a draw
    mover_won = -won  # not reachable by play, but finished all the same: no second reward
    for board in (won, full, mover_won):
        nxt, reward, done, legal = TicTacToeRules.step(board, torch.tensor([5]))
        assert torch.equal(nxt, board) and reward.item() == 0.0 and done.item() and not legal.any()
        assert TicTacToeRules.finished(board).item() and not TicTacToeRules.legal(board).any()
    # the last move fills the board and wins: reward 1 and done
    last = torch.tensor([[1, -1, 1, -1, 1, -1, -1, 1, 0]], dtype=torch.int8)
    nxt, reward, done, legal = TicTacToeRules.step(last, torch.tensor([8]))
    assert reward.item() == 1.0 and done.item() and not legal.any() and nxt[0, 8] == -1
    with pytest.raises(ValueError, match="occupied"):
        TicTacToeRules.step(TicTacToeRules.initial(2).index_fill_(1, torch.tensor([3]), 1), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="0-8"):
        TicTacToeRules.step(TicTacToeRules.initial(1), torch.tensor([9]))


def test_get_set_state_round_trip_and_replay():
    env = TicTacToe(opponent="minimax", agent_plays="first")
    env.reset(seed=3)
    env.step(0)
    state = env.get_state()
    assert state.dtype == np.int8 and state.shape == (12,)
    state[0] = 0  # a copy: editing it leaves the env alone
    assert env.board[0] == 1
    state = env.get_state()
    rng = copy.deepcopy(env.np_random)
    first = env.step(int(np.flatnonzero(env.board == 0)[0]))
    after = env.get_state()
    env.set_state(state)
    np.testing.assert_array_equal(env.get_state(), state)
    env.np_random = rng  # the opponent's tie-breaks come from np_random, which the state leaves out
    second = env.step(int(np.flatnonzero(env.board == 0)[0]))
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1:4] == second[1:4] and np.array_equal(first[4]["action_mask"], second[4]["action_mask"])
    np.testing.assert_array_equal(env.get_state(), after)
    other = TicTacToe(opponent="minimax")  # another instance picks the game up where it was
    other.set_state(after)
    np.testing.assert_array_equal(other._obs(), second[0])
    with pytest.raises(ValueError, match="shape"):
        env.set_state(np.zeros(9, dtype=np.int8))


def test_set_state_restores_a_finished_game():
    env = TicTacToe(opponent="self-play")
    env.reset(seed=0)
    for move in (0, 3, 1, 4, 2):  # X takes the top row
        env.step(move)
    state = env.get_state()
    np.testing.assert_array_equal(state, [1, 1, 1, -1, -1, 0, 0, 0, 0, -1, 1, 0])
    fresh = TicTacToe(opponent="self-play")
    fresh.reset(seed=1)
    fresh.set_state(state)
    np.testing.assert_array_equal(fresh.get_state(), state)
    assert not fresh._info()["action_mask"].any()
    with pytest.raises(IllegalActionError, match="no game in progress"):
        fresh.step(5)


def test_render():
    env = TicTacToe(opponent="self-play", render_mode="ansi")
    env.reset(seed=0)
    assert env.render() == "...\n...\n...\n"
    env.step(4)
    env.step(0)
    assert env.render().splitlines() == ["O..", ".X.", "..."]
    env = TicTacToe(opponent="self-play", render_mode="rgb_array")
    env.reset(seed=0)
    empty = env.render()
    assert empty.shape == (96, 96, 3) and empty.dtype == np.uint8
    env.step(4)
    env.step(8)
    img = env.render()
    assert (img[32:64, 32:64] != empty[32:64, 32:64]).any() and (img[64:, 64:] != empty[64:, 64:]).any()
    assert not (img[64:, 64:] == img[32:64, 32:64]).all()  # X and O are drawn differently
    np.testing.assert_array_equal(img[:32, :32], empty[:32, :32])
