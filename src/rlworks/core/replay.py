"""Replay memory for off-policy algorithms: a compact ring buffer, n-step targets and proportional
prioritised replay on a vectorised sum-tree.

Memory layout (``ReplayBuffer``)
--------------------------------
Transitions live in a ring of ``rows`` time steps × ``n_envs`` environments (row t holds step t of
every env, the (T, N) layout of ``core.returns``). Each observation is stored **once**: the next
observation of row t is the observation of row t+1. Where an episode ended at row t (terminated
*or* truncated) row t+1 holds the next episode's reset observation, so the true final observation
goes into a small side ring (``final_obs``) that ``final_id[t, env]`` points into; final
observations are freed first-in first-out as their rows are overwritten, and the side ring grows
(doubling) only if more episode ends are alive than it holds. Observations keep their dtype
(uint8 images stay uint8; conversion to float happens on the sampled batch).

``add`` also writes the new observation one row ahead, so the newest transition can be sampled
at once (as in SB3's ``optimize_memory_usage``). When the ring is full that row is the oldest
one, whose observation has just been replaced: it is excluded from sampling, so a full buffer
holds ``(rows - 1) * n_envs`` sampleable transitions.

n-step targets (Sutton & Barto 2018 §7.1; used by Rainbow, Hessel et al. 2018) are assembled
at sampling time: ``returns = Σ_{k<m} γ^k r_{t+k}``, ``discounts = γ^m (1 - terminated)`` and
``next_obs = s_{t+m}`` with m ≤ n stopping at the first episode end (a truncation is
bootstrapped from its final observation, a termination is not) or at the newest stored step —
the same windows as ``core.returns.n_step_returns`` over a rollout.

Prioritised replay (Schaul et al. 2016, "Prioritized Experience Replay", proportional variant):
P(i) = p_i^α / Σ_k p_k^α, new transitions get the largest priority seen so far, the batch is
drawn stratified (one uniform draw in each of B equal segments of the total, §3.3 / App. B.2.1),
and the importance weights w_i = (N·P(i))^{-β} are normalised by the batch's largest weight so
they only scale updates down (§3.4; the batch-max variant as in Dopamine).

Extra per-transition fields (``extras``, e.g. Bootstrapped DQN's bootstrap masks, Osband et al. 2016)
are stored beside the actions, one row per step, and sampled with the transition they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

_ID_MOD = 1 << 31

# ---------------------------------------------------------------------------------------------
# sum-tree
# ---------------------------------------------------------------------------------------------


class SumTree:
    """A complete binary tree over ``size`` non-negative leaves (float64) whose inner nodes hold
    the sums of their children. Updates and prefix-sum searches take whole index/value batches and
    loop only over the tree's depth (vectorised over the batch)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.depth = max(1, (self.size - 1).bit_length())
        self.P = 1 << self.depth  # leaves live at tree[P : P + size]
        self.tree = np.zeros(2 * self.P, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    @property
    def leaves(self) -> np.ndarray:
        return self.tree[self.P:self.P + self.size]

    def set(self, idx: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``idx`` to ``values`` and recompute their ancestors (duplicates allowed:
        every ancestor is recomputed from its children, so the last value written wins)."""
        i = np.asarray(idx, dtype=np.int64) + self.P
        self.tree[i] = values
        for _ in range(self.depth):
            i >>= 1
            self.tree[i] = self.tree[2 * i] + self.tree[2 * i + 1]

    def set_all(self, values: np.ndarray) -> None:
        """Replace every leaf and rebuild the tree bottom-up (used when loading a state)."""
        self.tree[:] = 0.0
        self.tree[self.P:self.P + self.size] = values
        lo = self.P
        while lo > 1:
            hi, lo = lo, lo >> 1
            self.tree[lo:hi] = self.tree[2 * lo:2 * hi:2] + self.tree[2 * lo + 1:2 * hi:2]

    def find(self, u: np.ndarray) -> np.ndarray:
        """For each prefix sum ``u`` in [0, total) the leaf k with cumsum[k-1] <= u < cumsum[k].
        Leaves of priority 0 are never returned (a subtree whose sum is 0 is never entered)."""
        u = np.array(u, dtype=np.float64)
        i = np.ones(u.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = self.tree[2 * i]
            right = self.tree[2 * i + 1]
            go_right = ((u >= left) & (right > 0)) | (left <= 0)
            u = np.where(go_right, u - left, u)
            i = 2 * i + go_right
        return i - self.P


# ---------------------------------------------------------------------------------------------
# the buffer
# ---------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """One sampled minibatch as NumPy arrays (``torch.from_numpy`` them once per batch)."""

    obs: np.ndarray  # (B, *obs_shape) storage dtype
    actions: np.ndarray  # (B,) int64 or (B, act_dim) float32
    returns: np.ndarray  # (B,) float32: Σ_{k<m} γ^k r_{t+k} (the reward when n = 1)
    discounts: np.ndarray  # (B,) float32: γ^m, 0 where the window ended in a termination
    next_obs: np.ndarray  # (B, *obs_shape): s_{t+m}, the true final observation at an episode end
    weights: np.ndarray  # (B,) float32 importance weights (ones without prioritised replay)
    indices: np.ndarray  # (B,) int64 leaf indices, for ``update_priorities``
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # (B, *shape) per extra field


class ReplayBuffer:
    """Ring buffer of ``capacity`` transitions from ``n_envs`` envs (see the module docstring).

    ``add(obs, actions, rewards, next_obs, terminations, truncations)`` takes one vector-env
    step: arrays with a leading ``n_envs`` axis, ``next_obs`` being the *true* next observation
    (the final observation where an episode ended). ``sample(batch_size, rng)`` draws uniformly,
    or by priority when ``prioritized`` is set.
    """

    def __init__(self, capacity: int, n_envs: int, obs_shape: tuple[int, ...], *, obs_dtype: Any = np.float32,
                 act_shape: tuple[int, ...] = (), act_dtype: Any = np.int64, n_step: int = 1, gamma: float = 0.99,
                 prioritized: bool = False, alpha: float = 0.6, priority_eps: float = 1e-6,
                 extras: dict[str, tuple[tuple[int, ...], Any]] | None = None) -> None:
        """``extras``: name -> (shape, dtype) of further per-transition fields ``add`` takes and
        ``sample`` returns in ``Batch.extras``."""
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        self.n_envs = int(n_envs)
        self.rows = max(-(-int(capacity) // self.n_envs), 2)
        self.obs_shape, self.act_shape = tuple(obs_shape), tuple(act_shape)
        self.n_step, self.gamma = int(n_step), float(gamma)
        R, N = self.rows, self.n_envs
        self.obs = np.zeros((R, N, *self.obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((R, N, *self.act_shape), dtype=act_dtype)
        self.rewards = np.zeros((R, N), dtype=np.float32)
        self.terminations = np.zeros((R, N), dtype=bool)
        self.truncations = np.zeros((R, N), dtype=bool)
        self.extras = {name: np.zeros((R, N, *shape), dtype=dtype) for name, (shape, dtype) in (extras or {}).items()}
        # id (mod 2^31) of the final observation where the episode ended; slot = id % side-ring size,
        # which divides 2^31, so int32 suffices however long the run
        self.final_id = np.full((R, N), -1, dtype=np.int32)
        self._final_cap = max(16, 1 << max(0, (R * N // 64).bit_length()))
        self.final_obs = np.zeros((self._final_cap, *self.obs_shape), dtype=obs_dtype)
        self.final_head = 0  # ids handed out so far; live ids are [final_head - final_live, final_head)
        self.final_live = 0
        self.pos = 0  # next row to write
        self.count = 0  # rows written (≤ rows)
        self.prioritized = bool(prioritized)
        self.alpha, self.priority_eps = float(alpha), float(priority_eps)
        self.max_priority = 1.0
        self.tree = SumTree(R * N) if self.prioritized else None
        # (rows · envs, ...) views of the arrays, indexed by leaf = row · n_envs + env (``_gather1``)
        self._flat = {name: a.reshape(R * N, *a.shape[2:]) for name, a in (
            ("obs", self.obs), ("actions", self.actions), ("rewards", self.rewards),
            ("terminations", self.terminations), ("final_id", self.final_id))}
        self._flat_extras = {name: a.reshape(R * N, *a.shape[2:]) for name, a in self.extras.items()}

    # -- size ------------------------------------------------------------------------------------
    @property
    def full(self) -> bool:
        return self.count == self.rows

    @property
    def valid_rows(self) -> int:
        return self.count - 1 if self.full else self.count

    def __len__(self) -> int:
        """Number of sampleable transitions."""
        return self.valid_rows * self.n_envs

    @property
    def nbytes(self) -> int:
        """Bytes held by the preallocated arrays (printed at the start of a run)."""
        arrays = [self.obs, self.actions, self.rewards, self.terminations, self.truncations, self.final_id,
                  self.final_obs, *self.extras.values()]
        return int(sum(a.nbytes for a in arrays) + (self.tree.tree.nbytes if self.tree is not None else 0))

    # -- writing ---------------------------------------------------------------------------------
    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminations: np.ndarray, truncations: np.ndarray, extras: dict[str, np.ndarray] | None = None) -> None:
        p = self.pos
        if self.extras.keys() != (extras or {}).keys():
            raise ValueError(f"add() needs the extras {sorted(self.extras)}, got {sorted(extras or {})}")
        if self.full:  # row p is overwritten: its final observations (the oldest alive) are freed
            self.final_live -= int((self.final_id[p] >= 0).sum())
        self.obs[p] = obs
        self.actions[p] = actions
        self.rewards[p] = rewards
        self.terminations[p] = terminations
        self.truncations[p] = truncations
        for name, value in (extras or {}).items():
            self.extras[name][p] = value
        done = np.logical_or(terminations, truncations)
        self.final_id[p] = -1
        nxt = (p + 1) % self.rows
        if done.any():
            idx = np.flatnonzero(done)
            k = idx.shape[0]
            if self.final_live + k > self._final_cap:
                self._grow_final(self.final_live + k)
            ids = (self.final_head + np.arange(k)) % _ID_MOD
            self.final_obs[ids % self._final_cap] = next_obs[idx]
            self.final_id[p, idx] = ids
            self.final_head += k
            self.final_live += k
            keep = ~done
            self.obs[nxt, keep] = next_obs[keep]  # written ahead; the next add overwrites it identically
        else:
            self.obs[nxt] = next_obs
        self.pos = nxt
        self.count = min(self.count + 1, self.rows)
        if self.tree is not None:
            N = self.n_envs
            self.tree.set(np.arange(p * N, (p + 1) * N), np.full(N, self.max_priority ** self.alpha))
            if self.full:  # the oldest row lost its observation to the write-ahead: never sample it
                self.tree.set(np.arange(nxt * N, (nxt + 1) * N), np.zeros(N))

    def _grow_final(self, need: int) -> None:
        cap = self._final_cap
        while cap < need:
            cap *= 2
        ids = np.arange(self.final_head - self.final_live, self.final_head)
        new = np.zeros((cap, *self.obs_shape), dtype=self.final_obs.dtype)
        new[ids % cap] = self.final_obs[ids % self._final_cap]
        self.final_obs, self._final_cap = new, cap

    def truncate_newest(self, next_obs: np.ndarray) -> None:
        """Mark the newest step of every still-running episode as truncated with ``next_obs`` as its
        final observation: used when the envs cannot be restored exactly (a resumed Box2D/MuJoCo run
        restarts its episodes), so that no transition links two unrelated observations."""
        if self.count == 0:
            return
        p = (self.pos - 1) % self.rows
        running = ~(self.terminations[p] | self.truncations[p])
        idx = np.flatnonzero(running)
        if idx.size == 0:
            return
        if self.final_live + idx.size > self._final_cap:
            self._grow_final(self.final_live + idx.size)
        ids = (self.final_head + np.arange(idx.size)) % _ID_MOD
        self.final_obs[ids % self._final_cap] = next_obs[idx]
        self.final_id[p, idx] = ids
        self.truncations[p, idx] = True
        self.final_head += idx.size
        self.final_live += idx.size

    # -- sampling --------------------------------------------------------------------------------
    def _rows_of(self, offsets: np.ndarray) -> np.ndarray:
        start = (self.pos + 1) % self.rows if self.full else 0
        return (start + offsets) % self.rows

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float = 0.4) -> Batch:
        """A minibatch of ``batch_size`` transitions (with replacement)."""
        n = len(self)
        if n == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        N = self.n_envs
        if self.tree is None and self.n_step == 1:  # the hot path of SAC/TD3/DQN: straight to leaf indices
            # offset k (oldest first) is leaf (start · n_envs + k) mod (rows · n_envs)
            leaf = rng.integers(0, n, size=batch_size)
            if self.full:
                leaf = (leaf + ((self.pos + 1) % self.rows) * N) % (self.rows * N)
            return self._gather1(leaf, np.ones(batch_size, dtype=np.float32))
        if self.tree is None:
            flat = rng.integers(0, n, size=batch_size)
            rows, envs = self._rows_of(flat // N), flat % N
            weights = np.ones(batch_size, dtype=np.float32)
        else:
            total = self.tree.total
            # stratified: one draw in each of batch_size equal segments (Schaul et al. 2016, App. B.2.1)
            u = (np.arange(batch_size) + rng.random(batch_size)) * (total / batch_size)
            leaf = self.tree.find(np.minimum(u, np.nextafter(total, 0)))
            rows, envs = leaf // N, leaf % N
            probs = self.tree.leaves[leaf] / total
            w = (n * probs) ** (-beta)
            weights = (w / w.max()).astype(np.float32)
        return self._gather(rows, envs, weights)

    def _gather(self, rows: np.ndarray, envs: np.ndarray, weights: np.ndarray) -> Batch:
        if self.n_step == 1:
            return self._gather1(rows * self.n_envs + envs, weights)
        B = rows.shape[0]
        newest = (self.pos - 1) % self.rows
        returns = np.zeros(B, dtype=np.float64)
        discounts = np.ones(B, dtype=np.float64)
        next_rows = np.empty(B, dtype=np.int64)
        final = np.full(B, -1, dtype=np.int64)
        alive = np.ones(B, dtype=bool)
        j = rows.copy()
        for k in range(self.n_step):
            returns += np.where(alive, self.gamma ** k * self.rewards[j, envs], 0.0)
            term = self.terminations[j, envs]
            ended = term | self.truncations[j, envs]
            close = alive & (ended | (k == self.n_step - 1) | (j == newest))
            if close.any():
                discounts[close] = np.where(term[close], 0.0, self.gamma ** (k + 1))
                next_rows[close] = (j[close] + 1) % self.rows
                final[close] = np.where(ended[close], self.final_id[j[close], envs[close]], -1)
                alive &= ~close
            j = (j + 1) % self.rows
        next_obs = self.obs[next_rows, envs]
        at_end = final >= 0
        if at_end.any():
            next_obs[at_end] = self.final_obs[final[at_end] % self._final_cap]
        return Batch(obs=self.obs[rows, envs], actions=self.actions[rows, envs], returns=returns.astype(np.float32),
                     discounts=discounts.astype(np.float32), next_obs=next_obs, weights=weights,
                     indices=rows * self.n_envs + envs,
                     extras={name: a[rows, envs] for name, a in self.extras.items()})

    def _gather1(self, leaf: np.ndarray, weights: np.ndarray) -> Batch:
        """The n = 1 case of ``_gather`` without the window loop, by leaf = row · n_envs + env on the
        flat views (one 1-D index per array; a 2-D fancy index costs ~2× as much): the next
        observation is n_envs leaves on, or the stored final one where the episode ended."""
        f = self._flat  # np.take: ~2× faster than a fancy index on these arrays, and it wraps the ring itself
        fid = f["final_id"][leaf]
        next_obs = np.take(f["obs"], leaf + self.n_envs, axis=0, mode="wrap")
        at_end = fid >= 0
        if at_end.any():
            next_obs[at_end] = self.final_obs[fid[at_end] % self._final_cap]
        return Batch(obs=np.take(f["obs"], leaf, axis=0), actions=np.take(f["actions"], leaf, axis=0),
                     returns=f["rewards"][leaf],
                     discounts=np.where(f["terminations"][leaf], np.float32(0.0), np.float32(self.gamma)),
                     next_obs=next_obs, weights=weights, indices=leaf,
                     extras={name: np.take(a, leaf, axis=0) for name, a in self._flat_extras.items()})

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """p_i = |δ_i| + ε (proportional prioritisation, Schaul et al. 2016 §3.3)."""
        if self.tree is None:
            return
        p = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.priority_eps
        if not np.isfinite(p).all():
            raise ValueError("non-finite TD error passed to update_priorities")
        self.max_priority = max(self.max_priority, float(p.max()))
        self.tree.set(indices, p ** self.alpha)

    # -- persistence (plain arrays for buffer.npz; no pickle) -------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        upto = self.rows if self.full else min(self.count + 1, self.rows)  # + the row written ahead
        ids = np.arange(self.final_head - self.final_live, self.final_head)
        out = {
            "obs": self.obs[:upto], "actions": self.actions[:upto], "rewards": self.rewards[:upto],
            "terminations": self.terminations[:upto], "truncations": self.truncations[:upto],
            "final_id": self.final_id[:upto], "final_obs": self.final_obs[ids % self._final_cap],
            "counters": np.array([self.rows, self.n_envs, self.pos, self.count, self.final_head, self.final_live,
                                  self.n_step], dtype=np.int64),
            "max_priority": np.array(self.max_priority, dtype=np.float64),
        }
        if self.tree is not None:
            out["priorities"] = self.tree.leaves.copy()
        out.update({f"extra/{name}": a[:upto] for name, a in self.extras.items()})
        return out

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        rows, n_envs, pos, count, head, live, n_step = (int(x) for x in d["counters"])
        if (rows, n_envs) != (self.rows, self.n_envs):
            raise ValueError(f"buffer shape mismatch: saved {rows}x{n_envs} rows x envs, expected "
                             f"{self.rows}x{self.n_envs}")
        upto = d["obs"].shape[0]
        for name in ("obs", "actions", "rewards", "terminations", "truncations", "final_id",
                     *(f"extra/{n}" for n in self.extras)):
            if name not in d:
                raise ValueError(f"buffer has no array {name!r}")
            arr = d[name]
            target = self.extras[name[6:]] if name.startswith("extra/") else getattr(self, name)
            if arr.shape[1:] != target.shape[1:] or arr.shape[0] != upto or arr.dtype != target.dtype:
                raise ValueError(f"buffer array {name!r} has shape {arr.shape} {arr.dtype}, expected "
                                 f"(<= {self.rows}, {target.shape[1:]}) {target.dtype}")
            target[:upto] = arr
        self.pos, self.count, self.final_head, self.final_live = pos, count, head, live
        if live > self._final_cap:
            self._final_cap = 1 << (live - 1).bit_length()
            self.final_obs = np.zeros((self._final_cap, *self.obs_shape), dtype=self.final_obs.dtype)
        ids = np.arange(head - live, head)
        self.final_obs[ids % self._final_cap] = d["final_obs"]
        self.max_priority = float(d["max_priority"])
        if self.tree is not None:
            if "priorities" not in d or d["priorities"].shape != (self.tree.size,):
                raise ValueError("buffer has no priorities matching this prioritised buffer")
            self.tree.set_all(d["priorities"])
