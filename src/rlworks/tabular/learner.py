"""TabularLearner: a TD learner on a known model that can be run a slice at a time.

``q_learning`` and friends run it for a whole budget in one compiled call; the lab runs it a few
thousand steps per frame, changing epsilon, alpha or even the map between slices.
"""

from __future__ import annotations

import numpy as np

from rlworks.config import ConfigError, check_choice, check_range
from rlworks.tabular import ALGORITHMS, kernels
from rlworks.tabular.mdp import TabularModel

#: How the greedy choice breaks ties: at random (rlworks' default) or toward the first action,
#: as ``Q[s].argmax()`` does in the reference snippet (kept to show why that fails).
TIE_BREAKS = ("random", "first")

#: Exploration bonuses. ``"ucb"``: every real update's target gains ``bonus_c / sqrt(N(s, a))``,
#: N counting the updates of (s, a), and an action never tried in s is taken before any other.
#: This is the count bonus of MBIE-EB (Strehl & Littman 2008) and of Q-learning with UCB-Hoeffding
#: (Jin et al. 2018): the bonus is bootstrapped like a reward, so optimism about rarely visited
#: states flows back to the actions that lead there (deep exploration, not only a local tie-break).
#: Dyna-Q's planning backups use the remembered rewards without it.
BONUSES = ("none", "ucb")


