"""How good is a tuned policy: head to head against the SFT model on the hidden gold reward, at what KL.

For each held-out prompt the policy and the SFT model each sample one completion; the policy **wins** where its
completion's gold reward is higher (a tie counts ½). The KL to the reference is estimated on the policy's own
samples, KL(π ‖ π_ref) ≈ mean over completions of Σ_t (log π(y_t) − log π_ref(y_t)) (nats per completion).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import lm, losses
from .task import gold_reward


@torch.no_grad()
def head_to_head(policy_dir: str | Path, ref_dir: str | Path, prompts: list[str], *, seed: int,
                 rm_dir: str | Path | None = None, max_new_tokens: int = 24, batch_size: int = 256,
                 n_samples: int = 6) -> dict:
    """Win rate on gold against the reference, both models' mean gold (and reward-model score), and the KL."""
    tok = lm.load_tokenizer(policy_dir)
    policy, ref = lm.load_model(policy_dir), lm.load_model(ref_dir)
    rm = lm.load_model(rm_dir, kind="scorer") if rm_dir is not None else None
    # one stream per model: the reference's samples are then the same whichever policy it is compared with
    gen, gen_ref = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    gold_pi, gold_ref, kls, proxy, proxy_ref, pi_texts, ref_texts = [], [], [], [], [], [], []
    for i in range(0, len(prompts), batch_size):
        q, qm = lm.encode_prompts(tok, prompts[i:i + batch_size])
        s_pi = lm.sample(policy, q, qm, max_new_tokens, tok.eos_token_id, tok.pad_token_id, generator=gen)
        s_ref = lm.sample(ref, q, qm, max_new_tokens, tok.eos_token_id, tok.pad_token_id, generator=gen_ref)
        delta = lm.response_logprobs(policy, s_pi) - lm.response_logprobs(ref, s_pi)
        kls += losses.masked_sum(delta, s_pi.response_mask, dim=1).tolist()
        a = lm.decode_completions(tok, s_pi.response, s_pi.response_mask)
        b = lm.decode_completions(tok, s_ref.response, s_ref.response_mask)
        pi_texts += a
        ref_texts += b
        gold_pi += [gold_reward(t) for t in a]
        gold_ref += [gold_reward(t) for t in b]
        if rm is not None:
            proxy += lm.sequence_scores(rm, s_pi.ids, s_pi.mask).tolist()
            proxy_ref += lm.sequence_scores(rm, s_ref.ids, s_ref.mask).tolist()
    g_pi, g_ref = np.array(gold_pi), np.array(gold_ref)
    wins = (g_pi > g_ref) + 0.5 * (g_pi == g_ref)
    out = {"prompts": len(prompts), "win_rate": float(wins.mean()), "gold": float(g_pi.mean()),
           "gold_reference": float(g_ref.mean()), "kl": float(np.mean(kls)),
           "samples": [{"prompt": p, "reference": b, "policy": a, "gold_reference": gb, "gold_policy": ga}
                       for p, a, b, ga, gb in zip(prompts[:n_samples], pi_texts, ref_texts, gold_pi, gold_ref)]}
    if rm is not None:
        out["rm_score"], out["rm_score_reference"] = float(np.mean(proxy)), float(np.mean(proxy_ref))
    return out
