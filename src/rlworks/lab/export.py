"""Render the Q-value flood as an animated GIF or a PNG strip, for slides and notebooks.

The same learner the lab runs is trained from a fresh Q for N episodes; snapshots are taken on
a roughly geometric schedule (the flood moves fastest early) and drawn with matplotlib's Agg
backend in the page's colours: a diverging scale for max-Q (red positive, blue negative, white
zero; ColorBrewer RdBu, safe for colour-blind readers), value text, greedy arrows, grey walls,
the orange goal.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from rlworks.config import ConfigError
from rlworks.envs.gridworld import GridWorld
from rlworks.lab.presets import PRESETS
from rlworks.tabular.learner import TabularLearner
from rlworks.tabular.planning import value_iteration

# ColorBrewer RdBu (reversed): negative blue ... zero near-white ... positive red
RDBU = ["#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d", "#b2182b"]
WALL, GOAL, INK = "#9ca3af", "#f97316", "#1f2937"
ARROWS = ((0, -1), (1, 0), (0, 1), (-1, 0))  # up, right, down, left as (dx, dy) in image rows
MAX_FRAMES = 36


def value_scale(env: GridWorld, gamma: float) -> float:
    """The colour scale's half-width: the largest |V*|, so early frames look pale."""
    try:
        v = value_iteration(env.model, gamma, max_iterations=20_000).v
    except ConfigError:
        return 1.0
    return float(max(np.abs(v).max(), 1e-6))


def session_kwargs(session: Any, episodes: int) -> dict[str, Any]:
    """The export arguments that reproduce a lab session's map and settings."""
    s = session.settings
    keys = ("algorithm", "alpha", "gamma", "epsilon", "slip", "tie_break", "planning_steps", "max_episode_steps",
            "bonus", "bonus_c", "q_init")
    return {"layout": list(session.layout), "rewards": dict(session.rewards), "episodes": int(episodes),
            **{k: s[k] for k in keys}}  # fmt: skip


def snapshots(
    layout: list[str], rewards: dict, *, episodes: int, algorithm: str = "q-learning", alpha: float = 0.1,
    gamma: float = 0.95, epsilon: float = 0.2, slip: float = 0.0, tie_break: str = "random",
    planning_steps: int = 5, max_episode_steps: int = 100, seed: int = 0, n_frames: int = MAX_FRAMES,
    bonus: str = "none", bonus_c: float = 0.1, q_init: float = 0.0,
) -> tuple[GridWorld, list[tuple[int, np.ndarray]]]:
    """Train from a fresh Q; return the env and (episode, Q copy) at up to ``n_frames`` points."""
    env = GridWorld(list(layout), slip=slip, **rewards)
    learner = TabularLearner(
        env.model, algorithm, alpha=alpha, gamma=gamma, epsilon=epsilon, planning_steps=planning_steps,
        max_episode_steps=max_episode_steps, seed=seed, tie_break=tie_break, bonus=bonus, bonus_c=bonus_c,
        q_init=q_init,
    )  # fmt: skip
    marks = np.unique(np.round(np.geomspace(1, max(episodes, 1), n_frames - 1)).astype(int))
    shots = [(0, learner.q.copy())]
    for m in marks:
        learner.run(episodes=int(m) - learner.episodes)
        shots.append((learner.episodes, learner.q.copy()))
    return env, shots


def _draw(ax, env: GridWorld, q: np.ndarray, scale: float, title: str, goal_reward: float = 1.0) -> None:
    from matplotlib.colors import LinearSegmentedColormap

    cmap = LinearSegmentedColormap.from_list("rdbu", RDBU)
    rows, cols = env.grid.shape
    maxq = q.max(axis=1).reshape(rows, cols)
    ax.clear()
    ax.imshow(maxq, cmap=cmap, vmin=-scale, vmax=scale, interpolation="nearest")
    fs = max(6.5, 11.0 - 0.35 * max(rows, cols))
    arrows: list[tuple[float, float, float, float, str]] = []  # drawn in one quiver call: fast
    for r in range(rows):
        for c in range(cols):
            ch, s = env.grid[r, c], r * cols + c
            if ch == "W":
                ax.add_patch(_rect(c, r, WALL))
                continue
            if ch == "G":
                ax.add_patch(_rect(c, r, GOAL, inset=0.12))
                label = f"+{goal_reward:g}" if goal_reward > 0 else "G"
                ax.text(c, r, label, ha="center", va="center", color="white", fontsize=fs, weight="bold")
                continue
            v = maxq[r, c]
            dark = abs(v) > 0.6 * scale
            colour = "white" if dark else INK
            ax.text(c, r + 0.28, f"{v:.2f}", ha="center", va="center", color=colour, fontsize=fs * 0.8)
            best = np.flatnonzero(q[s] >= q[s].max() - 1e-12)
            if len(best) < 4:  # an all-tied cell has no greedy preference to show
                arrows += [(c, r - 0.12, *ARROWS[a], colour) for a in best]
            if ch == "S":
                ax.text(c - 0.42, r - 0.42, "S", ha="left", va="top", color=colour, fontsize=fs * 0.7)
    if arrows:
        x, y, dx, dy, colours = zip(*arrows)
        ax.quiver(x, y, np.array(dx) * 0.26, np.array(dy) * 0.26, color=colours, angles="xy", scale_units="xy",
                  scale=1, width=0.006 * 5 / max(rows, cols, 5), headwidth=4, headlength=4, zorder=3)  # fmt: skip
    ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="both", bottom=False, left=False, labelbottom=False, labelleft=False)
    ax.set_title(title, fontsize=10, color=INK)


