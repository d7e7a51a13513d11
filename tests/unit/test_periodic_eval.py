"""Evaluation during training (``eval_every``): logged on schedule, the best policy kept and reloadable."""

from __future__ import annotations

import pytest
import torch

from rlworks import algos
from rlworks.config import ConfigError
from rlworks.core.evaluation import PeriodicEvaluator


class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict]] = []

    def log(self, step: int, metrics: dict) -> None:
        self.rows.append((step, dict(metrics)))

    def evals(self) -> list[tuple[int, float]]:
        return [(s, m["eval/mean_return"]) for s, m in self.rows if "eval/mean_return" in m]


@pytest.mark.parametrize("algo,steps,every", [("ppo", 4096, 1024), ("dqn", 3072, 1024)])
def test_evaluations_on_schedule_and_the_best_policy_is_the_one_saved(tmp_path, algo, steps, every):
    torch.set_num_threads(1)
    rec = Recorder()
    algos.train(algo, "CartPole-v1", total_steps=steps, seed=0, eval_every=every, eval_episodes=3,
                best_dir=tmp_path / "best", logger=rec)
    evals = rec.evals()
    assert [s for s, _ in evals] == list(range(every, steps + 1, every))
    best = algos.load(tmp_path / "best")
    top = max(r for _, r in evals)
    assert best.meta["eval_mean_return"] == top
    assert best.meta["eval_step"] == next(s for s, r in evals if r == top)  # the first step reaching it
    # the saved weights are the evaluated ones: the same episodes give the same mean, exactly
    assert best.evaluate(3, seed=1_000_000).mean_return == top
    assert len(list((tmp_path / "best").glob("step-*"))) == 1  # the previous best was replaced


def test_user_callback_still_runs_and_can_stop_the_run():
    seen = []

    def stop_after_two(session) -> bool:
        seen.append(session.global_step)
        return len(seen) >= 2

    rec = Recorder()
    agent = algos.train("ppo", "CartPole-v1", total_steps=8192, seed=0, n_envs=4, n_steps=128, eval_every=512,
                        eval_episodes=1, callback=stop_after_two, logger=rec)
    assert agent.meta["global_step"] == 1024 and seen == [512, 1024]
    assert [s for s, _ in rec.evals()] == [512, 1024]


def test_bad_evaluation_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="eval_episodes"):
        algos.train("ppo", "CartPole-v1", total_steps=256, eval_every=0, eval_episodes=5)  # 0: off, the preset's too
    with pytest.raises(ConfigError, match="eval_every=0|eval_every"):
        PeriodicEvaluator(0)
    with pytest.raises(ConfigError, match="eval_episodes=0"):
        PeriodicEvaluator(100, 0)


def test_resumed_run_evaluates_at_the_next_multiple_and_keeps_its_best(tmp_path):
    torch.set_num_threads(1)
    kw = dict(total_steps=4096, seed=0, n_envs=4, n_steps=128, eval_every=1024, eval_episodes=2,
              best_dir=tmp_path / "best", checkpoint_dir=tmp_path / "ck", checkpoint_every=2048)
    algos.train("ppo", "CartPole-v1", stop_at=2048, **kw)
    before = algos.load(tmp_path / "best").meta["eval_mean_return"]
    rec = Recorder()
    algos.train("ppo", "CartPole-v1", resume_from=tmp_path / "ck" / "step-2048", logger=rec, **kw)
    assert [s for s, _ in rec.evals()] == [3072, 4096]
    assert algos.load(tmp_path / "best").meta["eval_mean_return"] == max([before] + [r for _, r in rec.evals()])
