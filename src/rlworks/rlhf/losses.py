"""Losses and token-level return math for RL from human feedback — pure torch functions, no models.

Conventions: a completion of length L is right-padded; ``mask`` (bool or 0/1 float, [B, L]) is 1 on its real
tokens, and every reduction runs over masked entries only (padding may hold anything, even NaN).

* PPO-RLHF (Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences"; Huang et al. 2024,
  "The N Implementation Details of RLHF with PPO"): each completion token is a step of an episode that ends at
  its last token; the reward is a per-token KL penalty plus the reward model's score at the last token,

      r_t = −β (log π(y_t) − log π_ref(y_t)) + 1(t = last) · score,

  with GAE over tokens, the clipped surrogate min(ρ A, clip(ρ, 1 ± ε) A) and the clipped value loss
  ½ max((V − R)², (clip(V, V_old ± ε) − R)²). β follows a fixed or adaptive KL controller (Ziegler §2.2):
  e = clip(KL / KL_target − 1, ±0.2), β ← β (1 + e · n_steps / horizon).
* Reward model (Ouyang et al. 2022, eq. 1; Bradley & Terry 1952): L = −log σ(r(x, y_c) − r(x, y_r)).
* DPO (Rafailov et al. 2023, eq. 7): L = −log σ(β [(log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r))]).
* GRPO (Shao et al. 2024, "DeepSeekMath", §4.1, eq. 3, outcome supervision): A_i = (r_i − mean(r)) / std(r) over
  the G completions of one prompt (no value network), and the per-token loss
  −min(ρ A, clip(ρ, 1 ± ε) A) + β KL_k3(π ‖ π_ref), averaged over each sequence's tokens, then over the batch.

KL estimators per sampled token (Schulman 2020, "Approximating KL Divergence"), with d = log π_ref − log π:
k1 = −d (unbiased, can be negative; PPO-RLHF's reward), k3 = e^d − d − 1 (unbiased, ≥ 0; GRPO's loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.returns import gae as _gae


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log p(input_ids[:, t+1] | logits[:, t]): [B, T, V], [B, T] → [B, T−1] (float32)."""
    # float32 log_softmax: bf16/fp16 logits lose the small differences between large logits (TRL does the same)
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    return torch.gather(logp, -1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # (B, T-1)


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Σ_{mask} x, over all entries or along ``dim``."""
    masked = torch.where(mask.bool(), x, torch.zeros_like(x))  # where, not x * mask: NaN padding stays out
    return masked.sum() if dim is None else masked.sum(dim=dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Σ_{mask} x / Σ mask, over all entries or along ``dim``; an empty mask gives 0, not NaN."""
    count = masked_sum(torch.ones_like(x), mask, dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1.0)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x − μ) / √(σ² + eps) with μ, σ² (unbiased, as TRL) over masked entries; padding → 0."""
    mean = masked_mean(x, mask)
    count = masked_sum(torch.ones_like(x), mask)
    var = masked_sum((x - mean).pow(2), mask) / (count - 1.0).clamp(min=1.0)  # Bessel, as TRL's masked_var
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean  # Huang et al. (detail 4): rewards are scaled, their mean kept
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened))


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k1 = log π − log π_ref per token (unbiased estimate of KL(π ‖ π_ref), can be negative)."""
    return logp - ref_logp


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 = e^d − d − 1, d = log π_ref − log π per token (unbiased, ≥ 0; Schulman 2020)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def ppo_token_rewards(scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                      beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """r_t = −β k1_t + 1(t = last masked token) · score: [B], [B, L] ×3 → (rewards, kl) [B, L], 0 on padding."""
    m = mask.bool()
    kl = torch.where(m, kl_k1(logp, ref_logp), torch.zeros_like(logp))  # (B, L)
    positions = torch.arange(logp.shape[1], device=logp.device)  # (L,)
    last = torch.where(m, positions, -1).amax(dim=1, keepdim=True)  # (B, 1); -1 for a row with no tokens
    is_last = (positions.unsqueeze(0) == last).to(logp.dtype)  # (B, L)
    rewards = -beta * kl + is_last * scores.to(logp.dtype).unsqueeze(1)
    return rewards, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over completion tokens, [B, L] → (advantages, returns) [B, L]; V after the last token is 0; padding → 0.

    Each row is one episode that terminates at its last masked token (EOS or the length limit: the completion is
    over either way, Huang et al. detail 7), so this calls ``core.returns.gae`` (the one implementation) on the
    time-major [L, B] view with terminations where the next token is padding.
    """
    m = mask.bool()
    zeros = torch.zeros_like(rewards)
    rewards = torch.where(m, rewards, zeros)
    values = torch.where(m, values, zeros)
    next_mask = torch.cat([m[:, 1:], torch.zeros_like(m[:, :1])], dim=1)  # (B, L): token t+1 is real
    next_values = torch.cat([values[:, 1:], zeros[:, :1]], dim=1)  # (B, L)
    ended = ~next_mask
    advantages, returns = _gae(rewards.T, values.T, next_values.T, ended.T, ended.T, gamma, lam)  # (L, B)
    return torch.where(m, advantages.T, zeros), torch.where(m, returns.T, zeros)


def ppo_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                    clip: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """mean_{mask} max(−A ρ, −A clip(ρ, 1 ± ε)), ρ = π / π_old (Schulman et al. 2017, eq. 7).

    Stats (detached): ``clipfrac``, the fraction of tokens where the clipped term is taken, and ``approx_kl``,
    the k3 estimate of KL(π_old ‖ π), mean((ρ − 1) − log ρ) (as CleanRL).
    """
    log_ratio = logp - old_logp  # (B, L)
    ratio = torch.exp(log_ratio)
    pg_losses = -advantages * ratio
    pg_losses_clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.max(pg_losses, pg_losses_clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((pg_losses_clipped > pg_losses).float(), mask),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
        }
    return loss, stats


def ppo_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                   clip: float) -> torch.Tensor:
    """½ mean_{mask} max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²) (Huang et al., detail 9; TRL)."""
    values_clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    losses = torch.max((values - returns).pow(2), (values_clipped - returns).pow(2))
    return 0.5 * masked_mean(losses, mask)


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor,
                       target: torch.Tensor | float | None = None) -> torch.Tensor:
    """mean −[t log σ(d) + (1 − t) log σ(−d)], d = r_c − r_r; t = 1 (default) is −log σ(d).

    ``target`` is the probability that "chosen" is the better completion (soft labels; 0.5 for a tie).
    """
    d = r_chosen - r_rejected  # (B,)
    if target is None:
        return -F.logsigmoid(d).mean()
    return -(target * F.logsigmoid(d) + (1.0 - target) * F.logsigmoid(-d)).mean()


def dpo_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """−log σ(β [(π_c − ref_c) − (π_r − ref_r)]) on sequence log-prob sums [B] → (loss, chosen, rejected rewards).

    The implicit rewards β (log π − log π_ref) are returned detached, for logging.
    """
    chosen_logratio = pi_chosen - ref_chosen  # (B,)
    rejected_logratio = pi_rejected - ref_rejected  # (B,)
    loss = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio)).mean()
    return loss, beta * chosen_logratio.detach(), beta * rejected_logratio.detach()


def grpo_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """A_i = (r_i − mean_g r) / (std_g r + eps) over consecutive groups of ``group_size``: [B] → [B].

    std is the sample (Bessel-corrected) std, as TRL's GRPOTrainer (``rewards.view(-1, G).std(dim=1)``, eps 1e-4);
    a group of equal rewards gets advantages 0.
    """
    if group_size < 2 or rewards.shape[0] % group_size != 0:
        raise ValueError(f"group_size must be >= 2 and divide the batch ({rewards.shape[0]}), got {group_size}")
    grouped = rewards.view(-1, group_size)  # (B / G, G)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True)
    return ((grouped - mean) / (std + eps)).view(-1)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, clip: float, beta: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """mean_seq mean_{tokens} [−min(ρ A, clip(ρ, 1 ± ε) A) + β k3(π, π_ref)] (DeepSeekMath eq. 3).

    ``advantages`` is per sequence [B] (outcome supervision) or per token [B, L]. Stats (detached): ``kl``, the
    mean k3 over masked tokens, and ``clipfrac``, the fraction of tokens where the clipped term is taken.
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)  # (B, 1): the same advantage on every token of a completion
    ratio = torch.exp(logp - old_logp)  # (B, L)
    surrogate = ratio * advantages
    surrogate_clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    kl = kl_k3(logp, ref_logp)  # (B, L)
    per_token = -torch.min(surrogate, surrogate_clipped) + beta * kl
    loss = masked_mean(per_token, mask, dim=1).mean()
    with torch.no_grad():
        stats = {
            "kl": masked_mean(kl, mask),
            "clipfrac": masked_mean((surrogate_clipped < surrogate).float(), mask),
        }
    return loss, stats


class FixedKLController:
    """A constant KL coefficient β (Ziegler et al. 2019, §2.2)."""

    def __init__(self, beta: float):
        self.value = float(beta)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing to adapt."""

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """β ← β (1 + clip(KL / target − 1, ±0.2) · n_steps / horizon) (Ziegler et al. 2019, §2.2)."""

    def __init__(self, init_beta: float, target: float, horizon: float):
        if target <= 0 or horizon <= 0:
            raise ValueError(f"target and horizon must be > 0, got target={target}, horizon={horizon}")
        self.value = float(init_beta)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """One proportional step towards the target KL; ``n_steps`` is the samples (episodes) since the last one."""
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])
        self.target = float(state["target"])
        self.horizon = float(state["horizon"])
