"""``rlworks bench``: rlworks vs Stable-Baselines3, side by side in one run (CartPole-v1, Pendulum-v1).

    rlworks bench [--vs sb3] [--algo ppo|a2c|dqn|sac|td3|ddpg] [--config zoo|best] [--seeds 5] [--total-steps N]
                  [--threads 1] [--device cpu|cuda] [--markdown FILE] [--json FILE]
                  [--backends auto,autograd,compile]  (rlworks backends, each run beside SB3 with its own ratio)
                  [--matmul-precision highest|high|medium]  (dqn/sac/td3: float32 product precision, both)
    rlworks bench tabular [--repeats N] [--seeds N]     (the seed's Q-learning snippet vs rlworks)
    rlworks bench exploration [--methods LIST] [--sizes LIST] [...]   (the DeepSea scaling plot)
    rlworks bench offline [--envs CartPole-v1,Pendulum-v1] [--kinds LIST] [--algos bc,cql,iql,td3-bc,dt]
                          [--seeds 5|5-9] [--steps N] [--eval-every N] [--eval-episodes 10] [--threads 1]
                          [--json FILE] [--markdown FILE] [--plot FILE] [--runs DIR]
                          (the D4RL-protocol table on locally made datasets: median last and best normalised
                          score; commands/offline_bench.py)

DQN (CartPole-v1), SAC, TD3 and DDPG (Pendulum-v1) run through ``benchmarks/offpolicy_vs_sb3.py`` (the
same alternating protocol; it reports updates/s for SAC, TD3 and DDPG).

Each (library, seed) run is a fresh subprocess of ``benchmarks/deep_vs_sb3.py`` (so peak RSS is
per run), alternating A B A B. ``--config zoo`` gives both libraries the RL Zoo hyperparameters;
``--config best`` runs rlworks with its own CartPole preset against SB3 with the Zoo's. Prints
medians and the ratios rlworks/SB3; the claims are the ratios, not the absolute figures.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..algos import MATMUL_PRECISIONS, OFFPOLICY_ALGOS
from ..config import BACKENDS, ConfigError, suggest
from .parsing import check_device

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "deep_vs_sb3.py"
OFFPOLICY_SCRIPT = SCRIPT.with_name("offpolicy_vs_sb3.py")
OPTIONS = {"vs": str, "algo": str, "config": str, "seeds": int, "total-steps": int, "threads": int,
           "markdown": str, "json": str, "eval-every": int, "threshold": float, "device": str, "matmul-precision": str,
           "backends": str}


def _parse(argv: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"vs": "sb3", "algo": "ppo", "config": "zoo", "seeds": 5, "total-steps": 50_000,
                           "threads": 1, "eval-every": 2000, "threshold": 475.0, "device": "cpu",
                           "matmul-precision": "highest", "backends": "auto"}
    i = 0
    while i < len(argv):
        name, eq, val = argv[i].lstrip("-").partition("=")
        if not argv[i].startswith("--") or name not in OPTIONS:
            raise ConfigError(f"unknown option {argv[i]!r}{suggest(name, OPTIONS)}; allowed: "
                              + ", ".join(f"--{k}" for k in OPTIONS))
        if not eq:
            if i + 1 >= len(argv):
                raise ConfigError(f"--{name} needs a value")
            val, i = argv[i + 1], i + 1
        try:
            out[name] = OPTIONS[name](val)
        except ValueError:
            raise ConfigError(f"--{name} {val!r}: expected {OPTIONS[name].__name__}") from None
        i += 1
    for key, allowed in (("vs", ("sb3",)), ("algo", ("ppo", "a2c", *OFFPOLICY_ALGOS)), ("config", ("zoo", "best")),
                         ("matmul-precision", MATMUL_PRECISIONS)):
        if out[key] not in allowed:
            raise ConfigError(f"--{key} {out[key]!r} is not one of {', '.join(allowed)}{suggest(out[key], allowed)}")
    out["backends"] = [b.strip() for b in out["backends"].split(",") if b.strip()] or ["auto"]
    for b in out["backends"]:
        if b not in BACKENDS:
            raise ConfigError(f"--backends: {b!r} is not one of {', '.join(BACKENDS)}{suggest(b, BACKENDS)}")
    check_device(out["device"])
    for key in ("seeds", "total-steps", "threads", "eval-every"):
        if out[key] < 1:
            raise ConfigError(f"--{key} {out[key]} is out of range: allowed [1, inf)")
    return out


def _run(lib: str, seed: int, o: dict[str, Any], backend: str = "auto") -> dict[str, Any]:
    config = "zoo" if lib == "sb3" else o["config"]
    cmd = [sys.executable, str(SCRIPT), "--lib", lib, "--algo", o["algo"], "--config", config, "--seed", str(seed),
           "--backend", backend,
           "--total-steps", str(o["total-steps"]), "--threads", str(o["threads"]), "--eval-every", str(o["eval-every"]),
           "--threshold", str(o["threshold"]), "--device", o["device"]]
    env = {**os.environ, "OMP_NUM_THREADS": str(o["threads"]), "MKL_NUM_THREADS": str(o["threads"])}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{lib} seed {seed} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def _fmt(v: float | None, digits: int = 0) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def summarize(results: list[dict[str, Any]], backend: str = "auto") -> list[tuple[str, str, str, str]]:
    """(figure, rlworks median, SB3 median, ratio) rows for one rlworks backend."""
    a = [r for r in results if r["lib"] == "rlworks" and r.get("backend", "auto") == backend]
    b = [r for r in results if r["lib"] == "sb3"]
    rows = []
    for key, label, digits in (("sps", "training steps/s", 0), ("steps_to_threshold", "steps to threshold", 0),
                               ("seconds_to_threshold", "training seconds to threshold", 2),
                               ("final_eval", "final evaluation return", 1), ("peak_rss_mb", "peak RSS (MB)", 0)):
        ma, mb = _median(a, key), _median(b, key)
        ratio = f"{ma / mb:.2f}×" if ma is not None and mb else "—"
        hits = sum(r[key] is not None for r in a), sum(r[key] is not None for r in b)
        suffix = f" (reached {hits[0]}/{len(a)} vs {hits[1]}/{len(b)})" if key == "steps_to_threshold" else ""
        rows.append((label + suffix, _fmt(ma, digits), _fmt(mb, digits), ratio))
    return rows


def _offpolicy(o: dict[str, Any], argv: list[str]) -> int:
    """DQN/SAC/TD3: hand over to the off-policy runner, which alternates the libraries itself."""
    if not OFFPOLICY_SCRIPT.is_file():
        raise ConfigError(f"{OFFPOLICY_SCRIPT} not found: benchmarks run from a source checkout of rlworks")
    given = {a.lstrip("-").partition("=")[0] for a in argv if a.startswith("--")}
    if given & {"markdown", "json", "eval-every", "threshold"}:
        raise ConfigError("--markdown, --json, --eval-every and --threshold apply to ppo/a2c; "
                          "dqn/sac/td3 print their own table")
    cmd = [sys.executable, str(OFFPOLICY_SCRIPT), "--algo", o["algo"], "--config", o["config"],
           "--seeds", str(o["seeds"]), "--threads", str(o["threads"]), "--device", o["device"],
           "--matmul-precision", o["matmul-precision"], "--backends", ",".join(o["backends"])]
    if "total-steps" in given:
        cmd += ["--total-steps", str(o["total-steps"])]
    env = {**os.environ, "OMP_NUM_THREADS": str(o["threads"]), "MKL_NUM_THREADS": str(o["threads"])}
    return subprocess.run(cmd, env=env).returncode


def main(argv: list[str]) -> int:
    if argv and argv[0] == "offline":  # offline RL on locally made datasets: no peer library involved
        from . import offline_bench

        return offline_bench.main(argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    o = _parse(argv)
    if importlib.util.find_spec("stable_baselines3") is None:
        raise ConfigError("stable-baselines3 is not installed: pip install 'rlworks[bench]'")
    if o["algo"] in OFFPOLICY_ALGOS:
        return _offpolicy(o, argv)
    if o["matmul-precision"] != "highest":
        raise ConfigError("--matmul-precision applies to dqn/sac/td3 only (the ppo/a2c runner does not set it)")
    if not SCRIPT.is_file():
        raise ConfigError(f"{SCRIPT} not found: benchmarks run from a source checkout of rlworks")
    from rich.console import Console
    from rich.table import Table

    console = Console()
    results = []
    t0 = time.time()
    for seed in range(o["seeds"]):
        for lib, backend in [*(("rlworks", b) for b in o["backends"]), ("sb3", "auto")]:  # A B A B …
            r = _run(lib, seed, o, backend)
            results.append(r)
            name = f"{lib} {backend}" if lib == "rlworks" else lib
            compiled = f" (compiling: {r['compile_seconds']:.1f} s)" if r.get("compile_seconds") else ""
            console.print(f"{name:17s} seed {seed}: {r['sps']:,.0f} steps/s{compiled}, to {o['threshold']:g}: "
                          f"{r['steps_to_threshold']} steps / {_fmt(r['seconds_to_threshold'], 2)} s, "
                          f"final {r['final_eval']:.1f}, peak RSS {r['peak_rss_mb']:.0f} MB")
    import gymnasium
    import stable_baselines3
    import torch

    which = "RL Zoo hyperparameters" if o["config"] == "zoo" else "own preset"
    title = (f"{o['algo'].upper()} CartPole-v1, rlworks {which} vs SB3 RL Zoo; {o['seeds']} seeds, "
             f"{o['total-steps']:,} steps, torch threads {o['threads']}, {o['device']}")
    tables = {}
    for backend in o["backends"]:
        table = Table(title=f"{title}; rlworks backend {backend}")
        for col in ("figure (median)", "rlworks", "SB3", "rlworks / SB3"):
            table.add_column(col)
        tables[backend] = summarize(results, backend)
        for row in tables[backend]:
            table.add_row(*row)
        console.print(table)
    env_line = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; Python {platform.python_version()}, "
                f"torch {torch.__version__}, gymnasium {gymnasium.__version__}, stable-baselines3 "
                f"{stable_baselines3.__version__}; {platform.machine()} {os.cpu_count()} CPUs; "
                f"bench wall time {time.time() - t0:.0f} s")
    console.print(env_line)
    if o.get("markdown"):
        md = [f"### {title}", "", env_line, ""]
        for backend, rows in tables.items():
            md += [f"rlworks backend `{backend}`:", "", "| figure (median) | rlworks | SB3 | rlworks / SB3 |",
                   "|---|---|---|---|", *(f"| {' | '.join(r)} |" for r in rows), ""]
        with open(o["markdown"], "a") as fh:
            fh.write("\n".join(md) + "\n\n")
    if o.get("json"):
        Path(o["json"]).write_text(json.dumps({"options": o, "results": results, "environment": env_line}, indent=1))
    return 0
