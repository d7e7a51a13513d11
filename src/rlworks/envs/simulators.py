"""True models of rlworks' games and of Gymnasium's CartPole as batched tensor functions, for AlphaZero's
search (Silver et al. 2018: the search steps the real rules, not a learned model).

A simulator works on a batch of states (B, state_dim) and knows how to get them from observations, so an
agent holding only observations can search: TicTacToe's observation encodes the whole position, and
CartPole's observation is its state.

* ``from_obs(obs (B, obs_dim)) -> states``; ``observe(states) -> obs`` (what the network sees);
* ``step(states, actions) -> (next_states, reward (B,), done (B,) bool, legal (B, A) bool or None)``,
  rewards for the player who moved;
* ``legal(states) -> (B, A) bool or None``; ``players``: 1, or 2 for alternating zero-sum games.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .tictactoe import TicTacToeRules


class TicTacToeSimulator:
    """States are (B, 10): the canonical board (+1 the mover's marks, −1 the opponent's) and 1 if X moves."""

    players = 2
    num_actions = 9

    def from_obs(self, obs: torch.Tensor) -> torch.Tensor:
        board = obs[:, :9] - obs[:, 9:18]
        return torch.cat([board, obs[:, 18:19]], -1)

    def observe(self, states: torch.Tensor) -> torch.Tensor:
        return TicTacToeRules.observe(states[:, :9], states[:, 9] > 0.5).to(states.dtype)

    def legal(self, states: torch.Tensor) -> torch.Tensor:
        return TicTacToeRules.legal(states[:, :9])

    def step(self, states: torch.Tensor, actions: torch.Tensor):
        board, x_to_move = states[:, :9], states[:, 9:]
        nxt, reward, done, legal = TicTacToeRules.step(board, actions, check=False)
        moved = ~TicTacToeRules.finished(board)[:, None]
        x_next = torch.where(moved, 1 - x_to_move, x_to_move)
        return torch.cat([nxt, x_next], -1), reward.to(states.dtype), done, legal

    @staticmethod
    def symmetries() -> tuple[np.ndarray, np.ndarray]:
        """The board's 8 symmetries (4 rotations, each with and without a reflection) as permutations:
        ``cells`` (8, 9), where transform g shows old cell cells[g, i] in cell i, and the same for the
        observation's 27 entries (three planes of 9). A transformed observation is obs[..., obs_perm[g]], a
        transformed policy policy[..., cells[g]], and a move a becomes the cell c with cells[g, c] == a."""
        grid = np.arange(9).reshape(3, 3)
        cells = np.stack([m.ravel() for k in range(4) for m in (np.rot90(grid, k), np.fliplr(np.rot90(grid, k)))])
        return np.concatenate([cells + 9 * plane for plane in range(3)], 1), cells


class CartPoleSimulator:
    """Gymnasium's CartPole-v1 dynamics (Barto, Sutton & Anderson 1983; the Euler integration and constants
    of gymnasium/envs/classic_control/cartpole.py), for a batch of (x, ẋ, θ, θ̇) states."""

    players = 1
    num_actions = 2
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    theta_limit, x_limit = 12 * 2 * math.pi / 360, 2.4

    def from_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def observe(self, states: torch.Tensor) -> torch.Tensor:
        return states

    def legal(self, states: torch.Tensor) -> None:
        return None

    def step(self, states: torch.Tensor, actions: torch.Tensor):
        x, x_dot, theta, theta_dot = states.unbind(-1)
        total_mass = self.masspole + self.masscart
        pml = self.masspole * self.length
        force = torch.where(actions == 1, self.force_mag, -self.force_mag).to(states.dtype)
        cos, sin = torch.cos(theta), torch.sin(theta)
        temp = (force + pml * theta_dot**2 * sin) / total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos**2 / total_mass))
        x_acc = temp - pml * theta_acc * cos / total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * x_acc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * theta_acc
        nxt = torch.stack([x, x_dot, theta, theta_dot], -1)
        done = (x.abs() > self.x_limit) | (theta.abs() > self.theta_limit)
        # a state that had already fallen stays where it is, with no reward (an absorbing state)
        was_done = (states[:, 0].abs() > self.x_limit) | (states[:, 2].abs() > self.theta_limit)
        nxt = torch.where(was_done[:, None], states, nxt)
        reward = (~was_done).to(states.dtype)
        return nxt, reward, done | was_done, None


SIMULATORS = {"rlworks/TicTacToe-v0": TicTacToeSimulator, "CartPole-v1": CartPoleSimulator,
              "CartPole-v0": CartPoleSimulator}
