"""TicTacToe: a two-player board game for MuZero/AlphaZero work, with perfect play and batched torch rules.

The 3 x 3 board is 9 cells, row-major, cell 0 top-left; X moves first. Marks are stored as +1 (X),
-1 (O) and 0 (empty). The env plays against a built-in opponent (``"random"`` or a perfect
``"minimax"`` one that breaks ties at random) or, with ``opponent="self-play"``, lets one caller
make every move, as in AlphaZero's self-play (Silver et al., *A general reinforcement learning
algorithm that masters chess, shogi, and Go through self-play*, Science 2018).

Observations are always from the point of view of the player to move ("canonical", as the
AlphaZero and MuZero papers feed their networks): 27 floats, three planes of 9 cells: the mover's
marks, the opponent's marks, and a constant plane that is 1 when the mover is X. The legal moves
are ``info["action_mask"]`` and the player to move ``info["to_play"]`` (0 X, 1 O); an illegal move
raises ``IllegalActionError`` rather than being silently punished, so a bug in a search shows up.

Perfect play is exact minimax over the 5,478 reachable positions, memoised (about 30 ms, once).
``TicTacToeRules`` steps B canonical boards at once on torch tensors, for a tree search that
expands a batch of leaves; it agrees with the env move by move (tests/unit/test_tictactoe.py).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlworks.config import ConfigError, check_choice

if TYPE_CHECKING:  # torch is imported where used, so that importing the envs stays fast
    import torch

X, O, EMPTY = 1, -1, 0  # noqa: E741  (the game's own names for the marks)
OPPONENTS = ("random", "minimax", "self-play")
AGENT_PLAYS = ("first", "second", "alternate")
#: The 8 lines (3 rows, 3 columns, 2 diagonals) as cell indices, (8, 3).
LINES = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 3, 6], [1, 4, 7], [2, 5, 8], [0, 4, 8], [2, 4, 6]])
_LINES = tuple(tuple(int(c) for c in line) for line in LINES)  # plain ints: the solver's hot loop
#: ``get_state()`` layout: 9 board cells, then to_play (+1/-1), done (0/1), the agent's mark (0 in self-play).
STATE_SIZE = 12


class IllegalActionError(ConfigError):
    """A move onto an occupied cell, off the board, or after the game has ended. A ``ConfigError`` (so a
    ``ValueError``): bad input from the user's policy, which the CLI reports in one line with exit code 2."""


def winner(board: Sequence[int]) -> int:
    """+1 if X has a line, -1 if O has one, else 0."""
    for a, b, c in _LINES:
        if board[a] != EMPTY and board[a] == board[b] == board[c]:
            return int(board[a])
    return 0


def _as_position(board: Sequence[int], to_play: int) -> tuple[tuple[int, ...], int]:
    cells = tuple(int(v) for v in np.asarray(board).reshape(-1))
    if len(cells) != 9 or any(v not in (X, O, EMPTY) for v in cells):
        raise ValueError(f"board must be 9 cells in {{1 (X), -1 (O), 0}}, got {list(cells)}")
    if int(to_play) not in (X, O):
        raise ValueError(f"to_play={to_play!r} must be 1 (X) or -1 (O)")
    return cells, int(to_play)


@functools.cache
def _solve(board: tuple[int, ...], to_play: int) -> int:
    # No alpha-beta cut-off: visiting every child keeps the cache complete (all 5,478 reachable
    # positions after solving the empty board), so later queries are lookups.
    w = winner(board)
    if w:
        return 1 if w == to_play else -1
    if EMPTY not in board:
        return 0
    return max(-_solve(board[:i] + (to_play,) + board[i + 1 :], -to_play) for i in range(9) if board[i] == EMPTY)


def minimax_value(board: Sequence[int], to_play: int) -> int:
    """The game value in {-1, 0, 1} for the player to move under perfect play by both sides.

    ``board``: 9 ints, +1 X, -1 O, 0 empty; ``to_play``: +1 X or -1 O. A finished game is worth
    +1/-1 to whoever has the line, 0 if drawn.
    """
    return _solve(*_as_position(board, to_play))


def optimal_moves(board: Sequence[int], to_play: int) -> list[int]:
    """Every empty cell whose move achieves ``minimax_value(board, to_play)``; [] once the game is over."""
    cells, to_play = _as_position(board, to_play)
    if winner(cells) or EMPTY not in cells:
        return []
    value = _solve(cells, to_play)
    return [
        i for i in range(9)
        if cells[i] == EMPTY and -_solve(cells[:i] + (to_play,) + cells[i + 1 :], -to_play) == value
    ]  # fmt: skip


