"""rlhf.packed: the packed GPT-2 forward computes what transformers' forward computes — log-probabilities, their
gradients, the language-model loss, the scalar head per token and per sequence, and sampled tokens — on ragged
batches (left-padded prompts, right-padded completions); which models it takes, and the switch to turn it off."""

import numpy as np
import pytest
import torch

from rlworks.config import ConfigError
from rlworks.rlhf import lm, packed, supervised


def _gpt2(kind: str = "lm", **overrides):
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    cfg = dict(vocab_size=50, n_positions=32, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
               attn_pdrop=0.0, pad_token_id=0, eos_token_id=1, bos_token_id=1, num_labels=1)
    cfg.update(overrides)
    torch.manual_seed(0)
    model = (GPT2LMHeadModel if kind == "lm" else GPT2ForSequenceClassification)(GPT2Config(**cfg))
    with torch.no_grad():  # layer norms away from (1, 0), so a missed or misplaced one shows
        for name, p in model.named_parameters():
            if "ln" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def _pair(model, kind="lm"):
    """The same weights twice: one through packed.py (auto), one through transformers."""
    other = type(model)(model.config).eval()
    other.load_state_dict(model.state_dict())
    return lm.set_backend(model, "auto"), lm.set_backend(other, "transformers")


def _ragged(seed: int = 0, rows: int = 6) -> lm.Samples:
    """Prompts of 1–5 tokens left-padded, completions of 1–7 tokens right-padded (ids 2…49; 0 is padding)."""
    rng = np.random.default_rng(seed)
    qlen, rlen = rng.integers(1, 6, rows), rng.integers(1, 8, rows)
    q, qm = torch.zeros(rows, 5, dtype=torch.long), torch.zeros(rows, 5, dtype=torch.long)
    r, rm = torch.zeros(rows, 7, dtype=torch.long), torch.zeros(rows, 7, dtype=torch.long)
    for i in range(rows):
        q[i, 5 - qlen[i]:] = torch.from_numpy(rng.integers(2, 50, qlen[i]))
        qm[i, 5 - qlen[i]:] = 1
        r[i, :rlen[i]] = torch.from_numpy(rng.integers(2, 50, rlen[i]))
        rm[i, :rlen[i]] = 1
    return lm.trimmed(lm.Samples(q, qm, r, rm))


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("overrides", [{}, {"scale_attn_by_inverse_layer_idx": True},
                                       {"activation_function": "relu"}, {"activation_function": "gelu"}])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_response_logprobs_and_gradients_match_transformers(overrides, temperature):
    fast, slow = _pair(_gpt2(**overrides))
    assert lm.uses_packed(fast) and not lm.uses_packed(slow)
    s = _ragged()
    m = s.response_mask.bool()
    a, b = lm.response_logprobs(fast, s, temperature), lm.response_logprobs(slow, s, temperature)
    torch.testing.assert_close(a[m], b[m], rtol=1e-5, atol=1e-5)
    assert (a[~m] == 0).all()
    ga, gb = _grads(fast, (a * m).sum()), _grads(slow, (b * m).sum())
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("repeat", ["pairs", "groups"])
def test_repeated_prompts_run_once_and_match_transformers(repeat):
    """DPO's and the reward model's pairs (the prompts twice over) and GRPO's groups (each prompt G times in a
    row) share the prompt's rows: fewer rows, the same log-probs, gradients and scores."""
    fast, slow = _pair(_gpt2())
    base = _ragged(5, rows=4)
    if repeat == "pairs":
        q, qm = base.query.repeat(2, 1), base.query_mask.repeat(2, 1)
    else:
        q, qm = base.query.repeat_interleave(3, 0), base.query_mask.repeat_interleave(3, 0)
    other = _ragged(6, rows=len(q))
    s = lm.trimmed(lm.Samples(q, qm, other.response, other.response_mask))
    p = packed.Packed(s.ids, s.mask, s.query.shape[1])
    assert len(p.tokens) == int(base.query_mask.sum() + s.response_mask.sum())  # each prompt once
    m = s.response_mask.bool()
    a, b = lm.response_logprobs(fast, s), lm.response_logprobs(slow, s)
    torch.testing.assert_close(a[m], b[m], rtol=1e-5, atol=1e-5)
    ga, gb = _grads(fast, (a * m).sum()), _grads(slow, (b * m).sum())
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], rtol=1e-4, atol=1e-6, msg=name)
    fast_rm, slow_rm = _pair(_gpt2("scorer"))
    ra = lm.sequence_scores(fast_rm, s.ids, s.mask, s.query.shape[1])
    rb = lm.sequence_scores(slow_rm, s.ids, s.mask, s.query.shape[1])
    torch.testing.assert_close(ra, rb, rtol=1e-5, atol=1e-5)
    ga, gb = _grads(fast_rm, ra.square().sum()), _grads(slow_rm, rb.square().sum())
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], rtol=1e-4, atol=1e-6, msg=name)


