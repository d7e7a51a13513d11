"""``rlworks bench offline``: the D4RL-protocol table (Fu et al. 2020), made locally.

For each env, dataset kind, algorithm and seed: train on ``rlworks/<env>/<kind>-v0`` (made by ``rlworks datasets
make ENV``; locally generated data, not D4RL's) for ``--steps`` gradient steps, evaluating every ``--eval-every``
steps on ``--eval-episodes`` deterministic episodes, and record two normalised scores (100 = the dataset's expert,
0 = a random policy): **last**, the final policy's evaluation (the agent ``rlworks.train`` returns), and **best**,
the best evaluation during training (the final one included; biased upward, as it is picked by the same
evaluations). The table shows the median over seeds of each; CORL (Tarasov et al. 2022) shows they differ widely.

    rlworks bench offline [--envs CartPole-v1,Pendulum-v1] [--kinds random,medium,expert,medium-replay,medium-expert]
                          [--algos bc,cql,iql,td3-bc,dt] [--seeds 5|0-4|5-9] [--steps N] [--eval-every N]
                          [--eval-episodes 10] [--threads 1] [--matmul-precision P|ALGO=P,...] [--json FILE]
                          [--markdown FILE] [--plot FILE] [--runs DIR] [--plot-only]

``--algos`` defaults to those that fit each env's action space (Discrete: bc, cql, iql, dt; Box: bc, cql, iql,
td3-bc, dt); ``--steps`` to each algorithm's preset budget for the env. Results go to ``--json`` (JSON lines, one per
run) as each run ends, and a run already there (same env, kind, algorithm, seed, steps, evaluation and dataset
size) is not run again: a long table is built in pieces. ``--runs DIR`` keeps each run's folder (metrics.csv,
learning_curve.png in normalised score, checkpoints) under DIR, and a run that was interrupted there (killed, or
Ctrl+C) continues exactly from its latest checkpoint when the same command runs again. ``--matmul-precision
cql=medium,dt=medium`` gives those two bfloat16 products and the others exact float32.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config import MATMUL_PRECISIONS, ConfigError, suggest
from .offline_table import any_budget, key, markdown, plot, read_results, summary
from .options import choice_arg, count_arg

KINDS = ("random", "medium", "expert", "medium-replay", "medium-expert")
#: the table's column order (the issue's), filtered by what fits each env's action space
ORDER = ("bc", "cql", "iql", "td3-bc", "dt")
ENVS = ("CartPole-v1", "Pendulum-v1")
#: without a preset budget for the env (e.g. cql on Pendulum-v1): this many gradient steps
DEFAULT_STEPS = 10_000
#: the reset seeds of every evaluation, ``core.evaluation.PeriodicEvaluator``'s default: the final evaluation plays
#: the same episodes as the periodic ones
EVAL_SEED = 1_000_000


def precision(given: dict[str, str], algo: str) -> str:
    """The matmul precision ``--matmul-precision`` gives ``algo``."""
    return given.get(algo, given.get("*", "highest"))


def dataset_id(env: str, kind: str) -> str:
    from ..offline.recording import env_name

    return f"rlworks/{env_name(env)}/{kind}-v0"


def action_kind(env: str) -> str:
    """"discrete" or "box": the action space of ``env`` (ConfigError naming close ids when unknown)."""
    import gymnasium as gym

    import rlworks.envs  # noqa: F401  (registers rlworks' own ids)

    if env not in gym.registry:
        raise ConfigError(f"unknown env {env!r}{suggest(env, gym.registry)}: pass registered Gymnasium ids to --envs")
    probe = gym.make(env)
    try:
        space = probe.action_space
    finally:
        probe.close()
    return "discrete" if isinstance(space, gym.spaces.Discrete) else "box"


def fitting(actions: str, algos: list[str] | None = None) -> list[str]:
    """The offline algorithms (in table order) that learn ``actions`` ("discrete"/"box"), of ``algos`` if given."""
    from ..algos.registry import REGISTRY

    return [a for a in ORDER if actions in REGISTRY[a].actions and (algos is None or a in algos)]


def budget(algo: str, env: str, steps: int | None, eval_every: int | None) -> tuple[int, int]:
    """(gradient steps, evaluate every): the given ones, else the preset's for ``env``, else ``DEFAULT_STEPS`` and a
    tenth of the run."""
    from ..algos import presets

    table = presets(algo).get(env, {})
    n = int(steps or table.get("total_steps") or DEFAULT_STEPS)
    every = int(eval_every or (table.get("eval_every") if not steps else 0) or max(n // 10, 1))
    return n, min(every, n)


# ---------------------------------------------------------------------------------------------
# one run
# ---------------------------------------------------------------------------------------------


class Evals:
    """A logger that keeps each evaluation ``algos.offline.run`` logs, (step, normalised score), and reports it."""

    def __init__(self, report: Callable[[int, float], None] | None = None) -> None:
        self.scores: list[tuple[int, float]] = []
        self.report = report

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if "eval/normalized_score" in metrics:
            self.scores.append((int(step), float(metrics["eval/normalized_score"])))
            if self.report is not None:
                self.report(*self.scores[-1])


def resumable(run_dir: Path, job: dict[str, Any], data: Any) -> int | None:
    """The step of the latest checkpoint in ``run_dir`` (a run folder an earlier, interrupted attempt at ``job``
    left under ``--runs``), or None when there is none or the folder holds another run (another algorithm, seed,
    budget, evaluation, precision or dataset)."""
    from ..core.checkpoint import CheckpointError, read_state

    try:
        meta = json.loads((run_dir / "config.json").read_text())
        step = int(read_state(run_dir)["sampler"]["global_step"])
    except (OSError, ValueError, KeyError, TypeError, CheckpointError):
        return None
    same = (meta.get("algo"), meta.get("seed"), meta.get("total_steps"), meta.get("eval_every"),
            meta.get("eval_episodes"), meta.get("matmul_precision") or "highest",
            (meta.get("config") or {}).get("dataset"))
    wanted = (job["algo"], job["seed"], job["steps"], job["eval_every"], job["eval_episodes"],
              job.get("matmul_precision", "highest"), data.dataset_id)
    return step if same == wanted and 0 < step <= job["steps"] else None


def logged_before(run_dir: Path, step: int) -> tuple[list[tuple[int, float]], float]:
    """What ``metrics.csv`` of ``run_dir`` holds up to ``step``: the evaluations (step, normalised score), and the
    training seconds, summed over the logged windows (each row's steps since the previous one over its updates
    per second, ``perf/ups``, which excludes evaluation)."""
    import csv

    scores, seconds, previous = [], 0.0, 0
    with open(run_dir / "metrics.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            at = int(float(r["step"]))
            if at > step:
                break
            if r.get("eval/normalized_score"):
                scores.append((at, float(r["eval/normalized_score"])))
            if r.get("perf/ups"):
                seconds += (at - previous) / float(r["perf/ups"])
                previous = at
    return scores, seconds


def run_one(job: dict[str, Any], data: Any, threads: int, runs: Path | None,
            say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Train ``job["algo"]`` on ``data`` (an OfflineDataset) and return its result row: the last and best
    normalised scores, the curve of evaluations, train seconds and gradient updates per second (both wall
    time), and the run's CPU seconds (this process, every thread; a run that was paused or shared its cores
    shows wall seconds well above them).

    With ``runs``, the run's folder is kept there, and an attempt that was interrupted (killed, Ctrl+C) is
    continued exactly from its latest checkpoint: the row then says ``resumed_from`` (the step), its curve and
    train seconds cover the whole run, and its wall and CPU seconds this attempt's part. ``say(text)`` is told
    where the run starts and each evaluation as it comes (a Hopper run takes hours)."""
    import rlworks
    from rlworks.core.guards import NonFiniteError

    evals = Evals(lambda step, score: say(f"step {step:,} of {job['steps']:,}: score {score:.1f}, "
                                          f"after {clocks()['wall_seconds']:,.0f} s"))
    run_dir, resume = None, {}
    if runs is not None:
        run_dir = runs / f"{job['env']}-{job['kind']}-{job['algo']}-seed{job['seed']}"
        start = resumable(run_dir, job, data) if run_dir.exists() else None
        if start is not None:
            evals.scores, before = logged_before(run_dir, start)
            resume = {"resume_from": run_dir}
        elif run_dir.exists():  # a finished run, another run, or one with no checkpoint yet: start again
            shutil.rmtree(run_dir)
    say(f"continuing from step {start:,} of {job['steps']:,} ({run_dir})" if resume else
        f"training, {job['steps']:,} gradient steps, evaluated every {job['eval_every']:,}")
    t0, c0 = time.perf_counter(), time.process_time()

    def clocks() -> dict[str, float]:  # this attempt's wall and CPU seconds so far
        return {"wall_seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2)}

    row = {**job, "dataset": data.dataset_id}
    if resume:
        row["resumed_from"] = start
    try:
        agent = rlworks.train(job["algo"], job["env"], dataset=data, total_steps=job["steps"], seed=job["seed"],
                              eval_every=job["eval_every"], eval_episodes=job["eval_episodes"], keep="last",
                              num_threads=threads, matmul_precision=job.get("matmul_precision", "highest"),
                              logger=evals, run_dir=run_dir, **resume)
    except NonFiniteError as exc:  # a diverged run is a result: counted in its cell, not scored
        return {**row, "error": str(exc), "last": None, "best": None, "curve": evals.scores, **clocks()}
    step = int(agent.meta.get("n_updates", job["steps"]))
    if evals.scores and evals.scores[-1][0] == step:
        last = evals.scores[-1][1]  # the periodic evaluation of the final policy: the same episodes
    else:
        last = float(data.normalized_score(agent.evaluate(job["eval_episodes"], seed=EVAL_SEED).mean_return))
        evals.scores.append((step, last))
    best_step, best = max(evals.scores, key=lambda e: (e[1], -e[0]))
    seconds = float(agent.meta.get("train_seconds", 0.0)) + (before if resume else 0.0)
    return {**row, "last": round(last, 3), "best": round(best, 3), "best_step": best_step,
            "curve": [[s, round(v, 3)] for s, v in evals.scores], "train_seconds": round(seconds, 2),
            "updates_per_s": round(step / seconds, 1) if seconds > 0 else None, **clocks()}


def _list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _precisions(text: str) -> dict[str, str]:
    """``P`` -> {"*": P} (every algorithm); ``ALGO=P,...`` -> {ALGO: P, ...} (the others: highest)."""
    out = {}
    for part in _list(text):
        algo, _, p = part.rpartition("=")
        out[algo or "*"] = choice_arg(MATMUL_PRECISIONS)(p)
    return out


def _seeds(text: str) -> list[int]:
    """``5`` -> seeds 0..4; a range or list (``5-9``, ``0,3``) as ``rlworks train --seeds`` takes it."""
    if text.strip().isdigit():
        n = int(text)
        if n < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: a count of seeds, at least 1 (seed 0 alone: --seeds 0-0)")
        return list(range(n))
    from .seeds import parse_seeds

    return parse_seeds(text)


def parser() -> argparse.ArgumentParser:
    from .parsing import Parser

    p = Parser(prog="rlworks bench offline", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", type=_list, default=list(ENVS), metavar="LIST",
                   help=f"comma-separated env ids (default: {','.join(ENVS)})")
    p.add_argument("--kinds", type=_list, default=list(KINDS), metavar="LIST",
                   help=f"dataset kinds (default: {','.join(KINDS)})")
    p.add_argument("--algos", type=_list, default=None, metavar="LIST",
                   help=f"from {', '.join(ORDER)} (default: those that fit each env's action space)")
    p.add_argument("--seeds", type=_seeds, default=list(range(5)), metavar="K|RANGE",
                   help="K: seeds 0..K-1; or a range/list such as 5-9 or 0,3 (default: 5)")
    p.add_argument("--steps", type=count_arg(1), default=None, metavar="N",
                   help="gradient steps per run (default: each algorithm's preset budget for the env)")
    p.add_argument("--eval-every", type=count_arg(1), default=None, metavar="N",
                   help="evaluate every N gradient steps (default: the preset's, else a tenth of the run)")
    p.add_argument("--eval-episodes", type=count_arg(1), default=10, metavar="N", help="episodes per evaluation (10)")
    p.add_argument("--threads", type=count_arg(1), default=1, metavar="N", help="torch CPU threads per run (1)")
    p.add_argument("--matmul-precision", type=_precisions, default={}, metavar="P|ALGO=P,...",
                   help="highest (exact float32, default), high (TF32 on CUDA) or medium (bfloat16 products where "
                        "the CPU has them: CQL's sampled actions, the Decision Transformer's forward); for every "
                        "algorithm, or per algorithm (cql=medium,dt=medium: the others highest)")
    p.add_argument("--json", default="offline-bench.jsonl", metavar="FILE",
                   help="results, one JSON line per run, appended as runs end; runs already there are skipped "
                        "(default: offline-bench.jsonl)")
    p.add_argument("--markdown", default=None, metavar="FILE", help="write the table there too (markdown)")
    p.add_argument("--plot", default=None, metavar="FILE", help="the heatmaps (png)")
    p.add_argument("--runs", default=None, metavar="DIR",
                   help="keep each run's folder there (metrics.csv, learning_curve.png, checkpoints); a run "
                        "interrupted there continues from its latest checkpoint")
    p.add_argument("--plot-only", action="store_true",
                   help="run nothing: tabulate and plot what --json holds (no --steps: at the budget its runs used)")
    return p


def check(o: argparse.Namespace) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """The algorithms of each env and each dataset's metadata; ConfigError (exit 2) on an unknown env, kind or
    algorithm, a missing dataset (with the ``rlworks datasets make`` lines that make it) or one without reference
    scores."""
    from ..offline.datasets import datasets_root, read_metadata

    if not o.envs or not o.kinds:
        raise ConfigError("--envs and --kinds need at least one entry each")
    for k in o.kinds:
        if k not in KINDS:
            raise ConfigError(f"unknown dataset kind {k!r}{suggest(k, KINDS)}; allowed: {', '.join(KINDS)}")
    for a in [*(o.algos or []), *(a for a in o.matmul_precision if a != "*")]:
        if a not in ORDER:
            raise ConfigError(f"unknown offline algorithm {a!r}{suggest(a, ORDER)}; allowed: {', '.join(ORDER)}")
    algos_by_env = {env: fitting(action_kind(env), o.algos) for env in o.envs}
    for a in o.algos or []:
        if not any(a in v for v in algos_by_env.values()):
            from ..algos.registry import REGISTRY

            raise ConfigError(f"{a} learns {' or '.join(REGISTRY[a].actions)} actions, and none of --envs "
                              f"{','.join(o.envs)} has them")
    root = datasets_root()
    missing = [(env, dataset_id(env, k)) for env in o.envs for k in o.kinds
               if not (root / dataset_id(env, k) / "data").is_dir()]
    if missing:
        envs = list(dict.fromkeys(env for env, _ in missing))
        raise ConfigError(f"missing datasets in {root}: {', '.join(i for _, i in missing)}; make them with "
                          + " and ".join(f"`rlworks datasets make {e}`" for e in envs))
    metas = {}
    for env in o.envs:
        for k in o.kinds:
            meta = read_metadata(dataset_id(env, k))
            if meta.get("ref_min_score") is None or meta.get("ref_max_score") in (None, meta.get("ref_min_score")):
                raise ConfigError(f"dataset {dataset_id(env, k)} has no reference scores (ref_min_score, "
                                  "ref_max_score): the table is in normalised score")
            metas[dataset_id(env, k)] = meta
    return algos_by_env, metas


def main(argv: list[str]) -> int:
    o = parser().parse_args(argv)
    algos_by_env, metas = check(o)
    path = Path(o.json)
    rows = read_results(path)
    done = {key(r) for r in rows}
    jobs = []
    for env in o.envs:
        for algo in algos_by_env[env]:
            steps, every = budget(algo, env, o.steps, o.eval_every)
            for kind in o.kinds:
                for seed in o.seeds:
                    jobs.append({"env": env, "kind": kind, "algo": algo, "seed": seed, "steps": steps,
                                 "eval_every": every, "eval_episodes": o.eval_episodes,
                                 "transitions": int(metas[dataset_id(env, kind)]["total_steps"]),
                                 "matmul_precision": precision(o.matmul_precision, algo)})
    wanted = {key(j) for j in jobs}
    todo = [] if o.plot_only else [j for j in jobs if key(j) not in done]
    print(f"{len(todo)} runs to do, {len(wanted & done)} already in {path}", flush=True)
    skipped = [f"{a} on {env}" for env in o.envs for a in (o.algos or []) if a not in algos_by_env[env]]
    if skipped:
        print(f"skipped (action space): {', '.join(skipped)}")
    loaded: dict[str, Any] = {}
    runs = Path(o.runs) if o.runs else None
    for job in sorted(todo, key=lambda j: (j["env"], KINDS.index(j["kind"]), ORDER.index(j["algo"]), j["seed"])):
        ident = dataset_id(job["env"], job["kind"])
        if ident not in loaded:
            from ..offline.datasets import load

            loaded.clear()  # one dataset in memory at a time (Hopper's are large)
            loaded[ident] = load(ident)
        what = f"{job['env']} {job['kind']:13s} {job['algo']:6s} seed {job['seed']}"
        r = run_one(job, loaded[ident], o.threads, runs,
                    say=lambda text, what=what: print(f"  {what}: {text}", flush=True))
        r.update(time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), version=__version__)
        rows.append(r)
        with open(path, "a") as fh:
            fh.write(json.dumps(r) + "\n")
        if r["last"] is None:
            print(f"{what}: diverged ({r['error']})", flush=True)
        else:
            resumed = f", continued from step {r['resumed_from']}" if "resumed_from" in r else ""
            print(f"{what}: last {r['last']:.1f}, best {r['best']:.1f} (step {r['best_step']}); {job['steps']} "
                  f"steps in {r['train_seconds']:.1f} s ({r['updates_per_s'] or 0:,.0f} updates/s{resumed})",
                  flush=True)
    picked, steps = [r for r in rows if key(r) in wanted], sorted({j["steps"] for j in jobs})
    if o.plot_only and o.steps is None:
        picked, steps = any_budget(rows, jobs, o.eval_every is None)
        print(f"{len(picked)} runs in {path} at {', '.join(map(str, steps)) or 'no'} gradient steps", flush=True)
    table = summary(picked)
    algos = [a for a in ORDER if any(a in v for v in algos_by_env.values())]
    note = f"Gradient steps: {', '.join(map(str, steps))}; {o.eval_episodes} evaluation episodes each." + "".join(
        f" {a}: matmul precision {p}." for a in algos if (p := precision(o.matmul_precision, a)) != "highest")
    md = markdown(table, o.envs, o.kinds, algos, note)
    print(md)
    if o.markdown:
        Path(o.markdown).write_text(md)
        print(f"markdown: {o.markdown}")
    if o.plot:
        plot(table, o.envs, o.kinds, algos_by_env, o.plot)
        print(f"plot: {o.plot}")
    return 0
