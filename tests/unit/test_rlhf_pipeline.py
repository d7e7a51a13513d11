"""rlhf.pipeline end to end on the micro preset, with every network connection refused; any local model folder
(a tiny Llama made with save_pretrained) through SFT → reward model → PPO → DPO by path; and the CLI's errors."""

import json
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from rlworks.cli import main
from rlworks.config import ConfigError
from rlworks.rlhf import dpo, lm, pipeline, ppo, preferences, reward_model, supervised
from rlworks.rlhf.task import TASK, Labeller


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (HF_HUB_OFFLINE is set by conftest as well)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_micro_pipeline_writes_the_report(tmp_path, no_network):
    torch.set_num_threads(1)
    report = pipeline.run("micro", seed=0, run_dir=tmp_path / "run")
    on_disk = json.loads((tmp_path / "run" / "report.json").read_text())
    assert on_disk["goals"] == report["goals"]
    assert set(report["policies"]) == {"ppo", "dpo", "grpo"}
    for name in ("pretrain", "sft", "reward-model", "ppo", "dpo", "grpo", "overoptimisation", "total"):
        assert report["seconds"][name] >= 0
    for stage in ("pretrain", "sft", "reward-model", "ppo", "dpo", "grpo"):
        assert (tmp_path / "run" / stage / "config.json").is_file()  # a Hugging Face folder
    assert (tmp_path / "run" / "ppo" / "value" / "config.json").is_file()
    assert [o["beta"] for o in report["overoptimisation"]] == [0.1, 0.0]
    for f in ("overoptimisation.png", "reward_model.png", "samples.md", "preferences/labels.jsonl"):
        assert (tmp_path / "run" / f).is_file()
    rows = preferences.read_preferences(tmp_path / "run" / "preferences" / "labels.jsonl")
    assert len(rows) == 40 and all({"prompt", "chosen", "rejected"} <= r.keys() for r in rows)
    # a second run on the same folder runs no stage again: only the evaluation, with the same numbers
    mtime = (tmp_path / "run" / "ppo" / "model.safetensors").stat().st_mtime_ns
    again = pipeline.run("micro", seed=0, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "ppo" / "model.safetensors").stat().st_mtime_ns == mtime
    assert again["policies"] == report["policies"]


def test_any_local_llama_folder(tmp_path):
    """A tiny Llama (another architecture than the pipeline's GPT-2) runs SFT → RM → PPO → DPO by path."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(1)
    tok = lm.train_tokenizer(TASK.corpus(300, np.random.default_rng(0)), 300)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "llama")
    tok.save_pretrained(tmp_path / "llama")
    supervised.sft(tmp_path / "llama", tmp_path / "sft", supervised.SFTConfig(demonstrations=50, steps=3,
                                                                              batch_size=8, warmup=1))
    pairs = preferences.make_pairs(tmp_path / "sft", 24, seed=0, max_new_tokens=8)
    rows = preferences.simulate_labels(pairs, Labeller(), seed=0)
    out = reward_model.train_reward_model(tmp_path / "sft", tmp_path / "rm", rows[:16], rows[16:],
                                          reward_model.RewardModelConfig(steps=3, batch_size=8, warmup=1))
    assert 0 <= out["results"]["held_out_accuracy"] <= 1
    prompts = TASK.prompts(16, np.random.default_rng(1))
    ppo.ppo(tmp_path / "sft", tmp_path / "rm", tmp_path / "ppo", prompts,
            ppo.PPOConfig(steps=2, rollouts=8, minibatch_size=4, epochs=1, max_new_tokens=8))
    dpo.dpo(tmp_path / "sft", tmp_path / "dpo", rows, dpo.DPOConfig(steps=2, batch_size=4, warmup=1))
    for stage in ("sft", "rm", "ppo", "dpo"):
        config = json.loads((tmp_path / stage / "config.json").read_text())
        assert config["model_type"] == "llama", stage


def test_presets_and_overrides():
    p = pipeline.load_preset("tiny", {"ppo": {"beta": 0.02}, "sweep": {"betas": [0.5]}})
    assert p.ppo.beta == 0.02 and p.sweep.betas == (0.5,)
    with pytest.raises(ConfigError, match="unknown RLHF preset 'tinny'.*did you mean 'tiny'"):
        pipeline.load_preset("tinny")
    with pytest.raises(ConfigError, match="unknown RLHF stage 'pppo'"):
        pipeline.load_preset("tiny", {"pppo": {"beta": 0.1}})
    with pytest.raises(ConfigError, match="ppo: unknown field 'betta'"):
        pipeline.load_preset("tiny", {"ppo": {"betta": 0.1}})
    with pytest.raises(ConfigError, match="beta"):
        pipeline.load_preset("tiny", {"ppo": {"beta": -1.0}})


@pytest.mark.parametrize("argv, message", [
    (["rlhf", "fly"], "unknown rlhf command 'fly'"),
    (["rlhf", "run", "--preset", "huge"], "unknown RLHF preset 'huge'"),
    (["rlhf", "run", "--set", "ppo.beta"], "expected STAGE.FIELD=VALUE"),
    (["rlhf", "run", "--base-model", "/nonexistent"], "not a Hugging Face model folder"),
    (["rlhf", "ppo", "--model", "/nonexistent", "--reward-model", "/x", "--out", "/tmp/x"], "not a Hugging Face"),
    (["rlhf", "ppo", "--out", "x", "--model", "m", "--reward-model", "r", "--bta", "1"], "unrecognized"),
    (["rlhf", "reward-model", "--model", "m", "--out", "o", "--preferences", "/nonexistent.jsonl"],
     "not a Hugging Face model folder"),
])
def test_cli_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_help_and_print_config():
    out = subprocess.run([sys.executable, "-m", "rlworks", "rlhf", "ppo", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--beta" in out.stdout and "--adaptive-kl" in out.stdout
    out = subprocess.run([sys.executable, "-m", "rlworks", "rlhf", "run", "--print-config", "--set", "ppo.beta=0.3"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)["ppo"]["beta"] == 0.3


def test_pipeline_trains_on_a_labelling_page_file(tmp_path):
    """Labels written by the lab's page (TRL rows with id, tie, shown, time) replace the simulated labeller."""
    from rlworks.lab.labelling import LabelStore

    torch.set_num_threads(1)
    first = pipeline.run("micro", seed=0, run_dir=tmp_path / "sim")
    pairs = preferences.make_pairs(tmp_path / "sim" / "sft", 24, seed=5, max_new_tokens=8)
    preferences.write_jsonl(tmp_path / "pairs.jsonl", pairs)
    store = LabelStore(tmp_path / "pairs.jsonl", tmp_path / "labels.jsonl")
    for choice in ["1", "2", "t", "s"] * 6:
        pair = store.next()
        store.answer(pair["id"], choice, pair["shown"])
    rows = preferences.read_preferences(tmp_path / "labels.jsonl")
    assert len(rows) == 18 and sum(r["tie"] for r in rows) == 6  # skips are not preference rows
    report = pipeline.run("micro", seed=0, run_dir=tmp_path / "human", preferences_file=tmp_path / "labels.jsonl")
    assert report["preferences"] == str(tmp_path / "labels.jsonl")
    assert report["reward_model"]["train_pairs"] + report["reward_model"]["held_out_pairs"] == 18
    assert report["reward_model"].get("noise_ceiling") is None  # people's labels carry no known probability
    assert not (tmp_path / "human" / "preferences" / "labels.jsonl").exists()
    assert first["preferences"] == "simulated labeller"
