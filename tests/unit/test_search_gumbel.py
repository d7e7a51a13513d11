"""Gumbel MuZero's root search (Danihelka et al. 2022) on bandits, where the exact Q is known."""

import numpy as np
import pytest
import torch

from rlworks.search import GumbelConfig, RootOutput, StepOutput, considered_visit_sequence, gumbel_noise, gumbel_search


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
def test_all_actions_considered_equals_the_exhaustive_choice(seed):
    rng = np.random.default_rng(seed)
    B, A = 16, 6
    means = torch.as_tensor(rng.normal(size=(B, A)))
    logits = torch.as_tensor(rng.normal(size=(B, A)))
    g = gumbel_noise(rng, (B, A), dtype=torch.float64)
    cfg = GumbelConfig(max_considered_actions=A, c_visit=50.0, c_scale=0.1)
    root = RootOutput(prior_logits=logits, value=torch.zeros(B, dtype=torch.float64), embedding=torch.zeros(B, 1))
    out = gumbel_search(root, bandit(means), A, config=cfg, gumbel=g)
    assert (out.visit_counts == 1).all()
    # the exhaustive choice: every arm's exact value known, argmax g + logits + σ(q̂)
    q_hat = (means - means.amin(1, keepdim=True)) / (means.amax(1, keepdim=True) - means.amin(1, keepdim=True))
    sigma = (cfg.c_visit + 1) * cfg.c_scale * q_hat
    assert torch.equal(out.action, (g + logits + sigma).argmax(1))
    assert torch.allclose(out.policy, (logits + sigma).softmax(1))


def test_deterministic_search_finds_the_best_arm_with_enough_simulations():
    rng = np.random.default_rng(0)
    B, A = 32, 8
    means = torch.as_tensor(rng.normal(size=(B, A)))
    root = RootOutput(prior_logits=torch.zeros(B, A, dtype=torch.float64), value=torch.zeros(B, dtype=torch.float64),
                      embedding=torch.zeros(B, 1))
    out = gumbel_search(root, bandit(means), 32, config=GumbelConfig(max_considered_actions=A))
    assert torch.equal(out.action, means.argmax(1))
    # sequential halving spent most visits on the winner
    assert (out.visit_counts.gather(1, out.action[:, None]).squeeze(1) == out.visit_counts.amax(1)).all()


def test_illegal_actions_are_never_chosen_or_visited():
    rng = np.random.default_rng(1)
    B, A = 8, 5
    means = torch.as_tensor(rng.normal(size=(B, A))) + 10 * torch.eye(A, dtype=torch.float64)[torch.arange(B) % A]
    legal = torch.ones(B, A, dtype=torch.bool)
    legal[torch.arange(B), torch.arange(B) % A] = False  # the best arm of each bandit is illegal
    root = RootOutput(prior_logits=torch.zeros(B, A, dtype=torch.float64), value=torch.zeros(B, dtype=torch.float64),
                      embedding=torch.zeros(B, 1))
    out = gumbel_search(root, bandit(means), 12, root_legal=legal, gumbel=gumbel_noise(rng, (B, A)))
    assert legal[torch.arange(B), out.action].all()
    assert (out.visit_counts[~legal] == 0).all()
    assert (out.policy[~legal] == 0).all()


def test_a_depth_cap_keeps_every_node_at_the_root_and_changes_nothing_in_a_bandit():
    """In a bandit every child ends the episode, so nodes below them add nothing: capped at depth 1, the search
    makes no such node and chooses as before."""
    from rlworks.search import Tree

    rng = np.random.default_rng(3)
    B, A, S = 8, 5, 20
    means = torch.as_tensor(rng.normal(size=(B, A)))
    root = RootOutput(prior_logits=torch.as_tensor(rng.normal(size=(B, A))), value=torch.zeros(B, dtype=torch.float64),
                      embedding=torch.zeros(B, 1, dtype=torch.float64))
    g = gumbel_noise(rng, (B, A), dtype=torch.float64)
    free, capped_tree = Tree(B, A, S + 1, (1,), dtype=torch.float64), Tree(B, A, S + 1, (1,), dtype=torch.float64)
    out = gumbel_search(root, bandit(means), S, gumbel=g, tree=free)
    capped = gumbel_search(root, bandit(means), S, gumbel=g, tree=capped_tree, max_depth=1)
    assert torch.equal(capped.action, out.action) and torch.equal(capped.visit_counts, out.visit_counts)
    made = capped_tree.visits[:, 1:S + 1] > 0
    assert (capped_tree.parent[:, 1:S + 1][made] == 0).all()  # every node made hangs off the root
    assert (free.parent[:, 1:S + 1][free.visits[:, 1:S + 1] > 0] > 0).any()  # unbounded, the search went deeper
