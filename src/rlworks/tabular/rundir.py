"""A tabular run on disk: config.json, metrics.csv, q_table.npy, learning_curve.png, MANIFEST.json.

The Q-table is a plain ``.npy`` array, read back with ``allow_pickle=False``; MANIFEST.json
(sha256 of every file, written last) lets ``rlworks eval`` tell a complete run from a damaged
one and name the file at fault.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from rlworks.config import ConfigError

SCHEMA = 1
FILES = ("config.json", "metrics.csv", "q_table.npy")


def default_run_dir(algo: str, env_id: str, seed: int, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe_env = env_id.replace("/", "_")
    path = Path(root) / f"{algo}-{safe_env}-{seed}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path(root) / f"{algo}-{safe_env}-{seed}-{stamp}-{n}"
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_run(run_dir: str | Path, result, *, env_id: str, env_kwargs: dict[str, Any], epsilons, alphas) -> Path:
    """Write a finished tabular run. Files are written, then the manifest last."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    config = {
        "kind": "tabular",
        "schema": SCHEMA,
        **result.config,
        "env": env_id,
        "env_kwargs": env_kwargs,
        "steps": int(result.steps),
        "loop_seconds": float(result.loop_seconds),
    }
    from rlworks import __version__

    config["rlworks_version"] = __version__
    (run / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    with open(run / "metrics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["episode", "return", "length", "epsilon", "alpha"])
        for i, (ret, length) in enumerate(zip(result.episode_returns, result.episode_lengths)):
            w.writerow([i, repr(float(ret)), int(length), repr(float(epsilons[i])), repr(float(alphas[i]))])
    np.save(run / "q_table.npy", np.ascontiguousarray(result.q, dtype=np.float64), allow_pickle=False)
    try:
        plot_curve(run / "learning_curve.png", result.episode_returns, result.episode_lengths,
                   title=f"{result.algo} on {env_id}")
    except Exception as exc:  # a plot must never cost the run
        (run / "learning_curve.txt").write_text(f"plot failed: {exc}\n")
    manifest = {name: _sha256(run / name) for name in FILES}
    tmp = run / "MANIFEST.json.tmp"
    tmp.write_text(json.dumps({"schema": SCHEMA, "files": manifest}, indent=2))
    os.replace(tmp, run / "MANIFEST.json")
    return run


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], np.ndarray]:
    """(config, Q) of a saved run, verified against its manifest; ConfigError names what is wrong."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(f"run directory {str(run)!r} does not exist")
    mpath = run / "MANIFEST.json"
    if not mpath.is_file():
        raise ConfigError(f"{mpath}: missing; the run is incomplete or not an rlworks run directory")
    try:
        manifest = json.loads(mpath.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{mpath}: corrupt (not a valid manifest)") from None
    for name in FILES:
        f = run / name
        if not f.is_file():
            raise ConfigError(f"{f}: missing")
        if manifest.get(name) != _sha256(f):
            raise ConfigError(f"{f}: corrupt (sha256 does not match MANIFEST.json)")
    try:
        config = json.loads((run / "config.json").read_text())
        q = np.load(run / "q_table.npy", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{run}: unreadable run files: {exc}") from None
    if config.get("kind") != "tabular" or q.ndim != 2:
        raise ConfigError(f"{run / 'config.json'}: not a tabular run")
    return config, q


def plot_curve(path: Path, returns, lengths, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    returns = np.asarray(returns, dtype=float)
    lengths = np.asarray(lengths, dtype=float)
    window = max(1, len(returns) // 50)
    kernel = np.ones(window) / window

    def smooth(x: np.ndarray) -> np.ndarray:
        return np.convolve(x, kernel, mode="valid") if len(x) >= window else x

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    x = np.arange(len(smooth(returns))) + window
    ax1.plot(np.arange(1, len(returns) + 1), returns, color="#c7d2fe", lw=0.6)
    ax1.plot(x, smooth(returns), color="#4f46e5", lw=1.6, label=f"mean of {window}")
    ax1.set_ylabel("return")
    ax1.legend(loc="lower right")
    ax1.set_title(title)
    ax2.plot(np.arange(1, len(lengths) + 1), lengths, color="#fed7aa", lw=0.6)
    ax2.plot(x, smooth(lengths), color="#ea580c", lw=1.6)
    ax2.set_ylabel("steps")
    ax2.set_xlabel("episode")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
