"""Self-play game histories and their prioritised replay, shared by MuZero (Schrittwieser et al. 2020)
and AlphaZero (Silver et al. 2018).

Conventions (those of DeepMind's mctx)
--------------------------------------
``rewards[t]`` is the reward of step t for the player who acted at t, and ``discounts[t]`` multiplies
the *next* state's value as seen from the player at t: γ in a one-player MDP, −γ (usually −1) in an
alternating two-player game, and 0 on the step that terminated the episode. ``bootstrap_value`` is the
value of the final observation (for the player to move there) where the game was truncated or is
unfinished, 0 where it terminated.

Targets (MuZero appendix G and its pseudocode)
----------------------------------------------
For a sampled position t and unroll step k = 0..K (position u = t + k) the n-step value target is

    z_u = Σ_{i<m} (Π_{j<i} d_{u+j}) r_{u+i} + (Π_{j<m} d_{u+j}) v_{u+m},    m = min(n, T − u),

with v the stored search root values and v_T = ``bootstrap_value``; the window is cut at the game's end
as in ``core.returns.n_step_returns``, and at the first step p ≥ u marked ``explored`` (a random move of
self-play's ``random_move_prob``): m ≤ p − u, so a random move's outcome never counts against the moves
before it, which bootstrap from v_p (Watkins's Q(λ) cuts its traces at exploratory actions the same way).
``sample`` returns it in parts (``value_prefix``, ``bootstrap_scale``, ``bootstrap_obs``, ``bootstrap_stored``),
so that the learner can bootstrap either from the stored value or from a fresh network value of
``bootstrap_obs`` (MuZero Reanalyze, appendix H).
Beyond the end of a game the state is absorbing: reward and value targets 0 (except u = T of a truncated
game, whose target is ``bootstrap_value``), a uniform policy target with ``masks`` 0, and uniformly random
actions drawn from the replay's generator (as the MuZero pseudocode does).

Symmetries
----------
With ``symmetries`` (a game's rotations and reflections as permutations of the observation's entries and of
the actions, e.g. ``envs.simulators.TicTacToeSimulator.symmetries``), each sampled position and its unrolled
steps are shown under one random symmetry, the same for all its steps (AlphaGo Zero's data augmentation,
Silver et al. 2017): observations, actions, policy targets and legal masks are permuted; rewards and values
do not change.

Storage
-------
Steps of whole games lie contiguously in a ring of ``capacity`` steps, addressed by a global step id
(slot = id mod capacity); a game that does not fit evicts the oldest games whole (FIFO). The T+1-th
observation of each game lives in a small per-game side ring that doubles when more games are alive
than it holds (as ``core.replay.ReplayBuffer``'s final observations). Sampled ``indices`` are global step
ids, so priorities reported for positions evicted in the meantime are ignored rather than written over
a newer game. Positions are drawn proportionally to p^α on ``core.replay.SumTree``, stratified over the
batch, with importance weights (N·P)^−β normalised by the batch maximum (Schaul et al. 2016; MuZero
appendix G uses α = β = 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.replay import SumTree


@dataclass
class GameHistory:
    """One episode, collected with ``append`` step by step and closed by ``finish``. While collecting,
    the fields are lists; ``finish`` stacks them into arrays: ``obs`` (T+1, *obs_shape), ``actions`` (T,)
    int64, ``rewards``/``discounts``/``root_values`` (T,) float32, ``policies`` (T, A) float32, ``legal``
    (T, A) bool or None, ``explored`` (T,) bool."""

    obs: Any = field(default_factory=list)
    actions: Any = field(default_factory=list)
    rewards: Any = field(default_factory=list)
    discounts: Any = field(default_factory=list)
    root_values: Any = field(default_factory=list)
    policies: Any = field(default_factory=list)
    legal: Any = field(default_factory=list)
    explored: Any = field(default_factory=list)
    bootstrap_value: float = 0.0
    terminated: bool = False
    finished: bool = False
    obs_dtype: Any = np.float32

    def __len__(self) -> int:
        return len(self.actions)

    def append(self, obs: Any, action: int, reward: float, discount: float, root_value: float, policy: Any,
               legal: Any = None, explored: bool = False) -> None:
        """Record one step: the observation the search ran on, the action taken, the step's reward for
        the mover, its discount (γ or −γ; ``finish`` sets 0 on a terminal step), the search's root value
        and policy target, the legal-action mask (optional), and ``explored``: a random move, not the search's."""
        if self.finished:
            raise RuntimeError("append() after finish()")
        if self.actions and (legal is None) != (len(self.legal) == 0):
            raise ValueError("give legal masks for every step or for none")
        self.obs.append(np.asarray(obs, dtype=self.obs_dtype))
        self.actions.append(int(action))
        self.rewards.append(float(reward))
        self.discounts.append(float(discount))
        self.root_values.append(float(root_value))
        self.policies.append(np.asarray(policy, dtype=np.float32))
        if legal is not None:
            self.legal.append(np.asarray(legal, dtype=bool))
        self.explored.append(bool(explored))

    def finish(self, final_obs: Any, *, terminated: bool, bootstrap_value: float = 0.0) -> GameHistory:
        """Close the game with the observation after its last step. A terminated game gets discount 0 on
        its last step and bootstrap value 0; a truncated (or unfinished) one keeps ``bootstrap_value``."""
        if self.finished:
            raise RuntimeError("finish() called twice")
        if terminated and bootstrap_value != 0.0:
            raise ValueError("a terminated game has bootstrap_value 0")
        self.obs = np.stack([*self.obs, np.asarray(final_obs, dtype=self.obs_dtype)])  # (T+1, *obs_shape)
        self.actions = np.asarray(self.actions, dtype=np.int64)  # (T,)
        self.rewards = np.asarray(self.rewards, dtype=np.float32)
        self.discounts = np.asarray(self.discounts, dtype=np.float32)
        self.root_values = np.asarray(self.root_values, dtype=np.float32)
        self.explored = np.asarray(self.explored, dtype=bool)
        T = len(self.actions)
        self.policies = np.stack(self.policies).astype(np.float32) if T else np.zeros((0, 0), np.float32)
        self.legal = np.stack(self.legal) if len(self.legal) else None  # (T, A)
        if terminated and T:
            self.discounts[-1] = 0.0
        self.terminated, self.bootstrap_value, self.finished = bool(terminated), float(bootstrap_value), True
        return self

    @classmethod
    def from_arrays(cls, obs: Any, actions: Any, rewards: Any, discounts: Any, root_values: Any, policies: Any,
                    *, terminated: bool, bootstrap_value: float = 0.0, legal: Any = None, explored: Any = None
                    ) -> GameHistory:
        """A finished history from whole arrays (``obs`` holding T+1 observations)."""
        g = cls(obs_dtype=np.asarray(obs).dtype)
        T = len(actions)
        if len(obs) != T + 1:
            raise ValueError(f"obs needs T+1 = {T + 1} entries, got {len(obs)}")
        for t in range(T):
            g.append(obs[t], actions[t], rewards[t], discounts[t], root_values[t], policies[t],
                     None if legal is None else legal[t], explored=explored is not None and bool(explored[t]))
        return g.finish(obs[T], terminated=terminated, bootstrap_value=bootstrap_value)