def observe(board: Sequence[int], to_play: int) -> np.ndarray:
    """The env's observation of ``board`` for the player ``to_play``: float32 (27,), the mover's marks, the
    opponent's, and a plane of ones when the mover is X."""
    board = np.asarray(board)
    obs = np.empty(27, dtype=np.float32)
    obs[:9] = board == to_play
    obs[9:18] = board == -to_play
    obs[18:] = to_play == X
    return obs


def exact_outcomes(act, opponent: str, agent_plays: str, details: bool = False) -> dict[str, Any]:
    """The exact probabilities of a win, draw and loss for a deterministic policy against ``opponent``
    (``"random"``: uniform over the empty cells; ``"minimax"``: uniform over the optimal moves, as the env's
    opponents play), with no sampling: every game the opponent can make is followed to its end, weighted by
    its probability. ``act`` maps a batch of observations (N, 27) to N cells and is called once per ply
    with every position the agent can face there (at most a few hundred). An illegal cell raises
    ``IllegalActionError``. Also returns ``positions``, how many distinct positions the agent was asked, and
    ``mistakes``, in how many of them its move lowers the game's minimax value (a finer measure of play than
    the outcomes: against the random player most mistakes go unpunished). ``details=True`` adds
    ``mistake_list``: (board, move, the optimal moves, the probability of reaching the position) for each."""
    check_choice("opponent", opponent, ("random", "minimax"))
    check_choice("agent_plays", agent_plays, ("first", "second"))
    me = X if agent_plays == "first" else O
    result = {"wins": 0.0, "draws": 0.0, "losses": 0.0, "positions": 0, "mistakes": 0}
    if details:
        result["mistake_list"] = []
    outcome = {me: "wins", -me: "losses"}
    frontier: dict[tuple[int, ...], float] = {(EMPTY,) * 9: 1.0}
    mover = X
    while frontier:
        nxt: dict[tuple[int, ...], float] = {}
        boards = list(frontier)
        if mover == me:
            cells = np.asarray(act(np.stack([observe(b, me) for b in boards]))).reshape(-1)
            result["positions"] += len(boards)
            best = [optimal_moves(b, me) for b in boards]
            wrong = [(list(b), int(c), o, frontier[b]) for b, c, o in zip(boards, cells, best) if int(c) not in o]
            result["mistakes"] += len(wrong)
            if details:
                result["mistake_list"] += wrong
            moves = [[(int(c), 1.0)] for c in cells]
        else:
            moves = [[(c, 1.0 / len(m)) for c in m] for m in (
                [i for i in range(9) if b[i] == EMPTY] if opponent == "random" else optimal_moves(b, mover)
                for b in boards)]
        for board, p, options in zip(boards, frontier.values(), moves):
            for cell, q in options:
                if not (0 <= cell < 9 and board[cell] == EMPTY):
                    raise IllegalActionError(f"TicTacToe: the policy played cell {cell} on {list(board)}")
                after = board[:cell] + (mover,) + board[cell + 1 :]
                if winner(after):
                    result[outcome[mover]] += p * q
                elif EMPTY not in after:
                    result["draws"] += p * q
                else:
                    nxt[after] = nxt.get(after, 0.0) + p * q
        frontier, mover = nxt, -mover
    return result


def _mark_masks(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (size, size) masks of an X (two diagonals) and an O (a ring) inside one cell."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    margin = size * 0.2
    inside = (yy >= margin) & (yy <= size - 1 - margin) & (xx >= margin) & (xx <= size - 1 - margin)
    cross = inside & ((np.abs(yy - xx) <= 1.5) | (np.abs(yy + xx - (size - 1)) <= 1.5))
    radius = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2)
    ring = np.abs(radius - (size / 2 - margin)) <= 1.5
    return cross, ring


_CELL_PX = 32
_CROSS, _RING = _mark_masks(_CELL_PX)


