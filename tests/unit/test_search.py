"""rlworks.search: the slow one-root reference (search_reference.py) on problems whose answers are known, and the
batched ``puct_search`` checked against it root by root (visit counts exactly, values to 1e-9 in float64)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rlworks.search import PUCTConfig, RootOutput, SearchError, StepOutput, Tree, dirichlet_noise, puct_search


def _load_reference():
    """search_reference.py (test modules are not importable by name under --import-mode=importlib)."""
    spec = importlib.util.spec_from_file_location("_search_reference", Path(__file__).with_name("search_reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference_search = _load_reference().reference_search
F64 = torch.float64

# ---------------------------------------------------------------- problems, as batched recurrent functions

# A corridor 0 → 1 → 2 → 3 → goal (action 2, +1 at the end); action 0 cashes in +0.5 at once but falls into a pit
# (state 4) that costs −2 on the next step; action 1 steps back at a cost of −0.5. State 5 is terminal.
# Greedy on the immediate reward picks action 0 in states 0–2; the optimum is action 2 (the highest index).
GAMMA, TERMINAL, PIT = 0.9, 5, 4
NEXT = torch.tensor([[PIT, 0, 1], [PIT, 0, 2], [PIT, 1, 3], [PIT, 2, TERMINAL], [TERMINAL] * 3, [TERMINAL] * 3])
REWARD = torch.tensor([[0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, -0.5, 1.0], [-2.0] * 3, [0.0] * 3],
                      dtype=F64)


def mdp_step(embedding: torch.Tensor, action: torch.Tensor) -> StepOutput:
    """The corridor; the "network" knows nothing: uniform logits and value 0 everywhere."""
    state = embedding[:, 0].long()
    nxt = NEXT[state, action]
    ends = (nxt == TERMINAL) | (state == TERMINAL)
    batch = state.shape[0]
    return StepOutput(reward=REWARD[state, action], discount=torch.where(ends, 0.0, GAMMA).to(F64),
                      prior_logits=torch.zeros(batch, 3, dtype=F64), value=torch.zeros(batch, dtype=F64),
                      embedding=nxt.to(F64)[:, None])


def mdp_q_star() -> np.ndarray:
    """Optimal action values by value iteration."""
    nxt, reward = NEXT.numpy(), REWARD.numpy()
    cont = np.where(nxt == TERMINAL, 0.0, GAMMA)
    v = np.zeros(6)
    for _ in range(200):
        q = reward + cont * v[nxt]
        q[TERMINAL] = 0.0
        v = q.max(axis=1)
    return q


def nim_legal(pile: torch.Tensor) -> torch.Tensor:
    return torch.stack([pile >= 1, pile >= 2], dim=-1)


def nim_step(embedding: torch.Tensor, action: torch.Tensor) -> StepOutput:
    """One pile; action a takes a + 1 stones; taking the last one wins (+1 for the mover, then the game ends);
    otherwise turns alternate (discount −1). A finished game stays finished (reward 0, discount 0)."""
    pile = embedding[:, 0].long()
    left = (pile - action - 1).clamp(min=0)
    over = pile == 0
    won = ~over & (left == 0)
    batch = pile.shape[0]
    return StepOutput(reward=won.to(F64), discount=torch.where(won | over, 0.0, -1.0).to(F64),
                      prior_logits=torch.zeros(batch, 2, dtype=F64), value=torch.zeros(batch, dtype=F64),
                      embedding=left.to(F64)[:, None], legal=nim_legal(left))


class RandomNet:
    """A fixed random MuZero-like model in float64: dynamics tanh(W [h, one_hot(a)]), linear heads."""

    def __init__(self, seed: int, num_actions: int = 4, width: int = 8, discount: float = 0.97,
                 inner_legal: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.A, self.discount, self.inner_legal = num_actions, discount, inner_legal
        self.w_dyn = torch.randn(width + num_actions, width, generator=g, dtype=F64) * 0.8
        self.w_reward = torch.randn(width, generator=g, dtype=F64) * 0.5
        self.w_value = torch.randn(width, generator=g, dtype=F64)
        self.w_logits = torch.randn(width, num_actions, generator=g, dtype=F64)

    def root(self, embedding: torch.Tensor) -> RootOutput:
        return RootOutput(prior_logits=embedding @ self.w_logits, value=embedding @ self.w_value, embedding=embedding)

    def __call__(self, embedding: torch.Tensor, action: torch.Tensor) -> StepOutput:
        one_hot = torch.nn.functional.one_hot(action, self.A).to(F64)
        h = torch.tanh(torch.cat([embedding, one_hot], dim=-1) @ self.w_dyn)
        legal = h[:, : self.A] > -0.3 if self.inner_legal else None  # rows with none legal: all count as legal
        return StepOutput(reward=h @ self.w_reward, discount=torch.full((h.shape[0],), self.discount, dtype=F64),
                          prior_logits=h @ self.w_logits, value=h @ self.w_value, embedding=h, legal=legal)


def one_step(recurrent_fn):
    """The reference's ``step_one`` from a batched recurrent function, called on a batch of one."""

    def step_one(embedding, action):
        out = recurrent_fn(embedding[None], torch.tensor([action]))
        legal = None if out.legal is None else out.legal[0].tolist()
        return (float(out.reward[0]), float(out.discount[0]), out.prior_logits[0].tolist(), float(out.value[0]),
                out.embedding[0], legal)

    return step_one


