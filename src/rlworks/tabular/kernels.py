"""Compiled inner loops for tabular TD learning (numba, ``cache=True``).

One kernel runs Q-learning, SARSA, Expected SARSA and Dyna-Q on a model given as arrays
(see ``mdp.TabularModel``), for a budget of episodes and/or steps, and carries its state
(current cell, pending action, step count, return so far) between calls so that the lab can
run it a slice at a time while the user changes epsilon or alpha.

Randomness comes from a small counter-free generator (xoshiro128**, Blackman & Vigna 2018)
kept in a 4-element int64 array and written only with 32-bit-masked arithmetic, so the very
same code gives the very same stream compiled, as plain Python (the fallback when numba is
missing, and ``kernel.py_func``), and from the generic path that steps a real Gymnasium env.
"""

from __future__ import annotations

import math

import numpy as np

try:  # numba is a dependency; the plain-Python fallback keeps rlworks usable without it.
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is absent
    HAVE_NUMBA = False

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        def wrap(fn):
            fn.py_func = fn
            return fn

        return wrap(args[0]) if args and callable(args[0]) else wrap


Q_LEARNING, SARSA, EXPECTED_SARSA = 0, 1, 2
ALGO_CODES = {"q-learning": Q_LEARNING, "sarsa": SARSA, "expected-sarsa": EXPECTED_SARSA, "dyna-q": Q_LEARNING}

_M32 = 0xFFFFFFFF

# The learning loop and Dyna's planning allocate nothing: every array belongs to the caller for
# the whole call. Compiled without numba's reference counting (NRT), they carry no atomic
# increment/decrement per array alias of the inlined helpers; with it, those atomics took ~70% of
# the loop's time (perf, numba 0.68) and capped it near 20M steps/s.
_NO_REFCOUNT = {"_nrt": False}

# carry[] slots: what survives between two calls of the kernel
C_STATE, C_ACTION, C_T = 0, 1, 2


def seed_rng(seed: int) -> np.ndarray:
    """xoshiro128** state from an integer seed, expanded with SplitMix64 (as its authors advise)."""
    x = int(seed) & 0xFFFFFFFFFFFFFFFF
    words = []
    for _ in range(2):
        x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        z ^= z >> 31
        words += [z & _M32, z >> 32]
    if not any(words):
        words[0] = 1
    return np.array(words, dtype=np.int64)


@njit(cache=True, inline="always")
def _rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


@njit(cache=True, inline="always")
def next_u32(rng):
    s0, s1, s2, s3 = rng[0], rng[1], rng[2], rng[3]
    result = (_rotl((s1 * 5) & 0xFFFFFFFF, 7) * 9) & 0xFFFFFFFF
    t = (s1 << 9) & 0xFFFFFFFF
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 11)
    rng[0], rng[1], rng[2], rng[3] = s0, s1, s2, s3
    return result


@njit(cache=True, inline="always")
def uniform(rng):
    """A float in [0, 1) with 24 random bits."""
    return (next_u32(rng) >> 8) * (1.0 / 16777216.0)


@njit(cache=True, inline="always")
def randint(rng, n):
    """An integer in [0, n) by multiply-shift (Lemire 2019); bias < n / 2**32."""
    return (next_u32(rng) * n) >> 32


@njit(cache=True, inline="always")
def select_action(q, s, epsilon, rng, tie_first=False):
    """Epsilon-greedy with ties among the greedy actions broken uniformly at random.

    Breaking ties toward action 0 (``Q[s].argmax()``, ``tie_first=True``) is what keeps the
    reference snippet on FrozenLake walking into the wall at the start: with Q all zero,
    action 0 is always "best". The lab offers it to show exactly that.
    """
    n_actions = q.shape[1]
    if uniform(rng) < epsilon:
        return randint(rng, n_actions)
    best = q[s, 0]
    best_a = 0
    n_ties = 1
    for a in range(1, n_actions):
        v = q[s, a]
        if v > best:
            best, best_a, n_ties = v, a, 1
        elif v == best:
            n_ties += 1
    if n_ties == 1 or tie_first:
        return best_a
    k = randint(rng, n_ties)
    for a in range(n_actions):
        if q[s, a] == best:
            if k == 0:
                return a
            k -= 1
    return best_a


@njit(cache=True, inline="always")
def select_action_counted(q, counts, s, epsilon, rng, tie_first=False):
    """With a count bonus: an action never taken in s first (ties at random), as UCB1 plays each
    arm once (Auer et al. 2002); then epsilon-greedy on Q, which carries the bonus."""
    n_actions = q.shape[1]
    n_untried = 0
    for a in range(n_actions):
        if counts[s, a] == 0:
            n_untried += 1
    if n_untried == 0:
        return select_action(q, s, epsilon, rng, tie_first)
    k = randint(rng, n_untried)
    for a in range(n_actions):
        if counts[s, a] == 0:
            if k == 0:
                return a
            k -= 1
    return 0


@njit(cache=True, inline="always")
def state_value(q, s, algo, epsilon):
    """The bootstrap value of s: max_a Q (Q-learning, Dyna-Q) or E_pi[Q] under
    epsilon-greedy with random tie-breaking (Expected SARSA, van Seijen et al. 2009)."""
    n_actions = q.shape[1]
    best = q[s, 0]
    total = q[s, 0]
    for a in range(1, n_actions):
        v = q[s, a]
        total += v
        if v > best:
            best = v
    if algo != EXPECTED_SARSA:
        return best
    # every tied greedy action has value `best`, so how the (1 - eps) mass splits among them
    # does not matter
    return epsilon * total / n_actions + (1.0 - epsilon) * best


