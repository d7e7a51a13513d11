"""A run folder, as ``rlworks train`` and ``rlworks.train(..., run_dir=DIR)`` both write it:

    config.json          what ran: algo, env, seed, total_steps, preset, device, intervals, the config
    metrics.csv          one row per log line, with this algorithm's own columns (core/logging.py)
    episodes.csv         every finished episode: step, return, length
    tb/                  TensorBoard events
    learning_curve.png   training returns (every episode, smoothed) and evaluation returns
    checkpoints/         step-<N>/ and ``latest`` (core/checkpoint.py)
    best/                the best evaluated policy, with ``eval_every`` (the agent returned with keep="best")

Nothing is written until the training session is built (env made, action space checked, device
found), and a run that fails before it logged or checkpointed anything removes the folder it
created: a command that cannot run leaves nothing behind that ``rlworks eval`` would then call
incomplete. A folder that existed before is never removed. Library code: it prints nothing.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..core.checkpoint import read_state
from ..core.evaluation import PeriodicEvaluator
from ..core.logging import Logger, RunLogger, Tee
from ..core.run import RunContext

EVAL_COLUMNS = ("eval/mean_return", "eval/std_return")


def default_run_dir(algo: str, env_id: str, seed: int) -> Path:
    return Path(f"runs/{algo}-{env_id.replace('/', '_')}-{seed}-{time.strftime('%Y%m%d-%H%M%S')}")


def default_checkpoint_every(total_steps: int) -> int:
    """Five checkpoints over a run, unless asked otherwise."""
    return max(total_steps // 5, 1)


def run_meta(algo: str, env_id: str, config: Any, *, seed: int, total_steps: int, preset: str | None, device: str,
             num_threads: int | None, matmul_precision: str | None, checkpoint_every: int, eval_every: int = 0,
             eval_episodes: int = 10, keep_checkpoints: int | None = None, keep: str = "last") -> dict[str, Any]:
    """The contents of a deep run's ``config.json`` (``commands.parsing.read_run`` reads it back)."""
    return {"kind": "deep", "algo": algo, "env_id": env_id, "seed": int(seed), "total_steps": int(total_steps),
            "preset": preset, "device": device, "num_threads": num_threads, "matmul_precision": matmul_precision,
            "checkpoint_every": int(checkpoint_every), "eval_every": int(eval_every),
            "eval_episodes": int(eval_episodes), "keep_checkpoints": keep_checkpoints, "keep": keep,
            "config": dataclasses.asdict(config)}


class RunFolder:
    """Trains into a run folder: ``RunFolder(path, meta).train(config, device=...)``.

    ``meta`` is ``run_meta(...)``; with ``resume_from`` (a checkpoint of this folder) the run continues
    and its logs are cut back to that checkpoint's step. ``evaluator`` is the ``PeriodicEvaluator``
    when ``meta["eval_every"]`` is set (its best return and step are there after training). With
    ``meta["keep"] == "best"`` ``train`` returns the best evaluated policy (best/), else the final one;
    checkpoints/ always hold the training state, so a resumed run continues from where it stopped and
    still returns the best policy of the whole run (best/ keeps its score across the resume)."""

    def __init__(self, path: str | Path, meta: dict[str, Any], *, resume_from: str | Path | None = None) -> None:
        self.path, self.meta, self.resume_from = Path(path), meta, resume_from
        if resume_from is None and (self.path / "checkpoints").exists():
            raise ConfigError(f"{self.path} already holds a run; use --resume {self.path} (resume_from= in Python) "
                              f"or another run directory")
        self.start = int(read_state(resume_from)["sampler"]["global_step"]) if resume_from is not None else 0
        self.evaluator: PeriodicEvaluator | None = None
        self.logger: RunLogger | None = None  # opened once the session is built
        # the outermost folder this run creates (``runs/`` too, the first time), removed if the run fails at once
        self._created = None
        for p in (self.path, *self.path.parents):
            if p.exists():
                break
            self._created = p
        self._wrote = False

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._wrote = True
        self.logger.log(step, metrics)

    def _episodes(self, step: int, episodes: list[tuple[float, int]]) -> None:
        self.logger.log_episodes(step, episodes)

    def _open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "config.json").write_text(json.dumps(self.meta, indent=2, sort_keys=True))
        self.logger = RunLogger(self.path, resume_step=self.start if self.resume_from is not None else None,
                                columns=EVAL_COLUMNS if self.meta["eval_every"] else ())

    def train(self, config: Any, *, env: Any = None, device: str = "cpu", display: Logger | None = None,
              on_start: Any = None, callback: Any = None, **hooks: Any) -> Any:
        """Train ``config`` as ``meta`` says and return the agent. ``env``: what the algorithm's ``train``
        takes as its env when it is more than ``meta["env_id"]`` (an instance, a factory). ``display`` also
        receives every log line (a progress bar); ``on_start``, ``callback`` and ``hooks`` (``log_every``,
        ``stop_at``) are the ``RunContext`` fields a caller may add."""
        from . import info, kept_agent

        m = self.meta
        keep = m.get("keep") or "last"  # runs written before keep existed returned the final policy
        if m["eval_every"]:
            self.evaluator = PeriodicEvaluator(m["eval_every"], m["eval_episodes"], logger=Tee(self, display),
                                               best_dir=self.path / "best", then=callback, start=self.start,
                                               keep_best=keep == "best")

        def started(session: Any) -> None:
            self._open()
            if on_start is not None:
                on_start(session)

        ctx = RunContext(logger=Tee(self, display), checkpoint_dir=self.path / "checkpoints",
                         checkpoint_every=m["checkpoint_every"], keep_checkpoints=m.get("keep_checkpoints"),
                         callback=self.evaluator or callback, on_start=started, resume_from=self.resume_from,
                         on_episodes=self._episodes, **hooks)
        try:
            agent = info(m["algo"]).train(_env_of(m) if env is None else env, config, total_steps=m["total_steps"],
                                          seed=m["seed"], device=device, run=ctx)
            return kept_agent(agent, self.evaluator, keep)
        except BaseException:
            self.close()
            if self._created is not None and not self._wrote and not (self.path / "checkpoints" / "latest").exists():
                shutil.rmtree(self._created, ignore_errors=True)
            raise
        finally:
            self.close()

    def close(self) -> None:
        """Close the logs and draw the learning curve (done by ``train`` however it ends)."""
        if self.logger is not None:
            m = self.meta
            self.logger.close(f"{m['algo']} {m['env_id']} seed {m['seed']}")
            self.logger = None


def _env_of(meta: dict[str, Any]) -> Any:
    """The env a run folder's ``config.json`` describes: its record (an id with kwargs and wrappers, or a
    spec) where one was saved, else its id."""
    record = meta.get("env")
    if record is None:
        return meta["env_id"]
    from ..core.envs import EnvSource

    source = EnvSource.from_record(record)
    if source is None:
        raise ConfigError(f"this run trained on {record.get('what', 'an env')}, which cannot be rebuilt from its "
                          "config.json; continue it from Python: rlworks.train(..., env=ENV, run_dir=RUN, "
                          "resume_from=RUN)")
    return source
