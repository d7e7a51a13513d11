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


# -- gSDE (Raffin et al. 2021; core/sde.py) -----------------------------------------------------


def test_sde_log_prob_and_entropy_match_a_direct_multivariate_normal():
    from rlworks.core.sde import EPS
    from rlworks.core.sde import StateDependentGaussian as SDE

    g = torch.Generator().manual_seed(0)
    mean = torch.randn(6, 2, dtype=torch.float64, generator=g)
    log_std = torch.randn(4, 2, dtype=torch.float64, generator=g) * 0.3
    feats = torch.randn(6, 4, dtype=torch.float64, generator=g)
    x = torch.randn(6, 2, dtype=torch.float64, generator=g)
    # ε = z θ with θ_jk ~ N(0, σ_jk²) independent: Cov(ε)_kl = δ_kl Σ_j z_j² σ_jk²
    for i in range(6):
        cov = torch.diag((feats[i, :, None] ** 2 * log_std.exp() ** 2).sum(0) + EPS)
        ref = torch.distributions.MultivariateNormal(mean[i], covariance_matrix=cov)
        got = SDE.log_prob(mean[i:i + 1], log_std, feats[i:i + 1], x[i:i + 1])[0]
        torch.testing.assert_close(got, ref.log_prob(x[i]))
        torch.testing.assert_close(SDE.entropy(mean[i:i + 1], log_std, feats[i:i + 1])[0], ref.entropy())
    assert torch.equal(SDE.mode(mean, log_std, feats), mean)


def test_sde_noise_has_the_state_dependent_variance_and_is_deterministic():
    from rlworks.core.sde import StateDependentGaussian as SDE
    from rlworks.core.sde import state_std

    log_std = torch.tensor([[-0.5, 0.2], [0.1, -1.0], [0.0, 0.3]], dtype=torch.float64)
    feats = torch.tensor([[0.5, -1.0, 0.2]], dtype=torch.float64).expand(40000, 3)
    a = SDE.sample(torch.zeros(40000, 2, dtype=torch.float64), log_std, feats, torch_generator(3))
    assert (a.std(0) / state_std(log_std, feats[:1])[0] - 1).abs().max() < 0.02
    assert torch.equal(a, SDE.sample(torch.zeros(40000, 2, dtype=torch.float64), log_std, feats, torch_generator(3)))


def test_sde_numpy_noise_is_resampled_every_sample_freq_steps_and_at_reset():
    from rlworks.core.sde import NumpyNoise

    log_std = np.zeros((3, 1), dtype=np.float32)
    feats = np.ones((2, 3), dtype=np.float32)
    noise = NumpyNoise(log_std, 4, np.random.default_rng(0))
    noise.reset(2)
    eps = [noise(feats)[0].copy() for _ in range(12)]
    for t in range(12):  # constant within a block of 4 steps, different across blocks
        assert np.array_equal(eps[t], eps[t - t % 4])
    assert not np.array_equal(eps[0], eps[4]) and not np.array_equal(eps[4], eps[8])
    assert not np.array_equal(eps[0][0], eps[0][1])  # one θ_ε per environment
    first = eps[0].copy()
    noise.reset(2)
    assert not np.array_equal(noise(feats)[0], first)
    again = NumpyNoise(log_std, 4, np.random.default_rng(0))
    again.reset(2)
    assert np.array_equal(again(feats)[0], first)  # same generator state, same noise
    once = NumpyNoise(log_std, 0, np.random.default_rng(0))
    once.reset(2)
    e0 = once(feats)[0].copy()
    assert all(np.array_equal(once(feats)[0], e0) for _ in range(10))  # 0: only at reset


def test_sde_actor_critic_features_are_detached_and_log_std_is_per_feature():
    model = ActorCritic(3, 2, continuous=True, hidden=(8, 5), sde=True, log_std_init=-1.0)
    assert model.log_std.shape == (5, 2)
    obs = torch.randn(4, 3)
    mean, log_std, h = model.dist_params(obs)
    assert not h.requires_grad and mean.requires_grad
    torch.testing.assert_close(mean, model.actor(obs))
    with pytest.raises(ValueError, match="continuous"):
        ActorCritic(3, 2, continuous=False, sde=True)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_sde_rollout_policies_log_probs_match_the_update_and_hold_noise(kind):
    from rlworks.algos.policies import NumpyPolicy, TorchPolicy
    from rlworks.core import fastgrad

    torch.manual_seed(0)
    model = ActorCritic(3, 2, continuous=True, sde=True, log_std_init=-0.5)
    policy = (NumpyPolicy(model, np.random.default_rng(0), 3) if kind == "numpy"
              else TorchPolicy(model, torch_generator(0), torch.device("cpu"), 3))
    obs = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    policy.reset_noise(4)
    steps = [policy.step(obs) for _ in range(7)]
    for t in range(7):  # same obs, same θ_ε within a block of 3 steps → same action
        assert np.array_equal(steps[t][0], steps[t - t % 3][0])
    assert not np.array_equal(steps[0][0], steps[3][0])
    a, logp, _ = steps[0]
    f = fastgrad.forward(model, torch.from_numpy(obs), torch.from_numpy(np.asarray(a, dtype=np.float32)))
    np.testing.assert_allclose(f.logprobs.numpy(), logp, rtol=1e-4, atol=1e-4)  # PPO's first ratio is 1
