"""rlhf.task and rlhf.lm: the gold reward and the labeller by hand, and the model-facing pieces every stage leans
on: log-probabilities at the right positions, rewards independent of the padding side, sampling that stops at
eos, folder errors."""

import math

import numpy as np
import pytest
import torch

from rlworks.config import ConfigError
from rlworks.rlhf import lm
from rlworks.rlhf.task import ADJECTIVES, Labeller, ReviewTask, gold_reward, noise_ceiling


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    tok = lm.train_tokenizer(ReviewTask().corpus(300, np.random.default_rng(0)), 300)
    torch.manual_seed(0)
    model = lm.new_model(tok, n_layer=1, n_head=2, n_embd=32)
    model.save_pretrained(root / "m")
    tok.save_pretrained(root / "m")
    return root / "m"


# ---------------------------------------------------------------- the task


def test_gold_reward_by_hand():
    assert gold_reward("great .") == 1.0
    assert gold_reward("very dull .") == pytest.approx(-0.8 * 1.5)
    assert gold_reward("not great .") == -1.0
    assert gold_reward("not very superb .") == -1.5  # the negation reaches two words back
    assert gold_reward("great , and the cast was great .") == pytest.approx(1.0 - 0.5)  # a repeat costs 0.5
    assert gold_reward("great") == 0.5  # no closing " ."
    assert gold_reward("great zzz .") == 0.5  # an unknown word
    long = " ".join(["quiet"] + ["and the plot was"] * 5) + " ."  # 22 words, all known: 6 over 16
    assert gold_reward(long) == pytest.approx(-0.2 * 6)
    assert gold_reward("quiet " * 20 + ".") == pytest.approx(-0.5 * 19 - 0.2 * 5)


def test_demonstrations_are_well_formed():
    task, rng = ReviewTask(), np.random.default_rng(1)
    for prompt, completion in task.demonstrations(200, rng):
        words = completion.split()
        assert words[-1] == "." and prompt.split()[-1] in ("was", "felt", "seemed")
        adjectives = [w for w in words if w in ADJECTIVES]
        assert len(adjectives) == len(set(adjectives))  # never a repeat: the reward model's blind spot
        assert gold_reward(completion) > -3.5


def test_labeller_probability_and_noise_ceiling():
    lab = Labeller(temperature=0.5)
    assert lab.p_first("great .", "dull .") == pytest.approx(1 / (1 + math.exp(-1.8 / 0.5)))
    assert lab.p_first("fine .", "fine .") == 0.5
    rng = np.random.default_rng(0)
    rows = [lab.label("x", "great .", "dull .", rng) for _ in range(4000)]
    p = lab.p_first("great .", "dull .")
    assert np.mean([r["chosen"] == "great ." for r in rows]) == pytest.approx(p, abs=0.02)
    assert noise_ceiling(rows) == pytest.approx(p)  # max(p, 1 - p) whichever way each label fell
    with pytest.raises(ConfigError, match="temperature"):
        Labeller(temperature=0)


# ---------------------------------------------------------------- the model pieces


class OneToken(torch.nn.Module):
    """A 'language model' that gives token k probability p at every position."""

    def __init__(self, vocab: int, k: int, p: float):
        super().__init__()
        logits = torch.full((vocab,), math.log((1 - p) / (vocab - 1)))
        logits[k] = math.log(p)
        self.register_buffer("row", logits)

    def forward(self, input_ids, attention_mask=None, position_ids=None, **_):
        return type("Out", (), {"logits": self.row.expand(*input_ids.shape, -1).clone()})()


def test_response_logprobs_known_value():
    model, vocab, p = OneToken(10, 3, 0.6), 10, 0.6
    q = torch.tensor([[0, 5, 6], [7, 8, 9]])
    qm = torch.tensor([[0, 1, 1], [1, 1, 1]])
    r = torch.tensor([[3, 4, 3], [4, 3, 0]])
    rm = torch.tensor([[1, 1, 1], [1, 1, 0]])
    got = lm.response_logprobs(model, lm.Samples(q, qm, r, rm))
    other = math.log((1 - p) / (vocab - 1))
    want = torch.tensor([[math.log(p), other, math.log(p)], [other, math.log(p), 0.0]])
    torch.testing.assert_close(got * rm, want * rm)
    # temperature divides the logits: at T = 2 the same token gets p^(1/2) renormalised
    hot = lm.response_logprobs(model, lm.Samples(q, qm, r, rm), temperature=2.0)
    z = p ** 0.5 + (vocab - 1) * ((1 - p) / (vocab - 1)) ** 0.5
    assert hot[0, 0].item() == pytest.approx(0.5 * math.log(p) - math.log(z), rel=1e-5)


