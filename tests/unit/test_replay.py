"""Replay memory: ring indexing, episode boundaries, n-step targets, sum-tree and prioritised sampling,
each checked against a slow, obvious reference."""

from __future__ import annotations

import io

import numpy as np
import pytest

from rlworks.core.replay import ReplayBuffer, SumTree
from rlworks.core.returns import n_step_returns


def all_valid(buf: ReplayBuffer):
    """Gather every sampleable transition, oldest first (rows × envs)."""
    offs = np.repeat(np.arange(buf.valid_rows), buf.n_envs)
    envs = np.tile(np.arange(buf.n_envs), buf.valid_rows)
    rows = buf._rows_of(offs)
    return buf._gather(rows, envs, np.ones(rows.shape[0], np.float32))


def make_stream(T, N, rng, p_term=0.05, p_trunc=0.05):
    """Synthetic env stream: obs encode (episode, step) uniquely; final obs are distinct negatives."""
    obs = np.zeros((T + 1, N, 2), np.float32)
    nxt = np.zeros((T, N, 2), np.float32)  # true next obs of each step
    rew = rng.normal(size=(T, N)).astype(np.float32)
    term = rng.random((T, N)) < p_term
    trunc = (rng.random((T, N)) < p_trunc) & ~term
    counter = 1.0
    for n in range(N):
        obs[0, n] = [counter, n]
        counter += 1
    for t in range(T):
        for n in range(N):
            nxt[t, n] = [counter, n]
            counter += 1
            if term[t, n] or trunc[t, n]:
                nxt[t, n, 0] *= -1  # final observation (never stored as a row obs)
                obs[t + 1, n] = [counter, n]  # reset observation
                counter += 1
            else:
                obs[t + 1, n] = nxt[t, n]
    return obs, nxt, rew, term, trunc


def fill(buf, obs, nxt, rew, term, trunc, upto=None):
    T = rew.shape[0] if upto is None else upto
    for t in range(T):
        buf.add(obs[t], np.full(buf.n_envs, t), rew[t], nxt[t], term[t], trunc[t])


# --------------------------------------------------------------------------------------------
# ring buffer
# --------------------------------------------------------------------------------------------


def test_ring_wraparound_keeps_newest_and_links_next_obs():
    rng = np.random.default_rng(0)
    obs, nxt, rew, term, trunc = make_stream(23, 1, rng, 0.0, 0.0)
    buf = ReplayBuffer(6, 1, (2,), n_step=1)
    fill(buf, obs, nxt, rew, term, trunc)
    assert buf.full and len(buf) == 5  # one row (the oldest) is excluded when full
    b = all_valid(buf)
    np.testing.assert_array_equal(b.actions, np.arange(18, 23))  # the newest five steps, in order
    np.testing.assert_array_equal(b.obs, obs[18:23, 0])
    np.testing.assert_array_equal(b.next_obs, nxt[18:23, 0])  # incl. the newest step (written ahead)
    np.testing.assert_allclose(b.returns, rew[18:23, 0])
    np.testing.assert_allclose(b.discounts, 0.99)


@pytest.mark.parametrize("N", [1, 3])
def test_episode_boundaries_use_true_final_obs(N):
    rng = np.random.default_rng(1)
    obs, nxt, rew, term, trunc = make_stream(200, N, rng, 0.1, 0.1)
    buf = ReplayBuffer(37 * N, N, (2,), n_step=1, gamma=0.9)  # forces several wraparounds
    # shrink the side ring so that it has to grow, then verify after many overwrites
    buf._final_cap = 2
    buf.final_obs = np.zeros((2, 2), np.float32)
    for t in range(200):
        buf.add(obs[t], np.full(N, t), rew[t], nxt[t], term[t], trunc[t])
        if t in (5, 50, 199):
            b = all_valid(buf)
            ts = b.actions
            ns = np.tile(np.arange(N), buf.valid_rows)
            np.testing.assert_array_equal(b.obs, obs[ts, ns])
            np.testing.assert_array_equal(b.next_obs, nxt[ts, ns])
            expect_disc = np.where(term[ts, ns], 0.0, 0.9)
            np.testing.assert_allclose(b.discounts, expect_disc, rtol=1e-6)
    assert buf.final_live == int((buf.final_id >= 0).sum())


