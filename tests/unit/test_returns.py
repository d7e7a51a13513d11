"""core.returns against slow, obvious per-env loops (CONVENTIONS.md: one implementation, tested)."""

import numpy as np
import pytest
import torch

from rlworks.core.returns import discounted_returns, gae, n_step_returns, next_values_from


def _random_rollout(rng, T=23, N=4):
    rewards = rng.normal(size=(T, N)).astype(np.float64)
    values = rng.normal(size=(T, N))
    next_values = rng.normal(size=(T, N))
    term = rng.random((T, N)) < 0.1
    trunc = (rng.random((T, N)) < 0.1) & ~term
    return rewards, values, next_values, term, term | trunc


def slow_gae(r, v, nv, term, done, gamma, lam):
    T, N = r.shape
    adv = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            # sum of (γλ)^k δ_{t+k} until the episode ends (inclusive) or the rollout ends
            total, k = 0.0, 0
            while t + k < T:
                i = t + k
                delta = r[i, n] + gamma * (0.0 if term[i, n] else nv[i, n]) - v[i, n]
                total += (gamma * lam) ** k * delta
                if done[i, n]:
                    break
                k += 1
            adv[t, n] = total
    return adv


def slow_returns(r, nv, term, done, gamma, n_max=None):
    T, N = r.shape
    out = np.zeros((T, N))
    for e in range(N):
        for t in range(T):
            g, k = 0.0, 0
            while True:
                i = t + k
                g += gamma**k * r[i, e]
                last = done[i, e] or i == T - 1 or (n_max is not None and k == n_max - 1)
                if last:
                    if not term[i, e]:
                        g += gamma ** (k + 1) * nv[i, e]
                    break
                k += 1
            out[t, e] = g
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 1.0), (0.98, 0.0)])
def test_gae_matches_reference(seed, gamma, lam):
    r, v, nv, term, done = _random_rollout(np.random.default_rng(seed))
    adv, ret = gae(r, v, nv, term, done, gamma, lam)
    np.testing.assert_allclose(adv, slow_gae(r, v, nv, term, done, gamma, lam), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ret, adv + v)


@pytest.mark.parametrize("seed", range(4))
def test_discounted_returns_matches_reference(seed):
    r, v, nv, term, done = _random_rollout(np.random.default_rng(seed))
    np.testing.assert_allclose(discounted_returns(r, nv, term, done, 0.97), slow_returns(r, nv, term, done, 0.97),
                               rtol=1e-10, atol=1e-10)


def test_gae_lambda_one_equals_discounted_returns():
    r, v, final, term, done = _random_rollout(np.random.default_rng(7))
    # as in a real rollout: V(s_{t+1}) is the next step's value except across episode ends
    nv = next_values_from(v, final[-1], done, final)
    _, ret = gae(r, v, nv, term, done, 0.95, 1.0)
    np.testing.assert_allclose(ret, discounted_returns(r, nv, term, done, 0.95), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n", [1, 3, 50])
def test_n_step_matches_reference(n):
    r, v, nv, term, done = _random_rollout(np.random.default_rng(n))
    np.testing.assert_allclose(n_step_returns(r, nv, term, done, 0.9, n), slow_returns(r, nv, term, done, 0.9, n),
                               rtol=1e-10, atol=1e-10)


def test_truncation_bootstraps_termination_does_not():
    r = np.ones((1, 2))
    nv = np.full((1, 2), 10.0)
    term = np.array([[True, False]])
    done = np.array([[True, True]])  # env 0 terminated, env 1 truncated
    ret = discounted_returns(r, nv, term, done, 0.5)
    assert ret.tolist() == [[1.0, 6.0]]


def test_torch_and_numpy_agree():
    r, v, nv, term, done = _random_rollout(np.random.default_rng(3))
    adv_np, _ = gae(r, v, nv, term, done, 0.99, 0.95)
    t = lambda x: torch.from_numpy(np.asarray(x))  # noqa: E731
    adv_t, _ = gae(t(r), t(v), t(nv), t(term), t(done), 0.99, 0.95)
    np.testing.assert_allclose(adv_t.numpy(), adv_np, rtol=1e-12)


def test_next_values_from_uses_final_values_on_done_steps():
    values = np.array([[1.0], [2.0], [3.0]])
    dones = np.array([[False], [True], [False]])
    final = np.array([[0.0], [9.0], [0.0]])
    nv = next_values_from(values, np.array([4.0]), dones, final)
    assert nv.ravel().tolist() == [2.0, 9.0, 4.0]