@njit(cache=True, inline="always")
def sample_outcome(cum_probs, n_outcomes, s, a, rng):
    k = n_outcomes[s, a]
    if k == 1:
        return 0
    u = uniform(rng)
    i = 0
    while i < k - 1 and u >= cum_probs[s, a, i]:
        i += 1
    return i


@njit(cache=True)
def start_index(start_cum):
    """The start state when there is only one (it then needs no random draw, so the compiled and
    generic paths stay in step), else -1."""
    n = start_cum.shape[0]
    for i in range(n):
        if start_cum[i] > 0.0:
            return i if start_cum[i] >= 1.0 else -1
    return n - 1


@njit(cache=True)
def sample_start(start_cum, rng):
    i = start_index(start_cum)
    if i >= 0:
        return i
    # the first i with u < start_cum[i] (the last state if none), by bisection
    u = uniform(rng)
    lo, hi = 0, start_cum.shape[0] - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if u < start_cum[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True, **_NO_REFCOUNT)
def plan(q, gamma, alpha, n, m_next, m_reward, m_done, seen_list, n_seen, rng):
    """Dyna-Q's planning: n Q-learning backups on uniformly drawn, previously seen (s, a)."""
    n_actions = q.shape[1]
    for _ in range(n):
        idx = seen_list[randint(rng, n_seen)]
        s, a = idx // n_actions, idx % n_actions
        target = m_reward[s, a]
        if not m_done[s, a]:
            target += gamma * state_value(q, m_next[s, a], Q_LEARNING, 0.0)
        q[s, a] += alpha * (target - q[s, a])


@njit(cache=True, **_NO_REFCOUNT)
def run_kernel(
    next_states, cum_probs, rewards, dones, n_outcomes, start_cum,  # the model
    q, algo, gamma, alphas, epsilons, max_steps, tie_first,  # the learner
    bonus_c, counts,  # count bonus coefficient (0: off) and visit counts N(s, a) ((0, A): not counted)
    planning_steps, m_next, m_reward, m_done, seen_list, seen_count,  # Dyna-Q's learned model
    carry, carry_return, rng,  # state carried between calls
    max_episodes, max_total_steps, out_returns, out_lengths,
):
    """Run until ``max_episodes`` episodes end or ``max_total_steps`` steps are taken.

    ``alphas[i]``/``epsilons[i]`` apply to the i-th episode started in this call (the last
    value holds beyond the array). Episodes are capped at ``max_steps`` and the cap is a
    truncation: its target bootstraps from the next state. Unless ``counts`` is empty (0 rows),
    ``counts[s, a]`` counts the updates of (s, a); with ``bonus_c > 0`` (which needs the counts) the
    target gains ``bonus_c / sqrt(counts[s, a])`` and untried actions are taken first
    (``learner.py`` explains the bonus). Returns (episodes, steps).
    """
    n_actions = q.shape[1]
    episodes = 0
    steps = 0
    n_sched = alphas.shape[0]
    # Found once per call, not once per episode.
    start0 = start_index(start_cum)
    # An (S, A) table counts every real update of (s, a); an empty (0, A) one counts nothing.
    counting = counts.shape[0] > 0
    # The episode in progress lives in locals; the carry arrays are read once and written once.
    s = carry[C_STATE]
    a = carry[C_ACTION]
    t = carry[C_T]
    ret = carry_return[0]
    while episodes < max_episodes and steps < max_total_steps:
        j = episodes if episodes < n_sched else n_sched - 1
        alpha = alphas[j]
        eps = epsilons[j]
        if s < 0:  # a new episode
            s = start0 if start0 >= 0 else sample_start(start_cum, rng)
            a = -1
            t = 0
            ret = 0.0
        while True:  # the steps of one episode
            if a < 0:
                if bonus_c > 0.0:
                    a = select_action_counted(q, counts, s, eps, rng, tie_first)
                else:
                    a = select_action(q, s, eps, rng, tie_first)
            k = sample_outcome(cum_probs, n_outcomes, s, a, rng)
            s2 = next_states[s, a, k]
            r = rewards[s, a, k]
            terminated = dones[s, a, k]
            t += 1
            truncated = (not terminated) and t >= max_steps
            target = r
            if counting:  # only when asked (the bonus, the lab's visit view): the default loop stays lean
                counts[s, a] += 1
                if bonus_c > 0.0:
                    target += bonus_c / math.sqrt(counts[s, a])
            a2 = -1
            if algo == SARSA:
                # SARSA bootstraps from the action it will actually take (or would, at a truncation).
                if bonus_c > 0.0:
                    a2 = select_action_counted(q, counts, s2, eps, rng, tie_first)
                else:
                    a2 = select_action(q, s2, eps, rng, tie_first)
                if not terminated:
                    target += gamma * q[s2, a2]
            elif not terminated:
                target += gamma * state_value(q, s2, algo, eps)
            q[s, a] += alpha * (target - q[s, a])
            if planning_steps > 0:
                if m_next[s, a] < 0:
                    seen_list[seen_count[0]] = s * n_actions + a
                    seen_count[0] += 1
                m_next[s, a] = s2
                m_reward[s, a] = r
                m_done[s, a] = terminated
                plan(q, gamma, alpha, planning_steps, m_next, m_reward, m_done, seen_list, seen_count[0], rng)
            steps += 1
            ret += r
            if terminated or truncated:
                out_returns[episodes] = ret
                out_lengths[episodes] = t
                episodes += 1
                s = -1
                a = -1
                t = 0
                break
            s = s2
            a = a2
            if steps >= max_total_steps:
                break
    carry[C_STATE] = s
    carry[C_ACTION] = a
    carry[C_T] = t
    carry_return[0] = ret
    return episodes, steps
