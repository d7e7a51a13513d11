"""PPO against a reward model with a KL leash to the SFT model — the seed's RLHF step (Ziegler et al. 2019,
"Fine-Tuning Language Models from Human Preferences"; Ouyang et al. 2022), with the implementation details of
Huang et al. 2024 ("The N Implementation Details of RLHF with PPO"). Each completion is an episode whose steps
are its tokens:

    r_t = −β (log π(y_t | x, y_<t) − log π_ref(y_t | x, y_<t)) + 1(t = last) · (r_φ(x, y) − μ) / σ,

where r_φ is the reward model, normalised by its mean μ and spread σ on the reference model's own samples
(Ziegler §2.2) and π_ref is the frozen SFT model. Advantages are GAE over tokens (γ = 1, λ = 0.95), whitened
over the batch; the policy minimises the clipped surrogate and a value model (initialised from the reward model,
as Huang et al. and TRL) the clipped value loss; β is fixed or follows the adaptive controller (``losses.py``).
Dropout is off everywhere (``eval()`` mode), so the rollout's and the update's log-probabilities agree.

Reads top to bottom: config → one rollout (``rollout``) → one PPO update (``update``) → ``ppo`` (the stage).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import check_choice, check_range
from ..core.optim import Adam
from . import lm, losses
from .stage import Stage, rng_state, set_rng_state
from .supervised import StageStopped
from .task import gold_reward


@dataclass(frozen=True)
class PPOConfig:
    steps: int = 60
    """PPO iterations (each: one batch of rollouts, then epochs of minibatch updates)"""
    rollouts: int = 64
    """prompts sampled per iteration"""
    minibatch_size: int = 16
    """completions per gradient step"""
    epochs: int = 4
    """passes over each batch of rollouts"""
    learning_rate: float = 3e-5
    """Adam step size of the policy and the value model"""
    beta: float = 0.05
    """KL coefficient β (initial value where adaptive)"""
    adaptive_kl: bool = False
    """adapt β towards ``target_kl`` (Ziegler et al. §2.2) instead of keeping it fixed"""
    target_kl: float = 6.0
    """target KL per completion (nats) of the adaptive controller"""
    kl_horizon: int = 10_000
    """horizon of the adaptive controller, in completions"""
    clip: float = 0.2
    """ε of the clipped surrogate"""
    value_clip: float = 0.2
    """ε of the clipped value loss"""
    value_coef: float = 0.1
    """weight of the value loss (TRL's vf_coef)"""
    gamma: float = 1.0
    """discount over tokens"""
    lam: float = 0.95
    """GAE λ"""
    max_new_tokens: int = 24
    """longest completion in tokens"""
    temperature: float = 1.0
    """sampling temperature of the rollouts"""
    missing_eos_penalty: float = 1.0
    """subtracted from the normalised score of a completion that never ends (Huang et al., detail 23.2)"""
    log_gold: bool = True
    """also log the hidden gold reward of the rollouts (monitoring only; training never reads it)"""

    backend: str = "auto"
    """how the models' forward runs: auto (rlworks' packed forward for GPT-2-style models, transformers' for
    any other) or transformers (lm.BACKENDS)"""

    def __post_init__(self) -> None:
        check_choice("backend", self.backend, lm.BACKENDS)
        for name in ("steps", "rollouts", "minibatch_size", "epochs", "max_new_tokens", "kl_horizon"):
            check_range(name, getattr(self, name), 1)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("beta", self.beta, 0)
        check_range("target_kl", self.target_kl, 0, low_open=True)
        for name in ("clip", "value_clip"):
            check_range(name, getattr(self, name), 0, 1, low_open=True)
        check_range("value_coef", self.value_coef, 0)
        check_range("gamma", self.gamma, 0, 1)
        check_range("lam", self.lam, 0, 1)
        check_range("temperature", self.temperature, 0, low_open=True)
        check_range("missing_eos_penalty", self.missing_eos_penalty, 0)


def values_of(value_model, s: lm.Samples) -> torch.Tensor:
    """V(x, y_<t) for each response token t (B, L): the value head at the position that predicts token t."""
    per_token = lm.scorer_hidden(value_model, s.ids, s.mask)
    p = s.query.shape[1]
    return per_token[:, p - 1:-1]


@torch.no_grad()
def rollout(policy, ref, reward_model, value_model, tok, prompts: list[str], cfg: PPOConfig, beta: float,
            norm: tuple[float, float], gen: torch.Generator) -> dict:
    """Sample completions and compute everything the update needs: old log-probs, values, rewards, advantages."""
    q, qm = lm.encode_prompts(tok, prompts)
    s = lm.sample(policy, q, qm, cfg.max_new_tokens, tok.eos_token_id, tok.pad_token_id,
                  temperature=cfg.temperature, generator=gen)
    mask = s.response_mask.float()  # (B, L)
    logp = lm.response_logprobs(policy, s, cfg.temperature)
    ref_logp = lm.response_logprobs(ref, s, cfg.temperature)
    values = values_of(value_model, s)
    raw = lm.sequence_scores(reward_model, s.ids, s.mask)  # (B,)
    ended = (s.response == tok.eos_token_id).any(1)
    score = (raw - norm[0]) / norm[1] - cfg.missing_eos_penalty * (~ended).float()
    rewards, kl = losses.ppo_token_rewards(score, logp, ref_logp, mask, beta)
    advantages, returns = losses.gae(rewards, values, mask, cfg.gamma, cfg.lam)
    advantages = losses.masked_whiten(advantages, mask)
    return {"samples": s, "mask": mask, "logp": logp, "values": values, "advantages": advantages,
            "returns": returns, "raw_score": raw, "kl": kl.sum(1), "ended": ended}


def update(policy, value_model, opt: Adam, batch: dict, cfg: PPOConfig, gen: torch.Generator) -> dict[str, float]:
    """``cfg.epochs`` passes of clipped-surrogate and clipped-value minibatch steps over one rollout batch."""
    s: lm.Samples = batch["samples"]
    n = s.query.shape[0]
    stats: dict[str, list[float]] = {"policy": [], "value": [], "clipfrac": [], "approx_kl": []}
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.minibatch_size):
            idx = order[i:i + cfg.minibatch_size]
            mb = lm.trimmed(lm.Samples(s.query[idx], s.query_mask[idx], s.response[idx], s.response_mask[idx]))
            old = {k: batch[k][idx, :mb.response.shape[1]] for k in ("mask", "logp", "advantages", "values", "returns")}
            logp = lm.response_logprobs(policy, mb, cfg.temperature)
            pg_loss, pg = losses.ppo_policy_loss(logp, old["logp"], old["advantages"], old["mask"], cfg.clip)
            vf_loss = losses.ppo_value_loss(values_of(value_model, mb), old["values"], old["returns"], old["mask"],
                                            cfg.value_clip)
            loss = pg_loss + cfg.value_coef * vf_loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(opt.params, 1.0)
            opt.step()
            for k, v in (("policy", pg_loss), ("value", vf_loss), ("clipfrac", pg["clipfrac"]),
                         ("approx_kl", pg["approx_kl"])):
                stats[k].append(float(v.detach()))
    return {k: float(np.mean(v)) for k, v in stats.items()}


