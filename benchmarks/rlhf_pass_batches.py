"""The batch size of RLHF's no-gradient passes over a whole dataset: time and memory.

Two passes run over many preference pairs without gradients: DPO's sequence log-probs of the pairs it trains on
(``dpo.dataset_logprobs``: the reference before training, the policy after) and the reward model's accuracy
(``reward_model.accuracy``: held-out pairs at every evaluation, all training pairs at the end). Each batch is
padded to its own longest completion, so the batch size sets both the padding and the transient memory. This
times each pass at several batch sizes on a finished `rlworks rlhf run` folder, with the peak RSS above the
process's level before the pass (sampled every millisecond), and checks that the results do not change. The
smallest batches run first: memory a large pass has freed stays in the process and would hide later peaks.

    python benchmarks/rlhf_pass_batches.py --run-dir /work/rlhf-runs/tiny32k-0 --threads 2
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import psutil
import torch

from rlworks.rlhf import dpo, lm
from rlworks.rlhf import preferences as prefs
from rlworks.rlhf import reward_model as rm


class Peak:
    def __init__(self) -> None:
        self.proc, self.peak = psutil.Process(), 0
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.001)

    def measure(self, fn):
        time.sleep(0.05)
        before = self.peak = self.proc.memory_info().rss
        t = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t
        time.sleep(0.05)
        return out, seconds, (self.peak - before) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--held-out", type=float, default=0.1, help="the run's data.held_out")
    p.add_argument("--dpo-batches", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--rm-batches", type=int, nargs="+", default=[16, 64, 512])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    meter = Peak()
    rows = prefs.read_preferences(a.run_dir / "preferences" / "labels.jsonl")
    train_rows, held_rows = prefs.split(rows, a.held_out, seed=0)
    tok = lm.load_tokenizer(a.run_dir / "sft")

    reference = lm.load_model(a.run_dir / "sft").requires_grad_(False)
    cfg = dpo.DPOConfig()
    q, qm, c, cm = dpo.encode_pairs(tok, train_rows, cfg.max_completion_tokens)
    n = q.shape[0]
    used = dpo.batch_plan(0, n, cfg.batch_size, cfg.steps).unique()
    rows_used = torch.cat([used, used + n])
    first = None
    for bs in a.dpo_batches:
        (lp, _), s, mb = meter.measure(lambda bs=bs: dpo.dataset_logprobs(reference, q[used], qm[used], c[rows_used],
                                                                           cm[rows_used], batch_size=bs))
        first = lp if first is None else first
        print(f"DPO log-probs of {len(used)} pairs, {bs} per batch: {s:.1f} s, peak +{mb:.0f} MB, "
              f"max change {float((lp - first).abs().max()):.1e}", flush=True)

    scorer = lm.load_model(a.run_dir / "reward-model", kind="scorer")
    limit = lm.max_positions(scorer)
    held, train = rm.encode_pairs(tok, held_rows, limit), rm.encode_pairs(tok, train_rows, limit)
    for bs in a.rm_batches:
        acc_h, s_h, mb_h = meter.measure(lambda bs=bs: rm.accuracy(scorer, held, bs))
        acc_t, s_t, mb_t = meter.measure(lambda bs=bs: rm.accuracy(scorer, train, bs))
        print(f"reward-model accuracy, {bs} pairs per batch: held-out ({len(held['target'])} pairs) {acc_h:.6f} in "
              f"{s_h:.1f} s (peak +{mb_h:.0f} MB); training pairs ({len(train['target'])}) {acc_t:.6f} in {s_t:.1f} s "
              f"(peak +{mb_t:.0f} MB)", flush=True)


if __name__ == "__main__":
    main()
