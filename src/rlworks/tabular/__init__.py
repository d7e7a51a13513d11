"""Tabular RL: exact planning and compiled TD learning on finite MDPs."""

from rlworks.tabular.mdp import TabularModel, has_model
from rlworks.tabular.planning import PlanResult, policy_iteration, value_iteration
from rlworks.tabular.td import TabularResult, expected_sarsa, q_learning, sarsa
from rlworks.tabular.dyna import dyna_q

__all__ = [
    "PlanResult",
    "TabularModel",
    "TabularResult",
    "dyna_q",
    "expected_sarsa",
    "has_model",
    "policy_iteration",
    "q_learning",
    "sarsa",
    "value_iteration",
]
