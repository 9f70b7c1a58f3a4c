"""Hugging Face tokenizer folders, through the `tokenizers` library and a Jinja chat template.

    tok = load_tokenizer("path/to/model")      # tokenizer.json + tokenizer_config.json (+ chat_template.jinja)
    tok.encode("Hello")                        # ids, with the special tokens the tokenizer adds (e.g. BOS)
    tok.apply_chat_template(messages, add_generation_prompt=True)   # ids of the rendered conversation
    tok.decode(ids)

What is read, as transformers reads it:
- `tokenizer.json`: the `tokenizers` pipeline (model, pre-tokenizer, post-processor, added tokens);
- `tokenizer_config.json`: the named special tokens (`bos_token`, `eos_token`, `pad_token`, ...; a
  string or an {"content": ...} object) and `chat_template` (a string, or a list of {"name",
  "template"} of which "default" is used). Its `add_bos_token` / `add_eos_token` are ignored, as
  transformers' generic fast tokenizer ignores them when tokenizer.json is present: which special
  tokens plain text gets is the post-processor's business;
- `chat_template.jinja` (transformers' own file for the template), which takes priority over
  tokenizer_config.json's entry, as in transformers; `special_tokens_map.json` for special tokens
  tokenizer_config.json does not name.

Rendering a conversation is `encode(template.render(...), add_special_tokens=False)`, so a template
that writes the BOS itself does not get a second one. The padding id is the pad token's, else
the EOS's (TRL's rule).

Both tokenizers (this one and the byte `InstructionTokenizer`) give the pipeline the same
small interface: `pad_token_id`, `eos_token_id`, `vocab_size`, `encode`, `decode`,
`render_text(prompt, completion=None)`, `render_chat(messages, add_generation_prompt=False)`,
`fingerprint()`.
"""

from __future__ import annotations

import hashlib
import json
import os

from .chat_template import SPECIAL_TOKEN_NAMES, ChatTemplate
from .hf_extra import require


class TokenizerFolderError(ValueError):
    """A tokenizer folder that cannot be used; str() is one line naming the folder and the problem."""


