"""Same seed, same Q-table, bit for bit (in-process and across processes); bad inputs to the
tabular Python API fail with one clear ConfigError."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import pytest

import rlworks  # noqa: F401
from rlworks.config import ConfigError
from rlworks.envs import GridWorld
from rlworks.tabular import dyna_q, expected_sarsa, q_learning, sarsa, value_iteration

ALGOS = {"q-learning": q_learning, "sarsa": sarsa, "expected-sarsa": expected_sarsa, "dyna-q": dyna_q}


def run(algo: str, seed: int, path: str = "auto"):
    env = gym.make("rlworks/GridWorld-v0", slip=0.2, step_reward=-0.01)
    return ALGOS[algo](env, episodes=300, alpha=0.2, gamma=0.95, epsilon=0.2, seed=seed, path=path)


@pytest.mark.parametrize("algo", list(ALGOS))
@pytest.mark.parametrize("path", ["compiled", "generic"])
def test_same_seed_same_q_in_process(algo, path):
    a, b = run(algo, 42, path), run(algo, 42, path)
    assert a.q.tobytes() == b.q.tobytes()
    assert a.episode_returns.tobytes() == b.episode_returns.tobytes()
    assert a.episode_lengths.tobytes() == b.episode_lengths.tobytes()
    assert a.steps == b.steps


@pytest.mark.parametrize("algo", list(ALGOS))
def test_different_seeds_differ(algo):
    assert run(algo, 1).q.tobytes() != run(algo, 2).q.tobytes()


CHILD = textwrap.dedent(
    """
    import hashlib, sys
    import gymnasium as gym
    import rlworks
    from rlworks.tabular import dyna_q, q_learning, sarsa
    out = []
    env = gym.make("rlworks/GridWorld-v0", slip=0.2, step_reward=-0.01)
    for fn in (q_learning, sarsa, dyna_q):
        r = fn(env, episodes=300, alpha=0.2, gamma=0.95, epsilon=0.2, seed=42)
        out.append(hashlib.sha256(r.q.tobytes()).hexdigest())
    r = q_learning(gym.make("FrozenLake-v1"), episodes=500, alpha=0.1, gamma=0.95, epsilon=0.2, seed=7)
    out.append(hashlib.sha256(r.q.tobytes()).hexdigest())
    print(" ".join(out))
    """
)


def test_same_seed_same_q_across_processes():
    env = dict(os.environ, PYTHONHASHSEED="random")
    digests = [
        subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, env=env, timeout=120)
        .stdout.split()
        for _ in range(2)
    ]
    assert len(digests[0]) == 4
    assert digests[0] == digests[1]
    # and they match this process
    here = hashlib.sha256(run("q-learning", 42).q.tobytes()).hexdigest()
    assert digests[0][0] == here


# ---------------------------------------------------------------------------------- bad inputs


def fl():
    return gym.make("FrozenLake-v1", is_slippery=False)


@pytest.mark.parametrize(
    "kwargs, needles",
    [
        ({"alpha": 0.0}, ["alpha=0.0", "(0.0, 1.0]"]),
        ({"alpha": 1.5}, ["alpha=1.5", "(0.0, 1.0]"]),
        ({"alpha": -0.1}, ["alpha"]),
        ({"gamma": 1.01}, ["gamma=1.01", "[0.0, 1.0]"]),
        ({"gamma": -0.5}, ["gamma"]),
        ({"epsilon": 1.2}, ["epsilon=1.2", "[0.0, 1.0]"]),
        ({"epsilon": -0.01}, ["epsilon"]),
        ({"alpha": float("nan")}, ["alpha", "not a number"]),
        ({"episodes": -1}, ["episodes=-1"]),
        ({"episodes": 10.5}, ["episodes=10.5", "whole number"]),
        ({"episodes": "100"}, ["episodes", "whole number"]),
        ({"tie_break": "last"}, ["tie_break", "'random'", "'first'"]),
        ({"path": "gpu"}, ["path", "'compiled'"]),
    ],
)
@pytest.mark.parametrize("algo", ["q-learning", "dyna-q"])
def test_bad_hyperparameters(algo, kwargs, needles):
    args = dict(episodes=10, alpha=0.1, gamma=0.9, epsilon=0.1, seed=0)
    args.update(kwargs)
    with pytest.raises(ConfigError) as info:
        ALGOS[algo](fl(), **args)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_zero_episodes_is_allowed():
    res = q_learning(fl(), episodes=0, seed=0)
    assert res.steps == 0 and len(res.episode_returns) == 0 and (res.q == 0).all()


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
@pytest.mark.parametrize("algo", list(ALGOS))
def test_non_tabular_env_rejected(algo, env_id):
    with pytest.raises(ConfigError) as info:
        ALGOS[algo](env_id, episodes=5, seed=0)
    message = str(info.value)
    assert "tabular" in message and "Discrete" in message and env_id in message
    assert "Box" in message  # names the space it got


def test_non_tabular_env_instance_rejected():
    with pytest.raises(ConfigError, match="Discrete observation and action spaces"):
        q_learning(gym.make("CartPole-v1"), episodes=5)


@pytest.mark.parametrize(
    "env_id, suggestion",
    [("FrozenLake-v2", "FrozenLake-v1"), ("rlworks/GridWorld-v1", "rlworks/GridWorld-v0"),
     ("CliffWalkin-v1", "CliffWalking-v1")],
)
def test_unknown_env_did_you_mean(env_id, suggestion):
    with pytest.raises(ConfigError) as info:
        q_learning(env_id, episodes=5)
    message = str(info.value)
    assert f"unknown env {env_id!r}" in message
    assert f"did you mean {suggestion!r}" in message


def test_bad_planning_steps():
    with pytest.raises(ConfigError, match="planning_steps"):
        dyna_q(GridWorld(), episodes=5, planning_steps=-1)


def test_bad_env_type():
    with pytest.raises(ConfigError, match="env must be"):
        q_learning(42, episodes=5)


def test_planning_rejects_gamma_outside_range():
    with pytest.raises(ConfigError, match="gamma"):
        value_iteration(GridWorld(), 2.0)


def test_plain_python_fallback_without_numba_gives_the_same_q():
    """Where numba is missing the kernel runs as plain Python: same stream, same Q-table."""
    code = "import sys; sys.modules['numba'] = None\n" + CHILD.replace(
        "import rlworks\n", "import rlworks\nfrom rlworks.tabular import kernels\nassert not kernels.HAVE_NUMBA\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    fallback = out.stdout.split()
    assert len(fallback) == 4
    compiled = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=120)
    assert fallback == compiled.stdout.split()
