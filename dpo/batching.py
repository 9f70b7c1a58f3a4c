"""Preference batches: collation, truncation, seeded shuffling, train/eval split.

A batch of B preference pairs goes through the model in ONE forward of 2B rows:
all B chosen rows first, then all B rejected rows (pair i: chosen at row i,
rejected at row B + i). Each row is prompt + completion, right-padded with PAD
to T, the longest row in the batch (not max_len, to save compute):

    row       [INST] h  i [RESP]  a  [EOC] [PAD]        input_ids
    mask        1    1  1   1     1    1     0          attention_mask
    targets   -100 -100 -100  a  [EOC] -100 -100        targets[t] = input_ids[t+1] if t+1 is a completion token

The logits at position t score token t + 1, so `targets` holds, at t, the next
token when that token belongs to the completion and IGNORE_INDEX (-100)
elsewhere: prompt and padding are masked out of the sequence log-prob
    log p(completion | prompt) = sum_t [targets[t] != -100] · log_softmax(logits[t])[targets[t]].
An empty completion (no tokens, e.g. "" with eoc=False) has no targets: its
log-prob is the empty sum, 0.

Truncation (per pair, so chosen and rejected keep the same prompt): when
prompt + the longer completion exceeds max_len, the completions are kept whole
and the prompt is cut from the left, keeping its first token ([INST]) and its
last token ([RESP], right before the completion):
    [INST] w o r d s [RESP] + 4-token completion, max_len 8  ->  [INST] d s [RESP] + completion
A pair needs room for its completion plus the shortest prompt, min(len(prompt),
3) tokens: [INST], one prompt token, [RESP]. A pair without that room is an
error (`load_preferences` reports it at load time, naming file, line and field).

TRL's truncation instead (a config with `max_length` set, e.g. DPOConfig(max_length=64)):
each row (prompt + chosen, prompt + rejected) longer than max_length is cut on its
own, as TRL's DataCollatorForPreference cuts it: `keep_start` keeps its first
max_length tokens (the end of the completion goes), `keep_end` its last (the start
of the prompt goes). Only completion tokens that remain are scored. max_length must
not exceed the model's context (max_len).
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from .tokenize import length_settings, truncated_ids
from .tokenizer import InstructionTokenizer, short_repr

IGNORE_INDEX = -100
SHORTEST_PROMPT = 3  # [INST], one prompt token, [RESP]


def shortest_prompt_length(prompt_length: int) -> int:
    """The fewest prompt tokens truncation may keep: [INST], one prompt token, [RESP]."""
    return min(prompt_length, SHORTEST_PROMPT)


def room_problem(prompt_length: int, completion_length: int, max_len: int) -> str | None:
    """Why a completion does not fit max_len even with the prompt cut to its shortest; None if it fits."""
    need = completion_length + shortest_prompt_length(prompt_length)
    if need <= max_len:
        return None
    return (
        f"leaves no room in max_len {max_len}: {completion_length} completion tokens (with end-of-completion) "
        f"+ {shortest_prompt_length(prompt_length)} for the shortest prompt ([INST], one prompt token, [RESP]) "
        f"= {need}"
    )


def truncate_prompt(prompt: list[int], room: int) -> list[int]:
    """`prompt` cut from the left to `room` tokens, keeping its first and last token."""
    if len(prompt) <= room:
        return list(prompt)
    if room < shortest_prompt_length(len(prompt)):
        raise ValueError(f"truncate_prompt: room {room} is below the shortest prompt ({SHORTEST_PROMPT} tokens)")
    return [prompt[0], *prompt[len(prompt) - room + 1 : -1], prompt[-1]]


@dataclasses.dataclass(frozen=True, eq=False)
class PreferenceBatch:
    """NumPy arrays for one forward of 2B rows (chosen rows 0..B-1, rejected rows B..2B-1).

    input_ids           (2B, T) int64, right-padded with PAD
    attention_mask      (2B, T) int64, 1 = token, 0 = padding
    targets             (2B, T) int64, next completion token or IGNORE_INDEX (-100)
    prompt_lengths      (2B,)   int64, prompt tokens kept (after truncation)
    completion_lengths  (2B,)   int64, completion tokens (EOC included) = targets scored per row
    truncated           number of pairs whose prompt was cut
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    targets: np.ndarray
    prompt_lengths: np.ndarray
    completion_lengths: np.ndarray
    truncated: int

    @property
    def batch_size(self) -> int:
        """B, the number of pairs (half the rows)."""
        return self.input_ids.shape[0] // 2

    @property
    def loss_mask(self) -> np.ndarray:
        """(2B, T) bool: True where targets scores a completion token."""
        return self.targets != IGNORE_INDEX

    def chosen_rejected(self, values):
        """(values[:B], values[B:]): split anything with 2B leading rows (arrays or backend tensors)."""
        return values[: self.batch_size], values[self.batch_size :]


