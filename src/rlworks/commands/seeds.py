"""``rlworks train ALGO --env ID --seeds 0-9 [--jobs N]``: one run per seed, each its own process.

Each seed runs the ordinary single-seed command line (``rlworks train ALGO ... --seed S --run-dir
SET/seed-S``) in a child process, at most ``--jobs`` at a time, so that a seed set is exactly the runs a
user could have started by hand, and each can be evaluated, resumed or compared on its own. The set's
folder (``--run-dir``, default ``runs/ALGO-ENV-seeds-TIME/``) holds::

    seed-<S>/        the run folder of seed S (algos/rundir.py)
    seed-<S>.log     what that seed's process printed
    seed_set.json    the command, the seeds, and each seed's exit code and final evaluation

``rlworks compare SET`` reads it as one group. Ctrl+C or SIGTERM is passed on to the running seeds, which
finish their step, write a checkpoint and exit 130/143 (``core/run.py``); seeds not yet started are not
started. A second Ctrl+C stops them at once (checkpoints are written atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..config import ConfigError

#: more seeds than this in one set is almost certainly a typo (0-1000000)
MAX_SEEDS = 1000
SEEDS_SYNTAX = "seeds such as 0-9, 0,3,5 or 0-2,7 (whole numbers >= 0)"
#: the options this command consumes; everything else goes to each seed's command line unchanged
OWN_FLAGS = ("--seeds", "--jobs", "--run-dir")
#: ``_train_loop``'s summary line (commands/deep.py), which carries the final evaluation (of the best policy, when
#: the run keeps that: "evaluation (5 episodes) of the best policy (step N, --keep best) 480.0 ± 3.0")
DONE = re.compile(r"^done: .* evaluation \((\d+) episodes\)(.*) (\S+) ± (\S+)$", re.M)


def parse_seeds(raw: str) -> list[int]:
    """``"0-2,7"`` -> ``[0, 1, 2, 7]``; a bad list raises ``argparse.ArgumentTypeError`` starting with the value
    (``Parser.error`` puts ``--seeds`` in front)."""
    seeds: list[int] = []
    for part in raw.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise argparse.ArgumentTypeError(f"{raw!r}: expected {SEEDS_SYNTAX}")
        low, high = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if high < low:
            raise argparse.ArgumentTypeError(f"{raw!r}: the range {low}-{high} runs backwards; write {high}-{low}")
        if len(seeds) + high - low + 1 > MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"{raw!r}: more than {MAX_SEEDS} seeds")
        for s in range(low, high + 1):
            if s in seeds:
                raise argparse.ArgumentTypeError(f"{raw!r}: seed {s} is listed twice")
            seeds.append(s)
    return seeds


def check_args(argv: list[str], ns: argparse.Namespace) -> None:
    """The options that cannot go with ``--seeds``/``--jobs``: one line each (ConfigError, exit 2)."""
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    if ns.seeds is None:
        raise ConfigError("--jobs runs a seed set: it needs --seeds (e.g. --seeds 0-9 --jobs 2)")
    if "--seed" in given:
        raise ConfigError("--seeds and --seed exclude each other: --seeds runs one process per seed, each with its "
                          "own --seed; for one run pass --seed S alone")
    if "--resume" in given:
        raise ConfigError("--seeds starts new runs and cannot be combined with --resume; resume each seed's run on "
                          "its own: rlworks train --resume SET/seed-S")
    if "--print-config" in given:
        raise ConfigError("--print-config shows one run's config: drop --seeds (the seeds differ only in --seed)")


def seed_set_dir(algo: str, env_id: str, root: str | Path = "runs") -> Path:
    """``runs/ALGO-ENV-seeds-TIME``, numbered ``-2``, ``-3``… when two sets start in the same second."""
    base = Path(root) / f"{algo}-{env_id.replace('/', '_')}-seeds-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def forwarded(argv: list[str]) -> list[str]:
    """``argv`` without this command's own options (as ``--flag value`` or ``--flag=value``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in OWN_FLAGS:
            skip = True
        elif a.split("=", 1)[0] not in OWN_FLAGS:
            out.append(a)
    return out


