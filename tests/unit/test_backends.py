"""Every non-autograd backend of DQN, SAC, TD3 and DDPG computes the autograd update in the algorithm's file:
the same networks after 50 updates on the same batches and the same random draws."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import rlworks
from rlworks.algos import backends, ddpg, dqn, sac, td3
from rlworks.algos.fused import dqn as fused_dqn
from rlworks.algos.fused import sac as fused_sac
from rlworks.algos.fused import td3 as fused_td3
from rlworks.algos.fused import twinq
from rlworks.config import ConfigError
from rlworks.core.nets import TwinQ

torch.set_num_threads(1)
CPU = torch.device("cpu")
OBS, ACT, B, STEPS = 5, 2, 32, 50


def _batches(n: int, seed: int = 1, obs_scale: float = 1.0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"obs": torch.randn(B, OBS, generator=g) * obs_scale, "next_obs": torch.randn(B, OBS, generator=g),
             "actions": torch.rand(B, ACT, generator=g) * 2 - 1, "returns": torch.randn(B, generator=g),
             "discounts": 0.99 * (torch.rand(B, generator=g) > 0.1).float()} for _ in range(n)]


def _params(state) -> dict[str, torch.Tensor]:
    out = {}
    for f in dataclasses.fields(state):
        v = getattr(state, f.name)
        if isinstance(v, torch.nn.Module):
            out.update({f"{f.name}.{k}": p.detach().clone() for k, p in v.state_dict().items()})
    return out


def _run(mod, fused_update, cfg, backend: str, batches, prepare=None):
    torch.manual_seed(0)
    st = mod.build_state({"obs_dim": OBS, "act_dim": ACT}, cfg, CPU)
    if prepare is not None:
        prepare(st)
    start = _params(st)
    step = {"autograd": mod.update, "fused": fused_update, "compile": backends.CompiledUpdate(mod.update)}[backend]
    g = torch.Generator().manual_seed(7)
    for b in batches:
        out = step(st, cfg, b, g)
    metrics = out() if callable(out) else out
    return st, {k: float(v) for k, v in metrics.items()}, start


def _assert_same(a, b, start, rtol=1e-4, atol=1e-5):
    pa, pb = _params(a), _params(b)
    moved = 0
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=rtol, atol=atol, msg=k)
        moved += not torch.equal(pa[k], start[k])
    assert moved >= len(pa) // 2, "the updates left the networks where they started (a vacuous comparison)"
    assert a.n_updates == b.n_updates == STEPS


SAC_CASES = {
    "relu": {},
    "tanh": {"activation": "tanh"},
    "fixed-alpha": {"autotune": False, "ent_coef": 0.2},
    "target-interval-2": {"target_update_interval": 2},
    "three-critics": {"n_critics": 3},
}


def _hit_log_std_clamp(st: sac.SACState) -> None:
    """Push log σ past its upper clamp (2) on about half of the rows: the clamp's zero gradient is exercised."""
    with torch.no_grad():
        st.actor.log_std.weight.mul_(40.0)
        st.actor.log_std.bias.fill_(2.0)


@pytest.mark.parametrize("case", [*SAC_CASES, "log-std-clamp"])
def test_sac_fused_matches_autograd(case):
    cfg = sac.SACConfig(hidden=(32, 16), learning_rate=1e-3, tau=0.05, **SAC_CASES.get(case, {}))
    prepare = _hit_log_std_clamp if case == "log-std-clamp" else None
    batches = _batches(STEPS)
    if prepare is not None:  # the clamp is really hit on these batches
        torch.manual_seed(0)
        st = sac.build_state({"obs_dim": OBS, "act_dim": ACT}, cfg, CPU)
        prepare(st)
        with torch.no_grad():
            raw = st.actor.log_std(st.actor.trunk(batches[0]["obs"]))
        assert 0.2 < (raw > sac.LOG_STD_MAX).float().mean() < 0.8
    a, ma, start = _run(sac, fused_sac.update, cfg, "fused", batches, prepare)
    b, mb, _ = _run(sac, fused_sac.update, cfg, "autograd", batches, prepare)
    _assert_same(a, b, start)
    for k in ma:
        assert ma[k] == pytest.approx(mb[k], rel=1e-3, abs=1e-4), k


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("policy_delay", [1, 2])
def test_td3_fused_matches_autograd(activation, policy_delay):
    cfg = td3.TD3Config(hidden=(32, 16), learning_rate=1e-3, tau=0.05, activation=activation, policy_delay=policy_delay)
    batches = _batches(STEPS)
    a, _, start = _run(td3, fused_td3.update, cfg, "fused", batches)
    b, _, _ = _run(td3, fused_td3.update, cfg, "autograd", batches)
    _assert_same(a, b, start)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_ddpg_fused_matches_autograd(activation):
    """DDPG's configuration of TD3's fused update: one critic, the actor every step, no smoothing."""
    cfg = ddpg.DDPGConfig(hidden=(32, 16), learning_rate=1e-3, tau=0.05, activation=activation)
    batches = _batches(STEPS)
    a, _, start = _run(ddpg, fused_td3.update, cfg, "fused", batches)
    b, _, _ = _run(ddpg, fused_td3.update, cfg, "autograd", batches)
    assert a.critic.n == 1 and a.n_updates == STEPS
    _assert_same(a, b, start)


