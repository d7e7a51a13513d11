"""The searches' tree walks (pUCT and Gumbel) as compiled loops (numba), a CPU backend beside
``Tree.simulate``'s tensor code. The tensor code pays a dispatch per operation at every depth of every
simulation; these loops walk each of the B trees directly in the same arrays (``Tensor.numpy()`` views, no
copies), the way LightZero's and muzero-general's C++/Python trees do. The network call between them stays one
batched torch call. ``tests/unit/test_search.py`` checks both pUCT walks against a slow reference, and
``tests/unit/test_search_gumbel.py`` the two Gumbel walks against each other."""

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
def _descend(children, b, node, action, depth, max_depth, leaf_parent, leaf_action):  # pragma: no cover
    """Tree b's child through (node, action), at ``depth``; -1 where the descent stops there (no child, or the
    child lies at ``max_depth``), having written that edge into leaf_parent/leaf_action."""
    c = children[b, node, action]
    if c < 0 or depth >= max_depth:
        leaf_parent[b], leaf_action[b] = node, action
        return -1
    return c


@njit
def puct_select(visits, value_sum, reward, discount, prior, legal, children, lo, hi, c_init, c_base, spread_tol,
                max_depth, leaf_parent, leaf_action):  # pragma: no cover - compiled
    """Descend every tree by pUCT to an edge without a child, or whose child lies at depth ``max_depth``;
    write that edge into leaf_parent/leaf_action.
    ``spread_tol``: tree.SPREAD_TOL (an argument, not a global: numba's cache would keep an old value)."""
    B, _, A = prior.shape
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
            node = _descend(children, b, node, best_a, depth, max_depth, leaf_parent, leaf_action)
            if node < 0:
                break


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


@njit
def gumbel_select(visits, value_sum, raw_value, reward, discount, prior, logits, legal, children, scores0,
                  want, c_visit, c_scale, max_depth, leaf_parent, leaf_action):  # pragma: no cover - compiled
    """Gumbel MuZero's descent (search/gumbel.py), tree by tree: at the root, sequential halving's choice, the
    largest ``scores0[b, a]`` (g + logits, the root's fixed part) + σ(q̂) among the legal actions visited exactly
    ``want[b]`` times; below it, argmax π'(a) − N(a) / (1 + Σ N), π' = softmax(logits + σ(q̂)). σ(q̂) as
    ``gumbel.sigma``: completed Q (v_mix for unvisited children), min-max scaled over the legal ones. Writes the
    edge to expand into leaf_parent/leaf_action."""
    B, _, A = prior.shape
    n = np.zeros(A)
    q = np.zeros(A)
    score = np.zeros(A)
    for b in range(B):
        node, depth = 0, 0
        while True:
            # completed Q and visits of the node's children (gumbel.completed_q)
            total, visited_prior, weighted = 0.0, 0.0, 0.0
            for a in range(A):
                c = children[b, node, a]
                n[a], q[a] = 0.0, 0.0
                if c >= 0 and visits[b, c] > 0:
                    n[a] = visits[b, c]
                    q[a] = reward[b, c] + discount[b, c] * value_sum[b, c] / n[a]
                    total += n[a]
                    visited_prior += prior[b, node, a]
                    weighted += prior[b, node, a] * q[a]
            weighted /= max(visited_prior, 1.1754943508222875e-38)  # float32's tiny, as completed_q's clamp
            v_mix = (raw_value[b, node] + total * weighted) / (1.0 + total)
            lo, hi, most = np.inf, -np.inf, 0.0
            for a in range(A):
                if n[a] == 0.0:
                    q[a] = v_mix
                if legal[b, node, a]:
                    lo, hi = min(lo, q[a]), max(hi, q[a])
                most = max(most, n[a])
            coef, spread = (c_visit + most) * c_scale, max(hi - lo, 1e-8)  # σ = coef · (q − lo) / spread
            best, best_a = -np.inf, 0  # 0 where nothing qualifies, as argmax over -inf does
            if depth == 0:  # the root: sequential halving
                for a in range(A):
                    if legal[b, 0, a] and n[a] == want[b]:
                        s = max(scores0[b, a] + coef * ((q[a] - lo) / spread), -1e9)
                        if s > best:
                            best, best_a = s, a
            else:  # the deterministic rule inside the tree
                top = -np.inf
                for a in range(A):
                    if legal[b, node, a]:
                        score[a] = logits[b, node, a] + coef * ((q[a] - lo) / spread)
                        top = max(top, score[a])
                norm = 0.0
                for a in range(A):
                    if legal[b, node, a]:
                        score[a] = math.exp(score[a] - top)
                        norm += score[a]
                for a in range(A):
                    if legal[b, node, a]:
                        s = score[a] / norm - n[a] / (1.0 + total)
                        if s > best:
                            best, best_a = s, a
            depth += 1
            node = _descend(children, b, node, best_a, depth, max_depth, leaf_parent, leaf_action)
            if node < 0:
                break
