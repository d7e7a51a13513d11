"""Issue 19's GPU check: rollout tokens per second and one PPO iteration for a GPT-2-small-sized policy, on each
device asked for, in the same run.

The models are GPT-2's small shape (12 layers, width 768, 12 heads; ``--size tiny`` is the tiny preset's 3 layers
of 192 for a quick check on a CPU) over the review task's tokenizer, trained here in a second (640 entries, so
about 86M parameters instead of GPT-2's 124M, whose 50k-entry embedding this task does not need). Their weights are
random: nothing is downloaded, and a step costs the same whatever the weights hold, except that a row stops when
it draws eos (about 1 row in 25 over 24 tokens; the tokens actually sampled are counted). The policy, the frozen
reference, the reward model and the value model (both GPT-2 with a scalar head) all sit on the device.

Per device, after one untimed warm-up of each part:

- **sampling**: ``lm.sample`` (rlworks' packed sampler for GPT-2 models) of ``--rollouts`` prompts,
  ``max_new_tokens`` of the PPO preset each; sampled tokens per second (median of ``--repeats``);
- **one PPO iteration**: ``ppo.rollout`` (sampling, then the policy's, the reference's, the value model's and
  the reward model's passes, rewards and GAE) and ``ppo.update`` (the preset's 4 epochs of minibatches of 16,
  clipped losses, Adam), each timed; the iteration's prompt and completion tokens times its passes over them
  (1 in the rollout, ``epochs`` in the update) per second.

    python benchmarks/rlhf_gpu.py --devices cpu,cuda --size small --json /tmp/rlhf-gpu.jsonl

The uniforms a sampler draws come from a CPU generator on every device (``lm.uniforms``), so the devices sample
from the same numbers. Prints one JSON line per (device, part) and writes them to ``--json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import numpy as np
import torch

from rlworks.core.optim import Adam
from rlworks.rlhf import lm, ppo
from rlworks.rlhf.task import ReviewTask

SIZES = {"small": (12, 12, 768), "tiny": (3, 4, 192)}  # (layers, heads, width)


def models(tok, size: str, device: str):
    """Policy, reference, reward model and value model of ``size``, random weights, eval mode, on ``device``."""
    from transformers import GPT2ForSequenceClassification

    layers, heads, width = SIZES[size]
    torch.manual_seed(0)
    policy = lm.new_model(tok, n_layer=layers, n_head=heads, n_embd=width, n_positions=128)
    config = copy.deepcopy(policy.config)
    config.num_labels = 1
    scorer = GPT2ForSequenceClassification(config)
    value = GPT2ForSequenceClassification(config)
    return [m.to(device).eval() for m in (policy, copy.deepcopy(policy), scorer, value)]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, fn):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def measure(device: str, tok, prompts: list[str], size: str, repeats: int) -> list[dict]:
    """The sampling row and the PPO-iteration row of one device."""
    policy, ref, scorer, value = models(tok, size, device)
    cfg = ppo.PPOConfig(rollouts=len(prompts))
    q, qm = lm.encode_prompts(tok, prompts)
    gen = torch.Generator().manual_seed(0)
    base = {"device": device, "name": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
            "size": size, "parameters": sum(x.numel() for x in policy.parameters()), "rollouts": len(prompts),
            "threads": torch.get_num_threads(), "torch": torch.__version__}

    def draw():
        return lm.sample(policy, q, qm, cfg.max_new_tokens, tok.eos_token_id, tok.pad_token_id, generator=gen)

    draw()  # warm-up (CUDA context, kernels, allocator)
    times, tokens = [], []
    for _ in range(repeats):
        seconds, s = timed(device, draw)
        times.append(seconds)
        tokens.append(int(s.response_mask.sum()))
    rows = [{**base, "part": "sampling", "seconds": statistics.median(times), "tokens": statistics.median(tokens),
             "tokens_per_s": statistics.median(n / t for n, t in zip(tokens, times))}]
    opt = Adam(list(policy.parameters()) + list(value.parameters()), lr=cfg.learning_rate)
    for _ in range(2):  # a warm-up iteration, then the timed one
        t_roll, batch = timed(device, lambda: ppo.rollout(policy, ref, scorer, value, tok, prompts, cfg, cfg.beta,
                                                          (0.0, 1.0), gen))
        t_upd, _ = timed(device, lambda: ppo.update(policy, value, opt, batch, cfg, gen))  # noqa: B023 (called now)
    s = batch["samples"]
    seen = int(s.query_mask.sum() + s.response_mask.sum())  # real tokens of the batch
    rows.append({**base, "part": "ppo_iteration", "rollout_seconds": t_roll, "update_seconds": t_upd,
                 "seconds": t_roll + t_upd, "epochs": cfg.epochs, "minibatch_size": cfg.minibatch_size,
                 "batch_tokens": seen, "tokens_per_s": seen * (1 + cfg.epochs) / (t_roll + t_upd)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", default="cpu", help="comma-separated: cpu, cuda")
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--rollouts", type=int, default=64, help="prompts per batch (the PPO preset's 64)")
    p.add_argument("--repeats", type=int, default=3, help="timed sampling calls per device")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    task = ReviewTask()
    tok = lm.train_tokenizer(task.corpus(2000, rng))
    prompts = task.prompts(a.rollouts, rng)
    for device in a.devices.split(","):
        rows = measure(device, tok, prompts, a.size, a.repeats)
        for r in rows:
            print(json.dumps(r), flush=True)
        if a.json:  # each device's rows as soon as they exist
            with open(a.json, "a") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in rows)


if __name__ == "__main__":
    main()