def collate_token_ids(examples, max_len: int, names=None, pad_id: int = InstructionTokenizer.PAD,
                      vocab_size: int = InstructionTokenizer.vocab_size, max_length: int | None = None,
                      truncation_mode: str = "keep_start") -> PreferenceBatch:
    """A PreferenceBatch from (prompt_ids, chosen_ids, rejected_ids) triples of token ids.

    `names` (one per example, e.g. "data.jsonl:7") label errors; completions may
    be empty. See the module docstring for the layout and the truncation rules
    (`max_length` and `truncation_mode`: TRL's; else the prompt cut to fit max_len).
    """
    _check_positive_int(max_len, "max_len", "collate")
    if max_length is not None:
        return _collate_trl(examples, max_len, names, pad_id, vocab_size, max_length, truncation_mode)
    examples = list(examples)
    if not examples:
        raise ValueError("collate: no examples; a batch needs at least one pair")
    names = [f"example {i}" for i in range(len(examples))] if names is None else list(names)
    if len(names) != len(examples):
        raise ValueError(f"collate: {len(names)} names for {len(examples)} examples")
    prompts, completions, truncated = [], [], 0
    for name, example in zip(names, examples):
        if not isinstance(example, (tuple, list)) or len(example) != 3:
            raise ValueError(f"collate: {name} must be (prompt_ids, chosen_ids, rejected_ids), got {example!r}")
        prompt = _checked_ids(example[0], f"{name} prompt", vocab_size)
        chosen = _checked_ids(example[1], f"{name} chosen", vocab_size)
        rejected = _checked_ids(example[2], f"{name} rejected", vocab_size)
        if not prompt:
            raise ValueError(
                f"collate: {name} prompt is empty; it needs at least one token, since the first completion "
                "token is scored by the logits at the last prompt position"
            )
        longest = max(len(chosen), len(rejected))
        problem = room_problem(len(prompt), longest, max_len)
        if problem is not None:
            part = "chosen" if len(chosen) >= len(rejected) else "rejected"
            raise ValueError(f"collate: {name} {part} {problem}")
        kept = truncate_prompt(prompt, max_len - longest)
        truncated += len(kept) < len(prompt)
        prompts.append(kept)
        completions.append((chosen, rejected))
    rows = [(p, c[0]) for p, c in zip(prompts, completions)] + [(p, c[1]) for p, c in zip(prompts, completions)]
    T = max(len(p) + len(c) for p, c in rows)
    input_ids = np.full((len(rows), T), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), T), dtype=np.int64)
    targets = np.full((len(rows), T), IGNORE_INDEX, dtype=np.int64)
    for r, (prompt, completion) in enumerate(rows):
        n_p, n = len(prompt), len(prompt) + len(completion)
        input_ids[r, :n] = prompt + completion
        attention_mask[r, :n] = 1
        targets[r, n_p - 1 : n - 1] = completion  # logits at t score token t + 1
    return PreferenceBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        targets=targets,
        prompt_lengths=np.array([len(p) for p, _ in rows], dtype=np.int64),
        completion_lengths=np.array([len(c) for _, c in rows], dtype=np.int64),
        truncated=int(truncated),
    )


