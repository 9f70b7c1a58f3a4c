"""Preference file formats: which layout a row is in, and the (prompt, chosen, rejected) it holds.

Files: JSONL (one object per line), a JSON array of objects (`.json`), and Parquet
(`.parquet`, when pyarrow is installed). A row's place is `file:LINE` (JSONL: the
line; JSON array: the line its object starts on) or `file:row N` (Parquet, 1-based).

Row formats, with TRL's names:

    standard        {"prompt": "2 + 3?", "chosen": "5", "rejected": "6"}
    conversational  {"prompt": [{"role": "user", "content": "2 + 3?"}],
                     "chosen": [{"role": "assistant", "content": "5"}], "rejected": [...]}
    implicit prompt {"chosen": "Q: 2 + 3? A: 5", "rejected": "Q: 2 + 3? A: 6"}   (text or conversations)
    hh-rlhf         {"chosen": "\\n\\nHuman: 2 + 3?\\n\\nAssistant: 5",
                     "rejected": "\\n\\nHuman: 2 + 3?\\n\\nAssistant: 6"}
    ultrafeedback   {"prompt": "2 + 3?", "chosen": [user, assistant, ...], "rejected": [user, assistant, ...],
                     "messages": [...], "score_chosen": 8.0, "prompt_id": "..."}

An implicit prompt is the shared start of chosen and rejected, as TRL's
`extract_prompt` takes it: the longest common prefix of characters (text) or of
messages (conversations), less a trailing space for text; when one is a prefix of
the other, the prefix stops one item short, as in TRL. HH-RLHF text is first
split into turns ("Human" -> user, "Assistant" -> assistant, contents stripped), then
treated as an implicit conversational row. UltraFeedback rows (a text prompt with
chosen / rejected holding whole conversations) take the prompt from the conversations,
as TRL's `maybe_extract_prompt` does; the `prompt` string is not used. Other keys are ignored.

Two layouts TRL leaves undefined (its `is_conversational` looks at whichever key a set
yields first) are read this way: a conversation prompt with text completions is
conversational (each completion one assistant message); a text prompt with completions
that are one assistant message each is standard (the message's text).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

from .hf_extra import MissingExtraError

HH_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}


class RowError(ValueError):
    """What is wrong with one row: `field` (or None) and `problem`; the loader adds file and line."""

    def __init__(self, field, problem):
        self.field, self.problem = field, problem
        super().__init__(f'field "{field}" {problem}' if field else problem)


# ---- reading files ------------------------------------------------------------------------
def read_rows(path):
    """Yield (place, line, text_or_row) for each row of the file: JSONL gives the raw
    line text (decoded by the caller's rules), JSON arrays and Parquet give parsed rows.
    `place` is "LINE" or "row N", `line` the line number (None for Parquet)."""
    name = os.fspath(path)
    suffix = os.path.splitext(name)[1].lower()
    if suffix == ".parquet":
        yield from _parquet_rows(name)
    elif suffix == ".json" and _starts_with_array(name):
        yield from _json_array_rows(name)
    else:
        with open(name, "rb") as file:
            for line_no, raw in enumerate(file, start=1):
                yield str(line_no), line_no, raw


def _starts_with_array(name):
    with open(name, "rb") as file:
        head = file.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"[")


class FileFormatError(ValueError):
    """A file (or the place in it) that cannot be read as preference rows: `source`, `problem`."""

    def __init__(self, source, problem):
        self.source, self.problem = source, problem
        super().__init__(f"{source}: {problem}")


def _json_array_rows(name):
    try:
        with open(name, encoding="utf-8-sig") as file:
            text = file.read()
    except UnicodeDecodeError as error:
        raise FileFormatError(name, f"is not valid UTF-8 (byte 0x{error.object[error.start]:02x} at offset "
                                    f"{error.start})") from None
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    spaces = re.compile(r"\s*")

    def line_at(i):
        return text.count("\n", 0, i) + 1

    pos = spaces.match(text, pos).end()
    if text.startswith("]", pos):
        pos = spaces.match(text, pos + 1).end()
        if pos != len(text):
            raise FileFormatError(f"{name}:{line_at(pos)}", "unexpected text after the JSON array")
        return
    while True:
        line = line_at(pos)
        try:
            row, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            raise FileFormatError(f"{name}:{error.lineno}",
                                  f"invalid JSON at column {error.colno}: {error.msg}") from None
        yield str(line), line, row
        pos = spaces.match(text, pos).end()
        if text.startswith(",", pos):
            pos = spaces.match(text, pos + 1).end()
            continue
        if text.startswith("]", pos):
            pos = spaces.match(text, pos + 1).end()
            if pos != len(text):
                raise FileFormatError(f"{name}:{line_at(pos)}", "unexpected text after the JSON array")
            return
        raise FileFormatError(f"{name}:{line_at(pos)}", "invalid JSON array: expected ',' or ']' after a row")


def _parquet_rows(name):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtraError(f"{name}: reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        rows = pq.read_table(name).to_pylist()
    except Exception as error:  # pyarrow raises ArrowInvalid and friends for a file that is not Parquet
        raise FileFormatError(name, f"cannot be read as Parquet: {error}") from None
    for i, row in enumerate(rows, start=1):
        yield f"row {i}", None, row


# ---- recognising a row's format -------------------------------------------------------------
def is_messages(value) -> bool:
    """TRL's test for a conversation: a non-empty list whose first item is an object with "role"."""
    return isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], Mapping) and "role" in value[0]


