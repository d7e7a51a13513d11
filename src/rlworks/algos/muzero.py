"""MuZero (Schrittwieser et al. 2020, "Mastering Atari, Go, chess and shogi by planning with a learned
model"): plan with a tree search in a latent space that a network learns to predict rewards, values and
policies in, from reward alone.

* Three functions (§3, Fig. 1): representation s⁰ = h(o), dynamics (rᵏ, sᵏ) = g(sᵏ⁻¹, aᵏ), prediction
  (pᵏ, vᵏ) = f(sᵏ). Hidden states are min-max scaled to [0, 1] (appendix G) and their gradient is halved
  at each unroll step (appendix G, "scale the gradient at the start of the dynamics function by ½").
* Values and rewards are categorical over 2S+1 atoms of h(x) = sign(x)(√(|x|+1) − 1) + εx (appendix F;
  ``core/support.py``).
* Training (appendix G): unroll K steps from a replayed position; cross-entropy of the value against
  the n-step target z, of the reward against u, of the policy against the search's visit distribution;
  the unrolled steps' losses scaled by 1/K; prioritized replay on |v − z| with importance weights.
* Reanalyse (Schrittwieser et al. 2021, "MuZero Unplugged"): for a ``reanalyse_fraction`` of the replayed
  positions the bootstrap values of the targets are recomputed by the target network from the stored
  observations instead of taken from the old searches' root values (EfficientZero, Ye et al. 2021, does the
  same with its target model). With ``reanalyse_policy_fraction`` a fraction of the policy targets, too, come
  from a new search with the target network instead of the search that played the move.
* Acting: the batched search in ``rlworks.search`` over all envs at once — pUCT with Dirichlet noise and
  a visit-count temperature (appendix B, D), or Gumbel MuZero's sequential halving (``search="gumbel"``).

Reads top to bottom: config → networks → search glue → loss → ``update`` (autograd) → ``train``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, check_choice, check_range
from ..core.nets import ACTIVATIONS, BoardEncoder, mlp
from ..core.optim import Adam
from ..core.run import RunContext
from ..core.seeding import seeded_init
from ..core.support import scalar_to_support, support_to_scalar
from ..search import RootOutput, StepOutput, Tree
from . import selfplay
from .planning import SelfPlayOptions, act_from_search, legal_rule, search_with


@dataclass(frozen=True)
class MuZeroConfig(SelfPlayOptions):
    """MuZero's own fields; self-play, search, replay and optimiser fields: ``planning.SelfPlayOptions``."""

    latent_dim: int = 64
    """size of the hidden state"""
    hidden: tuple[int, ...] = (64,)
    """hidden layers of each of the five MLPs"""
    residual_dynamics: bool = True
    """the dynamics network predicts the change of the hidden state (LightZero's MLP model); False: the next
    state itself, as the paper's MLP would (on CartPole it then ignores the action: docs/muzero.md)"""
    activation: str = "relu"
    """activation of the networks"""
    board_planes: tuple[int, ...] = ()
    """(C, H, W): read each observation as C planes of an H×W board, encoded by a small convolutional net
    (``core.nets.BoardEncoder``; LightZero's TicTacToe model is one) instead of the representation MLP; (): the MLP"""
    board_channels: int = 16
    """channels of the board encoder's convolutions"""
    board_blocks: int = 1
    """residual blocks of the board encoder"""
    num_unroll: int = 5
    """K: dynamics steps unrolled in training"""
    value_loss_weight: float = 0.25
    """weight of the value loss (MuZero Reanalyze: 0.25)"""
    consistency_loss_weight: float = 2.0
    """weight of the self-supervised consistency loss (EfficientZero, Ye et al. 2021, §4.1): the unrolled hidden
    state sᵏ should match the encoder's state for the observation it stands for, h(o_{t+k}) (stop-gradient).
    Compared directly in the latent space, as TD-MPC does (Hansen et al. 2022), not through EfficientZero's
    SimSiam heads, which left the dynamics ignoring the action on CartPole (docs/muzero.md); 0 turns it off"""
    consistency_loss: str = "cosine"
    """how sᵏ is compared with h(o_{t+k}): "cosine", the negative cosine similarity (EfficientZero's form);
    "mse", the squared distance summed over the latent's units (TD-MPC's form); "centered", the negative cosine
    of the two states' deviations from their own means (their correlation across units). Min-max scaled hidden
    states are non-negative, so their cosine stays high even between unrelated positions (about 0.83 on a
    TicTacToe model, docs/muzero.md) and the cosine loss is nearly flat where a value head still tells the
    states apart; centred, unrelated positions sit near 0.1-0.25"""
    target_update_interval: int = 200
    """gradient steps between copies of the target network that values the bootstrap states"""
    reanalyse_fraction: float = 1.0
    """fraction of each batch whose bootstrap values the target network recomputes from the stored observations
    (Reanalyse); the rest use the root value of the search that played the move"""
    reanalyse_policy_fraction: float = 0.0
    """fraction of each batch whose policy targets come from a new search with the target network (MuZero
    Reanalyze, appendix H; MuZero Unplugged; EfficientZero does it with its target model) instead of the visit
    counts of the search that played the move, which an older network made. Costs a search of
    fraction · B · (K+1) roots per gradient step"""
    reanalyse_noise: bool = False
    """the reanalysis search adds the acting search's root noise (LightZero's ``reanalyze_noise``), so that a
    move the prior has all but ruled out still gets visits, and mass if its value is better; off: no noise"""
    reanalyse_value_mix: float = 0.0
    """λ: on the policy-reanalysed positions, the value target becomes (1 − λ) z + λ v_search, v_search the new
    search's root value (the outcome/search-value average of AlphaZero reimplementations; Willemsen et al. 2021).
    Where z is a game's outcome it is the outcome of exploring play (root noise, temperature), which undervalues a
    position its mover can win at once; the search values it as the current model would play it.
    0: the targets stay z"""

    def __post_init__(self) -> None:
        self.check()
        if self.board_planes and (len(self.board_planes) != 3 or min(self.board_planes) < 1):
            raise ConfigError(f"board_planes={self.board_planes!r}: give (C, H, W), three positive sizes")
        check_range("board_blocks", self.board_blocks, 0)
        for name in ("latent_dim", "num_unroll", "target_update_interval", "board_channels"):
            check_range(name, getattr(self, name), 1)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("consistency_loss", self.consistency_loss, ("cosine", "mse", "centered"))
        check_range("reanalyse_fraction", self.reanalyse_fraction, 0.0, 1.0)
        check_range("reanalyse_policy_fraction", self.reanalyse_policy_fraction, 0.0, 1.0)
        check_range("reanalyse_value_mix", self.reanalyse_value_mix, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------


def scale_latent(s: torch.Tensor) -> torch.Tensor:
    """Min-max scale each hidden state to [0, 1] (appendix G)."""
    lo, hi = s.amin(-1, keepdim=True), s.amax(-1, keepdim=True)
    return (s - lo) / (hi - lo).clamp(min=1e-5)


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward, gradient × ``scale`` backward (MuZero pseudocode)."""
    return x * scale + x.detach() * (1 - scale)


class MuZeroNet(nn.Module):
    """h (representation), g (dynamics with its reward head) and f (prediction), each an MLP; h may instead be
    given (a ``BoardEncoder`` for board games)."""

    def __init__(self, obs_dim: int, num_actions: int, latent_dim: int, hidden: tuple[int, ...], support_size: int,
                 activation: str = "relu", residual: bool = True, representation: nn.Module | None = None) -> None:
        super().__init__()
        self.residual = residual
        atoms = 2 * support_size + 1
        kw = {"activation": activation, "ortho_init": False}
        self.num_actions, self.support_size = num_actions, support_size
        self.representation = representation or mlp(obs_dim, hidden, latent_dim, **kw)
        self.dynamics = mlp(latent_dim + num_actions, hidden, latent_dim, **kw)
        self.reward_head = mlp(latent_dim, hidden, atoms, **kw)
        self.policy_head = mlp(latent_dim, hidden, num_actions, **kw)
        self.value_head = mlp(latent_dim, hidden, atoms, **kw)
        for head in (self.reward_head, self.value_head):  # start at v = r = 0 (as LightZero and EfficientZero do)
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def initial_inference(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """s⁰, policy logits, value logits."""
        s = scale_latent(self.representation(obs))
        return s, self.policy_head(s), self.value_head(s)

    def recurrent_inference(self, s: torch.Tensor, action: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """sᵏ, reward logits, policy logits, value logits from sᵏ⁻¹ and aᵏ."""
        # a residual step (LightZero's MLP model: res_connection_in_dynamics): g only learns the change, which
        # in smooth control is small next to the state (CartPole moves 0.02 s per step)
        delta = self.dynamics(torch.cat([s, F.one_hot(action, self.num_actions).to(s.dtype)], -1))
        nxt = scale_latent(s + delta if self.residual else delta)
        return nxt, self.reward_head(nxt), self.policy_head(nxt), self.value_head(nxt)


# ---------------------------------------------------------------------------------------------
# search glue: the network as the search's model
# ---------------------------------------------------------------------------------------------


def search(net: MuZeroNet, obs: torch.Tensor, cfg: MuZeroConfig, *, discount: float, rng: np.random.Generator | None,
           tree: Tree | None = None, legal: torch.Tensor | None = None):
    """One batched search from each observation, the network as the model; ``rng`` adds the training-time root
    noise, none for evaluation."""
    S = net.support_size
    s0, logits, v_logits = net.initial_inference(obs)
    root = RootOutput(prior_logits=logits, value=support_to_scalar(v_logits, S), embedding=s0)
    gamma = torch.full((obs.shape[0],), discount, dtype=s0.dtype, device=s0.device)

    def recurrent_fn(s: torch.Tensor, action: torch.Tensor) -> StepOutput:
        nxt, r_logits, p_logits, v_logits = net.recurrent_inference(s, action)
        # reward and value in one call: the same numbers, half the small-tensor operations of the hot loop
        reward, value = support_to_scalar(torch.stack([r_logits, v_logits]), S)
        return StepOutput(reward=reward, discount=gamma, prior_logits=p_logits, value=value, embedding=nxt)

    return search_with(cfg, root, recurrent_fn, legal=legal, rng=rng, tree=tree)


class MuZeroPlanner(nn.Module):
    """The acting module the agent holds: ``act(obs)`` searches with the network (``use_search=False``:
    the raw policy head, to show what the search adds)."""

    def __init__(self, net: MuZeroNet, cfg: MuZeroConfig, discount: float, env_id: str | None = None) -> None:
        super().__init__()
        self.net, self.cfg, self.discount = net, cfg, discount
        self.legal = legal_rule(env_id)
        self.use_search = True

    @torch.no_grad()
    def explain(self, obs: torch.Tensor):
        """The deterministic search from each observation, with the raw priors and legal masks: what
        ``rlworks eval --show-search`` draws."""
        legal = None if self.legal is None else self.legal(obs)
        logits = self.net.initial_inference(obs)[1]
        prior = (logits if legal is None else logits.masked_fill(~legal, float("-inf"))).softmax(-1)
        return prior, search(self.net, obs, self.cfg, discount=self.discount, rng=None, legal=legal), legal

    def act(self, obs: torch.Tensor, deterministic: bool = True, generator: torch.Generator | None = None
            ) -> torch.Tensor:
        legal = None if self.legal is None else self.legal(obs)
        if not self.use_search:
            logits = self.net.initial_inference(obs)[1]
            if legal is not None:
                logits = logits.masked_fill(~legal, float("-inf"))
            if deterministic:
                return logits.argmax(-1)
            return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
        rng = None if deterministic else np.random.default_rng(
            int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        out = search(self.net, obs, self.cfg, discount=self.discount, rng=rng, legal=legal)
        return act_from_search(out, self.cfg.search, deterministic, generator)


# ---------------------------------------------------------------------------------------------
# loss and update
# ---------------------------------------------------------------------------------------------


def value_targets(target: MuZeroNet, batch: dict[str, torch.Tensor], fraction: float) -> torch.Tensor:
    """z (B, K+1) = the n-step reward sum + the discounted bootstrap value (appendix G, eq. 3), the bootstrap
    value recomputed by ``target`` for the first ``fraction`` of the (randomly drawn) batch."""
    boot = batch["bootstrap_stored"]
    B, K1 = boot.shape
    n = round(fraction * B)
    if n > 0:
        with torch.no_grad():
            v_logits = target.initial_inference(batch["bootstrap_obs"][:n].reshape(n * K1, -1))[2]
            fresh = support_to_scalar(v_logits, target.support_size).reshape(n, K1)
        boot = torch.cat([fresh, boot[n:]])
    return batch["value_prefix"] + batch["bootstrap_scale"] * boot


def reanalysed_targets(st: MuZeroState, cfg: MuZeroConfig, batch: dict[str, torch.Tensor], z: torch.Tensor,
                       rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The value and policy targets, (B, K+1) and (B, K+1, A). For the first ``reanalyse_policy_fraction`` of the
    (randomly drawn) batch, at the positions inside their games, a new search from the stored observation with the
    target network replaces the policy target by its visit distribution: the search's improvement of the current
    policy, where the stored one came from the network that played the move (MuZero Reanalyze). There the value
    target z moves to that search's root value by ``reanalyse_value_mix``. ``rng`` adds root noise."""
    pol = batch["target_policies"]
    B, K1, A = pol.shape
    n = round(cfg.reanalyse_policy_fraction * B)
    if n == 0:
        return z, pol
    obs = batch["unroll_obs"][:n].flatten(0, 1)  # o_{t+k}, k = 0..K (symmetry-permuted with the rest)
    legal = None if st.planner.legal is None else batch["legal"][:n].flatten(0, 1)
    with torch.no_grad():
        fresh = search(st.target, obs, cfg, discount=st.planner.discount, rng=rng, legal=legal)
    inside = batch["masks"][:n] > 0  # beyond a game's end the targets stay (the policy uniform and masked)
    pi = torch.cat([torch.where(inside[..., None], fresh.policy.reshape(n, K1, A).to(pol.dtype), pol[:n]), pol[n:]])
    lam = cfg.reanalyse_value_mix
    if lam > 0:
        mixed = torch.lerp(z[:n], fresh.root_value.reshape(n, K1).to(z.dtype), lam)
        z = torch.cat([torch.where(inside, mixed, z[:n]), z[n:]])
    return z, pi


def consistency_gap(s: torch.Tensor, target: torch.Tensor, form: str) -> torch.Tensor:
    """How far the unrolled states ``s`` (B, H) are from the encoder's ``target`` (B, H), per sample (B,):
    −cos(s, target) ("cosine"), Σ_units (s − target)² ("mse"), or −cos(s − mean s, target − mean target)
    ("centered", the means over each state's units)."""
    if form == "mse":
        return (s - target).square().sum(-1)
    if form == "centered":
        s, target = s - s.mean(-1, keepdim=True), target - target.mean(-1, keepdim=True)
    return -F.cosine_similarity(s, target, dim=-1)


def unroll_loss(net: MuZeroNet, batch: dict[str, torch.Tensor], z: torch.Tensor, pi: torch.Tensor,
                cfg: MuZeroConfig) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Per-sample loss (B,), the root value predictions (B,) for new priorities, and the parts; ``z`` the value
    targets (B, K+1), ``pi`` the policy targets (B, K+1, A)."""
    S, K = net.support_size, cfg.num_unroll
    s, p_logits, v_logits = net.initial_inference(batch["obs"])
    v0 = support_to_scalar(v_logits.detach(), S)

    def ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -(target * F.log_softmax(logits, -1)).sum(-1)

    value = ce(v_logits, scalar_to_support(z[:, 0], S))
    policy = ce(p_logits, pi[:, 0]) * batch["masks"][:, 0]
    reward = torch.zeros_like(value)
    consistency = torch.zeros_like(value)
    if cfg.consistency_loss_weight > 0:
        B, K1 = batch["unroll_seen"].shape
        with torch.no_grad():  # the encoder's view of o_{t+k} is the target (stop-gradient)
            target = net.initial_inference(batch["unroll_obs"].reshape(B * K1, -1))[0]
            target = target.reshape(B, K1, -1)
    for k in range(1, K + 1):
        s, r_logits, p_logits, v_logits = net.recurrent_inference(s, batch["actions"][:, k - 1])
        if cfg.consistency_loss_weight > 0:
            gap = consistency_gap(s, target[:, k], cfg.consistency_loss)
            consistency = consistency + scale_gradient(gap * batch["unroll_seen"][:, k], 1 / K)
        s = scale_gradient(s, 0.5)
        # the unrolled steps share 1/K of the gradient (appendix G pseudocode, "gradient_scale")
        value = value + scale_gradient(ce(v_logits, scalar_to_support(z[:, k], S)), 1 / K)
        reward = reward + scale_gradient(ce(r_logits, scalar_to_support(batch["target_rewards"][:, k], S)), 1 / K)
        policy = policy + scale_gradient(ce(p_logits, pi[:, k]) * batch["masks"][:, k], 1 / K)
    loss = cfg.value_loss_weight * value + reward + policy + cfg.consistency_loss_weight * consistency
    parts = {"losses/value": value, "losses/reward": reward, "losses/policy": policy, "losses/consistency": consistency}
    return loss, v0, {k: v.detach().mean() for k, v in parts.items()}  # detached: a logged metric holds no graph


@dataclass
class MuZeroState:
    planner: MuZeroPlanner
    target: MuZeroNet
    opt: Adam
    n_updates: int = 0


def update(st: MuZeroState, cfg: MuZeroConfig, batch: dict[str, torch.Tensor],
           rng: np.random.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One gradient step on a replayed batch; returns |v − z| at the roots (the new priorities). ``rng``: the
    reanalysis search's root noise (``reanalyse_noise``)."""
    net = st.planner.net
    z, pi = reanalysed_targets(st, cfg, batch, value_targets(st.target, batch, cfg.reanalyse_fraction), rng)
    loss, v0, parts = unroll_loss(net, batch, z, pi, cfg)
    st.opt.zero_grad(set_to_none=True)
    l2 = cfg.weight_decay * sum(p.square().sum() for p in net.parameters())
    ((loss * batch["weights"]).mean() + l2).backward()
    if cfg.max_grad_norm > 0:
        nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
    st.opt.step()
    return (v0 - z[:, 0]).abs(), {**parts, "losses/loss": loss.mean().detach()}


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR, AGENT = MuZeroConfig, "planner", selfplay.SearchAgent


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: MuZeroConfig) -> MuZeroPlanner:
    board = None
    if cfg.board_planes:
        if (n := int(np.prod(cfg.board_planes))) != spec["obs_dim"]:
            raise ConfigError(f"board_planes={tuple(cfg.board_planes)} holds {n} numbers, the observations "
                              f"{spec['obs_dim']}")
        board = BoardEncoder(cfg.board_planes, cfg.board_channels, cfg.board_blocks, cfg.latent_dim, cfg.activation)
    model = MuZeroNet(spec["obs_dim"], spec["act_dim"], cfg.latent_dim, tuple(cfg.hidden), cfg.support_size,
                      cfg.activation, cfg.residual_dynamics, board)
    return MuZeroPlanner(model, cfg, net["discount"], net.get("legal_rule"))


