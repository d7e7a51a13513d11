"""The whole RLHF pipeline in one call: pretrain → SFT → preferences → reward model → PPO, DPO and GRPO → the
over-optimisation sweep → head-to-head evaluation → ``report.json`` and pictures.

    run_dir/pretrain/  sft/  preferences/{pairs,labels}.jsonl  reward-model/  ppo/  dpo/  grpo/
    run_dir/overoptimisation/beta-<β>/   run_dir/report.json  run_dir/*.png  run_dir/samples.md

A stage already done (its ``stage.json``) is not run again, so ``run`` on an existing folder continues where a
stopped run ended; a stage with checkpoints resumes from its newest one. Settings come from a preset of
``presets/rlhf.toml``, one table per stage, each a config dataclass (``rlworks rlhf run --print-config``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import PRESET_DIR, ConfigError, check_range, from_dict, load_toml, suggest
from . import preferences as prefs
from .dpo import DPOConfig
from .grpo import GRPOConfig
from .ppo import PPOConfig
from .reward_model import RewardModelConfig
from .stage import is_done, read_stage
from .supervised import PretrainConfig, SFTConfig
from .task import TASK, Labeller

PRESET_FILE = PRESET_DIR / "rlhf.toml"


@dataclass(frozen=True)
class DataConfig:
    pairs: int = 5000
    """preference pairs sampled from the SFT model and labelled by the simulated labeller"""
    held_out: float = 0.2
    """share of the pairs kept out of training to measure the reward model"""
    labeller_temperature: float = 0.5
    """noise of the simulated labeller (task.Labeller)"""
    prompts: int = 2000
    """prompts for PPO and GRPO"""
    eval_prompts: int = 512
    """held-out prompts of the head-to-head evaluation"""

    def __post_init__(self) -> None:
        for name in ("pairs", "prompts", "eval_prompts"):
            check_range(name, getattr(self, name), 2)
        check_range("held_out", self.held_out, 0, 1, high_open=True)
        check_range("labeller_temperature", self.labeller_temperature, 0, low_open=True)


@dataclass(frozen=True)
class SweepConfig:
    betas: tuple[float, ...] = (0.1, 0.02, 0.0)
    """KL coefficients of the over-optimisation sweep (PPO runs beside the main one); empty: no sweep"""
    steps: int = 60
    """PPO iterations of each sweep run"""

    def __post_init__(self) -> None:
        for b in self.betas:
            check_range("betas", b, 0)
        check_range("steps", self.steps, 1)


STAGES: dict[str, type] = {"pretrain": PretrainConfig, "sft": SFTConfig, "data": DataConfig,
                           "reward_model": RewardModelConfig, "ppo": PPOConfig, "dpo": DPOConfig,
                           "grpo": GRPOConfig, "sweep": SweepConfig}


@dataclass(frozen=True)
class Preset:
    name: str
    configs: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.configs[key]
        except KeyError:
            raise AttributeError(key) from None

    def as_dict(self) -> dict[str, Any]:
        return {k: dataclasses.asdict(v) for k, v in self.configs.items()}


def preset_names() -> list[str]:
    return list(load_toml(PRESET_FILE))


def load_preset(name: str, overrides: dict[str, dict[str, Any]] | None = None) -> Preset:
    """Preset ``name`` of presets/rlhf.toml, with ``overrides`` (stage → field → value) on top."""
    table = load_toml(PRESET_FILE)
    if name not in table:
        raise ConfigError(f"unknown RLHF preset {name!r}{suggest(name, table)}; available: {', '.join(table)}")
    overrides = overrides or {}
    for stage in [*table[name], *overrides]:
        if stage not in STAGES:
            raise ConfigError(f"unknown RLHF stage {stage!r}{suggest(stage, STAGES)}; stages: {', '.join(STAGES)}")
    configs = {}
    for stage, cls in STAGES.items():
        data = {**table[name].get(stage, {}), **overrides.get(stage, {})}
        try:
            configs[stage] = from_dict(cls, data)
        except ConfigError as exc:
            raise ConfigError(f"{stage}: {exc}") from None
    return Preset(name, configs)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def run(preset: str | Preset = "tiny", *, seed: int = 0, run_dir: str | Path = "runs/rlhf",
        preferences_file: str | Path | None = None, base_model: str | Path | None = None,
        log: Any = None) -> dict:
    """Run every stage into ``run_dir`` and write ``report.json`` (returned). ``preferences_file``: train the
    reward model and DPO on these labels (e.g. from the labelling page) instead of the simulated labeller's;
    ``base_model``: a local Hugging Face causal-LM folder to fine-tune instead of pretraining one."""
    from . import dpo, evaluate, grpo, ppo, report, reward_model, supervised

    p = preset if isinstance(preset, Preset) else load_preset(preset)
    root = Path(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    _write_json(root / "preset.json", {"preset": p.name, "seed": seed, "configs": p.as_dict()})
    say = log or (lambda msg: None)
    d = root / "pretrain"
    if base_model is None and not is_done(d):
        say("pretrain")
        supervised.pretrain(d, p.pretrain, seed=seed)
    base = Path(base_model) if base_model is not None else d
    if not is_done(root / "sft"):
        say("sft")
        supervised.sft(base, root / "sft", p.sft, seed=seed)
    sft_dir = root / "sft"
    pref_dir = root / "preferences"
    labels_path = pref_dir / "labels.jsonl"
    if preferences_file is not None:
        rows = prefs.read_preferences(preferences_file)
    elif labels_path.is_file():
        rows = prefs.read_preferences(labels_path)
    else:
        say("preferences")
        t0 = time.perf_counter()
        pairs = prefs.make_pairs(sft_dir, p.data.pairs, seed=seed, max_new_tokens=p.ppo.max_new_tokens)
        prefs.write_jsonl(pref_dir / "pairs.jsonl", pairs)
        rows = prefs.simulate_labels(pairs, Labeller(p.data.labeller_temperature), seed=seed)
        prefs.write_jsonl(labels_path, rows)
        _write_json(pref_dir / "stage.json", {"stage": "preferences", "done": True,
                                              "seconds": round(time.perf_counter() - t0, 2), "pairs": len(rows)})
    train_rows, held_rows = prefs.split(rows, p.data.held_out, seed=seed)
    rm_dir = root / "reward-model"
    if not is_done(rm_dir):
        say("reward-model")
        reward_model.train_reward_model(sft_dir, rm_dir, train_rows, held_rows, p.reward_model, seed=seed)
    prompts = TASK.prompts(p.data.prompts, np.random.default_rng([seed, 8]))
    eval_prompts = TASK.prompts(p.data.eval_prompts, np.random.default_rng([seed, 9]))
    if not is_done(root / "ppo"):
        say("ppo")
        ppo.ppo(sft_dir, rm_dir, root / "ppo", prompts, p.ppo, seed=seed)
    if not is_done(root / "dpo"):
        say("dpo")
        dpo.dpo(sft_dir, root / "dpo", train_rows, p.dpo, seed=seed)
    if not is_done(root / "grpo"):
        say("grpo")
        grpo.grpo(sft_dir, rm_dir, root / "grpo", prompts, p.grpo, seed=seed)
    sweep = {}
    for beta in p.sweep.betas:
        d = root / "overoptimisation" / f"beta-{beta:g}"
        if not is_done(d):
            say(f"overoptimisation beta={beta:g}")
            cfg = dataclasses.replace(p.ppo, beta=beta, adaptive_kl=False, steps=p.sweep.steps)
            ppo.ppo(sft_dir, rm_dir, d, prompts, cfg, seed=seed)
        sweep[beta] = d
    say("evaluate")
    t0 = time.perf_counter()
    evals = {name: evaluate.head_to_head(root / name, sft_dir, eval_prompts, seed=seed + 10, rm_dir=rm_dir,
                                           max_new_tokens=p.ppo.max_new_tokens)
             for name in ("ppo", "dpo", "grpo")}
    sweep_evals = {beta: evaluate.head_to_head(d, sft_dir, eval_prompts, seed=seed + 10, rm_dir=rm_dir,
                                               max_new_tokens=p.ppo.max_new_tokens)
                   for beta, d in sweep.items()}
    stages = {name: read_stage(root / name) for name in ("sft", "reward-model", "ppo", "dpo", "grpo")}
    if base_model is None:
        stages["pretrain"] = read_stage(root / "pretrain")
    if is_done(pref_dir) and preferences_file is None:
        stages["preferences"] = read_stage(pref_dir)
    stages["evaluate"] = {"seconds": round(time.perf_counter() - t0, 2)}
    out = report.build(p, seed, stages, evals, {b: (read_stage(d), sweep_evals[b]) for b, d in sweep.items()},
                       root, base_model=base_model, preferences_file=preferences_file)
    out["seconds"]["this_call_wall"] = round(time.perf_counter() - t_start, 2)
    _write_json(root / "report.json", out)
    report.pictures(out, root)
    return out
