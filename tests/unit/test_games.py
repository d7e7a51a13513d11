"""Self-play game histories and their prioritised replay (algos/games.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from rlworks.algos.games import GameHistory, GameReplay

A = 4


def _game(rng, idx, T, *, terminated, boot=0.0, discount=0.9, explored=None):
    """A random game whose observation t is (idx, t), so a sample tells which game/step it came from."""
    obs = np.stack([np.array([idx, t], np.float32) for t in range(T + 1)])
    pol = rng.random((T, A)).astype(np.float32)
    return GameHistory.from_arrays(obs, rng.integers(0, A, T), rng.normal(size=T).astype(np.float32),
                                   np.full(T, discount, np.float32), rng.normal(size=T).astype(np.float32),
                                   pol / pol.sum(1, keepdims=True), terminated=terminated,
                                   bootstrap_value=0.0 if terminated else boot, explored=explored)


def _reference(g, t, K, n):
    """The targets of position t by the obvious loops over the definitions (module docstring)."""
    T, out = len(g), {k: [] for k in ("rew", "prefix", "scale", "stored", "bobs", "pol", "mask", "z")}
    for k in range(K + 1):
        u = t + k
        out["rew"].append(g.rewards[u - 1] if k >= 1 and u - 1 < T else 0.0)
        out["pol"].append(g.policies[u] if u < T else np.full(A, 1 / A))
        out["mask"].append(float(u < T))
        if u < T:
            m = min(n, T - u)
            for p in range(u, u + m):  # the window stops at the first random move p >= u
                if g.explored[p]:
                    m = p - u
                    break
            prefix, scale = 0.0, 1.0
            for i in range(m):
                prefix += scale * g.rewards[u + i]
                scale *= g.discounts[u + i]
            stored = g.bootstrap_value if u + m == T else g.root_values[u + m]
            if u + m == T and g.terminated:
                scale = 0.0
        elif u == T and not g.terminated:
            prefix, scale, stored, m = 0.0, 1.0, g.bootstrap_value, 0
        else:
            prefix, scale, stored, m = 0.0, 0.0, 0.0, 0
        out["prefix"].append(prefix)
        out["scale"].append(scale)
        out["stored"].append(stored if scale != 0 else 0.0)
        out["bobs"].append(g.obs[u + m] if scale != 0 else np.zeros(2))
        out["z"].append(prefix + scale * stored)
    return {k: np.array(v) for k, v in out.items()}


def _check_batch(batch, games, ids_of, K, n):
    B = len(batch["indices"])
    assert batch["obs"].shape == (B, 2) and batch["actions"].shape == (B, K)
    assert batch["target_policies"].shape == (B, K + 1, A) and batch["bootstrap_obs"].shape == (B, K + 1, 2)
    for key in ("target_rewards", "value_prefix", "bootstrap_scale", "bootstrap_stored", "masks"):
        assert batch[key].shape == (B, K + 1) and batch[key].dtype == np.float32, key
    for b in range(B):
        gi, t = ids_of[int(batch["indices"][b])]
        g = games[gi]
        np.testing.assert_array_equal(batch["obs"][b], [gi, t])
        ref = _reference(g, t, K, n)
        for k in range(K):
            if t + k < len(g):
                assert batch["actions"][b, k] == g.actions[t + k]
        np.testing.assert_allclose(batch["target_rewards"][b], ref["rew"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(batch["value_prefix"][b], ref["prefix"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(batch["bootstrap_scale"][b], ref["scale"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(batch["bootstrap_stored"][b], ref["stored"], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(batch["bootstrap_obs"][b], ref["bobs"])
        np.testing.assert_allclose(batch["target_policies"][b], ref["pol"], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(batch["masks"][b], ref["mask"])
        z = batch["value_prefix"][b] + batch["bootstrap_scale"][b] * batch["bootstrap_stored"][b]
        np.testing.assert_allclose(z, ref["z"], rtol=1e-5, atol=1e-5)
    assert ((batch["actions"] >= 0) & (batch["actions"] < A)).all()


def _fill(replay, rng, specs, games=None, ids_of=None, total=0, random_moves=0.0):
    games, ids_of = games if games is not None else [], ids_of if ids_of is not None else {}
    for T, term, boot in specs:
        g = _game(rng, len(games), T, terminated=term, boot=boot, explored=rng.random(T) < random_moves)
        replay.add(g)
        for t in range(T):
            ids_of[total + t] = (len(games), t)
        games.append(g)
        total += T
    return games, ids_of, total


def test_targets_match_slow_loop():
    rng = np.random.default_rng(0)
    K, n = 5, 3
    replay = GameReplay(1000, A, (2,), num_unroll=K, td_steps=n, alpha=1.0, beta=1.0, seed=1)
    specs = [(9, True, 0.0), (7, False, 2.5), (1, True, 0.0), (2, False, -1.0), (4, True, 0.0), (12, False, 0.7)]
    games, ids_of, _ = _fill(replay, rng, specs)
    assert len(replay) == 35 and replay.num_games == 6
    seen = set()
    for _ in range(6):
        batch = replay.sample(64)
        _check_batch(batch, games, ids_of, K, n)
        seen.update(int(i) for i in batch["indices"])
    assert seen == set(ids_of)  # every position, the first and last of each game included, was checked
    assert games[0].discounts[-1] == 0.0 and games[1].discounts[-1] == np.float32(0.9)


@pytest.mark.parametrize("n", [3, 20])
def test_random_moves_cut_the_value_windows(n):
    """A recorded random move (self-play's random_move_prob) at p: the positions u < p bootstrap from p's value
    instead of counting the random move's outcome, u = p takes p's value, and u > p is as before."""
    rng = np.random.default_rng(4)
    K = 4
    replay = GameReplay(1000, A, (2,), num_unroll=K, td_steps=n, seed=2)
    specs = [(9, True, 0.0), (7, False, 2.5), (1, True, 0.0), (12, True, 0.0), (10, False, -0.4)]
    games, ids_of, _ = _fill(replay, rng, specs, random_moves=0.3)
    assert 0 < sum(g.explored.sum() for g in games) < len(replay)
    seen = set()
    for _ in range(8):
        batch = replay.sample(64)
        _check_batch(batch, games, ids_of, K, n)
        seen.update(int(i) for i in batch["indices"])
    assert seen == set(ids_of)
    # by hand: a two-player game the last mover wins, with a random move at p = 3 (root values 10 + t)
    T, p = 6, 3
    rewards = np.zeros(T, np.float32)
    rewards[-1] = 1.0
    g = GameHistory.from_arrays(np.arange(T + 1, dtype=np.float32)[:, None].repeat(2, 1), np.zeros(T, np.int64),
                                rewards, np.full(T, -1.0, np.float32), 10.0 + np.arange(T, dtype=np.float32),
                                np.full((T, A), 1 / A, np.float32), terminated=True, explored=np.arange(T) == p)
    one = GameReplay(50, A, (2,), num_unroll=0, td_steps=n, seed=0)
    one.add(g)
    batch = one.sample(64)
    z = (batch["value_prefix"] + batch["bootstrap_scale"] * batch["bootstrap_stored"])[:, 0]
    want = [-13.0, 13.0, -13.0, 13.0, -1.0, 1.0]  # ±v_3 before the random move; v_3 at it; the outcome after it
    assert set(batch["indices"].tolist()) == set(range(T))
    for t, zt in zip(batch["indices"], z):
        assert zt == pytest.approx(want[int(t)]), t


def test_n_at_least_game_length_gives_monte_carlo_returns():
    rng = np.random.default_rng(3)
    replay = GameReplay(100, A, (2,), num_unroll=2, td_steps=50, seed=0)
    g = _game(rng, 0, 6, terminated=False, boot=1.5)
    replay.add(g)
    G = np.zeros(7)
    G[6] = 1.5
    for t in range(5, -1, -1):
        G[t] = g.rewards[t] + g.discounts[t] * G[t + 1]
    batch = replay.sample(200)
    t = batch["indices"]
    z = batch["value_prefix"] + batch["bootstrap_scale"] * batch["bootstrap_stored"]
    want = np.array([[G[i + k] if i + k <= 6 else 0.0 for k in range(3)] for i in t])
    np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("td_steps", [3, 20])
def test_two_player_values_alternate_sign(td_steps):
    T = 7  # the last mover (who acts at t = 6) wins
    obs = np.zeros((T + 1, 2), np.float32)
    obs[:, 1] = np.arange(T + 1)
    outcome = np.array([1.0 if (T - 1 - t) % 2 == 0 else -1.0 for t in range(T)], np.float32)  # for the mover
    rewards = np.zeros(T, np.float32)
    rewards[-1] = 1.0
    g = GameHistory.from_arrays(obs, np.zeros(T, np.int64), rewards, np.full(T, -1.0, np.float32), outcome,
                                np.full((T, 2), 0.5, np.float32), terminated=True)
    assert g.discounts[-1] == 0.0
    replay = GameReplay(50, 2, (2,), num_unroll=3, td_steps=td_steps, seed=0)
    replay.add(g)
    batch = replay.sample(256)
    z = batch["value_prefix"] + batch["bootstrap_scale"] * batch["bootstrap_stored"]
    for b, t in enumerate(batch["indices"]):
        for k in range(4):
            want = outcome[t + k] if t + k < T else 0.0
            assert z[b, k] == pytest.approx(want), (t, k)
    assert set(batch["indices"].tolist()) == set(range(T))
    assert (batch["bootstrap_scale"][batch["indices"] >= T - td_steps, 0] == 0).all()


def test_sampling_follows_priorities_and_weights():
    rng = np.random.default_rng(5)
    alpha, beta = 0.7, 0.4
    replay = GameReplay(100, A, (2,), num_unroll=1, td_steps=2, alpha=alpha, beta=beta, seed=11)
    pr = [rng.uniform(0.05, 3.0, size=T) for T in (5, 8, 3)]
    for i, p in enumerate(pr):
        replay.add(_game(rng, i, len(p), terminated=True), priorities=p)
    p = np.concatenate(pr)
    P = p ** alpha / (p ** alpha).sum()
    counts = np.zeros(len(p))
    for _ in range(200):
        batch = replay.sample(100)
        np.add.at(counts, batch["indices"], 1)
        w = (len(p) * P[batch["indices"]]) ** (-beta)
        np.testing.assert_allclose(batch["weights"], w / w.max(), rtol=1e-5)
    N = counts.sum()
    chi2 = ((counts - N * P) ** 2 / (N * P)).sum()
    assert chi2 < 50.0, chi2  # 15 dof: the 99.99th percentile is ~44 (stratified draws only lower it)
    # a uniform distribution would fail the same test
    U = np.full(len(p), 1 / len(p))
    assert ((counts - N * U) ** 2 / (N * U)).sum() > 200
    # beta override and all weights <= 1
    w0 = replay.sample(64, beta=0.0)["weights"]
    np.testing.assert_array_equal(w0, np.ones(64, np.float32))


def test_priority_updates_and_default_priority():
    rng = np.random.default_rng(6)
    replay = GameReplay(100, A, (2,), num_unroll=1, td_steps=2, alpha=1.0, seed=0)
    replay.add(_game(rng, 0, 4, terminated=True))
    np.testing.assert_array_equal(replay.priorities[:4], 1.0)  # empty: 1
    replay.update_priorities(np.array([0, 1, 2, 3]), np.array([0.0, 0.0, 5.0, 0.0]))
    replay.add(_game(rng, 1, 3, terminated=True))
    np.testing.assert_array_equal(replay.priorities[4:7], 5.0)  # the current maximum
    replay.update_priorities(np.arange(7), np.array([0, 0, 1, 0, 0, 0, 0.0]))
    idx = replay.sample(50)["indices"]
    assert (idx == 2).all()
    with pytest.raises(ValueError):
        replay.update_priorities(np.array([0]), np.array([np.nan]))
    replay.update_root_values(np.array([1, 5]), np.array([7.0, -3.0]))
    assert replay.root_values[1] == 7.0 and replay.root_values[5] == -3.0


def test_fifo_eviction_drops_whole_games_and_ids_stay_valid():
    rng = np.random.default_rng(7)
    K, n = 3, 2
    replay = GameReplay(20, A, (2,), num_unroll=K, td_steps=n, seed=2)
    games, ids_of, total = _fill(replay, rng, [(8, True, 0.0), (7, False, 1.0)])
    old = replay.sample(16)["indices"]
    games, ids_of, total = _fill(replay, rng, [(6, True, 0.0)], games, ids_of, total)
    assert len(replay) == 13 and replay.num_games == 2  # game 0 (8 steps) dropped whole
    batch = replay.sample(128)
    assert (batch["indices"] >= 8).all()
    _check_batch(batch, games, ids_of, K, n)
    # priorities reported for evicted positions are ignored, live ones are applied
    before = replay.priorities.copy()
    stale = old[old < 8]
    replay.update_priorities(stale, np.full(len(stale), 123.0))
    np.testing.assert_array_equal(replay.priorities, before)
    replay.update_priorities(np.array([8, 14]), np.array([2.0, 3.0]))
    assert replay.priorities[8 % 20] == 2.0 and replay.priorities[14 % 20] == 3.0
    # many more games: the ring wraps several times and the per-game ring grows past 16 live games
    specs = [(int(rng.integers(1, 6)), bool(rng.integers(2)), float(rng.normal())) for _ in range(60)]
    specs += [(1, True, 0.0)] * 20
    games, ids_of, total = _fill(replay, rng, specs, games, ids_of, total)
    assert replay.num_games == 20 and len(replay) == 20
    specs = [(int(rng.integers(1, 9)), bool(rng.integers(2)), float(rng.normal())) for _ in range(30)]
    games, ids_of, total = _fill(replay, rng, specs, games, ids_of, total)
    assert len(replay) == sum(T for T, _, _ in specs[-replay.num_games:]) <= 20
    _check_batch(replay.sample(200), games, ids_of, K, n)
    with pytest.raises(ValueError):
        replay.add(_game(rng, 0, 21, terminated=True))


def test_state_dict_round_trip_gives_identical_samples():
    rng = np.random.default_rng(8)
    replay = GameReplay(40, A, (2,), num_unroll=5, td_steps=3, alpha=0.6, beta=0.5, seed=3)
    _fill(replay, rng, [(int(rng.integers(1, 12)), bool(rng.integers(2)), float(rng.normal())) for _ in range(12)],
          random_moves=0.2)
    replay.update_priorities(replay.sample(32)["indices"], rng.random(32) + 0.1)
    buf = io.BytesIO()
    np.savez(buf, **replay.state_dict())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    assert all(a.dtype != object for a in d.values())
    other = GameReplay(40, A, (2,), num_unroll=5, td_steps=3, alpha=0.6, beta=0.5, seed=99)
    other.load_state_dict(d)
    assert len(other) == len(replay) and other.num_games == replay.num_games
    for _ in range(3):
        a, b = replay.sample(50), other.sample(50)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    g = _game(rng, 0, 9, terminated=False, boot=0.3)  # and they go on alike after more games
    replay.add(g)
    other.add(g)
    a, b = replay.sample(50), other.sample(50)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    with pytest.raises(ValueError):
        GameReplay(41, A, (2,)).load_state_dict(d)
    assert replay.explored.any()  # a replay saved before random_move_prob (no "explored") loads with none
    old = GameReplay(40, A, (2,), num_unroll=5, td_steps=3, alpha=0.6, beta=0.5, seed=3)
    old.load_state_dict({k: v for k, v in d.items() if k != "explored"})
    assert not old.explored.any() and len(old) == int(d["counters"][3])


def test_alphazero_shapes_without_unroll():
    rng = np.random.default_rng(9)
    replay = GameReplay(30, A, (2,), num_unroll=0, td_steps=100, seed=0)
    replay.add(_game(rng, 0, 5, terminated=True))
    batch = replay.sample(8)
    assert batch["actions"].shape == (8, 0) and batch["value_prefix"].shape == (8, 1)
    assert batch["target_policies"].shape == (8, 1, A) and (batch["masks"] == 1).all()


def test_game_history_collection():
    h = GameHistory()
    for t in range(3):
        h.append(np.full(2, t), t % A, 1.0, -1.0, 0.5, np.full(A, 1 / A), legal=np.ones(A, bool))
    assert len(h) == 3
    with pytest.raises(ValueError):
        h.append(np.zeros(2), 0, 0.0, -1.0, 0.0, np.full(A, 1 / A))  # legal given before, missing now
    with pytest.raises(ValueError):
        h.finish(np.zeros(2), terminated=True, bootstrap_value=1.0)
    h.finish(np.full(2, 3), terminated=True)
    assert h.obs.shape == (4, 2) and h.obs.dtype == np.float32 and h.actions.dtype == np.int64
    assert h.policies.shape == (3, A) and h.legal.shape == (3, A) and h.legal.dtype == bool
    np.testing.assert_array_equal(h.discounts, [-1.0, -1.0, 0.0])
    with pytest.raises(RuntimeError):
        h.append(np.zeros(2), 0, 0.0, 1.0, 0.0, np.full(A, 1 / A))
    t = GameHistory()
    t.append(np.zeros(2), 1, 0.0, 0.99, 0.0, np.full(A, 1 / A))
    t.finish(np.ones(2), terminated=False, bootstrap_value=2.0)
    assert t.discounts[-1] == np.float32(0.99) and t.bootstrap_value == 2.0 and t.legal is None
    replay = GameReplay(10, A, (2,), num_unroll=1, td_steps=1, seed=0)
    with pytest.raises(ValueError):
        replay.add(GameHistory())  # not finished
    replay.add(h)
    replay.add(t)
    assert len(replay) == 4 and replay.num_games == 2
    batch = replay.sample(32)
    assert batch["legal"].shape == (32, 2, A) and batch["legal"].all()


def _tictactoe_games(n, seed):
    """Random TicTacToe games through the real rules, each move's policy one-hot on the move played."""
    import torch

    from rlworks.envs.simulators import TicTacToeSimulator

    sim, rng, games = TicTacToeSimulator(), np.random.default_rng(seed), []
    for _ in range(n):
        state = torch.zeros(1, 10)
        state[0, 9] = 1.0
        h = GameHistory()
        while True:
            legal = sim.legal(state)[0].numpy()
            a = int(rng.choice(np.flatnonzero(legal)))
            nxt, reward, done, _ = sim.step(state, torch.tensor([a]))
            h.append(sim.observe(state)[0].numpy(), a, float(reward[0]), 0.0 if done[0] else -1.0,
                     float(rng.normal()), np.eye(9, dtype=np.float32)[a], legal=legal)
            state = nxt
            if done[0]:
                h.finish(sim.observe(state)[0].numpy(), terminated=True)
                games.append(h)
                break
    return sim, games


def test_tictactoe_symmetries_keep_the_game():
    from rlworks.envs.simulators import TicTacToeSimulator
    from rlworks.envs.tictactoe import minimax_value, optimal_moves, winner

    obs_perm, cells = TicTacToeSimulator.symmetries()
    assert len({tuple(c) for c in cells}) == 8 and (np.sort(cells, 1) == np.arange(9)).all()
    np.testing.assert_array_equal(obs_perm[:, 9:18] - 9, cells)
    for board in [(1, 1, 0, 0, -1, 0, 0, 0, -1), (1, 0, 0, 0, 0, 0, 0, 0, 0), (1, -1, 0, 0, 1, 0, 0, 0, -1)]:
        to_play = 1 if sum(board) == 0 else -1
        for c in cells:
            moved = tuple(board[i] for i in c)  # cell i of the transformed board shows cell c[i]
            assert minimax_value(moved, to_play) == minimax_value(board, to_play) and winner(moved) == winner(board)
            # the best moves, seen through the symmetry, are the best moves
            assert sorted(int(c[m]) for m in optimal_moves(moved, to_play)) == sorted(optimal_moves(board, to_play))


def test_augmented_samples_are_games_under_one_symmetry():
    import torch

    from rlworks.algos.games import apply_symmetries

    sim, games = _tictactoe_games(40, seed=3)
    obs_perm, cells = sim.symmetries()
    plain = GameReplay(1000, 9, (27,), num_unroll=3, td_steps=9, alpha=0.0, seed=5)
    augmented = GameReplay(1000, 9, (27,), num_unroll=3, td_steps=9, alpha=0.0, seed=5, symmetries=(obs_perm, cells))
    for g in games:
        plain.add(g)
        augmented.add(g)
    a, b = plain.sample(64), augmented.sample(64)  # the same positions: the symmetry is drawn last
    np.testing.assert_array_equal(a["indices"], b["indices"])
    used = set()
    for i in range(64):
        keys = ("obs", "unroll_obs", "bootstrap_obs", "actions", "target_policies", "legal")
        # one symmetry maps every part of the plain sample to the augmented one (an early board may allow several)
        fits = [g for g in range(8) if all(np.array_equal(apply_symmetries(
            {k: v[i:i + 1] for k, v in a.items()}, obs_perm[g:g + 1], cells[g:g + 1])[key][0], b[key][i])
            for key in keys)]
        assert fits, i
        used.add(fits[0])
        for k in range(3):  # the transformed steps follow the rules: o_{k+1} = step(o_k, a_k)
            if b["masks"][i, k]:
                state = sim.from_obs(torch.as_tensor(b["unroll_obs"][i, k:k + 1]))
                assert b["legal"][i, k].tolist() == sim.legal(state)[0].tolist()
                assert b["target_policies"][i, k, b["actions"][i, k]] == 1
                nxt = sim.step(state, torch.as_tensor(b["actions"][i, k:k + 1]))[0]
                np.testing.assert_array_equal(sim.observe(nxt)[0].numpy(), b["unroll_obs"][i, k + 1])
    for key in ("target_rewards", "value_prefix", "bootstrap_scale", "bootstrap_stored", "masks", "weights"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert len(used) >= 6  # draws spread over the symmetries
