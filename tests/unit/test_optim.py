"""core.optim matches torch.optim step for step (and does not import torch._dynamo)."""

import subprocess
import sys

import pytest
import torch

from rlworks.core import optim


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
def test_matches_torch_optim(kind):
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    b = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    b.load_state_dict(a.state_dict())
    if kind == "adam":
        ours, ref = optim.Adam(a.parameters(), lr=1e-2, eps=1e-5), torch.optim.Adam(b.parameters(), lr=1e-2, eps=1e-5)
    else:
        ours = optim.RMSprop(a.parameters(), lr=1e-2, alpha=0.99, eps=1e-5)
        ref = torch.optim.RMSprop(b.parameters(), lr=1e-2, alpha=0.99, eps=1e-5)
    for _ in range(20):
        x = torch.randn(16, 4)
        for m, o in ((a, ours), (b, ref)):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", ["fused", "foreach"])
def test_adam_matches_torch_fused_and_foreach_adam(impl):
    """Parameters and moment estimates after 25 steps with a changing learning rate (annealing)."""
    torch.manual_seed(1)
    a = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    b = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    b.load_state_dict(a.state_dict())
    ours = optim.Adam(a.parameters(), lr=3e-3, betas=(0.9, 0.99), eps=1e-5)
    ref = torch.optim.Adam(b.parameters(), lr=3e-3, betas=(0.9, 0.99), eps=1e-5, **{impl: True})
    for i in range(25):
        lr = 3e-3 * (1 - i / 25)
        ours.param_groups[0]["lr"] = ref.param_groups[0]["lr"] = lr
        x = torch.randn(8, 3)
        for m, o in ((a, ours), (b, ref)):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    for i, (pa, pb) in enumerate(zip(a.parameters(), b.parameters())):
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7)
        st = ref.state[pb]
        torch.testing.assert_close(ours.exp_avg[i], st["exp_avg"], rtol=1e-6, atol=1e-8)
        torch.testing.assert_close(ours.exp_avg_sq[i], st["exp_avg_sq"], rtol=1e-6, atol=1e-10)
        assert float(ours.steps[i]) == float(st["step"]) == 25


def test_adam_keeps_one_step_tensor_per_parameter():
    """torch.compile needs distinct tensors (not one counter aliased in a list); the checkpoint keeps
    one ``step/i`` entry per parameter."""
    params = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))]
    o = optim.Adam(params)
    for p in params:
        p.grad = torch.ones_like(p)
    o.step()
    o.step()
    assert o.steps[0] is not o.steps[1] and o.steps[0].data_ptr() != o.steps[1].data_ptr()
    state = o.state_dict()
    assert sorted(k for k in state if k.startswith("step/")) == ["step/0", "step/1"]
    assert all(float(state[f"step/{i}"]) == 2 for i in range(2))


def test_state_round_trip():
    p = torch.nn.Parameter(torch.ones(3))
    o = optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    o.step()
    q = torch.nn.Parameter(p.detach().clone())
    o2 = optim.Adam([q], lr=0.1)
    o2.load_state_dict(o.state_dict())
    p.grad = torch.ones(3)
    q.grad = torch.ones(3)
    o.step()
    o2.step()
    assert torch.equal(p, q)


def test_does_not_import_dynamo():
    code = ("import sys, torch; from rlworks.core import optim; p = torch.nn.Parameter(torch.ones(2)); "
            "o = optim.Adam([p]); p.grad = torch.ones(2); o.step(); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
