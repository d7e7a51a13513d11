"""Bad input to the deep-RL commands: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlworks.cli", *args], check=False, capture_output=True, text=True,
                          env=ENV, timeout=120, cwd=cwd)


def assert_one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("args,needles", [
    (["train", "ppo", "--env", "CartPole-v2"], ["CartPole-v2", "did you mean 'CartPole-v1'"]),
    (["train", "ppo", "--env", "CartPole-v1", "--learning-rat", "0.1"], ["--learning-rat", "learning-rate"]),
    (["train", "ppo", "--env", "CartPole-v1", "--gamma", "1.5"], ["gamma=1.5", "out of range"]),
    (["train", "ppo", "--env", "CartPole-v1", "--n-epochs", "abc"], ["--n-epochs", "expected int"]),
    (["train", "ppo", "--env", "CartPole-v1", "--optimizer", "adam"], ["--optimizer", "a2c", "not of ppo"]),
    (["train", "a2c", "--env", "CartPole-v1", "--clip-coef", "0.1"], ["--clip-coef", "ppo", "not of a2c"]),
    (["train", "ppo", "--env", "CartPole-v1", "--preset", "cartpol"], ["unknown preset 'cartpol'"]),
    (["train", "ppo", "--env", "CartPole-v1", "--activation", "gelu"], ["activation='gelu'", "tanh"]),
    (["train", "ppo", "--env", "MountainCarContinuous-v0", "--vec-env", "threads"], ["vec_env='threads'"]),
    (["train", "ppo"], ["--env is required"]),
    (["train", "ppx", "--env", "CartPole-v1"], ["ppx", "did you mean 'ppo'"]),
    (["train", "ppo", "--env", "CartPole-v1", "--device", "tpu"], ["--device"]),
    (["train", "--resume", "/nonexistent/run"], ["/nonexistent/run"]),
    (["train", "ppo", "--env", "CartPole-v1", "--seed", "-3"], ["--seed -3", "out of range"]),
    (["train", "ppo", "--env", "CartPole-v1", "--hidden", "64,x"], ["--hidden", "expected"]),
    (["train", "reinforce", "--env", "CartPole-v1", "--n-envs", "0"], ["n_envs=0", "out of range"]),
    (["train", "ppo", "--env", "CartPole-v1", "--use-sde"], ["use_sde=True", "continuous", "CartPole-v1"]),
    (["train", "ppo", "--env", "Pendulum-v1", "--sde-sample-freq", "-1"], ["sde_sample_freq=-1", "out of range"]),
    (["train", "ppo", "--env", "CartPole-v1", "--eval-every", "-5"], ["--eval-every -5", "out of range"]),
    (["train", "ppo", "--env", "CartPole-v1", "--eval-episodes", "0"], ["--eval-episodes 0", "out of range"]),
    (["train", "sac", "--env", "Pendulum-v1", "--matmul-precision", "mediun"], ["'mediun'", "did you mean 'medium'"]),
])
def test_bad_train_input(args, needles):
    assert_one_line_error(cli(*args), *needles)


@pytest.mark.parametrize("args,needles", [
    (["bench", "--device", "gpu"], ["--device 'gpu'", "cuda"]),
    (["bench", "--algo", "ppx"], ["--algo 'ppx'", "did you mean 'ppo'"]),
    (["bench", "--seeds", "0"], ["--seeds 0", "out of range"]),
    (["bench", "--sedes", "3"], ["--sedes", "did you mean"]),
    (["bench", "--algo", "sac", "--matmul-precision", "bf16"], ["--matmul-precision 'bf16'", "medium"]),
    (["bench", "--algo", "ppo", "--matmul-precision", "medium"], ["--matmul-precision", "dqn/sac/td3 only"]),
])
def test_bad_bench_input(args, needles):
    assert_one_line_error(cli(*args), *needles)


UNSUPPORTED = """
import sys, gymnasium as gym
class MultiBinaryActions(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,))
    action_space = gym.spaces.MultiBinary(3)
    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}
    def step(self, a):
        return self.observation_space.sample(), 0.0, False, False, {}
