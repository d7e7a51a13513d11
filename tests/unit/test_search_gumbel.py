"""Gumbel MuZero's search (Danihelka et al. 2022) on bandits, where the exact Q is known, by both walks (torch ops
and the numba loops of search/kernels.py); and the two walks against each other on a random deep model."""

import numpy as np
import pytest
import torch

from rlworks.search import (
    GumbelConfig,
    RootOutput,
    SearchError,
    StepOutput,
    Tree,
    considered_visit_sequence,
    gumbel_noise,
    gumbel_search,
)


@pytest.fixture(params=["tensor", "compiled"])
def walk(request):
    return request.param


def bandit(means: torch.Tensor):
    """B one-step bandits: action a pays means[b, a] and ends the episode."""
    B, A = means.shape

    def step(embedding, action):
        rows = torch.arange(B)
        return StepOutput(reward=means[rows, action], discount=torch.zeros(B, dtype=means.dtype),
                          prior_logits=torch.zeros(B, A, dtype=means.dtype), value=torch.zeros(B, dtype=means.dtype),
                          embedding=embedding)
    return step


def test_sequential_halving_schedule():
    assert considered_visit_sequence(4, 16) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert considered_visit_sequence(1, 3) == [0, 1, 2]
    # with m = A and num_simulations = A every action is visited exactly once
    assert considered_visit_sequence(8, 8) == [0] * 8


@pytest.mark.parametrize("seed", range(5))
def test_all_actions_considered_equals_the_exhaustive_choice(seed, walk):
    rng = np.random.default_rng(seed)
    B, A = 16, 6
    means = torch.as_tensor(rng.normal(size=(B, A)))
    logits = torch.as_tensor(rng.normal(size=(B, A)))
    g = gumbel_noise(rng, (B, A), dtype=torch.float64)
    cfg = GumbelConfig(max_considered_actions=A, c_visit=50.0, c_scale=0.1)
    root = RootOutput(prior_logits=logits, value=torch.zeros(B, dtype=torch.float64), embedding=torch.zeros(B, 1))
    out = gumbel_search(root, bandit(means), A, config=cfg, gumbel=g, walk=walk)
    assert (out.visit_counts == 1).all()
    # the exhaustive choice: every arm's exact value known, argmax g + logits + σ(q̂)
    q_hat = (means - means.amin(1, keepdim=True)) / (means.amax(1, keepdim=True) - means.amin(1, keepdim=True))
    sigma = (cfg.c_visit + 1) * cfg.c_scale * q_hat
    assert torch.equal(out.action, (g + logits + sigma).argmax(1))
    assert torch.allclose(out.policy, (logits + sigma).softmax(1))


def test_deterministic_search_finds_the_best_arm_with_enough_simulations(walk):
    rng = np.random.default_rng(0)
    B, A = 32, 8
    means = torch.as_tensor(rng.normal(size=(B, A)))
    root = RootOutput(prior_logits=torch.zeros(B, A, dtype=torch.float64), value=torch.zeros(B, dtype=torch.float64),
                      embedding=torch.zeros(B, 1))
    out = gumbel_search(root, bandit(means), 32, config=GumbelConfig(max_considered_actions=A), walk=walk)
    assert torch.equal(out.action, means.argmax(1))
    # sequential halving spent most visits on the winner
    assert (out.visit_counts.gather(1, out.action[:, None]).squeeze(1) == out.visit_counts.amax(1)).all()


def test_illegal_actions_are_never_chosen_or_visited(walk):
    rng = np.random.default_rng(1)
    B, A = 8, 5
    means = torch.as_tensor(rng.normal(size=(B, A))) + 10 * torch.eye(A, dtype=torch.float64)[torch.arange(B) % A]
    legal = torch.ones(B, A, dtype=torch.bool)
    legal[torch.arange(B), torch.arange(B) % A] = False  # the best arm of each bandit is illegal
    root = RootOutput(prior_logits=torch.zeros(B, A, dtype=torch.float64), value=torch.zeros(B, dtype=torch.float64),
                      embedding=torch.zeros(B, 1))
    out = gumbel_search(root, bandit(means), 12, root_legal=legal, gumbel=gumbel_noise(rng, (B, A)), walk=walk)
    assert legal[torch.arange(B), out.action].all()
    assert (out.visit_counts[~legal] == 0).all()
    assert (out.policy[~legal] == 0).all()


