"""MiniGrid (issue 16): ids register on first need, the minigrid wrapper (core/minigrid.py) applies itself to
``MiniGrid-*`` ids and encodes the view, direction and mission exactly; PPO trains, saves, loads, evaluates
and resumes through the API and the CLI; the presets resolve; a missing minigrid is one clear line."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("minigrid")  # the envs extra; `make test` installs it

import rlworks  # noqa: E402
from rlworks import algos  # noqa: E402
from rlworks.cli import main  # noqa: E402
from rlworks.config import ConfigError  # noqa: E402
from rlworks.core.envs import env_source  # noqa: E402
from rlworks.core.minigrid import CELL  # noqa: E402
from rlworks.core.vec import make_vec_env, space_spec  # noqa: E402

DOORKEY = "MiniGrid-DoorKey-5x5-v0"
SMALL = dict(n_envs=2, n_steps=64, batch_size=64, n_epochs=1, hidden=(16, 16))

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _raw(env_id: str, seed: int) -> tuple[dict, gym.Env]:
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    return obs, env


def _decode(vec: np.ndarray, h: int = 7, w: int = 7) -> np.ndarray:
    """The (H, W, 3) index image back from the one-hot cells at the front of ``vec``."""
    cells = vec[: h * w * sum(CELL)].reshape(h * w, sum(CELL))
    assert np.all(cells.sum(1) == 3)  # exactly one object, one colour, one state per cell
    starts = np.cumsum((0, *CELL))
    return np.stack([cells[:, a:b].argmax(1) for a, b in zip(starts[:-1], starts[1:])], 1).reshape(h, w, 3)


def test_minigrid_ids_get_the_wrapper_and_encode_view_and_direction_exactly():
    source = env_source(DOORKEY)
    assert source.record()["wrappers"] == ["minigrid"] and source.record()["rebuildable"]
    env = source.make()
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, (7 * 7 * 21 + 4,), np.float32)
    raw_obs, raw = _raw(DOORKEY, seed=3)
    obs, _ = env.reset(seed=3)
    for action in [0, 0, 2, 1, 2, 2]:  # turn, turn, forward, ...: the view and the direction change
        np.testing.assert_array_equal(_decode(obs), raw_obs["image"])
        assert obs.dtype == np.float32 and obs[-4:].argmax() == raw_obs["direction"] and obs[-4:].sum() == 1
        obs, *_ = env.step(action)
        raw_obs, *_ = raw.step(action)
    # the vector envs take it like any Box env
    for kind in ("lean", "sync"):
        venv = make_vec_env(DOORKEY, 2, [0, 1], kind=kind)
        first = venv.reset()
        assert first.shape == (2, 1033) and not np.array_equal(first[0], first[1])  # two seeds, two layouts
        assert venv.step(np.array([2, 2]))[0].shape == (2, 1033)
        venv.close()
    # asking for it by name does not apply it twice; the image form replaces it
    assert [n for n, _ in env_source(DOORKEY, wrappers=["minigrid"]).wrappers] == ["minigrid"]
    assert [n for n, _ in env_source(DOORKEY, wrappers=["minigrid-image", "ClipReward"]).wrappers] == [
        "minigrid-image", "ClipReward"]
    # a factory is played as given: no wrapper of its own, and a clear line where its Dict cannot be flattened
    with pytest.raises(ConfigError, match=r"'mission': MissionSpace.*wrappers=\['minigrid'\]"):
        env_source(lambda: gym.make(DOORKEY)).make()
    factory = env_source(lambda: gym.make(DOORKEY), wrappers=["minigrid"])
    assert factory.make().reset(seed=0)[0].shape == (1033,)


def test_the_image_form_is_a_channels_first_one_hot_view():
    env = env_source(DOORKEY, wrappers=["minigrid-image"]).make()
    obs, _ = env.reset(seed=5)
    raw_obs, _ = _raw(DOORKEY, seed=5)
    assert obs.shape == (21, 7, 7) and obs.dtype == np.float32
    np.testing.assert_array_equal(_decode(obs.transpose(1, 2, 0).ravel()), raw_obs["image"])
    spec = space_spec(env.observation_space, env.action_space)
    assert spec["layout"] == "chw" and spec["obs_dtype"] == "float32"  # floats: never scaled as pixels


def test_a_varying_mission_is_encoded_per_placeholder_and_free_text_is_refused():
    env = env_source("MiniGrid-GoToDoor-5x5-v0").make()  # "go to the {colour} door"
    colours = gym.make("MiniGrid-GoToDoor-5x5-v0").unwrapped.observation_space["mission"].ordered_placeholders[0]
    seen = set()
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        raw_obs, _ = _raw("MiniGrid-GoToDoor-5x5-v0", seed)
        assert obs.shape == (1033 + 6,) and obs[-6:].sum() == 1
        assert colours[obs[-6:].argmax()] in raw_obs["mission"]
        seen.add(int(obs[-6:].argmax()))
    assert len(seen) > 1  # the mission did vary, and its one-hot with it
    with pytest.raises(ConfigError, match="free-text missions.*FlatObsWrapper"):
        env_source("BabyAI-GoToRedBall-v0", wrappers=["minigrid"]).make()
    with pytest.raises(ConfigError, match="needs a MiniGrid env's Dict observation"):
        env_source("CartPole-v1", wrappers=["minigrid"]).make()


def test_ppo_trains_saves_loads_evaluates_and_resumes_on_doorkey(tmp_path):
    agent = rlworks.train("ppo", DOORKEY, total_steps=256, seed=0, checkpoint_dir=tmp_path / "ck", **SMALL)
    assert agent.net["features"] == "mlp" and agent.spec["obs_dim"] == 1033
    assert agent.config.ent_coef == 0.01 and agent.config.learning_rate == 2.5e-4  # the env's preset
    agent.save(tmp_path / "agent")
    loaded = rlworks.load(tmp_path / "agent")
    assert loaded.env_record["wrappers"] == ["minigrid"] and loaded.env_record["id"] == DOORKEY
    obs, _ = env_source(DOORKEY).make().reset(seed=1)
    assert loaded.act(obs) == agent.act(obs)
    result = loaded.evaluate(2, seed=0)
    assert all(0 < n <= 250 for n in result.lengths)  # MiniGrid's own limit: 10 · 5² steps
    assert result.returns == agent.evaluate(2, seed=0).returns
    resumed = rlworks.train("ppo", DOORKEY, total_steps=384, seed=0, resume_from=tmp_path / "ck", **SMALL)
    assert resumed.meta["global_step"] == 384


def test_the_cli_trains_evaluates_and_resumes_a_minigrid_run(tmp_path, capsys):
    run = tmp_path / "run"
    small = ["--n-envs", "2", "--n-steps", "64", "--n-epochs", "1", "--hidden", "16", "16"]
    assert main(["train", "ppo", "--env", DOORKEY, "--total-steps", "128", "--run-dir", str(run), "--quiet",
                 *small]) == 0
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["preset"] == DOORKEY and recorded["config"]["ent_coef"] == 0.01
    assert recorded["env"]["wrappers"] == ["minigrid"] and recorded["env"]["rebuildable"]
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert main(["train", "--resume", str(run), "--total-steps", "256", "--quiet"]) == 0
    latest = (run / "checkpoints" / "latest").read_text().strip()
    assert latest == "step-256"
    capsys.readouterr()


def test_the_presets_resolve_for_registered_ids():
    table = algos.presets("ppo")
    ids = ["MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-8x8-v0", "MiniGrid-MultiRoom-N2-S4-v0"]
    for env_id in ids:
        config, name = algos.preset_config("ppo", env_id, None)
        assert name == env_id and table[env_id]["env"] == env_id and env_id in gym.registry
        assert config.n_envs == 8 and config.learning_rate == 2.5e-4
    assert algos.preset_config("ppo", DOORKEY, None)[0].ent_coef == 0.01


def test_a_missing_minigrid_is_one_clear_line(monkeypatch, capsys):
    for env_id in [k for k in gym.registry if k.startswith(("MiniGrid-", "BabyAI-"))]:
        monkeypatch.delitem(gym.registry, env_id)
    monkeypatch.setitem(__import__("sys").modules, "minigrid", None)  # `import minigrid` raises ImportError
    with pytest.raises(ConfigError, match=r"'MiniGrid-DoorKey-5x5-v0' is a MiniGrid id and minigrid is not "
                                          r"installed: pip install 'rlworks\[envs\]'"):
        rlworks.train("ppo", DOORKEY, total_steps=64, seed=0)
    assert main(["train", "ppo", "--env", "minigrid-doorkey-5x5-v0", "--total-steps", "64", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a MiniGrid id and minigrid is not installed" in err and "\n" not in err and "Traceback" not in err
