"""The one list of deep algorithms: name → module, config class, supported spaces, one-line summary.

The API (``rlworks.train``/``load``), the CLI (``rlworks train``, ``rlworks list``, ``--help``), the
benchmarks and the docs all read this table; nothing else lists the algorithms. Importing it imports
no torch: an entry's module is imported on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class AlgoInfo:
    name: str
    module: str
    """import path of the algorithm's file (it defines ``CONFIG``, ``train`` and its networks)"""
    summary: str
    """one line for ``rlworks list`` and the docs"""
    actions: tuple[str, ...]
    """action spaces it learns on: "discrete", "box" """
    family: str
    """"on-policy" (rollouts, core.nets.ActorCritic agents), "off-policy" (replay buffer, own actor) or "offline"
    (a fixed dataset, ``algos/offline.py``; the env only evaluates) or "search" (self-play with a tree search,
    ``algos/selfplay.py``)"""
    observations: tuple[str, ...] = ("box",)
    """observation spaces: flat vectors ("box"); images come with the CNN extractor"""

    def load_module(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def config_class(self) -> type:
        return self.load_module().CONFIG

    def train(self, *args, **kwargs):
        return self.load_module().train(*args, **kwargs)


REGISTRY: dict[str, AlgoInfo] = {a.name: a for a in (
    AlgoInfo("ppo", "rlworks.algos.ppo", "Proximal Policy Optimization, clipped (Schulman et al. 2017)",
             ("discrete", "box"), "on-policy"),
    AlgoInfo("a2c", "rlworks.algos.a2c", "synchronous advantage actor-critic (Mnih et al. 2016)",
             ("discrete", "box"), "on-policy"),
    AlgoInfo("reinforce", "rlworks.algos.reinforce", "Monte-Carlo policy gradient (Williams 1992), optional baseline",
             ("discrete", "box"), "on-policy"),
    AlgoInfo("dqn", "rlworks.algos.dqn", "Deep Q-Network (Mnih et al. 2015); Double, Dueling, n-step, prioritized",
             ("discrete",), "off-policy"),
    AlgoInfo("bootstrapped-dqn", "rlworks.algos.bootstrapped_dqn", "Bootstrapped DQN (Osband et al. 2016): K heads, "
             "bootstrap masks, randomized priors, one head per episode", ("discrete",), "off-policy"),
    AlgoInfo("sac", "rlworks.algos.sac", "Soft Actor-Critic (Haarnoja et al. 2018), twin Q, automatic temperature",
             ("box",), "off-policy"),
    AlgoInfo("td3", "rlworks.algos.td3", "Twin Delayed DDPG (Fujimoto et al. 2018)", ("box",), "off-policy"),
    AlgoInfo("ddpg", "rlworks.algos.ddpg", "Deep Deterministic Policy Gradient (Lillicrap et al. 2015), OU or Gaussian "
             "noise", ("box",), "off-policy"),
    AlgoInfo("bc", "rlworks.algos.bc", "behavioural cloning from a dataset; filtered BC on the top episodes "
             "(filter_top)", ("discrete", "box"), "offline"),
    AlgoInfo("td3-bc", "rlworks.algos.td3_bc", "TD3+BC (Fujimoto & Gu 2021): TD3 on a dataset with a "
             "behaviour-cloning term", ("box",), "offline"),
    AlgoInfo("dt", "rlworks.algos.dt", "Decision Transformer (Chen et al. 2021): a causal transformer over "
             "(return-to-go, state, action), conditioned on a target return", ("discrete", "box"), "offline"),
    AlgoInfo("cql", "rlworks.algos.cql", "Conservative Q-Learning (Kumar et al. 2020): SAC (Box) or DQN (Discrete) "
             "with the CQL(H) term, optional Lagrangian", ("discrete", "box"), "offline"),
    AlgoInfo("iql", "rlworks.algos.iql", "Implicit Q-Learning (Kostrikov et al. 2021): expectile V, "
             "advantage-weighted policy", ("discrete", "box"), "offline"),
    AlgoInfo("muzero", "rlworks.algos.muzero", "MuZero (Schrittwieser et al. 2020): batched tree search in a learned "
             "latent model; pUCT or Gumbel root", ("discrete",), "search"),
    AlgoInfo("alphazero", "rlworks.algos.alphazero", "AlphaZero (Silver et al. 2018): the same batched search over "
             "the env's true rules (TicTacToe, CartPole)", ("discrete",), "search"),
)}
ALGOS: tuple[str, ...] = tuple(REGISTRY)
OFFPOLICY_ALGOS: tuple[str, ...] = tuple(n for n, a in REGISTRY.items() if a.family == "off-policy")
OFFLINE_ALGOS: tuple[str, ...] = tuple(n for n, a in REGISTRY.items() if a.family == "offline")
SEARCH_ALGOS: tuple[str, ...] = tuple(n for n, a in REGISTRY.items() if a.family == "search")
