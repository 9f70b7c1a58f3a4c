"""The synthetic review task: a corpus, a lexicon and a ground-truth reward.

A review is two or three clauses `NOUN was ADJ`, joined by "and" or "but":

    plot was dull but cast was superb and music was lovely

Each review has a mood, the chance that an adjective is positive rather than
negative; the SFT model learns the mix, so its completions are as often sour as
sweet. A prompt is the first clause and its connective ("plot was dull but"),
the completion the clauses after it.

The true reward of a review x + y is a sentiment score from the lexicon,

    r(x, y) = σ(n_pos - n_neg - n_unknown)      (counted over the prompt and the completion)

in (0, 1): 0.5 for a neutral review, 0.73 for one net positive adjective, 0.88
for two, 0.95 for three. Like the sentiment classifier of the DPO paper's
controlled experiment, it scores the whole text; the policy can change only the
completion. A word outside the task's vocabulary (a misspelling such as "goood")
counts as negative: otherwise a policy could raise its reward by misspelling
the negative adjectives it samples, since an unreadable word carries no
sentiment.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..tokenize import truncated_ids

NOUNS = ("film", "plot", "cast", "music", "story", "acting", "ending", "script")
POSITIVE = ("good", "great", "fun", "superb", "lovely", "fine", "moving", "clever")
NEGATIVE = ("bad", "dull", "awful", "weak", "boring", "poor", "silly", "bland")
NEUTRAL = ("long", "short", "old", "new", "loud", "quiet", "slow", "odd")
CONNECTIVES = ("and", "but")
MOODS = (0.15, 0.5, 0.85)  # chance that a non-neutral adjective is positive
NEUTRAL_SHARE = 0.3
COMPLETION_CLAUSES = (1, 2)  # clauses after the prompt's first one

_WORD = re.compile(r"\S+")
_POSITIVE, _NEGATIVE = frozenset(POSITIVE), frozenset(NEGATIVE)
_KNOWN = frozenset((*NOUNS, *POSITIVE, *NEGATIVE, *NEUTRAL, *CONNECTIVES, "was"))


def sentiment(text: str) -> int:
    """n_pos - n_neg - n_unknown over the whitespace-separated words of `text`: +1 per positive
    adjective, -1 per negative adjective and per word outside the task's vocabulary."""
    words = _WORD.findall(text)
    return sum(w in _POSITIVE for w in words) - sum(w in _NEGATIVE or w not in _KNOWN for w in words)


def true_reward(prompt: str, completion: str) -> float:
    """r(x, y) = σ(n_pos - n_neg - n_unknown) of the review `prompt completion`, in (0, 1)."""
    s = sentiment(prompt) + sentiment(completion)
    return 1.0 / (1.0 + math.exp(-s))


def _clause(rng, mood: float) -> str:
    u = rng.random()
    if u < NEUTRAL_SHARE:
        adjectives = NEUTRAL
    else:
        adjectives = POSITIVE if rng.random() < mood else NEGATIVE
    return f"{NOUNS[rng.integers(len(NOUNS))]} was {adjectives[rng.integers(len(adjectives))]}"


def make_review(rng: np.random.Generator) -> tuple[str, str]:
    """(prompt, completion) of one review drawn with `rng`: prompt = first clause + connective."""
    mood = MOODS[rng.integers(len(MOODS))]
    n_clauses = 1 + COMPLETION_CLAUSES[rng.integers(len(COMPLETION_CLAUSES))]
    parts = [_clause(rng, mood)]
    for _ in range(n_clauses - 1):
        parts += [CONNECTIVES[rng.integers(len(CONNECTIVES))], _clause(rng, mood)]
    return f"{parts[0]} {parts[1]}", " ".join(parts[2:])


def make_corpus(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` reviews as (prompt, completion), drawn from `seed`."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"make_corpus: n must be a positive int, got {n!r}")
    rng = np.random.default_rng(seed)
    return [make_review(rng) for _ in range(n)]


def all_prompts() -> list[str]:
    """Every prompt the task has: each first clause with each connective (8 · 24 · 2 = 384)."""
    return [f"{noun} was {adj} {conn}" for noun in NOUNS for adj in POSITIVE + NEGATIVE + NEUTRAL
            for conn in CONNECTIVES]


def split_prompts(n_train: int, n_eval: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, eval): disjoint random sets of prompts, so evaluation is on prompts never trained on."""
    prompts = all_prompts()
    if n_train + n_eval > len(prompts):
        raise ValueError(f"split_prompts: {n_train} train + {n_eval} eval prompts exceed the task's {len(prompts)}")
    order = np.random.default_rng([seed, 1]).permutation(len(prompts))
    return [prompts[i] for i in order[:n_train]], [prompts[i] for i in order[n_train:n_train + n_eval]]


class Demonstration:
    """A (prompt, completion) pair `warmup_pretrain` can train on: it reads `token_ids` and
    `source` like a PreferencePair's, and only the chosen side, here the completion."""

    __slots__ = ("prompt", "completion", "source")

    def __init__(self, prompt: str, completion: str, source: str = ""):
        self.prompt, self.completion, self.source = prompt, completion, source

    def token_ids(self, tokenizer, config=None):
        """(prompt ids, completion ids, completion ids), with config's length limits as a PreferencePair's."""
        completion = tokenizer.encode_completion(self.completion)
        return truncated_ids((tokenizer.encode_prompt(self.prompt), completion, completion), config)
