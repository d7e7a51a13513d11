"""The D4RL-protocol table of ``rlworks bench offline`` (``commands/offline_bench.py``) from its result rows:
what makes two rows the same run, reading them, the medians over seeds, the markdown table and the heatmaps.
Functions of the rows, no training."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from ..config import ConfigError

#: what makes two runs the same run (resuming from --json)
KEY = ("env", "kind", "algo", "seed", "steps", "eval_every", "eval_episodes", "transitions", "matmul_precision")
#: a row written before a key existed: its value then
KEY_DEFAULTS = {"matmul_precision": "highest"}


def key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row.get(k, KEY_DEFAULTS.get(k)) for k in KEY)


def read_results(path: Path) -> list[dict[str, Any]]:
    """The result rows in ``path`` (none if it does not exist); ConfigError naming the line that is not one."""
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"{path}:{n}: not a JSON line; pass another --json") from None
        if not isinstance(row, dict) or not all(k in row or k in KEY_DEFAULTS for k in KEY):
            raise ConfigError(f"{path}:{n}: not a result of rlworks bench offline; pass another --json")
        rows.append(row)
    return rows


def any_budget(rows: list[dict[str, Any]], jobs: list[dict[str, Any]],
               any_eval_every: bool) -> tuple[list[dict[str, Any]], list[int]]:
    """``--plot-only`` without ``--steps``: the rows of ``jobs``' cells at whatever budget they were run (the
    preset's or a ``--steps N`` of the run that made them), and those budgets; ConfigError if one cell has runs
    at several budgets (``--steps`` then picks one)."""
    free = {"steps"} | ({"eval_every"} if any_eval_every else set())

    def loose(r: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(v for k, v in zip(KEY, key(r)) if k not in free)

    wanted = {loose(j) for j in jobs}
    picked = [r for r in rows if loose(r) in wanted]
    budgets: dict[tuple[str, str, str], set[int]] = {}
    for r in picked:
        budgets.setdefault((r["env"], r["kind"], r["algo"]), set()).add(int(r["steps"]))
    mixed = [f"{algo} on {env} {kind}: {', '.join(map(str, sorted(b)))}" for (env, kind, algo), b in budgets.items()
             if len(b) > 1]
    if mixed:
        raise ConfigError(f"--json holds runs at several gradient-step budgets ({'; '.join(mixed)}); pass --steps "
                          "to tabulate one")
    return picked, sorted({int(r["steps"]) for r in picked})


def summary(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(env, kind, algo) -> {last, best: medians over the scored seeds (None if none), seeds, failed, updates_per_s}."""
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["env"], r["kind"], r["algo"]), []).append(r)

    def median(runs: list[dict[str, Any]], field: str) -> float | None:
        vals = [r[field] for r in runs if r.get(field) is not None]
        return statistics.median(vals) if vals else None

    return {k: {"last": median(v, "last"), "best": median(v, "best"), "seeds": len(v),
                "failed": sum(r.get("last") is None for r in v), "updates_per_s": median(v, "updates_per_s")}
            for k, v in cells.items()}


def _score(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def _seeds(n: int) -> str:
    return f"{n} seed{'s' * (n != 1)}"


def cell_text(cell: dict[str, Any] | None, count_seeds: bool = False) -> str:
    """"last (best)", with the runs that diverged and, with ``count_seeds``, the number of seeds: "43.2 (71.0)",
    "— (—), 2 diverged", "101.1 (101.3), 1 seed"."""
    if cell is None:
        return ""
    text = f"{_score(cell['last'])} ({_score(cell['best'])})"
    text += f", {cell['failed']} diverged" if cell["failed"] else ""
    return text + (f", {_seeds(cell['seeds'])}" if count_seeds else "")


def fewer_seeds(cells: list[dict[str, Any] | None]) -> list[bool]:
    """For the cells of one dataset's row: True where a cell has fewer seeds than the row's most."""
    most = max((c["seeds"] for c in cells if c), default=0)
    return [c is not None and c["seeds"] < most for c in cells]


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
            seeds = str(n[0]) if len(n) == 1 else f"{n[0]}–{n[-1]}"  # cells with fewer seeds say how many
            text = [cell_text(c, count_seeds=few) for c, few in zip(cells, fewer_seeds(cells), strict=True)]
            lines.append(f"| {env} {kind} | {' | '.join(text)} | {seeds} |")
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


def heat_label(cell: dict[str, Any], count_seeds: bool = False) -> str:
    """A heatmap cell's text: "last\n(best)", and the number of seeds on a third line with ``count_seeds``."""
    text = f"{_score(cell['last'])}\n({_score(cell['best'])})"
    return text + (f"\n{_seeds(cell['seeds'])}" if count_seeds else "")


def plot(table: dict[tuple[str, str, str], dict[str, Any]], envs: list[str], kinds: list[str],
         algos_by_env: dict[str, list[str]], path: str | Path) -> Path:
    """One heatmap per env: algorithm × dataset kind, coloured by the median last score (0-100), the number in each
    cell and the median best in parentheses; a cell with fewer seeds than others of its dataset says how many."""
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
        for j, k in enumerate(kinds):
            cells = [table.get((env, k, a)) for a in algos]
            for i, (cell, few) in enumerate(zip(cells, fewer_seeds(cells), strict=True)):
                if cell is not None and cell["last"] is not None:
                    grid[i, j] = cell["last"]
                if cell is not None:
                    ax.text(j, i, heat_label(cell, few), ha="center", va="center", fontsize=8)
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
