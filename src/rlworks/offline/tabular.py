"""Why offline RL is hard, shown exactly: naive offline Q-learning vs tabular CQL on a grid world.

A fixed dataset is collected by a behaviour policy that never takes some actions. Learning from it
alone, the max in the Q-learning target ``r + gamma * max_a' Q(s', a')`` runs over actions the data
has never tried; their values are never corrected (here they keep ``q_init``), so the max picks
them and the error spreads through bootstrapping. Fujimoto, Meger & Precup (2019), "Off-Policy Deep
Reinforcement Learning without Exploration", call this *extrapolation error*.

Conservative Q-learning (Kumar, Zhou, Tucker & Levine 2020, "Conservative Q-Learning for Offline
Reinforcement Learning") adds to the TD loss, for each dataset transition ``(s, a)``,

    alpha_cql * (log sum_b exp Q(s, b) - Q(s, a))                         (CQL(H), their eq. 4)

whose gradient pushes every action down by its softmax weight and the data action up. Its fixed
point is the tabular update of their eq. 2 with ``mu = softmax(Q(s, .))``:
``Q(s, a) = B Q(s, a) - alpha_cql * (mu(a|s) / pi_beta(a|s) - 1)``, infinitely penalised where
``pi_beta(a|s) = 0``. Their Theorem 3.1 (push-down only, eq. 1) bounds every Q(s, a) from below;
Theorem 3.2 (with the push-up, eq. 2) bounds only the softmax policy's state value. Here that shows
exactly: every action the data never took ends below its exact value, but a data action whose
softmax weight is below its data frequency can end above it (docs/offline.md measures both).

The reference is exact: ``q_star_of_data`` plans on the data's own MDP (the empirical model).
NumPy only; the data is seeded and the learners are deterministic. benchmarks/offline_tabular.py runs the
whole comparison in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlworks.config import ConfigError, check_range
from rlworks.tabular.mdp import TabularModel
from rlworks.tabular.planning import PlanResult, backup


@dataclass(frozen=True)
class Dataset:
    """Transitions as flat arrays, in the order they were collected."""

    obs: np.ndarray  # (N,) int64 state s
    actions: np.ndarray  # (N,) int64 action a
    rewards: np.ndarray  # (N,) float64 reward r
    next_obs: np.ndarray  # (N,) int64 next state s'
    terminations: np.ndarray  # (N,) bool: s' ends the episode (no bootstrap)
    truncations: np.ndarray  # (N,) bool: the step cap ended the episode (bootstrap from s')

    def __len__(self) -> int:
        return len(self.obs)


def behaviour_policy(n_states: int, n_actions: int, actions: tuple[int, ...]) -> np.ndarray:
    """An (S, A) table that picks uniformly among ``actions`` in every state and never takes the others."""
    if not actions or any(not 0 <= a < n_actions for a in actions):
        raise ConfigError(f"behaviour actions {actions!r} must be a non-empty subset of 0..{n_actions - 1}")
    table = np.zeros((n_states, n_actions))
    table[:, list(actions)] = 1.0 / len(set(actions))
    return table


def collect(model: TabularModel, behaviour: np.ndarray, episodes: int, seed: int, max_steps: int) -> Dataset:
    """Sample ``episodes`` episodes from the model with the (S, A) behaviour policy, each capped at ``max_steps``."""
    if behaviour.shape != (model.n_states, model.n_actions) or not np.allclose(behaviour.sum(axis=1), 1.0):
        raise ConfigError(f"behaviour must be an ({model.n_states}, {model.n_actions}) table whose rows sum to 1")
    check_range("episodes", episodes, 1)
    check_range("max_steps", max_steps, 1)
    rng = np.random.default_rng(seed)
    cum_behaviour = np.cumsum(behaviour, axis=1)
    cum_start = np.cumsum(model.start)
    rows: list[tuple[int, int, float, int, bool, bool]] = []
    for _ in range(episodes):
        s = min(int(np.searchsorted(cum_start, rng.random(), side="right")), model.n_states - 1)
        for t in range(max_steps):
            a = min(int(np.searchsorted(cum_behaviour[s], rng.random(), side="right")), model.n_actions - 1)
            k = min(int(np.searchsorted(model.cum_probs[s, a], rng.random(), side="right")), model.n_outcomes[s, a] - 1)
            s2, r, done = int(model.next_states[s, a, k]), float(model.rewards[s, a, k]), bool(model.dones[s, a, k])
            rows.append((s, a, r, s2, done, not done and t == max_steps - 1))
            if done:
                break
            s = s2
    obs, actions, rewards, next_obs, terms, truncs = zip(*rows)
    return Dataset(
        np.array(obs, dtype=np.int64), np.array(actions, dtype=np.int64), np.array(rewards),
        np.array(next_obs, dtype=np.int64), np.array(terms, dtype=bool), np.array(truncs, dtype=bool),
    )


@dataclass(frozen=True, eq=False)
class EmpiricalModel:
    """The data's MDP. ``model`` holds, for every seen (s, a), the observed outcomes with their
    frequencies and mean rewards; an unseen pair is a placeholder (one outcome: stay, reward 0, done)
    that only ``seen`` can tell apart, so always read the model together with the mask."""

    model: TabularModel
    seen: np.ndarray  # (S, A) bool: the pair occurs in the data
    counts: np.ndarray  # (S, A) int64: how often


def empirical_model(dataset: Dataset, n_states: int, n_actions: int) -> EmpiricalModel:
    """Counts -> transition probabilities ``N(s, a, s', done) / N(s, a)`` and mean rewards per outcome.

    The start distribution is that of the dataset's first states; states without data are marked
    terminal (value 0: the data says nothing about what follows them).
    """
    outcome_counts: dict[tuple[int, int], dict[tuple[int, bool], list[float]]] = {}
    for s, a, r, s2, d in zip(dataset.obs, dataset.actions, dataset.rewards, dataset.next_obs, dataset.terminations):
        cell = outcome_counts.setdefault((int(s), int(a)), {}).setdefault((int(s2), bool(d)), [0, 0.0])
        cell[0] += 1
        cell[1] += float(r)
    counts = np.zeros((n_states, n_actions), dtype=np.int64)
    outcomes = []
    for s in range(n_states):
        per_action = []
        for a in range(n_actions):
            seen_here = outcome_counts.get((s, a))
            if not seen_here:
                per_action.append([(1.0, s, 0.0, True)])
                continue
            counts[s, a] = sum(n for n, _ in seen_here.values())
            per_action.append([(n / counts[s, a], s2, total / n, d) for (s2, d), (n, total) in seen_here.items()])
        outcomes.append(per_action)
    firsts = np.concatenate([[0], np.flatnonzero(dataset.terminations | dataset.truncations)[:-1] + 1])
    start = np.bincount(dataset.obs[firsts], minlength=n_states).astype(np.float64)
    seen = counts > 0
    model = TabularModel.from_outcomes(outcomes, start, terminal=~seen.any(axis=1))
    return EmpiricalModel(model=model, seen=seen, counts=counts)


def q_star_of_data(
    empirical: EmpiricalModel, true_model: TabularModel, gamma: float, tol: float = 1e-10, max_iterations: int = 100_000
) -> PlanResult:
    """The exact reference values: Q*_D of the data's MDP, extended to the actions the data never took.

    * Seen (s, a): value iteration on the empirical model, the max at each state running only over
      the actions the data contains there: ``Q*_D(s, a) = sum_k p_k (r_k + gamma (1 - done_k) V*_D(s'_k))``,
      ``V*_D(s) = max_{a seen at s} Q*_D(s, a)`` (0 at states without data).
    * Unseen (s, a): what the **true** environment gives for taking ``a`` once and then following the
      data-optimal policy, i.e. one true-model backup of ``V*_D``. (Where the empirical model equals
      the true one on the data's support, as on a deterministic grid, ``V*_D`` is that policy's true value.)

    ``policy`` is the data-optimal greedy policy (seen actions only; action 0 at states without data).
    """
    check_range("gamma", gamma, 0.0, 1.0, high_open=True)
    m, seen = empirical.model, empirical.seen
    has_data = seen.any(axis=1)
    v = np.zeros(m.n_states)
    for it in range(1, max_iterations + 1):
        q = backup(m, v, gamma)
        v_new = np.where(has_data, np.where(seen, q, -np.inf).max(axis=1), 0.0)
        delta = np.abs(v_new - v).max()
        v = v_new
        if delta < tol:
            iterations = it
            break
    else:
        raise ConfigError(f"value iteration on the data's MDP did not converge in {max_iterations} iterations")
    q_data = backup(m, v, gamma)
    q = np.where(seen, q_data, backup(true_model, v, gamma))
    policy = np.where(has_data, np.where(seen, q_data, -np.inf).argmax(axis=1), 0)
    return PlanResult(v=v, q=q, policy=policy, iterations=iterations)


def _check_learning_args(dataset: Dataset, n_states: int, n_actions: int, gamma: float, alpha: float, sweeps: int):
    check_range("gamma", gamma, 0.0, 1.0, high_open=True)
    check_range("alpha", alpha, 0.0, 1.0, low_open=True)  # a step size above 1 overshoots the mean target
    check_range("sweeps", sweeps, 1)
    if len(dataset) == 0:
        raise ConfigError("the dataset is empty: collect at least one transition")
    if dataset.obs.max() >= n_states or dataset.next_obs.max() >= n_states or dataset.actions.max() >= n_actions:
        raise ConfigError(f"the dataset has states or actions outside n_states={n_states}, n_actions={n_actions}")


def offline_q_learning(
    dataset: Dataset, n_states: int, n_actions: int, *, gamma: float = 0.9, alpha: float = 0.5, sweeps: int = 2000,
    q_init: float = 0.0,
) -> np.ndarray:
    """Naive offline Q-learning on the fixed dataset: ``offline_cql`` with ``alpha_cql = 0``.

    Each sweep applies the mean, over the dataset's transitions at each state, of the sample update
    ``Q(s, a) += alpha * (r + gamma * (1 - done) * max_b Q(s', b) - Q(s, a))``. The max runs over
    **all** actions, including those the data never took at ``s'``, whose values nothing ever
    corrects: they stay at ``q_init``. Returns the (S, A) table.
    """
    return offline_cql(dataset, n_states, n_actions, gamma=gamma, alpha=alpha, sweeps=sweeps, q_init=q_init,
                       alpha_cql=0.0)


def offline_cql(
    dataset: Dataset, n_states: int, n_actions: int, *, gamma: float = 0.9, alpha: float = 0.5, sweeps: int = 2000,
    q_init: float = 0.0, alpha_cql: float = 1.0,
) -> np.ndarray:
    """Tabular CQL(H): Q-learning on the dataset plus the gradient of
    ``alpha_cql * (logsumexp_b Q(s, b) - Q(s, a))`` at each transition (Kumar et al. 2020, eq. 4).

    Per transition the regulariser's gradient pushes every action down by its softmax weight and the
    data action up by 1. Each sweep applies the mean of these sample updates over the transitions at
    each state ``s`` (``pi_beta(a|s)`` is the data's action frequency there, ``y(s, a)`` the mean TD target):

        Q(s, .) += alpha * [pi_beta(.|s) * (y(s, .) - Q(s, .)) - alpha_cql * (softmax Q(s, .) - pi_beta(.|s))]

    Averaging instead of replaying samples one by one removes the sampling noise, which a max-based
    target turns into an upward bias (amplified by self-loops such as bumping into a wall). The fixed
    point is Kumar et al.'s eq. 2 update, ``Q = y - alpha_cql * (softmax Q / pi_beta - 1)``: actions
    the data never took (``pi_beta = 0``) only ever move down. ``alpha_cql = 0`` is exactly
    ``offline_q_learning``. Deterministic: no randomness is involved. Returns the (S, A) table.
    """
    _check_learning_args(dataset, n_states, n_actions, gamma, alpha, sweeps)
    check_range("alpha_cql", alpha_cql, 0.0)
    data = empirical_model(dataset, n_states, n_actions)
    counts = data.counts.astype(np.float64)
    visited = counts.sum(axis=1) > 0  # (S,)
    pi_beta = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)  # (S, A), 0 where never taken
    q = np.full((n_states, n_actions), float(q_init))
    for _ in range(sweeps):
        y = backup(data.model, q.max(axis=1), gamma)  # (S, A) mean TD target; meaningful where pi_beta > 0
        step = pi_beta * (y - q)
        if alpha_cql > 0.0:
            softmax = np.exp(q - q.max(axis=1, keepdims=True))
            softmax /= softmax.sum(axis=1, keepdims=True)
            step -= alpha_cql * (softmax - pi_beta)
        q += alpha * np.where(visited[:, None], step, 0.0)
    return q


def policy_return(model: TabularModel, policy: np.ndarray, gamma: float, tol: float = 1e-10) -> float:
    """The exact expected discounted return of a deterministic policy from the model's start distribution
    (iterative policy evaluation with the true model's ``backup``)."""
    idx = np.arange(model.n_states)
    v = np.zeros(model.n_states)
    while True:
        v_new = np.where(model.terminal, 0.0, backup(model, v, gamma)[idx, policy])
        if np.abs(v_new - v).max() < tol:
            return float(model.start @ v_new)
        v = v_new