def test_rewards_do_not_depend_on_the_padding_side(folder):
    tok = lm.load_tokenizer(folder)
    scorer = lm.load_model(folder, kind="scorer")
    texts = ["the plot was great .", "i thought the music was very dull , but the cast was superb ."]
    rows = [tok(t, add_special_tokens=False).input_ids for t in texts]
    width = max(map(len, rows))
    left = torch.full((2, width), tok.pad_token_id)
    right = torch.full((2, width), tok.pad_token_id)
    lmask, rmask = torch.zeros_like(left), torch.zeros_like(right)
    for i, r in enumerate(rows):
        left[i, width - len(r):], lmask[i, width - len(r):] = torch.tensor(r), 1
        right[i, :len(r)], rmask[i, :len(r)] = torch.tensor(r), 1
    with torch.no_grad():
        a = lm.sequence_scores(scorer, left, lmask)
        b = lm.sequence_scores(scorer, right, rmask)
        alone = torch.stack([lm.sequence_scores(scorer, torch.tensor([r]), torch.ones(1, len(r), dtype=torch.long))
                             for r in rows]).squeeze(1)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a, alone, rtol=1e-5, atol=1e-5)


def test_sampling_stops_at_eos_and_matches_scoring(folder):
    tok = lm.load_tokenizer(folder)
    model = lm.load_model(folder)
    q, qm = lm.encode_prompts(tok, ["the plot was", "overall the music felt"] * 4)
    s = lm.sample(model, q, qm, 12, tok.eos_token_id, tok.pad_token_id, generator=torch.Generator().manual_seed(0))
    for ids, m in zip(s.response.tolist(), s.response_mask.tolist()):
        n = sum(m)
        assert m == [1] * n + [0] * (len(m) - n)  # right-padded
        if tok.eos_token_id in ids[:n]:
            assert ids.index(tok.eos_token_id) == n - 1  # nothing kept after eos
    # the cached sampling loop's greedy choice is the argmax of a full forward pass at each position
    g = lm.sample(model, q, qm, 6, tok.eos_token_id, tok.pad_token_id, greedy=True)
    logits = lm.token_logits(model, g)
    torch.testing.assert_close(logits.argmax(-1) * g.response_mask, g.response * g.response_mask)


def test_folder_errors(tmp_path, folder):
    with pytest.raises(ConfigError, match="does not exist"):
        lm.load_tokenizer(tmp_path / "nowhere")
    model = lm.load_model(folder)
    model.save_pretrained(tmp_path / "no-tokenizer")
    with pytest.raises(ConfigError, match="no tokenizer"):
        lm.load_tokenizer(tmp_path / "no-tokenizer")
    with pytest.raises(ConfigError, match="not a Hugging Face model folder"):
        lm.load_model(tmp_path)
    other = lm.train_tokenizer(["completely different words here"] * 20, 270)
    with pytest.raises(ConfigError, match="share one vocabulary"):
        lm.check_same_vocab(lm.load_tokenizer(folder), other, "reward model")


def test_reward_model_pairs_are_cut_to_the_models_positions(folder):
    """A sampled completion's text can encode to more tokens than were sampled: the pair is cut to fit, eos kept."""
    from rlworks.rlhf.reward_model import encode_pairs

    tok = lm.load_tokenizer(folder)
    rows = [{"prompt": "the plot was", "chosen": "great , " * 40 + ".", "rejected": "dull ."}]
    data = encode_pairs(tok, rows, limit=32)
    assert data["q"].shape[1] + data["chosen"].shape[1] <= 32
    n = int(data["chosen_mask"][0].sum())
    assert data["chosen"][0, n - 1] == tok.eos_token_id
    with pytest.raises(ConfigError, match="no room"):
        encode_pairs(tok, rows, limit=3)
