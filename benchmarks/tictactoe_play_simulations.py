"""How much search a trained TicTacToe agent needs at play time: the same checkpoint scored exactly
(``envs.tictactoe.exact_outcomes``: every game the opponent can make, no sampling) with more and more
simulations per move, and with the search's depth capped (``--depths``; 0: unbounded). Training is not
repeated; only the acting search changes.

    python benchmarks/search_learning.py --algo alphazero --env rlworks/TicTacToe-v0 --seeds 3 \\
        --json /tmp/az.jsonl --save-dir /tmp/az-ckpt
    python benchmarks/tictactoe_play_simulations.py /tmp/az-ckpt/alphazero-TicTacToe-v0-seed3-* --sims 50 100 200
    python benchmarks/tictactoe_play_simulations.py /tmp/mz-ckpt/muzero-TicTacToe-v0-seed0-* --sims 25 --depths 0 1 2

Prints, per checkpoint and number of simulations, the loss probability and the mistakes (moves that lower the
game's minimax value, out of the positions faced) against the perfect and the random player, second and first,
and of those mistakes how many pass up an immediate win ("missed wins") or leave the opponent's immediate
threat open ("missed blocks").
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

import rlworks
from rlworks.envs.tictactoe import exact_outcomes, winner

GAMES = (("minimax", "second"), ("minimax", "first"), ("random", "second"), ("random", "first"))


def threats(board: list[int], mark: int) -> set[int]:
    """The empty cells that would complete a line of ``mark``'s."""
    return {c for c in range(9) if board[c] == 0 and winner(board[:c] + [mark] + board[c + 1:]) == mark}


def kinds(mistakes: list, me: int) -> tuple[int, int]:
    """(missed wins, missed blocks) among ``exact_outcomes(..., details=True)["mistake_list"]``."""
    wins = sum(bool(threats(b, me)) for b, _, _, _ in mistakes)
    blocks = sum(not threats(b, me) and bool(threats(b, -me)) and move not in threats(b, -me)
                 for b, move, _, _ in mistakes)
    return wins, blocks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="agent checkpoint folders (muzero or alphazero, TicTacToe)")
    p.add_argument("--sims", nargs="+", type=int, default=[50, 100, 200, 400])
    p.add_argument("--depths", nargs="+", type=int, default=None,
                   help="search depth caps to try (max_depth; 0: unbounded); default: the one trained with")
    a = p.parse_args()
    torch.set_num_threads(1)
    for path in a.checkpoints:
        agent = rlworks.load(path)
        trained = agent.model.cfg
        for sims, depth in [(n, d) for n in a.sims for d in (a.depths or [trained.max_depth])]:
            agent.model.cfg = dataclasses.replace(trained, num_simulations=sims, max_depth=depth)
            cells = []
            for opponent, side in GAMES:
                r = exact_outcomes(lambda obs, agent=agent: agent.act(obs, True), opponent, side, details=True)
                wins, blocks = kinds(r["mistake_list"], 1 if side == "first" else -1)
                cells.append(f"{opponent} {side}: L {r['losses']:.3f}, mistakes {r['mistakes']}/{r['positions']} "
                             f"(missed wins {wins}, missed blocks {blocks})")
            print(f"{Path(path).name} (trained with {trained.num_simulations}, depth {trained.max_depth or 'free'}), "
                  f"{sims} simulations, depth {depth or 'free'} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