def run_seed_set(algo: str, env_id: str, argv: list[str], ns: argparse.Namespace) -> int:
    """Train every seed of ``ns.seeds`` in child processes, ``ns.jobs`` at a time; print a line per seed as it
    ends and a summary. Returns 0 if every seed finished, 130/143 if interrupted, else 1."""
    import numpy as np

    from ..core.stats import iqm, stratified_bootstrap_ci

    seeds, jobs, quiet = ns.seeds, ns.jobs or 1, ns.quiet
    parent = Path(ns.run_dir) if ns.run_dir else seed_set_dir(algo, env_id)
    for s in seeds:
        if (parent / f"seed-{s}").exists():
            raise ConfigError(f"{parent / f'seed-{s}'} already exists; pick another --run-dir, or resume that run: "
                              f"rlworks train --resume {parent / f'seed-{s}'}")
    base = [sys.executable, "-m", "rlworks.cli", "train", algo, *forwarded(argv)]
    parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"kind": "seed-set", "algo": algo, "env_id": env_id, "seeds": seeds,
                              "command": ["rlworks", *base[3:]], "results": {}}
    _write(parent, record)
    if not quiet:
        print(f"{algo} on {env_id}: seeds {_spec(seeds)}, {min(jobs, len(seeds))} at a time, into {parent}",
              flush=True)

    pending, running = list(seeds), {}  # seed -> (process, log file, start time)
    finals: dict[int, float] = {}
    failed: list[int] = []
    stop: int | None = None  # the signal that stopped the set
    # SIGINT and SIGTERM only note the signal here (the loop passes it on): no exception can come between starting
    # a seed and recording it. The previous handlers are put back below.
    signals = (signal.SIGINT, signal.SIGTERM) if threading.current_thread() is threading.main_thread() else ()
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in signals}
    passed_on = 0
    try:
        while running or (pending and stop is None):
            if len(received) > passed_on:  # a new signal; a second one stops the seeds at once (core/run.py)
                sig, passed_on = received[-1], len(received)
                if stop is None and not quiet:
                    print(f"{signal.Signals(sig).name}: stopping {len(running)} running seed(s), each writes a "
                          f"checkpoint; {len(pending)} not started", file=sys.stderr, flush=True)
                stop = stop or sig
                for proc, _, _ in running.values():
                    if proc.poll() is None:
                        proc.send_signal(sig)
            while pending and len(running) < jobs and stop is None:
                s = pending.pop(0)
                log = open(parent / f"seed-{s}.log", "w")
                # a session of its own: Ctrl+C in a terminal reaches the seeds once, from here, not twice
                proc = subprocess.Popen([*base, "--seed", str(s), "--run-dir", str(parent / f"seed-{s}")],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                running[s] = (proc, log, time.time())
            for s, (proc, log, t0) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                log.close()
                del running[s]
                final = _final_eval(parent / f"seed-{s}.log")
                if final is not None:
                    finals[s] = final[0]
                if code != 0 and (stop is None or code not in (130, 143)):  # a seed stopped on its own failed
                    failed.append(s)
                record["results"][str(s)] = {"exit": code, "seconds": round(time.time() - t0, 1),
                                             "final_eval": None if final is None else final[0]}
                _write(parent, record)
                line = _seed_line(s, code, time.time() - t0, final, parent)
                if not quiet or code != 0:
                    print(line, file=sys.stdout if code == 0 else sys.stderr, flush=True)
            time.sleep(0.05)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for proc, log, _ in running.values():  # only on an unexpected error: leave no child behind
            proc.kill()
            log.close()

    record["not_started"] = pending
    _write(parent, record)
    codes = [r["exit"] for r in record["results"].values()]
    stopped = len(codes) - codes.count(0) - len(failed)
    if not quiet:
        print(f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}: {codes.count(0)} finished, {len(failed)} failed"
              + (f", {stopped} stopped, {len(pending)} not started" if stop is not None else ""))
        if finals:
            scores = [finals[s] for s in sorted(finals)]
            low, high = stratified_bootstrap_ci([scores], iqm, seed=0)
            n = f"{len(scores)} seed{'s' if len(scores) > 1 else ''}"
            print(f"final evaluation over {n}: IQM {iqm(scores):.1f} (95% CI {low:.1f} to {high:.1f}), "
                  f"median {float(np.median(scores)):.1f}, mean {float(np.mean(scores)):.1f}")
        print(f"runs: {parent}  (rlworks compare {parent} --png curves.png)")
    if stop is not None:
        return 128 + int(stop)
    return 1 if failed else 0


def _write(parent: Path, record: dict[str, Any]) -> None:
    tmp = parent / "seed_set.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, parent / "seed_set.json")


def _final_eval(log: Path) -> tuple[float, float, int, bool] | None:
    """(mean, std, episodes, of the kept best policy?) of the final evaluation a seed printed, if it printed one
    (not with --quiet)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    found = DONE.findall(text)
    if not found:
        return None
    episodes, what, mean, std = found[-1]
    try:
        return float(mean), float(std), int(episodes), "best" in what
    except ValueError:
        return None


def _seed_line(seed: int, code: int, seconds: float, final: tuple[float, float, int, bool] | None,
               parent: Path) -> str:
    run = parent / f"seed-{seed}"
    if code == 0:
        ev = (f"final evaluation {final[0]:.1f} ± {final[1]:.1f} ({final[2]} episodes"
              f"{', of the kept best policy' if final[3] else ''})" if final is not None
              else "no final evaluation (--quiet)")
        return f"seed {seed}: done in {seconds:.1f} s, {ev}  {run}"
    if code in (130, 143):
        return f"seed {seed}: stopped (exit {code}); resume with rlworks train --resume {run}"
    log = parent / f"seed-{seed}.log"
    return f"seed {seed}: failed (exit {code}): {_last_line(log)}  (log: {log})"


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"


def _spec(seeds: list[int]) -> str:
    """[0, 1, 2, 7] -> '0-2,7'."""
    parts, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(parts)
