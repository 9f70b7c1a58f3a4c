"""Preference formats and files with the byte tokenizer: every TRL format from JSONL, JSON arrays
and Parquet; the ids each gives (closed form, the InstructionTokenizer layout); every bad row one
line naming file, line and field, and the format it looks like; length settings and their counts."""

import json
import re

import pytest

from dpo import DPOConfig, tokenize_row
from dpo.batching import collate, count_truncated, truncation_note
from dpo.data import PreferenceDataError, PreferencePair, load_preferences
from dpo.formats import read_messages
from dpo.tokenizer import InstructionTokenizer, Message

INST, RESP, EOC = 256, 257, 259


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


ROWS = {
    "standard": {"prompt": "2 + 3?", "chosen": "5", "rejected": "6"},
    "conversational": {"prompt": [user("2 + 3?")], "chosen": [assistant("5")], "rejected": [assistant("6")]},
    "implicit prompt": {"chosen": "2 + 3? 5", "rejected": "2 + 3? 6"},
    "implicit prompt (conversational)": {"chosen": [user("2 + 3?"), assistant("5")],
                                         "rejected": [user("2 + 3?"), assistant("6")]},
    "hh-rlhf": {"chosen": "\n\nHuman: 2 + 3?\n\nAssistant: 5", "rejected": "\n\nHuman: 2 + 3?\n\nAssistant: 6"},
    "ultrafeedback": {"prompt": "2 + 3?", "prompt_id": "x1", "score_chosen": 9.0, "score_rejected": 2.0,
                      "chosen": [user("2 + 3?"), assistant("5")], "rejected": [user("2 + 3?"), assistant("6")],
                      "messages": [user("2 + 3?"), assistant("5")]},
}
# the one prompt all formats hold, as the byte tokenizer lays it out
PROMPT = [INST, *b"2 + 3?", RESP]


def write(tmp_path, rows, kind):
    path = tmp_path / f"prefs.{kind}"
    if kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif kind == "json":
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    else:
        pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed: Parquet is optional")
        import pyarrow.parquet as pq

        # Parquet needs one schema: each row's fields as JSON text, read back through a JSON column
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("kind", ["jsonl", "json"])
def test_every_format_loads_and_tokenizes(tmp_path, kind):
    path = write(tmp_path, list(ROWS.values()), kind)
    pairs = load_preferences(path)
    assert pairs.formats == {fmt: 1 for fmt in ROWS}
    for fmt, pair in zip(ROWS, pairs):
        ids = tokenize_row(pair, InstructionTokenizer())
        space = b" " if fmt == "implicit prompt" else b""  # TRL's extract_prompt gives the space to the answer
        assert ids == {"prompt_ids": PROMPT, "chosen_ids": [*space, ord("5"), EOC],
                       "rejected_ids": [*space, ord("6"), EOC]}, fmt
    lines = [int(p.source.rsplit(":", 1)[1]) for p in pairs]
    if kind == "jsonl":
        assert lines == [1, 2, 3, 4, 5, 6]
    else:  # the line each object starts on in the indented array
        text = path.read_text().splitlines()
        assert all(text[n - 1].strip() == "{" for n in lines) and lines == sorted(set(lines))


def test_parquet_rows_of_one_format(tmp_path):
    rows = [ROWS["ultrafeedback"], {**ROWS["ultrafeedback"], "prompt_id": "x2"}]
    pairs = load_preferences(write(tmp_path, rows, "parquet"))
    assert pairs.formats == {"ultrafeedback": 2}
    assert [p.source.rsplit(":", 1)[1] for p in pairs] == ["row 1", "row 2"]
    assert pairs[0].prompt == (Message("user", "2 + 3?"),) and pairs[0].chosen == "5"


