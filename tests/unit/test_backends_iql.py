"""IQL's fused backend (``algos/fused/iql.py``) computes the autograd update of ``algos/iql.py``: the same
networks and optimizer states after 50 updates on the same batches, Box and Discrete actions."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlworks.algos import iql, offline
from rlworks.algos.fused import iql as fused_iql
from rlworks.config import ConfigError
from rlworks.offline.data import OfflineDataset

torch.set_num_threads(1)
CPU = torch.device("cpu")
OBS, ACT, N_DISCRETE, B, STEPS = 5, 2, 3, 32, 50


def _batches(n: int, discrete: bool, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        actions = (torch.randint(0, N_DISCRETE, (B,), generator=g) if discrete
                   else torch.rand(B, ACT, generator=g) * 2 - 1)
        out.append({"obs": torch.randn(B, OBS, generator=g), "next_obs": torch.randn(B, OBS, generator=g),
                    "actions": actions, "returns": torch.randn(B, generator=g) * 3,
                    "discounts": 0.99 * (torch.rand(B, generator=g) > 0.1).float()})
    return out


def _tensors(st: iql.IQLState) -> dict[str, torch.Tensor]:
    """Every network's parameters and every optimizer's state."""
    out = {}
    for f in dataclasses.fields(st):
        v = getattr(st, f.name)
        if isinstance(v, torch.nn.Module):
            out.update({f"{f.name}.{k}": p.detach().clone() for k, p in v.state_dict().items()})
        elif f.name.endswith("_opt"):
            out.update({f"{f.name}.{k}": t.clone() for k, t in v.state_dict().items()})
    return out


def _run(cfg: iql.IQLConfig, update, batches, discrete: bool, prepare=None):
    torch.manual_seed(0)
    spec = {"obs_dim": OBS, "act_dim": N_DISCRETE if discrete else ACT, "action": "discrete" if discrete else "box"}
    st = iql.build_state(spec, {"hidden": cfg.hidden, "activation": cfg.activation}, cfg, CPU)
    if prepare is not None:
        prepare(st)
    start = _tensors(st)
    for t, b in enumerate(batches):
        metrics = update(st, cfg, b, iql.actor_lr(cfg, t, len(batches)))
    return st, {k: float(v) for k, v in metrics.items()}, start


def _assert_same(a: iql.IQLState, b: iql.IQLState, start, rtol=1e-4, atol=1e-5) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    moved = 0
    for k in ta:
        torch.testing.assert_close(ta[k], tb[k], rtol=rtol, atol=atol, msg=k)
        moved += not torch.equal(ta[k], start[k])
    assert moved >= 0.9 * len(ta), "the updates left the networks where they started (a vacuous comparison)"
    assert a.n_updates == b.n_updates == STEPS


def _log_std_past_both_clamps(st: iql.IQLState) -> None:
    """log σ = (3, −6): outside [−5, 2] at both ends, where the clamp's gradient is zero."""
    with torch.no_grad():
        st.actor.log_std.copy_(torch.tensor([3.0, -6.0]))


CASES = {
    "box-relu": ({}, False, None),
    "box-tanh": ({"activation": "tanh"}, False, None),
    "box-three-layers-no-cosine": ({"hidden": (16, 16, 8), "actor_cosine_lr": False, "expectile": 0.9}, False, None),
    "box-weights-clipped": ({"beta": 50.0, "max_weight": 2.0}, False, None),
    "box-log-std-clamped": ({}, False, _log_std_past_both_clamps),
    "discrete-relu": ({}, True, None),
    "discrete-tanh": ({"activation": "tanh"}, True, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_iql_fused_matches_autograd(case):
    kw, discrete, prepare = CASES[case]
    cfg = iql.IQLConfig(**{"hidden": (32, 16), "learning_rate": 1e-3, "tau": 0.05, **kw})
    batches = _batches(STEPS, discrete)
    a, ma, start = _run(cfg, fused_iql.update, batches, discrete, prepare)
    b, mb, _ = _run(cfg, iql.update, batches, discrete, prepare)
    _assert_same(a, b, start)
    assert ma.keys() == mb.keys()
    for k in ma:
        assert ma[k] == pytest.approx(mb[k], rel=1e-4, abs=1e-5), k
    if prepare is not None:  # log σ stayed pinned where the clamp's gradient is zero: Adam never moved it
        torch.testing.assert_close(a.actor.log_std, start["actor.log_std"])
    if case == "box-weights-clipped":  # the clip at max_weight is really hit
        assert ma["losses/mean_weight"] < 2.0 and mb["losses/mean_weight"] < 2.0


def test_log_std_gradient_inside_the_clamp_range_is_not_zero():
    """The counterpart of the clamped case: inside [−5, 2] log σ moves, by the same amount in both backends."""
    cfg = iql.IQLConfig(hidden=(16,), learning_rate=1e-2)
    batches = _batches(3, False)
    a, _, start = _run(cfg, fused_iql.update, batches, False)
    b, _, _ = _run(cfg, iql.update, batches, False)
    assert not torch.equal(a.actor.log_std, start["actor.log_std"])
    torch.testing.assert_close(a.actor.log_std, b.actor.log_std)


def _source(discrete: bool) -> offline.OfflineSource:
    T, rng = 200, np.random.default_rng(0)
    if discrete:
        act, space = rng.integers(0, 2, T), gym.spaces.Discrete(2)
        env_id, od = "CartPole-v1", 4
    else:
        act, space = rng.uniform(-2, 2, (T, 1)).astype(np.float32), gym.spaces.Box(-2, 2, (1,), np.float32)
        env_id, od = "Pendulum-v1", 3
    obs = rng.standard_normal((T, od)).astype(np.float32)
    nxt = rng.standard_normal((T, od)).astype(np.float32)
    term, trunc = np.zeros(T, bool), np.zeros(T, bool)
    trunc[99::100] = True
    data = OfflineDataset("x", obs, act, rng.standard_normal(T).astype(np.float32), nxt, term, trunc,
                          np.arange(0, T, 100), gym.spaces.Box(-np.inf, np.inf, (od,)), space, env_id=env_id)
    return offline.OfflineSource(None, data)


@pytest.mark.parametrize("discrete", [False, True])
def test_auto_backend_is_fused_and_both_backends_train_the_same(discrete):
    agents = {}
    for backend in ("auto", "autograd", "fused"):
        cfg = iql.IQLConfig(hidden=(8, 8), batch_size=16, backend=backend)
        agents[backend] = iql.train(_source(discrete), cfg, total_steps=20, seed=0)
    assert [agents[k].meta["backend"] for k in agents] == ["fused", "autograd", "fused"]
    pa = agents["autograd"].model.state_dict()
    for k, v in agents["fused"].model.state_dict().items():
        torch.testing.assert_close(v, pa[k], rtol=1e-4, atol=1e-5, msg=k)


def test_unknown_backend_is_one_clear_error():
    with pytest.raises(ConfigError, match="backend='jax' is not one of 'auto', 'autograd', 'compile', 'fused'"):
        iql.IQLConfig(backend="jax")
