"""``keep="best"|"last"``: which policy ``rlworks.train`` (and a run folder, and the CLI) ends with.

The policy is set by hand from a callback and training never updates it (``learning_starts`` beyond
the run), so every evaluation's score is known: a linear pole-balancing controller (GOOD) between steps
1000 and 2000, the constant action 0 (BAD, ~9 steps) elsewhere. Evaluations run before the user's
callback in the same step, so the evaluation at 2000 sees GOOD and those at 1000 and 3000 see BAD.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import torch

import rlworks
from rlworks import algos
from rlworks.config import ConfigError

KW = dict(total_steps=3000, seed=0, learning_starts=10**6, hidden=[4], eval_every=1000, eval_episodes=3)


def set_policy(q_net: torch.nn.Module, good: bool) -> None:
    """Q(s, 1) - Q(s, 0) = θ + θ̇ (push toward the side the pole falls to) when good; all zeros (argmax 0) else."""
    first, last = q_net.q[0], q_net.q[-1]
    with torch.no_grad():
        for p in q_net.parameters():
            p.zero_()
        if good:
            first.weight[0] = torch.tensor([0.0, 0.0, 1.0, 1.0])
            first.weight[1] = -first.weight[0]
            last.weight[1, 0], last.weight[1, 1] = 1.0, -1.0


def controller(session) -> bool:
    set_policy(session.state.q, 1000 <= session.global_step < 2000)
    return False


class Evals:
    def __init__(self) -> None:
        self.rows: list[tuple[int, float]] = []

    def log(self, step: int, metrics: dict) -> None:
        if "eval/mean_return" in metrics:
            self.rows.append((step, metrics["eval/mean_return"]))


def _scores(rows):
    return dict(rows)


def test_keep_best_returns_the_best_evaluated_policy_and_last_the_final_one():
    torch.set_num_threads(1)
    rec_best, rec_last = Evals(), Evals()
    best = rlworks.train("dqn", "CartPole-v1", keep="best", callback=controller, logger=rec_best, **KW)
    last = rlworks.train("dqn", "CartPole-v1", callback=controller, logger=rec_last, **KW)  # keep="last" default
    scores = _scores(rec_best.rows)
    assert list(scores) == [1000, 2000, 3000] and rec_last.rows == rec_best.rows
    assert scores[2000] > 3 * max(scores[1000], scores[3000])  # the controller is much better than action 0
    # the best: the policy evaluated at 2000, held as it was (later weight changes did not reach it)
    assert best.meta["eval_step"] == 2000 and best.meta["global_step"] == 2000
    assert best.meta["eval_mean_return"] == scores[2000] and best.meta["kept"] == "best"
    assert best.meta["final_step"] == 3000 and "train_seconds" in best.meta
    assert best.evaluate(3, seed=1_000_000).mean_return == scores[2000]
    # the last: the final policy (always action 0)
    assert last.meta["global_step"] == 3000 and "kept" not in last.meta
    assert last.evaluate(3, seed=1_000_000).mean_return == scores[3000]


def test_keep_best_evaluates_the_final_policy_when_the_schedule_does_not_end_on_it():
    torch.set_num_threads(1)
    rec = Evals()

    def good_at_the_end(session) -> bool:
        set_policy(session.state.q, session.global_step >= 2400)
        return False

    agent = rlworks.train("dqn", "CartPole-v1", keep="best", callback=good_at_the_end, logger=rec,
                          **{**KW, "total_steps": 2500})
    assert [s for s, _ in rec.rows] == [1000, 2000, 2500]  # the final policy is a candidate too
    assert agent.meta["eval_step"] == 2500 and agent.meta["global_step"] == 2500


def test_keep_needs_evaluations_and_a_known_value():
    with pytest.raises(ConfigError, match="keep='best' needs eval_every"):
        rlworks.train("dqn", "CartPole-v1", total_steps=100, keep="best", eval_every=0)  # 0: the preset's off too
    with pytest.raises(ConfigError, match="keep='bset' is not allowed.*'best'"):
        rlworks.train("dqn", "CartPole-v1", total_steps=100, keep="bset", eval_every=50)
    with pytest.raises(ConfigError, match="eval_episodes given without eval_every"):
        rlworks.train("dqn", "CartPole-v1", total_steps=100, eval_episodes=3, eval_every=0)


def test_preset_run_defaults_apply_and_yield_to_the_caller(monkeypatch):
    table = {"X": {"env": "CartPole-v1", "total_steps": 10, "eval_every": 500, "eval_episodes": 4, "keep": "best"}}
    monkeypatch.setattr(algos, "presets", lambda algo: table)
    assert algos.evaluation_settings("dqn", "X", {}, None) == ({"eval_every": 500, "eval_episodes": 4}, "best")
    assert algos.evaluation_settings("dqn", "X", {}, "last") == ({"eval_every": 500, "eval_episodes": 4}, "last")
    assert algos.evaluation_settings("dqn", "X", {"eval_every": 0}, None) == ({}, "last")  # turned off
    assert algos.evaluation_settings("dqn", "X", {"eval_every": 100}, None) == ({"eval_every": 100}, "last")
    assert algos.evaluation_settings("dqn", "X", {}, None, copyable=False) == ({}, "last")  # nothing to evaluate on
    assert algos.evaluation_settings("dqn", None, {}, None) == ({}, "last")
    cfg, name = algos.preset_config("dqn", "X", None)  # run defaults are not config fields
    assert name == "X" and not hasattr(cfg, "keep")


def test_run_folder_keeps_best_across_a_resume_and_eval_reads_it(tmp_path):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    kw = {**KW, "checkpoint_every": 1000}
    rlworks.train("dqn", "CartPole-v1", keep="best", callback=controller, run_dir=run, stop_at=2000, **kw)
    meta = json.loads((run / "config.json").read_text())
    assert meta["keep"] == "best" and meta["eval_every"] == 1000
    agent = rlworks.train("dqn", "CartPole-v1", keep="best", callback=controller, run_dir=run, resume_from=run, **kw)
    with open(run / "metrics.csv") as fh:
        evals = [int(r["step"]) for r in csv.DictReader(fh) if r.get("eval/mean_return")]
    assert evals == [1000, 2000, 3000]
    # the best came before the resume: read back from best/, with this run's totals
    assert agent.meta["eval_step"] == 2000 and agent.meta["kept"] == "best" and agent.meta["final_step"] == 3000
    assert agent.evaluate(3, seed=1_000_000).mean_return == agent.meta["eval_mean_return"]
    out = subprocess.run([sys.executable, "-m", "rlworks.cli", "eval", str(run), "--episodes", "3", "--seed",
                          "1000000"], capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "step 2000:" in out.stdout and f"{agent.meta['eval_mean_return']:.2f}" in out.stdout


@pytest.mark.parametrize("args,needle", [
    (["--keep", "bset"], "--keep 'bset' is not one of 'last', 'best'"),
    (["--keep", "best", "--eval-every", "0"], "keep='best' needs eval_every"),
])
def test_cli_keep_is_validated_in_one_line(tmp_path, args, needle):
    out = subprocess.run([sys.executable, "-m", "rlworks.cli", "train", "dqn", "--env", "CartPole-v1",
                          "--total-steps", "100", "--run-dir", str(tmp_path / "r"), *args],
                         capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr and needle in lines[0], out.stderr
    assert not (tmp_path / "r").exists()
