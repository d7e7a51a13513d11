"""The analytic-gradient fast path must give autograd's gradients."""

import pytest
import torch

from rlworks.core import fastgrad
from rlworks.core.nets import ActorCritic


@pytest.mark.parametrize("continuous", [False, True, "sde"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_fastgrad_matches_autograd(continuous, activation):
    torch.manual_seed(0)
    sde = continuous == "sde"  # gSDE head (core/sde.py)
    continuous = bool(continuous)
    model = ActorCritic(5, 3, continuous=continuous, activation=activation, log_std_init=-0.3, sde=sde).double()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.3)
    obs = torch.randn(17, 5, dtype=torch.float64)
    actions = torch.randn(17, 3, dtype=torch.float64) if continuous else torch.randint(0, 3, (17,))
    w_logp, w_ent, w_v = (torch.randn(17, dtype=torch.float64) for _ in range(3))
    # autograd reference: L = Σ w_logp·logπ + w_ent·H + w_v·V
    logp, ent, v = model.evaluate_actions(obs, actions)
    model.zero_grad()
    ((w_logp * logp).sum() + (w_ent * ent).sum() + (w_v * v).sum()).backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    f = fastgrad.forward(model, obs, actions)
    torch.testing.assert_close(f.logprobs, logp.detach())
    torch.testing.assert_close(f.entropy, ent.detach())
    torch.testing.assert_close(f.values, v.detach())
    fastgrad.backward(model, f, w_logp, w_ent, w_v)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], msg=n)


def test_layer_norm_is_not_supported():
    assert not fastgrad.supported(ActorCritic(3, 2, continuous=False, layer_norm=True))
    assert fastgrad.supported(ActorCritic(3, 2, continuous=False))
