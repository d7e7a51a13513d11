"""rlworks vs TRL 1.16 (transformers 5.25), RLHF on CPU: DPO and GRPO on the same SFT model, the same preference
rows / prompts, the same reward model and the same hyperparameters (rlworks' configs from the run folder's
preset.json, mapped field by field onto ``trl.DPOConfig`` / ``trl.GRPOConfig``), side by side in one run: a fresh
subprocess per (library, algo, seed), rlworks and TRL alternating (the order flips on odd seeds).

    python benchmarks/rlhf_vs_trl.py --run-dir RUN [--algos dpo,grpo] [--seeds 3] [--threads 1]
                                     [--json OUT.jsonl] [--steps N]

``RUN`` is a (finished or partly finished) ``rlworks rlhf run`` folder with ``sft/``, ``reward-model/``,
``preferences/labels.jsonl`` and ``preset.json``. The data come from the run's seed exactly as the pipeline
builds them: DPO trains on ``preferences.split(labels, held_out, seed=run seed)[0]`` without ties; GRPO on
``TASK.prompts(data.prompts, default_rng([run seed, 8]))``. ``--seeds K`` trains with seeds 0 … K − 1 (the data
stay the run's). ``--steps N`` overrides both libraries' steps (a quick check; the warm-up is kept).

PPO: trl 1.16 no longer offers a PPO trainer (``hasattr(trl, "PPOTrainer")`` is False and there is no
``trl.experimental.ppo``; the RL trainers left are GRPO and RLOO), so PPO is not compared.

Per run: the training loop's seconds and tokens, tokens/s, peak RSS (at the end of training and of the child),
and the final policy's head-to-head against the SFT model on the hidden gold reward
(``rlhf.evaluate.head_to_head`` on ``TASK.prompts(data.eval_prompts, default_rng([run seed, 9]))``, sampling
seed = training seed + 10, max_new_tokens = the preset's ppo.max_new_tokens, as the pipeline): win rate, KL to
the SFT model, reward-model score. Both libraries' final models are saved to a temporary folder and evaluated by
the same code. Summary per algo: medians, win rate mean ± std over seeds, ratio rlworks / TRL of tokens/s.

Clock: only the training loop. TRL: a TrainerCallback, ``on_train_begin`` → ``on_train_end`` (model loading,
dataset tokenisation and DPO's reference log-probs happen in the trainer's ``__init__``, before it). rlworks:
from the return of ``Stage.restore`` (after the models are loaded, the data encoded, for DPO the reference
log-probs precomputed, the optimizer built and the metrics logger opened: the line before the loop) to the
stage's last ``log`` call (right after the last optimizer step); the final save and DPO's after-training log-prob
pass are left out. ``setup_seconds`` (Adam built → loop start: the logger's CSV/TensorBoard files) and
``call_seconds`` (the whole dpo()/grpo() call) are reported beside it. Taken by wrapping names in this child
process (``dpo.Adam`` / ``grpo.Adam``, ``Stage.restore``, ``Stage.log``, ``lm.sample``); no rlworks code changes.

Tokens: real (non-padding) tokens of the sequences trained on, summed over the steps that ran.
DPO: prompt + chosen + prompt + rejected of every pair of every step (rlworks: the rows of the stage's
minibatch plan, ``dpo.batch_plan``; TRL: the ``attention_mask`` sum of every batch its training step received,
counted in ``training_step``). GRPO: prompt + completion tokens of every sampled completion (rlworks: the masks of each
``lm.sample`` call in the loop; TRL: ``prompt_mask`` + ``completion_mask`` of every generated batch).

Matched (field by field):
  DPO   β, lr (peak), per-step pairs (per_device_train_batch_size = batch_size, drop_last: full batches),
        max_steps = steps, warm-up steps, gradient clip 1.0, Adam β (0.9, 0.999), ε 1e-8, weight decay 0,
        sigmoid loss on Σ-over-completion-tokens log-probs (eos included), reference = the SFT model with its
        log-probs precomputed once (precompute_ref_log_probs), completions cut to max_completion_tokens − 1
        tokens + eos (done on the text before TRL sees it; the token ids TRL builds are checked against
        rlworks' encoding and the mismatches counted: ``token_mismatch_rows``), ties skipped.
        Schedule: linear warm-up then cosine to 10 % of the peak (``cosine_with_min_lr``, min_lr_rate 0.1).
  GRPO  G = num_generations = group_size, prompts_per_step × G completions per step = generation batch =
        per-device batch (one optimizer step per generation, steps_per_generation 1), μ = num_iterations =
        epochs, β (k3 KL to the SFT model), ε = clip (both sides), temperature (sampling and log-probs),
        max_completion_length = max_new_tokens (eos included), top_p 1, top_k 0 (off), no repetition penalty,
        advantages (r − mean_g) / (std_g + 1e-4) with the Bessel std per group (scale_rewards "group"),
        loss_type "grpo" (per-sequence token mean, then batch mean: DeepSeekMath's), truncated completions
        kept, constant lr without warm-up (rlworks' GRPO has no schedule), clip 1.0, Adam as above.
        Reward: the same reward model through the same code (``lm.encode_prompts`` of the prompt text,
        TRL's generated ``completion_ids`` as the response, ``lm.sequence_scores``: the head at the last real
        token, through the same backend as rlworks' run: ``--backend``), not TRL's own reward-model path (which
        re-tokenises text and pools elsewhere).
  Both  float32 (bf16/fp16 off), no activation (gradient) checkpointing (TRL's configs default to it: set off,
        as rlworks never recomputes), CPU, ``--threads`` torch threads (OMP/MKL too; the loop's thread count is
        recorded as ``loop_threads``), no gradient accumulation, no checkpoints (TRL: save_strategy no),
        dataloader_num_workers 0, the same seed.
Differences that remain:
  * The forward: rlworks runs GPT-2 models through ``rlhf/packed.py`` by default (``--backend auto``: the same
    function on the real tokens only; TRL on CPU pads, its padding-free mode needs flash-attention on a GPU);
    ``--backend transformers`` gives rlworks transformers' own forward, as TRL's.
  * Optimizer: rlworks' fused Adam (``core.optim.Adam``, one ``torch._fused_adam_`` call); TRL: transformers'
    default ``adamw_torch_fused`` with weight_decay 0 — the same update.
  * Warm-up: rlworks' step t (from 0) uses peak · (t + 1) / warmup; transformers' uses peak · t / warmup (its
    first step has lr 0). After the warm-up both are peak · (0.1 + 0.45 (1 + cos(π (t − w) / (T − w)))).
  * Data order: both visit DPO's pairs and GRPO's prompts in seeded shuffled epochs, with different shuffles
    (rlworks: ``stage.epoch_order``; TRL: its sampler's ``data_seed``).
    Sampling streams differ (rlworks: its own ``torch.Generator``; TRL: ``model.generate`` on the global RNG).
  * Positions: rlworks gives every forward position ids that count real tokens (left-padded prompts start at
    0). TRL's DPO right-pads, so its positions are right; TRL's GRPO generates with mask-derived positions but
    its training forwards pass none, and GPT-2 then counts from the first (padding) column: for prompts shorter
    than the batch's longest, TRL's log-probs are taken at shifted positions. That is TRL's behaviour with
    GPT-2-style models; it is measured as is.
  * Bookkeeping inside the loop: rlworks' stage writes its metrics (CSV + TensorBoard) every step; TRL computes
    its per-step metrics (entropy, logits means, …) every step but prints them once (logging_steps = steps,
    report_to none) and runs the Trainer's callbacks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALGOS = ("dpo", "grpo")
LIBS = ("rlworks", "trl")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------
# the run folder: data and configs, as the pipeline builds them
# ---------------------------------------------------------------------------------------------


def load_run(run_dir: Path, steps: int | None, backend: str = "auto"):
    import dataclasses

    import numpy as np

    from rlworks.config import from_dict
    from rlworks.rlhf import preferences as prefs
    from rlworks.rlhf.dpo import DPOConfig
    from rlworks.rlhf.grpo import GRPOConfig
    from rlworks.rlhf.task import TASK

    preset = json.loads((run_dir / "preset.json").read_text())
    configs, run_seed = preset["configs"], int(preset["seed"])
    dpo_cfg, grpo_cfg = from_dict(DPOConfig, configs["dpo"]), from_dict(GRPOConfig, configs["grpo"])
    if steps is not None:
        dpo_cfg, grpo_cfg = dataclasses.replace(dpo_cfg, steps=steps), dataclasses.replace(grpo_cfg, steps=steps)
    dpo_cfg, grpo_cfg = dataclasses.replace(dpo_cfg, backend=backend), dataclasses.replace(grpo_cfg, backend=backend)
    rows = prefs.read_preferences(run_dir / "preferences" / "labels.jsonl")
    train_rows, _ = prefs.split(rows, configs["data"]["held_out"], seed=run_seed)
    prompts = TASK.prompts(configs["data"]["prompts"], np.random.default_rng([run_seed, 8]))
    eval_prompts = TASK.prompts(configs["data"]["eval_prompts"], np.random.default_rng([run_seed, 9]))
    return {"preset": preset["preset"], "run_seed": run_seed, "dpo": dpo_cfg, "grpo": grpo_cfg,
            "train_rows": train_rows, "prompts": prompts, "eval_prompts": eval_prompts,
            "eval_max_new_tokens": int(configs["ppo"]["max_new_tokens"])}


# ---------------------------------------------------------------------------------------------
# rlworks
# ---------------------------------------------------------------------------------------------


def run_rlworks(a, run: dict, out_dir: Path) -> dict:
    """rlworks' own dpo() / grpo() into ``out_dir``; the loop is timed by wrapping the stage's restore and log."""
    import torch

    from rlworks.core.optim import Adam
    from rlworks.rlhf import dpo, grpo, lm
    from rlworks.rlhf.stage import Stage

    marks: dict[str, float] = {}
    tokens = [0]
    mod = dpo if a.algo == "dpo" else grpo

    def adam(*args, **kwargs):
        marks["adam"] = time.perf_counter()  # models loaded, data encoded, reference log-probs done
        return Adam(*args, **kwargs)

    original_restore, original_log, original_sample = Stage.restore, Stage.log, lm.sample

    def restore(self, *args, **kwargs):
        out = original_restore(self, *args, **kwargs)  # opens the metrics logger (CSV + TensorBoard)
        marks["start"] = time.perf_counter()  # the loop starts here
        marks["threads"] = torch.get_num_threads()
        return out

    def log(self, *args, **kwargs):
        out = original_log(self, *args, **kwargs)
        marks["end"] = time.perf_counter()
        return out

    def sample(*args, **kwargs):
        s = original_sample(*args, **kwargs)
        tokens[0] += int(s.query_mask.sum()) + int(s.response_mask.sum())
        return s

    sft, rm = a.run_dir / "sft", a.run_dir / "reward-model"
    mod.Adam, Stage.restore, Stage.log, lm.sample = adam, restore, log, sample
    t0 = time.perf_counter()
    try:
        if a.algo == "dpo":
            dpo.dpo(sft, out_dir, run["train_rows"], run["dpo"], seed=a.seed)
        else:
            grpo.grpo(sft, rm, out_dir, run["prompts"], run["grpo"], seed=a.seed)
    finally:
        mod.Adam, Stage.restore, Stage.log, lm.sample = Adam, original_restore, original_log, original_sample
    call_seconds = time.perf_counter() - t0
    if a.algo == "dpo":  # the stage's minibatches: dpo.batch_plan
        cfg = run["dpo"]
        rows = [r for r in run["train_rows"] if not r.get("tie", False)]
        tok = lm.load_tokenizer(sft)
        q, qm, c, cm = dpo.encode_pairs(tok, rows, cfg.max_completion_tokens)
        n = len(rows)
        per_pair = 2 * qm.sum(1) + cm[:n].sum(1) + cm[n:].sum(1)  # (N,)
        tokens[0] = int(per_pair[dpo.batch_plan(a.seed, n, cfg.batch_size, cfg.steps)].sum())
    stage = json.loads((out_dir / "stage.json").read_text())
    return {"train_seconds": marks["end"] - marks["start"], "setup_seconds": marks["start"] - marks["adam"],
            "call_seconds": call_seconds, "loop_threads": marks["threads"],
            "stage_seconds": stage.get("seconds"), "tokens": tokens[0], "steps": run[a.algo].steps}


# ---------------------------------------------------------------------------------------------
# TRL
# ---------------------------------------------------------------------------------------------


def _clock():
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self):
            self.start = self.end = None
            self.rss_mb = None

        def on_train_begin(self, args, state, control, **kwargs):
            import torch

            self.threads = torch.get_num_threads()  # what the loop runs with (the Trainer could have changed it)
            self.start = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            self.end = time.perf_counter()
            self.rss_mb = _rss_mb()

    return Clock()


def common_args(a, out_dir: Path, steps: int, lr: float, batch: int) -> dict:
    """TrainingArguments shared by both trainers (module docstring: what is matched)."""
    return dict(output_dir=str(out_dir / "trl-out"), max_steps=steps, learning_rate=lr,
                per_device_train_batch_size=batch, gradient_accumulation_steps=1, optim="adamw_torch_fused",
                weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, max_grad_norm=1.0,
                activation_checkpointing=False,  # TRL's configs default to True (recompute); rlworks keeps activations
                bf16=False, fp16=False, use_cpu=True, report_to="none", save_strategy="no", logging_steps=steps,
                disable_tqdm=True, dataloader_num_workers=0, seed=a.seed, data_seed=a.seed)


def dpo_dataset(tok, rows: list[dict], cfg):
    """TRL's DPO rows: each completion cut as rlworks cuts it (max_completion_tokens − 1 tokens; TRL adds eos, as
    ``lm.encode_completions`` does)."""
    import datasets

    def cut(text: str) -> str:
        return tok.decode(tok(" " + text.strip(), add_special_tokens=False).input_ids[: cfg.max_completion_tokens - 1])

    return datasets.Dataset.from_list([{"prompt": r["prompt"], "chosen": cut(r["chosen"]),
                                        "rejected": cut(r["rejected"])} for r in rows])


def dpo_args(a, out_dir: Path, cfg, **extra):
    """``trl.DPOConfig`` with rlworks' DPO settings (module docstring: what is matched)."""
    import trl

    return trl.DPOConfig(**common_args(a, out_dir, cfg.steps, cfg.learning_rate, cfg.batch_size),
                         beta=cfg.beta, loss_type=["sigmoid"], max_length=None, precompute_ref_log_probs=True,
                         warmup_steps=cfg.warmup, lr_scheduler_type="cosine_with_min_lr",
                         lr_scheduler_kwargs={"min_lr_rate": 0.1}, dataloader_drop_last=True, **extra)


