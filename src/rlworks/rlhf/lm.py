"""Language models for RLHF: a tokenizer trained here, small causal transformers made from ``transformers``
configs, any local Hugging Face folder in their place, and the three things every stage does with them:
sample completions, score tokens (log-probabilities) and score sequences (a scalar head).

Layout of a batch: the prompt is **left**-padded and the completion **right**-padded, so the completion of every
row starts at the same column ``P`` and ``[query | response]`` is one tensor:

    query    (B, P)  <pad> <pad> the music was        response (B, L)  very dull . <eos> <pad>
    position ids count real tokens only (cumsum of the mask − 1), so padding on either side gives the same
    numbers (tests/unit/test_rlhf_lm.py).

Nothing here downloads: every ``from_pretrained`` is ``local_files_only=True``.

How a model's forward runs is its backend (``BACKENDS``; each stage's config has a ``backend`` field):
``auto`` runs GPT-2-style models through ``packed.py`` (the same function on the real tokens only, padding
skipped) and every other model through ``transformers``; ``transformers`` always uses ``transformers``' forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import ConfigError, check_choice
from . import packed

PAD, EOS = "<pad>", "<eos>"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
BACKENDS = ("auto", "transformers")


# ---------------------------------------------------------------------------------------------
# tokenizer and model
# ---------------------------------------------------------------------------------------------


def train_tokenizer(texts: list[str], vocab_size: int = 640):
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on ``texts`` with the ``tokenizers`` library, wrapped
    as a ``PreTrainedTokenizerFast`` (``<pad>`` and ``<eos>`` special; ``<eos>`` doubles as bos)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=EOS,
                                   padding_side="left", clean_up_tokenization_spaces=False)


def new_model(tokenizer, n_layer: int = 3, n_head: int = 4, n_embd: int = 192, n_positions: int = 64):
    """A GPT-2-style causal LM from a config (no dropout: RLHF's log-probabilities must be deterministic,
    Huang et al. 2022, "The N Implementation Details of RLHF with PPO")."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                     n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(cfg)


def load_tokenizer(path: str | Path):
    """The tokenizer saved in a model folder; padding on the left (prompts), a pad token guaranteed."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"model folder {str(path)!r} does not exist")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        # transformers 5 would build an empty tokenizer from config.json alone, without a word
        raise ConfigError(f"{path}: no tokenizer in this model folder (none of {', '.join(TOKENIZER_FILES)}); save "
                          "the tokenizer beside the model with tokenizer.save_pretrained")
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: no tokenizer could be loaded from this model folder (save the tokenizer "
                          f"beside the model with tokenizer.save_pretrained): {str(exc).splitlines()[0]}") from None
    if tok.eos_token_id is None:
        raise ConfigError(f"{path}: the tokenizer has no eos token; completions could never end")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def set_backend(model: nn.Module, backend: str) -> nn.Module:
    """Choose how ``model``'s forward runs in this module's calls (``BACKENDS``); returns the model."""
    check_choice("backend", backend, BACKENDS)
    model.rlworks_backend = backend
    return model


def uses_packed(model: nn.Module) -> bool:
    """Whether this model's calls go through ``packed.py`` (``auto`` and a model it covers)."""
    return getattr(model, "rlworks_backend", "auto") == "auto" and packed.supports(model)


def load_model(path: str | Path, kind: str = "causal-lm", backend: str = "auto", **kwargs) -> nn.Module:
    """A local Hugging Face model folder as a causal LM (``kind="causal-lm"``) or a scalar-head scorer
    (``kind="scorer"``: ``AutoModelForSequenceClassification`` with one label; its head is new when the folder
    holds a causal LM), its forward run by ``backend``. Dropout off (``eval()``)."""
    check_choice("backend", backend, BACKENDS)
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path}: not a Hugging Face model folder (no config.json)")
    cls = {"causal-lm": AutoModelForCausalLM, "scorer": AutoModelForSequenceClassification}[kind]
    extra = {"num_labels": 1} if kind == "scorer" else {}
    try:
        model = cls.from_pretrained(path, local_files_only=True, **extra, **kwargs)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot be loaded as a {kind}: {str(exc).splitlines()[0]}") from None
    if kind == "scorer" and model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    return set_backend(model, backend).eval()


