"""Preference triples (prompt, chosen, rejected): the built-in twelve and JSONL files.

    pairs = make_preferences()                        # the twelve built-in triples
    pairs = load_preferences("prefs.jsonl")           # your own, one JSON object per line
    for prompt, chosen, rejected in pairs: ...        # a PreferencePair unpacks like a triple

A JSONL row is either plain text

    {"prompt": "What is the capital of Spain?", "chosen": "Madrid.", "rejected": "Barcelona, I think."}

or conversational: `prompt` a list of {"role", "content"} messages and `chosen` /
`rejected` lists holding one assistant message (rendered with the INST / RESP
markers as the tokenizer's docstring shows):

    {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "2 + 3?"}],
     "chosen": [{"role": "assistant", "content": "5"}],
     "rejected": [{"role": "assistant", "content": "Maybe 6."}]}

Each field takes either form. Other keys are ignored. Blank lines are not rows:
they are skipped silently and do not count. Line numbers are the file's own
(1-based), so an error points at the line an editor shows.

Malformed input is a PreferenceDataError (a ValueError) with one line naming the
file, the line and the field:

    prefs.jsonl:7: field "chosen" must be a non-empty string or a list with one assistant message, got 42

namely: a line that is not UTF-8 or not JSON, a row that is not an object, a
missing or mistyped field, an empty chosen or rejected, chosen identical to
rejected, a malformed conversation (bad role, missing role or content, turns out
of order), and a completion that leaves no room in max_len even with the prompt
cut to its shortest (see `batching`). With `skip_invalid=True` such rows are
skipped instead, and listed on the result: `pairs.skipped` holds one
SkippedRow(line, field, reason) per skipped row. A missing file, a file with no
rows, and a file whose rows are all invalid are errors either way.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from .batching import room_problem
from .tokenizer import InstructionTokenizer, Message, as_message, conversation_problem, short_repr

FIELDS = ("prompt", "chosen", "rejected")
BUILTIN_FILE = "preferences.jsonl"


class PreferenceDataError(ValueError):
    """A malformed preference; str() is one line: 'SOURCE: field "FIELD" PROBLEM'."""

    def __init__(self, source: str, field: str | None, problem: str):
        self.source, self.field, self.problem = source, field, problem
        where = f'field "{field}" ' if field else ""
        super().__init__(f"{source}: {where}{problem}")


class SkippedRow(NamedTuple):
    """A row `load_preferences(..., skip_invalid=True)` left out: its line, the field at fault (or None), why."""

    line: int
    field: str | None
    reason: str


class PreferenceList(list):
    """The pairs of a file (a plain list of PreferencePair) plus `path` and `skipped`,
    the rows left out with skip_invalid=True (empty otherwise)."""

    def __init__(self, pairs=(), path: str = "", skipped: Sequence[SkippedRow] = ()):
        super().__init__(pairs)
        self.path = path
        self.skipped = tuple(skipped)


@dataclasses.dataclass(frozen=True)
class PreferencePair:
    """One preference: `chosen` is the better answer to `prompt` than `rejected`.

    prompt    a string, or a conversation: a tuple of Message(role, content) (a list
              of {"role", "content"} mappings is accepted and converted)
    chosen    non-empty string (a list holding one assistant message is accepted and converted)
    rejected  non-empty string, different from chosen (same conversions)
    source    where it came from, e.g. "prefs.jsonl:7", for error messages (not compared)
    """

    prompt: str | tuple[Message, ...]
    chosen: str
    rejected: str
    source: str = dataclasses.field(default="", compare=False)

    def __post_init__(self):
        if not isinstance(self.source, str):
            raise TypeError(f"PreferencePair: source must be a str, got {short_repr(self.source)}")
        object.__setattr__(self, "prompt", self._checked_prompt(self.prompt))
        for name in ("chosen", "rejected"):
            object.__setattr__(self, name, self._checked_completion(getattr(self, name), name))
        if self.chosen == self.rejected:
            self._fail("rejected", 'is identical to "chosen"; a preference needs two different completions')

    def __iter__(self):
        """Unpack as (prompt, chosen, rejected)."""
        return iter((self.prompt, self.chosen, self.rejected))

    @property
    def prompt_text(self) -> str:
        """The prompt for display: the string, or a conversation's last user message."""
        return self.prompt if isinstance(self.prompt, str) else self.prompt[-1].content

    def token_ids(self, tokenizer: InstructionTokenizer) -> tuple[list[int], list[int], list[int]]:
        """(prompt ids, chosen ids, rejected ids) with this tokenizer's markers."""
        if isinstance(self.prompt, str):
            prompt = tokenizer.encode_prompt(self.prompt)
        else:
            prompt = tokenizer.encode_conversation(self.prompt)
        return prompt, tokenizer.encode_completion(self.chosen), tokenizer.encode_completion(self.rejected)

    def check_fits(self, tokenizer: InstructionTokenizer, max_len: int) -> None:
        """Raise PreferenceDataError when chosen or rejected leaves no room in max_len."""
        prompt, *completions = self.token_ids(tokenizer)
        for name, ids in zip(("chosen", "rejected"), completions):
            problem = room_problem(len(prompt), len(ids), max_len)
            if problem is not None:
                self._fail(name, problem)

    # ---- validation ----------------------------------------------------------------
    def _fail(self, field, problem):
        raise PreferenceDataError(self.source or "PreferencePair", field, problem)

    def _checked_prompt(self, prompt):
        if isinstance(prompt, str):
            self._check_encodable(prompt, "prompt")
            return prompt
        if isinstance(prompt, (list, tuple)):
            problem = conversation_problem(prompt)
            if problem is not None:
                where, what = problem
                self._fail("prompt" + where, what)
            return tuple(as_message(m) for m in prompt)
        self._fail("prompt", f"must be a string or a list of messages, got {short_repr(prompt)}")

    def _checked_completion(self, value, name):
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                self._fail(name, f"must hold exactly one assistant message, got {len(value)} messages")
            item = value[0]
            if not isinstance(item, (Mapping, Message)):
                self._fail(f"{name}[0]", f'must be an object with "role" and "content", got {short_repr(item)}')
            for key in ("role", "content"):
                if isinstance(item, Mapping) and key not in item:
                    self._fail(f"{name}[0]", f'has no "{key}"')
            role, content = as_message(item)
            if role != "assistant":
                self._fail(f"{name}[0].role", f'must be "assistant", got {short_repr(role)}')
            name, value = f"{name}[0].content", content
            if not isinstance(value, str):
                self._fail(name, f"must be a string, got {short_repr(value)}")
        elif not isinstance(value, str):
            expected = "a non-empty string or a list with one assistant message"
            self._fail(name, f"must be {expected}, got {short_repr(value)}")
        if not value:
            self._fail(name, "is empty; a completion needs at least one character")
        self._check_encodable(value, name)
        return value

    def _check_encodable(self, text, name):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            self._fail(name, f"has no UTF-8 encoding: lone surrogate {text[err.start]!r} at index {err.start}")


