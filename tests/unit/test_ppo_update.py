"""PPO's analytic-gradient branch equals its autograd branch (same objective, same gradients)."""

import pytest
import torch

from rlworks.algos.ppo import PPOConfig, ppo_objective
from rlworks.core import fastgrad
from rlworks.core.nets import ActorCritic


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("clip_vloss", [False, True])
def test_ppo_fast_gradients_equal_autograd(continuous, clip_vloss):
    torch.manual_seed(3)
    cfg = PPOConfig(clip_vloss=clip_vloss, ent_coef=0.01)
    model = ActorCritic(4, 2, continuous=continuous).double()
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
    loss, _, _ = ppo_objective(cfg, 0.2, lp, ent, v, old_lp, adv, ret, old_v)
    model.zero_grad()
    loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}

    model.zero_grad(set_to_none=True)
    f = fastgrad.forward(model, obs, actions)
    loss2, info, w = ppo_objective(cfg, 0.2, f.logprobs, f.entropy, f.values, old_lp, adv, ret, old_v, grads=True)
    assert 0 < float(info["losses/clipfrac"]) < 1
    torch.testing.assert_close(loss2, loss.detach())
    fastgrad.backward(model, f, *w)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], msg=n)


@pytest.mark.parametrize("norm_adv,ent_override", [(False, None), (True, None), (True, 0.0037)])
def test_a2c_fast_gradients_equal_autograd(norm_adv, ent_override):
    from rlworks.algos.a2c import A2CConfig, a2c_objective

    torch.manual_seed(4)
    cfg = A2CConfig(norm_adv=norm_adv, ent_coef=0.01)
    model = ActorCritic(4, 3, continuous=False).double()
    obs = torch.randn(40, 4, dtype=torch.float64)
    actions = torch.randint(0, 3, (40,))
    adv, ret = torch.randn(40, dtype=torch.float64), torch.randn(40, dtype=torch.float64)
    lp, ent, v = model.evaluate_actions(obs, actions)
    loss, _, _ = a2c_objective(cfg, lp, ent, v, adv, ret, ent_coef=ent_override)
    model.zero_grad()
    loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    f = fastgrad.forward(model, obs, actions)
    _, _, w = a2c_objective(cfg, f.logprobs, f.entropy, f.values, adv, ret, grads=True, ent_coef=ent_override)
    assert w[1] == -(0.01 if ent_override is None else ent_override) / 40  # the coefficient actually used
    fastgrad.backward(model, f, *w)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], msg=n)


def test_a2c_anneal_ent_decays_the_bonus_to_zero():
    from rlworks.algos import a2c

    seen = []
    real = a2c.a2c_objective

    def spy(*args, **kw):
        seen.append(kw.get("ent_coef"))
        return real(*args, **kw)

    a2c.a2c_objective = spy
    try:
        a2c.train("CartPole-v1", a2c.A2CConfig(n_envs=2, n_steps=8, ent_coef=0.01, anneal_ent=True), total_steps=160)
    finally:
        a2c.a2c_objective = real
    assert seen[0] == pytest.approx(0.01) and seen[-1] == pytest.approx(0.01 * 16 / 160)
    assert all(a > b for a, b in zip(seen, seen[1:]))
