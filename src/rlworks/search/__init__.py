"""Batched tree search held in torch tensors; it knows no algorithm (MuZero, AlphaZero and tests plug in
through ``RootOutput`` and a ``recurrent_fn``)."""

from .gumbel import GumbelConfig, considered_visit_sequence, gumbel_noise, gumbel_search
from .puct import PUCTConfig, dirichlet_noise, puct_search, visit_policy
from .tree import Tree, masked_prior
from .types import RecurrentFn, RootOutput, SearchError, SearchResult, StepOutput

__all__ = ["GumbelConfig", "PUCTConfig", "RecurrentFn", "RootOutput", "SearchError", "SearchResult", "StepOutput",
           "Tree", "considered_visit_sequence", "dirichlet_noise", "gumbel_noise", "gumbel_search", "masked_prior",
           "puct_search", "visit_policy"]