def acting_model(s: selfplay.Session) -> MuZeroPlanner:
    return s.state.planner


def train(env_id: Any, config: MuZeroConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          run: RunContext | None = None) -> selfplay.SearchAgent:
    """Train MuZero on ``env_id`` (Discrete actions) for ``total_steps`` environment steps."""
    cfg = config or MuZeroConfig()
    s = selfplay.build_session("muzero", env_id, cfg, seed=seed, total_steps=total_steps, device=device)
    try:
        s.net = {"discount": s.step_discount(), "legal_rule": s.env_id}
        with seeded_init(seed):
            planner = build_actor(s.spec, s.net, cfg).to(s.device)
        s.state = MuZeroState(planner, copy.deepcopy(planner.net).requires_grad_(False),
                              Adam(planner.net.parameters(), lr=cfg.learning_rate))
        tree = Tree(s.venv.num_envs, s.spec["act_dim"], cfg.num_simulations + 1, (cfg.latent_dim,), device=s.device)

        def plan(s: selfplay.Session, obs: np.ndarray):
            planner = s.state.planner
            with torch.inference_mode():
                x = torch.as_tensor(obs, device=s.device)
                out = search(planner.net, x, cfg, discount=s.net["discount"], rng=s.rng, tree=tree,
                             legal=None if planner.legal is None else planner.legal(x))
            actions = selfplay.choose_actions(s, out, cfg.search == "gumbel",
                                              cfg.temperature(s.global_step / s.total_steps))
            return actions, out.policy.cpu().numpy(), out.root_value.cpu().numpy()

        def value(s: selfplay.Session, obs: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                v = s.state.planner.net.initial_inference(torch.as_tensor(obs, device=s.device))[2]
                return support_to_scalar(v, cfg.support_size).cpu().numpy()

        def sync_target(s: selfplay.Session) -> None:
            if s.state.n_updates % cfg.target_update_interval == 0:
                s.state.target.load_state_dict(s.state.planner.net.state_dict())

        def learn(s: selfplay.Session, n: int) -> dict[str, torch.Tensor]:
            rng = s.rng if cfg.reanalyse_noise else None  # (checkpointed with the session)
            return selfplay.learn_rounds(s, n, lambda st, c, b: update(st, c, b, rng), after=sync_target)

        return selfplay.run(s, plan, learn, value, run or RunContext())
    finally:
        s.venv.close()
