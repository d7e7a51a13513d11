"""rlhf.dpo and rlhf.grpo on a tiny model: the first step against the reference, one step recomputed by hand,
ties, exact resume, and the reward model's vocabulary."""

import csv
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rlworks.config import ConfigError
from rlworks.rlhf import lm
from rlworks.rlhf.dpo import DPOConfig, batch_plan, dpo
from rlworks.rlhf.grpo import GRPOConfig, grpo, prompt_indices
from rlworks.rlhf.supervised import StageStopped
from rlworks.rlhf.task import Labeller, ReviewTask


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A tiny causal LM with its tokenizer, and a scorer (new scalar head) on the same tokenizer."""
    root = tmp_path_factory.mktemp("rlhf")
    rng = np.random.default_rng(0)
    tok = lm.train_tokenizer(ReviewTask().corpus(300, rng), 300)
    torch.manual_seed(0)
    model = lm.new_model(tok, n_layer=1, n_head=2, n_embd=32)
    model.save_pretrained(root / "sft")
    tok.save_pretrained(root / "sft")
    torch.manual_seed(1)
    scorer = lm.load_model(root / "sft", kind="scorer")
    scorer.save_pretrained(root / "rm")
    tok.save_pretrained(root / "rm")
    return root


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    task = ReviewTask()
    return [Labeller().label(task.prompt(rng), task.completion(rng), task.completion(rng), rng) for _ in range(n)]


def _metrics(folder):
    with open(folder / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _weights(folder):
    return load_file(folder / "model.safetensors")


def _assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


# ---------------------------------------------------------------- DPO


def test_dpo_first_loss_is_log2_and_margin_grows(folders, tmp_path):
    rows = _rows(8)
    out = dpo(folders / "sft", tmp_path / "dpo", rows, DPOConfig(steps=25, batch_size=8, learning_rate=3e-3,
                                                                warmup=0, beta=0.5))
    first = _metrics(tmp_path / "dpo")[0]
    # policy == reference at step 1: every log-ratio is 0 and −log σ(0) = log 2
    assert float(first["losses/dpo"]) == pytest.approx(math.log(2), abs=1e-5)
    assert abs(float(first["charts/reward_margin"])) < 1e-5
    # a few steps on 8 pairs separate chosen from rejected (implicit reward margin, over the whole set)
    assert out["results"]["reward_margin"] > 0.5
    assert out["results"]["reward_accuracy"] == 1.0
    assert out["results"]["loss"] < math.log(2) - 0.2
    assert (tmp_path / "dpo" / "model.safetensors").is_file() and (tmp_path / "dpo" / "tokenizer.json").is_file()


def test_dpo_skips_ties(folders, tmp_path):
    rows = _rows(6)
    ties = [{**r, "tie": True} for r in _rows(3, seed=1)]
    cfg = DPOConfig(steps=3, batch_size=4, warmup=0)
    with_ties = dpo(folders / "sft", tmp_path / "a", rows[:3] + ties + rows[3:], cfg)
    assert with_ties["results"]["pairs"] == 6 and with_ties["results"]["ties_skipped"] == 3
    dpo(folders / "sft", tmp_path / "b", rows, cfg)
    _assert_same_weights(tmp_path / "a", tmp_path / "b")  # the ties changed nothing
    with pytest.raises(ConfigError, match="all ties"):
        dpo(folders / "sft", tmp_path / "c", ties, cfg)


def test_dpo_resume_is_exact(folders, tmp_path):
    rows = _rows(10)
    cfg = DPOConfig(steps=6, batch_size=4, warmup=2)
    dpo(folders / "sft", tmp_path / "whole", rows, cfg, seed=3)
    with pytest.raises(StageStopped):
        dpo(folders / "sft", tmp_path / "cut", rows, cfg, seed=3, checkpoint_every=2, stop_at=3)
    dpo(folders / "sft", tmp_path / "cut", rows, cfg, seed=3, checkpoint_every=2)  # resumes from step 2
    _assert_same_weights(tmp_path / "whole", tmp_path / "cut")
    assert [r["step"] for r in _metrics(tmp_path / "cut")] == [str(s) for s in range(1, 7)]


def test_dpo_needs_the_reference_only_on_the_pairs_it_draws(folders, tmp_path):
    plan = batch_plan(3, 40, 4, 3)
    assert len(plan.unique()) == 12  # shuffled epochs: no pair twice within one
    whole = batch_plan(3, 10, 4, 5).flatten().tolist()  # 20 draws = two epochs of 10 pairs
    assert sorted(whole[:10]) == sorted(whole[10:]) == list(range(10)) and whole[:10] != whole[10:]
    out = dpo(folders / "sft", tmp_path / "few", _rows(40), DPOConfig(steps=3, batch_size=4, warmup=0), seed=3)
    assert out["results"]["pairs"] == 40 and out["results"]["pairs_trained"] == 12
    losses = [float(r["losses/dpo"]) for r in _metrics(tmp_path / "few")]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)  # no pair without its reference was drawn
    assert math.isfinite(out["results"]["loss"]) and math.isfinite(out["results"]["reward_margin"])


def test_dpo_config_validation():
    with pytest.raises(ConfigError, match="beta"):
        DPOConfig(beta=0.0)
    with pytest.raises(ConfigError, match="max_completion_tokens"):
        DPOConfig(max_completion_tokens=1)


# ---------------------------------------------------------------- GRPO


PROMPTS = ReviewTask().prompts(12, np.random.default_rng(7))


def test_grpo_first_step_matches_a_recomputation(folders, tmp_path):
    cfg = GRPOConfig(group_size=4, prompts_per_step=3, steps=1, max_new_tokens=8, learning_rate=1e-3)
    grpo(folders / "sft", folders / "rm", tmp_path / "grpo", PROMPTS, cfg, seed=5)
    logged = _metrics(tmp_path / "grpo")[0]
    assert float(logged["charts/kl"]) == 0.0 and float(logged["charts/kl_sequence"]) == 0.0  # π = π_ref at step 1

    # the same step by hand: the same prompts and samples, then the policy-gradient form of the loss (ρ = 1,
    # ∇k3 = 0 at π = π_ref): L = −(1/B) Σ_i A_i (1/|o_i|) Σ_t log π(o_t), A normalised within each group of 4
    tok, policy = lm.load_tokenizer(folders / "sft"), lm.load_model(folders / "sft")
    scorer = lm.load_model(folders / "rm", kind="scorer")
    chosen = [PROMPTS[i] for i in prompt_indices(0, len(PROMPTS), 3, seed=5) for _ in range(4)]
    q, qm = lm.encode_prompts(tok, chosen)
    s = lm.sample(policy, q, qm, 8, tok.eos_token_id, tok.pad_token_id, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        scores = lm.sequence_scores(scorer, s.ids, s.mask)
    assert float(logged["charts/rm_score"]) == pytest.approx(float(scores.mean()), abs=1e-6)
    logp = lm.response_logprobs(policy, s)
    terms = []
    for g in range(3):
        r = scores[4 * g:4 * g + 4]
        for i in range(4):
            a = (r[i] - r.mean()) / (r.std() + 1e-4)
            row = 4 * g + i
            n = int(s.response_mask[row].sum())
            terms.append(-a * logp[row, :n].sum() / n)
    loss = torch.stack(terms).mean()
    loss.backward()
    assert float(logged["losses/grpo"]) == pytest.approx(0.0, abs=1e-5)  # Σ A = 0 in each group, ρ = 1, KL = 0
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
    from rlworks.core.optim import Adam

    opt = Adam(policy.parameters(), lr=1e-3)
    opt.step()
    after = _weights(tmp_path / "grpo")
    for k, v in policy.state_dict().items():
        if k in after:
            torch.testing.assert_close(after[k], v, atol=1e-6, rtol=0)


def test_grpo_resume_is_exact(folders, tmp_path):
    cfg = GRPOConfig(group_size=2, prompts_per_step=5, steps=5, max_new_tokens=6, epochs=2)
    grpo(folders / "sft", folders / "rm", tmp_path / "whole", PROMPTS, cfg, seed=1)
    with pytest.raises(StageStopped):
        grpo(folders / "sft", folders / "rm", tmp_path / "cut", PROMPTS, cfg, seed=1, checkpoint_every=2, stop_at=3)
    out = grpo(folders / "sft", folders / "rm", tmp_path / "cut", PROMPTS, cfg, seed=1, checkpoint_every=2)
    _assert_same_weights(tmp_path / "whole", tmp_path / "cut")
    assert out["results"]["kl"] > 0.0  # the policy moved (two inner epochs per batch)


def test_grpo_prompt_order_cycles_through_every_prompt():
    seen = np.concatenate([prompt_indices(s, 12, 5, seed=0) for s in range(12)])  # 60 = 5 epochs of 12
    for e in range(5):
        assert sorted(seen[12 * e:12 * e + 12]) == list(range(12))
    assert not np.array_equal(seen[:12], seen[12:24])  # each epoch reshuffled


def test_grpo_refuses_another_vocabulary(folders, tmp_path):
    other = lm.train_tokenizer(["completely different text " * 3] * 20, 270)
    scorer = lm.load_model(folders / "rm", kind="scorer")
    scorer.save_pretrained(tmp_path / "rm")
    other.save_pretrained(tmp_path / "rm")
    with pytest.raises(ConfigError, match="tokenizers differ"):
        grpo(folders / "sft", tmp_path / "rm", tmp_path / "out", PROMPTS, GRPOConfig(steps=1))


def test_grpo_refuses_completions_longer_than_the_model(folders, tmp_path):
    with pytest.raises(ConfigError, match="positions"):
        grpo(folders / "sft", folders / "rm", tmp_path / "out", PROMPTS, GRPOConfig(steps=1, max_new_tokens=60))
