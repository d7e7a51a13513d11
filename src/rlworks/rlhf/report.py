"""``report.json`` and the pictures of an RLHF run: what each stage reached, against the issue's goals.

* reward model: held-out accuracy beside the noise ceiling (``reward_model.png``: accuracy during training);
* PPO, DPO, GRPO: gold win rate against the SFT model with the KL to it;
* over-optimisation (Gao, Schulman & Hilton 2022): for each β of the sweep, the gold reward and the reward
  model's score against the KL during training, and the final gold against β (``overoptimisation.png``);
* ``samples.md``: the same prompts completed by the SFT model and by each tuned policy.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

WIN_GOAL, RM_GAP_GOAL = 0.70, 3.0


def _curve(stage_dir: Path) -> list[dict[str, float]]:
    with open(stage_dir / "metrics.csv", newline="") as fh:
        return [{"step": int(float(r["step"])), "kl": float(r["charts/kl"]), "gold": float(r["charts/gold"]),
                 "rm_score": float(r["charts/rm_score"])} for r in csv.DictReader(fh) if r.get("charts/gold")]


def build(preset: Any, seed: int, stages: dict[str, dict], evals: dict[str, dict],
          sweep: dict[float, tuple[dict, dict]], root: Path, *, base_model: Any = None,
          preferences_file: Any = None) -> dict[str, Any]:
    seconds = {name: s["seconds"] for name, s in stages.items()}
    seconds["overoptimisation"] = round(sum(s["seconds"] for s, _ in sweep.values()), 2)
    seconds["total"] = round(sum(seconds.values()), 2)  # every stage, as if run in one go
    rm = stages["reward-model"]["results"]  # (stages without results, such as evaluate, only carry seconds)
    rm_out = {k: rm.get(k) for k in ("held_out_accuracy", "noise_ceiling", "train_accuracy", "train_pairs",
                                     "held_out_pairs")}
    if rm.get("noise_ceiling") is not None and rm.get("held_out_accuracy") is not None:
        rm_out["gap_points"] = round(100 * (rm["noise_ceiling"] - rm["held_out_accuracy"]), 2)
    policies = {name: {k: v for k, v in e.items() if k != "samples"} for name, e in evals.items()}
    over = []
    for beta in sorted(sweep, reverse=True):
        stage, ev = sweep[beta]
        over.append({"beta": beta, "kl": ev["kl"], "gold": ev["gold"], "rm_score": ev.get("rm_score"),
                     "win_rate": ev["win_rate"], "curve": _curve(root / "overoptimisation" / f"beta-{beta:g}")})
    goals: dict[str, Any] = {}
    if "gap_points" in rm_out:
        goals["reward_model_within_3_points_of_ceiling"] = rm_out["gap_points"] <= RM_GAP_GOAL
    for name in ("ppo", "dpo"):
        goals[f"{name}_wins_at_least_70_percent"] = policies[name]["win_rate"] >= WIN_GOAL
    if len(over) >= 2:
        golds = [o["gold"] for o in over]  # β from large to small
        best = max(range(len(golds)), key=golds.__getitem__)
        goals["gold_peaks_then_falls_as_beta_goes_to_0"] = best < len(golds) - 1 and golds[-1] < golds[best] - 0.1
    model = stages.get("pretrain", {}).get("results", {})
    return {"preset": preset.name, "seed": seed, "base_model": str(base_model) if base_model else None,
            "preferences": str(preferences_file) if preferences_file else "simulated labeller",
            "model": {k: model.get(k) for k in ("parameters", "vocab")}, "seconds": seconds,
            "reward_model": rm_out, "policies": policies, "overoptimisation": over, "goals": goals,
            "samples": {name: e["samples"] for name, e in evals.items()}}


def pictures(report: dict[str, Any], root: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    if report["overoptimisation"]:
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
        for o in report["overoptimisation"]:
            c = o["curve"]
            line, = a.plot([p["kl"] for p in c], [p["gold"] for p in c], lw=1.4, label=f"gold, β={o['beta']:g}")
            a.plot([p["kl"] for p in c], [p["rm_score"] for p in c], lw=1, ls="--", color=line.get_color(),
                   label=f"reward model, β={o['beta']:g}")
        a.set_xlabel("KL to the SFT model (nats per completion)")
        a.set_ylabel("mean over the rollouts")
        a.set_title("during PPO training", fontsize=10)
        a.legend(fontsize=7)
        betas = [o["beta"] for o in report["overoptimisation"]]
        xs = range(len(betas))
        b.plot(xs, [o["gold"] for o in report["overoptimisation"]], "o-", label="gold (hidden)")
        b.plot(xs, [o["rm_score"] for o in report["overoptimisation"]], "s--", label="reward model")
        b.set_xticks(list(xs), [f"{x:g}" for x in betas])
        b.set_xlabel("β (KL coefficient), large → 0")
        b.set_title("final policy, held-out prompts", fontsize=10)
        b.legend(fontsize=8)
        fig.suptitle(f"over-optimisation ({report['preset']}, seed {report['seed']})", fontsize=10)
        fig.tight_layout()
        fig.savefig(root / "overoptimisation.png", dpi=90)
        plt.close(fig)
        out.append(root / "overoptimisation.png")
    rm = report["reward_model"]
    path = root / "reward-model" / "metrics.csv"
    if path.is_file():
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("eval/accuracy")]
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.plot([int(float(r["step"])) for r in rows], [float(r["eval/accuracy"]) for r in rows], "o-",
                label="held-out accuracy")
        if rm.get("noise_ceiling") is not None:
            ax.axhline(rm["noise_ceiling"], color="k", ls="--", lw=1, label="noise ceiling")
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_xlabel("gradient step")
        ax.set_ylim(0.45, 1.0)
        ax.legend(fontsize=8)
        ax.set_title("reward model", fontsize=10)
        fig.tight_layout()
        fig.savefig(root / "reward_model.png", dpi=90)
        plt.close(fig)
        out.append(root / "reward_model.png")
    lines = ["| prompt | SFT | PPO | DPO | GRPO |", "|---|---|---|---|---|"]
    samples = report["samples"]
    for i, s in enumerate(samples.get("ppo", [])):
        cells = [s["prompt"], f"{s['reference']} ({s['gold_reference']:+.2f})"]
        for name in ("ppo", "dpo", "grpo"):
            t = samples[name][i]
            cells.append(f"{t['policy']} ({t['gold_policy']:+.2f})")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    (root / "samples.md").write_text("Completions of the same prompts (gold reward in parentheses)\n\n"
                                     + "\n".join(lines) + "\n")
    out.append(root / "samples.md")
    return out
