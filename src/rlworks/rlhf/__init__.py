"""RLHF end to end on a language model made here (docs/rlhf.md): a review task with a hidden gold reward and a
simulated labeller (``task``), a tokenizer and a small ``transformers`` LM trained locally (``lm``,
``supervised``), a Bradley–Terry reward model (``reward_model``), and three ways to optimise the policy against
preferences: PPO with a KL penalty (``ppo``), DPO (``dpo``) and GRPO (``grpo``); ``pipeline.run`` runs them all
and writes ``report.json``. Each stage's folder is a Hugging Face model folder (``from_pretrained`` loads it).

Importing this package imports neither torch's heavy parts nor ``transformers``; the stages import them.
"""
