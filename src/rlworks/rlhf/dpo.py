"""Direct Preference Optimization (Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is
Secretly a Reward Model"): fit the policy to preference pairs directly, with no reward model and no sampling.

The KL-constrained reward maximisation max_π E[r(x, y)] − β KL(π ‖ π_ref) has the closed-form optimum
π*(y|x) ∝ π_ref(y|x) exp(r(x, y) / β), so r(x, y) = β log π*(y|x) / π_ref(y|x) + β log Z(x). Put into the
Bradley–Terry likelihood of the preferences, Z(x) cancels and the reward model's loss becomes a loss on the
policy (eq. 7):

    L = −E_(x, y_c, y_r) log σ( β [ log π(y_c|x)/π_ref(y_c|x) − log π(y_r|x)/π_ref(y_r|x) ] ),

where log π(y|x) = Σ_t log π(y_t | x, y_<t) sums over the completion's tokens, eos included (the policy must
also learn where to stop). β (0.1, as the paper's summarisation and dialogue runs) sets how far the policy may
move from the reference: the implicit reward of a completion is β log π(y|x)/π_ref(y|x) (§5), logged as
``charts/reward_accuracy`` (chosen's implicit reward above rejected's) and ``charts/reward_margin``.

The reference is the SFT model, frozen. Its log-probabilities never change, so they are computed once before
training (as TRL's ``precompute_ref_log_probs``), for the pairs training will draw: the seeded minibatches of
every step are drawn up front (``batch_plan``: seeded shuffled epochs; 300 steps of 32 pairs touch 9,600 of
the tiny preset's 28,800). Each step then runs the policy only, on chosen and rejected concatenated into one
batch. The after-training figures (loss, implicit-reward accuracy and margin) are over those same trained pairs. Ties
(``"tie": true``) say nothing about which is better and are skipped. Adam with a linear warm-up and a cosine
decay, gradients clipped at norm 1.0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..config import ConfigError, check_choice, check_range
from ..core.optim import Adam
from . import lm
from .losses import dpo_loss, masked_sum
from .stage import Stage, epoch_order
from .supervised import StageStopped, lr_at


@dataclass(frozen=True)
class DPOConfig:
    beta: float = 0.1
    """β: strength of the implicit KL constraint to the reference (paper: 0.1; smaller lets the policy move further)"""
    steps: int = 300
    """gradient steps"""
    batch_size: int = 32
    """preference pairs per step (each is two sequences: chosen and rejected)"""
    learning_rate: float = 1e-4
    """peak Adam step size"""
    warmup: int = 20
    """steps of linear warm-up (the paper warms up over 150 steps)"""
    max_completion_tokens: int = 32
    """completions are cut to this many tokens, eos included"""

    backend: str = "auto"
    """how the models' forward runs: auto (rlworks' packed forward for GPT-2-style models, transformers' for
    any other) or transformers (lm.BACKENDS)"""

    def __post_init__(self) -> None:
        check_choice("backend", self.backend, lm.BACKENDS)
        check_range("beta", self.beta, 0, low_open=True)
        for name in ("steps", "batch_size"):
            check_range(name, getattr(self, name), 1)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("warmup", self.warmup, 0)
        check_range("max_completion_tokens", self.max_completion_tokens, 2)


# ---------------------------------------------------------------------------------------------
# pure pieces
# ---------------------------------------------------------------------------------------------


def encode_pairs(tok, rows: list[dict], max_completion_tokens: int) -> tuple[torch.Tensor, ...]:
    """The pairs as tensors: prompts (N, P) left-padded, and completions (2N, L) right-padded with eos, the
    chosen ones in rows 0 … N − 1 and the rejected ones in rows N … 2N − 1."""
    q, qm = lm.encode_prompts(tok, [r["prompt"] for r in rows])
    completions = [r["chosen"] for r in rows] + [r["rejected"] for r in rows]
    c, cm = lm.encode_completions(tok, completions, max_completion_tokens)
    return q, qm, c, cm


def sequence_logprobs(model, q: torch.Tensor, qm: torch.Tensor, c: torch.Tensor, cm: torch.Tensor) -> torch.Tensor:
    """log π(y|x) = Σ_t log π(y_t | x, y_<t) over each completion's tokens, eos included: (2B,) for prompts (B, P)
    and completions (2B, L) (chosen, then rejected)."""
    s = lm.trimmed(lm.Samples(q.repeat(2, 1), qm.repeat(2, 1), c, cm))
    return masked_sum(lm.response_logprobs(model, s), s.response_mask, dim=1)  # (2B,)


@torch.no_grad()
def dataset_logprobs(model, q: torch.Tensor, qm: torch.Tensor, c: torch.Tensor, cm: torch.Tensor,
                     batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence log-probs of every chosen and every rejected completion: ((N,), (N,)), in batches. Small batches
    are faster and leaner: each is padded to its own longest completion (16 pairs: half the time of 256 on the
    tiny preset's pairs, and a transient of about 10 MB instead of 400)."""
    n = q.shape[0]
    chosen, rejected = [], []
    for i in range(0, n, batch_size):
        j = min(i + batch_size, n)
        both = sequence_logprobs(model, q[i:j], qm[i:j], torch.cat([c[i:j], c[n + i:n + j]]),
                                 torch.cat([cm[i:j], cm[n + i:n + j]]))
        chosen.append(both[:j - i])
        rejected.append(both[j - i:])
    return torch.cat(chosen), torch.cat(rejected)


