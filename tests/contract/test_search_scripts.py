"""``benchmarks/search_learning.py`` (issue 18's learning tables) scores a TicTacToe agent exactly and saves it;
``benchmarks/tictactoe_play_simulations.py`` re-scores the saved agent with other numbers of simulations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_search_learning_scores_exactly_and_the_checkpoint_replays(tmp_path):
    out, ckpts = tmp_path / "runs.jsonl", tmp_path / "ckpt"
    args = ["--algo", "alphazero", "--env", "rlworks/TicTacToe-v0", "--seeds", "1", "--steps", "600",
            "--eval-every", "600", "--eval-episodes", "2", "--set", "num_simulations=8", "learning_starts=100",
            "--json", str(out), "--save-dir", str(ckpts)]
    run = subprocess.run([sys.executable, str(BENCH / "search_learning.py"), *args], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["seed"] == 1 and row["overrides"] == {"num_simulations": 8, "learning_starts": 100}
    assert len(row["exact"]) == 8 and "games" not in row  # sampled games only with --games
    for score in row["exact"].values():
        assert abs(score["wins"] + score["draws"] + score["losses"] - 1) < 1e-9
        assert 0 <= score["mistakes"] <= score["positions"]
    again = subprocess.run([sys.executable, str(BENCH / "tictactoe_play_simulations.py"), row["checkpoint"],
                            "--sims", "8", "16"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    lines = again.stdout.strip().splitlines()
    assert len(lines) == 2 and "8 simulations, depth free" in lines[0] and "16 simulations" in lines[1]
    capped = subprocess.run([sys.executable, str(BENCH / "tictactoe_play_simulations.py"), row["checkpoint"],
                             "--sims", "8", "--depths", "0", "1"], capture_output=True, text=True, timeout=300)
    assert capped.returncode == 0, capped.stderr[-2000:]
    assert [line.split(" | ")[0].split(", ")[-1] for line in capped.stdout.strip().splitlines()] == [
        "depth free", "depth 1"]
    # the same checkpoint at the simulations it trained with scores as the run did
    first = row["exact"]["search/minimax/second"]
    assert f"minimax second: L {first['losses']:.3f}, mistakes {first['mistakes']}/{first['positions']}" in lines[0]
    # ``rlworks eval RUN --show-search OUT.png``: the picture of the root's children (prior, visits, Q)
    png = tmp_path / "search.png"
    shown = subprocess.run([sys.executable, "-m", "rlworks.cli", "eval", row["checkpoint"], "--episodes", "1",
                            "--seed", "0", "--show-search", str(png)], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert f"search picture written to {png}" in shown.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_muzero_tactics_reads_a_checkpoint(tmp_path):
    out, ckpts = tmp_path / "runs.jsonl", tmp_path / "ckpt"
    args = ["--algo", "muzero", "--env", "rlworks/TicTacToe-v0", "--seeds", "0", "--steps", "400",
            "--eval-every", "400", "--eval-episodes", "2", "--set", "num_simulations=4", "learning_starts=100",
            "batch_size=16", "--json", str(out), "--save-dir", str(ckpts)]
    run = subprocess.run([sys.executable, str(BENCH / "search_learning.py"), *args], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    tactics = subprocess.run([sys.executable, str(BENCH / "muzero_tictactoe_tactics.py"), row["checkpoint"]],
                             capture_output=True, text=True, timeout=300)
    assert tactics.returncode == 0, tactics.stderr[-2000:]
    lines = tactics.stdout.strip().splitlines()
    assert lines[0].endswith("4520 positions") and len(lines) == 5
    assert "X to move, can win (1498)" in lines[1] and "O to move, must block (580 positions" in lines[4]
