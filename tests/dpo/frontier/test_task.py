"""The synthetic review task: the lexicon reward by hand, the corpus, the prompt split, the labelling."""

import math

import pytest

from dpo.frontier import task
from dpo.frontier.sweep import preference_rows
from dpo.frontier.task import all_prompts, make_corpus, sentiment, split_prompts, true_reward


def sigma(s):
    return 1.0 / (1.0 + math.exp(-s))


@pytest.mark.parametrize("text, score", [
    ("plot was good and cast was bad", 0),
    ("plot was good and cast was superb", 2),
    ("music was dull but story was weak", -2),
    ("film was long", 0),
    ("film was goood", -1),       # a misspelling counts as negative
    ("film was good and", 1),
    ("", 0),
])
def test_sentiment_counts_the_lexicon_by_hand(text, score):
    assert sentiment(text) == score


def test_true_reward_scores_prompt_and_completion_together():
    assert true_reward("plot was bad but", "cast was superb and music was fine") == pytest.approx(sigma(1), abs=1e-15)
    assert true_reward("plot was odd and", "cast was slow") == 0.5
    assert true_reward("plot was good and", "cast was xx") == 0.5


def test_corpus_is_seeded_and_made_of_the_task_words():
    corpus = make_corpus(200, seed=3)
    assert corpus == make_corpus(200, seed=3) and corpus != make_corpus(200, seed=4)
    prompts = set(all_prompts())
    vocabulary = {*task.NOUNS, *task.POSITIVE, *task.NEGATIVE, *task.NEUTRAL, *task.CONNECTIVES, "was"}
    for prompt, completion in corpus:
        assert prompt in prompts
        words = completion.split()
        assert set(words) <= vocabulary and len(words) in (3, 7)  # one or two more clauses
    rewards = [true_reward(p, c) for p, c in corpus]
    assert min(rewards) < 0.2 and max(rewards) > 0.8  # sour and sweet reviews both occur


def test_prompt_split_is_disjoint_and_rejects_too_many():
    train, held_out = split_prompts(300, 60, seed=0)
    assert len(set(train)) == 300 and len(set(held_out)) == 60 and not set(train) & set(held_out)
    with pytest.raises(ValueError, match="exceed the task's 384"):
        split_prompts(300, 100)


def test_pairs_are_labelled_by_the_true_reward_and_ties_dropped():
    rows, ties = preference_rows("plot was odd and", ["cast was good", "cast was bad", "cast was fine", "film was old"])
    # rewards: σ(1), σ(-1), σ(1), σ(0): the one tie is good vs fine
    assert ties == 1 and len(rows) == 5
    for row in rows:
        assert row["chosen_reward"] > row["rejected_reward"]
        assert row["chosen_reward"] == true_reward(row["prompt"], row["chosen"])
    assert {(r["chosen"], r["rejected"]) for r in rows} >= {("cast was good", "cast was bad"),
                                                            ("film was old", "cast was bad")}
