"""Preference triples (prompt, chosen, rejected): the built-in twelve and your files.

    pairs = make_preferences()                        # the twelve built-in triples
    pairs = load_preferences("prefs.jsonl")           # JSONL, a JSON array (.json) or Parquet (.parquet)
    for prompt, chosen, rejected in pairs: ...        # a PreferencePair unpacks like a triple

A row may be in any of TRL's preference formats or the public layouts (standard,
conversational, implicit prompt, Anthropic HH-RLHF, UltraFeedback-binarized: see
`dpo.formats`); `pairs.formats` counts the rows of each. The two basic ones: plain text

    {"prompt": "What is the capital of Spain?", "chosen": "Madrid.", "rejected": "Barcelona, I think."}

or conversational: `prompt` a list of {"role", "content"} messages and `chosen` /
`rejected` lists holding one assistant message (rendered with the tokenizer's chat
template; the byte tokenizer's INST / RESP markers as its docstring shows):

    {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "2 + 3?"}],
     "chosen": [{"role": "assistant", "content": "5"}],
     "rejected": [{"role": "assistant", "content": "Maybe 6."}]}

Each field takes either form. Other keys are ignored. Blank lines are not rows:
they are skipped silently and do not count. Line numbers are the file's own
(1-based), so an error points at the line an editor shows (JSON arrays: the line a
row's object starts on; Parquet: "row N").

Malformed input is a PreferenceDataError (a ValueError) with one line naming the
file, the line and the field, and for a missing field the format the row looks like:

    prefs.jsonl:7: field "chosen" must be a non-empty string or a list with one assistant message, got 42
    prefs.jsonl:8: field "rejected" is missing (looks like the standard format: prompt/chosen/rejected)

namely: a line that is not UTF-8 or not JSON, a row that is not an object, a
missing or mistyped field, an empty chosen or rejected, chosen identical to
rejected, a malformed conversation (bad role, missing role or content, turns out
of order), an implicit prompt that chosen and rejected do not share, and a row
that cannot be used at the length settings: a completion that leaves no room in
max_len even with the prompt cut to its shortest (see `batching`), or, with
max_length and keep_start, a prompt that fills max_length alone. With
`skip_invalid=True` such rows are skipped instead, and listed on the result:
`pairs.skipped` holds one SkippedRow(line, field, reason) per skipped row. A
missing file, a file with no rows, and a file whose rows are all invalid are
errors either way.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from . import formats
from .batching import room_problem
from .tokenize import length_settings, truncated_ids, untruncated_ids
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
    the rows left out with skip_invalid=True (empty otherwise), and `formats`: rows read per format."""

    def __init__(self, pairs=(), path: str = "", skipped: Sequence[SkippedRow] = (), formats=None):
        super().__init__(pairs)
        self.path = path
        self.skipped = tuple(skipped)
        self.formats = dict(formats or {})


@dataclasses.dataclass(frozen=True)
class PreferencePair:
    """One preference: `chosen` is the better answer to `prompt` than `rejected`.

    prompt    a string, or a conversation: a tuple of Message(role, content) (a list
              of {"role", "content"} mappings is accepted and converted)
    chosen    non-empty string (a list holding one assistant message is accepted and converted);
              after a conversation prompt, also several turns: a tuple of Messages starting and
              ending with an assistant turn, alternating (e.g. from multi-turn UltraFeedback rows)
    rejected  the same, different from chosen
    source    where it came from, e.g. "prefs.jsonl:7", for error messages (not compared)
    """

    prompt: str | tuple[Message, ...]
    chosen: str | tuple[Message, ...]
    rejected: str | tuple[Message, ...]
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
        if isinstance(self.prompt, str):
            return self.prompt
        return next((m.content for m in reversed(self.prompt) if m.role == "user"), self.prompt[-1].content)

    @property
    def conversational(self) -> bool:
        """Whether the prompt is a conversation (rendered with the chat template)."""
        return not isinstance(self.prompt, str)

    def as_row(self) -> dict:
        """The pair as a JSON-ready row in TRL's standard or conversational format."""
        def plain(value):
            return value if isinstance(value, str) else [m._asdict() for m in value]

        if self.conversational:
            return {k: [{"role": "assistant", "content": v}] if isinstance(v, str) and k != "prompt" else plain(v)
                    for k, v in (("prompt", self.prompt), ("chosen", self.chosen), ("rejected", self.rejected))}
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}

    def token_ids(self, tokenizer=None, config=None) -> tuple[list[int], list[int], list[int]]:
        """(prompt ids, chosen ids, rejected ids) by TRL's rule (`dpo.tokenize`), with the
        max_prompt_length / max_completion_length of `config` applied (default tokenizer: bytes)."""
        tokenizer = InstructionTokenizer() if tokenizer is None else tokenizer
        cache = self.__dict__.setdefault("_ids", {})
        key = (id(tokenizer), tokenizer.fingerprint())
        if key not in cache:
            cache.clear()
            cache[key] = untruncated_ids(self, tokenizer)
        return truncated_ids(cache[key], config)

    def check_fits(self, tokenizer, max_len: int, config=None) -> None:
        """Raise PreferenceDataError when the pair cannot be used: chosen or rejected leaves no
        room in max_len (the model's context; no config max_length), or, with config.max_length
        and truncation_mode keep_start, the prompt alone fills max_length (TRL drops such rows)."""
        prompt, *completions = self.token_ids(tokenizer, config)
        max_length, _, _, mode = length_settings(config)
        if max_length is not None:
            if mode == "keep_start" and len(prompt) >= max_length:
                self._fail("prompt", f"fills max_length {max_length} on its own ({len(prompt)} tokens), leaving "
                                     "no completion token to train on (truncation_mode keep_start)")
            return
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
        if isinstance(value, (list, tuple)) and len(value) > 1:
            return self._checked_turns(value, name)
        if isinstance(value, (list, tuple)):
            if not value:
                self._fail(name, "must hold at least one assistant message, got 0 messages")
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

    def _checked_turns(self, value, name):
        """A completion of several turns: assistant first and last, alternating with user turns."""
        if isinstance(self.prompt, str):
            self._fail(name, f"holds {len(value)} messages; a completion of several turns needs a conversation "
                             "prompt (a list of messages)")
        for i, item in enumerate(value):
            if not isinstance(item, (Mapping, Message)):
                self._fail(f"{name}[{i}]", f'must be an object with "role" and "content", got {short_repr(item)}')
            for key in ("role", "content"):
                if isinstance(item, Mapping) and key not in item:
                    self._fail(f"{name}[{i}]", f'has no "{key}"')
            role, content = as_message(item)
            expected = "assistant" if i % 2 == 0 else "user"
            if role != expected:
                self._fail(f"{name}[{i}].role", f'must be "{expected}", got {short_repr(role)} (a completion\'s '
                                                 "turns alternate, starting with the assistant)")
            if not isinstance(content, str):
                self._fail(f"{name}[{i}].content", f"must be a string, got {short_repr(content)}")
            self._check_encodable(content, f"{name}[{i}].content")
        if len(value) % 2 == 0:
            self._fail(f"{name}[{len(value) - 1}].role", 'must be "assistant": a completion ends with the '
                                                         "assistant's turn")
        return tuple(as_message(m) for m in value)

    def _check_encodable(self, text, name):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            self._fail(name, f"has no UTF-8 encoding: lone surrogate {text[err.start]!r} at index {err.start}")


