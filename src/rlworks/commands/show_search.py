"""``rlworks eval RUN --show-search OUT.png``: draw a MuZero/AlphaZero agent's search at the first observation."""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError


def show_search(agent, env, seed: int, out: str) -> Path:
    """Draw the agent's search at the first observation of an episode reset with ``seed``."""
    import numpy as np
    import torch

    from ..search.picture import draw_search

    if not hasattr(agent.model, "explain"):
        raise ConfigError(f"--show-search draws a tree search; {agent.algo} does not search (muzero, alphazero do)")
    if not out.lower().endswith(".png"):
        raise ConfigError(f"--show-search {out!r}: the file must end in .png")
    e = env() if env is not None else agent.env.for_evaluation().make(None)
    try:
        obs, _ = e.reset(seed=seed)
    finally:
        e.close()
    x = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(1, -1))
    prior, result, legal = agent.model.explain(x)
    return draw_search(prior[0], result.visit_counts[0], result.q_values[0], out,
                       legal=None if legal is None else legal[0],
                       title=f"{agent.algo} on {agent.env_id}, step {agent.meta.get('global_step')}: "
                             f"{int(result.visit_counts[0].sum())} simulations, root value "
                             f"{float(result.root_value[0]):.2f}")
