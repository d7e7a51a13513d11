"""A faster forward for GPT-2-style models: the same weights and the same function as ``transformers``' forward,
run on the real tokens only — a backend beside ``lm.py``'s calls, tested against them
(``tests/unit/test_rlhf_packed.py``).

RLHF batches are ragged. A prompt is left-padded and its completion right-padded (``lm.py``), so on the tiny
preset's DPO minibatches 41 % of the (row, column) cells are padding, and ``transformers`` runs every linear layer
on every cell. Here the real tokens are packed into one (N, d) matrix, the linear layers, layer norms and the MLP
run on those N rows only, and attention alone goes back to the (B, T) layout, where each row attends to its own
earlier real tokens. Rows that repeat a prompt (a DPO or reward-model pair, a GRPO group) share its tokens'
rows (``Packed``). The logits are taken only where a caller needs them (the positions that predict a
completion token; the last real token for a scalar head, whose last block runs only there), not over the whole
batch. Attention is written out as two batched products. Nothing changes in the math: the positions count real
tokens as ``lm.position_ids`` does, and the activation is GPT-2's tanh GELU as one fused op. ``sample`` is
``lm.sample`` with a key/value cache kept as plain tensors.

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
    ``row`` (B·T,) the row that fills each cell. A padding cell reads row 0, any real row would do: attention
    never reads a padding key, and a padding query's output is dropped (so no gradient flows through it).

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
        if n == 0:
            raise ValueError("a batch without a real token")
        self.row = torch.zeros(b * t, dtype=torch.long, device=dev)  # (B·T,): padding cells read row 0
        if p:
            bb, jj = m[:, :p].nonzero(as_tuple=True)
            self.row[bb * t + jj] = prompt_row[inv[bb], jj]
            self.row[r * t + c + p] = torch.arange(len(u), n, device=dev)
        else:
            self.row[self.cell] = torch.arange(n, device=dev)

    def rows(self, cells: torch.Tensor) -> torch.Tensor:
        """The rows of (row, column) cells given as flat indices b·T + t; each must be a real token."""
        return self.row[cells]


def _causal_bias(mask: torch.Tensor, heads: int) -> torch.Tensor:
    """(B·H, T, T), added to the attention scores: 0 where query t may see key s (a real key, s ≤ t, or the query
    itself, so a padding query's row is never empty), −inf elsewhere."""
    t = mask.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=mask.device).tril()
    eye = torch.eye(t, dtype=torch.bool, device=mask.device)
    sees = (causal & mask.bool()[:, None, :]) | eye  # (B, T, T)
    return _bias(sees, heads)


def _bias(sees: torch.Tensor, heads: int) -> torch.Tensor:
    """A (B, Tq, Tk) mask of the keys each query sees → the additive (B·H, Tq, Tk) bias, 0 or −inf."""
    bias = torch.zeros(sees.shape, device=sees.device).masked_fill_(~sees, float("-inf"))
    return bias.repeat_interleave(heads, 0)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(q kᵀ · scale + bias) v, each head on its own: q (B, H, Tq, hd), k and v (B, H, Tk, hd), bias
    (B·H, Tq, Tk) → (B, H, Tq, hd). Two batched products: at these sizes (T of a few dozen) they take 75 % of the
    time of ``F.scaled_dot_product_attention``'s CPU kernel, forward and backward."""
    b, h, tq, hd = q.shape
    tk = k.shape[2]
    w = torch.baddbmm(bias, q.reshape(b * h, tq, hd), k.reshape(b * h, tk, hd).transpose(1, 2), alpha=scale)
    return torch.bmm(torch.softmax(w, -1), v.reshape(b * h, tk, hd)).view(b, h, tq, hd)


def _linear(x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """GPT-2's Conv1D: x @ W + b with W (in, out)."""
    return torch.addmm(conv.bias, x, conv.weight)


def _scale(cfg, layer: int) -> float:
    hd = cfg.n_embd // cfg.n_head
    s = 1.0 / math.sqrt(hd) if cfg.scale_attn_weights else 1.0
    return s / (layer + 1) if cfg.scale_attn_by_inverse_layer_idx else s


def hidden(base: nn.Module, p: Packed, *, keep_cache: bool = False, at: torch.Tensor | None = None):
    """The final hidden states (after ``ln_f``) of the rows of ``p``, (N, d); with ``keep_cache`` also each
    layer's keys and values in the (B, H, T, hd) layout (``sample``'s cache). With ``at`` (B,), one real cell
    b·T + t of each batch row, only the states there (B, d): the last block then computes the keys and values of
    every token, and its query, attention and MLP at those cells alone (``_last_block_at``)."""
    cfg = base.config
    b, t = p.shape
    d, h = cfg.n_embd, cfg.n_head
    act = _ACTIVATIONS[cfg.activation_function]
    x = base.wte(p.tokens) + base.wpe(p.positions)  # (N, d)
    bias = _causal_bias(p.mask, h)  # (B·H, T, T)
    cache = []
    for layer, blk in enumerate(base.h):
        if at is not None and layer == len(base.h) - 1:
            return base.ln_f(_last_block_at(blk, x, p, at, _scale(cfg, layer), act))
        qkv = _linear(blk.ln_1(x), blk.attn.c_attn)  # (N, 3d)
        grid = qkv.index_select(0, p.row)  # (B·T, 3d)
        q, k, v = grid.view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)  # each (B, H, T, hd)
        o = _attention(q, k, v, bias, _scale(cfg, layer)).transpose(1, 2).reshape(b * t, d).index_select(0, p.cell)
        x = x + _linear(o, blk.attn.c_proj)
        x = x + _linear(act(_linear(blk.ln_2(x), blk.mlp.c_fc)), blk.mlp.c_proj)
        if keep_cache:
            cache.append((k, v))
    x = base.ln_f(x)
    return (x, cache) if keep_cache else x