def max_positions(model: nn.Module) -> int | None:
    """The longest sequence the model takes (GPT-2's ``n_positions``, Llama's ``max_position_embeddings``)."""
    cfg = model.config
    return getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)


def check_room(model: nn.Module, prompt_tokens: int, max_new_tokens: int) -> None:
    """Refuse a sampling length that would run past the model's positions."""
    limit = max_positions(model)
    if limit is not None and prompt_tokens + max_new_tokens > limit:
        raise ConfigError(f"the longest prompt ({prompt_tokens} tokens) + max_new_tokens={max_new_tokens} exceed the "
                          f"model's {limit} positions; lower max_new_tokens")


def check_same_vocab(a, b, what: str) -> None:
    """Refuse two tokenizers that do not map text to the same ids (a reward model trained on another
    vocabulary would score token ids it never saw)."""
    if a.get_vocab() != b.get_vocab():
        raise ConfigError(f"{what}: the tokenizers differ ({len(a)} and {len(b)} tokens); the reward model "
                          "and the policy must share one vocabulary")


# ---------------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------------


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions that count real tokens only: the same for left and right padding."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def encode_prompts(tok, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and mask (B, P)."""
    enc = tok(prompts, padding=True, return_tensors="pt", add_special_tokens=False)
    if enc.input_ids.shape[1] == 0:
        raise ConfigError("every prompt is empty")
    return enc.input_ids, enc.attention_mask


def encode_completions(tok, completions: list[str], max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded completion ids ending in eos, and their mask (B, L)."""
    rows = [tok(" " + c.strip(), add_special_tokens=False).input_ids[: (max_len or 10**9) - 1] + [tok.eos_token_id]
            for c in completions]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
    return ids, mask


def decode_completions(tok, response: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """Completion texts: the tokens under the mask, without eos."""
    out = []
    for ids, m in zip(response.tolist(), mask.tolist()):
        kept = [t for t, keep in zip(ids, m) if keep and t != tok.eos_token_id]
        out.append(tok.decode(kept).strip())
    return out


@dataclass
class Samples:
    """Sampled completions: ``query`` (B, P) left-padded, ``response`` (B, L) right-padded with eos included."""

    query: torch.Tensor
    query_mask: torch.Tensor
    response: torch.Tensor
    response_mask: torch.Tensor

    @property
    def ids(self) -> torch.Tensor:
        return torch.cat([self.query, self.response], 1)

    @property
    def mask(self) -> torch.Tensor:
        return torch.cat([self.query_mask, self.response_mask], 1)


def trimmed(s: Samples) -> Samples:
    """The batch without the columns that no row uses: leading prompt padding, trailing completion padding
    (a minibatch of short rows then costs what its rows need, not what the longest row of the dataset did)."""
    first = int((s.query_mask.sum(0) > 0).long().argmax())
    width = max(int(s.response_mask.sum(1).max()), 1)
    return Samples(s.query[:, first:], s.query_mask[:, first:], s.response[:, :width], s.response_mask[:, :width])


def uniforms(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """(n, 1) uniform numbers for ``categorical``, drawn on the generator's own device and moved to ``device``: a
    CPU generator gives the same numbers, and so the same samples from the same logits, whether the model runs on
    the CPU or on a GPU."""
    where = generator.device if generator is not None else device
    return torch.rand(n, 1, generator=generator, device=where).to(device)


def categorical(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One draw per row from the categorical distributions ``probs`` (B, V) → (B,), by the inverse of the CDF at
    the uniform numbers ``u`` (B, 1). (``torch.multinomial`` draws an exponential per vocabulary entry: ten times
    the cost at V = 427.)"""
    cdf = probs.cumsum(-1)  # (B, V)
    return torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)


