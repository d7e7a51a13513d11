"""Distributions against torch.distributions; nets: init, layer norm, the NumPy fast path."""

import numpy as np
import pytest
import torch

from rlworks.core.distributions import Categorical, DiagGaussian
from rlworks.core.nets import ActorCritic, NumpyActor, mlp
from rlworks.core.seeding import seed_everything, spawn_seeds, torch_generator


def test_categorical_matches_torch():
    logits = torch.randn(6, 4, dtype=torch.float64)
    actions = torch.tensor([0, 1, 2, 3, 1, 0])
    ref = torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(Categorical.log_prob(logits, actions), ref.log_prob(actions))
    torch.testing.assert_close(Categorical.entropy(logits), ref.entropy())
    assert Categorical.mode(logits).tolist() == logits.argmax(-1).tolist()


def test_categorical_sampling_frequencies_and_determinism():
    logits = torch.log(torch.tensor([[0.1, 0.6, 0.3]])).expand(20000, 3)
    a = Categorical.sample(logits, torch_generator(0))
    freq = torch.bincount(a, minlength=3).double() / a.numel()
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64), atol=0.015, rtol=0)
    assert torch.equal(a, Categorical.sample(logits, torch_generator(0)))


def test_diag_gaussian_matches_torch():
    mean = torch.randn(5, 3, dtype=torch.float64)
    log_std = torch.randn(3, dtype=torch.float64) * 0.3
    x = torch.randn(5, 3, dtype=torch.float64)
    ref = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(DiagGaussian.log_prob(mean, log_std, x), ref.log_prob(x).sum(-1))
    torch.testing.assert_close(DiagGaussian.entropy(mean, log_std), ref.entropy().sum(-1))
    s = DiagGaussian.sample(torch.zeros(40000, 3, dtype=torch.float64), log_std, torch_generator(1))
    assert s.std(0).sub(log_std.exp()).abs().max() < 0.03


def test_orthogonal_init_gains():
    torch.manual_seed(0)
    net = mlp(8, (64, 64), 2, out_gain=0.01)
    w = net[0].weight.detach()
    torch.testing.assert_close(w.T @ w, 2.0 * torch.eye(8), atol=1e-4, rtol=0)  # gain √2, orthogonal columns
    assert net[-1].weight.abs().max() < 0.05
    assert all(float(m.bias.detach().abs().max()) == 0 for m in net if isinstance(m, torch.nn.Linear))


@pytest.mark.parametrize("layer_norm,activation", [(False, "tanh"), (True, "relu")])
def test_numpy_actor_matches_torch(layer_norm, activation):
    torch.manual_seed(1)
    model = ActorCritic(5, 3, continuous=False, layer_norm=layer_norm, activation=activation)
    for p in model.parameters():  # make the output non-trivial
        p.data.normal_()
    x = np.random.default_rng(0).normal(size=(7, 5))
    ref = model.actor(torch.from_numpy(x).float()).detach().numpy()
    np.testing.assert_allclose(NumpyActor(model)(x), ref, rtol=1e-4, atol=1e-4)


def test_actor_critic_shapes_continuous():
    model = ActorCritic(3, 2, continuous=True, log_std_init=-0.5)
    obs = torch.randn(4, 3)
    a, lp, v = model.sample(obs, torch_generator(0))
    assert a.shape == (4, 2) and lp.shape == (4,) and v.shape == (4,)
    lp2, ent, v2 = model.evaluate_actions(obs, a)
    torch.testing.assert_close(lp, lp2)
    assert ent.shape == (4,)
    assert torch.allclose(model.log_std, torch.full((2,), -0.5))


def test_seeding_is_reproducible():
    a = spawn_seeds(seed_everything(5), 3)
    b = spawn_seeds(seed_everything(5), 3)
    assert a == b and len(set(a)) == 3
    assert spawn_seeds(6, 3) != a
