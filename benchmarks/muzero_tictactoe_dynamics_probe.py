"""What a MuZero TicTacToe checkpoint's one-step model says about each move from a position, against what its
representation says about the real position after that move.

For every legal move a from the given board (``X`` and ``O`` marks, ``.`` empty, rows split by ``/``), it prints
the value of the mover's opponent after a, read two ways: through the learned dynamics, v(g(h(o), a)) — what
the search sees one step below the root — and through the representation of the true next observation,
v(h(o')), which the search never sees. Values are from the view of the player to move after a (the
opponent), so the mover wants them low. The cosine similarity and the mean absolute difference between the
two hidden states show how close the consistency loss brought them.

    python benchmarks/muzero_tictactoe_dynamics_probe.py ".X./XO./..." runs/muzero-.../step-60000
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import rlworks
from rlworks.core.support import support_to_scalar
from rlworks.envs.tictactoe import EMPTY, O, X, observe

MARKS = {"X": X, "O": O, ".": EMPTY}


def board_of(text: str) -> list[int]:
    cells = text.replace("/", "")
    if len(cells) != 9 or set(cells) - set(MARKS):
        raise SystemExit(f"board {text!r}: give 9 cells of X, O and . (rows may be split by /)")
    return [MARKS[c] for c in cells]


@torch.no_grad()
def probe(path: str, board: list[int]) -> None:
    net = rlworks.load(path).model.net
    S = net.support_size
    mover = X if board.count(X) == board.count(O) else O
    s0, logits, v = net.initial_inference(torch.as_tensor(observe(board, mover))[None])
    print(f"{path}\n  value at the root {float(support_to_scalar(v, S)[0]):+.2f}; prior "
          + " ".join(f"{a}:{p:.2f}" for a, p in enumerate(logits.softmax(-1)[0].tolist()) if board[a] == EMPTY))
    for a in (i for i in range(9) if board[i] == EMPTY):
        s1, r, _, v1 = net.recurrent_inference(s0, torch.tensor([a]))
        after = list(board)
        after[a] = mover
        h1, _, v2 = net.initial_inference(torch.as_tensor(observe(after, -mover))[None])
        print(f"  move {a}: reward {float(support_to_scalar(r, S)[0]):+.2f}  "
              f"v through the dynamics {float(support_to_scalar(v1, S)[0]):+.2f}  "
              f"v of the true next position {float(support_to_scalar(v2, S)[0]):+.2f}  "
              f"(hidden states: cosine {float(F.cosine_similarity(s1, h1)[0]):.3f}, "
              f"mean |difference| {float((s1 - h1).abs().mean()):.3f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("board", help='e.g. ".X./XO./..." (X on 1 and 3, O in the centre, O to move)')
    p.add_argument("checkpoints", nargs="+")
    a = p.parse_args()
    torch.set_num_threads(1)
    board = board_of(a.board)
    for path in a.checkpoints:
        probe(path, board)


if __name__ == "__main__":
    main()
