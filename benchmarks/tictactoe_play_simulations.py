"""How much search a trained TicTacToe agent needs at play time: the same checkpoint scored exactly
(``envs.tictactoe.exact_outcomes``: every game the opponent can make, no sampling) with more and more
simulations per move, with the search's depth capped (``--depths``; 0: unbounded), or with the search run
from all 8 rotations and reflections of each position and its visit distributions averaged
(``--symmetries``, MuZero). Training is not repeated; only the acting search changes.

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

import numpy as np
import torch

import rlworks
from rlworks.envs.simulators import TicTacToeSimulator
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


def symmetric_act(planner, obs: np.ndarray) -> torch.Tensor:
    """A MuZero planner's move from searches of all 8 symmetric views of each position: view g shows old cell
    cells[g, i] in cell i, so its visit distribution maps back by the inverse permutation; the views' averaged
    distribution, over the legal cells, picks the move (ties: the lowest cell)."""
    from rlworks.algos.muzero import search

    obs_perm, cells = (torch.as_tensor(x) for x in TicTacToeSimulator.symmetries())
    obs = torch.as_tensor(obs, dtype=torch.float32)
    views = obs[:, obs_perm].transpose(0, 1).reshape(-1, obs.shape[1])  # (8·N, 27), view-major
    out = search(planner.net, views, planner.cfg, discount=planner.discount, rng=None, legal=planner.legal(views))
    visits = out.policy.reshape(8, len(obs), -1)
    back = torch.stack([visits[g][:, torch.argsort(cells[g])] for g in range(8)]).mean(0)
    return back.masked_fill(~planner.legal(obs), -1.0).argmax(-1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="agent checkpoint folders (muzero or alphazero, TicTacToe)")
    p.add_argument("--sims", nargs="+", type=int, default=[50, 100, 200, 400])
    p.add_argument("--depths", nargs="+", type=int, default=None,
                   help="search depth caps to try (max_depth; 0: unbounded); default: the one trained with")
    p.add_argument("--symmetries", action="store_true",
                   help="MuZero: also play by the searches of all 8 symmetric views, averaged (a second line)")
    a = p.parse_args()
    torch.set_num_threads(1)
    for path in a.checkpoints:
        agent = rlworks.load(path)
        trained = agent.model.cfg
        for sims, depth in [(n, d) for n in a.sims for d in (a.depths or [trained.max_depth])]:
            agent.model.cfg = dataclasses.replace(trained, num_simulations=sims, max_depth=depth)
            ways = [("", lambda obs, agent=agent: agent.act(obs, True))]
            if a.symmetries:
                ways.append((", 8 views averaged", lambda obs, agent=agent: symmetric_act(agent.model, obs)))
            for label, act in ways:
                cells = []
                for opponent, side in GAMES:
                    r = exact_outcomes(act, opponent, side, details=True)
                    wins, blocks = kinds(r["mistake_list"], 1 if side == "first" else -1)
                    cells.append(f"{opponent} {side}: L {r['losses']:.3f}, mistakes {r['mistakes']}/{r['positions']} "
                                 f"(missed wins {wins}, missed blocks {blocks})")
                print(f"{Path(path).name} (trained with {trained.num_simulations}, depth {trained.max_depth or 'free'}"
                      f"), {sims} simulations, depth {depth or 'free'}{label} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