class TicTacToe(gym.Env):
    """TicTacToe against a built-in opponent, or self-play.

    Args:
        opponent: ``"random"`` (uniform over legal cells), ``"minimax"`` (perfect, uniform among
            optimal moves) or ``"self-play"`` (each step is one move by the player to move).
        agent_plays: ``"first"`` (X), ``"second"`` (O) or ``"alternate"`` (X on even-numbered
            resets, O on odd ones, counted since construction, seeded or not). Ignored in self-play.
        render_mode: ``"ansi"`` or ``"rgb_array"``.

    Against an opponent, ``step`` plays the agent's move and then the opponent's reply, and the
    reward is the agent's: +1 win, -1 loss, 0 otherwise. In self-play the reward is the mover's:
    +1 if the move completes a line, else 0. After the game ends ``to_play`` is the side that would
    move next, the same convention as ``TicTacToeRules.step``. ``get_state``/``set_state`` save
    and restore the game (not ``np_random``, which drives the opponent).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 2}

    def __init__(self, *, opponent: str = "random", agent_plays: str = "alternate", render_mode: str | None = None):
        check_choice("opponent", opponent, OPPONENTS)
        check_choice("agent_plays", agent_plays, AGENT_PLAYS)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode={render_mode!r} is not one of 'ansi', 'rgb_array'")
        self.opponent = opponent
        self.agent_plays = agent_plays
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, (27,), dtype=np.float32)
        self.action_space = spaces.Discrete(9)
        self.board = np.zeros(9, dtype=np.int8)
        self.to_play = X
        self.done = True  # no game until reset()
        self.agent = EMPTY if opponent == "self-play" else X
        self._resets = 0
        #: 2 in self-play: rewards are the mover's and turns alternate (algos/selfplay.py reads it)
        self.players = 2 if opponent == "self-play" else 1

    # ------------------------------------------------------------------ game
    def legal_actions(self) -> list[int]:
        """The empty cells, or [] once the game is over."""
        return [] if self.done else np.flatnonzero(self.board == EMPTY).tolist()

    def _place(self, cell: int) -> bool:
        """Put the mover's mark on ``cell`` and pass the turn; True if it completed a line."""
        self.board[cell] = self.to_play
        won = winner(self.board) == self.to_play
        self.done = won or not (self.board == EMPTY).any()
        self.to_play = -self.to_play
        return won

    def _opponent_move(self) -> bool:
        if self.opponent == "random":
            cell = self.np_random.choice(np.flatnonzero(self.board == EMPTY))
        else:
            cell = self.np_random.choice(optimal_moves(self.board, self.to_play))
        return self._place(int(cell))

    def _check_action(self, action: Any) -> int:
        legal = self.legal_actions()
        try:
            cell = operator.index(action)
        except TypeError:
            cell, reason = action, "not an integer cell 0-8"
        else:
            if self.done:
                reason = "no game in progress: call reset()"
            elif not 0 <= cell < 9:
                reason = "off the board: cells are 0-8"
            elif self.board[cell] != EMPTY:
                reason = "cell occupied"
            else:
                return cell
        raise IllegalActionError(f"TicTacToe: action {cell!r} is not legal here ({reason}); legal actions: {legal}")

    def _obs(self) -> np.ndarray:
        return observe(self.board, self.to_play)

    def _info(self) -> dict[str, Any]:
        mask = (self.board == EMPTY) & (not self.done)
        return {"action_mask": mask, "to_play": 0 if self.to_play == X else 1}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.board[:] = EMPTY
        self.to_play, self.done = X, False
        if self.opponent == "self-play":
            self.agent = EMPTY
        else:
            first = self.agent_plays == "first" or (self.agent_plays == "alternate" and self._resets % 2 == 0)
            self.agent = X if first else O
            if self.agent == O:
                self._opponent_move()
        self._resets += 1
        return self._obs(), self._info()

    def step(self, action):
        cell = self._check_action(action)
        reward = 1.0 if self._place(cell) else 0.0
        if self.opponent != "self-play" and not self.done and self._opponent_move():
            reward = -1.0
        return self._obs(), reward, self.done, False, self._info()

    # ------------------------------------------------------------------ search support
    def get_state(self) -> np.ndarray:
        """A copy of the game: int8 (12,) = 9 cells (+1 X, -1 O, 0), to_play (+1/-1), done (0/1), agent mark."""
        return np.concatenate([self.board, [self.to_play, int(self.done), self.agent]]).astype(np.int8)

    def set_state(self, state: np.ndarray) -> None:
        """Restore a ``get_state()`` array (the env's ``np_random`` is left as it is)."""
        state = np.asarray(state)
        if state.shape != (STATE_SIZE,):
            raise ValueError(f"state has shape {state.shape}; expected ({STATE_SIZE},) from get_state()")
        _as_position(state[:9], state[9])
        if state[10] not in (0, 1) or state[11] not in (X, O, EMPTY):
            raise ValueError(f"state {state.tolist()} is not a get_state() array: done must be 0/1, agent -1/0/1")
        self.board = state[:9].astype(np.int8)
        self.to_play, self.done, self.agent = int(state[9]), bool(state[10]), int(state[11])

    # ------------------------------------------------------------------ rendering
    def render(self):
        if self.render_mode == "ansi":
            chars = np.array([".", "X", "O"])[self.board]  # index -1 is O
            return "\n".join("".join(chars[r * 3 : r * 3 + 3]) for r in range(3)) + "\n"
        if self.render_mode == "rgb_array":
            n = _CELL_PX
            img = np.full((3 * n, 3 * n, 3), 248, dtype=np.uint8)
            for k in (1, 2):  # grid lines between the cells
                img[k * n - 1 : k * n + 1, :] = img[:, k * n - 1 : k * n + 1] = 60
            for cell in np.flatnonzero(self.board):
                r, c = divmod(int(cell), 3)
                patch = img[r * n : (r + 1) * n, c * n : (c + 1) * n]
                if self.board[cell] == X:
                    patch[_CROSS] = (220, 38, 38)  # red X
                else:
                    patch[_RING] = (37, 99, 235)  # blue O
            return img
        return None


