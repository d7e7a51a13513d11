"""RLHF stages stopped mid-way resume exactly: a stopped PPO stage continues with the same reference, the same
KL controller state and the same random streams, and ends with the same weights bit for bit as a run that was
never stopped; likewise SFT and the reward model. A checkpoint from other settings is refused."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rlworks.core.checkpoint import CheckpointError, load_checkpoint
from rlworks.rlhf import lm, ppo, preferences, reward_model, supervised
from rlworks.rlhf.supervised import StageStopped
from rlworks.rlhf.task import TASK, Labeller


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("rlhf-resume")
    torch.set_num_threads(1)
    tok = lm.train_tokenizer(TASK.corpus(300, np.random.default_rng(0)), 300)
    torch.manual_seed(0)
    model = lm.new_model(tok, n_layer=1, n_head=2, n_embd=32)
    model.save_pretrained(root / "sft")
    tok.save_pretrained(root / "sft")
    rows = preferences.simulate_labels(preferences.make_pairs(root / "sft", 32, seed=0, max_new_tokens=8),
                                       Labeller(), seed=0)
    reward_model.train_reward_model(root / "sft", root / "rm", rows[:24], rows[24:],
                                    reward_model.RewardModelConfig(steps=2, batch_size=8, warmup=1))
    return root, rows


def _same_weights(a, b, name="model.safetensors"):
    wa, wb = load_file(a / name), load_file(b / name)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_ppo_resumes_exactly_with_its_kl_controller(base, tmp_path):
    root, _ = base
    prompts = TASK.prompts(32, np.random.default_rng(1))
    cfg = ppo.PPOConfig(steps=4, rollouts=8, minibatch_size=4, epochs=2, max_new_tokens=8, adaptive_kl=True,
                        target_kl=0.001, kl_horizon=100)
    whole = ppo.ppo(root / "sft", root / "rm", tmp_path / "whole", prompts, cfg, seed=3)
    with pytest.raises(StageStopped):
        ppo.ppo(root / "sft", root / "rm", tmp_path / "cut", prompts, cfg, seed=3, checkpoint_every=2, stop_at=2)
    _, state, _, _ = load_checkpoint(tmp_path / "cut" / "checkpoints")
    saved_beta = state["extra"]["kl_controller"]["value"]
    assert saved_beta != cfg.beta  # the controller moved (KL above its tiny target) and that state was saved
    resumed = ppo.ppo(root / "sft", root / "rm", tmp_path / "cut", prompts, cfg, seed=3, checkpoint_every=2)
    _same_weights(tmp_path / "whole", tmp_path / "cut")
    _same_weights(tmp_path / "whole" / "value", tmp_path / "cut" / "value")
    assert resumed["results"]["final_beta"] == whole["results"]["final_beta"]
    assert resumed["results"]["score_norm"] == whole["results"]["score_norm"]
    rows = (tmp_path / "cut" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]  # one row per iteration, none twice


def test_sft_and_reward_model_resume_exactly(base, tmp_path):
    root, rows = base
    cfg = supervised.SFTConfig(demonstrations=64, steps=4, batch_size=8, warmup=1)
    supervised.sft(root / "sft", tmp_path / "sft-whole", cfg, seed=1)
    with pytest.raises(StageStopped):
        supervised.sft(root / "sft", tmp_path / "sft-cut", cfg, seed=1, checkpoint_every=2, stop_at=2)
    supervised.sft(root / "sft", tmp_path / "sft-cut", cfg, seed=1, checkpoint_every=2)
    _same_weights(tmp_path / "sft-whole", tmp_path / "sft-cut")

    rcfg = reward_model.RewardModelConfig(steps=4, batch_size=8, warmup=1, eval_every=2)
    a = reward_model.train_reward_model(root / "sft", tmp_path / "rm-whole", rows[:24], rows[24:], rcfg, seed=2)
    with pytest.raises(StageStopped):
        reward_model.train_reward_model(root / "sft", tmp_path / "rm-cut", rows[:24], rows[24:], rcfg, seed=2,
                                        checkpoint_every=3, stop_at=3)
    b = reward_model.train_reward_model(root / "sft", tmp_path / "rm-cut", rows[:24], rows[24:], rcfg, seed=2,
                                        checkpoint_every=3)
    _same_weights(tmp_path / "rm-whole", tmp_path / "rm-cut")
    assert a["results"] == b["results"]


def test_a_checkpoint_from_other_settings_is_refused(base, tmp_path):
    root, _ = base
    cfg = supervised.SFTConfig(demonstrations=32, steps=4, batch_size=8, warmup=1)
    with pytest.raises(StageStopped):
        supervised.sft(root / "sft", tmp_path / "s", cfg, checkpoint_every=2, stop_at=2)
    other = supervised.SFTConfig(demonstrations=32, steps=4, batch_size=8, warmup=1, learning_rate=1e-3)
    with pytest.raises(CheckpointError, match="another configuration"):
        supervised.sft(root / "sft", tmp_path / "s", other, checkpoint_every=2)
    assert json.loads((tmp_path / "s" / "checkpoints" / "step-2" / "state.json").read_text())["step"] == 2
