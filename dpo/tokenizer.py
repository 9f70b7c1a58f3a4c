"""Byte-level instruction tokenizer: UTF-8 bytes plus four special tokens.

    ids 0..255  the bytes of the UTF-8 encoding of the text
    256  INST   opens a user turn (the prompt)
    257  RESP   closes the prompt: the model's answer starts after it
    258  PAD    right padding in a batch (never a target)
    259  EOC    end of completion: generation stops when the model emits it

    tok = InstructionTokenizer()
    tok.encode_prompt("2 + 3?")       # [256, 50, 32, 43, 32, 51, 63, 257]
    tok.encode_completion("5")        # [53, 259]
    tok.decode([256, 53, 259])        # "5"   (special tokens skipped)
    tok.decode([256, 53, 259], skip_special=False)   # "[INST]5[EOC]"

A conversation (a list of {"role", "content"} messages, roles "system", "user",
"assistant") renders with the same markers: each user turn as `[INST] text
[RESP]`, each earlier assistant turn exactly like a completion (its bytes, then
EOC unless turned off), and a system message joined to the first user turn with
a blank line ("system\\n\\nuser"). The turns run: an optional system message,
then user, assistant, user, ..., ending with a user turn, whose answer is the
completion. For example

    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello!"},
     {"role": "user", "content": "Capital of Spain?"}]
    -> [INST] "Be brief.\\n\\nHi" [RESP] "Hello!" [EOC] [INST] "Capital of Spain?" [RESP]

Decoding is tolerant: special tokens split the byte stream, each run of bytes is
decoded on its own with errors="replace", so a broken or cut-off multi-byte
character (say, generation stopped half way through "é") becomes one U+FFFD
"\uFFFD" instead of an exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

ROLES = ("system", "user", "assistant")


class Message(NamedTuple):
    """One turn of a conversation."""

    role: str
    content: str


class InstructionTokenizer:
    """Byte-level UTF-8 tokenizer with INST / RESP / PAD / EOC markers (vocabulary 260).

    `add_eoc` (default True) is whether completions end with the EOC token;
    `encode_completion(text, eoc=...)` overrides it for one call.
    """

    INST = 256
    RESP = 257
    PAD = 258
    EOC = 259
    vocab_size = 260
    MARKERS = {INST: "[INST]", RESP: "[RESP]", PAD: "[PAD]", EOC: "[EOC]"}

    def __init__(self, add_eoc: bool = True):
        if not isinstance(add_eoc, bool):
            raise TypeError(f"InstructionTokenizer: add_eoc must be True or False, got {add_eoc!r}")
        self.add_eoc = add_eoc

    def __repr__(self):
        return f"InstructionTokenizer(add_eoc={self.add_eoc})"

    # ---- encoding ------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        """The UTF-8 bytes of `text` as ids 0..255, no markers."""
        return list(_utf8(text, "InstructionTokenizer.encode_text"))

    def encode_prompt(self, text: str) -> list[int]:
        """[INST] + bytes(text) + [RESP]."""
        return [self.INST, *_utf8(text, "InstructionTokenizer.encode_prompt"), self.RESP]

    def encode_completion(self, text: str, eoc: bool | None = None) -> list[int]:
        """bytes(text) + [EOC]; without EOC when `eoc` is False (None: this tokenizer's `add_eoc`)."""
        if eoc is None:
            eoc = self.add_eoc
        if not isinstance(eoc, bool):
            raise TypeError(f"InstructionTokenizer.encode_completion: eoc must be True, False or None, got {eoc!r}")
        ids = list(_utf8(text, "InstructionTokenizer.encode_completion"))
        return ids + [self.EOC] if eoc else ids

    def encode_conversation(self, messages) -> list[int]:
        """A conversation rendered as a prompt (see the module docstring for the layout)."""
        problem = conversation_problem(messages)
        if problem is not None:
            where, what = problem
            raise ValueError(f"InstructionTokenizer.encode_conversation: messages{where} {what}")
        turns = [as_message(m) for m in messages]
        system = ""
        if turns[0].role == "system":
            system, turns = turns[0].content, turns[1:]
        ids = []
        for i, turn in enumerate(turns):
            if turn.role == "user":
                text = f"{system}\n\n{turn.content}" if i == 0 and system else turn.content
                ids += self.encode_prompt(text)
            else:
                ids += self.encode_completion(turn.content)
        return ids

    # ---- the interface shared with HFTokenizer (dpo.hf_tokenizer) ------------------------
    pad_token_id = PAD
    eos_token_id = EOC
    bos_token_id = None
    has_chat_template = True  # its conversation rendering

    def encode(self, text: str) -> list[int]:
        """The UTF-8 bytes of `text` (no markers): `encode_text`."""
        return self.encode_text(text)

    def render_text(self, prompt: str, completion: str | None = None) -> list[int]:
        """A plain-text prompt as one user turn, [INST] prompt [RESP], then the completion's bytes and EOC."""
        ids = self.encode_prompt(prompt)
        return ids if completion is None else ids + self.encode_completion(completion)

    def render_chat(self, messages, add_generation_prompt: bool = False) -> list[int]:
        """Any run of messages with this tokenizer's markers: each user turn [INST] text [RESP] (a
        leading system message joined to the first user turn), each assistant turn its bytes and
        EOC. [RESP] already opens the answer, so `add_generation_prompt` adds nothing."""
        turns = [as_message(m) for m in messages]
        system = ""
        if turns and turns[0].role == "system":
            system, turns = turns[0].content, turns[1:]
        ids, first_user = [], True
        for turn in turns:
            if turn.role == "user":
                text = f"{system}\n\n{turn.content}" if first_user and system else turn.content
                ids += self.encode_prompt(text)
                first_user = False
            elif turn.role == "assistant":
                ids += self.encode_completion(turn.content)
            else:
                raise ValueError(f"InstructionTokenizer.render_chat: a {turn.role!r} message may only come first")
        return ids

    def apply_chat_template(self, messages, add_generation_prompt: bool = False, tokenize: bool = True):
        """`render_chat` (the byte tokenizer's conversation rendering); only tokenize=True."""
        if not tokenize:
            raise ValueError("InstructionTokenizer.apply_chat_template: only tokenize=True (ids) is available")
        return self.render_chat(messages, add_generation_prompt)

    def fingerprint(self) -> str:
        return repr(self)

    # ---- decoding ------------------------------------------------------------------
    def decode(self, ids, skip_special: bool = True) -> str:
        """Text of `ids`. Special tokens are dropped (`skip_special=True`) or shown as
        [INST], [RESP], [PAD], [EOC]; invalid or cut-off UTF-8 becomes U+FFFD."""
        ids = self._checked_ids(ids)
        pieces, run = [], bytearray()
        for i in ids:
            if i < 256:
                run.append(i)
                continue
            pieces.append(run.decode("utf-8", errors="replace"))
            run.clear()
            if not skip_special:
                pieces.append(self.MARKERS[i])
        pieces.append(run.decode("utf-8", errors="replace"))
        return "".join(pieces)

    def _checked_ids(self, ids) -> list[int]:
        where = "InstructionTokenizer.decode"
        if isinstance(ids, (list, tuple)):
            for pos, i in enumerate(ids):
                if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                    raise TypeError(f"{where}: id at position {pos} is {i!r} ({type(i).__name__}); ids must be ints")
            values = [int(i) for i in ids]
        else:
            array = np.asarray(ids)
            if array.ndim != 1:
                raise ValueError(f"{where}: ids must be a 1-D sequence, got shape {array.shape}")
            if array.dtype.kind not in "iu":
                raise TypeError(f"{where}: ids must be integers, got dtype {array.dtype}")
            values = array.tolist()
        for pos, i in enumerate(values):
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"{where}: id {i} at position {pos} is outside the vocabulary [0, {self.vocab_size})")
        return values


