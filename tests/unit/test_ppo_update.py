"""The fused (hand-derived) gradients of PPO, A2C and REINFORCE equal autograd's gradients of the
losses in the algorithm files, one minibatch at a time in float64 (algos/fused/policy_gradient.py)."""

import itertools

import pytest
import torch

from rlworks.algos.fused import policy_gradient as fused
from rlworks.algos.ppo import PPOConfig, ppo_loss
from rlworks.core.nets import ActorCritic


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("continuous", [False, True, "sde"])
@pytest.mark.parametrize("clip_vloss", [False, True])
def test_ppo_fused_gradients_equal_autograd(continuous, clip_vloss):
    torch.manual_seed(3)
    sde = continuous == "sde"
    cfg = PPOConfig(clip_vloss=clip_vloss, ent_coef=0.01)
    model = ActorCritic(4, 2, continuous=bool(continuous), sde=sde).double()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.5)
    B = 64
    obs = torch.randn(B, 4, dtype=torch.float64)
    actions = torch.randn(B, 2, dtype=torch.float64) if continuous else torch.randint(0, 2, (B,))
    with torch.no_grad():
        old_lp, _, old_v = model.evaluate_actions(obs, actions)
    old_lp = old_lp + torch.randn(B, dtype=torch.float64) * 0.3  # ratios far from 1: exercise the clip
    old_v = old_v + torch.randn(B, dtype=torch.float64) * 0.5
    adv, ret = torch.randn(B, dtype=torch.float64), torch.randn(B, dtype=torch.float64)

    lp, ent, v = model.evaluate_actions(obs, actions)
    loss, ref_info = ppo_loss(cfg, 0.2, lp, ent, v, old_lp, adv, ret, old_v)
    model.zero_grad()
    loss.backward()
    ref = _grads(model)

    model.zero_grad(set_to_none=True)
    info = fused.ppo_gradients(model, cfg, 0.2, obs, actions, old_lp, adv, ret, old_v)
    assert 0 < float(info["losses/clipfrac"]) < 1
    for k, val in ref_info.items():
        torch.testing.assert_close(info[k], val, msg=k)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], msg=n)
    model.zero_grad(set_to_none=True)
    assert fused.ppo_gradients(model, cfg, 0.2, obs, actions, old_lp, adv, ret, old_v, metrics=False) == {}
    for n, p in model.named_parameters():  # the metrics-free path gives the same gradients
        torch.testing.assert_close(p.grad, ref[n], msg=n)


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("ent_coef", [0.0, 0.0037])
def test_a2c_fused_gradients_equal_autograd(continuous, ent_coef):
    from rlworks.algos.a2c import A2CConfig, a2c_loss

    torch.manual_seed(4)
    cfg = A2CConfig(ent_coef=0.01)  # the annealed ent_coef argument overrides the config's
    model = ActorCritic(4, 3, continuous=continuous).double()
    obs = torch.randn(40, 4, dtype=torch.float64)
    actions = torch.randn(40, 3, dtype=torch.float64) if continuous else torch.randint(0, 3, (40,))
    adv, ret = torch.randn(40, dtype=torch.float64), torch.randn(40, dtype=torch.float64)
    lp, ent, v = model.evaluate_actions(obs, actions)
    loss, _ = a2c_loss(cfg, ent_coef, lp, ent, v, adv, ret)
    model.zero_grad()
    loss.backward()
    ref = _grads(model)
    model.zero_grad(set_to_none=True)
    loss2, _ = fused.a2c_gradients(model, cfg, ent_coef, obs, actions, adv, ret)
    torch.testing.assert_close(loss2, loss.detach())
    assert fused.a2c_weights(cfg, ent_coef, v, adv, ret)[1] == -ent_coef / 40  # the coefficient actually used
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], msg=n)


def test_a2c_anneal_ent_decays_the_bonus_to_zero():
    from rlworks.algos import a2c

    seen = []
    real = a2c.a2c_loss

    def spy(cfg, ent_coef, *args):
        seen.append(float(ent_coef))
        return real(cfg, ent_coef, *args)

    a2c.a2c_loss = spy
    try:
        a2c.train("CartPole-v1", a2c.A2CConfig(n_envs=2, n_steps=8, ent_coef=0.01, anneal_ent=True), total_steps=160)
    finally:
        a2c.a2c_loss = real
    assert seen[0] == pytest.approx(0.01) and seen[-1] == pytest.approx(0.01 * 16 / 160)
    assert all(a > b for a, b in itertools.pairwise(seen))
