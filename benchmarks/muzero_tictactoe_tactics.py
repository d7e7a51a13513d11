"""What a trained MuZero TicTacToe model predicts where the answer is one move deep, over every position
reachable in play (4,520 boards with the game still on; the truth from the rules and the minimax solver):

* **can win**: the mover has a winning move. The root value v(h(o)) should be +1, and the reward of the
  winning move r(h(o), w) should be +1.
* **must block**: the mover has no win and the opponent threatens exactly one. After the block the game goes
  on; after any other move the opponent wins at once, so the model's value of that next state, v(g(h(o), a)),
  should be +1 for the opponent, and two steps down the opponent's winning reply should carry reward +1:
  r(g(g(h(o), a), w)), with the prior the model gives that reply.

A model trained to unroll K steps is trained on rewards up to depth K; the numbers at depth 2 show what the
search meets below that (docs/muzero.md).

    python benchmarks/search_learning.py --algo muzero --env rlworks/TicTacToe-v0 --seeds 0 --save-dir /tmp/mz
    python benchmarks/muzero_tictactoe_tactics.py /tmp/mz/muzero-TicTacToe-v0-seed0-*/step-60000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import rlworks
from rlworks.core.support import support_to_scalar
from rlworks.envs.tictactoe import observe, winner


def reachable() -> list[tuple[tuple[int, ...], int]]:
    """Every (board, mover) reachable from the empty board with the game still on."""
    seen: dict[tuple[tuple[int, ...], int], None] = {}

    def walk(board: tuple[int, ...], mover: int) -> None:
        if (board, mover) in seen or winner(board) != 0 or all(board):
            return
        seen[(board, mover)] = None
        for c in range(9):
            if board[c] == 0:
                walk(board[:c] + (mover,) + board[c + 1:], -mover)

    walk((0,) * 9, 1)
    return list(seen)


def wins(board: tuple[int, ...], mark: int) -> list[int]:
    return [c for c in range(9) if board[c] == 0 and winner(board[:c] + (mark,) + board[c + 1:]) == mark]


@torch.no_grad()
def report(path: str) -> str:
    net = rlworks.load(path).model.net
    S = net.support_size
    positions = reachable()
    obs = torch.as_tensor(np.stack([observe(b, m) for b, m in positions]))
    s0, _, v_logits = net.initial_inference(obs)
    v0 = support_to_scalar(v_logits, S)
    lines = [f"{Path(path).parent.name}/{Path(path).name}: {len(positions)} positions"]
    for mover, name in ((1, "X"), (-1, "O")):
        can = [i for i, (b, m) in enumerate(positions) if m == mover and wins(b, m)]
        rows, moves = [], []
        for i in can:
            for w in wins(*positions[i]):
                rows.append(i)
                moves.append(w)
        r_win = support_to_scalar(net.recurrent_inference(s0[rows], torch.tensor(moves))[1], S)
        lines.append(f"  {name} to move, can win ({len(can)}): root value {v0[can].mean():.2f}, reward of the winning "
                     f"move {r_win.mean():.2f} (both should be 1)")
        rows, moves, replies = [], [], []
        for i, (b, m) in enumerate(positions):
            if m != mover or wins(b, m) or len(wins(b, -m)) != 1:
                continue
            threat = wins(b, -m)[0]
            for c in range(9):
                if b[c] == 0 and c != threat:
                    rows.append(i)
                    moves.append(c)
                    replies.append(threat)
        s1, _, p1, v1 = net.recurrent_inference(s0[rows], torch.tensor(moves))
        v1 = support_to_scalar(v1, S)
        prior = p1.softmax(-1)[torch.arange(len(rows)), torch.tensor(replies)]
        r2 = support_to_scalar(net.recurrent_inference(s1, torch.tensor(replies))[1], S)
        lines.append(f"  {name} to move, must block ({len(set(rows))} positions, {len(rows)} other moves): after "
                     f"another move the opponent's value {v1.mean():.2f} (should be 1), its prior on the winning reply "
                     f"{prior.mean():.2f}, that reply's reward at depth 2 {r2.mean():.2f} (should be 1; above 0.5 in "
                     f"{(r2 > 0.5).float().mean():.0%})")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="MuZero TicTacToe checkpoint folders")
    a = p.parse_args()
    torch.set_num_threads(1)
    for path in a.checkpoints:
        print(report(path), flush=True)


if __name__ == "__main__":
    main()