@pytest.mark.parametrize("N, T", [(1, 9), (3, 9), (3, 40)])  # not yet full; full and wrapped around
def test_uniform_sample_matches_the_row_env_gather(N, T):
    """``sample`` (one-step, uniform) turns its draws straight into leaf indices; it must give the very
    transitions that ``_gather`` gives for the same draws through rows and envs (episode ends and
    wrap-around included)."""
    rng = np.random.default_rng(N + T)
    obs, nxt, rew, term, trunc = make_stream(T, N, rng, 0.15, 0.15)
    buf = ReplayBuffer(12 * N, N, (2,), n_step=1)
    fill(buf, obs, nxt, rew, term, trunc)
    draws = np.random.default_rng(7).integers(0, len(buf), size=500)
    got = buf.sample(500, np.random.default_rng(7))
    want = buf._gather(buf._rows_of(draws // N), draws % N, np.ones(500, np.float32))
    for field in ("obs", "actions", "returns", "discounts", "next_obs", "weights", "indices"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
    assert (got.next_obs[:, 0] < 0).any()  # some draws ended an episode (true final observations)


def test_uint8_observations_stay_uint8():
    buf = ReplayBuffer(10, 2, (4, 4), obs_dtype=np.uint8)
    o = np.full((2, 4, 4), 200, np.uint8)
    buf.add(o, np.zeros(2), np.zeros(2), o + 1, np.array([True, False]), np.zeros(2, bool))
    b = buf.sample(8, np.random.default_rng(0))
    assert buf.obs.dtype == np.uint8 and b.obs.dtype == np.uint8 and b.next_obs.dtype == np.uint8
    assert (b.next_obs == 201).all()
    assert buf.nbytes < 10 * 2 * 16 * 2 + 2000  # observations once, 1 byte each (plus small side arrays)


# --------------------------------------------------------------------------------------------
# n-step
# --------------------------------------------------------------------------------------------


def slow_nstep(rew, term, trunc, nxt, t, n, gamma, T):
    """The obvious loop for one (t, env) of a single-env stream of T steps."""
    G, disc = 0.0, 1.0
    for k in range(n):
        i = t + k
        G += disc * rew[i]
        disc *= gamma
        if term[i]:
            return G, 0.0, nxt[i]
        if trunc[i] or k == n - 1 or i == T - 1:
            return G, disc, nxt[i]
    raise AssertionError


@pytest.mark.parametrize("n", [1, 3, 5])
def test_nstep_targets_match_slow_reference_and_core_returns(n):
    rng = np.random.default_rng(2)
    T, gamma = 60, 0.95
    obs, nxt, rew, term, trunc = make_stream(T, 1, rng, 0.08, 0.08)
    buf = ReplayBuffer(200, 1, (2,), n_step=n, gamma=gamma)
    fill(buf, obs, nxt, rew, term, trunc)
    b = all_valid(buf)
    for t in range(T):
        G, disc, nob = slow_nstep(rew[:, 0], term[:, 0], trunc[:, 0], nxt[:, 0], t, n, gamma, T)
        assert b.returns[t] == pytest.approx(G, rel=1e-5, abs=1e-5)
        assert b.discounts[t] == pytest.approx(disc, rel=1e-6)
        np.testing.assert_array_equal(b.next_obs[t], nob)
    # the same windows as the one n-step implementation in core.returns, with V(s) = 0.1·s[0]
    V = lambda o: 0.1 * o[..., 0]  # noqa: E731
    mine = b.returns + b.discounts * V(b.next_obs)
    ref = n_step_returns(rew.astype(np.float64), V(nxt).astype(np.float64), term, term | trunc, gamma, n)[:, 0]
    np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------
# sum-tree and prioritised replay
# --------------------------------------------------------------------------------------------


def test_sumtree_matches_slow_reference():
    rng = np.random.default_rng(3)
    for size in (1, 5, 64, 1000):
        tree = SumTree(size)
        ref = np.zeros(size)
        for _ in range(20):
            idx = rng.integers(0, size, rng.integers(1, 50))
            vals = rng.integers(0, 10, idx.shape[0]).astype(float)  # integers: sums are exact
            tree.set(idx, vals)
            for i, v in zip(idx, vals):  # last write wins, as in the tree
                ref[i] = v
            assert tree.total == ref.sum()
            np.testing.assert_array_equal(tree.leaves, ref)
            if ref.sum() > 0:
                u = rng.random(200) * ref.sum()
                expect = np.searchsorted(np.cumsum(ref), u, side="right")
                np.testing.assert_array_equal(tree.find(u), expect)
                assert (ref[tree.find(u)] > 0).all()
        # every inner node is the sum of its children
        t = tree.tree
        np.testing.assert_array_equal(t[1:tree.P], t[2:2 * tree.P:2] + t[3:2 * tree.P:2])
        rebuilt = SumTree(size)
        rebuilt.set_all(ref)
        np.testing.assert_array_equal(rebuilt.tree, tree.tree)


def test_prioritized_sampling_frequencies_match_priorities():
    rng = np.random.default_rng(4)
    buf = ReplayBuffer(64, 1, (1,), prioritized=True, alpha=0.7)
    for t in range(20):
        buf.add(np.array([[t]]), np.array([t]), np.zeros(1), np.array([[t + 1]]), np.zeros(1, bool), np.zeros(1, bool))
    td = np.arange(20, dtype=float) + 0.5
    buf.update_priorities(np.arange(20), td)
    expect = (td + buf.priority_eps) ** 0.7
    expect /= expect.sum()
    counts = np.zeros(20)
    for _ in range(400):
        b = buf.sample(250, rng)
        counts += np.bincount(b.actions, minlength=20)
    n = counts.sum()
    # chi-square goodness of fit, 19 degrees of freedom: 0.999 quantile is 43.8
    chi2 = (((counts - n * expect) ** 2) / (n * expect)).sum()
    assert chi2 < 43.8, chi2
    # a sampler that ignored priorities would fail by far
    chi2_uniform = (((n / 20 - n * expect) ** 2) / (n * expect)).sum()
    assert chi2_uniform > 1000


def test_importance_weights_normalised_by_batch_max():
    rng = np.random.default_rng(5)
    buf = ReplayBuffer(16, 1, (1,), prioritized=True, alpha=1.0)
    for t in range(10):
        buf.add(np.array([[t]]), np.array([t]), np.zeros(1), np.array([[t + 1]]), np.zeros(1, bool), np.zeros(1, bool))
    buf.update_priorities(np.arange(10), np.arange(1, 11, dtype=float))
    b = buf.sample(32, rng, beta=0.5)
    p = (np.arange(1, 11) + buf.priority_eps)[b.actions]
    P = p / (np.arange(1, 11) + buf.priority_eps).sum()
    w = (10 * P) ** -0.5
    np.testing.assert_allclose(b.weights, w / w.max(), rtol=1e-5)
    assert b.weights.max() == pytest.approx(1.0)
    # β = 1 with equal priorities: all weights are one
    buf.update_priorities(np.arange(10), np.ones(10))
    np.testing.assert_allclose(buf.sample(16, rng, beta=1.0).weights, 1.0, rtol=1e-6)


def test_prioritized_never_samples_the_overwritten_oldest_row():
    rng = np.random.default_rng(6)
    buf = ReplayBuffer(8, 1, (1,), prioritized=True)
    for t in range(30):
        buf.add(np.array([[t]]), np.array([t]), np.zeros(1), np.array([[t + 1]]), np.zeros(1, bool), np.zeros(1, bool))
    b = buf.sample(4000, rng)
    assert set(np.unique(b.actions)) == set(range(23, 30))
    np.testing.assert_array_equal(b.next_obs[:, 0], b.actions + 1)


# --------------------------------------------------------------------------------------------
# persistence
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prioritized", [False, True])
@pytest.mark.parametrize("steps", [7, 90])
def test_state_dict_round_trip_through_npz(prioritized, steps):
    rng = np.random.default_rng(7)
    obs, nxt, rew, term, trunc = make_stream(steps, 2, rng, 0.1, 0.1)
    a = ReplayBuffer(40, 2, (2,), n_step=3, prioritized=prioritized)
    fill(a, obs, nxt, rew, term, trunc)
    if prioritized:
        a.update_priorities(np.arange(len(a)), rng.random(len(a)))
    fh = io.BytesIO()
    np.savez(fh, **a.state_dict())
    fh.seek(0)
    with np.load(fh, allow_pickle=False) as z:
        state = {k: z[k] for k in z.files}
    b = ReplayBuffer(40, 2, (2,), n_step=3, prioritized=prioritized)
    b.load_state_dict(state)
    ba, bb = a.sample(64, np.random.default_rng(9)), b.sample(64, np.random.default_rng(9))
    for f in ("obs", "actions", "returns", "discounts", "next_obs", "weights", "indices"):
        np.testing.assert_array_equal(getattr(ba, f), getattr(bb, f))
    # and they keep evolving identically
    o2, n2, r2, te2, tr2 = make_stream(15, 2, np.random.default_rng(8), 0.1, 0.1)
    fill(a, o2, n2, r2, te2, tr2)
    fill(b, o2, n2, r2, te2, tr2)
    np.testing.assert_array_equal(a.sample(64, np.random.default_rng(1)).next_obs,
                                  b.sample(64, np.random.default_rng(1)).next_obs)


def test_load_refuses_mismatched_shape():
    a = ReplayBuffer(40, 2, (2,))
    b = ReplayBuffer(60, 2, (2,))
    with pytest.raises(ValueError, match="mismatch"):
        b.load_state_dict(a.state_dict())


def test_truncate_newest_marks_running_episodes_and_keeps_their_next_obs():
    buf = ReplayBuffer(10, 2, (1,))
    o = lambda *v: np.array(v, np.float32).reshape(2, 1)  # noqa: E731
    buf.add(o(0, 0), np.zeros(2), np.zeros(2), o(1, 1), np.zeros(2, bool), np.zeros(2, bool))
    buf.add(o(1, 1), np.zeros(2), np.zeros(2), o(2, -9), np.array([False, True]), np.zeros(2, bool))
    buf.truncate_newest(o(2, 5))  # env 0 still running: truncated at its true next obs; env 1 had ended
    assert buf.truncations[1].tolist() == [True, False] and buf.terminations[1].tolist() == [False, True]
    buf.add(o(7, 7), np.zeros(2), np.zeros(2), o(8, 8), np.zeros(2, bool), np.zeros(2, bool))  # fresh episodes
    b = all_valid(buf)
    np.testing.assert_array_equal(b.next_obs[:, 0], [1, 1, 2, -9, 8, 8])
    np.testing.assert_allclose(b.discounts, [0.99, 0.99, 0.99, 0.0, 0.99, 0.99])
