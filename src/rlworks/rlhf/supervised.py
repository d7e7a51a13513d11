"""The two supervised stages before any reward: pretraining a small causal LM on generated reviews, and
supervised fine-tuning (SFT) on prompt → completion demonstrations (Ouyang et al. 2022, step 1).

Both minimise the next-token cross-entropy over the tokens that count,

    L = − Σ_t m_t log π(x_t | x_<t) / Σ_t m_t,

with m_t = 1 on every real token when pretraining and on the completion's tokens (eos included) for SFT: the
model learns to continue prompts, not to write them. Adam with a linear warm-up and a cosine decay.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import check_choice, check_range
from ..core.optim import Adam
from . import lm, packed
from .stage import Stage, rng_state, set_rng_state
from .task import TASK, ReviewTask


@dataclass(frozen=True)
class PretrainConfig:
    corpus_size: int = 20_000
    """generated reviews to pretrain on"""
    vocab_size: int = 640
    """byte-level BPE vocabulary (256 bytes + merges + 2 special tokens)"""
    n_layer: int = 3
    """transformer blocks"""
    n_head: int = 4
    """attention heads"""
    n_embd: int = 192
    """width of the residual stream"""
    n_positions: int = 64
    """longest sequence in tokens"""
    steps: int = 600
    """gradient steps"""
    batch_size: int = 64
    """sequences per step"""
    learning_rate: float = 1e-3
    """peak Adam step size"""
    warmup: int = 50
    """steps of linear warm-up"""

    backend: str = "auto"
    """how the models' forward runs: auto (rlworks' packed forward for GPT-2-style models, transformers' for
    any other) or transformers (lm.BACKENDS)"""

    def __post_init__(self) -> None:
        check_choice("backend", self.backend, lm.BACKENDS)
        check_range("corpus_size", self.corpus_size, 1)
        check_range("vocab_size", self.vocab_size, 260)
        for name in ("n_layer", "n_head", "n_embd", "n_positions", "steps", "batch_size"):
            check_range(name, getattr(self, name), 1)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("warmup", self.warmup, 0)


@dataclass(frozen=True)
class SFTConfig:
    demonstrations: int = 4000
    """generated (prompt, completion) demonstrations"""
    steps: int = 300
    """gradient steps"""
    batch_size: int = 64
    """sequences per step"""
    learning_rate: float = 3e-4
    """peak Adam step size"""
    warmup: int = 20
    """steps of linear warm-up"""

    backend: str = "auto"
    """how the models' forward runs: auto (rlworks' packed forward for GPT-2-style models, transformers' for
    any other) or transformers (lm.BACKENDS)"""

    def __post_init__(self) -> None:
        check_choice("backend", self.backend, lm.BACKENDS)
        for name in ("demonstrations", "steps", "batch_size"):
            check_range(name, getattr(self, name), 1)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("warmup", self.warmup, 0)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak``, then a cosine decay to 10 % of it."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(total - warmup, 1)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))


def lm_loss(model, ids: torch.Tensor, mask: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions where ``loss_mask`` (of the predicted token) is 1."""
    weight = loss_mask[:, 1:].float()
    if lm.uses_packed(model) and bool((mask[:, 1:] <= mask[:, :-1]).all()):  # right-padded rows
        nll = -packed.token_logprobs(model, ids, mask)  # (B, T − 1), 0 where the target is padding
        return (nll * weight).sum() / weight.sum().clamp(min=1.0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=lm.position_ids(mask)).logits[:, :-1]
    target = ids[:, 1:]
    nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
    return (nll * weight.reshape(-1)).sum() / weight.sum().clamp(min=1.0)


def _batches(rng: np.random.Generator, n: int, batch_size: int) -> np.ndarray:
    return rng.integers(0, n, size=batch_size)


