"""The pUCT search's tree walks as compiled loops (numba), a CPU backend beside ``Tree.simulate``'s tensor
code. The tensor code pays a dispatch per operation at every depth of every simulation; these loops walk
each of the B trees directly in the same arrays (``Tensor.numpy()`` views, no copies), the way
LightZero's and muzero-general's C++/Python trees do. The network call between them stays one batched
torch call. ``tests/unit/test_search.py`` checks both against a slow reference."""

from __future__ import annotations

import math

import numpy as np

try:
    import numba

    njit = numba.njit(cache=True, nogil=True)
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency; the tensor code is the fallback
    HAVE_NUMBA = False

    def njit(f):
        return f


@njit
def puct_select(visits, value_sum, reward, discount, prior, legal, children, lo, hi, c_init, c_base, spread_tol,
                max_depth, leaf_parent, leaf_action):  # pragma: no cover - compiled
    """Descend every tree by pUCT to an edge without a child, or whose child lies at depth ``max_depth``;
    write that edge into leaf_parent/leaf_action and return the deepest descent (the selection steps).
    ``spread_tol``: tree.SPREAD_TOL (an argument, not a global: numba's cache would keep an old value)."""
    B, _, A = prior.shape
    deepest = 0
    for b in range(B):
        node, depth = 0, 0
        while True:
            n_parent = visits[b, node]
            pb_c = (math.log((n_parent + c_base + 1.0) / c_base) + c_init) * math.sqrt(n_parent)
            spread = hi[b] - lo[b]
            normalise = spread > spread_tol * (1.0 + max(abs(lo[b]), abs(hi[b])))  # tree.has_spread
            best, best_a = -np.inf, -1
            for a in range(A):
                if not legal[b, node, a]:
                    continue
                c = children[b, node, a]
                n_child, value_score = 0.0, 0.0
                if c >= 0 and visits[b, c] > 0:
                    n_child = visits[b, c]
                    q = reward[b, c] + discount[b, c] * value_sum[b, c] / n_child
                    value_score = (q - lo[b]) / spread if normalise else q
                score = pb_c / (1.0 + n_child) * prior[b, node, a] + value_score
                if score > best:
                    best, best_a = score, a
            depth += 1
            c = children[b, node, best_a]
            if c < 0 or depth >= max_depth:
                leaf_parent[b], leaf_action[b] = node, best_a
                break
            node = c
        deepest = max(deepest, depth)
    return deepest


@njit
def backup(visits, value_sum, reward, discount, parent, lo, hi, leaf, value, sink):  # pragma: no cover
    """From node ``leaf[b]`` of every tree b up to its root: W += G, N += 1, min-max of Q, G = r + d·G."""
    B = visits.shape[0]
    for b in range(B):
        node, g = leaf[b], value[b]
        while node != sink:
            value_sum[b, node] += g
            visits[b, node] += 1
            if node != 0:
                q = reward[b, node] + discount[b, node] * value_sum[b, node] / visits[b, node]
                lo[b] = min(lo[b], q)
                hi[b] = max(hi[b], q)
            g = reward[b, node] + discount[b, node] * g
            node = parent[b, node]