def test_a_depth_cap_keeps_every_node_at_the_root_and_changes_nothing_in_a_bandit(walk):
    """In a bandit every child ends the episode, so nodes below them add nothing: capped at depth 1, the search
    makes no such node and chooses as before."""
    rng = np.random.default_rng(3)
    B, A, S = 8, 5, 20
    means = torch.as_tensor(rng.normal(size=(B, A)))
    root = RootOutput(prior_logits=torch.as_tensor(rng.normal(size=(B, A))), value=torch.zeros(B, dtype=torch.float64),
                      embedding=torch.zeros(B, 1, dtype=torch.float64))
    g = gumbel_noise(rng, (B, A), dtype=torch.float64)
    free, capped_tree = Tree(B, A, S + 1, (1,), dtype=torch.float64), Tree(B, A, S + 1, (1,), dtype=torch.float64)
    out = gumbel_search(root, bandit(means), S, gumbel=g, tree=free, walk=walk)
    capped = gumbel_search(root, bandit(means), S, gumbel=g, tree=capped_tree, max_depth=1, walk=walk)
    assert torch.equal(capped.action, out.action) and torch.equal(capped.visit_counts, out.visit_counts)
    made = capped_tree.visits[:, 1:S + 1] > 0
    assert (capped_tree.parent[:, 1:S + 1][made] == 0).all()  # every node made hangs off the root
    assert (free.parent[:, 1:S + 1][free.visits[:, 1:S + 1] > 0] > 0).any()  # unbounded, the search went deeper


class RandomModel:
    """A fixed random MuZero-like model: dynamics tanh(W [h, one_hot(a)]), linear heads, and (``inner_legal``)
    legal masks below the root that some rows leave empty (then every action counts as legal)."""

    def __init__(self, seed: int, num_actions: int, dtype: torch.dtype, width: int = 8, inner_legal: bool = True):
        g = torch.Generator().manual_seed(seed)
        self.A, self.dtype, self.inner_legal = num_actions, dtype, inner_legal
        self.w_dyn = (torch.randn(width + num_actions, width, generator=g) * 0.8).to(dtype)
        self.w_reward = (torch.randn(width, generator=g) * 0.5).to(dtype)
        self.w_value = torch.randn(width, generator=g).to(dtype)
        self.w_logits = torch.randn(width, num_actions, generator=g).to(dtype)

    def root(self, embedding: torch.Tensor) -> RootOutput:
        return RootOutput(prior_logits=embedding @ self.w_logits, value=embedding @ self.w_value, embedding=embedding)

    def __call__(self, embedding: torch.Tensor, action: torch.Tensor) -> StepOutput:
        h = torch.tanh(torch.cat([embedding, torch.nn.functional.one_hot(action, self.A).to(self.dtype)], -1)
                       @ self.w_dyn)
        return StepOutput(reward=h @ self.w_reward, discount=torch.full((h.shape[0],), 0.97, dtype=self.dtype),
                          prior_logits=h @ self.w_logits, value=h @ self.w_value, embedding=h,
                          legal=h[:, :self.A] > -0.3 if self.inner_legal else None)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", range(4))
def test_the_compiled_walk_equals_the_tensor_walk(seed, dtype):
    """The numba descent (kernels.gumbel_select) against the torch one, through whole searches on a deep random
    model: root legal masks, legality below the root, Gumbel draws or none, unbounded and capped at depth 2. With
    ``c_scale`` 10 the σ spread is hundreds: π' underflows to 0 for several children in a float32 tree (the numba
    loop keeps them tiny in float64), and the walks must still agree."""
    B, A = 16, 6
    model = RandomModel(seed, A, dtype)
    gen = torch.Generator().manual_seed(100 + seed)
    root = model.root(torch.randn(B, 8, generator=gen).to(dtype))
    legal = torch.rand(B, A, generator=gen) > 0.3
    for config, simulations in [(GumbelConfig(max_considered_actions=4), n) for n in (1, 5, 16, 50)] + [
            (GumbelConfig(max_considered_actions=4, c_scale=10.0), 50)]:
        for g in (None, gumbel_noise(np.random.default_rng(seed), (B, A), dtype=dtype)):
            for max_depth in (None, 2):
                runs = [gumbel_search(root, model, simulations, config=config, root_legal=legal, gumbel=g,
                                      max_depth=max_depth, walk=w) for w in ("tensor", "compiled")]
                for field in ("visit_counts", "q_values", "root_value", "action", "policy"):
                    assert torch.equal(getattr(runs[0], field), getattr(runs[1], field)), (field, simulations)
                assert (runs[0].visit_counts.sum(-1) == simulations).all()


def test_a_bad_walk_is_refused():
    root = RootOutput(prior_logits=torch.zeros(2, 3), value=torch.zeros(2), embedding=torch.zeros(2, 1))
    with pytest.raises(SearchError, match="walk='numba' is not one of"):
        gumbel_search(root, bandit(torch.zeros(2, 3)), 4, walk="numba")