def reference_batch(root: RootOutput, recurrent_fn, num_simulations: int, config: PUCTConfig,
                    root_legal=None, root_noise=None, max_depth=None):
    """The reference run on each root in turn, stacked like a SearchResult's fields."""
    counts, qs, values = [], [], []
    for b in range(root.embedding.shape[0]):
        c, q, v = reference_search(
            root.prior_logits[b].tolist(), float(root.value[b]), root.embedding[b], one_step(recurrent_fn),
            num_simulations, pb_c_init=config.pb_c_init, pb_c_base=config.pb_c_base,
            exploration_fraction=config.exploration_fraction,
            root_legal=None if root_legal is None else root_legal[b].tolist(),
            root_noise=None if root_noise is None else root_noise[b].tolist(), max_depth=max_depth)
        counts.append(c)
        qs.append(q)
        values.append(v)
    return counts, np.array(qs), np.array(values)


def assert_same_as_reference(root, recurrent_fn, num_simulations, config=None, root_legal=None, root_noise=None,
                             tree=None, walk="tensor", max_depth=None):
    config = PUCTConfig() if config is None else config
    result = puct_search(root, recurrent_fn, num_simulations, config=config, root_legal=root_legal,
                         root_noise=root_noise, tree=tree, walk=walk, max_depth=max_depth)
    counts, qs, values = reference_batch(root, recurrent_fn, num_simulations, config, root_legal, root_noise,
                                         max_depth)
    assert result.visit_counts.to(torch.long).tolist() == counts, f"{num_simulations} simulations"
    np.testing.assert_allclose(result.q_values.double().numpy(), qs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.root_value.double().numpy(), values, rtol=0, atol=1e-9)
    visits = result.visit_counts.double()
    assert (visits.sum(-1) == num_simulations).all()
    assert (visits.gather(1, result.action.long()[:, None])[:, 0] == visits.max(-1).values).all()
    torch.testing.assert_close(result.policy.double(), visits / visits.sum(-1, keepdim=True))
    return result


def table_root(states: list[int], num_actions: int) -> RootOutput:
    batch = len(states)
    return RootOutput(prior_logits=torch.zeros(batch, num_actions, dtype=F64), value=torch.zeros(batch, dtype=F64),
                      embedding=torch.tensor(states, dtype=F64)[:, None])


# ---------------------------------------------------------------- the reference alone


