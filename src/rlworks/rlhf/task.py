"""The RLHF task with a hidden truth: short film reviews, a gold reward, and a simulated labeller.

A seeded generator writes reviews such as ``the music was very dull , but the cast was superb .``. A prompt is
the opening (``the music was``); a completion continues it and ends with `` .``. The **gold reward** is a
program that scores a completion; no stage of the pipeline calls it except the labeller and the final report:

    gold(c) = Σ_adjectives  s(adj) · m(intensifier) · (−1 if negated)        (each adjective counted once)
              − 0.5 · (repeated adjectives)  − 0.5 · (unknown words)  − 0.2 · (words beyond 16)
              − 0.5 · [no closing " ."]

The demonstrations never repeat an adjective, so preference data sampled from the SFT model rarely shows what a
repetition costs: a reward model learnt from it will credit every ``superb`` again, and a policy optimised hard
against it (small KL penalty) finds that gap: the proxy reward climbs while the gold reward falls (Gao, Schulman
& Hilton 2022, "Scaling Laws for Reward Model Overoptimization").

The **labeller** compares two completions as people do in Bradley–Terry form (Christiano et al. 2017):

    P(a ≻ b) = σ((gold(a) − gold(b)) / temperature),

so labels are noisy, and the best accuracy any reward model can reach on sampled labels, the **noise ceiling**,
is E[max(p, 1 − p)] over the pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import check_range

#: adjectives and their sentiment; neutral ones carry 0
ADJECTIVES: dict[str, float] = {
    "superb": 1.0, "great": 1.0, "moving": 0.8, "lovely": 0.8, "charming": 0.7, "clever": 0.6, "funny": 0.5,
    "fine": 0.3, "awful": -1.0, "dull": -0.8, "boring": -0.8, "clumsy": -0.6, "messy": -0.6, "bland": -0.5,
    "weak": -0.5, "silly": -0.4, "long": 0.0, "short": 0.0, "quiet": 0.0, "loud": 0.0, "strange": 0.0,
    "simple": 0.0,
}
INTENSIFIERS: dict[str, float] = {"very": 1.5, "really": 1.5, "quite": 0.7, "slightly": 0.4}
NEGATION = "not"
NOUNS = ("plot", "cast", "music", "ending", "dialogue", "pacing", "story", "acting", "script", "camera")
CONNECTIVES = ("and", "but")
PROMPTS = ("the {} was", "i thought the {} was", "overall the {} felt", "to me the {} seemed")
PUNCT = (",", ".")
VOCABULARY = frozenset(
    [*ADJECTIVES, *INTENSIFIERS, NEGATION, *NOUNS, *CONNECTIVES, *PUNCT, "the", "was"]
    + [w for p in PROMPTS for w in p.split() if w != "{}"])
MAX_WORDS = 16


def gold_reward(completion: str) -> float:
    """The hidden score of a completion (module docstring): sentiment of the distinct adjectives, with their
    intensifiers and negations, minus penalties for repeats, unknown words, length and a missing end."""
    words = completion.split()
    score, seen = 0.0, set()
    for i, w in enumerate(words):
        if w in ADJECTIVES:
            if w in seen:
                score -= 0.5
                continue
            seen.add(w)
            value = ADJECTIVES[w]
            before = words[max(i - 2, 0):i]
            if i > 0 and words[i - 1] in INTENSIFIERS:
                value *= INTENSIFIERS[words[i - 1]]
            if NEGATION in before:
                value = -value
            score += value
        elif w not in VOCABULARY:
            score -= 0.5
    score -= 0.2 * max(len(words) - MAX_WORDS, 0)
    if not words or words[-1] != ".":
        score -= 0.5
    return score


@dataclass(frozen=True)
class ReviewTask:
    """The generator of prompts, demonstrations and pretraining text (all from ``np.random.Generator``s)."""

    max_phrases: int = 3
    """clauses per demonstration: 1 to max_phrases"""
    p_intensifier: float = 0.3
    """probability that an adjective has an intensifier"""
    p_negation: float = 0.15
    """probability that an adjective is negated"""

    def __post_init__(self) -> None:
        check_range("max_phrases", self.max_phrases, 1, 4)
        check_range("p_intensifier", self.p_intensifier, 0, 1)
        check_range("p_negation", self.p_negation, 0, 1)

    def prompt(self, rng: np.random.Generator) -> str:
        return PROMPTS[rng.integers(len(PROMPTS))].format(NOUNS[rng.integers(len(NOUNS))])

    def prompts(self, n: int, rng: np.random.Generator) -> list[str]:
        return [self.prompt(rng) for _ in range(n)]

    def _phrase(self, adjective: str, rng: np.random.Generator) -> str:
        words = []
        if rng.random() < self.p_negation:
            words.append(NEGATION)
        if rng.random() < self.p_intensifier:
            words.append(list(INTENSIFIERS)[rng.integers(len(INTENSIFIERS))])
        return " ".join([*words, adjective])

    def completion(self, rng: np.random.Generator) -> str:
        """A demonstration: 1..max_phrases clauses with distinct adjectives, ending in ``.``."""
        n = int(rng.integers(1, self.max_phrases + 1))
        adjectives = rng.choice(list(ADJECTIVES), size=n, replace=False)
        parts = [self._phrase(adjectives[0], rng)]
        for adj in adjectives[1:]:
            noun = NOUNS[rng.integers(len(NOUNS))]
            parts.append(f", {CONNECTIVES[rng.integers(2)]} the {noun} was {self._phrase(adj, rng)}")
        return " ".join(parts) + " ."

    def demonstrations(self, n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
        """``n`` (prompt, completion) pairs for supervised fine-tuning."""
        return [(self.prompt(rng), self.completion(rng)) for _ in range(n)]

    def corpus(self, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` reviews of one or two sentences, the pretraining text."""
        return [" ".join(f"{p} {c}" for p, c in self.demonstrations(int(rng.integers(1, 3)), rng))
                for _ in range(n)]


@dataclass(frozen=True)
class Labeller:
    """A simulated person: prefers a over b with probability σ((gold(a) − gold(b)) / temperature)."""

    temperature: float = 0.5
    """noise of the labels: 0 would be a perfect judge, larger is noisier"""

    def __post_init__(self) -> None:
        check_range("temperature", self.temperature, 0, low_open=True)

    def p_first(self, a: str, b: str) -> float:
        """P(a ≻ b)."""
        return 1.0 / (1.0 + math.exp(-(gold_reward(a) - gold_reward(b)) / self.temperature))

    def label(self, prompt: str, a: str, b: str, rng: np.random.Generator) -> dict:
        """A preference row in TRL's format, ``{"prompt", "chosen", "rejected"}``, with the labeller's
        probability that the chosen one is better (``p_chosen``, for the noise ceiling)."""
        p = self.p_first(a, b)
        if rng.random() < p:
            return {"prompt": prompt, "chosen": a, "rejected": b, "p_chosen": p}
        return {"prompt": prompt, "chosen": b, "rejected": a, "p_chosen": 1.0 - p}


def noise_ceiling(rows: list[dict]) -> float:
    """E[max(p, 1 − p)]: the expected accuracy on these sampled labels of a judge that knows the gold reward
    (the best any reward model can do)."""
    return float(np.mean([max(r["p_chosen"], 1.0 - r["p_chosen"]) for r in rows])) if rows else float("nan")


#: the task with its default settings
TASK = ReviewTask()
