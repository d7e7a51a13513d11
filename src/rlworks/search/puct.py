"""MuZero's search: pUCT selection with min-max normalised Q (Schrittwieser et al. 2020, appendix B).

At node s, the search takes the legal action maximising

    Q̄(s, a) + P(s, a) · √N(s) / (1 + N(s, a)) · (c1 + log((N(s) + c2 + 1) / c2))

where Q̄ is Q = r + discount · V(child) scaled to [0, 1] by the smallest and largest Q seen in that tree
(0 for an unvisited child), P the prior (at the root mixed with Dirichlet noise, AlphaZero's exploration,
Silver et al. 2018), c1 = ``pb_c_init`` and c2 = ``pb_c_base``. Ties go to the lowest action index. The
result's policy is the root's visit counts normalised; acting with a temperature is the caller's choice
(``visit_policy``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import kernels
from .tree import SPREAD_TOL, Tree
from .types import RecurrentFn, RootOutput, SearchError, SearchResult


@dataclass(frozen=True)
class PUCTConfig:
    pb_c_init: float = 1.25
    """c1 of the pUCT rule"""
    pb_c_base: float = 19652.0
    """c2 of the pUCT rule"""
    dirichlet_alpha: float = 0.25
    """α of the root's Dirichlet noise (0.3 chess, 0.03 Go; MuZero Atari 0.25)"""
    exploration_fraction: float = 0.25
    """weight of the noise in the root's prior; 0 turns it off (evaluation)"""


def dirichlet_noise(rng: np.random.Generator, legal: torch.Tensor, alpha: float) -> torch.Tensor:
    """(B, A) Dirichlet(α) draws over each row's legal actions (0 on the illegal ones)."""
    mask = legal.detach().cpu().numpy().astype(bool)
    mask |= ~mask.any(-1, keepdims=True)
    g = rng.standard_gamma(alpha, size=mask.shape) * mask
    g /= np.maximum(g.sum(-1, keepdims=True), 1e-12)
    return torch.as_tensor(g, device=legal.device)


def check_sizes(root: RootOutput, num_simulations: int, tree: Tree | None) -> Tree:
    """The tree to search in: the one given (checked) or a new one of num_simulations + 1 nodes."""
    if root.prior_logits.dim() != 2:
        raise SearchError(f"root prior_logits must be (B, A), got shape {tuple(root.prior_logits.shape)}")
    B, A = root.prior_logits.shape
    if root.value.shape != (B,) or root.embedding.shape[0] != B:
        raise SearchError(f"root batch sizes differ: logits {B}, value {tuple(root.value.shape)}, "
                          f"embedding {tuple(root.embedding.shape)}")
    if num_simulations < 1:
        raise SearchError(f"num_simulations must be >= 1, got {num_simulations}")
    dtype = root.value.dtype
    if tree is None:
        tree = Tree(B, A, num_simulations + 1, tuple(root.embedding.shape[1:]), dtype=dtype,
                    embedding_dtype=root.embedding.dtype, device=root.embedding.device)
    if num_simulations + 1 > tree.capacity:
        raise SearchError(f"{num_simulations} simulations need {num_simulations + 1} nodes, but the tree holds "
                          f"{tree.capacity}; size it for the simulations (Tree(..., capacity=simulations + 1))")
    if not tree.fits(B, A, root.embedding, dtype):
        raise SearchError(f"the tree was made for batch {tree.batch}, {tree.num_actions} actions, embeddings "
                          f"{tree.embedding_shape} {tree.embedding.dtype}; the roots have batch {B}, {A} actions, "
                          f"embeddings {tuple(root.embedding.shape[1:])} {root.embedding.dtype}")
    return tree


def check_depth(max_depth: int | None) -> None:
    if max_depth is not None and (isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1):
        raise SearchError(f"max_depth must be None or an int >= 1, got {max_depth!r}")


#: how the tree is walked: "tensor" (torch ops on all B trees at once; any device), "compiled" (numba loops
#: over the same arrays, CPU; search/kernels.py), "auto" (compiled on CPU where numba is present)
WALKS = ("auto", "tensor", "compiled")


def check_walk(walk: str) -> None:
    if walk not in WALKS:
        raise SearchError(f"walk={walk!r} is not one of {', '.join(WALKS)}")


def compiled(walk: str, tree: Tree) -> bool:
    """Whether ``walk`` (one of ``WALKS``) runs the numba loops on ``tree``."""
    if walk == "compiled" and tree.device.type != "cpu":
        raise SearchError("walk='compiled' runs on CPU trees only; use walk='tensor' on CUDA")
    return walk == "compiled" or (walk == "auto" and kernels.HAVE_NUMBA and tree.device.type == "cpu")