def _collate_trl(examples, max_len, names, pad_id, vocab_size, max_length, truncation_mode):
    """TRL's per-row truncation (module docstring), then the same layout as `collate_token_ids`."""
    _check_positive_int(max_length, "max_length", "collate")
    if truncation_mode not in ("keep_start", "keep_end"):
        raise ValueError(f"collate: truncation_mode must be 'keep_start' or 'keep_end', got {truncation_mode!r}")
    if max_length > max_len:
        raise ValueError(f"collate: max_length {max_length} exceeds the model's context max_len {max_len}")
    examples = list(examples)
    if not examples:
        raise ValueError("collate: no examples; a batch needs at least one pair")
    names = [f"example {i}" for i in range(len(examples))] if names is None else list(names)
    cut = slice(None, max_length) if truncation_mode == "keep_start" else slice(-max_length, None)
    halves, truncated = ([], []), 0
    for name, example in zip(names, examples):
        if not isinstance(example, (tuple, list)) or len(example) != 3:
            raise ValueError(f"collate: {name} must be (prompt_ids, chosen_ids, rejected_ids), got {example!r}")
        prompt = _checked_ids(example[0], f"{name} prompt", vocab_size)
        if not prompt:
            raise ValueError(f"collate: {name} prompt is empty; it needs at least one token")
        was_cut = False
        for half, part in zip(halves, ("chosen", "rejected")):
            completion = _checked_ids(example[1 if part == "chosen" else 2], f"{name} {part}", vocab_size)
            ids, scored = prompt + completion, [0] * len(prompt) + [1] * len(completion)
            was_cut |= len(ids) > max_length
            half.append((ids[cut], scored[cut]))
        truncated += was_cut
    rows = halves[0] + halves[1]
    T = max(len(ids) for ids, _ in rows)
    input_ids = np.full((len(rows), T), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), T), dtype=np.int64)
    targets = np.full((len(rows), T), IGNORE_INDEX, dtype=np.int64)
    for r, (ids, scored) in enumerate(rows):
        input_ids[r, :len(ids)] = ids
        attention_mask[r, :len(ids)] = 1
        for t in range(len(ids) - 1):  # logits at t score token t + 1 when it is a completion token
            if scored[t + 1]:
                targets[r, t] = ids[t + 1]
    return PreferenceBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        targets=targets,
        prompt_lengths=np.array([len(s) - sum(s) for _, s in rows], dtype=np.int64),
        completion_lengths=np.array([sum(s[1:]) for _, s in rows], dtype=np.int64),  # = targets scored per row
        truncated=int(truncated),
    )


def count_truncated(pairs, tokenizer=None, max_len: int = 96, config=None) -> int:
    """How many of `pairs` `collate` (or the length settings of `config`) will cut: by default
    those whose prompt and longer completion together exceed max_len; with config
    max_prompt_length / max_completion_length / max_length, those any of them shortens.
    A pair's cut does not depend on its batch."""
    _check_positive_int(max_len, "max_len", "count_truncated")
    tokenizer = InstructionTokenizer() if tokenizer is None else tokenizer
    max_length = length_settings(config)[0]
    limit = max_len if max_length is None else max_length
    total = 0
    for pair in pairs:
        full = pair.token_ids(tokenizer)
        prompt, chosen, rejected = truncated_ids(full, config)
        capped = (len(prompt), len(chosen), len(rejected)) != tuple(len(ids) for ids in full)
        total += capped or len(prompt) + max(len(chosen), len(rejected)) > limit
    return total


def truncation_note(pairs, tokenizer=None, max_len: int = 96, config=None) -> str | None:
    """A one-line report of the pairs that will be cut, or None when there are none."""
    pairs = list(pairs)
    count = count_truncated(pairs, tokenizer, max_len, config)
    if not count:
        return None
    max_length, max_prompt, max_completion, mode = length_settings(config)
    if max_length is None and max_prompt is None and max_completion is None:
        return (f"{count} of {len(pairs)} pairs do not fit in max_len {max_len}: their completions are kept whole "
                "and their prompts cut from the left")
    limits = [f"{name} {value}" for name, value in (("max_prompt_length", max_prompt),
              ("max_completion_length", max_completion), ("max_length", max_length)) if value is not None]
    return f"{count} of {len(pairs)} pairs truncated by {', '.join(limits)} (truncation_mode {mode})"


