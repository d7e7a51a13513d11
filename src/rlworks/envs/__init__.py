"""rlworks' environments; importing this module registers them with Gymnasium."""

import gymnasium as gym

from rlworks.envs.deepsea import DeepSea, DeepSeaBatch
from rlworks.envs.gridworld import DEFAULT_LAYOUT, GridWorld
from rlworks.envs.tictactoe import IllegalActionError, TicTacToe, TicTacToeRules

GRIDWORLD_ID = "rlworks/GridWorld-v0"
DEEPSEA_ID = "rlworks/DeepSea-v0"
#: DeepSea with index observations, for the tabular learners and ``rlworks train q-learning``
#: (whose CLI takes no env kwargs); the same as ``gym.make(DEEPSEA_ID, obs_type="index")``.
DEEPSEA_INDEX_ID = "rlworks/DeepSeaIndex-v0"
TICTACTOE_ID = "rlworks/TicTacToe-v0"

if GRIDWORLD_ID not in gym.registry:
    gym.register(id=GRIDWORLD_ID, entry_point="rlworks.envs.gridworld:GridWorld", max_episode_steps=100)
# No TimeLimit: every DeepSea episode terminates after exactly `size` steps.
if DEEPSEA_ID not in gym.registry:
    gym.register(id=DEEPSEA_ID, entry_point="rlworks.envs.deepsea:DeepSea")
if DEEPSEA_INDEX_ID not in gym.registry:
    gym.register(id=DEEPSEA_INDEX_ID, entry_point="rlworks.envs.deepsea:DeepSea", kwargs={"obs_type": "index"})
# No TimeLimit: every game ends within 9 moves.
if TICTACTOE_ID not in gym.registry:
    gym.register(id=TICTACTOE_ID, entry_point="rlworks.envs.tictactoe:TicTacToe")

__all__ = [
    "DEEPSEA_ID",
    "DEEPSEA_INDEX_ID",
    "DEFAULT_LAYOUT",
    "GRIDWORLD_ID",
    "TICTACTOE_ID",
    "DeepSea",
    "DeepSeaBatch",
    "GridWorld",
    "IllegalActionError",
    "TicTacToe",
    "TicTacToeRules",
]
