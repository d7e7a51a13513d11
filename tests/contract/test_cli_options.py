"""The deep CLI's generated options, --config/--print-config/--help, and the faults a new user met (issue 14)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from rlworks.algos.registry import REGISTRY
from rlworks.cli import main

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "80"}
TINY = ["--n-envs", "2", "--n-steps", "64", "--batch-size", "64"]  # PPO on CartPole in about a second


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlworks.cli", *args], check=False, capture_output=True, text=True,
                          env=ENV, timeout=180, cwd=cwd)


def error_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlworks: error: ") and "Traceback" not in err, err
    return lines[0]


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def main_error(capsys, *args: str) -> str:
    code, _, err = run_main(capsys, *args)
    return error_line(code, err)


def printed_config(capsys, *args: str) -> dict:
    code, out, err = run_main(capsys, "train", "ppo", *args, "--print-config", "json")
    assert code == 0, err
    return json.loads(out)


# ---------------------------------------------------------------------------------------------
# options generated from the config dataclasses
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", list(REGISTRY))
def test_every_field_of_every_algorithm_is_an_option_that_round_trips_its_default(algo):
    from rlworks.commands.deep import train_parser
    from rlworks.commands.options import given

    cls = REGISTRY[algo].config_class
    parser = train_parser(algo)
    argv = []
    for f in dataclasses.fields(cls):
        flag = f"--{f.name.replace('_', '-')}"
        assert flag in parser.option_names(), flag
        if f.default is None:  # "unset" (e.g. actor_hidden: take hidden) is the default only, never a flag's value
            continue
        tp = typing.get_type_hints(cls)[f.name]
        value = (",".join(map(str, f.default)) if typing.get_origin(tp) is tuple
                 else str(f.default).lower() if tp is bool else str(f.default))
        argv += [flag, value]
    expected = {k: v for k, v in dataclasses.asdict(cls()).items() if v is not None}
    assert given(parser.parse_args(argv), cls) == expected


def test_integers_accept_exact_scientific_notation(capsys):
    got = printed_config(capsys, "--env", "CartPole-v1", "--total-steps", "1e5", "--n-steps", "1.5e2",
                         "--batch-size", "64")
    assert got["total_steps"] == 100_000 and got["config"]["n_steps"] == 150
    for flag in ("--n-steps", "--total-steps", "--seed", "--checkpoint-every", "--eval-every"):
        code, _, err = run_main(capsys, "train", "ppo", "--env", "CartPole-v1", flag, "1.5")
        assert f"{flag} '1.5': expected int" in error_line(code, err)


def test_bool_and_tuple_forms(capsys):
    cfg = printed_config(capsys, "--env", "CartPole-v1", "--norm-obs", "--no-anneal-lr", "--layer-norm", "true",
                         "--ortho-init", "false", "--hidden", "32,16")["config"]
    assert (cfg["norm_obs"], cfg["anneal_lr"], cfg["layer_norm"], cfg["ortho_init"]) == (True, False, True, False)
    assert cfg["hidden"] == [32, 16]
    assert printed_config(capsys, "--env", "CartPole-v1", "--hidden", "32", "16")["config"]["hidden"] == [32, 16]
    code, _, err = run_main(capsys, "train", "ppo", "--env", "CartPole-v1", "--norm-obs", "maybe")
    assert "--norm-obs 'maybe': expected true or false" in error_line(code, err)


def test_help_shows_the_values_this_command_line_would_use(capsys):
    code, out, _ = run_main(capsys, "train", "ppo", "--env", "CartPole-v1", "--n-epochs", "3", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "preset 'CartPole-v1'" in text
    assert "Adam step size (default: 0.002)" in text  # the preset's learning rate, not the dataclass's 3e-4
    assert "passes over each rollout (default: 3)" in text  # the option given on the same line
    assert "environment steps (default: 50000)" in text  # the preset's total_steps
    code, out, _ = run_main(capsys, "train", "ppo", "--help")
    assert code == 0 and "Adam step size (default: 0.0003)" in " ".join(out.split())


def test_config_file_sits_between_the_preset_and_the_flags(tmp_path, capsys):
    mine = tmp_path / "mine.toml"
    mine.write_text('env = "CartPole-v1"\ntotal_steps = 2_000\nlearning_rate = 0.01\nn_epochs = 4\nhidden = [8, 8]\n')
    got = printed_config(capsys, "--config", str(mine), "--n-epochs", "2")
    assert got["env"] == "CartPole-v1" and got["preset"] == "CartPole-v1" and got["total_steps"] == 2000
    cfg = got["config"]
    assert (cfg["learning_rate"], cfg["n_epochs"], cfg["hidden"]) == (0.01, 2, [8, 8])
    assert cfg["n_steps"] == 32  # from the CartPole-v1 preset, which the file does not set
    # --print-config's TOML is itself a --config file that gives the same run
    code, toml_text, _ = run_main(capsys, "train", "ppo", "--config", str(mine), "--n-epochs", "2", "--print-config")
    assert code == 0 and "preset CartPole-v1" in toml_text
    again = tmp_path / "again.toml"
    again.write_text(toml_text)
    assert printed_config(capsys, "--config", str(again))["config"] == cfg


def test_config_file_sets_the_evaluation_and_keep_as_a_preset_does(tmp_path, capsys):
    mine = tmp_path / "mine.toml"
    mine.write_text('env = "CartPole-v1"\neval_every = 4000\neval_episodes = 3\nkeep = "best"\n')
    got = printed_config(capsys, "--config", str(mine))
    assert (got["eval_every"], got["eval_episodes"], got["keep"]) == (4000, 3, "best")
    got = printed_config(capsys, "--config", str(mine), "--eval-every", "500", "--keep", "last")  # the flags win
    assert (got["eval_every"], got["eval_episodes"], got["keep"]) == (500, 3, "last")
    # the TOML of --print-config carries them, so it gives the same run back
    code, toml_text, _ = run_main(capsys, "train", "ppo", "--config", str(mine), "--print-config")
    assert code == 0 and 'keep = "best"' in toml_text and "eval_every = 4000" in toml_text
    again = tmp_path / "again.toml"
    again.write_text(toml_text)
    assert printed_config(capsys, "--config", str(again))["keep"] == "best"
    off = tmp_path / "off.toml"  # evaluation off, as --print-config writes it for a run without evaluations
    off.write_text('env = "CartPole-v1"\neval_every = 0\neval_episodes = 10\nkeep = "last"\n')
    assert printed_config(capsys, "--config", str(off))["eval_every"] == 0


@pytest.mark.parametrize("text,needles", [
    (None, ["no such file"]),
    ("learning_rat = 0.1\n", ["learning_rat", "did you mean 'learning_rate'"]),
    ("optimizer = 'adam'\n", ["'optimizer'", "a2c"]),
    ("n_envs = '8'\n", ["n_envs = '8'", "int"]),
    ("hidden = 64\n", ["hidden = 64", "list of int"]),
    ("[CartPole-v1]\nn_envs = 8\n", ["flat table", "--preset"]),
    ("n_envs = \n", ["invalid TOML"]),
    ("gamma = 1.5\n", ["gamma=1.5", "out of range"]),
    ("keep = 'worst'\n", ["keep = 'worst'", "'last', 'best'"]),
    ("eval_every = -1\n", ["eval_every = -1", "out of range"]),
])
def test_bad_config_file_is_one_line(tmp_path, capsys, text, needles):
    path = tmp_path / "bad.toml"
    if text is not None:
        path.write_text(text)
    code, _, err = run_main(capsys, "train", "ppo", "--env", "CartPole-v1", "--config", str(path))
    line = error_line(code, err)
    for n in needles:
        assert n in line, line


def test_argparse_never_prints_usage_or_exits_itself(capsys):
    code, out, err = run_main(capsys, "train", "ppo", "--env", "CartPole-v1", "--n-envs")
    assert "--n-envs: needs a value" in error_line(code, err) and "usage" not in out + err
    code, out, _ = run_main(capsys, "train", "sarsa", "--help")  # the tabular parser's own --help
    assert code == 0 and "--epsilon-schedule" in out


def test_list_reads_the_registry(capsys):
    code, out, _ = run_main(capsys, "list")
    text = " ".join(out.split())
    assert code == 0
    for name, info in REGISTRY.items():
        assert name in text and info.summary.split()[0] in text


def test_list_piped_is_one_unwrapped_line_per_entry():
    out = cli("list")  # stdout is a pipe here
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert all(line.count("\t") == 1 for line in lines), lines
    names = [line.split("\t")[0] for line in lines]
    assert set(REGISTRY) <= set(names) and "q-learning" in names and "rlworks/GridWorld-v0" in names
    for name, info in REGISTRY.items():
        assert info.summary in lines[names.index(name)]  # not cut by an 80-column table


# ---------------------------------------------------------------------------------------------
# faults found trying the CLI as a new user
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["-h"], ["list"], ["train", "--help"], ["train", "ppo", "--help"]])
def test_closed_pipe_ends_quietly(args):
    # the reader is gone before the first write, as with `rlworks -h | head -1` losing the race
    p = subprocess.Popen([sys.executable, "-m", "rlworks.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=ENV)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) in (0, 141)
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err


def test_train_usage_is_printed_verbatim():
    out = cli("train", "--help")
    assert out.returncode == 0
    assert "usage: rlworks train ALGO --env ID [options]  |  rlworks train --resume RUN_DIR [options]" in out.stdout


@pytest.mark.parametrize("args", [["eval", "--help"], ["eval", "/no/such/run", "--help"], ["eval", "-h", "x"]])
def test_eval_help_lists_every_eval_option_and_evaluates_nothing(args, capsys):
    code, out, err = run_main(capsys, *args)
    assert code == 0 and not err
    for flag in ("--episodes", "--seed", "--checkpoint", "--video", "--device", "--num-threads"):
        assert flag in out, flag


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    # a long path: rich wrapped such paths at 80 columns when stdout was a pipe
    run = tmp_path_factory.mktemp("runs") / ("a-run-directory-with-a-name-long-enough-to-wrap-" * 2) / "ppo-cartpole"
    out = cli("train", "ppo", "--env", "CartPole-v1", "--total-steps", "256", *TINY, "--checkpoint-every", "128",
              "--run-dir", str(run))
    assert out.returncode == 0, out.stderr
    return run, out


def test_paths_and_summary_are_not_wrapped_when_piped(deep_run):
    run, out = deep_run
    lines = out.stdout.splitlines()
    assert any(ln.startswith("run directory: ") and ln.count(str(run)) == 2 for ln in lines), out.stdout
    assert any(ln.startswith("done: ppo on CartPole-v1: 256 steps") and "evaluation (5 episodes)" in ln
               for ln in lines), out.stdout


def test_resume_refuses_config_fields_and_names_what_it_takes(deep_run):
    run, _ = deep_run
    line = error_line(*_code_err(cli("train", "--resume", str(run), "--learning-rate", "0.001")))
    assert "--learning-rate" in line and "cannot be changed on resume" in line and "not of" not in line
    for flag in ("--total-steps", "--num-threads", "--matmul-precision", "--device", "--quiet", "--checkpoint"):
        assert flag in line, flag
    line = error_line(*_code_err(cli("train", "--resume", str(run), "--seed", "3")))
    assert "--seed" in line and "cannot be changed on resume" in line
    out = cli("train", "--resume", str(run), "--help")
    assert out.returncode == 0 and "--total-steps" in out.stdout and "--checkpoint" in out.stdout


def test_resume_of_a_finished_run_says_so(deep_run):
    run, _ = deep_run
    line = error_line(*_code_err(cli("train", "--resume", str(run))))
    assert "already finished at step 256" in line and "--total-steps N > 256" in line
    assert "out of range" not in line  # the user passed no --total-steps


def test_resume_and_quiet(deep_run, tmp_path):
    run, _ = deep_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    out = cli("train", "--resume", str(copy), "--checkpoint", "step-128", "--total-steps", "384", "--quiet")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""
    assert json.loads((copy / "config.json").read_text())["total_steps"] == 384
    assert (copy / "checkpoints" / "step-384").is_dir()


def test_quiet_prints_nothing_for_deep_and_tabular_runs(tmp_path):
    deep = cli("train", "ppo", "--env", "CartPole-v1", "--total-steps", "128", *TINY, "--run-dir",
               str(tmp_path / "deep"), "--quiet")
    tab = cli("train", "q-learning", "--episodes", "20", "--run-dir", str(tmp_path / "tab"), "--quiet")
    for out in (deep, tab):
        assert out.returncode == 0, out.stderr
        assert out.stdout == "" and out.stderr == ""
    assert (tmp_path / "deep" / "config.json").is_file() and (tmp_path / "tab" / "MANIFEST.json").is_file()
    for algo in ("ppo", "q-learning"):
        assert "print nothing but errors" in " ".join(cli("train", algo, "--help").stdout.split())
    # without --quiet the tabular run says where it went
    loud = cli("train", "q-learning", "--episodes", "20", "--run-dir", str(tmp_path / "loud"))
    assert f"run directory: {tmp_path / 'loud'}" in loud.stdout


def test_resume_of_a_tabular_run_says_it_cannot_be_resumed(tmp_path, capsys):
    run = tmp_path / "tab"
    assert main(["train", "q-learning", "--episodes", "10", "--run-dir", str(run), "--quiet"]) == 0
    code, _, err = run_main(capsys, "train", "--resume", str(run))
    line = error_line(code, err)
    assert "tabular run" in line and "cannot be resumed" in line and "no config.json" not in line


def test_invalid_config_json_is_named(deep_run, tmp_path, capsys):
    run, _ = deep_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "config.json").write_text('{"kind": "deep", "algo": ')
    for args in (["eval", str(copy)], ["train", "--resume", str(copy)]):
        line = main_error(capsys, *args)
        assert "config.json" in line and "not valid JSON" in line and "MANIFEST" not in line
    (copy / "config.json").write_text('{"kind": "deep", "algo": "ppo"}')
    line = main_error(capsys, "eval", str(copy))
    assert "config.json" in line and "'env_id'" in line


def _code_err(out: subprocess.CompletedProcess) -> tuple[int, str]:
    return out.returncode, out.stderr