def looks_like_hh(text) -> bool:
    return isinstance(text, str) and text.lstrip(" ").startswith("\n\nHuman:") and "\n\nAssistant:" in text


def hh_messages(text: str) -> list[dict]:
    """Anthropic HH-RLHF text as messages: "\\n\\nHuman: q\\n\\nAssistant: a" -> [user q, assistant a]."""
    parts = HH_TURN.split(text.lstrip(" "))
    return [{"role": HH_ROLES[role], "content": content.strip()} for role, content in zip(parts[1::2], parts[2::2])]


def extract_prompt(chosen, rejected):
    """(prompt, chosen, rejected) with the shared start of chosen and rejected as the prompt:
    TRL's `extract_prompt` semantics (see the module docstring)."""
    n = min(len(chosen), len(rejected))
    if n == 0:
        return chosen[:0], chosen, rejected
    idx = 0
    for idx in range(n):
        if chosen[idx] != rejected[idx]:
            # the space before the answer belongs to it; at idx 0 TRL would index chosen[-1], a deliberate
            # difference: no shared start is no prompt
            if idx > 0 and chosen[idx - 1] == " ":
                idx -= 1
            break
    return chosen[:idx], chosen[idx:], rejected[idx:]


def _hint(row: Mapping) -> str:
    """Which known format a row with missing fields looks like, as a parenthesised note."""
    keys = set(row)
    if {"completion", "label"} <= keys:
        return (' (looks like an unpaired preference row: prompt/completion/label, as for KTO; DPO needs "chosen" '
                'and "rejected")')
    if "completion" in keys:
        return ' (looks like a prompt-completion row for SFT; DPO needs "chosen" and "rejected")'
    if "messages" in keys or "score_chosen" in keys or "prompt_id" in keys:
        return " (looks like UltraFeedback-binarized: prompt, and chosen / rejected conversations)"
    if any(looks_like_hh(row.get(k)) for k in ("chosen", "rejected")):
        return ' (looks like Anthropic HH-RLHF: "chosen" and "rejected" text with Human/Assistant turns)'
    if "prompt" in keys:
        kind = "conversational" if is_messages(row["prompt"]) else "standard"
        return f" (looks like the {kind} format: prompt/chosen/rejected)"
    if keys & {"chosen", "rejected"}:
        return " (looks like the implicit-prompt format: chosen/rejected only)"
    return f"; a row needs \"chosen\" and \"rejected\", and usually \"prompt\"; found {sorted(keys) or 'no keys'}"


def normalize_row(row) -> tuple[str, object, object, object]:
    """(format, prompt, chosen, rejected) of a row in any known format (module docstring);
    raises RowError naming the field and, for a missing one, the format the row looks like."""
    if not isinstance(row, Mapping):
        raise RowError(None, f'a row must be a JSON object with "prompt", "chosen" and "rejected", got '
                             f"{type(row).__name__}")
    for field in ("chosen", "rejected"):
        if field not in row:
            raise RowError(field, "is missing" + _hint(row))
    chosen, rejected = row["chosen"], row["rejected"]
    if "prompt" not in row:
        if looks_like_hh(chosen) and looks_like_hh(rejected):
            fmt, chosen, rejected = "hh-rlhf", hh_messages(chosen), hh_messages(rejected)
        elif isinstance(chosen, str) and isinstance(rejected, str):
            fmt = "implicit prompt"
        elif is_messages(chosen) and is_messages(rejected):
            fmt, chosen, rejected = "implicit prompt (conversational)", list(chosen), list(rejected)
        else:
            raise RowError("prompt", "is missing, and chosen / rejected are not both text or both conversations "
                                     "to take a shared prompt from (implicit-prompt format)")
        prompt, chosen, rejected = extract_prompt(chosen, rejected)
        if not prompt:
            raise RowError("prompt", f"is missing and cannot be implied: chosen and rejected share no common start "
                                     f"to take as the prompt ({fmt} format)")
        return fmt, prompt, chosen, rejected
    prompt = row["prompt"]
    if isinstance(prompt, str) and _full_conversation(chosen) and _full_conversation(rejected):
        prompt, chosen, rejected = extract_prompt(list(chosen), list(rejected))
        if not prompt:
            raise RowError("chosen", "and \"rejected\" share no opening turns to take as the prompt "
                                     "(UltraFeedback-binarized format: whole conversations)")
        return "ultrafeedback", prompt, chosen, rejected
    return ("conversational" if is_messages(prompt) else "standard"), prompt, chosen, rejected


def _full_conversation(value) -> bool:
    """A conversation that holds its own prompt: a list of messages with a user turn in it."""
    return is_messages(value) and any(isinstance(m, Mapping) and m.get("role") == "user" for m in value)


def read_messages(value: str) -> list[dict]:
    """A conversation prompt from a JSON text or a file holding one (`generate --messages`): a list of
    {"role", "content"} messages ending with a user turn. Raises ValueError with one line saying what is wrong."""
    from .tokenizer import conversation_problem

    text, where = value, "--messages"
    if not value.lstrip().startswith(("[", "{")):
        if not os.path.isfile(value):
            raise ValueError(f"--messages: {value!r} is neither JSON nor a file")
        where = value
        with open(value, encoding="utf-8-sig") as file:
            text = file.read()
    try:
        messages = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    if isinstance(messages, Mapping) and "messages" in messages:
        messages = messages["messages"]
    problem = conversation_problem(messages)
    if problem is not None:
        raise ValueError(f"{where}: messages{problem[0]} {problem[1]}")
    return [dict(m) for m in messages]