gym.register("rlworks-test/MultiBinary-v0", entry_point=MultiBinaryActions)
from rlworks.cli import main
sys.exit(main(["train", "ppo", "--env", "rlworks-test/MultiBinary-v0", "--total-steps", "64", "--quiet"]))
"""


def test_unsupported_action_space(tmp_path):
    out = subprocess.run([sys.executable, "-c", UNSUPPORTED], check=False, capture_output=True, text=True, env=ENV,
                         timeout=120, cwd=tmp_path)
    assert_one_line_error(out, "cannot handle the action space MultiBinary", "Discrete and Box")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("model.safetensors"))


def test_help_lists_every_field():
    out = cli("train", "ppo", "--help")
    assert out.returncode == 0
    for flag in ("--clip-coef", "--gae-lambda", "--norm-obs", "--layer-norm", "--anneal-lr"):
        assert flag in out.stdout


def test_corrupt_run_eval_and_resume(tmp_path):
    run = tmp_path / "run"
    ok = cli("train", "a2c", "--env", "CartPole-v1", "--total-steps", "800", "--run-dir", str(run), "--quiet",
             "--checkpoint-every", "400", "--keep", "last")  # eval RUN reads checkpoints/latest (not best/)
    assert ok.returncode == 0, ok.stderr
    for name in ("config.json", "metrics.csv", "learning_curve.png"):
        assert (run / name).is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    out = cli("eval", str(run), "--episodes", "2")
    assert out.returncode == 0 and "±" in out.stdout
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    model = latest / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])
    out = cli("eval", str(run))
    assert_one_line_error(out, "model.safetensors")
    out = cli("eval", str(run), "--checkpoint", "step-400", "--episodes", "1")
    assert out.returncode == 0, out.stderr
    assert_one_line_error(cli("eval", str(run), "--episodes", "0"), "--episodes")
    assert_one_line_error(cli("eval", str(run), "--checkpoint", "step-400", "--video", "x.avi"), ".gif or .mp4")
    assert_one_line_error(cli("eval", str(run), "--checkpoint", "step-400", "--show-search", str(tmp_path / "s.png")),
                          "--show-search", "a2c does not search")
    assert not (tmp_path / "s.png").exists()
    out = cli("train", "--resume", str(run), "--quiet")  # the damaged latest is named and passed over
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("step-800 is damaged (") and "model.safetensors" in out.stderr
    assert out.stderr.strip().endswith("; resuming from step-400")
    resume_from = str(run / "checkpoints" / "step-400")
    assert_one_line_error(cli("train", "--resume", resume_from, "--device", "tpu"), "--device 'tpu'")


def test_run_dir_already_used(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert_one_line_error(cli("train", "ppo", "--env", "CartPole-v1", "--run-dir", str(run)), "already holds a run")


def test_eval_every_keeps_the_best_policy_and_eval_reads_it(tmp_path):
    run = tmp_path / "run"
    out = cli("train", "a2c", "--env", "CartPole-v1", "--total-steps", "3000", "--eval-every", "1000",
              "--eval-episodes", "2", "--run-dir", str(run))
    assert out.returncode == 0, out.stderr
    assert any(ln.startswith("best evaluation:") and ln.endswith(f"(rlworks eval {run} --checkpoint best)")
               for ln in out.stdout.splitlines()), out.stdout
    import csv

    with open(run / "metrics.csv") as fh:
        evals = [(int(r["step"]), float(r["eval/mean_return"])) for r in csv.DictReader(fh) if r["eval/mean_return"]]
    assert [s for s, _ in evals] == [1000, 2000, 3000]
    ev = cli("eval", str(run), "--checkpoint", "best", "--episodes", "2", "--seed", "1000000")
    assert ev.returncode == 0, ev.stderr
    # the saved best, re-evaluated on its own episodes
    assert f"return {max(r for _, r in evals):.2f}" in ev.stdout
    assert_one_line_error(cli("eval", str(run), "--checkpoint", "bset"), "did you mean 'best'")


def test_matmul_precision_is_recorded_and_kept_on_resume(tmp_path):
    run = tmp_path / "run"
    out = cli("train", "sac", "--env", "Pendulum-v1", "--total-steps", "300", "--learning-starts", "200",
              "--matmul-precision", "medium", "--checkpoint-every", "150", "--run-dir", str(run), "--quiet")
    assert out.returncode == 0, out.stderr
    import json

    assert json.loads((run / "config.json").read_text())["matmul_precision"] == "medium"
    out = cli("train", "--resume", str(run), "--total-steps", "400", "--quiet")
    assert out.returncode == 0, out.stderr
    assert json.loads((run / "config.json").read_text())["matmul_precision"] == "medium"
    out = cli("train", "--resume", str(run), "--total-steps", "500", "--matmul-precision", "highest", "--quiet")
    assert out.returncode == 0, out.stderr
    assert json.loads((run / "config.json").read_text())["matmul_precision"] == "highest"