def trl_dpo(a, run: dict, out_dir: Path) -> dict:
    import trl
    from transformers import PrinterCallback

    from rlworks.rlhf import dpo, lm

    cfg = run["dpo"]
    sft = a.run_dir / "sft"
    tok = lm.load_tokenizer(sft)
    rows = [r for r in run["train_rows"] if not r.get("tie", False)]

    data = dpo_dataset(tok, rows, cfg)
    args = dpo_args(a, out_dir, cfg)
    clock, tokens = _clock(), [0]

    class Counted(trl.DPOTrainer):
        def training_step(self, model, inputs, *args, **kwargs):
            # counted here, not in the collator: accelerate's loader builds one batch ahead of the loop
            tokens[0] += int(inputs["attention_mask"].sum())  # prompt + chosen, prompt + rejected
            return super().training_step(model, inputs, *args, **kwargs)

    trainer = Counted(model=lm.load_model(sft).train(), args=args, train_dataset=data, processing_class=tok,
                      callbacks=[clock])
    trainer.remove_callback(PrinterCallback)
    # the same token ids as rlworks? (prompt, chosen + eos, rejected + eos)
    q, qm, c, cm = dpo.encode_pairs(tok, rows, cfg.max_completion_tokens)
    n, mismatches = len(rows), 0
    for i, ex in enumerate(trainer.train_dataset):
        ours = (q[i][qm[i].bool()].tolist(), c[i][cm[i].bool()].tolist(), c[n + i][cm[n + i].bool()].tolist())
        mismatches += ours != (ex["prompt_ids"], ex["chosen_ids"], ex["rejected_ids"])
    trainer.train()
    trainer.save_model(str(out_dir))
    tok.save_pretrained(out_dir)
    return {"train_seconds": clock.end - clock.start, "tokens": tokens[0], "steps": trainer.state.global_step,
            "token_mismatch_rows": mismatches, "rss_train_mb": clock.rss_mb, "loop_threads": clock.threads}