def _rect(c: int, r: int, colour: str, inset: float = 0.0):
    from matplotlib.patches import Rectangle

    return Rectangle((c - 0.5 + inset, r - 0.5 + inset), 1 - 2 * inset, 1 - 2 * inset, color=colour, zorder=2)


def render_frames(fmt: str = "gif", **kwargs) -> list[np.ndarray]:
    """RGB images: one per snapshot for a GIF, or one 4-panel strip for a PNG."""
    # Figure + FigureCanvasAgg, not pyplot: no global backend switch in the caller's process
    from matplotlib.figure import Figure

    env, shots = snapshots(**kwargs)
    scale = value_scale(env, kwargs.get("gamma", 0.95))
    rows, cols = env.grid.shape
    algo, eps = kwargs.get("algorithm", "q-learning"), kwargs.get("epsilon", 0.2)
    goal = float(kwargs.get("rewards", {}).get("goal_reward", 1.0))
    if fmt == "png":
        picks = [shots[i] for i in np.unique(np.linspace(0, len(shots) - 1, 4).round().astype(int))]
        across = 2 if cols > 1.5 * rows and len(picks) == 4 else len(picks)  # wide maps: 2x2, not a long strip
        down = len(picks) // across
        fig = Figure(figsize=(across * (cols * 0.55 + 0.6), down * (rows * 0.55 + 0.5) + 0.4), dpi=110)
        axes = fig.subplots(down, across, squeeze=False).ravel()
        for ax, (ep, q) in zip(axes, picks):
            _draw(ax, env, q, scale, f"episode {ep}", goal)
        fig.suptitle(f"{algo}, ε = {eps:g}: max-Q floods back from the goal", fontsize=11)
        fig.tight_layout()
        return [_pixels(fig)]
    fig = Figure(figsize=(cols * 0.6 + 0.6, rows * 0.6 + 0.8), dpi=100)
    ax = fig.subplots()
    images = []
    for i, (ep, q) in enumerate(shots):
        _draw(ax, env, q, scale, f"{algo} · ε = {eps:g} · episode {ep}", goal)
        if i == 0:
            fig.tight_layout()  # once: every frame has the same layout, and it costs a full draw
        images.append(_pixels(fig))
    return images


def _pixels(fig) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def render_bytes(fmt: str = "gif", **kwargs) -> bytes:
    """The export as file bytes (GIF: the animation, holding the last frame; PNG: a strip)."""
    import imageio.v3 as iio

    images = render_frames(fmt, **kwargs)
    buf = io.BytesIO()
    if fmt == "gif":
        durations = [250] * (len(images) - 1) + [2000]
        iio.imwrite(buf, np.stack(images), extension=".gif", duration=durations, loop=0)
    else:
        iio.imwrite(buf, images[0], extension=".png")
    return buf.getvalue()


def write(path: str | Path, *, preset: str = "default", layout: list[str] | None = None, **kwargs) -> Path:
    """Write ``path`` (.gif or .png) for a preset or an explicit layout; returns the path."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("gif", "png"):
        raise ConfigError(f"--export {path}: the file must end in .gif or .png")
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r} is not one of: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    if p.world != "gridworld" and layout is None:
        raise ConfigError(f"--preset {preset}: the export draws grid-world maps; {p.title} is not one")
    rewards = p.env_kwargs()
    data = render_bytes(fmt, layout=layout or list(p.layout), rewards=rewards, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
