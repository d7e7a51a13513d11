"""Run logging: metrics.csv (always), TensorBoard events, a learning-curve PNG, and a rich progress
bar for the CLI. Library code only calls ``logger.log(step, metrics)``; printing is the CLI's job."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Protocol


class Logger(Protocol):
    def log(self, step: int, metrics: dict[str, float]) -> None: ...


class NullLogger:
    def log(self, step: int, metrics: dict[str, float]) -> None:
        pass


class RunLogger:
    """Writes ``metrics.csv``, ``episodes.csv`` and TensorBoard events under ``run_dir``; ``close()``
    draws ``learning_curve.png``.

    metrics.csv has the columns ``step``, ``time``, then each metric name in the order it is first
    logged (``columns`` first: names known to come later, such as the evaluation's), so each
    algorithm's file holds its own metrics only; a name first logged later widens the file.
    episodes.csv holds every finished episode's ``step,return,length`` (the curve's raw points). On
    resume, rows after ``resume_step`` (written after the checkpoint being resumed) are dropped from
    both so they read like one uninterrupted run, and the existing header is kept."""

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = True, resume_step: int | None = None,
                 columns: tuple[str, ...] = ()) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.dir / "metrics.csv"
        self.episodes_path = self.dir / "episodes.csv"
        self.columns = ["step", "time"]
        rows: list[dict[str, str]] = []
        self.episodes: list[tuple[int, float]] = []  # (step, return) of every finished episode
        episode_rows: list[list[str]] = []
        if resume_step is not None:
            rows, header = _rows_until(self.csv_path, resume_step)
            self.columns = header or self.columns
            episode_rows, _ = _rows_until(self.episodes_path, resume_step, as_dicts=False)
            self.episodes = [(int(float(r[0])), float(r[1])) for r in episode_rows]
        self.columns += [c for c in columns if c not in self.columns]
        self._write_metrics(rows)
        self._episodes_fh = open(self.episodes_path, "w", newline="")
        self._episodes_csv = csv.writer(self._episodes_fh)
        self._episodes_csv.writerow(["step", "return", "length"])
        self._episodes_csv.writerows(episode_rows)
        self._episodes_fh.flush()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: ~1 s

            self._tb = SummaryWriter(str(self.dir / "tb"), purge_step=resume_step + 1 if resume_step else None)
        self._t0 = time.time()

    def _write_metrics(self, rows: list[dict[str, str]]) -> None:
        """(Re)write metrics.csv with ``self.columns`` and ``rows``, leaving it open for appending."""
        self._fh = open(self.csv_path, "w", newline="")
        self._csv = csv.DictWriter(self._fh, fieldnames=self.columns, extrasaction="ignore", restval="")
        self._csv.writeheader()
        self._csv.writerows(rows)
        self._fh.flush()

    def log(self, step: int, metrics: dict[str, float]) -> None:
        new = [k for k in metrics if k not in self.columns]
        if new:  # rare (e.g. DQN's losses appear once learning starts): rewrite the file with the wider header
            self._fh.close()
            with open(self.csv_path, newline="") as fh:
                rows = list(csv.DictReader(fh))
            self.columns += new
            self._write_metrics(rows)
        self._csv.writerow({"step": step, "time": round(time.time() - self._t0, 3), **metrics})
        self._fh.flush()
        self._episodes_fh.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                if v == v:  # skip NaN placeholders (e.g. no episode finished yet)
                    self._tb.add_scalar(k, v, step)

    def log_episodes(self, step: int, episodes: list[tuple[float, int]]) -> None:
        """Record episodes that ended by ``step``, as ``(return, length)``; flushed with the next log line."""
        for ret, length in episodes:
            self.episodes.append((int(step), float(ret)))
            self._episodes_csv.writerow([int(step), float(ret), int(length)])

    def close(self, title: str = "", *, plot: bool = True) -> Path | None:
        """Close the files; with ``plot``, draw ``learning_curve.png`` (a caller with curves of its own says no)."""
        self._fh.close()
        self._episodes_fh.close()
        if self._tb is not None:
            self._tb.close()
        if not plot:
            return None
        return plot_learning_curve(self.csv_path, self.dir / "learning_curve.png", title, episodes=self.episodes)


def _rows_until(path: Path, step: int, *, as_dicts: bool = True) -> tuple[list[Any], list[str] | None]:
    """Rows of the CSV ``path`` whose ``step`` is at most ``step``, and its header (nothing if absent)."""
    if not path.exists():
        return [], None
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or "step" not in header:
            return [], None
        i = header.index("step")
        rows = [r for r in reader if len(r) > i and r[i] and int(float(r[i])) <= step]
    if as_dicts:
        return [dict(zip(header, r, strict=False)) for r in rows], header
    return rows, header


def moving_average(values: list[float], window: int) -> list[float]:
    """Mean of each ``window`` consecutive values (``len(values) - window + 1`` of them)."""
    import numpy as np

    return np.convolve(np.asarray(values, dtype=float), np.ones(window) / window, mode="valid").tolist()


def plot_learning_curve(csv_path: Path, png_path: Path, title: str = "",
                        episodes: list[tuple[int, float]] | None = None) -> Path | None:
    """Training returns against steps — every episode in ``episodes`` (step, return) faint, a moving
    average over them on top — and the evaluations from metrics.csv as points with their spread.
    Without episodes, the recent-mean ``charts/episodic_return`` of metrics.csv is drawn instead.
    An offline run (its metrics.csv has ``eval/normalized_score``, ``algos/offline.py``) is drawn in D4RL's
    normalised score instead (0: random, 100: the dataset's expert) against gradient steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logged: list[tuple[int, float]] = []
    evals: list[tuple[int, float, float]] = []
    normalized: list[tuple[int, float]] = []
    with open(csv_path, newline="") as fh:
        for r in csv.DictReader(fh):
            ret, ev = r.get("charts/episodic_return", ""), r.get("eval/mean_return", "")
            score = r.get("eval/normalized_score", "")
            if score not in ("", "nan"):
                normalized.append((int(float(r["step"])), float(score)))
            if ret not in ("", "nan"):
                logged.append((int(float(r["step"])), float(ret)))
            if ev not in ("", "nan"):
                std = r.get("eval/std_return", "")
                evals.append((int(float(r["step"])), float(ev), float(std) if std not in ("", "nan") else 0.0))
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if episodes:
        steps, rets = [e[0] for e in episodes], [e[1] for e in episodes]
        # the 20 episodes charts/episodic_return averages: a longer window lags far behind where episode lengths
        # vary (a few long ones after many short failures)
        window = max(1, min(20, len(rets) // 10))
        ax.plot(steps, rets, lw=0.6, alpha=0.3, color="C0", label="training episodes")
        ax.plot(steps[window - 1:], moving_average(rets, window), lw=1.5, color="C0",
                label=f"training, mean of {window}")
    elif logged:
        ax.plot([e[0] for e in logged], [e[1] for e in logged], lw=1.2, color="C0", label="training (recent mean)")
    if normalized:  # offline: no training episodes; the evaluations in normalised score, against gradient steps
        for level in (0, 100):
            ax.axhline(level, color="grey", lw=0.6, ls=":")
        ax.plot([e[0] for e in normalized], [e[1] for e in normalized], "o-", ms=4, color="C3",
                label="evaluation (normalised score)")
    elif evals:
        ax.errorbar([e[0] for e in evals], [e[1] for e in evals], yerr=[e[2] for e in evals], fmt="o", ms=4,
                    capsize=2, color="C3", label="evaluation")
    ax.set_xlabel("gradient steps" if normalized else "environment steps")
    ax.set_ylabel("normalised score (100 = expert)" if normalized else "episodic return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if episodes or logged or evals or normalized:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return png_path


class Progress:
    """Rich progress bar: steps, SPS, recent return, ETA. Used by the CLI, not by library code. It appears at
    ``begin()`` (or the first ``log``), so a run that fails while it is being set up prints only its error."""

    def __init__(self, total: int, description: str, *, start: int = 0, quiet: bool = False) -> None:
        self.quiet, self.started = quiet, False
        if quiet:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RP

        self._p = RP(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TextColumn("{task.fields[sps]:>6} {task.fields[unit]}"), TextColumn("return {task.fields[ret]}"),
                     TimeRemainingColumn(), transient=False)
        self._task = self._p.add_task(description, total=total, completed=start, sps="-", unit="sps", ret="-")

    def begin(self) -> None:
        if not self.quiet and not self.started:
            self._p.start()
            self.started = True

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if self.quiet:
            return
        self.begin()
        fields: dict[str, str] = {}
        if "perf/sps" in metrics:  # env steps per second (online)
            fields.update(sps=f"{metrics['perf/sps']:.0f}", unit="sps")
        elif "perf/ups" in metrics:  # an offline run has no env steps: gradient updates per second
            fields.update(sps=f"{metrics['perf/ups']:.0f}", unit="ups")
        ret = metrics.get("charts/episodic_return", metrics.get("eval/mean_return", float("nan")))
        if ret == ret:  # offline: the latest evaluation's mean return; a line without one keeps the last shown
            fields["ret"] = f"{ret:.1f}"
        self._p.update(self._task, completed=step, **fields)

    def close(self) -> None:
        if self.started:
            self._p.stop()


class Tee:
    """Forward ``log`` calls to several loggers."""

    def __init__(self, *loggers: Any) -> None:
        self.loggers = [lg for lg in loggers if lg is not None]

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for lg in self.loggers:
            lg.log(step, metrics)