def test_multi_turn_completions_from_ultrafeedback(tmp_path):
    row = {"prompt": "Hi", "chosen": [user("Hi"), assistant("Hello!"), user("2 + 3?"), assistant("5")],
           "rejected": [user("Hi"), assistant("Yo"), user("2 + 3?"), assistant("6")]}
    (pair,) = load_preferences(write(tmp_path, [row], "jsonl"))
    assert pair.prompt == (Message("user", "Hi"),)
    assert pair.chosen == (Message("assistant", "Hello!"), Message("user", "2 + 3?"), Message("assistant", "5"))
    ids = tokenize_row(pair, InstructionTokenizer())
    assert ids["chosen_ids"] == [*b"Hello!", EOC, INST, *b"2 + 3?", RESP, ord("5"), EOC]


BAD = [
    ({"prompt": "a", "chosen": "5"}, "rejected", r"is missing \(looks like the standard format"),
    ({"prompt": [user("a")], "rejected": "5"}, "chosen", r"is missing \(looks like the conversational format"),
    ({"chosen": "\n\nHuman: a\n\nAssistant: b"}, "rejected", r"is missing \(looks like Anthropic HH-RLHF"),
    ({"chosen": "a b"}, "rejected", r"is missing \(looks like the implicit-prompt format"),
    ({"prompt": "a", "messages": [], "chosen": [user("a"), assistant("b")]}, "rejected",
     r"is missing \(looks like UltraFeedback-binarized"),
    ({"prompt": "a", "completion": "b", "label": True}, "chosen", r"is missing \(looks like an unpaired preference"),
    ({"prompt": "a", "completion": "b"}, "chosen", r"is missing \(looks like a prompt-completion row"),
    ({"question": "a"}, "chosen", r"is missing; a row needs \"chosen\" and \"rejected\".*found \['question'\]"),
    ({"chosen": "x 1", "rejected": "y 2"}, "prompt", r"is missing and cannot be implied: .*implicit prompt format"),
    ({"chosen": "a", "rejected": [user("a")]}, "prompt", "is missing, and chosen / rejected are not both text"),
    ({"chosen": [user("a"), assistant("b")], "rejected": [user("z"), assistant("b")]}, "prompt",
     r"is missing and cannot be implied.*\(implicit prompt \(conversational\) format\)"),
    ({"prompt": "a", "chosen": [user("x"), assistant("b")], "rejected": [user("y"), assistant("c")]}, "chosen",
     "and \"rejected\" share no opening turns .*UltraFeedback"),
    ({"chosen": [user("a"), assistant("")], "rejected": [user("a"), assistant("c")]}, "chosen[0].content",
     r"is empty.* \(read as the implicit prompt \(conversational\) format\)"),
]


@pytest.mark.parametrize("row, field, problem", BAD)
def test_bad_row_names_file_line_field_and_the_format_it_looks_like(tmp_path, row, field, problem):
    path = write(tmp_path, [ROWS["standard"], row], "jsonl")
    where = f'^{re.escape(str(path))}:2: field "{re.escape(field)}" '
    with pytest.raises(PreferenceDataError, match=where + problem) as info:
        load_preferences(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [
    ('[{"prompt": "a", "chosen": "b", "rejected": "c"},\n {"prompt": ', r":2: invalid JSON at column \d+"),
    ('[{"prompt": "a", "chosen": "b", "rejected": "c"}\n {}]', r":2: invalid JSON array: expected ','"),
    ('[{"prompt": "a", "chosen": "b", "rejected": "c"}] x', r":1: unexpected text after the JSON array"),
    ('[\n{"prompt": "a", "chosen": "b", "rejected": "c"},\n 7]', r':3: a row must be a JSON object'),
])
def test_bad_json_array(tmp_path, text, message):
    path = tmp_path / "rows.json"
    path.write_text(text)
    with pytest.raises(PreferenceDataError, match=re.escape(str(path)) + message):
        load_preferences(path)


def test_bad_parquet(tmp_path):
    pytest.importorskip("pyarrow", reason="pyarrow is not installed: Parquet is optional")
    path = tmp_path / "rows.parquet"
    path.write_text("not parquet")
    with pytest.raises(PreferenceDataError, match=f"^{re.escape(str(path))}: cannot be read as Parquet"):
        load_preferences(path)