def load_preferences(path, *, skip_invalid: bool = False, max_len: int = 96, tokenizer=None,
                     config=None) -> PreferenceList:
    """The preference pairs of a JSONL, JSON-array or Parquet file (formats: `dpo.formats`;
    errors: the module docstring).

    Every pair is tokenized with `tokenizer` (default: the byte InstructionTokenizer) and
    checked to be usable: with `config.max_length` set, by TRL's length rules (see
    `PreferencePair.check_fits`), else to fit `max_len` tokens. With `skip_invalid`,
    malformed rows are left out and listed in the result's `skipped`; `formats` counts
    the rows of each format read.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_preferences: path must be a str or a path, got {short_repr(path)}")
    if not isinstance(skip_invalid, bool):
        raise TypeError(f"load_preferences: skip_invalid must be True or False, got {skip_invalid!r}")
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len <= 0:
        raise ValueError(f"load_preferences: max_len must be a positive int, got {max_len!r}")
    tokenizer = InstructionTokenizer() if tokenizer is None else tokenizer
    if not all(callable(getattr(tokenizer, name, None)) for name in ("render_text", "render_chat", "fingerprint")):
        raise TypeError(f"load_preferences: tokenizer must be an InstructionTokenizer or an HFTokenizer "
                        f"(dpo.load_tokenizer), got {type(tokenizer).__name__}")
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"load_preferences: no such file: {name}")
    if not os.path.isfile(name):
        raise IsADirectoryError(f"load_preferences: not a file: {name}")

    pairs, skipped, rows, counts = [], [], 0, {}
    try:
        for place, line_no, raw in formats.read_rows(name):
            source = f"{name}:{place}"
            try:
                if isinstance(raw, bytes):
                    text = _decoded_line(raw, source, first=line_no == 1)
                    if not text.strip():
                        continue
                    rows += 1
                    row = _parsed_line(text, source)
                else:
                    rows += 1
                    row = raw
                fmt, pair = _pair_and_format(row, source)
                pair.check_fits(tokenizer, max_len, config)
            except PreferenceDataError as err:
                if not skip_invalid:
                    raise
                skipped.append(SkippedRow(line_no or rows, err.field, str(err)))
                continue
            counts[fmt] = counts.get(fmt, 0) + 1
            pairs.append(pair)
    except formats.FileFormatError as err:
        raise PreferenceDataError(err.source, None, err.problem) from None
    if rows == 0:
        raise PreferenceDataError(name, None, "has no preference rows (it is empty or blank)")
    if not pairs:
        raise PreferenceDataError(name, None, f"all {rows} rows are invalid; the first: {skipped[0].reason}")
    return PreferenceList(pairs, path=name, skipped=skipped, formats=counts)


def pair_from_row(row, source: str = "row") -> PreferencePair:
    """A PreferencePair from a row in any format of `dpo.formats`; errors name `source` and the field."""
    return _pair_and_format(row, source)[1]


def _pair_and_format(row, source):
    try:
        fmt, prompt, chosen, rejected = formats.normalize_row(row)
    except formats.RowError as err:
        raise PreferenceDataError(source, err.field, err.problem) from None
    try:
        return fmt, PreferencePair(prompt, chosen, rejected, source=source)
    except PreferenceDataError as err:
        if fmt in ("standard", "conversational"):
            raise
        raise PreferenceDataError(source, err.field, f"{err.problem} (read as the {fmt} format)") from None


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


def _parsed_line(text: str, source: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise PreferenceDataError(source, None, f"invalid JSON at column {err.colno}: {err.msg}") from None