def simulate_compiled(tree: Tree, recurrent_fn: RecurrentFn, num_simulations: int, max_depth: int | None,
                      descend) -> None:
    """The simulations of a compiled walk: ``descend(s, depth_bound, leaf_parent, leaf_action)`` (a numba kernel
    over the tree's arrays, numpy views, no copies) writes each tree's edge to expand, one batched
    ``recurrent_fn`` call expands them all, and ``kernels.backup`` backs the values up."""
    depth_bound = num_simulations + 1 if max_depth is None else max_depth  # no walk is longer than S + 1
    backup_arrays = [t.numpy() for t in (tree.visits, tree.value_sum, tree.reward, tree.discount, tree.parent,
                                         tree.lo, tree.hi)]
    leaf_parent, leaf_action = torch.zeros_like(tree.rows), torch.zeros_like(tree.rows)
    lp, la = leaf_parent.numpy(), leaf_action.numpy()
    for s in range(num_simulations):
        descend(s, depth_bound, lp, la)
        value, leaf = tree.expand(s + 1, recurrent_fn, leaf_parent, leaf_action, max_depth is not None)
        kernels.backup(*backup_arrays, leaf.numpy(), value.numpy(), tree.sink)


@torch.no_grad()  # a search is arithmetic on the network's outputs, never differentiated
def puct_search(root: RootOutput, recurrent_fn: RecurrentFn, num_simulations: int, *,
                config: PUCTConfig = PUCTConfig(), root_legal: torch.Tensor | None = None,
                root_noise: torch.Tensor | None = None, tree: Tree | None = None, walk: str = "auto",
                max_depth: int | None = None) -> SearchResult:
    """Search B roots at once, one ``recurrent_fn`` call per simulation. ``root_noise`` (B, A), e.g. from
    ``dirichlet_noise``, is mixed into the root priors with ``config.exploration_fraction``. ``walk``: how
    selection and backup run (``WALKS``); every walk gives the same result. ``max_depth``: no node deeper
    than this many steps below the root (a simulation that reaches it evaluates that node again, as mctx's
    cutoff does); None: unbounded."""
    check_walk(walk)
    check_depth(max_depth)
    tree = check_sizes(root, num_simulations, tree)
    tree.start(root, root_legal, root_noise, config.exploration_fraction)
    c_init, c_base = config.pb_c_init, config.pb_c_base
    rows = tree.rows
    if compiled(walk, tree):
        arrays = [t.numpy() for t in (tree.visits, tree.value_sum, tree.reward, tree.discount, tree.prior,
                                      tree.legal, tree.children, tree.lo, tree.hi)]
        simulate_compiled(tree, recurrent_fn, num_simulations, max_depth, lambda s, depth_bound, lp, la:
                          kernels.puct_select(*arrays, c_init, c_base, SPREAD_TOL, depth_bound, lp, la))
        return _result(tree)

    def select(node: torch.Tensor, depth: int) -> torch.Tensor:
        n_parent = tree.visits[rows, node][:, None]  # (B, 1)
        n_child, q, visited = tree.child_stats(node)  # (B, A)
        value_score = torch.where(visited, tree.normalize(q), torch.zeros_like(q))
        pb_c = torch.log((n_parent + c_base + 1) / c_base) + c_init
        prior_score = pb_c * n_parent.sqrt() / (1 + n_child) * tree.prior[rows, node]
        score = (prior_score + value_score).masked_fill(~tree.legal[rows, node], -math.inf)
        return score.argmax(-1)

    for s in range(num_simulations):
        tree.simulate(s + 1, recurrent_fn, select, max_depth)
    return _result(tree)


def _result(tree: Tree) -> SearchResult:
    visits, q, root_value = tree.root_result()
    return SearchResult(visit_counts=visits, q_values=q, root_value=root_value, action=visits.argmax(-1),
                        policy=visits / visits.sum(-1, keepdim=True))


def visit_policy(visit_counts: torch.Tensor, temperature: float) -> torch.Tensor:
    """π(a) ∝ N(a)^(1/T) (AlphaZero's move selection); T = 0 puts all mass on the most visited action."""
    if temperature <= 0:
        return torch.nn.functional.one_hot(visit_counts.argmax(-1), visit_counts.shape[-1]).to(visit_counts.dtype)
    logits = torch.log(visit_counts.clamp(min=1e-30)) / temperature
    return logits.masked_fill(visit_counts <= 0, -math.inf).softmax(-1)