def collate(pairs, tokenizer=None, max_len: int = 96, config=None) -> PreferenceBatch:
    """A PreferenceBatch from PreferencePairs (anything with `token_ids(tokenizer, config)` and `source`),
    tokenized with `tokenizer` (default: the byte InstructionTokenizer) under the length settings
    of `config` (max_length, max_prompt_length, max_completion_length, truncation_mode; None: off)."""
    tokenizer = InstructionTokenizer() if tokenizer is None else tokenizer
    pairs = list(pairs)
    for i, pair in enumerate(pairs):
        if not callable(getattr(pair, "token_ids", None)):
            raise TypeError(f"collate: pair {i} must be a PreferencePair, got {type(pair).__name__}")
    names = [getattr(pair, "source", "") or f"pair {i}" for i, pair in enumerate(pairs)]
    max_length, _, _, mode = length_settings(config)
    examples = [pair.token_ids(tokenizer, config) for pair in pairs]
    return collate_token_ids(examples, max_len, names, tokenizer.pad_token_id, tokenizer.vocab_size,
                             max_length=max_length, truncation_mode=mode)


def split_train_eval(pairs, eval_fraction: float = 0.25, seed: int = 0) -> tuple[list, list]:
    """(train, eval): a seeded random held-out split, each in the original order.

    The eval split has round(eval_fraction · n) pairs, at least one when
    eval_fraction > 0, and always leaves at least one train pair; eval_fraction 0
    gives an empty eval split.
    """
    pairs = list(pairs)
    if not pairs:
        raise ValueError("split_train_eval: no pairs to split")
    if isinstance(eval_fraction, bool) or not isinstance(eval_fraction, numbers.Real):
        raise TypeError(f"split_train_eval: eval_fraction must be a number in [0, 1), got {eval_fraction!r}")
    if not (0.0 <= eval_fraction < 1.0):  # also rejects NaN
        raise ValueError(f"split_train_eval: eval_fraction must be in [0, 1), got {eval_fraction!r}")
    _check_seed(seed, "seed", "split_train_eval")
    n = len(pairs)
    n_eval = 0 if eval_fraction == 0 else min(n - 1, max(1, round(eval_fraction * n)))
    held_out = set(np.random.default_rng(seed).permutation(n)[:n_eval].tolist())
    train = [p for i, p in enumerate(pairs) if i not in held_out]
    evals = [p for i, p in enumerate(pairs) if i in held_out]
    return train, evals


def iterate_batches(pairs, batch_size: int, seed: int = 0, shuffle: bool = True, epoch: int = 0):
    """Yield lists of up to `batch_size` pairs covering `pairs` once (the last batch may be smaller).

    With `shuffle`, the order is a permutation drawn from (seed, epoch): the same
    seed and epoch give the same order, another epoch another order.
    """
    pairs = list(pairs)
    if not pairs:
        raise ValueError("iterate_batches: no pairs to batch")
    _check_positive_int(batch_size, "batch_size", "iterate_batches")
    _check_seed(seed, "seed", "iterate_batches")
    _check_seed(epoch, "epoch", "iterate_batches")
    if not isinstance(shuffle, bool):
        raise TypeError(f"iterate_batches: shuffle must be True or False, got {shuffle!r}")
    order = np.random.default_rng([seed, epoch]).permutation(len(pairs)) if shuffle else np.arange(len(pairs))
    for start in range(0, len(pairs), batch_size):
        yield [pairs[i] for i in order[start : start + batch_size]]


def _checked_ids(ids, where, vocab_size=InstructionTokenizer.vocab_size) -> list[int]:
    array = np.asarray(ids)
    if array.size == 0:
        return []
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError(f"collate: {where} must be a 1-D sequence of integer token ids, got {short_repr(ids)}")
    bad = array[(array < 0) | (array >= vocab_size)]
    if bad.size:
        raise ValueError(f"collate: {where} has id {bad[0]} outside the vocabulary [0, {vocab_size})")
    return array.tolist()


def _check_positive_int(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")


def _check_seed(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{where}: {name} must be a non-negative int, got {value!r}")
