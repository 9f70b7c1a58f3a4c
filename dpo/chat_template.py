"""Chat templates: Hugging Face's Jinja chat templates, rendered the way transformers renders them.

    template = ChatTemplate(source, special_tokens={"bos_token": "<s>", "eos_token": "</s>"})
    text = template.render([{"role": "user", "content": "Hi"}], add_generation_prompt=True)

The environment matches transformers' `apply_chat_template`: a sandboxed Jinja
environment with `trim_blocks` and `lstrip_blocks`, the `loopcontrols` extension,
a `tojson` filter that does not escape HTML (json.dumps, ensure_ascii=False), the
globals `raise_exception(message)` and `strftime_now(format)`, and the variables
`messages`, `add_generation_prompt`, `tools`, `documents` plus the tokenizer's
named special tokens (`bos_token`, `eos_token`, `unk_token`, `pad_token`, ...) as
strings. Messages whose values are None lose those keys, as in transformers.
`{% generation %}` blocks (assistant-mask tracking) render their body.

A template that calls `raise_exception` raises ChatTemplateError with its message.
jinja2 is part of the optional `hf` extra.
"""

from __future__ import annotations

import datetime
import json
import re

from .hf_extra import INSTALL_HINT, MissingExtraError, require

SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class ChatTemplateError(ValueError):
    """A chat template refused a conversation (its `raise_exception`) or failed to render."""


def _environment():
    jinja2 = require("jinja2")
    if tuple(int(x) for x in re.findall(r"\d+", jinja2.__version__)[:3]) < (3, 1, 6):
        # older versions have known sandbox escapes, and chat templates are untrusted code
        raise MissingExtraError(f"jinja2 {jinja2.__version__} is too old for chat templates (3.1.6 or later): "
                                f"{INSTALL_HINT}")
    import jinja2.ext
    import jinja2.sandbox

    class Generation(jinja2.ext.Extension):
        """`{% generation %}...{% endgeneration %}`: renders its body (transformers uses it to mark assistant text)."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env, jinja2


class ChatTemplate:
    """A compiled chat template plus the special tokens it sees (see the module docstring)."""

    def __init__(self, source: str, special_tokens: dict | None = None):
        if not isinstance(source, str) or not source.strip():
            raise ChatTemplateError(f"chat template must be a non-empty string, got {source!r:.40}")
        env, self._jinja2 = _environment()
        self.source = source
        self.special_tokens = {k: str(v) for k, v in (special_tokens or {}).items() if v is not None}
        try:
            self._template = env.from_string(source)
        except self._jinja2.exceptions.TemplateSyntaxError as error:
            raise ChatTemplateError(f"chat template has a syntax error at line {error.lineno}: "
                                    f"{error.message}") from None

    def render(self, messages, add_generation_prompt: bool = False, tools=None, documents=None, **kwargs) -> str:
        """The text of `messages` (a list of {"role", "content", ...} mappings)."""
        chat = [{k: v for k, v in dict(m).items() if v is not None} for m in messages]
        variables = {**self.special_tokens, **kwargs}
        try:
            return self._template.render(messages=chat, tools=tools, documents=documents,
                                         add_generation_prompt=add_generation_prompt, **variables)
        except self._jinja2.exceptions.TemplateError as error:
            raise ChatTemplateError(f"chat template: {error}") from None
