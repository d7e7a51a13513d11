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
    """Writes ``metrics.csv`` and TensorBoard events under ``run_dir``; ``close()`` draws the PNG.

    On resume, rows after ``resume_step`` (written after the checkpoint being resumed) are dropped
    so the CSV reads like one uninterrupted run."""

    COLUMNS = ("step", "time", "charts/episodic_return", "charts/episodic_length", "charts/learning_rate",
               "losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl",
               "losses/clipfrac", "losses/explained_variance", "perf/sps",
               "charts/epsilon", "losses/q_loss", "losses/q_values", "losses/actor_loss", "losses/alpha", "perf/ups",
               "eval/mean_return", "eval/std_return")

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = True, resume_step: int | None = None) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.dir / "metrics.csv"
        rows: list[dict[str, str]] = []
        if resume_step is not None and self.csv_path.exists():
            with open(self.csv_path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if r.get("step") and int(float(r["step"])) <= resume_step]
        self._fh = open(self.csv_path, "w", newline="")
        self._csv = csv.DictWriter(self._fh, fieldnames=self.COLUMNS, extrasaction="ignore", restval="")
        self._csv.writeheader()
        self._csv.writerows(rows)
        self._fh.flush()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: ~1 s

            self._tb = SummaryWriter(str(self.dir / "tb"), purge_step=resume_step + 1 if resume_step else None)
        self._t0 = time.time()

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._csv.writerow({"step": step, "time": round(time.time() - self._t0, 3), **metrics})
        self._fh.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                if v == v:  # skip NaN placeholders (e.g. no episode finished yet)
                    self._tb.add_scalar(k, v, step)

    def close(self, title: str = "") -> Path | None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()
        return plot_learning_curve(self.csv_path, self.dir / "learning_curve.png", title)


def plot_learning_curve(csv_path: Path, png_path: Path, title: str = "") -> Path | None:
    """Episodic return against steps, from metrics.csv (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, rets = [], []
    with open(csv_path, newline="") as fh:
        for r in csv.DictReader(fh):
            v = r.get("charts/episodic_return", "")
            if v not in ("", "nan"):
                steps.append(int(float(r["step"])))
                rets.append(float(v))
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, rets, lw=1.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episodic return (recent mean)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return png_path


class Progress:
    """Rich progress bar: steps, SPS, recent return, ETA. Used by the CLI, not by library code."""

    def __init__(self, total: int, description: str, *, start: int = 0, quiet: bool = False) -> None:
        self.quiet = quiet
        if quiet:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RP

        self._p = RP(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TextColumn("{task.fields[sps]:>6} sps"), TextColumn("return {task.fields[ret]}"),
                     TimeRemainingColumn(), transient=False)
        self._task = self._p.add_task(description, total=total, completed=start, sps="-", ret="-")
        self._p.start()

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if self.quiet:
            return
        ret = metrics.get("charts/episodic_return", float("nan"))
        self._p.update(self._task, completed=step, sps=f"{metrics.get('perf/sps', 0):.0f}",
                       ret="-" if ret != ret else f"{ret:.1f}")

    def close(self) -> None:
        if not self.quiet:
            self._p.stop()


class Tee:
    """Forward ``log`` calls to several loggers."""

    def __init__(self, *loggers: Any) -> None:
        self.loggers = [lg for lg in loggers if lg is not None]

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for lg in self.loggers:
            lg.log(step, metrics)