_LINES_ON: dict[Any, torch.Tensor] = {}


def _lines_on(device) -> torch.Tensor:
    import torch

    if device not in _LINES_ON:
        _LINES_ON[device] = torch.as_tensor(LINES, dtype=torch.long, device=device)
    return _LINES_ON[device]


class TicTacToeRules:
    """The rules on B canonical boards at once: (B, 9) tensors, +1 the player to move, -1 the opponent, 0 empty.

    Any dtype with those values works (int8 or float); no Python loop over B. A board that already
    has a line or is full is finished: stepping it returns it unchanged with reward 0, done True.
    """

    @staticmethod
    def initial(batch: int, device=None, dtype=None) -> torch.Tensor:
        """B empty boards (X to move)."""
        import torch

        return torch.zeros(batch, 9, dtype=dtype or torch.int8, device=device)

    @staticmethod
    def finished(boards: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the board has a line (of either side) or is full."""
        sums = boards[:, _lines_on(boards.device)].sum(-1)  # (B, 8)
        return (sums.abs() == 3).any(-1) | (boards != 0).all(-1)

    @staticmethod
    def legal(boards: torch.Tensor) -> torch.Tensor:
        """(B, 9) bool: the empty cells of unfinished boards."""
        return (boards == 0) & ~TicTacToeRules.finished(boards)[:, None]

    @staticmethod
    def step(boards: torch.Tensor, actions: torch.Tensor, check: bool = True):
        """Play ``actions`` (B,) for the player to move: ``(next_boards, reward, done, legal)``.

        ``next_boards`` is from the next player's point of view (negated); ``reward`` (B,) float32 is
        1 where the move completed a line for the mover; ``done`` (B,) bool is win or full board;
        ``legal`` (B, 9) bool for the next player. ``check`` raises ValueError on a move off the
        board or onto an occupied cell of an unfinished board (one device sync; off for speed).
        """
        import torch

        lines = _lines_on(boards.device)
        actions = actions.long()
        rows = torch.arange(boards.shape[0], device=boards.device)
        active = ~TicTacToeRules.finished(boards)
        if check:
            if ((actions < 0) | (actions > 8)).any():
                raise ValueError(f"TicTacToeRules.step: actions must be cells 0-8, got {actions.tolist()}")
            bad = active & (boards[rows, actions] != 0)
            if bad.any():
                rows_bad = bad.nonzero().view(-1).tolist()
                raise ValueError(f"TicTacToeRules.step: move onto an occupied cell in rows {rows_bad}")
        placed = boards.clone()
        # Finished boards keep their cell as it is, so they come back unchanged (no boolean indexing: no sync).
        cell = torch.where(active, torch.ones_like(actions), placed[rows, actions].long())
        placed[rows, actions] = cell.to(boards.dtype)
        win = active & (placed[:, lines].sum(-1) == 3).any(-1)
        done = win | (placed != 0).all(-1) | ~active
        next_boards = torch.where(active[:, None], -placed, boards)
        legal = (next_boards == 0) & ~done[:, None]
        return next_boards, win.to(torch.float32), done, legal

    @staticmethod
    def observe(boards: torch.Tensor, x_to_move: torch.Tensor) -> torch.Tensor:
        """(B, 27) float32, the env's observation: mover's marks, opponent's marks, 1s if the mover is X."""
        import torch

        planes = (boards == 1, boards == -1, x_to_move.bool()[:, None].expand_as(boards))
        return torch.cat(planes, dim=-1).float()

    @staticmethod
    def from_state(state) -> tuple[torch.Tensor, torch.Tensor]:
        """``get_state()`` arrays, (12,) or (B, 12) -> (canonical boards (B, 9) int8, x_to_move (B,) bool)."""
        import torch

        state = torch.as_tensor(np.asarray(state), dtype=torch.int8).reshape(-1, STATE_SIZE)
        to_play = state[:, 9:10]
        return state[:, :9] * to_play, to_play[:, 0] == X
