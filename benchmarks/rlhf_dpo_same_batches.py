"""rlworks' DPO step and TRL's ``DPOTrainer`` on the same minibatch sequence: how far apart the weights end.

    python benchmarks/rlhf_dpo_same_batches.py --run-dir RUN [--seed 2] [--steps 25]

Both start from ``RUN/sft`` and train on the pairs of ``dpo.batch_plan(seed)``'s first ``--steps`` minibatches,
in that order (TRL: ``train_sampling_strategy="sequential"`` over those rows), with the preset's β, step size and
schedule, TRL's warm-up (step t at peak · t / warmup, so the first step moves nothing), one thread, float32. The
rlworks side is the loop of ``dpo.dpo`` written out (the same calls: ``sequence_logprobs``, ``dpo_loss``,
``core.optim.Adam``, clipping at 1.0). Prints the parameter distance between the two results, and each one's
distance from the SFT model: if the two implementations compute the same step, the first is float rounding.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", type=Path, required=True, help="an `rlworks rlhf run` folder")
    p.add_argument("--seed", type=int, default=2, help="the training seed whose minibatch plan both follow")
    p.add_argument("--steps", type=int, default=25, help="steps to train (the schedule is the preset's full one)")
    a = p.parse_args()

    import torch
    import trl
    from transformers import TrainerCallback

    import rlhf_vs_trl as bench
    from rlworks.core.optim import Adam
    from rlworks.rlhf import dpo, lm
    from rlworks.rlhf.losses import dpo_loss
    from rlworks.rlhf.supervised import lr_at

    torch.set_num_threads(1)
    run = bench.load_run(a.run_dir.resolve(), None, "auto")
    cfg = run["dpo"]
    rows = [r for r in run["train_rows"] if not r.get("tie", False)]
    plan = dpo.batch_plan(a.seed, len(rows), cfg.batch_size, cfg.steps)[:a.steps]
    ordered = [rows[i] for i in plan.flatten().tolist()]
    sft = a.run_dir / "sft"
    tok = lm.load_tokenizer(sft)

    def lr(step: int) -> float:  # transformers' warm-up, then the same cosine as rlworks
        return cfg.learning_rate * step / cfg.warmup if step < cfg.warmup else lr_at(step, cfg.steps, cfg.learning_rate,
                                                                                       cfg.warmup)

    policy, ref = lm.load_model(sft).train(), lm.load_model(sft).requires_grad_(False)
    q, qm, c, cm = dpo.encode_pairs(tok, ordered, cfg.max_completion_tokens)
    n, bsz = len(ordered), cfg.batch_size
    ref_chosen, ref_rejected = dpo.dataset_logprobs(ref, q, qm, c, cm)
    opt = Adam(policy.parameters(), lr=cfg.learning_rate)
    for step in range(a.steps):
        idx = torch.arange(step * bsz, (step + 1) * bsz)
        opt.param_groups[0]["lr"] = lr(step)
        both = dpo.sequence_logprobs(policy, q[idx], qm[idx], torch.cat([c[idx], c[n + idx]]),
                                     torch.cat([cm[idx], cm[n + idx]]))
        loss, _, _ = dpo_loss(both[:bsz], both[bsz:], ref_chosen[idx], ref_rejected[idx], cfg.beta)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()

    data = bench.dpo_dataset(tok, ordered, cfg)
    args = bench.dpo_args(argparse.Namespace(seed=a.seed), Path("/tmp/rlhf-dpo-same-batches"), cfg,
                          train_sampling_strategy="sequential")

    class Stop(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step >= a.steps

    other = lm.load_model(sft).train()
    trainer = trl.DPOTrainer(model=other, args=args, train_dataset=data, processing_class=tok, callbacks=[Stop()])
    trainer.train()
    start = dict(lm.load_model(sft).named_parameters())
    between = from_rlworks = from_trl = 0.0
    with torch.no_grad():
        for (name, x), (_, y) in zip(policy.named_parameters(), other.named_parameters()):
            between += float((x - y).square().sum())
            from_rlworks += float((x - start[name]).square().sum())
            from_trl += float((y - start[name]).square().sum())
    print(f"seed {a.seed}, {trainer.state.global_step} steps of {bsz} pairs on the same minibatches: "
          f"|rlworks − TRL| {between ** 0.5:.3g}; moved from SFT: rlworks {from_rlworks ** 0.5:.4g}, "
          f"TRL {from_trl ** 0.5:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
