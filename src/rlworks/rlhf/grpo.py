"""Group Relative Policy Optimization (Shao et al. 2024, "DeepSeekMath", §4.1): PPO for language models without
a value network. The baseline of a completion is the mean reward of the other completions of the same prompt.

Each step takes a batch of prompts and samples a group of G completions of each from the current policy; the
reward model scores each completion once (outcome supervision), and every token of completion i gets the
group-normalised advantage (eq. 3 and §4.1.2)

    A_i = (r_i − mean(r_1 … r_G)) / std(r_1 … r_G).

The loss is PPO's clipped surrogate with the KL penalty moved from the reward into the loss, as the unbiased,
non-negative k3 estimate of KL(π ‖ π_ref) per token (Schulman 2020), averaged over each completion's tokens and
then over the batch:

    L = −(1/G) Σ_i (1/|o_i|) Σ_t [ min(ρ_t A_i, clip(ρ_t, 1 ± ε) A_i) − β k3_t ],   ρ_t = π(o_t) / π_old(o_t).

With one inner epoch (μ = 1, the default, as TRL's GRPOTrainer) π_old is the policy itself: π_old = π.detach(),
so ρ = 1 and nothing is clipped, but ∇ρ = ∇ log π and the gradient is the policy gradient A ∇ log π. With μ > 1
the samples are reused and π_old is the policy that drew them. β = 0.04 and ε = 0.2 are DeepSeekMath's.

The reference is the SFT model, frozen; the reward model (a scalar-head scorer, ``rlhf/reward_model.py``) must
share the policy's tokenizer, since it scores the policy's token ids directly. Prompts are visited in a seeded
shuffled order, epoch after epoch; sampling draws from one seeded ``torch.Generator``, saved with each checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError, check_choice, check_range
from ..core.optim import Adam
from . import lm
from .losses import grpo_advantages, grpo_loss, masked_sum
from .stage import Stage, epoch_order
from .supervised import StageStopped


@dataclass(frozen=True)
class GRPOConfig:
    group_size: int = 8
    """G: completions sampled per prompt; their rewards are normalised within the group"""
    prompts_per_step: int = 8
    """prompts per step (the batch is prompts_per_step × group_size completions)"""
    steps: int = 100
    """sampling steps"""
    learning_rate: float = 1e-4
    """Adam step size (constant, as DeepSeekMath)"""
    beta: float = 0.04
    """β: weight of the k3 KL penalty to the reference (DeepSeekMath: 0.04)"""
    clip: float = 0.2
    """ε: clip range of the probability ratio (DeepSeekMath: 0.2)"""
    epochs: int = 1
    """μ: gradient steps on each batch of samples (1: π_old = π, ratio 1)"""
    max_new_tokens: int = 24
    """longest completion sampled, eos included"""
    temperature: float = 1.0
    """sampling temperature; the log-probabilities of the loss use the same temperature"""

    backend: str = "auto"
    """how the models' forward runs: auto (rlworks' packed forward for GPT-2-style models, transformers' for
    any other) or transformers (lm.BACKENDS)"""

    def __post_init__(self) -> None:
        check_choice("backend", self.backend, lm.BACKENDS)
        check_range("group_size", self.group_size, 2)
        for name in ("prompts_per_step", "steps", "epochs", "max_new_tokens"):
            check_range(name, getattr(self, name), 1)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("beta", self.beta, 0)
        check_range("clip", self.clip, 0, 1, low_open=True, high_open=True)
        check_range("temperature", self.temperature, 0, low_open=True)


# ---------------------------------------------------------------------------------------------
# pure pieces
# ---------------------------------------------------------------------------------------------


def prompt_indices(step: int, n_prompts: int, per_step: int, seed: int) -> np.ndarray:
    """The prompts of ``step``: positions step·k … step·k + k − 1 of seeded shuffled epochs over the prompts
    (``stage.epoch_order``, stream 5)."""
    return epoch_order(step * per_step, per_step, n_prompts, seed, 5)


def logprobs(model, s: lm.Samples, temperature: float) -> torch.Tensor:
    """log π(response token) (B, L) of the distribution that was sampled: the logits divided by the temperature
    (as TRL's GRPOTrainer)."""
    return lm.response_logprobs(model, s, temperature)


def group_prompts(q: torch.Tensor, qm: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each prompt repeated G times in consecutive rows (the groups of ``grpo_advantages``), leading columns of
    padding that no row uses dropped."""
    first = int((qm.sum(0) > 0).long().argmax())
    return (q[:, first:].repeat_interleave(group_size, 0), qm[:, first:].repeat_interleave(group_size, 0))


# ---------------------------------------------------------------------------------------------
# the stage
# ---------------------------------------------------------------------------------------------


def grpo(sft_dir: str | Path, rm_dir: str | Path, out_dir: str | Path, prompts: list[str],
         cfg: GRPOConfig = GRPOConfig(), *, seed: int = 0, checkpoint_every: int = 0,
         stop_at: int | None = None) -> dict:
    """Optimise the SFT model in ``sft_dir`` against the reward model in ``rm_dir`` with GRPO on ``prompts``;
    ``out_dir`` ends as the policy's model folder (with tokenizer)."""
    if not prompts:
        raise ConfigError("GRPO needs at least one prompt")
    stage = Stage(out_dir, "grpo", asdict(cfg), seed, checkpoint_every, stop_at)
    tok = lm.load_tokenizer(sft_dir)
    lm.check_same_vocab(lm.load_tokenizer(rm_dir), tok, f"reward model {rm_dir}")
    policy = lm.load_model(sft_dir, backend=cfg.backend)
    reference = lm.load_model(sft_dir, backend=cfg.backend).requires_grad_(False)
    scorer = lm.load_model(rm_dir, kind="scorer", backend=cfg.backend).requires_grad_(False)
    all_q, all_qm = lm.encode_prompts(tok, prompts)  # (N, P) left-padded
    lm.check_room(policy, all_q.shape[1], cfg.max_new_tokens)

    gen = torch.Generator().manual_seed(seed)
    opt = Adam(policy.parameters(), lr=cfg.learning_rate)
    step, extra = stage.restore({"policy": policy}, {"opt": opt})
    recent: list[dict[str, float]] = []  # the last 10 steps' metrics, for the results
    if extra:
        gen.set_state(torch.tensor(extra["torch_rng"], dtype=torch.uint8))
        recent = extra["recent"]
    G = cfg.group_size
    while step < cfg.steps:
        idx = torch.from_numpy(prompt_indices(step, len(prompts), cfg.prompts_per_step, seed))
        q, qm = group_prompts(all_q[idx], all_qm[idx], G)  # (B, P), B = prompts_per_step · G
        policy.eval()
        samples = lm.sample(policy, q, qm, cfg.max_new_tokens, tok.eos_token_id, tok.pad_token_id,
                            temperature=cfg.temperature, generator=gen)
        mask = samples.response_mask  # (B, L)
        with torch.no_grad():
            scores = lm.sequence_scores(scorer, samples.ids, samples.mask, samples.query.shape[1])  # (B,)
            ref_logp = logprobs(reference, samples, cfg.temperature)  # (B, L)
        advantages = grpo_advantages(scores, G)  # (B,)

        policy.train()
        for epoch in range(cfg.epochs):
            logp = logprobs(policy, samples, cfg.temperature)  # (B, L)
            if epoch == 0:
                old_logp = logp.detach()  # the policy that sampled: ρ = 1 on the first pass
            loss, stats = grpo_loss(logp, old_logp, ref_logp, advantages, mask, cfg.clip, cfg.beta)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
        step += 1
        kl_seq = masked_sum(old_logp - ref_logp, mask, dim=1).mean()  # Σ_t log π/π_ref on own samples (k1)
        row = {"losses/grpo": loss.item(), "charts/rm_score": float(scores.mean()), "charts/kl": float(stats["kl"]),
               "charts/kl_sequence": float(kl_seq), "charts/clipfrac": float(stats["clipfrac"]),
               "charts/completion_length": float(mask.sum(1).float().mean())}
        stage.log(step, row)
        recent = (recent + [row])[-10:]
        if stage.due(step, cfg.steps):
            extra = {"torch_rng": gen.get_state().tolist(), "recent": recent}
            stage.save(step, {"policy": policy}, {"opt": opt}, extra)
        if stage.stopped(step):
            raise StageStopped(step)

    policy.eval().save_pretrained(stage.dir)
    tok.save_pretrained(stage.dir)
    last = ("charts/rm_score", "charts/kl", "charts/kl_sequence", "charts/completion_length")
    results = {k.split("/")[1]: float(np.mean([r[k] for r in recent])) for k in last}  # means of the last 10 steps
    results["prompts"] = len(prompts)
    return stage.finish(results, curves=("losses/grpo", "charts/rm_score", "charts/kl", "charts/completion_length"))