def trl_grpo(a, run: dict, out_dir: Path) -> dict:
    import datasets
    import torch
    import trl
    from transformers import PrinterCallback

    from rlworks.rlhf import lm

    cfg = run["grpo"]
    sft, rm = a.run_dir / "sft", a.run_dir / "reward-model"
    tok = lm.load_tokenizer(sft)
    lm.check_same_vocab(lm.load_tokenizer(rm), tok, f"reward model {rm}")
    scorer = lm.load_model(rm, kind="scorer", backend=a.backend).requires_grad_(False)

    @torch.no_grad()
    def reward(prompts, completions, completion_ids, **kwargs):
        """rlworks' reward: the scorer's head at the last real token of [left-padded prompt | completion ids]."""
        q, qm = lm.encode_prompts(tok, list(prompts))
        width = max(len(ids) for ids in completion_ids)
        r = torch.full((len(completion_ids), width), tok.pad_token_id, dtype=torch.long)
        rm_ = torch.zeros_like(r)
        for i, ids in enumerate(completion_ids):
            ids = list(ids)
            if tok.eos_token_id in ids:  # up to and including the first eos, as lm.sample's mask
                ids = ids[: ids.index(tok.eos_token_id) + 1]
            r[i, :len(ids)], rm_[i, :len(ids)] = torch.tensor(ids, dtype=torch.long), 1
        s = lm.Samples(q, qm, r, rm_)
        return lm.sequence_scores(scorer, s.ids, s.mask, s.query.shape[1]).tolist()

    reward.__name__ = "rlworks_reward_model"
    batch = cfg.prompts_per_step * cfg.group_size
    args = trl.GRPOConfig(**common_args(a, out_dir, cfg.steps, cfg.learning_rate, batch),
                          num_generations=cfg.group_size, generation_batch_size=batch, num_iterations=cfg.epochs,
                          beta=cfg.beta, epsilon=cfg.clip, epsilon_high=cfg.clip, temperature=cfg.temperature,
                          top_p=1.0, top_k=0, min_p=None, repetition_penalty=1.0,
                          max_completion_length=cfg.max_new_tokens, loss_type="grpo", scale_rewards="group",
                          mask_truncated_completions=False, lr_scheduler_type="constant", warmup_steps=0,
                          shuffle_dataset=True, log_completions=False)
    clock, tokens = _clock(), [0]

    class Counted(trl.GRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            tokens[0] += int(out["prompt_mask"].sum()) + int(out["completion_mask"].sum())
            return out

    data = datasets.Dataset.from_list([{"prompt": p} for p in run["prompts"]])
    trainer = Counted(model=lm.load_model(sft).train(), reward_funcs=[reward], args=args, train_dataset=data,
                      processing_class=tok, callbacks=[clock])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    trainer.save_model(str(out_dir))
    tok.save_pretrained(out_dir)
    return {"train_seconds": clock.end - clock.start, "tokens": tokens[0], "steps": trainer.state.global_step,
            "rss_train_mb": clock.rss_mb, "loop_threads": clock.threads}


# ---------------------------------------------------------------------------------------------
# one child
# ---------------------------------------------------------------------------------------------


def child(a) -> dict:
    import logging

    import torch

    torch.set_num_threads(a.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    from rlworks.rlhf.evaluate import head_to_head

    run = load_run(a.run_dir, a.steps, a.backend)
    with tempfile.TemporaryDirectory(prefix=f"rlhf-vs-trl-{a.lib}-{a.algo}-") as tmp:
        out_dir = Path(tmp) / "policy"
        if a.lib == "rlworks":
            res = run_rlworks(a, run, out_dir)
            res["rss_train_mb"] = _rss_mb()
        else:
            res = (trl_dpo if a.algo == "dpo" else trl_grpo)(a, run, out_dir)
        ev = head_to_head(out_dir, a.run_dir / "sft", run["eval_prompts"], seed=a.seed + 10,
                          rm_dir=a.run_dir / "reward-model", max_new_tokens=run["eval_max_new_tokens"])
    return {"lib": a.lib, "algo": a.algo, "seed": a.seed, "run_dir": str(a.run_dir), "preset": run["preset"],
            "threads": a.threads, "backend": a.backend if a.lib == "rlworks" else None,
            **res, "tokens_per_s": res["tokens"] / res["train_seconds"],
            "win_rate": ev["win_rate"], "kl": ev["kl"], "gold": ev["gold"], "gold_reference": ev["gold_reference"],
            "rm_score": ev.get("rm_score"), "eval_prompts": ev["prompts"], "peak_rss_mb": _rss_mb(),
            "load_1min": os.getloadavg()[0]}  # the machine's load when the child ended (contention)


# ---------------------------------------------------------------------------------------------
# the parent
# ---------------------------------------------------------------------------------------------


def summary(rows: list[dict], algo: str) -> list[str]:
    def vals(lib: str, key: str) -> list[float]:
        return [r[key] for r in rows if r["lib"] == lib and r.get(key) is not None]

    def med(lib: str, key: str) -> float:
        xs = vals(lib, key)
        return statistics.median(xs) if xs else float("nan")

    tps = {lib: med(lib, "tokens_per_s") for lib in LIBS}
    lines = [f"{algo}: training tokens/s median rlworks {tps['rlworks']:.0f}, trl {tps['trl']:.0f}, "
             f"ratio rlworks/trl {tps['rlworks'] / tps['trl']:.2f}"]
    for lib in LIBS:
        wr = vals(lib, "win_rate")
        sd = statistics.stdev(wr) if len(wr) > 1 else 0.0
        lines.append(f"  {lib:8s} win rate vs SFT {statistics.fmean(wr):.3f} ± {sd:.3f} (median "
                     f"{med(lib, 'win_rate'):.3f}), KL median {med(lib, 'kl'):.2f}, gold median {med(lib, 'gold'):.3f}"
                     f"; train s median {med(lib, 'train_seconds'):.1f}, tokens median {med(lib, 'tokens'):.0f}; "
                     f"peak RSS median {med(lib, 'peak_rss_mb'):.0f} MB (train {med(lib, 'rss_train_mb'):.0f})")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", type=Path, required=True, help="an `rlworks rlhf run` folder (sft/, reward-model/, "
                   "preferences/labels.jsonl, preset.json)")
    p.add_argument("--algos", default="dpo,grpo", help="comma-separated: dpo, grpo")
    p.add_argument("--seeds", type=int, default=3, help="training seeds 0 … N − 1")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads, both libraries")
    p.add_argument("--steps", type=int, default=None, help="override both libraries' steps (a quick check)")
    p.add_argument("--backend", default="auto", help="rlworks' forward: auto (packed GPT-2, rlhf/packed.py) or "
                   "transformers (transformers' own forward, as TRL runs)")
    p.add_argument("--json", help="append each run's row (JSON lines) to this file")
    p.add_argument("--lib", choices=LIBS, help="(child) run one library and print its JSON line")
    p.add_argument("--algo", choices=ALGOS, help="(child) the algo of this run")
    p.add_argument("--seed", type=int, default=0, help="(child) the training seed of this run")
    a = p.parse_args()
    a.run_dir = a.run_dir.resolve()
    if a.lib:
        print(json.dumps(child(a)))
        return 0
    for need in ("sft", "reward-model", "preferences/labels.jsonl", "preset.json"):
        if not (a.run_dir / need).exists():
            p.error(f"--run-dir {a.run_dir}: no {need} (run `rlworks rlhf run` into it first)")
    algos = [x.strip() for x in a.algos.split(",") if x.strip()]
    for x in algos:
        if x not in ALGOS:
            p.error(f"--algos: {x!r} is not one of {', '.join(ALGOS)}")
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1", "TQDM_DISABLE": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    rows: list[dict] = []
    for algo in algos:
        for seed in range(a.seeds):
            for lib in LIBS if seed % 2 == 0 else LIBS[::-1]:
                cmd = [sys.executable, __file__, "--run-dir", str(a.run_dir), "--lib", lib, "--algo", algo,
                       "--seed", str(seed), "--threads", str(a.threads), "--backend", a.backend,
                       *(["--steps", str(a.steps)] if a.steps is not None else [])]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if out.returncode:
                    print(out.stderr[-3000:], file=sys.stderr)
                    return 1
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(json.dumps(row), flush=True)
                if a.json:
                    with open(a.json, "a") as f:
                        f.write(json.dumps(row) + "\n")
    steps = f"{a.steps} steps (override)" if a.steps is not None else "the preset's steps"
    print(f"{a.run_dir}: {a.seeds} seed(s), {steps}, {a.threads} thread(s), CPU, rlworks backend {a.backend}")
    for algo in algos:
        print("\n".join(summary([r for r in rows if r["algo"] == algo], algo)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
