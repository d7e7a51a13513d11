"""Seed sets (``rlworks train ALGO --seeds 0-9 --jobs N``) and ``rlworks compare``: the seed list and its errors, a
two-seed set run two at a time, Ctrl+C passed on to the seeds, compare's table, intervals, PNG, groups and errors."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlworks.cli import main
from rlworks.commands.seeds import forwarded, parse_seeds
from rlworks.core.stats import iqm

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = ["ppo", "--env", "CartPole-v1", "--n-envs", "2", "--n-steps", "64", "--batch-size", "64"]


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlworks.cli", *args], check=False, capture_output=True, text=True,
                          env=ENV, timeout=240, cwd=cwd)


def main_error(capsys, *args: str) -> str:
    code = main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlworks: error: ") and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------------------------------
# the seed list
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,seeds", [
    ("0-9", list(range(10))), ("0,3,5", [0, 3, 5]), ("0-2,7", [0, 1, 2, 7]), ("4", [4]), ("3-3", [3]),
    (" 1 - 2 , 9", [1, 2, 9]),
])
def test_seed_lists(raw, seeds):
    assert parse_seeds(raw) == seeds


@pytest.mark.parametrize("raw,why", [
    ("5-1", "the range 5-1 runs backwards; write 1-5"), ("", "expected seeds such as"), ("a", "expected seeds such as"),
    ("1-", "expected seeds such as"), ("-1", "expected seeds such as"), ("0,,2", "expected seeds such as"),
    ("1.5", "expected seeds such as"), ("0-2,1", "seed 1 is listed twice"), ("0-5000", "more than 1000 seeds"),
])
def test_bad_seed_lists(raw, why):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(why)):
        parse_seeds(raw)


def test_seed_set_command_line_errors_are_one_line(capsys):
    base = ["train", *TINY]
    assert main_error(capsys, *base, "--seeds", "5-1") == \
        "rlworks: error: --seeds '5-1': the range 5-1 runs backwards; write 1-5"
    assert "--seeds and --seed exclude each other" in main_error(capsys, *base, "--seeds", "0-1", "--seed", "3")
    assert "--seeds and --seed exclude each other" in main_error(capsys, *base, "--seed=3", "--seeds=0-1")
    assert "cannot be combined with --resume" in main_error(capsys, *base, "--seeds", "0-1", "--resume", "x")
    assert "--jobs runs a seed set: it needs --seeds" in main_error(capsys, *base, "--jobs", "2")
    assert main_error(capsys, *base, "--seeds", "0-1", "--jobs", "0") == \
        "rlworks: error: --jobs 0 is out of range: allowed [1, inf)"
    assert "--print-config shows one run's config" in main_error(capsys, *base, "--seeds", "0-1", "--print-config")


def test_seed_options_are_not_passed_on():
    argv = ["--env", "X", "--seeds", "0-3", "--jobs=2", "--run-dir", "d", "--total-steps", "5", "--run-dir=e"]
    assert forwarded(argv) == ["--env", "X", "--total-steps", "5"]


def test_the_final_evaluation_is_read_from_a_seeds_summary_line(tmp_path):
    from rlworks.commands.seeds import _final_eval

    log = tmp_path / "seed-0.log"
    log.write_text("ppo CartPole-v1 ━━━ 2048/2000\n"
                   "done: ppo on CartPole-v1: 2048 steps in 1.7 s (4527 training steps/s); evaluation (5 episodes) "
                   "142.2 ± 11.4\nrun directory: runs/x\n")
    assert _final_eval(log) == (142.2, 11.4, 5, False)
    log.write_text("done: dqn on CartPole-v1: 9000 steps in 3.0 s (3000 training steps/s); evaluation (5 episodes) of "
                   "the best policy (step 7000, --keep best) -12.5 ± 0.5\n")
    assert _final_eval(log) == (-12.5, 0.5, 5, True)
    log.write_text("")
    assert _final_eval(log) is None


def test_train_help_lists_the_seed_options(capsys):
    assert main(["train", "ppo", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--seeds LIST" in out and "--jobs N" in out


# ---------------------------------------------------------------------------------------------
# a real seed set, run two at a time
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    out = cli("train", *TINY, "--total-steps", "1024", "--eval-every", "512", "--eval-episodes", "2",
              "--seeds", "0-1", "--jobs", "2", "--run-dir", str(root / "set"))
    return root / "set", out


def test_two_seeds_two_at_a_time_give_two_run_folders(seed_set):
    path, out = seed_set
    assert out.returncode == 0, out.stdout + out.stderr
    for s in (0, 1):
        meta = json.loads((path / f"seed-{s}" / "config.json").read_text())
        assert (meta["algo"], meta["env_id"], meta["seed"]) == ("ppo", "CartPole-v1", s)
        assert (path / f"seed-{s}" / "checkpoints" / "latest").is_file()
        assert re.search(rf"^seed {s}: done in [\d.]+ s, final evaluation [-\d.]+ ± [\d.]+ "
                         rf"\(5 episodes(, of the kept best policy)?\)  {re.escape(str(path / f'seed-{s}'))}$",
                         out.stdout, re.M), out.stdout
    assert "ppo on CartPole-v1: seeds 0-1, 2 at a time" in out.stdout
    assert "2 seeds: 2 finished, 0 failed" in out.stdout
    assert re.search(r"final evaluation over 2 seeds: IQM [-\d.]+ \(95% CI [-\d.]+ to [-\d.]+\)", out.stdout)
    record = json.loads((path / "seed_set.json").read_text())
    assert record["seeds"] == [0, 1] and {r["exit"] for r in record["results"].values()} == {0}
    assert "--seeds" not in record["command"] and "--run-dir" not in record["command"]


def test_a_seed_set_will_not_overwrite_a_run(seed_set, capsys):
    path, _ = seed_set
    line = main_error(capsys, "train", *TINY, "--seeds", "1-2", "--run-dir", str(path))
    assert f"{path / 'seed-1'} already exists" in line and "--resume" in line


def test_resume_refuses_seeds(seed_set, capsys):
    path, _ = seed_set
    assert "--seeds starts a new seed set and cannot be combined with --resume" in \
        main_error(capsys, "train", "--resume", str(path / "seed-0"), "--seeds", "0-1")


def test_a_failed_seed_gives_a_non_zero_exit(tmp_path):
    out = cli("train", *TINY, "--total-steps", "256", "--env-kwargs", "no_such_argument=1", "--seeds", "3",
              "--run-dir", str(tmp_path / "set"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert re.search(r"^seed 3: failed \(exit 2\): rlworks: error: .*no_such_argument", out.stderr, re.M), out.stderr
    assert "1 seed: 0 finished, 1 failed" in out.stdout
    assert not (tmp_path / "set" / "seed-3").exists()  # a run that could not start leaves no folder


def test_ctrl_c_stops_the_running_seeds_with_a_checkpoint(tmp_path):
    path = tmp_path / "set"
    proc = subprocess.Popen([sys.executable, "-m", "rlworks.cli", "train", *TINY, "--total-steps", "1000000",
                             "--checkpoint-every", "256", "--seeds", "0-2", "--jobs", "2", "--run-dir", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.time() + 120
        while not all((path / f"seed-{s}" / "checkpoints" / "latest").exists() for s in (0, 1)):
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "no checkpoints within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # a failed test leaves no training behind: a second signal stops the seeds at once
            for _ in range(2):
                proc.send_signal(signal.SIGTERM)
                time.sleep(0.5)
            proc.kill()
    assert proc.returncode == 130, out + err
    for s in (0, 1):
        assert f"seed {s}: stopped (exit 130); resume with rlworks train --resume {path / f'seed-{s}'}" in err
    assert "3 seeds: 0 finished, 0 failed, 2 stopped, 1 not started" in out
    assert not (path / "seed-2").exists()
    assert json.loads((path / "seed_set.json").read_text())["not_started"] == [2]


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------


def _last_eval(run: Path) -> float:
    with open(run / "metrics.csv", newline="") as fh:
        return [float(r["eval/mean_return"]) for r in csv.DictReader(fh) if r["eval/mean_return"]][-1]


def _row(out: str, group: str) -> list[str]:
    line = next(ln for ln in out.splitlines() if ln.startswith(group + "  "))
    return line[len(group):].split()


def test_compare_a_seed_set_prints_the_iqm_with_an_interval_and_draws_curves(seed_set, tmp_path):
    path, _ = seed_set
    png = tmp_path / "curves.png"
    out = cli("compare", str(path), "--png", str(png), "--reps", "2000")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == ["group", "runs", "steps", "score", "IQM", "95%", "CI", "median",
                                                  "mean"]
    row = _row(out.stdout, str(path))
    assert row[:2] == ["2", "1024"] and " ".join(row[2:5]) == "last evaluation (2"
    scores = [_last_eval(path / f"seed-{s}") for s in (0, 1)]
    value, low, high = float(row[6]), float(row[7].strip("[,")), float(row[8].strip("]"))
    assert value == pytest.approx(iqm(scores), abs=0.01)  # two runs: nothing trimmed
    assert min(scores) - 0.01 <= low <= value <= high <= max(scores) + 0.01
    assert "Agarwal et al. 2021" in out.stdout and f"learning curves: {png}" in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    train = cli("compare", f"ppo={path}/seed-*", "--score", "train", "--last", "5", "--reps", "2000")
    assert train.returncode == 0, train.stderr
    row = _row(train.stdout, "ppo")
    assert row[:2] == ["2", "1024"] and " ".join(row[2:8]) == "mean of last 5 training episodes"


def _fake_run(path: Path, algo: str, env_id: str, seed: int, returns: list[float], evals: list[float] = ()) -> Path:
    """A run folder as rundir.py writes it, without training: episodes every 100 steps, evaluations every 500."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"kind": "deep", "algo": algo, "env_id": env_id, "seed": seed,
                                                  "total_steps": 100 * len(returns), "checkpoint_every": 100,
                                                  "eval_every": 500 if evals else 0, "eval_episodes": 3,
                                                  "config": {}}))
    with open(path / "episodes.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "return", "length"])
        w.writerows([100 * (i + 1), r, 100] for i, r in enumerate(returns))
    with open(path / "metrics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "time", "eval/mean_return", "charts/episodic_return"])
        w.writerows([500 * (i + 1), 0.0, e, ""] for i, e in enumerate(evals))
        w.writerow([100 * len(returns), 0.0, "", returns[-1]])
    return path


def test_compare_groups_and_known_values(tmp_path, capsys):
    # final evaluations 1..8 and 100: the IQM trims 2 at each end (mean of 3..7 = 5), the median is 5, the mean 15.1
    for s in range(8):
        _fake_run(tmp_path / "a" / f"seed-{s}", "dqn", "CartPole-v1", s, [0.0] * 10, [0.0, float(s + 1)])
    _fake_run(tmp_path / "a" / "seed-8", "dqn", "CartPole-v1", 8, [0.0] * 10, [0.0, 100.0])
    for s in range(3):  # loose run folders (an unquoted glob): pooled by algorithm and env, training scores
        _fake_run(tmp_path / f"b-{s}", "ppo", "Acrobot-v1", s, [-500.0] * 5 + [-100.0 * (s + 1)] * 5)
    _fake_run(tmp_path / "mixed" / "x", "ppo", "CartPole-v1", 0, [1.0] * 10, [7.0, 9.0])
    _fake_run(tmp_path / "mixed" / "y", "ppo", "Pendulum-v1", 0, [-1.0] * 10, [-5.0, -3.0])
    png = tmp_path / "c.png"
    code = main(["compare", str(tmp_path / "a"), *(str(tmp_path / f"b-{s}") for s in range(3)),
                 f"m={tmp_path / 'mixed'}", "--reps", "1000", "--last", "5", "--png", str(png)])
    out = capsys.readouterr().out
    assert code == 0
    a = _row(out, str(tmp_path / "a"))
    assert a[:2] == ["9", "1000"] and "last evaluation (3 episodes)" in " ".join(a)
    assert [float(a[i]) for i in (6, 9)] == [5.0, 5.0] and float(a[10]) == pytest.approx(136 / 9, abs=0.01)
    b = _row(out, "ppo Acrobot-v1")
    assert b[:2] == ["3", "1000"] and "mean of last 5 training episodes" in " ".join(b)
    assert float(b[8]) == -200.0  # 3 runs, nothing trimmed: IQM = mean of -100, -200, -300
    assert "m: ppo CartPole-v1" in out and "m: ppo Pendulum-v1" in out  # returns of two envs are never pooled
    assert png.stat().st_size > 0


def test_compare_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    run = _fake_run(tmp_path / "run", "ppo", "CartPole-v1", 0, [1.0, 2.0])
    assert "rlworks compare needs run folders" in main_error(capsys, "compare")
    assert main_error(capsys, "compare", str(tmp_path / "nope")) == f"rlworks: error: {tmp_path / 'nope'}: no such " \
                                                                     "run folder"
    assert "no run folders match" in main_error(capsys, "compare", str(tmp_path / "nope-*"))
    assert "not a run folder (no config.json) and holds no run folders" in \
        main_error(capsys, "compare", str(tmp_path / "empty"))
    assert "not valid JSON" in main_error(capsys, "compare", str(tmp_path / "bad"))
    assert "has no evaluations (train with --eval-every N)" in main_error(capsys, "compare", str(run), "--score",
                                                                          "eval")
    assert "does not exist" in main_error(capsys, "compare", str(run), "--png", str(tmp_path / "no" / "c.png"))
    (run / "episodes.csv").write_text("step,return,length\n")
    assert "no finished episodes or evaluations to score yet" in main_error(capsys, "compare", str(run))


def test_rlworks_help_lists_compare(capsys):
    assert main(["--help"]) == 0
    assert "rlworks compare RUN_OR_GLOB" in capsys.readouterr().out
