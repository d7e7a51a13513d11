"""Gumbel MuZero's search (Danihelka et al. 2022, "Policy improvement by planning with Gumbel"): with few
simulations it still improves the policy, where pUCT with 2-16 simulations may not.

* Root: draw g ~ Gumbel(0, 1) per action; consider the m = min(``max_considered_actions``, legal) actions
  with the largest g + logits, and spend the simulations by sequential halving (Karnin et al. 2013):
  ⌈log2 m⌉ phases, each visiting every remaining action equally, then keeping the better half by
  g + logits + σ(q̂). The action is the survivor with the largest g + logits + σ(q̂) (paper §3-4).
* σ(q̂) = (c_visit + max_b N(b)) · c_scale · q̂, q̂ the completed Q scaled to [0, 1] within the node
  (paper eq. 8); completed Q fills unvisited actions with v_mix (appendix D, eq. 33).
* Inside the tree: the deterministic rule argmax_a π'(a) − N(a) / (1 + Σ_b N(b)),
  π' = softmax(logits + σ(completed Q)) (paper §5, eq. 14).
* The policy target is π' at the root (paper §4), which `SearchResult.policy` holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import kernels
from .puct import check_depth, check_sizes, check_walk, compiled, simulate_compiled
from .tree import Tree
from .types import RecurrentFn, RootOutput, SearchResult


@dataclass(frozen=True)
class GumbelConfig:
    max_considered_actions: int = 16
    """m: how many root actions sequential halving starts with"""
    c_visit: float = 50.0
    """σ's offset on the visit count (paper appendix: 50)"""
    c_scale: float = 1.0
    """σ's scale (paper: 1.0 for Go and chess, 0.1 for Atari)"""


def considered_visit_sequence(m: int, num_simulations: int) -> list[int]:
    """The visit count the root action chosen at each simulation must have, under sequential halving of
    m actions: phase by phase, every remaining action is visited equally, then half are dropped."""
    if m <= 1:
        return list(range(num_simulations))
    phases = math.ceil(math.log2(m))
    sequence: list[int] = []
    considered, visits = m, 0
    while len(sequence) < num_simulations:
        rounds = max(1, num_simulations // (phases * considered))
        for _ in range(rounds):
            sequence += [visits] * considered
            visits += 1
        considered = max(2, considered // 2)
    return sequence[:num_simulations]


def gumbel_noise(rng: np.random.Generator, shape: tuple[int, int], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, A) standard Gumbel draws."""
    return torch.as_tensor(rng.gumbel(size=shape), dtype=dtype, device=device)


def completed_q(tree: Tree, node: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The node's children's Q with unvisited ones filled by v_mix (B, A), and their visits (B, A)."""
    rows = tree.rows
    n, q, visited = tree.child_stats(node)
    prior = tree.prior[rows, node]
    total = n.sum(-1)
    visited_prior = (prior * visited).sum(-1)
    weighted_q = (prior * visited * q).sum(-1) / visited_prior.clamp(min=torch.finfo(q.dtype).tiny)
    v_mix = (tree.raw_value[rows, node] + total * weighted_q) / (1 + total)  # eq. 33; = v̂ when nothing visited
    return torch.where(visited, q, v_mix[:, None]), n


def sigma(tree: Tree, node: torch.Tensor, config: GumbelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """σ(q̂) (B, A) over the node's legal children, and their visits (B, A)."""
    q, n = completed_q(tree, node)
    legal = tree.legal[tree.rows, node]
    big = torch.finfo(q.dtype).max
    lo = torch.where(legal, q, big).amin(-1, keepdim=True)
    hi = torch.where(legal, q, -big).amax(-1, keepdim=True)
    q_hat = (q - lo) / (hi - lo).clamp(min=1e-8)
    return (config.c_visit + n.amax(-1, keepdim=True)) * config.c_scale * q_hat, n


@torch.no_grad()  # a search is arithmetic on the network's outputs, never differentiated
def gumbel_search(root: RootOutput, recurrent_fn: RecurrentFn, num_simulations: int, *,
                  config: GumbelConfig = GumbelConfig(), root_legal: torch.Tensor | None = None,
                  gumbel: torch.Tensor | None = None, tree: Tree | None = None,
                  max_depth: int | None = None, walk: str = "auto") -> SearchResult:
    """Search B roots at once with Gumbel MuZero's rules; ``gumbel`` (B, A) are the root's Gumbel draws
    (``gumbel_noise``), or none for the deterministic (evaluation) search; ``max_depth`` and ``walk`` as in
    ``puct_search`` (the compiled walk's descent: ``kernels.gumbel_select``)."""
    check_walk(walk)
    check_depth(max_depth)
    tree = check_sizes(root, num_simulations, tree)
    tree.start(root, root_legal, None, 0.0)
    rows = tree.rows
    legal0 = tree.legal[:, 0]
    neg_inf = -math.inf
    g = torch.zeros_like(tree.logits[:, 0]) if gumbel is None else gumbel.to(tree.dtype)
    logits0 = tree.logits[:, 0].masked_fill(~legal0, neg_inf)
    logits0 = logits0 - logits0.amax(-1, keepdim=True)
    # the visit count the chosen root action must have at each simulation, per root (m differs by legality)
    m = legal0.sum(-1).clamp(max=config.max_considered_actions).tolist()
    table = {k: considered_visit_sequence(k, num_simulations) for k in set(m)}
    schedule = torch.tensor([table[k] for k in m], device=tree.device, dtype=tree.dtype)  # (B, S)
    step = [0]

    def root_scores(n: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
        return torch.clamp(g + logits0 + sig, min=-1e9)  # mctx's floor keeps -inf for the illegal below

    def select(node: torch.Tensor, depth: int) -> torch.Tensor:
        sig, n = sigma(tree, node, config)
        if depth == 0:  # every tree is at its root: sequential halving
            want = schedule[:, step[0]][:, None]
            score = root_scores(n, sig).masked_fill((n != want) | ~legal0, neg_inf)
            return score.argmax(-1)
        logits = tree.logits[rows, node].masked_fill(~tree.legal[rows, node], neg_inf)
        improved = (logits + sig).softmax(-1)
        score = (improved - n / (1 + n.sum(-1, keepdim=True))).masked_fill(~tree.legal[rows, node], neg_inf)
        return score.argmax(-1)

    if compiled(walk, tree):
        arrays = [t.numpy() for t in (tree.visits, tree.value_sum, tree.raw_value, tree.reward, tree.discount,
                                      tree.prior, tree.logits, tree.legal, tree.children)]
        scores0, want = (g + logits0).numpy(), schedule.T.contiguous().numpy()  # want[s]: simulation s's visit count
        simulate_compiled(tree, recurrent_fn, num_simulations, max_depth, lambda s, depth_bound, lp, la:
                          kernels.gumbel_select(*arrays, scores0, want[s], config.c_visit, config.c_scale,
                                                depth_bound, lp, la))
    else:
        for s in range(num_simulations):
            step[0] = s
            tree.simulate(s + 1, recurrent_fn, select, max_depth)
    visits, q, root_value = tree.root_result()
    root = torch.zeros_like(rows)
    sig, n = sigma(tree, root, config)
    most = n.amax(-1, keepdim=True)
    action = root_scores(n, sig).masked_fill((n != most) | ~legal0, neg_inf).argmax(-1)
    policy = (tree.logits[:, 0].masked_fill(~legal0, neg_inf) + sig).softmax(-1)
    return SearchResult(visit_counts=visits, q_values=q, root_value=root_value, action=action, policy=policy)