def _rng_to_array(rng: np.random.Generator) -> np.ndarray:
    """``bit_generator.state`` (the dict the off-/on-policy checkpoints keep in state.json) as JSON bytes in a
    uint8 array, so it fits buffer.npz without pickle."""
    return np.frombuffer(json.dumps(rng.bit_generator.state).encode(), dtype=np.uint8).copy()


def _rng_from_array(rng: np.random.Generator, a: np.ndarray) -> None:
    rng.bit_generator.state = json.loads(a.tobytes().decode())


class GameReplay:
    """Prioritised replay of whole games, ``capacity`` counted in steps (see the module docstring)."""

    _STEP = ("actions", "rewards", "discounts", "root_values", "policies", "legal", "explored", "priorities", "game_of")
    _GAME = ("g_start", "g_len", "g_boot", "g_term", "g_final")

    def __init__(self, capacity: int, num_actions: int, obs_shape: tuple[int, ...], *, num_unroll: int = 5,
                 td_steps: int = 10, alpha: float = 1.0, beta: float = 1.0, seed: int | None = None,
                 rng: np.random.Generator | None = None, obs_dtype: Any = np.float32,
                 priority_eps: float = 1e-6, symmetries: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        if td_steps < 1 or num_unroll < 0 or capacity < 1:
            raise ValueError("need capacity >= 1, td_steps >= 1 and num_unroll >= 0")
        C, A = int(capacity), int(num_actions)
        self.capacity, self.num_actions, self.obs_shape = C, A, tuple(obs_shape)
        self.num_unroll, self.td_steps = int(num_unroll), int(td_steps)
        self.alpha, self.beta, self.priority_eps = float(alpha), float(beta), float(priority_eps)
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self.symmetries = symmetries  # (obs_perm (G, D), action_perm (G, A)): sample() augments (module docstring)
        self.obs = np.zeros((C, *self.obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(C, dtype=np.int64)
        self.rewards = np.zeros(C, dtype=np.float32)
        self.discounts = np.zeros(C, dtype=np.float32)
        self.root_values = np.zeros(C, dtype=np.float32)
        self.policies = np.zeros((C, A), dtype=np.float32)
        self.legal = np.ones((C, A), dtype=bool)
        self.explored = np.zeros(C, dtype=bool)  # a random move of self-play's random_move_prob (cuts value windows)
        self.priorities = np.zeros(C, dtype=np.float64)  # raw p (the tree holds p^α)
        self.game_of = np.zeros(C, dtype=np.int64)  # global game id of each slot
        self.tree = SumTree(C)
        # steps/games ever added: live step ids are [total - size, total), game ids [game_head - games, game_head)
        self.total, self.size, self.game_head, self.games = 0, 0, 0, 0
        self._alloc_games(16)

    def _alloc_games(self, cap: int) -> None:
        """(Re)allocate the per-game side ring (game id g at g mod cap), keeping the live games."""
        old = {n: getattr(self, n) for n in self._GAME} if hasattr(self, "g_start") else None
        self._gcap = cap
        self.g_start = np.zeros(cap, dtype=np.int64)  # step id of the game's first step
        self.g_len = np.zeros(cap, dtype=np.int64)  # T
        self.g_boot = np.zeros(cap, dtype=np.float32)  # bootstrap_value
        self.g_term = np.zeros(cap, dtype=bool)
        self.g_final = np.zeros((cap, *self.obs_shape), dtype=self.obs.dtype)  # observation T
        if old is not None:
            ids = np.arange(self.game_head - self.games, self.game_head)
            for n in self._GAME:
                getattr(self, n)[ids % cap] = old[n][ids % len(old[n])]

    def __len__(self) -> int:
        return self.size

    @property
    def num_games(self) -> int:
        return self.games

    # -- writing ---------------------------------------------------------------------------------
    def add(self, history: GameHistory, priorities: np.ndarray | None = None) -> None:
        """Store a finished game; ``priorities`` (T,) for its positions, by default the largest priority
        among the stored positions (1 when empty), as in Schaul et al. 2016."""
        if not history.finished:
            raise ValueError("finish() the game before adding it")
        T, C = len(history), self.capacity
        if T < 1 or T > C:
            raise ValueError(f"a game needs 1..capacity={C} steps, got {T}")
        if priorities is None:
            p = np.full(T, self.priorities[self._live_slots()].max() if self.size else 1.0)
        else:
            p = np.asarray(priorities, dtype=np.float64).reshape(T)
        while self.size + T > C:  # FIFO: drop the oldest games whole
            g = (self.game_head - self.games) % self._gcap
            old = (self.g_start[g] + np.arange(self.g_len[g])) % C
            self.tree.set(old, np.zeros(len(old)))
            self.priorities[old] = 0.0
            self.size -= int(self.g_len[g])
            self.games -= 1
        if self.games + 1 > self._gcap:
            self._alloc_games(2 * self._gcap)
        slots = (self.total + np.arange(T)) % C  # (T,)
        self.obs[slots] = history.obs[:T]
        self.actions[slots] = history.actions
        self.rewards[slots] = history.rewards
        self.discounts[slots] = history.discounts
        self.root_values[slots] = history.root_values
        self.policies[slots] = history.policies
        self.legal[slots] = True if history.legal is None else history.legal
        self.explored[slots] = history.explored
        self.game_of[slots] = self.game_head
        g = self.game_head % self._gcap
        self.g_start[g], self.g_len[g], self.g_term[g] = self.total, T, history.terminated
        self.g_boot[g] = 0.0 if history.terminated else history.bootstrap_value
        self.g_final[g] = history.obs[T]
        self.total, self.size = self.total + T, self.size + T
        self.game_head, self.games = self.game_head + 1, self.games + 1
        self._set_priorities(slots, p)

    def _live_slots(self) -> np.ndarray:
        return np.arange(self.total - self.size, self.total) % self.capacity

    def _live(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keep the step ids that are still stored: (mask over ``indices``, their slots)."""
        ids = np.asarray(indices, dtype=np.int64)
        keep = (ids >= self.total - self.size) & (ids < self.total)
        return keep, ids[keep] % self.capacity

    def _set_priorities(self, slots: np.ndarray, p: np.ndarray) -> None:
        if not np.isfinite(p).all() or (p < 0).any():
            raise ValueError("priorities must be finite and non-negative")
        p = np.maximum(p, self.priority_eps)  # a zero priority would never be sampled again
        self.priorities[slots] = p
        self.tree.set(slots, p ** self.alpha)

    def update_priorities(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """New priorities (e.g. |search value − z|, MuZero appendix G) for the step ids ``sample`` returned;
        ids evicted since are skipped."""
        keep, slots = self._live(indices)
        self._set_priorities(slots, np.asarray(priorities, dtype=np.float64).reshape(-1)[keep])

    def update_root_values(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Overwrite stored root values with reanalysed ones (MuZero Reanalyze, appendix H)."""
        keep, slots = self._live(indices)
        self.root_values[slots] = np.asarray(values, dtype=np.float32).reshape(-1)[keep]

    # -- sampling --------------------------------------------------------------------------------
    def sample(self, batch_size: int, beta: float | None = None) -> dict[str, np.ndarray]:
        """B positions t drawn by priority, with targets for unroll steps k = 0..K at u = t + k (module docstring):
        the learner's value target is z = value_prefix + bootstrap_scale · (bootstrap_stored or V(bootstrap_obs))."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty GameReplay")
        B, K, n, A, C = int(batch_size), self.num_unroll, self.td_steps, self.num_actions, self.capacity
        beta = self.beta if beta is None else float(beta)
        total = self.tree.total
        u01 = (np.arange(B) + self.rng.random(B)) * (total / B)  # stratified (Schaul et al. 2016, App. B.2.1)
        slot = self.tree.find(np.minimum(u01, np.nextafter(total, 0)))  # (B,)
        probs = self.tree.leaves[slot] / total
        w = (self.size * probs) ** (-beta)
        random_actions = self.rng.integers(0, A, size=(B, K))  # drawn whole so the stream is fixed per call

        lo = self.total - self.size  # oldest live step id
        g = self.game_of[slot] % self._gcap  # (B,)
        start, T, term = self.g_start[g], self.g_len[g], self.g_term[g]
        t = (slot - start) % C  # (B,) position within its game
        ks = np.arange(K + 1)
        u = t[:, None] + ks  # (B, K+1)
        Tb = T[:, None]  # (B, 1)
        real = u < Tb  # (B, K+1)
        su = (start[:, None] + np.minimum(u, Tb - 1)) % C  # (B, K+1) slot of u (clipped to the last step)

        actions = np.where(real[:, :K], self.actions[su[:, :K]], random_actions)  # (B, K)
        prev = (start[:, None] + np.clip(u - 1, 0, None)) % C  # slot of u-1
        target_rewards = np.where((ks >= 1) & (u - 1 < Tb), self.rewards[prev], 0.0).astype(np.float32)
        policies = np.where(real[..., None], self.policies[su], np.float32(1.0 / A))  # (B, K+1, A)
        legal = np.where(real[..., None], self.legal[su], True)

        # n-step value targets, the window cut at the game's end and at the first random move p ≥ u
        end = np.minimum(u + n, Tb)  # (B, K+1) position bootstrapped from (for u ≤ T)
        prefix = np.zeros((B, K + 1), dtype=np.float64)
        scale = np.ones((B, K + 1), dtype=np.float64)
        for i in range(n):
            pos = u + i
            sp = (start[:, None] + np.minimum(pos, Tb - 1)) % C
            random_move = (pos < end) & self.explored[sp]  # the window ends here: bootstrap from v_pos
            end = np.where(random_move, pos, end)
            inwin = pos < end
            prefix += np.where(inwin, scale * self.rewards[sp], 0.0)
            scale = np.where(inwin, scale * self.discounts[sp], scale)
        at_final = end == Tb
        term_b = term[:, None]
        # a terminated game bootstraps nothing; beyond T (and at T of a terminated game) the target is 0
        scale = np.where((u > Tb) | (at_final & term_b), 0.0, scale)
        se = (start[:, None] + np.minimum(end, Tb - 1)) % C
        gb = np.broadcast_to(g[:, None], (B, K + 1))
        stored = np.where(at_final, self.g_boot[gb], self.root_values[se])
        boot_obs = np.where(at_final.reshape(*at_final.shape, *[1] * len(self.obs_shape)),
                            self.g_final[gb], self.obs[se])
        live = scale != 0
        boot_obs[~live] = 0
        # the observations the unrolled steps stand for (EfficientZero's consistency targets): o_{t+k} up to T
        seen = u <= Tb  # (B, K+1)
        obs_shape1 = (*seen.shape, *[1] * len(self.obs_shape))
        unroll_obs = np.where((u >= Tb).reshape(obs_shape1), self.g_final[gb], self.obs[su])
        unroll_obs[~seen] = 0
        batch = {
            "obs": self.obs[slot],  # (B, *obs_shape)
            "unroll_obs": unroll_obs,  # (B, K+1, *obs_shape), zeros beyond T
            "unroll_seen": seen.astype(np.float32),  # (B, K+1): 1 where t+k <= T
            "actions": actions.astype(np.int64),  # (B, K)
            "target_rewards": target_rewards,  # (B, K+1)
            "value_prefix": prefix.astype(np.float32),  # (B, K+1)
            "bootstrap_scale": scale.astype(np.float32),  # (B, K+1)
            "bootstrap_obs": boot_obs,  # (B, K+1, *obs_shape)
            "bootstrap_stored": np.where(live, stored, 0.0).astype(np.float32),  # (B, K+1)
            "target_policies": policies.astype(np.float32),  # (B, K+1, A)
            "legal": legal,  # (B, K+1, A) bool, all True beyond the end
            "masks": real.astype(np.float32),  # (B, K+1)
            "weights": (w / w.max()).astype(np.float32),  # (B,)
            "indices": (lo + (slot - lo) % C).astype(np.int64),  # (B,) global step ids
        }
        if self.symmetries is not None:
            obs_perm, action_perm = self.symmetries
            g = self.rng.integers(0, len(action_perm), size=B)
            batch = apply_symmetries(batch, obs_perm[g], action_perm[g])
        return batch

    # -- persistence (plain arrays for buffer.npz; no pickle) -------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        slots = self._live_slots()
        gids = np.arange(self.game_head - self.games, self.game_head) % self._gcap
        out = {"obs": self.obs[slots], **{n: getattr(self, n)[slots] for n in self._STEP}}
        out.update({n: getattr(self, n)[gids] for n in self._GAME})
        out["counters"] = np.array([self.capacity, self.num_actions, self.total, self.size, self.game_head,
                                    self.games], dtype=np.int64)
        out["rng_state"] = _rng_to_array(self.rng)
        return out

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        C, A, total, size, head, games = (int(x) for x in d["counters"])
        if (C, A) != (self.capacity, self.num_actions) or d["obs"].shape[1:] != self.obs_shape:
            raise ValueError(f"GameReplay mismatch: saved capacity {C}, {A} actions, obs {d['obs'].shape[1:]}; "
                             f"expected {self.capacity}, {self.num_actions}, {self.obs_shape}")
        self.total, self.size, self.game_head, self.games = total, size, head, 0
        self._alloc_games(max(16, 1 << max(0, games - 1).bit_length()))
        self.games = games
        slots = self._live_slots()
        for n in ("obs", *self._STEP):
            arr = getattr(self, n)
            arr[:] = n == "legal"  # (beyond the live slots: legal True, all else 0)
            arr[slots] = d.get(n, 0)  # (checkpoints from before random_move_prob hold no "explored")
        gids = np.arange(head - games, head) % self._gcap
        for n in self._GAME:
            getattr(self, n)[gids] = d[n]
        leaves = np.zeros(C, dtype=np.float64)
        leaves[slots] = self.priorities[slots] ** self.alpha
        self.tree.set_all(leaves)
        _rng_from_array(self.rng, d["rng_state"])


def apply_symmetries(batch: dict[str, np.ndarray], obs_perm: np.ndarray, action_perm: np.ndarray
                     ) -> dict[str, np.ndarray]:
    """``batch`` with sample b shown under the symmetry (obs_perm[b] (D,), action_perm[b] (A,)): position i of
    a transformed observation (policy, legal mask) is entry perm[i] of the original, and move a becomes the c
    with action_perm[b, c] == a."""
    out = dict(batch)
    B = obs_perm.shape[0]

    def permute(x: np.ndarray, perm: np.ndarray) -> np.ndarray:
        idx = perm.reshape(B, *[1] * (x.ndim - 2), perm.shape[1])
        return np.take_along_axis(x, np.broadcast_to(idx, x.shape), -1)

    for key in ("obs", "unroll_obs", "bootstrap_obs"):
        out[key] = permute(batch[key], obs_perm)
    for key in ("target_policies", "legal"):
        out[key] = permute(batch[key], action_perm)
    out["actions"] = np.take_along_axis(np.argsort(action_perm, axis=1), batch["actions"], 1)
    return out