def load_preferences(path, *, skip_invalid: bool = False, max_len: int = 96,
                     tokenizer: InstructionTokenizer | None = None) -> PreferenceList:
    """The preference pairs of a JSONL file (format and errors: see the module docstring).

    Every pair is checked to fit `max_len` tokens with `tokenizer` (default: an
    InstructionTokenizer with EOC). With `skip_invalid`, malformed rows are left
    out and listed in the result's `skipped`.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_preferences: path must be a str or a path, got {short_repr(path)}")
    if not isinstance(skip_invalid, bool):
        raise TypeError(f"load_preferences: skip_invalid must be True or False, got {skip_invalid!r}")
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len <= 0:
        raise ValueError(f"load_preferences: max_len must be a positive int, got {max_len!r}")
    tokenizer = InstructionTokenizer() if tokenizer is None else tokenizer
    if not isinstance(tokenizer, InstructionTokenizer):
        raise TypeError(f"load_preferences: tokenizer must be an InstructionTokenizer, got {type(tokenizer).__name__}")
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"load_preferences: no such file: {name}")
    if not os.path.isfile(name):
        raise IsADirectoryError(f"load_preferences: not a file: {name}")

    pairs, skipped, rows = [], [], 0
    with open(name, "rb") as file:
        for line_no, raw in enumerate(file, start=1):
            source = f"{name}:{line_no}"
            try:
                text = _decoded_line(raw, source, first=line_no == 1)
                if not text.strip():
                    continue
                rows += 1
                pair = _parse_row(text, source)
                pair.check_fits(tokenizer, max_len)
            except PreferenceDataError as err:
                if not skip_invalid:
                    raise
                skipped.append(SkippedRow(line_no, err.field, str(err)))
                continue
            pairs.append(pair)
    if rows == 0:
        raise PreferenceDataError(name, None, "has no preference rows (it is empty or blank)")
    if not pairs:
        raise PreferenceDataError(name, None, f"all {rows} rows are invalid; the first: {skipped[0].reason}")
    return PreferenceList(pairs, path=name, skipped=skipped)


def make_preferences() -> PreferenceList:
    """The twelve built-in triples (dpo/data/preferences.jsonl): capitals of France,
    Japan, Spain; compute 2 + 3, 7 * 6, 12 / 4; three colors, three vowels; define
    variable, function; Python: print 42, sort items. Chosen answers are short and
    precise, rejected ones wordy, hedging or wrong."""
    resource = importlib.resources.files(__package__).joinpath("data", BUILTIN_FILE)
    with importlib.resources.as_file(resource) as path:
        return load_preferences(path)


def _decoded_line(raw: bytes, source: str, first: bool) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PreferenceDataError(source, None, f"is not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                                                f"{err.start + 1})") from None
    return text.removeprefix("\ufeff") if first else text


def _parse_row(text: str, source: str) -> PreferencePair:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        raise PreferenceDataError(source, None, f"invalid JSON at column {err.colno}: {err.msg}") from None
    if not isinstance(row, dict):
        raise PreferenceDataError(source, None, f'a row must be a JSON object with "prompt", "chosen" and '
                                                f'"rejected", got {type(row).__name__}')
    for field in FIELDS:
        if field not in row:
            raise PreferenceDataError(source, field, "is missing")
    return PreferencePair(row["prompt"], row["chosen"], row["rejected"], source=source)
