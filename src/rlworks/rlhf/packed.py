"""A faster forward for GPT-2-style models: the same weights and the same function as ``transformers``' forward,
run on the real tokens only — a backend beside ``lm.py``'s calls, tested against them
(``tests/unit/test_rlhf_packed.py``).

RLHF batches are ragged. A prompt is left-padded and its completion right-padded (``lm.py``), so on the tiny
preset's DPO minibatches 41 % of the (row, column) cells are padding, and ``transformers`` runs every linear layer
on every cell. Here the real tokens are packed into one (N, d) matrix, the linear layers, layer norms and the MLP
run on those N rows only, and attention alone goes back to the (B, T) layout, where each row attends to its own
earlier real tokens. Rows that repeat a prompt (a DPO or reward-model pair, a GRPO group) share its tokens'
rows (``Packed``). The logits are taken only where a caller needs them (the positions that predict a
completion token; the last real token for a scalar head), not over the whole batch. Nothing changes in the math:
the positions count real tokens as ``lm.position_ids`` does, and the activation is GPT-2's tanh GELU as one fused
op. ``sample`` is ``lm.sample`` with a key/value cache kept as plain tensors.

Models this covers (``supports``): ``transformers`` GPT-2 models (``model_type == "gpt2"``: ``GPT2LMHeadModel``,
``GPT2ForSequenceClassification``) without cross-attention, without the attention upcast/reordering option, and
with no active dropout (rlworks' models have none; a model with dropout > 0 in training mode goes through
``transformers``). Every other model (Llama, a user's own folder) goes through ``transformers`` unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import lm  # lm imports this module too; its names are read at call time

# activation names of GPT2Config → one torch op (``gelu_new`` is the tanh approximation, written out in Python by
# transformers as five elementwise ops)
_ACTIVATIONS = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


def supports(model: nn.Module) -> bool:
    """Whether this module's forward computes what ``transformers`` computes for ``model``."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) != "gpt2" or not hasattr(model, "transformer"):
        return False
    if getattr(cfg, "add_cross_attention", False) or getattr(cfg, "reorder_and_upcast_attn", False):
        return False
    if cfg.activation_function not in _ACTIVATIONS:
        return False
    dropout = max(cfg.resid_pdrop, cfg.embd_pdrop, cfg.attn_pdrop)
    return not (model.training and dropout > 0)


# ---------------------------------------------------------------------------------------------
# the transformer on packed tokens
# ---------------------------------------------------------------------------------------------


class Packed:
    """A (B, T) batch as N rows of real tokens: ``tokens`` and ``positions`` (N,) hold each row's token id and
    position id (``lm.position_ids``), ``cell`` (N,) one (row, column) cell it fills as a flat index b·T + t, and
    ``row`` (B·T,) the row that fills each cell (N on padding).

    With ``prompt_columns`` = P, the first P columns are a left-padded prompt, and batch rows that repeat a prompt
    (DPO's and the reward model's pairs, GRPO's groups) share one set of rows for it: a prompt token attends only
    to the prompt, so its states are the same in every copy, and each copy's completion reads them."""

    def __init__(self, ids: torch.Tensor, mask: torch.Tensor, prompt_columns: int = 0):
        m = mask.bool()
        b, t = m.shape
        p, dev = prompt_columns, m.device
        self.shape, self.mask = (b, t), m
        pos = lm.position_ids(m)  # (B, T)
        if p:  # one copy of each distinct prompt: its first row in the batch
            _, inv = torch.unique(torch.where(m[:, :p], ids[:, :p], -1), dim=0, return_inverse=True)  # (B,)
            first = torch.full((int(inv.max()) + 1,), b, device=dev).scatter_reduce(
                0, inv, torch.arange(b, device=dev), "amin")  # (U,)
            u, j = m[first, :p].nonzero(as_tuple=True)  # (Nq,) each: the distinct prompts' real cells
            prompt_row = torch.full((len(first), p), -1, dtype=torch.long, device=dev)
            prompt_row[u, j] = torch.arange(len(u), device=dev)
            r, c = m[:, p:].nonzero(as_tuple=True)  # (Nc,): completion cells, c counted from column P
            cells_b, cells_t = torch.cat([first[u], r]), torch.cat([j, c + p])
        else:
            cells_b, cells_t = m.nonzero(as_tuple=True)
        n = len(cells_b)
        self.tokens, self.positions = ids[cells_b, cells_t], pos[cells_b, cells_t]
        self.cell = cells_b * t + cells_t  # (N,)
        self.row = torch.full((b * t,), n, dtype=torch.long, device=dev)  # (B·T,): padding reads row N (zeros)
        if p:
            bb, jj = m[:, :p].nonzero(as_tuple=True)
            self.row[bb * t + jj] = prompt_row[inv[bb], jj]
            self.row[r * t + c + p] = torch.arange(len(u), n, device=dev)
        else:
            self.row[self.cell] = torch.arange(n, device=dev)

    def rows(self, cells: torch.Tensor) -> torch.Tensor:
        """The rows of (row, column) cells given as flat indices b·T + t; each must be a real token."""
        return self.row[cells]


