"""rlworks bench offline: the medians of last and best, the markdown table, the heatmaps, resuming from the
JSON-lines file, the bad inputs (one line, exit 2), and the offline learning curve in normalised score."""

from __future__ import annotations

import json

import pytest

from rlworks.cli import main
from rlworks.commands import offline_bench as ob
from rlworks.commands import offline_table as table


def row(algo, seed, last, best, kind="medium", env="CartPole-v1", ups=100.0):
    return {"env": env, "kind": kind, "algo": algo, "seed": seed, "last": last, "best": best, "updates_per_s": ups}


ROWS = [row("bc", 0, 10.0, 50.0), row("bc", 1, 30.0, 40.0), row("bc", 2, 20.0, 90.0),
        row("cql", 0, 80.0, 95.0), row("cql", 1, None, None, ups=None), row("cql", 2, 60.0, 70.0, ups=300.0),
        row("bc", 0, 99.0, 99.0, kind="expert")]


def test_summary_takes_medians_of_last_and_best_separately():
    t = table.summary(ROWS)
    assert t[("CartPole-v1", "medium", "bc")] == {"last": 20.0, "best": 50.0, "seeds": 3, "failed": 0,
                                                  "updates_per_s": 100.0}
    # a diverged seed counts as a seed and a failure, not as a score
    assert t[("CartPole-v1", "medium", "cql")] == {"last": 70.0, "best": 82.5, "seeds": 3, "failed": 1,
                                                   "updates_per_s": 200.0}
    assert t[("CartPole-v1", "expert", "bc")]["last"] == 99.0 and len(t) == 3


def test_markdown_rows_are_datasets_columns_algorithms():
    md = table.markdown(table.summary(ROWS), ["CartPole-v1"], ["medium", "expert", "random"], ["bc", "cql", "dt"])
    lines = md.splitlines()
    assert "| dataset | bc | cql | dt | seeds |" in lines
    assert "| CartPole-v1 medium | 20.0 (50.0) | 70.0 (82.5), 1 diverged |  | 3 |" in lines
    assert "| CartPole-v1 expert | 99.0 (99.0) |  |  | 1 |" in lines
    assert not any("random" in line for line in lines if line.startswith("|"))  # no runs: no row
    assert "**last**" in md and "**best**" in md and "not D4RL's" in md
    assert "CartPole-v1: bc 100, cql 200" in md


def test_a_cell_with_fewer_seeds_than_its_row_says_how_many():
    rows = [row("bc", s, 10.0 * s, 50.0) for s in range(3)] + [row("cql", 0, 80.0, 95.0)]
    md = table.markdown(table.summary(rows), ["CartPole-v1"], ["medium"], ["bc", "cql"])
    assert "| CartPole-v1 medium | 10.0 (50.0) | 80.0 (95.0), 1 seed | 1–3 |" in md.splitlines()
    t = table.summary(rows)
    cells = [t[("CartPole-v1", "medium", a)] for a in ("bc", "cql")] + [None]
    assert table.fewer_seeds(cells) == [False, True, False]  # the heatmap marks the same cells
    assert table.heat_label(cells[1], count_seeds=True) == "80.0\n(95.0)\n1 seed"
    assert table.heat_label(cells[0]) == "10.0\n(50.0)"


def test_a_precision_for_every_algorithm_or_per_algorithm():
    assert ob._precisions("medium") == {"*": "medium"}
    assert ob._precisions("cql=medium,dt=medium") == {"cql": "medium", "dt": "medium"}
    given = ob._precisions("medium,bc=highest")
    assert [ob.precision(given, a) for a in ("bc", "cql")] == ["highest", "medium"]
    assert ob.precision({}, "cql") == "highest"


def test_plot_writes_a_heatmap_per_env(tmp_path):
    rows = ROWS + [row("td3-bc", 0, 45.0, 60.0, env="Pendulum-v1")]
    png = table.plot(table.summary(rows), ["CartPole-v1", "Pendulum-v1"], ["medium", "expert"],
                  {"CartPole-v1": ["bc", "cql"], "Pendulum-v1": ["bc", "td3-bc"]}, tmp_path / "t.png")
    assert png.stat().st_size > 10_000


