"""The reward model: a scalar head on the SFT language model, fitted to preferences by Bradley–Terry
(Christiano et al. 2017; Ouyang et al. 2022, eq. 1):

    L = − E_(x, y_c, y_r) [ t log σ(r(x, y_c) − r(x, y_r)) + (1 − t) log σ(r(x, y_r) − r(x, y_c)) ],

t = 1 for a preference and ½ for a tie. r(x, y) is the head's value at the last token of [prompt | completion]
(``lm.sequence_scores``; eos included). The model is a ``transformers`` sequence-classification model with one
label, initialised from the SFT folder (its head is new), so ``AutoModelForSequenceClassification`` loads it.

Accuracy is measured on held-out pairs against the labels, beside the **noise ceiling** (the labeller's own
expected accuracy, ``task.noise_ceiling``) where the labels say how sure the labeller was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError, check_choice, check_range
from ..core.optim import Adam
from . import lm, losses
from .stage import Stage, rng_state, set_rng_state
from .supervised import StageStopped, lr_at
from .task import noise_ceiling


@dataclass(frozen=True)
class RewardModelConfig:
    steps: int = 400
    """gradient steps"""
    batch_size: int = 64
    """preference pairs per step"""
    learning_rate: float = 1e-4
    """peak Adam step size"""
    warmup: int = 20
    """steps of linear warm-up"""
    eval_every: int = 100
    """steps between held-out accuracy measurements"""

    backend: str = "auto"
    """how the models' forward runs: auto (rlworks' packed forward for GPT-2-style models, transformers' for
    any other) or transformers (lm.BACKENDS)"""

    def __post_init__(self) -> None:
        check_choice("backend", self.backend, lm.BACKENDS)
        for name in ("steps", "batch_size", "eval_every"):
            check_range(name, getattr(self, name), 1)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("warmup", self.warmup, 0)


def encode_pairs(tok, rows: list[dict], limit: int | None = None) -> dict[str, torch.Tensor]:
    """The prompts (N, P) left-padded; the completions (2N, L) right-padded with eos, chosen in rows 0 … N − 1
    and rejected in rows N … 2N − 1, cut so that prompt + completion fit ``limit`` positions (a sampled
    completion's text can encode to more tokens than were sampled); and the soft label t of each pair."""
    q, qm = lm.encode_prompts(tok, [r["prompt"] for r in rows])
    room = None if limit is None else limit - q.shape[1]
    if room is not None and room < 2:
        raise ConfigError(f"the longest prompt ({q.shape[1]} tokens) leaves no room in the model's {limit} positions")
    c, cm = lm.encode_completions(tok, [r["chosen"] for r in rows] + [r["rejected"] for r in rows], room)
    n = len(rows)
    return {"q": q, "qm": qm, "chosen": c[:n], "chosen_mask": cm[:n], "rejected": c[n:], "rejected_mask": cm[n:],
            "target": torch.tensor([0.5 if r.get("tie") else 1.0 for r in rows])}


def pair_scores(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """r(x, y_c) and r(x, y_r) (B,) each, in one forward pass over the 2B sequences."""
    s = lm.trimmed(lm.Samples(batch["q"].repeat(2, 1), batch["qm"].repeat(2, 1),
                              torch.cat([batch["chosen"], batch["rejected"]]),
                              torch.cat([batch["chosen_mask"], batch["rejected_mask"]])))
    scores = lm.sequence_scores(model, s.ids, s.mask, s.query.shape[1])  # the pair's prompt runs once
    n = batch["q"].shape[0]
    return scores[:n], scores[n:]


@torch.no_grad()
def accuracy(model, data: dict[str, torch.Tensor], batch_size: int = 64) -> float:
    """Fraction of decided (non-tie) pairs where the chosen completion scores higher. Small batches are faster:
    each is padded to its own longest completion (64 pairs: half the time of 512 on the tiny preset's pairs)."""
    hits, n = 0.0, 0
    for i in range(0, len(data["target"]), batch_size):
        batch = {k: v[i:i + batch_size] for k, v in data.items()}
        rc, rr = pair_scores(model, batch)
        decided = batch["target"] == 1.0
        hits += float(((rc > rr) & decided).sum())
        n += int(decided.sum())
    return hits / max(n, 1)


def train_reward_model(sft_dir: str | Path, out_dir: str | Path, train_rows: list[dict], held_out_rows: list[dict],
                       cfg: RewardModelConfig = RewardModelConfig(), *, seed: int = 0, checkpoint_every: int = 0,
                       stop_at: int | None = None) -> dict:
    """Fit a reward model on ``train_rows`` (TRL preference rows) starting from the LM in ``sft_dir``; report its
    held-out accuracy (and the noise ceiling where rows carry ``p_chosen``). ``out_dir`` ends as the model folder."""
    if not train_rows:
        raise ConfigError("the reward model needs at least one training preference")
    stage = Stage(out_dir, "reward-model", asdict(cfg), seed, checkpoint_every, stop_at)
    tok = lm.load_tokenizer(sft_dir)
    torch.manual_seed(seed)  # the new head's initialisation
    model = lm.load_model(sft_dir, kind="scorer", backend=cfg.backend)
    limit = lm.max_positions(model)
    train = encode_pairs(tok, train_rows, limit)
    held = encode_pairs(tok, held_out_rows, limit) if held_out_rows else None
    opt = Adam(model.parameters(), lr=cfg.learning_rate)
    rng, gen = np.random.default_rng([seed, 5]), torch.Generator().manual_seed(seed)
    step, extra = stage.restore({"model": model}, {"opt": opt})
    if extra:
        set_rng_state(rng, gen, extra["rng"])
    n = len(train["target"])
    while step < cfg.steps:
        idx = torch.from_numpy(rng.integers(0, n, size=cfg.batch_size))
        batch = {k: v[idx] for k, v in train.items()}
        rc, rr = pair_scores(model, batch)
        loss = losses.bradley_terry_loss(rc, rr, batch["target"])
        opt.param_groups[0]["lr"] = lr_at(step, cfg.steps, cfg.learning_rate, cfg.warmup)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        metrics = {"losses/bradley_terry": float(loss.detach()),
                   "charts/train_accuracy": float((rc > rr).float().mean())}
        if held is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            metrics["eval/accuracy"] = accuracy(model, held)
        if step % 25 == 0 or "eval/accuracy" in metrics:
            stage.log(step, metrics)
        if stage.due(step, cfg.steps):
            stage.save(step, {"model": model}, {"opt": opt}, {"rng": rng_state(rng, gen)})
        if stage.stopped(step):
            raise StageStopped(step)
    model.eval().save_pretrained(stage.dir)
    tok.save_pretrained(stage.dir)
    results = {"train_pairs": n, "held_out_pairs": len(held_out_rows),
               "train_accuracy": accuracy(model, train),
               "held_out_accuracy": accuracy(model, held) if held is not None else None}
    if held_out_rows and all("p_chosen" in r for r in held_out_rows):
        results["noise_ceiling"] = noise_ceiling(held_out_rows)
    return stage.finish(results, curves=("losses/bradley_terry", "eval/accuracy"))