def _dqn_run(cfg, backend: str, weighted: bool):
    torch.manual_seed(0)
    net = {"hidden": cfg.hidden, "activation": cfg.activation, "dueling": cfg.dueling}
    st = dqn.build_state({"obs_dim": OBS, "act_dim": 3}, net, cfg, CPU)
    start = _params(st)
    step = {"autograd": dqn.update, "fused": fused_dqn.update, "compile": backends.CompiledUpdate(dqn.update)}[backend]
    g = torch.Generator().manual_seed(3)
    for _ in range(STEPS):
        obs, actions = torch.randn(B, OBS, generator=g), torch.randint(0, 3, (B,), generator=g)
        targets = torch.randn(B, generator=g) * 3  # some |δ| > 1: both Huber branches
        weights = torch.rand(B, generator=g) if weighted else None
        loss, q_taken = step(st, cfg, obs, actions, targets, weights)
        st.n_updates += 1
    return st, start, float(loss)


@pytest.mark.parametrize("dueling", [False, True])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("weighted", [False, True])
def test_dqn_fused_matches_autograd(dueling, activation, weighted):
    cfg = dqn.DQNConfig(hidden=(32, 16), activation=activation, dueling=dueling, learning_rate=1e-3,
                        max_grad_norm=0.5)  # a tight clip: the clipping path is taken
    a, start, la = _dqn_run(cfg, "fused", weighted)
    b, _, lb = _dqn_run(cfg, "autograd", weighted)
    _assert_same(a, b, start)
    assert la == pytest.approx(lb, rel=1e-4)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("activation,n", [("relu", 2), ("tanh", 2), ("relu", 3)])
def test_min_input_grad_matches_autograd(masked, activation, n):
    """∂/∂a of scale·Σ_b min_i Q_i(s_b, a_b), by rows (the default) and by masks (reduced-precision products)."""
    torch.manual_seed(0)
    q = TwinQ(3, 2, (16, 8), activation, n=n)
    obs, act = torch.randn(50, 3), torch.randn(50, 2, requires_grad=True)
    ref = torch.autograd.grad(-0.1 * q(obs, act).min(0).values.sum(), act)[0]
    with torch.no_grad():
        values, acts = twinq.forward(q, obs, act.detach())
        got = twinq.min_input_grad(q, acts, values, -0.1, input_from=3, masked=masked)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


def test_input_grad_of_one_critic_matches_autograd():
    q = TwinQ(3, 2, (16, 8))
    obs, act = torch.randn(20, 3), torch.randn(20, 2, requires_grad=True)
    (-0.1 * q(obs, act)[1].sum()).backward()
    with torch.no_grad():
        q1, got = twinq.input_grad(q, 1, obs, act.detach(), -0.1)
    torch.testing.assert_close(got, act.grad)
    torch.testing.assert_close(q1, q(obs, act.detach())[1])


def test_fused_acting_draws_the_same_actions_as_the_module():
    cfg = sac.SACConfig(hidden=(16, 16))
    st = sac.build_state({"obs_dim": OBS, "act_dim": ACT}, cfg, CPU)

    class S:  # the two fields fused_sac.act reads from a session
        state, device, generator = st, CPU, torch.Generator().manual_seed(5)

    obs = torch.randn(4, OBS).numpy()
    fast = fused_sac.act(S, obs)
    with torch.no_grad():
        ref = st.actor.act(torch.from_numpy(obs), False, torch.Generator().manual_seed(5)).numpy()
    torch.testing.assert_close(torch.from_numpy(fast), torch.from_numpy(ref))


def test_compile_matches_autograd_for_sac():
    """torch.compile of the autograd update (one case: compiling takes tens of seconds on CPU)."""
    cfg = sac.SACConfig(hidden=(32, 16), learning_rate=1e-3, tau=0.05, target_update_interval=2)
    batches = _batches(STEPS)
    a, _, start = _run(sac, fused_sac.update, cfg, "compile", batches)
    b, _, _ = _run(sac, fused_sac.update, cfg, "autograd", batches)
    _assert_same(a, b, start)


def test_compile_backend_trains_sac_and_reports_compile_time():
    agent = rlworks.train("sac", "Pendulum-v1", total_steps=300, seed=0, backend="compile", learning_starts=100,
                          batch_size=32, hidden=(16, 16))
    assert agent.meta["backend"] == "compile"
    assert agent.meta["compile_seconds"] > 0
    assert agent.meta["n_updates"] == 200


@pytest.mark.parametrize("algo,env", [("dqn", "CartPole-v1"), ("sac", "Pendulum-v1"), ("td3", "Pendulum-v1"),
                                      ("ddpg", "Pendulum-v1")])
def test_auto_backend_is_fused_on_cpu_and_autograd_trains(algo, env):
    kw = {"learning_starts": 50, "batch_size": 16, "hidden": (8, 8)}
    assert rlworks.train(algo, env, total_steps=80, seed=0, **kw).meta["backend"] == "fused"
    assert rlworks.train(algo, env, total_steps=80, seed=0, backend="autograd", **kw).meta["backend"] == "autograd"


def test_unknown_backend_is_one_clear_error():
    with pytest.raises(ConfigError, match="backend='jax' is not one of 'auto', 'autograd', 'compile', 'fused'"):
        sac.SACConfig(backend="jax")


def test_importing_and_training_without_compile_does_not_import_dynamo():
    """torch._dynamo costs about 1 s and 70 MB on import: only backend="compile" may pull it in."""
    import subprocess
    import sys

    code = ("import sys, rlworks\n"
            "for algo, env in (('ppo', 'CartPole-v1'), ('dqn', 'CartPole-v1'), ('sac', 'Pendulum-v1')):\n"
            "    kw = {'n_envs': 1, 'n_steps': 32, 'batch_size': 16} if algo == 'ppo' else "
            "{'learning_starts': 20, 'batch_size': 8, 'hidden': (8,)}\n"
            "    for backend in ('auto', 'autograd'):\n"
            "        rlworks.train(algo, env, total_steps=64, backend=backend, **kw)\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
