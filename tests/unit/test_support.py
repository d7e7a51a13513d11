"""MuZero's categorical value/reward support (core/support.py)."""

from __future__ import annotations

import math

import pytest
import torch

from rlworks.core.support import h, h_inv, scalar_to_support, support_to_scalar


def _wide(dtype):
    mags = torch.logspace(-6, 4, 200, dtype=torch.float64)
    x = torch.cat([-mags, torch.zeros(1, dtype=torch.float64), mags, torch.tensor([1.0, -1.0, 1e4, -1e4, 123.456])])
    return x.to(dtype)


def test_h_matches_definition_and_is_odd():
    x = torch.tensor([-1e4, -3.0, -0.5, 0.0, 0.25, 2.0, 99.0, 1e4], dtype=torch.float64)
    ref = torch.tensor([math.copysign(math.sqrt(abs(v) + 1) - 1, v) + 1e-3 * v for v in x.tolist()],
                       dtype=torch.float64)
    torch.testing.assert_close(h(x), ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(h(-x), -h(x), rtol=0, atol=0)
    assert h(torch.tensor(0.0)).item() == 0.0
    torch.testing.assert_close(h(x, eps=0.1), ref + (0.1 - 1e-3) * x, rtol=1e-12, atol=1e-12)


def test_h_inv_matches_closed_form_of_pohlen():
    y = h(_wide(torch.float64))
    e = 1e-3
    ref = torch.sign(y) * (((torch.sqrt(1 + 4 * e * (y.abs() + 1 + e)) - 1) / (2 * e)) ** 2 - 1)
    torch.testing.assert_close(h_inv(y), ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("eps", [1e-3, 1e-2])
def test_h_inv_inverts_h(dtype, eps):
    x = _wide(dtype)
    back = h_inv(h(x, eps), eps)
    assert back.dtype == dtype
    rel = ((back - x).abs() / x.abs().clamp(min=1e-30)).max().item()
    assert rel < 1e-5, rel
    assert h_inv(h(torch.zeros(3, dtype=dtype))).abs().max().item() == 0.0
    y = torch.linspace(-300, 300, 1001, dtype=dtype)  # and h(h_inv(y)) = y
    torch.testing.assert_close(h(h_inv(y, eps), eps), y, rtol=1e-5, atol=1e-5)


def test_two_hot_expectation_equals_h():
    S = 10
    x = torch.tensor([-50.0, -7.3, -1.0, -0.2, 0.0, 0.3, 1.0, 2.5, 13.0, 99.0, 110.0])  # all |h(x)| <= 10
    assert h(x).abs().max() <= S
    p = scalar_to_support(x, S)
    assert p.shape == (11, 2 * S + 1)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(11))
    atoms = torch.arange(-S, S + 1, dtype=torch.float32)
    torch.testing.assert_close((p * atoms).sum(-1), h(x), rtol=1e-6, atol=1e-6)
    assert ((p > 0).sum(-1) <= 2).all()  # two-hot: at most two neighbouring atoms
    nz = [torch.nonzero(row).flatten() for row in p]
    assert all(len(i) == 1 or i[1] - i[0] == 1 for i in nz)
    # an integer h(x) is one-hot
    one = scalar_to_support(h_inv(torch.tensor([3.0])), S)[0]
    assert one[S + 3] == pytest.approx(1.0, abs=1e-5)


def test_round_trip_through_log_two_hot():
    S = 20
    x = torch.cat([torch.linspace(-400, 400, 801), torch.tensor([0.0, 1e-3, -1e-3])]).double()
    assert h(x).abs().max() <= S
    logits = torch.log(scalar_to_support(x, S))  # -inf at empty atoms: softmax gives them 0
    torch.testing.assert_close(support_to_scalar(logits, S), x, rtol=1e-6, atol=1e-6)
    x32 = x.float()
    torch.testing.assert_close(support_to_scalar(torch.log(scalar_to_support(x32, S)), S), x32, rtol=1e-4, atol=1e-4)


def test_shapes_batch_and_unroll():
    S = 5
    for shape in [(7,), (4, 6), ()]:
        x = torch.randn(shape) * 3
        p = scalar_to_support(x, S)
        assert p.shape == (*shape, 2 * S + 1)
        out = support_to_scalar(torch.log(p), S)
        assert out.shape == shape
        torch.testing.assert_close(out, x, rtol=1e-4, atol=1e-4)
    logits = torch.randn(3, 4, 2 * S + 1, requires_grad=True)
    v = support_to_scalar(logits, S)
    v.sum().backward()  # differentiable (used for value prediction diagnostics)
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError):
        support_to_scalar(torch.zeros(3, 2 * S), S)


def test_clamping_beyond_the_support():
    S = 3
    x = torch.tensor([-1e6, -h_inv(torch.tensor(3.0)).item(), 1e3, 1e6])
    p = scalar_to_support(x, S)
    assert p[0, 0] == 1.0 and p[0].sum() == 1.0  # everything on the lowest atom
    assert p[1, 0] == pytest.approx(1.0, abs=1e-5)
    assert p[2, -1] == 1.0 and p[3, -1] == 1.0  # and on the highest
    torch.testing.assert_close(support_to_scalar(torch.log(p[2:]), S), h_inv(torch.tensor([3.0, 3.0])))


def test_uniform_logits_give_zero():
    S = 8
    out = support_to_scalar(torch.zeros(5, 2 * S + 1), S)
    torch.testing.assert_close(out, torch.zeros(5), rtol=0, atol=1e-6)
