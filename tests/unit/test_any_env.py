"""Any env (issue 15): ``rlworks.train`` takes a registered id, a ``gymnasium.Env``, an env factory or a
``VectorEnv``, plus ``env_kwargs`` and ``wrappers``; evaluation, videos, checkpoints, resume and save/load
work for each form; vector envs' autoreset modes never link two episodes; bad input is one clear line."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control import CartPoleEnv

import rlworks
from rlworks.config import ConfigError
from rlworks.core.checkpoint import read_state
from rlworks.core.envs import EnvSource, env_source, parse_env_kwargs
from rlworks.core.vec import GymVecEnv, LeanVecEnv, make_env

SAME_STEP, NEXT_STEP, DISABLED = (gym.vector.AutoresetMode.SAME_STEP, gym.vector.AutoresetMode.NEXT_STEP,
                                  gym.vector.AutoresetMode.DISABLED)
SMALL = {"ppo": dict(n_envs=2, n_steps=32, batch_size=32, n_epochs=2, hidden=(16, 16)),
         "dqn": dict(n_envs=2, learning_starts=64, train_freq=4, gradient_steps=1, batch_size=16, buffer_size=1000,
                     hidden=(16, 16))}
STEPS = {"ppo": 256, "dqn": 200}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _plain_cartpole(render_mode=None):
    """An env gymnasium has no spec for (not made by gym.make): it cannot be copied or rebuilt."""
    return gym.wrappers.TimeLimit(CartPoleEnv(render_mode=render_mode), 50)


def _sync_vec(n, mode=SAME_STEP, **kwargs):
    # CartPole has its own vector entry point, which takes no autoreset mode: ask for the sync one
    return gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode},
                        **kwargs)


# each form as a user would pass it, made fresh per call (an instance is used up by its training run)
FORMS = {
    "id": lambda: "CartPole-v1",
    "instance": lambda: gym.make("CartPole-v1"),
    "factory": lambda: (lambda: gym.make("CartPole-v1")),
    "factory-without-spec": lambda: _plain_cartpole,
    "vector": lambda: _sync_vec(2),
}
REBUILDABLE = {"id": True, "instance": True, "factory": True, "factory-without-spec": False, "vector": True}


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
@pytest.mark.parametrize("form", list(FORMS))
def test_each_form_trains_evaluates_checkpoints_resumes_saves_and_loads(tmp_path, algo, form):
    steps = STEPS[algo]
    agent = rlworks.train(algo, FORMS[form](), total_steps=steps, seed=0, checkpoint_dir=tmp_path / "ck",
                          checkpoint_every=steps // 2, **SMALL[algo])
    assert agent.meta["global_step"] >= steps
    res = agent.evaluate(2, seed=5)
    assert len(res.returns) == 2 and all(r > 0 for r in res.returns)
    video = tmp_path / "episode.gif"
    if form == "factory-without-spec":  # a factory cannot be asked for frames: it must render them itself
        with pytest.raises(ConfigError, match="render_mode='rgb_array'"):
            agent.evaluate(1, seed=5, video=video)
        agent.evaluate(1, seed=5, env=lambda: _plain_cartpole("rgb_array"), video=video)
    else:
        agent.evaluate(1, seed=5, video=video)
    assert video.stat().st_size > 0

    agent.save(tmp_path / "agent")
    state = json.loads(next((tmp_path / "agent").glob("step-*/state.json")).read_text())
    assert state["agent"]["env"]["rebuildable"] is REBUILDABLE[form]
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pickle"))
    for path in (tmp_path / "agent", tmp_path / "ck"):  # a saved agent and a training checkpoint
        loaded = rlworks.load(path)
        obs = np.array([0.01, -0.02, 0.03, 0.01])
        assert loaded.act(obs) == agent.act(obs)
        if REBUILDABLE[form]:
            assert loaded.evaluate(2, seed=5).returns == res.returns
        else:
            with pytest.raises(ConfigError, match="pass env= to evaluate"):
                loaded.evaluate(2, seed=5)
            assert loaded.evaluate(2, seed=5, env=_plain_cartpole).returns == res.returns

    # the library resumes a run given the same env again
    more = rlworks.train(algo, FORMS[form](), total_steps=2 * steps, seed=0, resume_from=tmp_path / "ck",
                         **SMALL[algo])
    assert more.meta["global_step"] >= 2 * steps
    assert read_state(tmp_path / "ck")["sampler"]["global_step"] >= steps


def test_instance_run_resumes_exactly(tmp_path):
    # CartPole's state is plain data, so an instance's run resumes bit for bit as an id's does
    kw = dict(seed=1, **SMALL["ppo"])
    whole = rlworks.train("ppo", gym.make("CartPole-v1"), total_steps=256, **kw)
    rlworks.train("ppo", gym.make("CartPole-v1"), total_steps=256, checkpoint_dir=tmp_path, checkpoint_every=128,
                  stop_at=128, **kw)
    resumed = rlworks.train("ppo", gym.make("CartPole-v1"), total_steps=256, resume_from=tmp_path, **kw)
    for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_instance_and_factory_use_the_env_id_preset():
    agent = rlworks.train("ppo", gym.make("CartPole-v1"), total_steps=256, seed=0, n_epochs=1)
    assert agent.config.gae_lambda == 0.8  # presets/ppo.toml's CartPole-v1 table, not the default 0.95
    assert agent.env_id == "CartPole-v1"
    agent = rlworks.train("ppo", lambda: gym.make("CartPole-v1"), total_steps=256, seed=0, n_epochs=1)
    assert agent.config.gae_lambda == 0.8


def test_vector_env_count_wins_over_n_envs_and_its_env_kwargs_are_kept(tmp_path):
    venv = _sync_vec(3, max_episode_steps=7)
    agent = rlworks.train("ppo", venv, total_steps=192, seed=0, **SMALL["ppo"])  # SMALL says n_envs=2
    assert agent.config.n_envs == 3
    assert max(agent.evaluate(3, seed=0).lengths) <= 7  # one env made alone from the vector env's spec
    agent.save(tmp_path)
    assert max(rlworks.load(tmp_path).evaluate(3, seed=0).lengths) <= 7


def test_env_kwargs_and_wrappers_apply_to_every_env_and_are_rebuilt(tmp_path):
    agent = rlworks.train("ppo", "CartPole-v1", total_steps=256, seed=0, env_kwargs={"max_episode_steps": 7},
                          wrappers=["TimeAwareObservation"], **SMALL["ppo"])
    assert agent.spec["obs_dim"] == 5  # TimeAwareObservation appends the time step
    assert max(agent.evaluate(3, seed=0).lengths) <= 7
    agent.save(tmp_path)
    loaded = rlworks.load(tmp_path)
    assert loaded.env_kwargs == {"max_episode_steps": 7}
    assert loaded.evaluate(3, seed=0).returns == agent.evaluate(3, seed=0).returns

    # a callable wrapper works in memory; a record cannot rebuild it, so a loaded agent asks for the env
    agent = rlworks.train("ppo", "CartPole-v1", total_steps=256, seed=0,
                          wrappers=[lambda e: gym.wrappers.TimeLimit(e, 5)], **SMALL["ppo"])
    assert max(agent.evaluate(2, seed=0).lengths) <= 5
    agent.save(tmp_path / "b")
    with pytest.raises(ConfigError, match="pass env="):
        rlworks.load(tmp_path / "b").evaluate(1)


def test_sac_trains_on_an_instance_and_saves(tmp_path):
    agent = rlworks.train("sac", gym.make("Pendulum-v1"), total_steps=150, seed=0, learning_starts=100, batch_size=16,
                          buffer_size=500, hidden=(16, 16))
    agent.save(tmp_path)
    assert rlworks.load(tmp_path).evaluate(1, seed=0).returns == agent.evaluate(1, seed=0).returns


# ---------------------------------------------------------------------------------------------
# vector envs: autoreset modes
# ---------------------------------------------------------------------------------------------


def _stream(venv, steps=40):
    obs = [venv.reset()]
    out = []
    rng = np.random.default_rng(0)
    for _ in range(steps):
        o, r, te, tr, final, eps = venv.step(rng.integers(0, 2, size=venv.num_envs))
        out.append((o.copy(), r.copy(), te.copy(), tr.copy(), final.copy(), eps))
    return obs, out


@pytest.mark.parametrize("mode", [SAME_STEP, DISABLED])
def test_user_vector_env_matches_the_lean_vector_env(mode):
    # max_episode_steps=6 truncates often: every reset and final observation must line up with the reference
    user = _sync_vec(2, mode, max_episode_steps=6)
    adopted = GymVecEnv.adopt(user, [3, 4])
    ref = LeanVecEnv([lambda: make_env("CartPole-v1", {"max_episode_steps": 6})] * 2, [3, 4])
    (a0, a), (b0, b) = _stream(adopted), _stream(ref)
    np.testing.assert_allclose(a0[0], b0[0])
    assert any(x[3].any() for x in b)  # truncations happened
    for x, y in zip(a, b):
        for u, v in zip(x[:5], y[:5]):
            np.testing.assert_allclose(u, v)
        assert x[5] == y[5]


def test_next_step_vector_env_is_refused_with_the_fix():
    venv = gym.make_vec("CartPole-v1", num_envs=2)  # CartPole's own vector env, NEXT_STEP like gymnasium's default
    with pytest.raises(ConfigError, match="autoreset_mode.*SAME_STEP"):
        rlworks.train("ppo", venv, total_steps=64, **SMALL["ppo"])


def test_vector_env_with_dict_observations_is_flattened(dict_obs_env):
    gym.register("rlworks-test/AnyEnvDict-v0", entry_point=dict_obs_env, max_episode_steps=5)
    venv = gym.make_vec("rlworks-test/AnyEnvDict-v0", num_envs=2, vector_kwargs={"autoreset_mode": SAME_STEP})
    adopted = GymVecEnv.adopt(venv, [0, 1])
    assert adopted.reset().shape == (2, 5)
    _, out = _stream(adopted, 6)
    truncated = out[4]  # step 5 truncates both envs: their final observations come flattened
    assert truncated[3].all() and truncated[4].shape == (2, 5) and np.abs(truncated[4]).sum(1).min() > 0


# ---------------------------------------------------------------------------------------------
# bad input, records, kwargs parsing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env,kw,match", [
    (42, {}, r"env=42 \(int\) is not an env; allowed: a registered env id"),
    ("CartPole-v1", {"wrappers": ["ClipActoin"]}, "did you mean 'ClipAction'"),
    ("CartPole-v1", {"wrappers": [3]}, "neither a gymnasium.wrappers class name nor a callable"),
    ("CartPole-v1", {"env_kwargs": {"gravityy": 1.0}}, "env_kwargs .* are not accepted"),
    ("CartPole-v1", {"env_kwargs": "size=3"}, "must be a dict"),
    (lambda: 5, {}, "returned int, not a gymnasium.Env"),
])
def test_bad_env_input_is_one_clear_error(env, kw, match):
    with pytest.raises(ConfigError, match=match):
        rlworks.train("ppo", env, total_steps=64, seed=0, **kw, **SMALL["ppo"])


def test_instance_without_spec_needs_a_factory_for_more_envs_or_evaluation():
    with pytest.raises(ConfigError, match="n_envs=2 .* has no spec .* factory"):
        rlworks.train("ppo", _plain_cartpole(), total_steps=64, **SMALL["ppo"])
    with pytest.raises(ConfigError, match="eval_every needs a second env"):
        rlworks.train("ppo", _plain_cartpole(), total_steps=64, eval_every=32, **{**SMALL["ppo"], "n_envs": 1})
    with pytest.raises(ConfigError, match="env_kwargs apply to a registered env id"):
        rlworks.train("ppo", gym.make("CartPole-v1"), env_kwargs={"max_episode_steps": 3}, total_steps=64)
    agent = rlworks.train("ppo", _plain_cartpole(), total_steps=64, **{**SMALL["ppo"], "n_envs": 1})
    with pytest.raises(ConfigError, match="pass env= to evaluate"):
        agent.evaluate(1)
    assert agent.evaluate(1, env=_plain_cartpole()).lengths[0] <= 50


def test_record_round_trip_and_old_checkpoints():
    src = env_source("CartPole-v1", {"max_episode_steps": 9}, ["TimeAwareObservation"])
    rec = json.loads(json.dumps(src.record()))
    again = EnvSource.from_record(rec)
    assert (again.env_id, again.kwargs, [n for n, _ in again.wrappers]) == ("CartPole-v1", {"max_episode_steps": 9},
                                                                             ["TimeAwareObservation"])
    inst = env_source(gym.make("CartPole-v1", max_episode_steps=9))
    rebuilt = EnvSource.from_record(json.loads(json.dumps(inst.record()))).make()
    assert rebuilt.spec.max_episode_steps == 9 and rebuilt.observation_space.shape == (4,)
    assert EnvSource.from_record(env_source(_plain_cartpole).record()) is None


def test_parse_env_kwargs():
    got = parse_env_kwargs(["size=8", "slip=0.1", "map_name=4x4", 'layout="S.G"', "is_slippery=false",
                            "shape=[2, 3]", "name='x y'", "opt=null"])
    assert got == {"size": 8, "slip": 0.1, "map_name": "4x4", "layout": "S.G", "is_slippery": False,
                   "shape": [2, 3], "name": "x y", "opt": None}
    with pytest.raises(ConfigError, match="is not key=value"):
        parse_env_kwargs(["size"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_env_kwargs(["a=1", "a=2"])