def test_reference_finds_the_delayed_reward_in_the_corridor():
    q_star = mdp_q_star()
    assert q_star[0, 2] == pytest.approx(0.9**3)
    step_one = one_step(mdp_step)
    for start in (0, 1, 2, 3):
        best = int(q_star[start].argmax())
        assert best == 2
        if start < 3:  # the immediate reward misleads
            assert int(REWARD[start].argmax()) != best
        shares = []
        for n in (8, 16, 32, 64):
            counts, q, value = reference_search([0.0] * 3, 0.0, torch.tensor([float(start)]), step_one, n)
            assert sum(counts) == n
            shares.append(counts[best] / n)
        assert max(range(3), key=counts.__getitem__) == best, (start, counts)
        assert all(a <= b for a, b in zip(shares, shares[1:])), (start, shares)
        assert shares[-1] >= 0.5, (start, shares)
        assert q[best] == max(q) and q[best] <= q_star[start, best] + 1e-12


def test_reference_backs_up_by_hand():
    """Two simulations on a two-action root, checked against the formulas by hand."""

    def step_one(embedding, action):  # action 0: reward 1, leaf value 2; action 1: reward 0, leaf value −1
        return (1.0, 0.5, [0.0, 0.0], 2.0, None, None) if action == 0 else (0.0, 0.5, [0.0, 0.0], -1.0, None, None)

    counts, q, value = reference_search([0.0, 0.0], 0.3, None, step_one, 2)
    # 1st: tie → action 0, q0 = 1 + 0.5·2 = 2. 2nd: action 0 scores ≈ 1.25·sqrt(2)/2·0.5 + 2 (min = max: identity),
    # action 1 scores 1.25·sqrt(2)·0.5 ≈ 0.88, so action 0 again: its child gets N = 2 and a grandchild
    assert counts == [2, 0] and q[1] == 0.0
    assert value == pytest.approx((0.3 + 2.0 + (1.0 + 0.5 * 2.0)) / 3)


@pytest.mark.parametrize("pile", [4, 5, 7, 8])
def test_reference_wins_nim(pile):
    counts, q, value = reference_search([0.0, 0.0], 0.0, torch.tensor([float(pile)]), one_step(nim_step), 100,
                                        root_legal=[True, True])
    winning = pile % 3 - 1
    assert max(range(2), key=counts.__getitem__) == winning, counts
    assert q[winning] > q[1 - winning]


# ---------------------------------------------------------------- batched vs reference


@pytest.fixture(params=["tensor", "compiled"])
def walk(request):
    """Both ways of walking the trees: torch ops on all trees at once, and the numba loops (search/kernels.py)."""
    return request.param


@pytest.mark.parametrize("num_simulations", [1, 7, 40])
def test_batched_matches_reference_on_a_random_network(num_simulations, walk):
    net = RandomNet(seed=0)
    root = net.root(torch.randn(8, 8, generator=torch.Generator().manual_seed(1), dtype=F64))
    assert_same_as_reference(root, net, num_simulations, walk=walk)


@pytest.mark.parametrize("num_simulations", [1, 7, 40])
def test_batched_matches_reference_with_legal_masks_and_noise(num_simulations, walk):
    net = RandomNet(seed=2, inner_legal=True)
    root = net.root(torch.randn(8, 8, generator=torch.Generator().manual_seed(3), dtype=F64))
    legal = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 1],
                          [1, 1, 0, 0], [0, 1, 0, 1], [1, 1, 1, 0], [0, 0, 1, 1]], dtype=torch.bool)
    result = assert_same_as_reference(root, net, num_simulations, root_legal=legal, walk=walk)
    assert (result.visit_counts[~legal] == 0).all()

    noise = dirichlet_noise(np.random.default_rng(0), legal, 0.25)
    assert noise.shape == (8, 4) and (noise[~legal] == 0).all() and (noise >= 0).all()
    torch.testing.assert_close(noise.double().sum(-1), torch.ones(8, dtype=F64))
    config = PUCTConfig(exploration_fraction=0.4)
    result = assert_same_as_reference(root, net, num_simulations, config=config, root_legal=legal,
                                      root_noise=noise.to(F64), walk=walk)
    assert (result.visit_counts[~legal] == 0).all()