def _attention_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T): query t sees the real keys ≤ t, and itself (so a padding query row is never empty)."""
    t = mask.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=mask.device).tril()
    eye = torch.eye(t, dtype=torch.bool, device=mask.device)
    return ((causal & mask.bool()[:, None, :]) | eye)[:, None]


def _linear(x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """GPT-2's Conv1D: x @ W + b with W (in, out)."""
    return torch.addmm(conv.bias, x, conv.weight)


def _scale(cfg, layer: int) -> float:
    hd = cfg.n_embd // cfg.n_head
    s = 1.0 / math.sqrt(hd) if cfg.scale_attn_weights else 1.0
    return s / (layer + 1) if cfg.scale_attn_by_inverse_layer_idx else s


def hidden(base: nn.Module, p: Packed, *, keep_cache: bool = False):
    """The final hidden states (after ``ln_f``) of the rows of ``p``, (N, d); with ``keep_cache`` also each
    layer's keys and values in the (B, H, T, hd) layout (``sample``'s cache)."""
    cfg = base.config
    b, t = p.shape
    d, h = cfg.n_embd, cfg.n_head
    act = _ACTIVATIONS[cfg.activation_function]
    x = base.wte(p.tokens) + base.wpe(p.positions)  # (N, d)
    attn_mask = _attention_mask(p.mask)
    cache = []
    for layer, blk in enumerate(base.h):
        qkv = _linear(blk.ln_1(x), blk.attn.c_attn)  # (N, 3d)
        grid = torch.cat([qkv, qkv.new_zeros(1, 3 * d)]).index_select(0, p.row)  # (B·T, 3d): padding cells 0
        q, k, v = grid.view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)  # each (B, H, T, hd)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=_scale(cfg, layer))
        o = o.transpose(1, 2).reshape(b * t, d).index_select(0, p.cell)  # (N, d)
        x = x + _linear(o, blk.attn.c_proj)
        x = x + _linear(act(_linear(blk.ln_2(x), blk.mlp.c_fc)), blk.mlp.c_proj)
        if keep_cache:
            cache.append((k, v))
    x = base.ln_f(x)
    return (x, cache) if keep_cache else x


# ---------------------------------------------------------------------------------------------
# what the stages ask for (lm.py's calls, same signatures and outputs)
# ---------------------------------------------------------------------------------------------


def response_logprobs(model: nn.Module, s, temperature: float = 1.0) -> torch.Tensor:
    """``lm.response_logprobs``: log π(response token | before) (B, L), 0 on padding. The LM head runs only at
    the positions that predict a real response token. Needs every row's last prompt column real (left padding)."""
    p = Packed(s.ids, s.mask, s.query.shape[1])
    x = hidden(model.transformer, p)  # (N, d)
    b, t = s.response_mask.bool().nonzero(as_tuple=True)  # (M,) each: real response tokens
    width, start = p.shape[1], s.query.shape[1] - 1
    h = x.index_select(0, p.rows(b * width + start + t))  # (M, d): the states that predict them
    logits = model.lm_head(h).float() / temperature  # (M, V)
    logp = torch.log_softmax(logits, -1).gather(-1, s.response[b, t].unsqueeze(-1)).squeeze(-1)  # (M,)
    return logp.new_zeros(s.response.shape).index_put((b, t), logp)