def test_default_algorithms_follow_the_action_space():
    assert ob.fitting("discrete") == ["bc", "cql", "iql", "dt"]
    assert ob.fitting("box") == ["bc", "cql", "iql", "td3-bc", "dt"]
    assert ob.fitting("discrete", ["td3-bc", "bc"]) == ["bc"]
    assert ob.budget("bc", "CartPole-v1", None, None) == (5000, 1000)  # the preset's
    assert ob.budget("bc", "CartPole-v1", 300, None) == (300, 30)  # a tenth of a given budget


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def run_cli(capsys, *argv):
    code = main(["bench", "offline", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_are_recorded_and_not_run_again(capsys, minari_root, tmp_path, monkeypatch):
    from rlworks.offline import collect

    monkeypatch.chdir(tmp_path)
    collect("CartPole-v1", "random", 3, "rlworks/cartpole/medium-v0", ref_episodes=3, ref_max_score=500.0)
    args = ["--envs", "CartPole-v1", "--kinds", "medium", "--algos", "bc", "--steps", "20", "--eval-every", "10",
            "--eval-episodes", "2", "--json", "r.jsonl", "--markdown", "t.md", "--plot", "t.png"]
    code, out, err = run_cli(capsys, *args, "--seeds", "2")
    assert code == 0, err
    assert "2 runs to do, 0 already" in out
    # where each run is, as it goes: its start and every evaluation
    assert "  CartPole-v1 medium        bc     seed 1: training, 20 gradient steps, evaluated every 10" in out
    assert out.count("bc     seed 0: step 10 of 20: score") == 1 and "bc     seed 1: step 20 of 20: score" in out
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["algo"], r["seed"], r["steps"]) for r in rows] == [("bc", 0, 20), ("bc", 1, 20)]
    for r in rows:
        assert [s for s, _ in r["curve"]] == [10, 20] and r["last"] == r["curve"][-1][1]
        assert r["best"] == max(v for _, v in r["curve"]) and r["updates_per_s"] > 0
        assert 0 < r["cpu_seconds"] <= 4 * r["wall_seconds"]  # one torch thread, and gymnasium's
    assert "| CartPole-v1 medium |" in (tmp_path / "t.md").read_text() and (tmp_path / "t.png").is_file()
    # a precision per algorithm: another algorithm's leaves these runs as they are, bc's own makes other runs
    code, out, err = run_cli(capsys, *args, "--seeds", "2", "--matmul-precision", "dt=medium", "--plot-only")
    assert code == 0 and "0 runs to do, 2 already" in out and "matmul precision" not in out, err
    code, out, err = run_cli(capsys, *args, "--seeds", "2", "--matmul-precision", "bc=medium", "--plot-only")
    assert code == 0 and "0 runs to do, 0 already" in out and "bc: matmul precision medium." in out, err
    code, out, err = run_cli(capsys, *args, "--seeds", "0-2")  # seed 2 is new; 0 and 1 are in the file
    assert code == 0, err
    assert "1 runs to do, 2 already" in out
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 3
    code, out, _ = run_cli(capsys, *args[:6], "--steps", "30", "--eval-every", "10", "--eval-episodes", "2",
                           "--json", "r.jsonl", "--seeds", "1", "--plot-only")  # another budget: other runs
    assert code == 0 and "0 runs to do, 0 already" in out
    loose = ["--envs", "CartPole-v1", "--kinds", "medium", "--algos", "bc", "--eval-episodes", "2", "--json", "r.jsonl",
             "--seeds", "0-2", "--markdown", "t2.md", "--plot-only"]  # no --steps: the budget the runs used
    code, out, err = run_cli(capsys, *loose)
    assert code == 0, err
    assert "3 runs in r.jsonl at 20 gradient steps" in out
    assert "| CartPole-v1 medium |" in (tmp_path / "t2.md").read_text()
    code, out, err = run_cli(capsys, *args[:6], "--steps", "30", "--eval-every", "30", "--eval-episodes", "2",
                             "--json", "r.jsonl", "--seeds", "1")
    assert code == 0 and "1 runs to do" in out, err
    code, out, err = run_cli(capsys, *loose)  # a cell at two budgets: which one is meant?
    assert code == 2 and "several gradient-step budgets (bc on CartPole-v1 medium: 20, 30)" in err, err


