"""One preference row to token ids, as TRL 1.16's DPOTrainer tokenizes it.

    tokenize_row({"prompt": "2 + 3?", "chosen": "5", "rejected": "6"}, tokenizer)
    -> {"prompt_ids": [...], "chosen_ids": [...], "rejected_ids": [...]}

The row may be in any format of `dpo.formats` (or a PreferencePair). The rule, TRL's:
- conversational rows: prompt ids = the chat template on the prompt with
  `add_generation_prompt=True`; prompt + chosen (and prompt + rejected) rendered whole
  by the template, which writes the end-of-turn tokens itself (no EOS is added);
- text rows: prompt ids = tokenizer(prompt) with its special tokens (e.g. a BOS);
  prompt + chosen = tokenizer(prompt + chosen + eos_token), the EOS text appended
  unless chosen already ends with it;
- the completion starts where the prompt ids and the prompt + completion ids first
  differ (the shorter of the two common prefixes, for chosen and rejected), so a
  template that renders the prompt differently alone, or tokens that merge across the
  boundary, never duplicate or lose a token; the rendered text is encoded without
  special tokens, so a template that writes BOS gets exactly one.

With the byte `InstructionTokenizer` the same rule gives its own layout:
[INST] prompt [RESP] / completion bytes, EOC.

Length settings (`config`: a DPOConfig or anything with these attributes), applied here:
- `max_prompt_length`: the prompt keeps its LAST max_prompt_length ids;
- `max_completion_length`: each completion keeps its FIRST max_completion_length ids;
these are the semantics of TRL before 1.0 (1.16 dropped both options). `max_length`
and `truncation_mode` act on whole sequences when batching (`dpo.batching.collate`).
"""

from __future__ import annotations

LENGTH_FIELDS = ("max_length", "max_prompt_length", "max_completion_length", "truncation_mode")
TRUNCATION_MODES = ("keep_start", "keep_end")


def common_prefix_length(ids, other) -> int:
    """How many leading ids `ids` and `other` share."""
    n = 0
    for a, b in zip(ids, other):
        if a != b:
            break
        n += 1
    return n


def length_settings(config) -> tuple:
    """(max_length, max_prompt_length, max_completion_length, truncation_mode) of a config (None: all off)."""
    if config is None:
        return (None, None, None, "keep_start")
    return tuple(getattr(config, name, None) if name != "truncation_mode" else getattr(config, name, "keep_start")
                 for name in LENGTH_FIELDS)


def _messages(value) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    return [{"role": m[0], "content": m[1]} if isinstance(m, tuple) else dict(m) for m in value]


def untruncated_ids(pair, tokenizer) -> tuple[list[int], list[int], list[int]]:
    """(prompt, chosen, rejected) ids of a PreferencePair by TRL's rule, before any length setting."""
    if pair.conversational:
        prompt = _messages(pair.prompt)
        prompt_ids = tokenizer.render_chat(prompt, add_generation_prompt=True)
        full = [tokenizer.render_chat(prompt + _messages(c)) for c in (pair.chosen, pair.rejected)]
    else:
        prompt_ids = tokenizer.render_text(pair.prompt)
        full = [tokenizer.render_text(pair.prompt, c) for c in (pair.chosen, pair.rejected)]
    n = min(common_prefix_length(prompt_ids, ids) for ids in full)
    return list(prompt_ids[:n]), list(full[0][n:]), list(full[1][n:])


def truncated_ids(ids: tuple, config) -> tuple[list[int], list[int], list[int]]:
    """(prompt, chosen, rejected) with max_prompt_length and max_completion_length applied."""
    _, max_prompt, max_completion, _ = length_settings(config)
    prompt, chosen, rejected = ids
    if max_prompt is not None:
        prompt = prompt[-max_prompt:]
    if max_completion is not None:
        chosen, rejected = chosen[:max_completion], rejected[:max_completion]
    return list(prompt), list(chosen), list(rejected)


def tokenize_row(row, tokenizer, config=None) -> dict:
    """{"prompt_ids", "chosen_ids", "rejected_ids"} of one row (any known format, or a
    PreferencePair) with `tokenizer` (InstructionTokenizer or HFTokenizer); see the module
    docstring. A malformed row raises dpo.data.PreferenceDataError naming the field."""
    from .data import PreferencePair, pair_from_row

    pair = row if isinstance(row, PreferencePair) else pair_from_row(row, "row")
    prompt, chosen, rejected = pair.token_ids(tokenizer, config)
    return {"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected}