@torch.no_grad()
def sample(model: nn.Module, query: torch.Tensor, query_mask: torch.Tensor, max_new_tokens: int, eos_id: int,
           pad_id: int, *, temperature: float = 1.0, greedy: bool = False,
           generator: torch.Generator | None = None) -> Samples:
    """Sample completions token by token with the model's key/value cache; a row stops at eos. The prompts move
    to the model's device; the uniform draws come from ``generator`` on its own device (``uniforms``)."""
    dev = next(model.parameters()).device
    query, query_mask = query.to(dev), query_mask.to(dev)
    if uses_packed(model) and bool(query_mask[:, -1].all()):
        return packed.sample(model, query, query_mask, max_new_tokens, eos_id, pad_id, temperature=temperature,
                             greedy=greedy, generator=generator)
    b = query.shape[0]
    mask = query_mask.clone()
    out = model(input_ids=query, attention_mask=mask, position_ids=position_ids(mask), use_cache=True)
    pos = position_ids(mask)[:, -1]
    done = torch.zeros(b, dtype=torch.bool, device=query.device)
    tokens, keep = [], []
    for _ in range(max_new_tokens):
        logits = out.logits[:, -1].float()
        if greedy:
            nxt = logits.argmax(-1)
        else:
            u = uniforms(b, generator, logits.device)  # (B, 1)
            nxt = categorical(torch.softmax(logits / temperature, -1), u)
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        tokens.append(nxt)
        keep.append(~done)
        done = done | (nxt == eos_id)
        if bool(done.all()):
            break
        mask = torch.cat([mask, keep[-1].long()[:, None]], 1)  # the token just fed is real unless done before
        pos = pos + 1
        out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos[:, None],
                    use_cache=True, **_cache_kwarg(model, out))
    return Samples(query, query_mask, torch.stack(tokens, 1), torch.stack(keep, 1).long())


def _cache_kwarg(model: nn.Module, out) -> dict:
    """The key/value cache of the previous call, under the name this version of transformers uses (``cache``
    from 5.x; ``past_key_values`` before)."""
    if hasattr(out, "cache"):
        return {"cache": out.cache}
    return {"past_key_values": out.past_key_values}


def token_logits(model: nn.Module, s: Samples) -> torch.Tensor:
    """Logits that predict each response token (B, L, V): positions P − 1 … P + L − 2 of ``[query | response]``."""
    mask = s.mask
    logits = model(input_ids=s.ids, attention_mask=mask, position_ids=position_ids(mask)).logits
    p = s.query.shape[1]
    return logits[:, p - 1:-1]


def response_logprobs(model: nn.Module, s: Samples, temperature: float = 1.0) -> torch.Tensor:
    """log π(response token | everything before it) (B, L) under the sampling temperature (Huang et al. 2022:
    the logits are divided by it, as when sampling); padding positions hold junk (mask them)."""
    if uses_packed(model) and bool(s.query_mask[:, -1].all()):
        return packed.response_logprobs(model, s, temperature)
    logits = token_logits(model, s).float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, s.response.unsqueeze(-1)).squeeze(-1)


def scorer_hidden(scorer: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token scalar scores of a sequence-classification model's head (B, T) (its own pooling assumes one
    padding side; this works for both); padding positions hold junk (mask them)."""
    if uses_packed(scorer):
        return packed.scorer_hidden(scorer, ids, mask)
    hidden = scorer.base_model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).last_hidden_state
    return scorer.score(hidden).squeeze(-1).float()


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """Column of the last real token of each row (either padding side)."""
    cols = torch.arange(mask.shape[1], device=mask.device)
    return (mask.long() * cols).argmax(-1)


def sequence_scores(scorer: nn.Module, ids: torch.Tensor, mask: torch.Tensor, prompt_columns: int = 0) -> torch.Tensor:
    """The reward model's score of each sequence (B,): its head at the last real token. ``prompt_columns``: the
    first columns are a left-padded prompt (``Samples.ids``), which rows that repeat it may compute once."""
    if uses_packed(scorer):
        return packed.sequence_scores(scorer, ids, mask, prompt_columns)
    per_token = scorer_hidden(scorer, ids, mask)
    return per_token.gather(1, last_index(mask)[:, None]).squeeze(1)