@pytest.mark.parametrize("argv,expected", [
    (["--algos", "cqll"], "unknown offline algorithm 'cqll' (did you mean 'cql'?)"),
    (["--kinds", "medium,expret"], "unknown dataset kind 'expret' (did you mean 'expert'?)"),
    (["--envs", "CartPole-v1", "--algos", "td3-bc"], "td3-bc learns box actions"),
    (["--envs", "CartPol-v1"], "unknown env 'CartPol-v1' (did you mean 'CartPole-v1'?)"),
    (["--envs", "CartPole-v1,Pendulum-v1", "--kinds", "expert"],
     "rlworks/cartpole/expert-v0, rlworks/pendulum/expert-v0; make them with `rlworks datasets make CartPole-v1` "
     "and `rlworks datasets make Pendulum-v1`"),
    (["--seeds", "4-2"], "--seeds '4-2': the range 4-2 runs backwards"),
    (["--seeds", "0"], "--seeds '0': a count of seeds, at least 1 (seed 0 alone: --seeds 0-0)"),
    (["--matmul-precision", "cqll=medium"], "unknown offline algorithm 'cqll' (did you mean 'cql'?)"),
    (["--matmul-precision", "cql=low"], "--matmul-precision"),
])
def test_bad_inputs_are_one_line_and_exit_2(capsys, minari_root, argv, expected):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and err.startswith("rlworks: error: ")
    assert expected in err, err
    assert not minari_root.exists()  # nothing made, nothing run


def test_offline_learning_curve_is_in_normalised_score(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from rlworks.core.logging import plot_learning_curve

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    online = tmp_path / "online.csv"
    online.write_text("step,time,charts/episodic_return,eval/mean_return,eval/std_return\n"
                      "100,0.1,20.0,,\n200,0.2,25.0,30.0,1.0\n")
    offline = tmp_path / "offline.csv"
    offline.write_text("step,time,eval/mean_return,eval/std_return,eval/normalized_score,perf/ups\n"
                       "100,0.1,250.0,3.0,,\n100,0.1,,,48.5,\n200,0.2,,,,900\n200,0.3,400.0,1.0,,\n"
                       "200,0.3,,,80.0,\n")
    for path in (online, offline):
        assert plot_learning_curve(path, path.with_suffix(".png")).stat().st_size > 0
    on, off = (f.axes[0] for f in figures)
    assert (on.get_ylabel(), on.get_xlabel()) == ("episodic return", "environment steps")
    assert (off.get_ylabel(), off.get_xlabel()) == ("normalised score (100 = expert)", "gradient steps")
    lines = [ln for ln in off.get_lines() if ln.get_label() == "evaluation (normalised score)"]
    assert len(lines) == 1 and list(lines[0].get_xdata()) == [100, 200] and list(lines[0].get_ydata()) == [48.5, 80.0]


def test_an_interrupted_run_continues_from_its_checkpoint(minari_root, tmp_path):
    import rlworks
    from rlworks.offline import collect
    from rlworks.offline.datasets import load

    collect("CartPole-v1", "random", 3, "rlworks/cartpole/medium-v0", ref_episodes=3, ref_max_score=500.0)
    data = load("rlworks/cartpole/medium-v0")
    job = {"env": "CartPole-v1", "kind": "medium", "algo": "bc", "seed": 3, "steps": 40, "eval_every": 10,
           "eval_episodes": 2, "transitions": len(data), "matmul_precision": "highest"}
    whole = ob.run_one(job, data, 1, tmp_path / "a")
    folder = tmp_path / "b" / "CartPole-v1-medium-bc-seed3"
    rlworks.train("bc", "CartPole-v1", dataset=data, total_steps=40, seed=3, eval_every=10, eval_episodes=2,
                  keep="last", run_dir=folder, stop_at=20)  # as if killed after the checkpoint at step 20
    assert ob.resumable(folder, job, data) == 20
    assert ob.resumable(folder, {**job, "seed": 4}, data) is None  # another run's folder: not continued
    said: list[str] = []
    resumed = ob.run_one(job, data, 1, tmp_path / "b", say=said.append)
    assert said[0].startswith("continuing from step 20 of 40") and len(said) == 3  # then the evaluations at 30, 40
    assert said[1].startswith("step 30 of 40: score ")
    assert resumed["resumed_from"] == 20 and "resumed_from" not in whole
    assert resumed["curve"] == whole["curve"] and [s for s, _ in whole["curve"]] == [10, 20, 30, 40]
    assert (resumed["last"], resumed["best"]) == (whole["last"], whole["best"])
    assert 0 < resumed["train_seconds"] and resumed["updates_per_s"] > 0
    other = {**job, "seed": 4}
    (tmp_path / "b" / "CartPole-v1-medium-bc-seed4").mkdir()  # a folder with no checkpoint: started again
    assert "resumed_from" not in ob.run_one(other, data, 1, tmp_path / "b")