def test_batched_matches_reference_on_nim(walk):
    root = table_root([4, 5, 7, 8], 2)
    result = assert_same_as_reference(root, nim_step, 100, root_legal=torch.ones(4, 2, dtype=torch.bool), walk=walk)
    assert result.visit_counts.argmax(-1).tolist() == [0, 1, 0, 1]
    small = table_root([1, 2, 3, 1], 2)  # a pile of 1: only "take 1" is legal
    assert_same_as_reference(small, nim_step, 12, root_legal=nim_legal(small.embedding[:, 0]), walk=walk)


def test_batched_matches_reference_in_the_corridor(walk):
    root = table_root([0, 1, 2, 3, 2], 3)
    for n in (8, 64):
        result = assert_same_as_reference(root, mdp_step, n, walk=walk)
    assert result.visit_counts.argmax(-1).tolist() == [2] * 5


@pytest.mark.parametrize("max_depth", [1, 2, 3])
def test_batched_matches_reference_with_a_depth_cap(max_depth, walk):
    """mctx's cutoff: a simulation that would go below ``max_depth`` evaluates that node again."""
    net = RandomNet(seed=7, inner_legal=True)
    root = net.root(torch.randn(8, 8, generator=torch.Generator().manual_seed(8), dtype=F64))
    tree = Tree(8, 4, 41, (8,), dtype=F64, device="cpu")
    assert_same_as_reference(root, net, 40, tree=tree, walk=walk, max_depth=max_depth)
    depth = torch.zeros(8, 42, dtype=torch.long)  # each node's depth, from its parent (nodes come after parents)
    made = tree.visits > 0
    for node in range(1, 41):
        parent = tree.parent[:, node].clamp(max=40)
        depth[:, node] = torch.where(made[:, node], depth.gather(1, parent[:, None])[:, 0] + 1, 0)
    assert depth.max() == max_depth
    assert tree.visits[:, 0].tolist() == [41.0] * 8  # every simulation still backs a value up to the root


def test_a_depth_cap_of_one_is_greedy_in_the_corridor(walk):
    """With the cap at one step the search sees only r + γ·v of each move (v = 0 here): it takes the +0.5 into the
    pit that the unbounded search avoids."""
    root = table_root([0, 1, 2], 3)
    assert assert_same_as_reference(root, mdp_step, 64, walk=walk).visit_counts.argmax(-1).tolist() == [2] * 3
    capped = assert_same_as_reference(root, mdp_step, 64, walk=walk, max_depth=1)
    assert capped.visit_counts.argmax(-1).tolist() == [0] * 3


def test_a_tree_is_reused_and_cleared(walk):
    net = RandomNet(seed=4)
    root = net.root(torch.randn(8, 8, generator=torch.Generator().manual_seed(5), dtype=F64))
    tree = Tree(8, 4, 41, (8,), dtype=F64, device="cpu")
    first = assert_same_as_reference(root, net, 40, tree=tree, walk=walk)
    other = net.root(torch.randn(8, 8, generator=torch.Generator().manual_seed(6), dtype=F64))
    assert_same_as_reference(other, net, 25, tree=tree, walk=walk)
    again = assert_same_as_reference(root, net, 40, tree=tree, walk=walk)
    assert torch.equal(first.visit_counts, again.visit_counts)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_a_bad_depth_cap_is_refused(bad):
    net = RandomNet(seed=0)
    with pytest.raises(SearchError, match="max_depth"):
        puct_search(net.root(torch.randn(2, 8, dtype=F64)), net, 4, max_depth=bad)


def test_a_tree_too_small_is_refused():
    net = RandomNet(seed=0)
    root = net.root(torch.randn(8, 8, generator=torch.Generator().manual_seed(1), dtype=F64))
    tree = Tree(8, 4, 9, (8,), dtype=F64, device="cpu")
    with pytest.raises(SearchError) as info:
        puct_search(root, net, 12, tree=tree)
    message = str(info.value)
    assert re.search(r"\b9\b", message) and re.search(r"\b1[23]\b", message), message


def test_mismatched_batches_are_refused():
    net = RandomNet(seed=0)
    root = net.root(torch.randn(3, 8, dtype=F64))
    bad = RootOutput(prior_logits=torch.zeros(4, 4, dtype=F64), value=root.value, embedding=root.embedding)
    with pytest.raises(ValueError):
        puct_search(bad, net, 4)