def _fit(stage: Stage, model, data: tuple[torch.Tensor, torch.Tensor, torch.Tensor], steps: int, batch_size: int,
         peak: float, warmup: int, rng: np.random.Generator, gen: torch.Generator) -> float:
    """The shared loop: sample a minibatch, one Adam step, log; checkpoints as the stage asks."""
    ids, mask, loss_mask = data
    opt = Adam(model.parameters(), lr=peak)
    step, extra = stage.restore({"model": model}, {"opt": opt})
    if extra:
        set_rng_state(rng, gen, extra["rng"])
    model.train()
    loss = float("nan")
    while step < steps:
        idx = torch.from_numpy(_batches(rng, len(ids), batch_size))
        width = int(mask[idx].sum(1).max())  # right-padded: trim the columns no row uses
        opt.param_groups[0]["lr"] = lr_at(step, steps, peak, warmup)
        out = lm_loss(model, ids[idx, :width], mask[idx, :width], loss_mask[idx, :width])
        opt.zero_grad()
        out.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        loss = float(out.detach())
        if step % 25 == 0 or step == steps:
            stage.log(step, {"losses/lm": loss, "charts/lr": opt.param_groups[0]["lr"]})
        if stage.due(step, steps):
            stage.save(step, {"model": model}, {"opt": opt}, {"rng": rng_state(rng, gen)})
        if stage.stopped(step):
            raise StageStopped(step)
    return loss


class StageStopped(RuntimeError):
    """Raised where ``stop_at`` ends a stage early (tests of resume)."""


def _right_padded(tok, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [(tok(t, add_special_tokens=False).input_ids + [tok.eos_token_id])[:max_len] for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
    return ids, mask


def pretrain(out_dir: str | Path, cfg: PretrainConfig = PretrainConfig(), *, seed: int = 0,
             task: ReviewTask = TASK, checkpoint_every: int = 0, stop_at: int | None = None) -> dict:
    """Train a tokenizer and a small GPT-2-style LM on ``cfg.corpus_size`` generated reviews; the folder
    ``out_dir`` ends as a Hugging Face model folder with its tokenizer."""
    stage = Stage(out_dir, "pretrain", asdict(cfg), seed, checkpoint_every, stop_at)
    rng = np.random.default_rng([seed, 0])
    corpus = task.corpus(cfg.corpus_size, rng)
    tok = lm.train_tokenizer(corpus, cfg.vocab_size)
    torch.manual_seed(seed)
    model = lm.set_backend(lm.new_model(tok, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.n_positions), cfg.backend)
    ids, mask = _right_padded(tok, corpus, cfg.n_positions)
    gen = torch.Generator().manual_seed(seed)
    loss = _fit(stage, model, (ids, mask, mask), cfg.steps, cfg.batch_size, cfg.learning_rate, cfg.warmup, rng, gen)
    model.eval().save_pretrained(stage.dir)
    tok.save_pretrained(stage.dir)
    params = sum(p.numel() for p in model.parameters())
    return stage.finish({"loss": loss, "parameters": params, "vocab": len(tok)}, curves=("losses/lm",))


def sft(base_dir: str | Path, out_dir: str | Path, cfg: SFTConfig = SFTConfig(), *, seed: int = 0,
        task: ReviewTask = TASK, demonstrations: list[tuple[str, str]] | None = None,
        checkpoint_every: int = 0, stop_at: int | None = None) -> dict:
    """Fine-tune the causal LM in ``base_dir`` on demonstrations (the task's, or ``demonstrations``), loss on the
    completions only; ``out_dir`` ends as the SFT model folder."""
    stage = Stage(out_dir, "sft", asdict(cfg), seed, checkpoint_every, stop_at)
    tok = lm.load_tokenizer(base_dir)
    model = lm.load_model(base_dir, backend=cfg.backend)
    rng = np.random.default_rng([seed, 1])
    demos = demonstrations if demonstrations is not None else task.demonstrations(cfg.demonstrations, rng)
    q_ids, q_mask = lm.encode_prompts(tok, [p for p, _ in demos])
    r_ids, r_mask = lm.encode_completions(tok, [c for _, c in demos])
    s = lm.Samples(q_ids, q_mask, r_ids, r_mask)
    ids, mask = s.ids, s.mask
    loss_mask = torch.cat([torch.zeros_like(q_mask), r_mask], 1)
    # left-padded prompts: move each row's padding to the right so the loop can trim unused columns
    order = torch.argsort(1 - mask, dim=1, stable=True)
    ids, mask, loss_mask = ids.gather(1, order), mask.gather(1, order), loss_mask.gather(1, order)
    gen = torch.Generator().manual_seed(seed)
    loss = _fit(stage, model, (ids, mask, loss_mask), cfg.steps, cfg.batch_size, cfg.learning_rate, cfg.warmup,
                rng, gen)
    model.eval().save_pretrained(stage.dir)
    tok.save_pretrained(stage.dir)
    return stage.finish({"loss": loss}, curves=("losses/lm",))