def token_logprobs(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(ids[:, t + 1] | ids[:, ≤ t]) (B, T − 1) for right-padded rows, 0 where token t + 1 is padding
    (the language-modelling loss of ``supervised.lm_loss``)."""
    p = Packed(ids, mask)
    x = hidden(model.transformer, p)
    b, t = mask[:, 1:].bool().nonzero(as_tuple=True)  # (M,): predicted tokens t + 1 that are real
    h = x.index_select(0, p.rows(b * p.shape[1] + t))  # needs token t real: true for right padding
    logp = torch.log_softmax(model.lm_head(h).float(), -1).gather(-1, ids[b, t + 1].unsqueeze(-1)).squeeze(-1)
    return logp.new_zeros(ids[:, 1:].shape).index_put((b, t), logp)


def scorer_hidden(scorer: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``lm.scorer_hidden``: the scalar head at every real token (B, T), 0 on padding."""
    p = Packed(ids, mask)
    x = hidden(scorer.transformer, p)
    scores = scorer.score(x).squeeze(-1).float()  # (N,)
    return scores.new_zeros(p.shape).flatten().index_put((p.cell,), scores).view(p.shape)


def sequence_scores(scorer: nn.Module, ids: torch.Tensor, mask: torch.Tensor,
                    prompt_columns: int = 0) -> torch.Tensor:
    """``lm.sequence_scores``: the scalar head at each row's last real token only (B,)."""
    p = Packed(ids, mask, prompt_columns)
    x = hidden(scorer.transformer, p)
    rows = torch.arange(mask.shape[0], device=mask.device)
    last = p.rows(rows * mask.shape[1] + lm.last_index(mask))  # (B,)
    return scorer.score(x.index_select(0, last)).squeeze(-1).float()


@torch.no_grad()
def sample(model: nn.Module, query: torch.Tensor, query_mask: torch.Tensor, max_new_tokens: int, eos_id: int,
           pad_id: int, *, temperature: float = 1.0, greedy: bool = False,
           generator: torch.Generator | None = None):
    """``lm.sample``, token for token: the prompt's keys and values come from the packed forward into a cache
    allocated once for the longest completion; then each new token runs through the blocks as a (n, d) matrix
    for the n rows still sampling (a row that drew eos leaves the cache), attending over the cache's filled
    columns. Draws the same uniform numbers in the same order as ``lm.sample`` (B per step)."""
    base, cfg = model.transformer, model.config
    act = _ACTIVATIONS[cfg.activation_function]
    bsz, width, d, h = query.shape[0], query.shape[1], cfg.n_embd, cfg.n_head
    p = Packed(query, query_mask, width)  # a group's repeated prompt runs once
    x, prompt_cache = hidden(base, p, keep_cache=True)
    last = p.rows(torch.arange(bsz, device=query.device) * width + width - 1)  # the last column: real (left padding)
    logits = model.lm_head(x.index_select(0, last))  # (B, V)
    pos = p.positions[last]  # (B,)
    total = width + max_new_tokens
    cache = []  # per layer: keys and values (n, H, total, hd), columns filled left to right
    for k, v in prompt_cache:
        kc, vc = k.new_zeros(bsz, h, total, d // h), v.new_zeros(bsz, h, total, d // h)
        kc[:, :, :width], vc[:, :, :width] = k, v
        cache.append((kc, vc))
    bias = torch.full((bsz, 1, 1, total), float("-inf"), device=query.device)  # 0 where a key is real
    bias[:, 0, 0, :width].masked_fill_(query_mask.bool(), 0.0)
    live = torch.arange(bsz, device=query.device)  # the batch rows still sampling, in cache order
    tokens, keep = [], []
    for step in range(max_new_tokens):
        if greedy:
            drawn = logits.argmax(-1)  # (n,)
        else:
            u = torch.rand(bsz, 1, generator=generator, device=query.device)  # every row draws, as in lm.sample
            drawn = lm.categorical(torch.softmax(logits.float() / temperature, -1), u[live])
        tokens.append(torch.full((bsz,), pad_id, dtype=drawn.dtype, device=query.device).index_copy(0, live, drawn))
        keep.append(torch.zeros(bsz, dtype=torch.bool, device=query.device).index_fill(0, live, True))
        going = drawn != eos_id
        if not bool(going.any()):
            break
        if not bool(going.all()):  # rows that ended leave the cache
            stay = going.nonzero().squeeze(1)
            live, drawn, pos, bias = live[stay], drawn[stay], pos[stay], bias[stay]
            cache = [(kc[stay], vc[stay]) for kc, vc in cache]
        col = width + step  # the cache column of the token just drawn
        bias[:, 0, 0, col] = 0.0
        pos = pos + 1
        x = base.wte(drawn) + base.wpe(pos)  # (n, d)
        n = len(live)
        for layer, blk in enumerate(base.h):
            q, k, v = _linear(blk.ln_1(x), blk.attn.c_attn).view(n, 3, h, 1, d // h).unbind(1)  # (n, H, 1, hd)
            kc, vc = cache[layer]
            kc[:, :, col:col + 1], vc[:, :, col:col + 1] = k, v
            o = F.scaled_dot_product_attention(q, kc[:, :, :col + 1], vc[:, :, :col + 1],
                                               attn_mask=bias[..., :col + 1], scale=_scale(cfg, layer))  # (n, H, 1, hd)
            x = x + _linear(o.reshape(n, d), blk.attn.c_proj)
            x = x + _linear(act(_linear(blk.ln_2(x), blk.mlp.c_fc)), blk.mlp.c_proj)
        logits = model.lm_head(base.ln_f(x))
    return lm.Samples(query, query_mask, torch.stack(tokens, 1), torch.stack(keep, 1).long())