def batch_plan(seed: int, n: int, batch_size: int, steps: int) -> torch.Tensor:
    """The pairs of every step's minibatch, (steps, batch_size) indices into the N pairs: seeded shuffled epochs
    (``stage.epoch_order``, stream 6), each pair once per epoch as TRL visits them (step s trains on row s, so a
    resumed run needs only its step)."""
    return torch.from_numpy(epoch_order(0, steps * batch_size, n, seed, 6).reshape(steps, batch_size))


def _usable(preferences: list[dict]) -> list[dict]:
    rows = [r for r in preferences if not r.get("tie", False)]
    if not rows:
        raise ConfigError(f"DPO needs preference rows that are not ties; got {len(preferences)} rows, all ties")
    for i, r in enumerate(rows):
        if not all(isinstance(r.get(k), str) for k in ("prompt", "chosen", "rejected")):
            raise ConfigError(f"preference row {i}: needs string prompt, chosen and rejected")
    return rows


# ---------------------------------------------------------------------------------------------
# the stage
# ---------------------------------------------------------------------------------------------


def dpo(sft_dir: str | Path, out_dir: str | Path, preferences: list[dict], cfg: DPOConfig = DPOConfig(), *,
        seed: int = 0, checkpoint_every: int = 0, stop_at: int | None = None) -> dict:
    """Fine-tune the SFT model in ``sft_dir`` on preference rows ``{"prompt", "chosen", "rejected", "tie"?}``
    with DPO against a frozen copy of itself; ``out_dir`` ends as the policy's model folder (with tokenizer)."""
    stage = Stage(out_dir, "dpo", asdict(cfg), seed, checkpoint_every, stop_at)
    rows = _usable(preferences)
    tok = lm.load_tokenizer(sft_dir)
    policy = lm.load_model(sft_dir, backend=cfg.backend)
    reference = lm.load_model(sft_dir, backend=cfg.backend).requires_grad_(False)
    q, qm, c, cm = encode_pairs(tok, rows, cfg.max_completion_tokens)
    limit = lm.max_positions(policy)
    if limit is not None and q.shape[1] + c.shape[1] > limit:
        raise ConfigError(f"prompt ({q.shape[1]} tokens) + completion ({c.shape[1]}) exceed the model's "
                          f"{limit} positions; lower max_completion_tokens={cfg.max_completion_tokens}")
    n = q.shape[0]
    plan = batch_plan(seed, n, cfg.batch_size, cfg.steps)  # (steps, B)
    used = plan.unique()  # (U,) sorted: the pairs training will see
    used_rows = torch.cat([used, used + n])  # their chosen and rejected rows of c
    ref_chosen, ref_rejected = torch.full((n,), float("nan")), torch.full((n,), float("nan"))
    ref_chosen[used], ref_rejected[used] = dataset_logprobs(reference, q[used], qm[used], c[used_rows], cm[used_rows])
    opt = Adam(policy.parameters(), lr=cfg.learning_rate)
    step, _ = stage.restore({"policy": policy}, {"opt": opt})
    policy.train()
    while step < cfg.steps:
        idx = plan[step]
        opt.param_groups[0]["lr"] = lr_at(step, cfg.steps, cfg.learning_rate, cfg.warmup)
        both = sequence_logprobs(policy, q[idx], qm[idx], torch.cat([c[idx], c[n + idx]]),
                                 torch.cat([cm[idx], cm[n + idx]]))  # (2B,)
        pi_chosen, pi_rejected = both[:cfg.batch_size], both[cfg.batch_size:]
        loss, chosen_rewards, rejected_rewards = dpo_loss(pi_chosen, pi_rejected, ref_chosen[idx],
                                                          ref_rejected[idx], cfg.beta)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        step += 1
        stage.log(step, {"losses/dpo": loss.item(),
                         "charts/reward_accuracy": float((chosen_rewards > rejected_rewards).float().mean()),
                         "charts/reward_margin": float((chosen_rewards - rejected_rewards).mean()),
                         "charts/lr": opt.param_groups[0]["lr"]})
        if stage.due(step, cfg.steps):
            stage.save(step, {"policy": policy}, {"opt": opt}, {})
        if stage.stopped(step):
            raise StageStopped(step)

    policy.eval()
    pi_chosen, pi_rejected = dataset_logprobs(policy, q[used], qm[used], c[used_rows], cm[used_rows])
    margin = cfg.beta * ((pi_chosen - ref_chosen[used]) - (pi_rejected - ref_rejected[used]))  # (U,) implicit rewards
    policy.save_pretrained(stage.dir)
    tok.save_pretrained(stage.dir)
    results = {"pairs": n, "ties_skipped": len(preferences) - n, "pairs_trained": len(used),
               "loss": float(-torch.nn.functional.logsigmoid(margin).mean()),
               "reward_accuracy": float((margin > 0).float().mean()), "reward_margin": float(margin.mean())}
    return stage.finish(results, curves=("losses/dpo", "charts/reward_accuracy", "charts/reward_margin"))
