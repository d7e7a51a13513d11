"""A batch of search trees held as tensors: B trees of up to ``capacity`` nodes over A actions.

Node 0 of each tree is its root; simulation s adds node s + 1 to every tree at once, so a search of S
simulations needs S + 1 nodes. One extra "sink" node (index ``capacity``) is the root's parent: walking
up from a leaf, trees whose path has already ended keep writing into the sink, so every step of the
backup touches all B trees with fixed shapes and no masks (the same idea as mctx's fixed-size arrays,
Danihelka et al. 2022). The arrays are allocated once and reused search after search.
"""

from __future__ import annotations

import torch

from .types import SearchError


class Tree:
    """Preallocated node and edge arrays for B trees; see the module docstring for the layout."""

    def __init__(self, batch: int, num_actions: int, capacity: int, embedding_shape: tuple[int, ...] = (),
                 *, dtype: torch.dtype = torch.float32, embedding_dtype: torch.dtype | None = None,
                 device: torch.device | str = "cpu") -> None:
        if batch < 1 or num_actions < 1 or capacity < 1:
            raise SearchError(f"a tree needs batch, num_actions and capacity >= 1 (got {batch}, {num_actions}, "
                              f"{capacity})")
        self.batch, self.num_actions, self.capacity = batch, num_actions, capacity
        self.embedding_shape = tuple(embedding_shape)
        self.dtype, self.device = dtype, torch.device(device)
        self.sink = capacity
        n = capacity + 1  # + the sink
        B, A = batch, num_actions
        kw = {"dtype": dtype, "device": self.device}
        self.visits = torch.zeros(B, n, **kw)  # (B, N) float, so that W / N needs no cast
        self.value_sum = torch.zeros(B, n, **kw)  # (B, N) for the player to move at the node
        self.raw_value = torch.zeros(B, n, **kw)  # (B, N) the network's own value of the node (Gumbel's v̂)
        self.reward = torch.zeros(B, n, **kw)  # (B, N) of the edge into the node
        self.discount = torch.zeros(B, n, **kw)  # (B, N) of the edge into the node
        self.prior = torch.zeros(B, n, A, **kw)  # (B, N, A) of the node's children
        self.logits = torch.zeros(B, n, A, **kw)  # (B, N, A) the same before the softmax (Gumbel reads them)
        self.legal = torch.ones(B, n, A, dtype=torch.bool, device=self.device)
        self.children = torch.full((B, n, A), -1, dtype=torch.long, device=self.device)
        self.parent = torch.full((B, n), self.sink, dtype=torch.long, device=self.device)
        self.embedding = torch.zeros(B, n, *self.embedding_shape, dtype=embedding_dtype or dtype,
                                     device=self.device)
        self.lo = torch.full((B,), float("inf"), **kw)  # min-max statistics of Q (MuZero appendix B)
        self.hi = torch.full((B,), float("-inf"), **kw)
        self.rows = torch.arange(B, device=self.device)

    def fits(self, batch: int, num_actions: int, embedding: torch.Tensor, dtype: torch.dtype) -> bool:
        return (self.batch == batch and self.num_actions == num_actions and self.dtype == dtype
                and self.embedding_shape == tuple(embedding.shape[1:]) and self.device == embedding.device
                and self.embedding.dtype == embedding.dtype)

    def clear(self) -> None:
        self.visits.zero_()
        self.value_sum.zero_()
        self.reward.zero_()
        self.discount.zero_()
        self.legal.fill_(True)
        self.children.fill_(-1)
        self.parent.fill_(self.sink)
        self.lo.fill_(float("inf"))
        self.hi.fill_(float("-inf"))

    # ---- what the searches read ----------------------------------------------------------------

    def child_stats(self, node: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For node (B,): the children's visits (B, A), their Q = r + discount · W/N seen from the node
        (0 where unvisited), and whether each child exists (B, A)."""
        idx = self.children[self.rows, node]  # (B, A), -1 where not expanded
        exists = idx >= 0
        idx = torch.where(exists, idx, self.sink)
        rows = self.rows[:, None]
        n = self.visits[rows, idx] * exists  # the sink's counts are not a child's
        q = self.reward[rows, idx] + self.discount[rows, idx] * self.value_sum[rows, idx] / n.clamp(min=1)
        visited = n > 0
        return n, torch.where(visited, q, torch.zeros_like(q)), visited

    def normalize(self, q: torch.Tensor) -> torch.Tensor:
        """Min-max normalised Q per tree (B, A): (q − lo)/(hi − lo) where the tree has seen a spread of Q
        (``has_spread``), else q unchanged."""
        lo, hi = self.lo[:, None], self.hi[:, None]
        spread = hi - lo
        ok = has_spread(lo, hi)
        return torch.where(ok, (q - lo) / torch.where(ok, spread, torch.ones_like(spread)), q)


    # ---- what the searches write ---------------------------------------------------------------

    def start(self, root, root_legal: torch.Tensor | None, noise: torch.Tensor | None, noise_weight: float) -> None:
        """Node 0 := the roots. The root counts its own evaluation as a visit (N = 1, W = value), as mctx
        does, so the first simulation already sees the priors."""
        self.clear()
        prior, legal = masked_prior(root.prior_logits.to(self.dtype), root_legal)
        if noise is not None and noise_weight > 0:  # AlphaZero's root exploration (Silver et al. 2018)
            prior = (1 - noise_weight) * prior + noise_weight * noise.to(self.dtype) * legal
        self.prior[:, 0] = prior
        self.logits[:, 0] = root.prior_logits.to(self.dtype)
        self.legal[:, 0] = legal
        self.visits[:, 0] = 1
        self.value_sum[:, 0] = self.raw_value[:, 0] = root.value.to(self.dtype)
        self.embedding[:, 0] = root.embedding

    def simulate(self, index: int, recurrent_fn, select, max_depth: int | None = None) -> None:
        """One simulation in every tree: descend with ``select(node (B,), depth) -> action (B,)`` until an
        edge has no child, or the edge's child lies at depth ``max_depth`` (the root is at depth 0), expand
        that edge's child with one ``recurrent_fn`` call for all B trees (as node ``index`` where it is new;
        re-evaluated in place where it exists, as mctx's depth cutoff does) and back its value up to the
        root."""
        rows = self.rows
        node = torch.zeros_like(rows)
        done = torch.zeros_like(rows, dtype=torch.bool)
        leaf_parent, leaf_action = node.clone(), node.clone()
        depth = 0
        while True:
            action = select(node, depth)
            child = self.children[rows, node, action]
            depth += 1
            stop = ~done & ((child < 0) | (max_depth is not None and depth >= max_depth))
            leaf_parent = torch.where(stop, node, leaf_parent)
            leaf_action = torch.where(stop, action, leaf_action)
            done = done | stop
            if bool(done.all()):
                break
            node = torch.where(done, node, child)
        value, leaf = self.expand(index, recurrent_fn, leaf_parent, leaf_action, max_depth is not None)
        self.backup(value, leaf, depth)

    def expand(self, index: int, recurrent_fn, leaf_parent: torch.Tensor, leaf_action: torch.Tensor,
               capped: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The child of (leaf_parent, leaf_action) in every tree, from one ``recurrent_fn`` call for all of
        them, as node ``index``. Under a depth cap (``capped``) the edge may have a child already: that node is
        written again with the same outputs instead. Returns its value (B,) and its node (B,)."""
        rows = self.rows
        out = recurrent_fn(self.embedding[rows, leaf_parent], leaf_action)
        if capped:
            existing = self.children[rows, leaf_parent, leaf_action]
            node = torch.where(existing >= 0, existing, torch.full_like(existing, index))
            at = (rows, node)
        else:  # every leaf is new: whole columns, the cheaper writes on the uncapped hot path
            node = torch.full_like(rows, index)
            at = (slice(None), index)
        self.children[rows, leaf_parent, leaf_action] = node
        self.parent[at] = leaf_parent
        self.reward[at] = out.reward.to(self.dtype)
        self.discount[at] = out.discount.to(self.dtype)
        logits = out.prior_logits.to(self.dtype)
        self.logits[at] = logits
        self.prior[at], self.legal[at] = masked_prior(logits, out.legal)
        self.embedding[at] = out.embedding
        value = out.value.to(self.dtype)
        self.raw_value[at] = value
        return value, node

    def backup(self, value: torch.Tensor, leaf: torch.Tensor, depth: int) -> None:
        """G := the leaf's value; at each node from the leaf (B,) to the root: W += G, N += 1, update the
        min-max statistics with the node's Q seen from its parent, then G := r + discount · G (MuZero
        appendix B, in mctx's sign convention); ``depth`` bounds the leaves' depth."""
        rows, g = self.rows, value
        node = leaf.clone()
        for _ in range(depth + 1):
            self.value_sum[rows, node] += g
            self.visits[rows, node] += 1
            r, d = self.reward[rows, node], self.discount[rows, node]
            inner = (node != 0) & (node != self.sink)
            q = r + d * self.value_sum[rows, node] / self.visits[rows, node]
            self.lo.copy_(torch.where(inner, torch.minimum(self.lo, q), self.lo))  # in place: kernels.py views them
            self.hi.copy_(torch.where(inner, torch.maximum(self.hi, q), self.hi))
            g = r + d * g
            node = self.parent[rows, node]

    def root_result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The roots' children visits (B, A), their Q (B, A; 0 where unvisited) and the roots' values (B,)."""
        n, q, _ = self.child_stats(torch.zeros_like(self.rows))
        return n, q, self.value_sum[:, 0] / self.visits[:, 0]


#: a spread of Q within this fraction of (1 + the largest |Q|) is rounding, not information: the same Q summed
#: in another order (W/N after N equal values, d·W/N against d·(W/N)) differs in its last bits, and dividing by
#: such a spread would turn those bits into value scores of 0 or 1 (the float64 trees of the tests, where nodes
#: are evaluated again under a depth cap). A float32 tree cannot hold a non-zero spread this small but near 0.
SPREAD_TOL = 1e-9


def has_spread(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Whether min-max normalisation applies: hi − lo above ``SPREAD_TOL`` of the Q's scale (kernels.py and the
    tests' reference search apply the same rule)."""
    return hi - lo > SPREAD_TOL * (1 + torch.maximum(lo.abs(), hi.abs()))


def masked_prior(logits: torch.Tensor, legal: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax over the legal actions; a row with no legal action counts every action as legal."""
    if legal is None:
        return logits.softmax(-1), torch.ones_like(logits, dtype=torch.bool)
    legal = legal.to(torch.bool)
    legal = legal | ~legal.any(-1, keepdim=True)
    return logits.masked_fill(~legal, float("-inf")).softmax(-1), legal
