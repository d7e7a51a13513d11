"""What MuZero and AlphaZero share about planning: their common config fields (self-play, search, replay,
optimiser), the configured search (pUCT or Gumbel, with the training-time root noise), and acting from it.
The self-play loop and its checkpoints are in ``algos/selfplay.py``."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from ..config import ConfigError, check_choice, check_range
from ..search import (
    GumbelConfig,
    PUCTConfig,
    RecurrentFn,
    RootOutput,
    SearchResult,
    Tree,
    dirichlet_noise,
    gumbel_noise,
    gumbel_search,
    puct_search,
)
from ..search.puct import WALKS

SEARCHES = ("puct", "gumbel")


@dataclass(frozen=True)
class SelfPlayOptions:
    """The config fields MuZero and AlphaZero share: self-play, the search, the replay and the optimiser."""

    n_envs: int = 8
    """self-play environments, searched together (one batched search per step)"""
    num_simulations: int = 50
    """simulations per search"""
    search: str = "puct"
    """"puct" (MuZero's pUCT) or "gumbel" (Gumbel MuZero, Danihelka et al. 2022: better with few simulations)"""
    max_considered_actions: int = 16
    """Gumbel: root actions sequential halving starts with"""
    max_depth: int = 0
    """deepest node a search may make below the root (a simulation that reaches it evaluates that node
    again, mctx's cutoff); 0: unbounded. MuZero's model is trained to unroll ``num_unroll`` steps: deeper
    nodes are states it has never been trained on (docs/muzero.md)"""
    walk: str = "auto"
    """how the search (pUCT or Gumbel) walks its trees: "compiled" (numba loops, CPU), "tensor" (torch ops, any
    device), "auto" (compiled on CPU); the same search either way (search/kernels.py)"""
    pb_c_init: float = 1.25
    """pUCT c1"""
    pb_c_base: float = 19652.0
    """pUCT c2"""
    dirichlet_alpha: float = 0.25
    """root noise α while acting in training (Atari 0.25, chess 0.3)"""
    exploration_fraction: float = 0.25
    """root noise weight while acting in training"""
    temperatures: tuple[float, ...] = (1.0, 0.5, 0.25)
    """visit-count temperatures for acting in training, one per stage (muzero-general's schedule)"""
    temperature_stages: tuple[float, ...] = (0.5, 0.75)
    """fractions of total_steps at which the next temperature starts (one fewer than temperatures)"""
    temperature_moves: int = 0
    """0: every move at the schedule's temperature; m > 0: only the first m moves of each game, then the most
    visited action (AlphaGo Zero: temperature 1 for the first 30 moves, then → 0), so self-play sees varied
    openings and plays sharply after them. pUCT only (Gumbel's root noise does its own exploring)"""
    opening_moves: int = 0
    """n > 0: each self-play game starts with k moves uniform among the legal ones, k drawn from 0..n, that are
    not recorded (the game in the replay starts after them), so the learner also meets positions its own play
    avoids (in TicTacToe, the second player's answers to openings off the centre); 0: off"""
    random_move_prob: float = 0.0
    """ε > 0: each recorded self-play move is, with probability ε, drawn uniformly among the legal moves instead of
    chosen by the search, so that the learner meets the moves a search considers but its own play rarely makes (and
    MuZero's dynamics learns where they lead); the value targets of the positions before such a move stop at it and
    bootstrap from the search's value there, as Watkins's Q(λ) cuts its traces at exploratory actions, so that a random
    blunder does not count against the moves that led to it; 0: off"""
    weight_average: float = 0.0
    """β > 0: the agent that training returns, saves and evaluates acts with an exponential moving average of the
    network's weights, θ̄ ← β θ̄ + (1 − β) θ after each gradient step (Polyak averaging; the averaging window is
    about 1 / (1 − β) steps), while self-play, the targets and the gradient steps use the latest weights θ, which
    the option leaves unchanged; 0: the agent acts with θ"""
    discount: float = 0.997
    """γ"""
    support_size: int = 25
    """S: values (and MuZero's rewards) live on the atoms −S..S of h(x) (core/support.py); h⁻¹(25) ≈ 700"""
    td_steps: int = 10
    """n of the n-step value targets; at least a game's length gives its outcome"""
    batch_size: int = 128
    """positions per gradient step"""
    learning_rate: float = 3e-3
    """Adam step size"""
    weight_decay: float = 1e-4
    """c of the L2 term c‖θ‖² added to the loss (MuZero appendix G, AlphaZero "Methods": 1e-4)"""
    max_grad_norm: float = 5.0
    """global gradient-norm clip; 0 disables"""
    replay_size: int = 100_000
    """replay capacity in steps (whole games are dropped when full)"""
    per_alpha: float = 0.5
    """priority exponent α (0: uniform replay)"""
    per_beta: float = 1.0
    """importance-sampling exponent β"""
    updates_per_step: float = 0.25
    """gradient steps per environment step (the replay ratio)"""
    learning_starts: int = 1000
    """environment steps before the first gradient step"""
    augment_symmetries: bool = False
    """train on each replayed position under a random one of the game's symmetries (AlphaGo Zero's 8 rotations
    and reflections of the board; rlworks/TicTacToe-v0): the positions the network learns from, 8 times over"""
    backend: str = "autograd"
    """how the update runs: "auto" and "autograd" (the only one so far)"""

    def check(self) -> None:
        """The shared fields' checks (each config's ``__post_init__`` calls this, then its own)."""
        for name in ("n_envs", "num_simulations", "max_considered_actions", "support_size", "td_steps",
                     "batch_size", "replay_size"):
            check_range(name, getattr(self, name), 1)
        check_range("temperature_moves", self.temperature_moves, 0)
        check_range("opening_moves", self.opening_moves, 0)
        check_range("max_depth", self.max_depth, 0)
        check_choice("search", self.search, SEARCHES)
        check_choice("walk", self.walk, WALKS)
        check_choice("backend", self.backend, ("auto", "autograd"))
        check_range("discount", self.discount, 0.0, 1.0)
        check_range("updates_per_step", self.updates_per_step, 0.0, low_open=True)
        check_range("exploration_fraction", self.exploration_fraction, 0.0, 1.0)
        check_range("random_move_prob", self.random_move_prob, 0.0, 1.0)
        check_range("weight_average", self.weight_average, 0.0, 1.0, high_open=True)
        check_range("learning_rate", self.learning_rate, 0.0, low_open=True)
        if len(self.temperatures) != len(self.temperature_stages) + 1:
            raise ConfigError(f"temperatures={self.temperatures} needs one more entry than temperature_stages="
                              f"{self.temperature_stages}")

    def temperature(self, progress: float) -> float:
        """The acting temperature at ``progress`` (a fraction of total_steps)."""
        return self.temperatures[sum(progress >= f for f in self.temperature_stages)]


@functools.cache  # one rule per env id: the simulators hold no state
def legal_rule(env_id: str | None):
    """``obs -> (B, A) legal mask`` where rlworks knows the env's rules (its board games), else None. MuZero
    learns the dynamics but, as in the paper (§3, "legal actions at the root come from the environment"),
    takes the legal moves at the root from the game; self-play's random openings draw from them too."""
    from ..envs.simulators import SIMULATORS

    sim = SIMULATORS.get(env_id or "")
    if sim is None or sim.players == 1:
        return None
    rules = sim()
    return lambda obs: rules.legal(rules.from_obs(obs))


def search_with(cfg: SelfPlayOptions, root: RootOutput, recurrent_fn: RecurrentFn, *, legal: torch.Tensor | None,
                rng: np.random.Generator | None, tree: Tree | None = None) -> SearchResult:
    """The configured search from ``root``; ``rng`` adds the training-time root noise (Dirichlet for pUCT,
    Gumbel draws for Gumbel MuZero), none for evaluation."""
    logits = root.prior_logits
    if cfg.search == "gumbel":
        g = None if rng is None else gumbel_noise(rng, tuple(logits.shape), logits.device, logits.dtype)
        return gumbel_search(root, recurrent_fn, cfg.num_simulations, root_legal=legal, gumbel=g, tree=tree,
                             config=GumbelConfig(max_considered_actions=cfg.max_considered_actions),
                             max_depth=cfg.max_depth or None, walk=cfg.walk)
    noise = None
    if rng is not None and cfg.exploration_fraction > 0:
        mask = torch.ones_like(logits, dtype=torch.bool) if legal is None else legal
        noise = dirichlet_noise(rng, mask, cfg.dirichlet_alpha).to(logits.dtype)
    config = PUCTConfig(cfg.pb_c_init, cfg.pb_c_base, cfg.dirichlet_alpha, cfg.exploration_fraction)
    return puct_search(root, recurrent_fn, cfg.num_simulations, root_legal=legal, root_noise=noise, tree=tree,
                       walk=cfg.walk, max_depth=cfg.max_depth or None, config=config)


def act_from_search(out: SearchResult, search: str, deterministic: bool, generator: torch.Generator | None
                    ) -> torch.Tensor:
    """An agent's action from its search: the search's choice, or (``deterministic=False`` with pUCT) a draw
    from the visit distribution."""
    if deterministic or search == "gumbel":
        return out.action
    return torch.multinomial(out.policy, 1, generator=generator).squeeze(-1)


