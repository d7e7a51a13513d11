"""A picture of one search: for each child of the root, the network's prior, the visit count the search gave
it, and its Q (r + discount · V seen from the root). ``rlworks eval RUN --show-search OUT.png`` draws it."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def draw_search(prior, visits, q, path: str | Path, *, title: str = "", action_names=None,
                legal=None) -> Path:
    """Three bar charts side by side (prior, visits, Q) over the root's actions; illegal ones greyed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prior, visits, q = (np.asarray(x, dtype=float) for x in (prior, visits, q))
    A = len(prior)
    names = list(action_names) if action_names is not None else [str(a) for a in range(A)]
    legal = np.ones(A, bool) if legal is None else np.asarray(legal, bool)
    best = int(np.argmax(np.where(legal, visits, -1)))
    colors = ["#bbbbbb" if not legal[a] else ("#d62728" if a == best else "#1f77b4") for a in range(A)]
    fig, axes = plt.subplots(1, 3, figsize=(max(8, 1.1 * A + 5), 3.2))
    for ax, values, label in zip(axes, (prior, visits, q), ("prior P(a)", "visits N(a)", "Q(a)")):
        ax.bar(range(A), values, color=colors)
        ax.set_xticks(range(A), names)
        ax.set_title(label)
        ax.set_xlabel("action")
    for a in range(A):
        if legal[a] and visits[a] == 0:
            # x in data, y in axes units: the label stays inside the panel whatever the sign of the Q values
            axes[2].text(a, 0.5, "unvisited", rotation=90, ha="center", va="center", fontsize=7,
                         transform=axes[2].get_xaxis_transform())
    fig.suptitle(title or f"search at the root: action {names[best]} chosen (most visits, red)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
