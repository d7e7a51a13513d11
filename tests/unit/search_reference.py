"""A slow pUCT tree search for ONE root, in Python objects and floats, written as plainly as MuZero's pseudocode.

It is the oracle that ``rlworks.search.puct_search`` (batched, in tensors) is checked against in
``test_search.py``. The conventions are mctx's (``rlworks/search/types.py``): a node's value is for the player
to move there, an edge's reward is for the player who acted, and the edge's discount multiplies the child's value
seen from its parent (γ, −1 for alternating turns, 0 at the end).

* A node's prior is the softmax of its logits over its legal actions (every action when none is legal); at the
  root, with noise, ``(1 − ε)·prior + ε·noise``.
* The root starts with N = 1 and W = its value; an expanded leaf gets N = 1 and W = its value by the backup.
* Selection maximises ``normalize(r + d·value(child)) + pb_c·sqrt(N)/(1 + N_child)·prior`` over legal actions,
  ties to the lowest index, with ``pb_c = log((N + base + 1)/base) + init`` and ``normalize`` the min-max of
  the ``r + d·value`` seen so far in this tree (identity until two values further apart than rounding were seen).
"""

from __future__ import annotations

import math


class MinMaxStats:
    def __init__(self) -> None:
        self.lo = math.inf
        self.hi = -math.inf

    def update(self, q: float) -> None:
        self.lo = min(self.lo, q)
        self.hi = max(self.hi, q)

    def normalize(self, q: float) -> float:
        # a spread within 1e-9 of (1 + the largest |Q|) is rounding (rlworks.search.tree.SPREAD_TOL): identity
        if self.hi - self.lo > 1e-9 * (1 + max(abs(self.lo), abs(self.hi))):
            return (q - self.lo) / (self.hi - self.lo)
        return q


class Node:
    def __init__(self, prior_logits, legal, embedding, reward: float = 0.0, discount: float = 0.0) -> None:
        logits = [float(x) for x in prior_logits]
        legal = [True] * len(logits) if legal is None else [bool(x) for x in legal]
        if not any(legal):
            legal = [True] * len(logits)
        self.legal = legal
        self.prior = masked_softmax(logits, legal)
        self.embedding = embedding
        self.reward = float(reward)
        self.discount = float(discount)
        self.N = 0
        self.W = 0.0
        self.children: dict[int, Node] = {}

    def value(self) -> float:
        return self.W / self.N if self.N > 0 else 0.0

    def q_from_parent(self) -> float:
        """The child's worth seen from its parent: r + d·value()."""
        return self.reward + self.discount * self.value()


def masked_softmax(logits: list[float], legal: list[bool]) -> list[float]:
    best = max(x for x, ok in zip(logits, legal) if ok)
    exps = [math.exp(x - best) if ok else 0.0 for x, ok in zip(logits, legal)]
    total = sum(exps)
    return [e / total for e in exps]


def ucb_score(parent: Node, action: int, stats: MinMaxStats, pb_c_init: float, pb_c_base: float) -> float:
    child = parent.children.get(action)
    child_visits = child.N if child is not None else 0
    pb_c = math.log((parent.N + pb_c_base + 1) / pb_c_base) + pb_c_init
    prior_score = pb_c * math.sqrt(parent.N) / (1 + child_visits) * parent.prior[action]
    if child is not None and child.N > 0:
        value_score = stats.normalize(child.q_from_parent())
    else:
        value_score = 0.0
    return prior_score + value_score


def select_action(node: Node, stats: MinMaxStats, pb_c_init: float, pb_c_base: float) -> int:
    best_action, best_score = -1, -math.inf
    for action in range(len(node.prior)):
        if not node.legal[action]:
            continue
        score = ucb_score(node, action, stats, pb_c_init, pb_c_base)
        if score > best_score:  # strictly greater: ties go to the lowest index
            best_action, best_score = action, score
    return best_action


def backup(path: list[Node], leaf_value: float, stats: MinMaxStats) -> None:
    """``path`` runs from the root to the new leaf."""
    g = leaf_value
    for depth in range(len(path) - 1, -1, -1):
        node = path[depth]
        node.W += g
        node.N += 1
        if depth > 0:
            stats.update(node.q_from_parent())
        g = node.reward + node.discount * g


def reference_search(root_prior_logits, root_value: float, root_embedding, step_one, num_simulations: int,
                     pb_c_init: float = 1.25, pb_c_base: float = 19652.0, exploration_fraction: float = 0.25,
                     root_legal=None, root_noise=None, max_depth=None) -> tuple[list[int], list[float], float]:
    """``step_one(embedding, action) -> (reward, discount, prior_logits (A,), value, embedding, legal or None)``.
    ``max_depth``: a simulation whose next step would go below that depth evaluates the child there again
    (mctx's depth cutoff) instead of descending into it.

    Returns (visit counts of the root's children, their q = r + d·value (0 where unvisited), the root's value).
    """
    root = Node(root_prior_logits, root_legal, root_embedding)
    if root_noise is not None:
        noise = [float(x) for x in root_noise]
        root.prior = [(1 - exploration_fraction) * p + exploration_fraction * n for p, n in zip(root.prior, noise)]
    root.N = 1
    root.W = float(root_value)
    stats = MinMaxStats()

    for _ in range(num_simulations):
        node = root
        path = [root]
        while True:
            action = select_action(node, stats, pb_c_init, pb_c_base)
            child = node.children.get(action)
            if child is not None and (max_depth is None or len(path) < max_depth):  # the child's depth: len(path)
                node = child
                path.append(node)
                continue
            reward, discount, logits, value, embedding, legal = step_one(node.embedding, action)
            if child is None:
                child = Node(logits, legal, embedding, reward=reward, discount=discount)
                node.children[action] = child
            path.append(child)
            backup(path, float(value), stats)
            break

    num_actions = len(root.prior)
    visit_counts = [root.children[a].N if a in root.children else 0 for a in range(num_actions)]
    q_values = [root.children[a].q_from_parent() if visit_counts[a] > 0 else 0.0 for a in range(num_actions)]
    return visit_counts, q_values, root.W / root.N
