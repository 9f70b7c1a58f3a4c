"""Preference batches: layout, masks and targets, truncation, shuffling, the train/eval split."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpo.batching import (
    IGNORE_INDEX,
    PreferenceBatch,
    collate,
    collate_token_ids,
    count_truncated,
    iterate_batches,
    split_train_eval,
    truncate_prompt,
    truncation_note,
)
from dpo.data import PreferencePair
from dpo.tokenizer import InstructionTokenizer

INST, RESP, PAD, EOC = 256, 257, 258, 259
X = IGNORE_INDEX


# ---- layout, masks, targets on hand-built examples -----------------------------------------
def test_hand_built_pair():
    # prompt "hi" -> [INST, h, i, RESP]; chosen "a" -> [a, EOC]; rejected "bc" -> [b, c, EOC]
    batch = collate([PreferencePair("hi", "a", "bc")], InstructionTokenizer(), max_len=16)
    h, i, a, b, c = 104, 105, 97, 98, 99
    np.testing.assert_array_equal(batch.input_ids, [[INST, h, i, RESP, a, EOC, PAD],
                                                    [INST, h, i, RESP, b, c, EOC]])
    np.testing.assert_array_equal(batch.attention_mask, [[1, 1, 1, 1, 1, 1, 0],
                                                         [1, 1, 1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(batch.targets, [[X, X, X, a, EOC, X, X],
                                                  [X, X, X, b, c, EOC, X]])
    np.testing.assert_array_equal(batch.loss_mask, [[0, 0, 0, 1, 1, 0, 0],
                                                    [0, 0, 0, 1, 1, 1, 0]])
    np.testing.assert_array_equal(batch.completion_lengths, [2, 3])
    np.testing.assert_array_equal(batch.prompt_lengths, [4, 4])
    assert batch.truncated == 0 and batch.batch_size == 1
    for array in (batch.input_ids, batch.attention_mask, batch.targets, batch.completion_lengths):
        assert array.dtype == np.int64


def test_chosen_rows_first_then_rejected_rows():
    examples = [([INST, 1, RESP], [10, EOC], [20, EOC]),
                ([INST, 2, RESP], [30, 31, EOC], [40, EOC])]
    batch = collate_token_ids(examples, max_len=8)
    np.testing.assert_array_equal(batch.input_ids, [[INST, 1, RESP, 10, EOC, PAD],
                                                    [INST, 2, RESP, 30, 31, EOC],
                                                    [INST, 1, RESP, 20, EOC, PAD],
                                                    [INST, 2, RESP, 40, EOC, PAD]])
    chosen, rejected = batch.chosen_rejected(batch.completion_lengths)
    np.testing.assert_array_equal(chosen, [2, 3])
    np.testing.assert_array_equal(rejected, [2, 2])


def test_width_is_the_longest_row_not_max_len():
    batch = collate_token_ids([([INST, 1, RESP], [2], [3, 4])], max_len=90)
    assert batch.input_ids.shape == (2, 5)


def test_empty_completion_has_no_targets_and_only_eoc_has_one():
    batch = collate_token_ids([([INST, 5, RESP], [], [EOC])], max_len=10)
    np.testing.assert_array_equal(batch.input_ids, [[INST, 5, RESP, PAD], [INST, 5, RESP, EOC]])
    np.testing.assert_array_equal(batch.targets, [[X, X, X, X], [X, X, EOC, X]])
    np.testing.assert_array_equal(batch.completion_lengths, [0, 1])
    # the empty completion's log-prob is the empty sum
    logp = np.log(np.full((2, 4, 260), 1 / 260))
    assert sequence_log_prob(logp, batch)[0] == 0.0


def sequence_log_prob(logp, batch):
    """Sum of logp[r, t, targets[r, t]] over scored positions (the way the training loop uses targets)."""
    safe = np.where(batch.loss_mask, batch.targets, 0)
    picked = np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    return (picked * batch.loss_mask).sum(axis=1)


def test_targets_score_each_completion_token_from_the_previous_position():
    rng = np.random.default_rng(0)
    examples = [([INST, 1, 2, RESP], [7, 8, EOC], [9, EOC]), ([INST, 3, RESP], [EOC], [4, 5, 6, EOC])]
    batch = collate_token_ids(examples, max_len=12)
    logp = rng.normal(size=(*batch.input_ids.shape, 260))
    got = sequence_log_prob(logp, batch)
    # by hand: row r = prompt + completion; token j of the completion is scored at position len(prompt) + j - 1
    rows = [(p, c) for p, c, _ in examples] + [(p, r) for p, _, r in examples]
    for r, (prompt, completion) in enumerate(rows):
        expected = sum(logp[r, len(prompt) + j - 1, token] for j, token in enumerate(completion))
        assert got[r] == pytest.approx(expected, abs=1e-12)


# ---- truncation ------------------------------------------------------------------------
def test_over_long_pair_keeps_completions_and_cuts_the_prompt_from_the_left():
    # prompt of 6 tokens, longest completion 3, max_len 7: the prompt keeps 4 = [INST] 3 4 [RESP]
    batch = collate_token_ids([([INST, 1, 2, 3, 4, RESP], [10, EOC], [11, 12, EOC])], max_len=7)
    np.testing.assert_array_equal(batch.input_ids, [[INST, 3, 4, RESP, 10, EOC, PAD],
                                                    [INST, 3, 4, RESP, 11, 12, EOC]])
    np.testing.assert_array_equal(batch.targets, [[X, X, X, 10, EOC, X, X],
                                                  [X, X, X, 11, 12, EOC, X]])
    np.testing.assert_array_equal(batch.prompt_lengths, [4, 4])
    assert batch.truncated == 1


def test_truncated_count_is_per_pair():
    examples = [([INST, 1, 2, 3, 4, RESP], [10, EOC], [11, EOC]),  # 6 + 2 > 7: cut
                ([INST, 1, RESP], [10, EOC], [11, EOC]),  # fits
                ([INST, 1, 2, 3, RESP], [10, 11, 12, EOC], [12, EOC])]  # 5 + 4 > 7 and > 8: cut
    assert collate_token_ids(examples, max_len=7).truncated == 2
    assert collate_token_ids(examples, max_len=8).truncated == 1
    assert collate_token_ids(examples, max_len=9).truncated == 0


def test_count_truncated_and_its_note_agree_with_collate():
    tok = InstructionTokenizer()
    pairs = [PreferencePair("one two three four", "yes", "no"),  # 20 prompt tokens + 4 > 12: cut
             PreferencePair("hi", "yes", "no"),  # 4 + 4: fits
             PreferencePair("a longer question here", "ok", "nope")]  # 24 + 5 > 12: cut
    assert count_truncated(pairs, tok, max_len=12) == sum(collate([p], tok, 12).truncated for p in pairs) == 2
    assert collate(pairs, tok, 12).truncated == 2
    assert truncation_note(pairs, tok, 12) == ("2 of 3 pairs do not fit in max_len 12: their completions are kept "
                                              "whole and their prompts cut from the left")
    assert count_truncated(pairs, tok, max_len=96) == 0 and truncation_note(pairs, tok, 96) is None
    with pytest.raises(ValueError, match="max_len"):
        count_truncated(pairs, tok, max_len=0)


def test_truncated_text_prompt_keeps_its_end_and_markers():
    tok = InstructionTokenizer()
    batch = collate([PreferencePair("one two three four", "yes", "no")], tok, max_len=12)
    # longest completion "yes" + EOC = 4 tokens, so the prompt keeps 8: [INST] + 6 last bytes + [RESP]
    assert tok.decode(batch.input_ids[0], skip_special=False) == "[INST]e four[RESP]yes[EOC]"
    assert tok.decode(batch.input_ids[1], skip_special=False) == "[INST]e four[RESP]no[EOC][PAD]"
    assert batch.truncated == 1


def test_truncate_prompt_rules():
    assert truncate_prompt([INST, 1, 2, 3, RESP], 5) == [INST, 1, 2, 3, RESP]
    assert truncate_prompt([INST, 1, 2, 3, RESP], 3) == [INST, 3, RESP]
    with pytest.raises(ValueError, match="room 2 is below the shortest prompt"):
        truncate_prompt([INST, 1, 2, 3, RESP], 2)


@st.composite
def preference_examples(draw):
    n = draw(st.integers(1, 4))
    byte_lists = st.lists(st.integers(0, 255), max_size=12)
    examples = []
    for _ in range(n):
        prompt = [INST, *draw(byte_lists), RESP]
        examples.append((prompt, draw(byte_lists) + [EOC], draw(byte_lists) + [EOC]))
    return examples, draw(st.integers(16, 40))


@settings(max_examples=80, deadline=None)
@given(preference_examples())
def test_batch_invariants(case):
    examples, max_len = case
    batch = collate_token_ids(examples, max_len)
    B = len(examples)
    rows = [(p, c) for p, c, _ in examples] + [(p, r) for p, _, r in examples]
    assert batch.input_ids.shape[0] == 2 * B and batch.input_ids.shape[1] <= max_len
    cut = 0
    for r, (prompt, completion) in enumerate(rows):
        _, chosen, rejected = examples[r % B]
        room = max_len - max(len(chosen), len(rejected))
        kept = prompt if len(prompt) <= room else [prompt[0], *prompt[len(prompt) - room + 1: -1], prompt[-1]]
        cut += r < B and len(kept) < len(prompt)
        n = len(kept) + len(completion)
        assert batch.input_ids[r, :n].tolist() == kept + completion  # the completion is kept whole
        assert (batch.input_ids[r, n:] == PAD).all()
        assert batch.attention_mask[r].tolist() == [1] * n + [0] * (batch.input_ids.shape[1] - n)
        assert batch.targets[r, len(kept) - 1: n - 1].tolist() == completion
        assert batch.loss_mask[r].sum() == batch.completion_lengths[r] == len(completion)
        assert batch.prompt_lengths[r] == len(kept)
    assert batch.truncated == cut


# ---- bad input to collate ------------------------------------------------------------
@pytest.mark.parametrize(
    "examples, max_len, match",
    [
        ([], 8, "no examples; a batch needs at least one pair"),
        ([([INST, 1, RESP], [2], [3])], 0, "max_len must be a positive int, got 0"),
        ([([INST, 1, RESP], [2], [3])], 4.0, "max_len must be a positive int, got 4.0"),
        ([([INST, 1, RESP], [2])], 8, r"example 0 must be \(prompt_ids, chosen_ids, rejected_ids\)"),
        ([([], [2], [3])], 8, "example 0 prompt is empty; it needs at least one token"),
        ([([INST, 1, RESP], [2, 300], [3])], 8, r"example 0 chosen has id 300 outside the vocabulary \[0, 260\)"),
        ([([INST, -1, RESP], [2], [3])], 8, "example 0 prompt has id -1 outside"),
        ([([INST, 1, RESP], [2.5], [3])], 8, "example 0 chosen must be a 1-D sequence of integer token ids"),
        ([([INST, 1, RESP], [2], [3] * 6 + [EOC])], 9,
         r"example 0 rejected leaves no room in max_len 9: 7 completion tokens .* \+ 3 .* = 10"),
    ],
)
def test_collate_rejects_bad_examples(examples, max_len, match):
    with pytest.raises(ValueError, match="collate: " + match):
        collate_token_ids(examples, max_len)


def test_collate_names_the_pair_source_and_rejects_non_pairs():
    pair = PreferencePair("q", "a" * 20, "b", source="prefs.jsonl:7")
    with pytest.raises(ValueError, match="collate: prefs.jsonl:7 chosen leaves no room in max_len 10"):
        collate([pair], InstructionTokenizer(), max_len=10)
    with pytest.raises(TypeError, match="collate: pair 0 must be a PreferencePair, got tuple"):
        collate([("q", "a", "b")])
    with pytest.raises(ValueError, match="2 names for 1 examples"):
        collate_token_ids([([INST, RESP], [1], [2])], 8, names=["a", "b"])


def test_batch_is_a_frozen_dataclass():
    batch = collate_token_ids([([INST, RESP], [1], [2])], 8)
    assert isinstance(batch, PreferenceBatch)
    with pytest.raises(AttributeError):
        batch.truncated = 3


# ---- train / eval split ----------------------------------------------------------------
def test_split_is_seeded_disjoint_complete_and_ordered():
    items = list(range(12))
    train, evals = split_train_eval(items, eval_fraction=0.25, seed=3)
    assert len(evals) == 3 and len(train) == 9
    assert sorted(train + evals) == items
    assert train == sorted(train) and evals == sorted(evals)
    assert split_train_eval(items, 0.25, seed=3) == (train, evals)
    assert any(split_train_eval(items, 0.25, seed=s)[1] != evals for s in range(4, 10))


@pytest.mark.parametrize(
    "n, fraction, n_eval",
    [(12, 0.0, 0), (12, 0.01, 1), (12, 0.5, 6), (3, 0.99, 2), (1, 0.5, 0), (10, 0.25, 2)],  # round(2.5) = 2
)
def test_split_sizes(n, fraction, n_eval):
    train, evals = split_train_eval(list(range(n)), fraction, seed=0)
    assert len(evals) == n_eval and len(train) == n - n_eval


@pytest.mark.parametrize(
    "pairs, kwargs, error, match",
    [
        ([], {}, ValueError, "no pairs to split"),
        ([1, 2], {"eval_fraction": 1.0}, ValueError, r"eval_fraction must be in \[0, 1\), got 1.0"),
        ([1, 2], {"eval_fraction": -0.1}, ValueError, r"eval_fraction must be in \[0, 1\), got -0.1"),
        ([1, 2], {"eval_fraction": float("nan")}, ValueError, r"eval_fraction must be in \[0, 1\), got nan"),
        ([1, 2], {"eval_fraction": "0.2"}, TypeError, "eval_fraction must be a number"),
        ([1, 2], {"seed": -1}, ValueError, "seed must be a non-negative int, got -1"),
        ([1, 2], {"seed": 1.5}, ValueError, "seed must be a non-negative int, got 1.5"),
    ],
)
def test_split_rejects_bad_arguments(pairs, kwargs, error, match):
    with pytest.raises(error, match="split_train_eval: " + match):
        split_train_eval(pairs, **kwargs)


# ---- seeded batch iteration ------------------------------------------------------------
def test_batches_cover_every_pair_once_and_keep_the_last_partial_batch():
    batches = list(iterate_batches(range(10), batch_size=4, seed=0))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(sum(batches, [])) == list(range(10))


def test_shuffling_is_reproducible_and_changes_with_epoch_and_seed():
    def order(seed, epoch):
        return sum(iterate_batches(range(20), 3, seed=seed, epoch=epoch), [])

    assert order(0, 0) == order(0, 0)
    assert order(0, 1) == order(0, 1)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)
    assert order(0, 0) != list(range(20))


def test_no_shuffle_keeps_the_order():
    assert list(iterate_batches("abcde", 2, shuffle=False)) == [["a", "b"], ["c", "d"], ["e"]]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive int, got 0"),
        ({"batch_size": 2.0}, ValueError, "batch_size must be a positive int, got 2.0"),
        ({"batch_size": 2, "seed": -3}, ValueError, "seed must be a non-negative int, got -3"),
        ({"batch_size": 2, "epoch": -1}, ValueError, "epoch must be a non-negative int, got -1"),
        ({"batch_size": 2, "shuffle": 1}, TypeError, "shuffle must be True or False, got 1"),
    ],
)
def test_iterate_batches_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match="iterate_batches: " + match):
        next(iterate_batches([1, 2, 3], **kwargs))


def test_iterate_batches_rejects_no_pairs():
    with pytest.raises(ValueError, match="iterate_batches: no pairs to batch"):
        next(iterate_batches([], 2))
