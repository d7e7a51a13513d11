"""What a search takes and gives: the model's outputs at the root and after one step, and the result.

The search knows no algorithm. MuZero's model (representation, dynamics, prediction), AlphaZero's
true simulator and a test's transition table all speak through two calls:

* the root: ``RootOutput(prior_logits, value, embedding)`` for B roots;
* ``recurrent_fn(embedding, action) -> StepOutput`` for B (embedding, action) pairs at once — one call
  per simulation for all B roots (the batching of mctx, Danihelka et al. 2022).

Conventions (those of mctx):

* ``value`` is from the point of view of the player to move at that node;
* ``reward`` is the reward of the transition into the new node, for the player who acted;
* ``discount`` multiplies the new node's value seen from its parent: γ in a one-player MDP, −1 (or −γ)
  in a two-player zero-sum game whose turns alternate, and 0 when the transition ends the episode, so
  nothing below a terminal node reaches the nodes above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


class SearchError(ValueError):
    """A search asked for something its tree cannot do (more simulations than nodes, wrong shapes)."""


@dataclass
class RootOutput:
    prior_logits: torch.Tensor
    """(B, A) the policy head's logits at each root"""
    value: torch.Tensor
    """(B,) the value head at each root"""
    embedding: torch.Tensor
    """(B, ...) the state the recurrent function steps from: a latent (MuZero) or a simulator state (AlphaZero)"""


@dataclass
class StepOutput:
    reward: torch.Tensor
    """(B,) reward of the transition"""
    discount: torch.Tensor
    """(B,) the new node's value is multiplied by this seen from its parent (γ, −1 for turn-taking, 0 at the end)"""
    prior_logits: torch.Tensor
    """(B, A) policy logits at the new node"""
    value: torch.Tensor
    """(B,) value at the new node, for the player to move there"""
    embedding: torch.Tensor
    """(B, ...) the new node's state"""
    legal: torch.Tensor | None = None
    """(B, A) bool, the legal actions at the new node; None: every action"""


RecurrentFn = Callable[[torch.Tensor, torch.Tensor], StepOutput]
"""``recurrent_fn(embedding (B, ...), action (B,) long) -> StepOutput``"""


@dataclass
class SearchResult:
    visit_counts: torch.Tensor
    """(B, A) visits of each root child"""
    q_values: torch.Tensor
    """(B, A) r + discount · value of each root child, 0 where unvisited"""
    root_value: torch.Tensor
    """(B,) the root's mean backed-up value"""
    action: torch.Tensor
    """(B,) long, the search's choice (pUCT: the most visited; Gumbel: the sequential-halving winner)"""
    policy: torch.Tensor
    """(B, A) the policy target: visit counts normalised (pUCT), softmax(logits + σ(completed Q)) (Gumbel)"""
