"""The D4RL-protocol table of ``rlworks bench offline`` (``commands/offline_bench.py``) from its result rows:
the medians over seeds, the markdown table and the heatmaps. Pure functions of the rows, no training."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any


def summary(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(env, kind, algo) -> {last, best: medians over the scored seeds (None if none), seeds, failed, updates_per_s}."""
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["env"], r["kind"], r["algo"]), []).append(r)

    def median(runs: list[dict[str, Any]], key: str) -> float | None:
        vals = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    return {k: {"last": median(v, "last"), "best": median(v, "best"), "seeds": len(v),
                "failed": sum(r.get("last") is None for r in v), "updates_per_s": median(v, "updates_per_s")}
            for k, v in cells.items()}


def _score(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def cell_text(cell: dict[str, Any] | None) -> str:
    """"last (best)", with the runs that diverged: "43.2 (71.0)", "— (—), 2 diverged"."""
    if cell is None:
        return ""
    text = f"{_score(cell['last'])} ({_score(cell['best'])})"
    return text + (f", {cell['failed']} diverged" if cell["failed"] else "")


def markdown(table: dict[tuple[str, str, str], dict[str, Any]], envs: list[str], kinds: list[str],
             algos: list[str], note: str = "") -> str:
    """Rows: the datasets (env/kind); columns: ``algos``; cells: median last (median best) normalised score."""
    lines = ["Normalised score (100 = the dataset's expert, 0 = a random policy), median over seeds: **last** (the "
             "final policy's evaluation) and, in parentheses, **best** (the best evaluation during training, biased "
             "upward). Locally generated datasets (`rlworks datasets make ENV`), not D4RL's." + (f" {note}" if note
                                                                                                  else ""), "",
             f"| dataset | {' | '.join(algos)} | seeds |", "|---" * (len(algos) + 2) + "|"]
    for env in envs:
        for kind in kinds:
            cells = [table.get((env, kind, a)) for a in algos]
            if not any(cells):
                continue
            n = sorted({c["seeds"] for c in cells if c})
            seeds = str(n[0]) if len(n) == 1 else f"{n[0]}–{n[-1]}"
            lines.append(f"| {env} {kind} | {' | '.join(cell_text(c) for c in cells)} | {seeds} |")
    ups = []
    for env in envs:
        per = [(a, statistics.median(c["updates_per_s"] for k, c in table.items() if k[0] == env and k[2] == a
                                     and c["updates_per_s"] is not None)) for a in algos
               if any(k[0] == env and k[2] == a and c["updates_per_s"] is not None for k, c in table.items())]
        if per:
            ups.append(f"{env}: " + ", ".join(f"{a} {v:,.0f}" for a, v in per))
    if ups:
        lines += ["", "Gradient updates per second (median): " + "; ".join(ups) + "."]
    return "\n".join(lines) + "\n"


def plot(table: dict[tuple[str, str, str], dict[str, Any]], envs: list[str], kinds: list[str],
         algos_by_env: dict[str, list[str]], path: str | Path) -> Path:
    """One heatmap per env: algorithm × dataset kind, coloured by the median last score (0-100), the number in each
    cell and the median best in parentheses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    envs = [e for e in envs if algos_by_env.get(e)]
    fig, axes = plt.subplots(1, max(len(envs), 1), figsize=(1.6 + 1.5 * len(kinds) * max(len(envs), 1), 3.8),
                             dpi=110, squeeze=False)
    image = None
    for ax, env in zip(axes[0], envs, strict=False):
        algos = algos_by_env[env]
        grid = np.full((len(algos), len(kinds)), np.nan)
        for i, a in enumerate(algos):
            for j, k in enumerate(kinds):
                cell = table.get((env, k, a))
                if cell is not None and cell["last"] is not None:
                    grid[i, j] = cell["last"]
                if cell is not None:
                    ax.text(j, i, f"{_score(cell['last'])}\n({_score(cell['best'])})", ha="center", va="center",
                            fontsize=8)
        image = ax.imshow(np.clip(grid, -10, 110), cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(algos)), algos, fontsize=9)
        ax.set_title(env, fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label="normalised score, last (median)", shrink=0.9)
    fig.suptitle("offline RL on locally made datasets: median last score (best during training)", fontsize=9)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------
