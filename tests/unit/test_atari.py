"""The atari wrapper (core/atari.py): frames, life-loss ends and reward clipping for the learner only, the
true game score for evaluation; PPO and DQN run on Breakout, save, load and evaluate."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ale_py")

from rlworks import algos  # noqa: E402
from rlworks.core.atari import AtariPreprocessing, resize_area  # noqa: E402
from rlworks.core.envs import env_source  # noqa: E402

BREAKOUT = "BreakoutNoFrameskip-v4"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def test_noframeskip_ids_get_the_wrapper_and_its_frames():
    source = env_source(BREAKOUT)
    assert source.record()["wrappers"] == ["atari"]
    env = source.make()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.shape == (4, 84, 84)
    assert not obs[:3].any() and obs[3].any()  # zeros before the episode's first frame (SB3's VecFrameStack)
    for _ in range(3):
        obs, *_ = env.step(0)
    assert all(frame.any() for frame in obs)
    env.close()
    # asking for it as well does not apply it twice; a factory is played as given
    assert [n for n, _ in env_source(BREAKOUT, wrappers=["atari"]).wrappers] == ["atari"]
    assert env_source(lambda: AtariPreprocessing(__import__("gymnasium").make(BREAKOUT))).wrappers == ()


def test_area_resize_averages_blocks():
    img = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    np.testing.assert_array_equal(resize_area(img, 2, 2), [[25, 45], [105, 125]])
    assert resize_area(np.full((210, 160), 77, np.uint8), 84, 84).min() == 77


def _stub_reward(env, value: float) -> None:
    """Make every underlying frame pay ``value`` (the ALE still runs the frames)."""
    step = env.env.step

    def paying(action):
        obs, _, term, trunc, info = step(action)
        return obs, value, term, trunc, info

    env.env.step = paying


def test_rewards_are_clipped_for_training_and_true_for_evaluation():
    source = env_source(BREAKOUT)
    train_env, eval_env = source.make(), source.for_evaluation().make()
    assert train_env.training and not eval_env.training
    for env in (train_env, eval_env):
        env.reset(seed=0)
        _stub_reward(env, 7.0)  # a top-row brick
    assert train_env.step(0)[1] == 1.0
    assert eval_env.step(0)[1] == 28.0  # four frames of 7
    train_env.close()
    eval_env.close()


def test_a_lost_life_ends_the_learners_episode_not_the_game():
    env = env_source(BREAKOUT).make()
    env.reset(seed=0)
    ale = env.unwrapped.ale
    lives = ale.lives()
    for _ in range(2000):
        _, _, term, trunc, _ = env.step(0)  # never moving: the ball is lost
        if term or trunc:
            break
    assert term and ale.lives() == lives - 1
    frame = env.unwrapped.ale.getEpisodeFrameNumber()
    env.reset()
    assert ale.lives() == lives - 1 and ale.getEpisodeFrameNumber() > frame  # the same game goes on
    env.close()
    # evaluation plays all lives of one game
    env = env_source(BREAKOUT).for_evaluation().make()
    env.reset(seed=0)
    for _ in range(10_000):
        _, _, term, trunc, _ = env.step(0)
        if term or trunc:
            break
    assert term and env.unwrapped.ale.lives() == 0
    env.close()


def test_ppo_and_dqn_run_on_breakout_and_save_load_evaluate(tmp_path):
    ppo = algos.train("ppo", BREAKOUT, total_steps=256, seed=0, n_envs=2, n_steps=64, batch_size=64, n_epochs=1)
    assert ppo.config.shared_trunk and ppo.net["features"] == "cnn"  # the preset's network
    assert ppo.meta["backend"] == "autograd"
    ppo.save(tmp_path / "ppo")
    loaded = algos.load(tmp_path / "ppo")
    assert loaded.env_record["wrappers"] == ["atari"]
    result = loaded.evaluate(1, seed=0)
    assert result.lengths[0] > 0 and result.mean_return >= 0
    dqn = algos.train("dqn", BREAKOUT, total_steps=300, seed=0, learning_starts=100, buffer_size=1000)
    assert dqn.net["features"] == "cnn"
    dqn.save(tmp_path / "dqn")
    obs, _ = env_source(BREAKOUT).make().reset(seed=0)
    assert algos.load(tmp_path / "dqn").act(obs) == dqn.act(obs)


def test_an_atari_run_resumes_from_its_checkpoint(tmp_path):
    small = dict(seed=0, n_envs=2, n_steps=32, batch_size=64, n_epochs=1)
    algos.train("ppo", BREAKOUT, total_steps=128, checkpoint_dir=tmp_path / "ppo", **small)
    state = (tmp_path / "ppo" / "step-128" / "state.json").read_text()
    assert len(state) < 100_000  # frames are not snapshotted: ALE's state is not plain data, so none is
    agent = algos.train("ppo", BREAKOUT, total_steps=192, resume_from=tmp_path / "ppo", **small)
    assert agent.meta["global_step"] == 192
    dqn = dict(seed=0, learning_starts=32, buffer_size=200, batch_size=8)
    algos.train("dqn", BREAKOUT, total_steps=64, checkpoint_dir=tmp_path / "dqn", **dqn)
    agent = algos.train("dqn", BREAKOUT, total_steps=96, resume_from=tmp_path / "dqn", **dqn)
    assert agent.meta["global_step"] == 96


@pytest.mark.parametrize("kind", ["lean", "sync"])
def test_the_training_log_counts_games_with_their_true_score_not_lives(kind):
    from rlworks.core.vec import make_vec_env

    venv = make_vec_env(BREAKOUT, 1, [0], kind=kind)
    venv.reset()
    ends, steps, logged = 0, 0, []
    while not logged and steps < 20_000:
        _, _, term, trunc, _, episodes = venv.step(np.zeros(1, dtype=np.int64))  # never moving: every life lost
        ends += int(term[0] or trunc[0])
        steps += 1
        logged += episodes
    assert ends == 5 and logged == [(0.0, steps)]  # five learner episodes, one game of all the steps
    venv.close()