def as_message(item) -> Message:
    """A Message from a Message or a {"role", "content"} mapping (assumed valid)."""
    if isinstance(item, Message):
        return item
    return Message(item["role"], item["content"])


def conversation_problem(messages) -> tuple[str, str] | None:
    """The first thing wrong with a conversation prompt, as (where, what), e.g.
    ("[2].role", 'must be "user", got "assistant"'); None when it is well formed.

    Well formed: a non-empty list of messages, each a {"role", "content"} object
    (or Message) with string content; an optional system message first, then
    user and assistant turns alternating, starting and ending with a user turn.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        return "", f"must be a non-empty list of messages, got {short_repr(messages)}"
    for i, item in enumerate(messages):
        if not isinstance(item, (Mapping, Message)):
            return f"[{i}]", f'must be an object with "role" and "content", got {short_repr(item)}'
        for key in ("role", "content"):
            if isinstance(item, Mapping) and key not in item:
                return f"[{i}]", f'has no "{key}"'
        role, content = as_message(item)
        if role not in ROLES:
            return f"[{i}].role", f'must be "system", "user" or "assistant", got {short_repr(role)}'
        if not isinstance(content, str):
            return f"[{i}].content", f"must be a string, got {short_repr(content)}"
        if (problem := _unencodable(content)) is not None:
            return f"[{i}].content", problem
    roles = [as_message(m).role for m in messages]
    start = 1 if roles[0] == "system" else 0
    for i in range(start, len(roles)):
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if roles[i] != expected:
            where = "a system message may only come first" if roles[i] == "system" else "turns alternate"
            return f"[{i}].role", f'must be "{expected}", got "{roles[i]}" ({where}, starting with "user")'
    if len(roles) == start:
        return "", "has no user message"
    if roles[-1] != "user":
        return f"[{len(roles) - 1}].role", 'must be "user": a prompt ends with a user turn'
    return None


def _utf8(text, where) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"{where}: text must be a str, got {type(text).__name__}")
    problem = _unencodable(text)
    if problem is not None:
        raise ValueError(f"{where}: text {problem}")
    return text.encode("utf-8")


def _unencodable(text: str) -> str | None:
    """Why `text` has no UTF-8 encoding (a lone surrogate, as JSON's "\\ud800" gives), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return f"has no UTF-8 encoding: lone surrogate {text[err.start]!r} at index {err.start}"
    return None


def short_repr(value, limit=40) -> str:
    """A short repr for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