def test_language_model_loss_and_gradients_match_transformers():
    fast, slow = _pair(_gpt2())
    s = _ragged(1)
    order = torch.argsort(1 - s.mask, dim=1, stable=True)  # right-padded rows, as supervised._fit trains on
    ids, mask = s.ids.gather(1, order), s.mask.gather(1, order)
    loss_mask = mask.clone()
    loss_mask[:, :2] = 0  # the loss on part of each row only, as SFT's completions
    a, b = supervised.lm_loss(fast, ids, mask, loss_mask), supervised.lm_loss(slow, ids, mask, loss_mask)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    ga, gb = _grads(fast, a), _grads(slow, b)
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("overrides", [{}, {"scale_attn_by_inverse_layer_idx": True}, {"n_layer": 1}])
def test_scalar_head_matches_transformers(overrides):
    """Per token, and per sequence (where the last block runs at the last tokens only), with gradients."""
    fast, slow = _pair(_gpt2("scorer", **overrides))
    s = _ragged(2)
    m = s.mask.bool()
    a, b = lm.scorer_hidden(fast, s.ids, s.mask), lm.scorer_hidden(slow, s.ids, s.mask)
    torch.testing.assert_close(a[m], b[m], rtol=1e-5, atol=1e-5)
    ra, rb = lm.sequence_scores(fast, s.ids, s.mask), lm.sequence_scores(slow, s.ids, s.mask)
    torch.testing.assert_close(ra, rb, rtol=1e-5, atol=1e-5)
    ga, gb = _grads(fast, ra.square().sum()), _grads(slow, rb.square().sum())
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("greedy", [True, False])
def test_sampling_matches_transformers_token_for_token(greedy):
    fast, slow = _pair(_gpt2())
    s = _ragged(3, rows=16)
    a = lm.sample(fast, s.query, s.query_mask, 12, 1, 0, greedy=greedy, temperature=0.9,
                  generator=torch.Generator().manual_seed(5))
    b = lm.sample(slow, s.query, s.query_mask, 12, 1, 0, greedy=greedy, temperature=0.9,
                  generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.response, b.response) and torch.equal(a.response_mask, b.response_mask)
    assert a.response.shape[1] > 3  # long enough to exercise the cache


def test_sampling_draws_from_the_same_distributions(monkeypatch):
    """Every step's probabilities, as handed to the draw, agree with transformers' to float rounding (equal
    tokens alone would miss a small error in the cache)."""
    fast, slow = _pair(_gpt2())
    s = _ragged(4, rows=16)
    seen, draw = [], lm.categorical

    def spy(probs, u):
        seen[-1].append(probs.clone())
        return draw(probs, u)

    monkeypatch.setattr(lm, "categorical", spy)
    out = []
    for model in (fast, slow):
        seen.append([])
        out.append(lm.sample(model, s.query, s.query_mask, 10, 1, 0, generator=torch.Generator().manual_seed(6)))
    assert torch.equal(out[0].response, out[1].response)
    assert len(seen[0]) == len(seen[1]) > 3
    for t, (a, b) in enumerate(zip(*seen)):  # the packed sampler computes only the rows still sampling
        torch.testing.assert_close(a, b[out[1].response_mask[:, t].bool()], rtol=1e-5, atol=1e-7)
    assert (out[1].response_mask == 0).any()  # some rows ended early


def test_categorical_draws_follow_the_probabilities():
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3], [0.0, 0.0, 0.0, 1.0]]).repeat(20_000, 1)
    got = lm.categorical(probs, torch.rand(40_000, 1, generator=torch.Generator().manual_seed(0))).view(20_000, 2)
    freq = torch.bincount(got[:, 0], minlength=4).float() / 20_000
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.0, 0.6, 0.3]), atol=0.01, rtol=0)  # ±5 std
    assert (got[:, 1] == 3).all() and not (got[:, 0] == 1).any()  # a zero-probability token is never drawn


def test_which_models_it_takes():
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=4))
    assert not packed.supports(llama) and not lm.uses_packed(llama)
    dropout = _gpt2(resid_pdrop=0.1)
    assert packed.supports(dropout.eval()) and not packed.supports(dropout.train())  # dropout only in training
    assert not packed.supports(_gpt2(reorder_and_upcast_attn=True))
    with pytest.raises(ConfigError, match="backend"):
        lm.set_backend(_gpt2(), "fast")
    with pytest.raises(ConfigError, match="backend"):
        supervised.SFTConfig(backend="fast")