@torch.no_grad()
def score_norm(reward_model, ref, tok, prompts: list[str], cfg: PPOConfig, gen: torch.Generator) -> tuple[float, float]:
    """Mean and std of the reward model's scores on the reference model's samples (Ziegler et al. §2.2)."""
    q, qm = lm.encode_prompts(tok, prompts)
    s = lm.sample(ref, q, qm, cfg.max_new_tokens, tok.eos_token_id, tok.pad_token_id, generator=gen)
    scores = lm.sequence_scores(reward_model, s.ids, s.mask)
    return float(scores.mean()), float(scores.std().clamp(min=1e-6))


def ppo(sft_dir: str | Path, rm_dir: str | Path, out_dir: str | Path, prompts: list[str],
        cfg: PPOConfig = PPOConfig(), *, seed: int = 0, checkpoint_every: int = 0, stop_at: int | None = None) -> dict:
    """Optimise the SFT policy against the reward model in ``rm_dir`` on ``prompts``; ``out_dir`` ends as the
    policy's model folder, with the value model in ``out_dir/value``."""
    stage = Stage(out_dir, "ppo", asdict(cfg), seed, checkpoint_every, stop_at)
    tok = lm.load_tokenizer(sft_dir)
    lm.check_same_vocab(tok, lm.load_tokenizer(rm_dir), f"reward model {rm_dir}")
    policy = lm.load_model(sft_dir, backend=cfg.backend)
    ref = lm.load_model(sft_dir, backend=cfg.backend).requires_grad_(False)
    reward_model = lm.load_model(rm_dir, kind="scorer", backend=cfg.backend).requires_grad_(False)
    value_model = lm.load_model(rm_dir, kind="scorer", backend=cfg.backend)
    lm.check_room(policy, int(lm.encode_prompts(tok, prompts)[0].shape[1]), cfg.max_new_tokens)
    opt = Adam([*policy.parameters(), *value_model.parameters()], lr=cfg.learning_rate)
    rng, gen = np.random.default_rng([seed, 6]), torch.Generator().manual_seed(seed + 6)
    kl_ctl = (losses.AdaptiveKLController(cfg.beta, cfg.target_kl, cfg.kl_horizon) if cfg.adaptive_kl
              else losses.FixedKLController(cfg.beta))
    step, extra = stage.restore({"policy": policy, "value": value_model}, {"opt": opt})
    if extra:
        set_rng_state(rng, gen, extra["rng"])
        kl_ctl.load_state_dict(extra["kl_controller"])
        norm = tuple(extra["score_norm"])
    else:
        norm = score_norm(reward_model, ref, tok, [prompts[i] for i in rng.integers(0, len(prompts), 256)], cfg, gen)
    while step < cfg.steps:
        batch_prompts = [prompts[i] for i in rng.integers(0, len(prompts), cfg.rollouts)]
        batch = rollout(policy, ref, reward_model, value_model, tok, batch_prompts, cfg, kl_ctl.value, norm, gen)
        stats = update(policy, value_model, opt, batch, cfg, gen)
        kl = float(batch["kl"].mean())
        beta = kl_ctl.value
        kl_ctl.update(kl, cfg.rollouts)
        step += 1
        metrics = {"charts/rm_score": float(batch["raw_score"].mean()), "charts/kl": kl, "charts/beta": beta,
                   "charts/completion_length": float(batch["mask"].sum(1).mean()),
                   "charts/ended": float(batch["ended"].float().mean()), "losses/policy": stats["policy"],
                   "losses/value": stats["value"], "charts/clipfrac": stats["clipfrac"],
                   "charts/approx_kl": stats["approx_kl"]}
        if cfg.log_gold:
            texts = lm.decode_completions(tok, batch["samples"].response, batch["samples"].response_mask)
            metrics["charts/gold"] = float(np.mean([gold_reward(t) for t in texts]))
        stage.log(step, metrics)
        if stage.due(step, cfg.steps):
            stage.save(step, {"policy": policy, "value": value_model}, {"opt": opt},
                       {"rng": rng_state(rng, gen), "kl_controller": kl_ctl.state_dict(), "score_norm": list(norm)})
        if stage.stopped(step):
            raise StageStopped(step)
    policy.eval().save_pretrained(stage.dir)
    tok.save_pretrained(stage.dir)
    value_model.save_pretrained(stage.dir / "value")
    last = stage.history[-1] if stage.history else {}
    results = {"score_norm": list(norm), "final_beta": kl_ctl.value,
               **{k.split("/")[1]: last[k] for k in ("charts/kl", "charts/rm_score", "charts/gold") if k in last}}
    return stage.finish(results, curves=("charts/rm_score", "charts/gold", "charts/kl"))
