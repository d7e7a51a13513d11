"""rlworks bench exploration: the learned criterion, the summary, resuming from the results file, the plot."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rlworks.commands import exploration as ex


def test_learned_is_the_first_window_of_100_with_90_treasures():
    learned = ex.Learned()
    learned.add([0.0] * 50 + [0.99] * 89)
    assert learned.at is None  # 89 treasures in the last 100
    learned.add([0.99])
    assert learned.at == 140
    learned.add([0.0] * 300)
    assert learned.at == 140  # the first time counts


def test_summary_counts_a_failure_as_the_cap_and_needs_a_majority():
    rows = [{"method": "m", "size": 5, "seed": s, "episodes_to_learn": e} for s, e in enumerate([100, 300, None])]
    rows += [{"method": "m", "size": 9, "seed": s, "episodes_to_learn": e} for s, e in enumerate([100, None, None])]
    table = ex.summary(rows, max_episodes=1000)
    assert table["m"][5] == {"learned": 2, "seeds": 3, "median": 300}
    assert table["m"][9] == {"learned": 1, "seeds": 3, "median": None}


def test_count_bonus_learns_where_epsilon_greedy_does_not():
    bonus = ex.run_one("count-bonus", 8, 0, 1000)
    greedy = ex.run_one("q-learning", 8, 0, 1000)
    assert bonus["episodes_to_learn"] is not None and bonus["episodes_to_learn"] < 1000
    assert greedy["episodes_to_learn"] is None and greedy["episodes"] == 1000


def test_cli_writes_results_resumes_and_plots(tmp_path):
    out, png = tmp_path / "r.json", tmp_path / "p.png"
    args = [sys.executable, "-m", "rlworks", "bench", "exploration", "--methods", "count-bonus,q-learning",
            "--sizes", "4,6", "--seeds", "2", "--max-episodes", "300", "--json", str(out), "--png", str(png)]
    first = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "8 runs to do" in first.stdout and png.stat().st_size > 10_000
    data = json.loads(out.read_text())
    assert len(data["results"]) == 8 and all(r["max_episodes"] == 300 for r in data["results"])
    again = subprocess.run([*args[:-4], "--sizes", "4,6,8", "--json", str(out), "--png", str(png)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "4 runs to do, 8 already" in again.stdout
    only = subprocess.run([*args[:-4], "--sizes", "4,6,8,10", "--plot-only", "--json", str(out), "--png", str(png)],
                          capture_output=True, text=True, timeout=120)
    assert only.returncode == 0 and "0 runs to do, 12 already" in only.stdout and "N=10" not in only.stdout


@pytest.mark.parametrize("argv,match", [(["--methods", "nope"], "unknown method 'nope'"),
                                         (["--max-episodes", "10"], "--max-episodes >= 100")])
def test_bad_options_are_one_line_and_exit_2(argv, match):
    out = subprocess.run([sys.executable, "-m", "rlworks", "bench", "exploration", *argv], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and match in out.stderr and "Traceback" not in out.stderr