def _last_block_at(blk: nn.Module, x: torch.Tensor, p: Packed, at: torch.Tensor, scale: float, act) -> torch.Tensor:
    """A block's output (B, d) at one cell per batch row (``at``, flat b·T + t), for a head read there alone (the
    reward model's, at the last token): the keys and values of every token, which the query attends to, and the
    query, attention, projection and MLP of those B cells only (a sixth of the block's products on the others)."""
    b, t = p.shape
    d = x.shape[1]
    h = blk.attn.num_heads
    w, bias = blk.attn.c_attn.weight, blk.attn.c_attn.bias  # (d, 3d): the query's columns, then keys', values'
    y = blk.ln_1(x)
    rows = p.rows(at)  # (B,)
    q = torch.addmm(bias[:d], y.index_select(0, rows), w[:, :d]).view(b, 1, h, d // h).transpose(1, 2)  # (B, H, 1, hd)
    kv = torch.addmm(bias[d:], y, w[:, d:]).index_select(0, p.row)  # (B·T, 2d)
    k, v = kv.view(b, t, 2, h, d // h).permute(2, 0, 3, 1, 4)  # each (B, H, T, hd)
    col = at % t
    sees = p.mask & (torch.arange(t, device=at.device) <= col[:, None])  # (B, T): real keys up to the query
    o = _attention(q, k, v, _bias(sees[:, None, :], h), scale)  # (B, H, 1, hd)
    out = x.index_select(0, rows) + _linear(o.transpose(1, 2).reshape(b, d), blk.attn.c_proj)
    return out + _linear(act(_linear(blk.ln_2(out), blk.mlp.c_fc)), blk.mlp.c_proj)


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
    rows = torch.arange(mask.shape[0], device=mask.device)
    x = hidden(scorer.transformer, p, at=rows * mask.shape[1] + lm.last_index(mask))  # (B, d)
    return scorer.score(x).squeeze(-1).float()


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
    bias = torch.full((bsz, 1, total), float("-inf"), device=query.device)  # 0 where a key is real
    bias[:, 0, :width].masked_fill_(query_mask.bool(), 0.0)
    live = torch.arange(bsz, device=query.device)  # the batch rows still sampling, in cache order
    tokens, keep = [], []
    for step in range(max_new_tokens):
        if greedy:
            drawn = logits.argmax(-1)  # (n,)
        else:
            u = lm.uniforms(bsz, generator, query.device)  # every row draws, as in lm.sample
            drawn = lm.categorical(torch.softmax(logits.float() / temperature, -1), u[live])
        tokens.append(torch.full((bsz,), pad_id, dtype=drawn.dtype, device=query.device).index_copy(0, live, drawn))
        keep.append(torch.zeros(bsz, dtype=torch.bool, device=query.device).index_fill(0, live, True))
        going = drawn != eos_id
        if not bool(going.any()):
            break
        if not bool(going.all()):  # rows that ended leave the cache
            stay = going.nonzero().squeeze(1)
            live, drawn, pos, bias = live[stay], drawn[stay], pos[stay], bias.index_select(0, stay)
            cache = [(kc.index_select(0, stay), vc.index_select(0, stay)) for kc, vc in cache]
        col = width + step  # the cache column of the token just drawn
        bias[:, 0, col] = 0.0
        step_bias = bias[:, :, :col + 1].repeat_interleave(h, 0)  # (n·H, 1, col + 1)
        pos = pos + 1
        x = base.wte(drawn) + base.wpe(pos)  # (n, d)
        n = len(live)
        for layer, blk in enumerate(base.h):
            q, k, v = _linear(blk.ln_1(x), blk.attn.c_attn).view(n, 3, h, 1, d // h).unbind(1)  # (n, H, 1, hd)
            kc, vc = cache[layer]
            kc[:, :, col:col + 1], vc[:, :, col:col + 1] = k, v
            o = _attention(q, kc[:, :, :col + 1], vc[:, :, :col + 1], step_bias, _scale(cfg, layer))  # (n, H, 1, hd)
            x = x + _linear(o.reshape(n, d), blk.attn.c_proj)
            x = x + _linear(act(_linear(blk.ln_2(x), blk.mlp.c_fc)), blk.mlp.c_proj)
        logits = model.lm_head(base.ln_f(x))
    return lm.Samples(query, query_mask, torch.stack(tokens, 1), torch.stack(keep, 1).long())
