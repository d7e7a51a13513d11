"""``rlworks rlhf``: the RLHF pipeline, whole or one stage at a time (docs/rlhf.md).

    rlworks rlhf run [--preset tiny] [--seed N] [--run-dir DIR] [--preferences FILE] [--base-model DIR]
                     [--set STAGE.FIELD=VALUE ...] [--print-config]
    rlworks rlhf pretrain --out DIR [fields]
    rlworks rlhf sft --model DIR --out DIR [fields]
    rlworks rlhf pairs --model SFT_DIR --out PAIRS.jsonl [--n N]        pairs to label (rlworks lab --label)
    rlworks rlhf reward-model --model SFT_DIR --preferences FILE --out DIR [--held-out 0.2] [fields]
    rlworks rlhf ppo|grpo --model SFT_DIR --reward-model RM_DIR --out DIR [--prompts N] [fields]
    rlworks rlhf dpo --model SFT_DIR --preferences FILE --out DIR [fields]
    rlworks rlhf eval --model DIR --reference SFT_DIR [--reward-model RM_DIR] [--prompts N]

Every stage's folder is a Hugging Face model folder; ``--model`` takes any local causal-LM folder with its
tokenizer. The options of each stage come from its config dataclass (``rlworks rlhf ppo --help``).
"""

from __future__ import annotations

import json
from pathlib import Path

from rlworks.commands.options import HelpFormatter, add_config_fields, given, int_arg
from rlworks.commands.parsing import Parser
from rlworks.config import ConfigError, suggest

USAGE = __doc__.split("\n\n")[1]
COMMANDS = ("run", "pretrain", "sft", "pairs", "reward-model", "ppo", "dpo", "grpo", "eval")


def _parser(cmd: str, description: str, cfg_cls: type | None = None) -> Parser:
    p = Parser(prog=f"rlworks rlhf {cmd}", description=description, formatter_class=HelpFormatter)
    p.add_argument("--seed", type=int_arg, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int_arg, default=None, help="torch CPU threads (default: torch's choice)")
    if cfg_cls is not None:
        add_config_fields(p.add_argument_group(f"{cfg_cls.__name__} fields"), cfg_cls, cfg_cls())
    return p