class TabularLearner:
    """State of one tabular agent: Q, its RNG, its position in the current episode and, for
    Dyna-Q, its learned model. ``run`` advances it; attributes can be changed between runs."""

    def __init__(
        self,
        model: TabularModel,
        algo: str = "q-learning",
        *,
        alpha: float = 0.1,
        gamma: float = 0.99,
        epsilon: float = 0.1,
        planning_steps: int = 0,
        max_episode_steps: int = 100,
        seed: int = 0,
        q_init: float = 0.0,
        tie_break: str = "random",
        bonus: str = "none",
        bonus_c: float = 1.0,
        count_visits: bool = False,
    ) -> None:
        check_choice("algorithm", algo, ALGORITHMS)
        self.algo = algo
        self.alpha, self.gamma, self.epsilon = alpha, gamma, epsilon
        self.planning_steps = int(planning_steps) if algo == "dyna-q" else 0
        self.max_episode_steps = int(max_episode_steps)
        self.q_init = float(q_init)
        self.tie_break = tie_break
        self.bonus, self.bonus_c = bonus, bonus_c
        #: keep ``counts`` without a bonus too (the lab's visit-count view); the bonus always counts
        self.count_visits = bool(count_visits)
        self.validate()
        self.rng = kernels.seed_rng(seed)
        self.episodes = 0
        self.steps = 0
        self._out_returns = np.zeros(0)
        self._out_lengths = np.zeros(0, dtype=np.int64)
        self._set_model(model)
        self.reset_q()

    def set_algorithm(self, algo: str, planning_steps: int = 0) -> None:
        """Switch the update rule on the live table (the lab does this): Q, the episode in
        progress and Dyna's remembered model are kept."""
        check_choice("algorithm", algo, ALGORITHMS)
        self.algo = algo
        self.planning_steps = int(planning_steps) if algo == "dyna-q" else 0
        self.validate()

    def validate(self) -> None:
        check_choice("algorithm", self.algo, ALGORITHMS)
        check_range("alpha", self.alpha, 0.0, 1.0, low_open=True)
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("epsilon", self.epsilon, 0.0, 1.0)
        check_range("planning_steps", self.planning_steps, 0, 10_000)
        check_range("max_episode_steps", self.max_episode_steps, 1, None)
        check_choice("tie_break", self.tie_break, TIE_BREAKS)
        check_choice("bonus", self.bonus, BONUSES)
        check_range("bonus_c", self.bonus_c, 0.0, None)

    def _set_model(self, model: TabularModel) -> None:
        self.model = model
        self._start_cum = np.cumsum(model.start)
        self._start_cum[-1] = 1.0
        self._no_counts = np.zeros((0, model.n_actions), dtype=np.int64)  # tells the kernel not to count

    @property
    def n_states(self) -> int:
        return self.model.n_states

    @property
    def n_actions(self) -> int:
        return self.model.n_actions

    @property
    def state(self) -> int:
        """The agent's current state, or -1 between episodes."""
        return int(self.carry[kernels.C_STATE])

    @property
    def episode_step(self) -> int:
        return int(self.carry[kernels.C_T])

    @property
    def episode_return(self) -> float:
        return float(self.carry_return[0])

    @property
    def effective_bonus_c(self) -> float:
        """The bonus coefficient the kernel uses: ``bonus_c`` with ``bonus="ucb"``, else 0."""
        return float(self.bonus_c) if self.bonus == "ucb" else 0.0

    def reset_q(self) -> None:
        """Forget everything learned (Q, visit counts, Dyna's model, the episode in progress)."""
        S, A = self.n_states, self.n_actions
        self.q = np.full((S, A), self.q_init, dtype=np.float64)
        self.q[self.model.terminal] = 0.0
        self.m_next = np.full((S, A), -1, dtype=np.int64)
        self.m_reward = np.zeros((S, A))
        self.m_done = np.zeros((S, A), dtype=bool)
        self.seen_list = np.zeros(S * A, dtype=np.int64)
        self.seen_count = np.zeros(1, dtype=np.int64)
        self.counts = np.zeros((S, A), dtype=np.int64)  # N(s, a): real updates of each pair, if counted
        self.new_episode()

    def new_episode(self) -> None:
        self.carry = np.array([-1, -1, 0], dtype=np.int64)
        self.carry_return = np.zeros(1)

    def set_model(self, model: TabularModel) -> None:
        """Swap the world (an edited map). Q is kept when the shape allows, so old knowledge has
        to be unlearned, as it would for a real agent; Dyna's remembered model is dropped."""
        if model.next_states.shape[:2] != self.model.next_states.shape[:2]:
            self._set_model(model)
            self.reset_q()
            return
        self._set_model(model)
        self.q[model.terminal] = 0.0
        self.m_next[:] = -1
        self.seen_count[0] = 0
        self.new_episode()

    def run(
        self,
        *,
        episodes: int | None = None,
        steps: int | None = None,
        alphas: np.ndarray | None = None,
        epsilons: np.ndarray | None = None,
        compiled: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance by up to ``episodes`` completed episodes and/or ``steps`` steps (at least one
        must be given). Returns the returns and lengths of the episodes completed."""
        if episodes is None and steps is None:
            raise ConfigError("run needs episodes or steps")
        self.validate()
        # without an episode budget, the buffer for finished episodes bounds one call
        max_episodes = int(episodes) if episodes is not None else min(int(steps), 1 << 20) + 1
        max_steps = int(steps) if steps is not None else np.iinfo(np.int64).max
        alphas = np.full(1, float(self.alpha)) if alphas is None else np.asarray(alphas, dtype=np.float64)
        epsilons = np.full(1, float(self.epsilon)) if epsilons is None else np.asarray(epsilons, dtype=np.float64)
        # the per-episode output buffers are kept between calls (the lab calls this every frame)
        if self._out_returns.shape[0] < max_episodes:
            self._out_returns = np.zeros(max_episodes)
            self._out_lengths = np.zeros(max_episodes, dtype=np.int64)
        out_returns, out_lengths = self._out_returns, self._out_lengths
        m = self.model
        counted = self.count_visits or self.effective_bonus_c > 0
        fn = kernels.run_kernel if compiled else kernels.run_kernel.py_func
        n_ep, n_steps = fn(
            m.next_states, m.cum_probs, m.rewards, m.dones, m.n_outcomes, self._start_cum,
            self.q, kernels.ALGO_CODES[self.algo], float(self.gamma), alphas, epsilons, self.max_episode_steps,
            self.tie_break == "first", self.effective_bonus_c, self.counts if counted else self._no_counts,
            self.planning_steps, self.m_next, self.m_reward, self.m_done, self.seen_list, self.seen_count,
            self.carry, self.carry_return, self.rng,
            max_episodes, max_steps, out_returns, out_lengths,
        )  # fmt: skip
        self.episodes += int(n_ep)
        self.steps += int(n_steps)
        return out_returns[:n_ep].copy(), out_lengths[:n_ep].copy()