class HFTokenizer:
    """A `tokenizers.Tokenizer` plus its special tokens and chat template (see the module docstring)."""

    def __init__(self, tokenizer, special_tokens: dict | None = None, chat_template: str | None = None,
                 name: str = ""):
        self._tok = tokenizer
        self.name = name
        self.special_tokens = {k: v for k, v in (special_tokens or {}).items() if k in SPECIAL_TOKEN_NAMES and v}
        for key, token in self.special_tokens.items():
            if tokenizer.token_to_id(token) is None:
                raise TokenizerFolderError(f"{name or 'tokenizer'}: {key} {token!r} is not in the vocabulary")
        self.chat_template = ChatTemplate(chat_template, self.special_tokens) if chat_template else None
        self._fingerprint = None

    def __repr__(self):
        return f"HFTokenizer({self.name!r}, vocab_size={self.vocab_size})"

    # ---- the common interface --------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def _id(self, name):
        token = self.special_tokens.get(name)
        return None if token is None else self._tok.token_to_id(token)

    @property
    def bos_token_id(self) -> int | None:
        return self._id("bos_token")

    @property
    def eos_token_id(self) -> int | None:
        return self._id("eos_token")

    @property
    def eos_token(self) -> str | None:
        return self.special_tokens.get("eos_token")

    @property
    def pad_token_id(self) -> int:
        pad = self._id("pad_token")
        pad = self.eos_token_id if pad is None else pad
        if pad is None:
            raise TokenizerFolderError(f"{self.name or 'tokenizer'}: has neither a pad_token nor an eos_token "
                                       "to pad batches with")
        return pad

    @property
    def has_chat_template(self) -> bool:
        return self.chat_template is not None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """The ids of `text`; `add_special_tokens` applies the post-processor (e.g. a BOS)."""
        if not isinstance(text, str):
            raise TypeError(f"HFTokenizer.encode: text must be a str, got {type(text).__name__}")
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids, skip_special: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special)

    def apply_chat_template(self, messages, add_generation_prompt: bool = False, tokenize: bool = True, **kwargs):
        """The conversation rendered by the chat template: ids (`tokenize`) or text."""
        if self.chat_template is None:
            raise TokenizerFolderError(f"{self.name or 'tokenizer'}: has no chat_template, so conversational rows "
                                       "and --messages cannot be rendered; use text rows or add a chat template")
        text = self.chat_template.render(messages, add_generation_prompt=add_generation_prompt, **kwargs)
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def render_chat(self, messages, add_generation_prompt: bool = False) -> list[int]:
        """Ids of a conversation (list of {"role", "content"}) through the chat template."""
        return self.apply_chat_template([dict(role=m[0], content=m[1]) if isinstance(m, tuple) else dict(m)
                                         for m in messages], add_generation_prompt=add_generation_prompt)

    def render_text(self, prompt: str, completion: str | None = None) -> list[int]:
        """Ids of a plain-text prompt, or of prompt + completion with the EOS token appended to the
        completion text unless it already ends with it (TRL's rule for non-conversational rows)."""
        if completion is None:
            return self.encode(prompt)
        eos = self.eos_token
        if eos and not completion.endswith(eos):
            completion = completion + eos
        return self.encode(prompt + completion)

    def fingerprint(self) -> str:
        """A digest of everything that decides the ids: the tokenizer pipeline, special tokens, template."""
        if self._fingerprint is None:
            parts = [self._tok.to_str(), json.dumps(self.special_tokens, sort_keys=True),
                     self.chat_template.source if self.chat_template else ""]
            self._fingerprint = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
        return self._fingerprint

    def save_pretrained(self, directory) -> None:
        """Write tokenizer.json and tokenizer_config.json (special tokens and chat template) to `directory`."""
        os.makedirs(directory, exist_ok=True)
        self._tok.save(os.path.join(directory, "tokenizer.json"))
        config = dict(self.special_tokens)
        if self.chat_template is not None:
            config["chat_template"] = self.chat_template.source
        with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as file:
            json.dump(config, file, indent=2, ensure_ascii=False)


def _token_text(value):
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path, folder):
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TokenizerFolderError(f"{folder}: cannot read {os.path.basename(path)}: {error}") from None
    if not isinstance(data, dict):
        raise TokenizerFolderError(f"{folder}: {os.path.basename(path)} must hold a JSON object")
    return data


def _chat_template(config, folder):
    if os.path.isfile(os.path.join(folder, "chat_template.jinja")):
        with open(os.path.join(folder, "chat_template.jinja"), encoding="utf-8") as file:
            return file.read()
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": ..., "template": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if template is not None and not isinstance(template, str):
        raise TokenizerFolderError(f"{folder}: chat_template must be a string, got {type(template).__name__}")
    return template


def load_tokenizer(path) -> HFTokenizer:
    """The tokenizer of a Hugging Face folder (see the module docstring); needs the `hf` extra."""
    tokenizers = require("tokenizers")
    require("jinja2")
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise TokenizerFolderError(f"{folder}: no such tokenizer folder")
    json_path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(json_path):
        raise TokenizerFolderError(f"{folder}: has no tokenizer.json (only the fast `tokenizers` format is read)")
    try:
        tokenizer = tokenizers.Tokenizer.from_file(json_path)
    except Exception as error:  # tokenizers raises its own Exception subclass for a malformed file
        raise TokenizerFolderError(f"{folder}: tokenizer.json cannot be loaded: {error}") from None
    config_path = os.path.join(folder, "tokenizer_config.json")
    config = _read_json(config_path, folder) if os.path.isfile(config_path) else {}
    special = {}
    map_path = os.path.join(folder, "special_tokens_map.json")
    if os.path.isfile(map_path):
        special.update({k: _token_text(v) for k, v in _read_json(map_path, folder).items()})
    special.update({k: _token_text(config[k]) for k in SPECIAL_TOKEN_NAMES if k in config})
    return HFTokenizer(tokenizer, special, _chat_template(config, folder), name=folder)