def _enter(threads: int | None) -> None:
    """The CLI's process settings: torch threads, and transformers' notices kept to errors (its load report
    names the reward model's new head, which is expected, and its progress bars would flood the log)."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads {threads} is out of range: allowed [1, inf)")
        torch.set_num_threads(threads)


def _dir(path: str, what: str) -> Path:
    p = Path(path)
    if not (p / "config.json").is_file():
        raise ConfigError(f"{what} {path!r} is not a Hugging Face model folder (no config.json)")
    return p


def _print(result: dict) -> int:
    print(json.dumps(result.get("results", result), indent=1))
    return 0


def _overrides(items: list[str]) -> dict[str, dict]:
    """``STAGE.FIELD=VALUE`` (the value as TOML: 0.02, true, [0.1, 0.0], "x") → {stage: {field: value}}."""
    from rlworks.config import tomllib

    out: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        stage, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ConfigError(f"--set {item!r}: expected STAGE.FIELD=VALUE, e.g. ppo.beta=0.02")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word: a string
        out.setdefault(stage.replace("-", "_"), {})[name.replace("-", "_")] = value
    return out


def cmd_run(argv: list[str]) -> int:
    from rlworks.rlhf import pipeline

    p = _parser("run", "Run every stage of the RLHF pipeline and write report.json.")
    p.add_argument("--preset", default="tiny",
                   help=f"preset of presets/rlhf.toml ({', '.join(pipeline.preset_names())})")
    p.add_argument("--run-dir", default=None, help="the run folder (default runs/rlhf-<preset>-<seed>); an existing "
                   "one continues where it stopped")
    p.add_argument("--preferences", default=None, help="preference JSONL (TRL format, e.g. from the labelling page) "
                   "instead of the simulated labeller")
    p.add_argument("--base-model", default=None, help="a local causal-LM folder to fine-tune instead of pretraining")
    p.add_argument("--set", nargs="+", default=[], metavar="STAGE.FIELD=VALUE", help="override preset fields")
    p.add_argument("--print-config", action="store_true", help="print the settings as JSON and exit")
    a = p.parse_args(argv)
    preset = pipeline.load_preset(a.preset, _overrides(a.set))
    if a.print_config:
        print(json.dumps(preset.as_dict(), indent=1))
        return 0
    if a.base_model is not None:
        _dir(a.base_model, "--base-model")
    _enter(a.threads)
    run_dir = a.run_dir or f"runs/rlhf-{a.preset}-{a.seed}"
    out = pipeline.run(preset, seed=a.seed, run_dir=run_dir, preferences_file=a.preferences,
                       base_model=a.base_model, log=lambda m: print(f"[rlhf] {m}", flush=True))
    print(json.dumps({k: out[k] for k in ("seconds", "reward_model", "policies", "goals")}, indent=1))
    print(f"report: {Path(run_dir) / 'report.json'}")
    return 0


def cmd_stage(cmd: str, argv: list[str]) -> int:
    from rlworks.rlhf import dpo, grpo, ppo, reward_model, supervised

    cls = {"pretrain": supervised.PretrainConfig, "sft": supervised.SFTConfig, "reward-model":
           reward_model.RewardModelConfig, "ppo": ppo.PPOConfig, "dpo": dpo.DPOConfig, "grpo": grpo.GRPOConfig}[cmd]
    p = _parser(cmd, f"The {cmd} stage of the RLHF pipeline.", cls)
    p.add_argument("--out", required=True, help="the stage's folder (a Hugging Face model folder at the end)")
    if cmd != "pretrain":
        p.add_argument("--model", required=True, help="the model folder to start from")
    if cmd in ("reward-model", "dpo"):
        p.add_argument("--preferences", required=True, help="preference JSONL (prompt, chosen, rejected)")
    if cmd == "reward-model":
        p.add_argument("--held-out", type=float, default=0.2, help="share of pairs held out (default 0.2)")
    if cmd in ("ppo", "grpo"):
        p.add_argument("--reward-model", required=True, help="the reward model folder")
        p.add_argument("--prompts", type=int_arg, default=2000, help="prompts generated by the task (default 2000)")
    a = p.parse_args(argv)
    cfg = cls(**given(a, cls))
    _enter(a.threads)
    if cmd == "pretrain":
        return _print(supervised.pretrain(a.out, cfg, seed=a.seed))
    model = _dir(a.model, "--model")
    if cmd == "sft":
        return _print(supervised.sft(model, a.out, cfg, seed=a.seed))
    if cmd in ("reward-model", "dpo"):
        from rlworks.rlhf import preferences as prefs

        rows = prefs.read_preferences(a.preferences)
        if cmd == "dpo":
            return _print(dpo.dpo(model, a.out, rows, cfg, seed=a.seed))
        if not 0 <= a.held_out < 1:
            raise ConfigError(f"--held-out {a.held_out} is out of range: allowed [0, 1)")
        train, held = prefs.split(rows, a.held_out, seed=a.seed)
        return _print(reward_model.train_reward_model(model, a.out, train, held, cfg, seed=a.seed))
    import numpy as np

    from rlworks.rlhf.task import TASK

    prompts = TASK.prompts(a.prompts, np.random.default_rng([a.seed, 8]))
    rm = _dir(a.reward_model, "--reward-model")
    stage = ppo.ppo if cmd == "ppo" else grpo.grpo
    return _print(stage(model, rm, a.out, prompts, cfg, seed=a.seed))


def cmd_pairs(argv: list[str]) -> int:
    from rlworks.rlhf import preferences as prefs

    p = _parser("pairs", "Sample pairs of completions from a model for labelling (rlworks lab --label OUT).")
    p.add_argument("--model", required=True, help="the SFT model folder")
    p.add_argument("--out", required=True, help="PAIRS.jsonl to write")
    p.add_argument("--n", type=int_arg, default=200, help="pairs (default 200)")
    a = p.parse_args(argv)
    _enter(a.threads)
    path = prefs.write_jsonl(a.out, prefs.make_pairs(_dir(a.model, "--model"), a.n, seed=a.seed))
    print(f"{a.n} pairs in {path}; label them with: rlworks lab --label {path}")
    return 0


def cmd_eval(argv: list[str]) -> int:
    import numpy as np

    from rlworks.rlhf import evaluate
    from rlworks.rlhf.task import TASK

    p = _parser("eval", "Head to head against the reference on the hidden gold reward, with the KL to it.")
    p.add_argument("--model", required=True, help="the tuned policy's folder")
    p.add_argument("--reference", required=True, help="the SFT model's folder")
    p.add_argument("--reward-model", default=None, help="also report this reward model's scores")
    p.add_argument("--prompts", type=int_arg, default=512, help="held-out prompts (default 512)")
    a = p.parse_args(argv)
    _enter(a.threads)
    rm = _dir(a.reward_model, "--reward-model") if a.reward_model else None
    prompts = TASK.prompts(a.prompts, np.random.default_rng([a.seed, 9]))
    return _print(evaluate.head_to_head(_dir(a.model, "--model"), _dir(a.reference, "--reference"), prompts,
                                        seed=a.seed + 10, rm_dir=rm))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        raise ConfigError(f"unknown rlhf command {cmd!r}{suggest(cmd, COMMANDS)}; commands: {', '.join(COMMANDS)}")
    try:
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"RLHF is unavailable here ({exc}); install rlworks[rlhf]") from None
    if cmd == "run":
        return cmd_run(rest)
    if cmd == "pairs":
        return cmd_pairs(rest)
    if cmd == "eval":
        return cmd_eval(rest)
    return cmd_stage(cmd, rest)