def test_tokenize_row_names_the_field_of_a_bad_row():
    with pytest.raises(PreferenceDataError, match=r'^row: field "rejected" is missing \(looks like the standard'):
        tokenize_row({"prompt": "a", "chosen": "b"}, InstructionTokenizer())


# ---- length settings -------------------------------------------------------------------------------
def test_max_prompt_and_completion_length_keep_the_prompt_end_and_the_completion_start():
    pair = PreferencePair("abcdef", "123456", "xy")
    config = DPOConfig(max_prompt_length=4, max_completion_length=3)
    assert tokenize_row(pair, InstructionTokenizer(), config) == {
        "prompt_ids": [*b"def", RESP], "chosen_ids": [*b"123"], "rejected_ids": [*b"xy", EOC]}
    pairs = [pair, PreferencePair("a", "b", "c")]
    assert count_truncated(pairs, InstructionTokenizer(), 96, config) == 1
    assert truncation_note(pairs, config=config) == (
        "1 of 2 pairs truncated by max_prompt_length 4, max_completion_length 3 (truncation_mode keep_start)")


@pytest.mark.parametrize("mode, chosen_row, scored", [
    ("keep_start", [INST, *b"ab", RESP, *b"12"], [*b"12"]),  # the end of the completion goes
    ("keep_end", [*b"12345", EOC], [*b"2345", EOC]),  # the prompt goes; its first kept token has no predecessor
])
def test_max_length_modes_on_the_batch(mode, chosen_row, scored):
    pair = PreferencePair("ab", "12345", "x")  # rows: [INST] a b [RESP] 1 2 3 4 5 [EOC] and [INST] a b [RESP] x [EOC]
    batch = collate([pair], InstructionTokenizer(), 96, DPOConfig(max_length=6, truncation_mode=mode))
    assert batch.input_ids[0].tolist() == chosen_row
    assert batch.input_ids[1].tolist() == [INST, *b"ab", RESP, ord("x"), EOC]
    assert batch.targets[0][batch.targets[0] != -100].tolist() == scored
    assert batch.truncated == 1
    assert batch.completion_lengths.tolist() == [len(scored), 2]


def test_bad_length_settings():
    with pytest.raises(ValueError, match="DPOConfig.max_length must be a positive int, got 0"):
        DPOConfig(max_length=0)
    with pytest.raises(ValueError, match="DPOConfig.truncation_mode must be 'keep_start' or 'keep_end', got 'left'"):
        DPOConfig(truncation_mode="left")
    with pytest.raises(ValueError, match=r"DPOConfig.max_length 500 exceeds the model's context \(model.max_len 96\)"):
        DPOConfig(max_length=500)
    with pytest.raises(ValueError, match="DPOConfig.max_completion_length must be a positive int, got -1"):
        DPOConfig(max_completion_length=-1)


# ---- --messages ----------------------------------------------------------------------------------
def test_read_messages_from_json_or_file(tmp_path):
    messages = [{"role": "system", "content": "Be brief."}, user("2 + 3?")]
    assert read_messages(json.dumps(messages)) == messages
    path = tmp_path / "chat.json"
    path.write_text(json.dumps({"messages": messages}))
    assert read_messages(str(path)) == messages
    with pytest.raises(ValueError, match=r"^--messages: 'nope.json' is neither JSON nor a file$"):
        read_messages("nope.json")
    with pytest.raises(ValueError, match=r"^--messages: invalid JSON at line 1 column \d+"):
        read_messages("[{")
    path.write_text(json.dumps([user("a"), assistant("b")]))
    with pytest.raises(ValueError, match=f'^{re.escape(str(path))}: messages\\[1\\].role must be "user"'):
        read_messages(str(path))


def test_a_checkpoint_written_before_the_length_fields_resumes():
    from dpo.training import config_changes

    config = DPOConfig()
    saved = json.loads(json.dumps(config.to_dict()))
    for name in ("max_length", "max_prompt_length", "max_completion_length", "truncation_mode"):
        del saved[name]
    assert config_changes(saved, config) is None
    assert config_changes(saved, DPOConfig(max_length=32)) == "max_length None -> 32"
