"""Preference triples: PreferencePair validation, JSONL loading, the built-in twelve."""

import json
import re

import pytest

from dpo.batching import collate
from dpo.data import (
    PreferenceDataError,
    PreferenceList,
    PreferencePair,
    SkippedRow,
    load_preferences,
    make_preferences,
)
from dpo.tokenizer import InstructionTokenizer, Message

INST, RESP, EOC = 256, 257, 259
GOOD = {"prompt": "2 + 3?", "chosen": "5", "rejected": "Maybe 6."}


def write_lines(tmp_path, lines, name="prefs.jsonl"):
    """Write raw lines (str rows are written as is, dicts as JSON) and return the path."""
    path = tmp_path / name
    text = "".join((json.dumps(line) if isinstance(line, dict) else line) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


# ---- loading -------------------------------------------------------------------------
def test_loads_plain_rows_and_skips_blank_lines_silently(tmp_path):
    second = {"prompt": "Capital of Spain?", "chosen": "Madrid.", "rejected": "Barcelona, I think."}
    path = write_lines(tmp_path, [GOOD, "", "   ", second])
    pairs = load_preferences(path)
    assert isinstance(pairs, PreferenceList) and isinstance(pairs, list)
    assert pairs == [PreferencePair("2 + 3?", "5", "Maybe 6."),
                     PreferencePair("Capital of Spain?", "Madrid.", "Barcelona, I think.")]
    assert [p.source for p in pairs] == [f"{path}:1", f"{path}:4"]  # the file's own line numbers
    assert pairs.skipped == () and pairs.path == str(path)


def test_pairs_unpack_like_triples(tmp_path):
    (prompt, chosen, rejected), = load_preferences(write_lines(tmp_path, [GOOD]))
    assert (prompt, chosen, rejected) == ("2 + 3?", "5", "Maybe 6.")


def test_loads_conversational_rows(tmp_path):
    row = {
        "prompt": [{"role": "system", "content": "Be brief."}, user("Hi"), assistant("Hello!"), user("2 + 3?")],
        "chosen": [assistant("5")],
        "rejected": [assistant("Maybe 6.")],
    }
    (pair,) = load_preferences(write_lines(tmp_path, [row]))
    assert pair.prompt == (Message("system", "Be brief."), Message("user", "Hi"),
                           Message("assistant", "Hello!"), Message("user", "2 + 3?"))
    assert (pair.chosen, pair.rejected, pair.prompt_text) == ("5", "Maybe 6.", "2 + 3?")
    prompt_ids, chosen_ids, rejected_ids = pair.token_ids(InstructionTokenizer())
    assert prompt_ids == [INST, *b"Be brief.\n\nHi", RESP, *b"Hello!", EOC, INST, *b"2 + 3?", RESP]
    assert chosen_ids == [ord("5"), EOC]
    assert rejected_ids == [*b"Maybe 6.", EOC]


def test_each_field_takes_either_form_and_other_keys_are_ignored(tmp_path):
    row = {"prompt": "2 + 3?", "chosen": [assistant("5")], "rejected": "Maybe 6.", "id": 7, "score": 0.5}
    (pair,) = load_preferences(write_lines(tmp_path, [row]))
    assert pair == PreferencePair("2 + 3?", "5", "Maybe 6.")


def test_utf8_bom_on_the_first_line_is_ignored(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    assert load_preferences(path) == [PreferencePair(**GOOD)]


def test_long_prompt_is_fine_because_batching_cuts_it(tmp_path):
    row = {"prompt": "x" * 500, "chosen": "yes", "rejected": "no"}
    (pair,) = load_preferences(write_lines(tmp_path, [row]), max_len=16)
    assert pair.prompt == "x" * 500


# ---- malformed rows: one line naming file, line and field ----------------------------------
BAD_ROWS = [
    ('{"prompt": "a", "chosen": "b",', None, r"invalid JSON at column \d+: "),
    ("[1, 2, 3]", None, r'a row must be a JSON object with "prompt", "chosen" and "rejected", got list'),
    ({"chosen": "5", "rejected": "6"}, "prompt", "is missing"),
    ({"prompt": "a", "rejected": "6"}, "chosen", "is missing"),
    ({"prompt": "a", "chosen": "5"}, "rejected", "is missing"),
    ({"prompt": 42, "chosen": "5", "rejected": "6"}, "prompt", "must be a string or a list of messages, got 42"),
    ({"prompt": "a", "chosen": 42, "rejected": "6"}, "chosen",
     "must be a non-empty string or a list with one assistant message, got 42"),
    ({"prompt": "a", "chosen": "5", "rejected": None}, "rejected", "must be a non-empty string .*, got None"),
    ({"prompt": "a", "chosen": "", "rejected": "6"}, "chosen", "is empty"),
    ({"prompt": "a", "chosen": "5", "rejected": ""}, "rejected", "is empty"),
    ({"prompt": "a", "chosen": "same", "rejected": "same"}, "rejected", 'is identical to "chosen"'),
    ({"prompt": "a\ud800", "chosen": "5", "rejected": "6"}, "prompt", r"has no UTF-8 encoding: lone surrogate"),
    ({"prompt": "a", "chosen": "5", "rejected": "\udfff"}, "rejected", r"has no UTF-8 encoding"),
    # conversational
    ({"prompt": [], "chosen": "5", "rejected": "6"}, "prompt", "must be a non-empty list of messages"),
    ({"prompt": [{"content": "hi"}], "chosen": "5", "rejected": "6"}, "prompt[0]", 'has no "role"'),
    ({"prompt": [{"role": "user"}], "chosen": "5", "rejected": "6"}, "prompt[0]", 'has no "content"'),
    ({"prompt": ["hi"], "chosen": "5", "rejected": "6"}, "prompt[0]", 'must be an object with "role" and "content"'),
    ({"prompt": [{"role": "robot", "content": "hi"}], "chosen": "5", "rejected": "6"}, "prompt[0].role",
     "must be \"system\", \"user\" or \"assistant\", got 'robot'"),
    ({"prompt": [{"role": "user", "content": 1}], "chosen": "5", "rejected": "6"}, "prompt[0].content",
     "must be a string, got 1"),
    ({"prompt": [assistant("hi"), user("2 + 3?")], "chosen": "5", "rejected": "6"}, "prompt[0].role",
     'must be "user", got "assistant"'),
    ({"prompt": [user("a"), user("b")], "chosen": "5", "rejected": "6"}, "prompt[1].role",
     'must be "assistant", got "user"'),
    ({"prompt": [user("a"), assistant("b")], "chosen": "5", "rejected": "6"}, "prompt[1].role",
     'must be "user": a prompt ends with a user turn'),
    ({"prompt": [user("a"), {"role": "system", "content": "s"}, user("b")], "chosen": "5", "rejected": "6"},
     "prompt[1].role", "must be \"assistant\", got \"system\" \\(a system message may only come first"),
    ({"prompt": "a", "chosen": [], "rejected": "6"}, "chosen", "must hold at least one assistant message, got 0"),
    ({"prompt": "a", "chosen": [assistant("5"), assistant("6")], "rejected": "6"}, "chosen",
     "holds 2 messages; a completion of several turns needs a conversation prompt"),
    ({"prompt": [user("a")], "chosen": [assistant("5"), assistant("6")], "rejected": "6"}, "chosen[1].role",
     "must be \"user\", got 'assistant' \\(a completion's turns alternate"),
    ({"prompt": [user("a")], "chosen": [assistant("5"), user("6")], "rejected": "6"}, "chosen[1].role",
     "must be \"assistant\": a completion ends with the assistant's turn"),
    ({"prompt": "a", "chosen": [user("5")], "rejected": "6"}, "chosen[0].role", "must be \"assistant\", got 'user'"),
    ({"prompt": "a", "chosen": [{"role": "assistant"}], "rejected": "6"}, "chosen[0]", 'has no "content"'),
    ({"prompt": "a", "chosen": ["5"], "rejected": "6"}, "chosen[0]", 'must be an object with "role" and "content"'),
    ({"prompt": "a", "chosen": "5", "rejected": [assistant("")]}, "rejected[0].content", "is empty"),
    ({"prompt": "a", "chosen": "5", "rejected": [assistant(6)]}, "rejected[0].content", "must be a string, got 6"),
    ({"prompt": "a", "chosen": [assistant("5")], "rejected": [assistant("5")]}, "rejected", "is identical"),
]


@pytest.mark.parametrize("row, field, problem", BAD_ROWS)
def test_malformed_row_is_one_line_error_naming_file_line_and_field(tmp_path, row, field, problem):
    path = write_lines(tmp_path, [GOOD, "", row])  # the bad row is on line 3
    where = f'field "{re.escape(field)}" ' if field else ""
    with pytest.raises(PreferenceDataError, match=f"^{re.escape(str(path))}:3: {where}{problem}") as info:
        load_preferences(path)
    assert "\n" not in str(info.value)
    assert info.value.field == field
    assert info.value.source == f"{path}:3"


def test_invalid_utf8_line_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(PreferenceDataError, match=r"bytes.jsonl:2: is not valid UTF-8 \(byte 0xe9 at column 16\)"):
        load_preferences(path)


def test_completion_without_room_names_the_field(tmp_path):
    # max_len 10; prompt "abc" -> 5 tokens, cut at most to [INST] c [RESP] (3 tokens); room for 7 completion tokens
    fits = {"prompt": "abc", "chosen": "123456", "rejected": "x"}  # 6 bytes + EOC = 7
    too_long = {"prompt": "abc", "chosen": "x", "rejected": "1234567"}  # 7 bytes + EOC = 8
    path = write_lines(tmp_path, [fits, too_long])
    with pytest.raises(PreferenceDataError,
                       match=r'prefs.jsonl:2: field "rejected" leaves no room in max_len 10: 8 completion tokens '
                             r"\(with end-of-completion\) \+ 3 for the shortest prompt .* = 11"):
        load_preferences(path, max_len=10)
    assert len(load_preferences(path, max_len=11)) == 2
    # without EOC the 7-byte completion is 7 tokens and fits
    assert len(load_preferences(path, max_len=10, tokenizer=InstructionTokenizer(add_eoc=False))) == 2


# ---- skip mode -----------------------------------------------------------------------
def test_skip_invalid_skips_and_reports_each_bad_row(tmp_path):
    rows = [GOOD, "not json", {"prompt": "a", "chosen": "", "rejected": "b"}, "",
            {"prompt": "q", "chosen": "yes", "rejected": "no"}, {"prompt": "a", "chosen": "s", "rejected": "s"}]
    path = write_lines(tmp_path, rows)
    pairs = load_preferences(path, skip_invalid=True)
    assert [p.prompt for p in pairs] == ["2 + 3?", "q"]
    assert len(pairs.skipped) == 3
    assert [(s.line, s.field) for s in pairs.skipped] == [(2, None), (3, "chosen"), (6, "rejected")]
    assert all(isinstance(s, SkippedRow) for s in pairs.skipped)
    assert pairs.skipped[1].reason == f'{path}:3: field "chosen" is empty; a completion needs at least one character'
    # without skip_invalid the first bad row stops the load
    with pytest.raises(PreferenceDataError, match=":2: invalid JSON"):
        load_preferences(path)


def test_skip_invalid_counts_rows_without_room(tmp_path):
    rows = [GOOD, {"prompt": "a", "chosen": "x" * 50, "rejected": "y"}]
    pairs = load_preferences(write_lines(tmp_path, rows), skip_invalid=True, max_len=20)
    assert len(pairs) == 1
    assert [(s.line, s.field) for s in pairs.skipped] == [(2, "chosen")]


# ---- file-level errors ---------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="load_preferences: no such file: .*nope.jsonl"):
        load_preferences(tmp_path / "nope.jsonl")


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(IsADirectoryError, match="load_preferences: not a file"):
        load_preferences(tmp_path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_file_without_rows_is_an_error(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(PreferenceDataError, match="empty.jsonl: has no preference rows"):
        load_preferences(path)
    with pytest.raises(PreferenceDataError, match="has no preference rows"):
        load_preferences(path, skip_invalid=True)


def test_all_rows_invalid_is_an_error_even_when_skipping(tmp_path):
    path = write_lines(tmp_path, ["{", {"prompt": "a"}])
    message = r"prefs.jsonl: all 2 rows are invalid; the first: .*:1: invalid JSON"
    with pytest.raises(PreferenceDataError, match=message):
        load_preferences(path, skip_invalid=True)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_len": 0}, ValueError, "max_len must be a positive int, got 0"),
        ({"max_len": 9.5}, ValueError, "max_len must be a positive int, got 9.5"),
        ({"skip_invalid": "yes"}, TypeError, "skip_invalid must be True or False"),
        ({"tokenizer": "bytes"}, TypeError, "tokenizer must be an InstructionTokenizer or an HFTokenizer .*, got str"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_preferences(write_lines(tmp_path, [GOOD]), **kwargs)


def test_bad_path_type():
    with pytest.raises(TypeError, match="path must be a str or a path, got 3"):
        load_preferences(3)


# ---- PreferencePair built in code ------------------------------------------------------
def test_pair_built_in_code_is_validated_and_normalised():
    pair = PreferencePair([user("2 + 3?")], [assistant("5")], "6")
    assert pair.prompt == (Message("user", "2 + 3?"),) and pair.chosen == "5"
    assert pair == PreferencePair((Message("user", "2 + 3?"),), "5", "6", source="elsewhere")  # source not compared
    with pytest.raises(PreferenceDataError, match='^PreferencePair: field "chosen" is empty'):
        PreferencePair("a", "", "b")
    with pytest.raises(PreferenceDataError, match='^mine:4: field "rejected" is identical to "chosen"'):
        PreferencePair("a", "b", "b", source="mine:4")
    with pytest.raises(TypeError, match="source must be a str"):
        PreferencePair("a", "b", "c", source=4)


def test_pair_is_frozen():
    pair = PreferencePair("a", "b", "c")
    with pytest.raises(AttributeError):
        pair.chosen = "d"


def test_check_fits_on_a_pair_built_in_code():
    pair = PreferencePair("a", "b" * 10, "c")
    pair.check_fits(InstructionTokenizer(), max_len=14)  # 11 + 3 = 14
    with pytest.raises(PreferenceDataError, match='PreferencePair: field "chosen" leaves no room in max_len 13'):
        pair.check_fits(InstructionTokenizer(), max_len=13)


# ---- the built-in twelve -----------------------------------------------------------------
def test_make_preferences_has_the_twelve_lesson_topics():
    pairs = make_preferences()
    assert len(pairs) == 12 and pairs.skipped == ()
    prompts = [p.prompt for p in pairs]
    topics = ["France", "Japan", "Spain", "2 + 3", "7 * 6", "12 / 4", "colors", "vowels", "variable", "function",
              "print 42", "sort items"]
    for prompt, topic in zip(prompts, topics):
        assert topic in prompt
    answers = {"France": "Paris", "Japan": "Tokyo", "Spain": "Madrid", "2 + 3": "5", "7 * 6": "42", "12 / 4": "3",
               "print 42": "print(42)"}
    for pair, topic in zip(pairs, topics):
        if topic in answers:
            assert answers[topic] in pair.chosen
            assert answers[topic] not in pair.rejected


def test_built_in_chosen_is_shorter_than_rejected():
    for pair in make_preferences():
        assert len(pair.chosen) < len(pair.rejected), pair


def test_built_in_pairs_fit_max_len_96_whole():
    tok = InstructionTokenizer()
    pairs = make_preferences()
    for pair in pairs:
        prompt, chosen, rejected = pair.token_ids(tok)
        assert len(prompt) + max(len(chosen), len(rejected)) <= 96, pair
    assert collate(pairs, tok, max_len=96).truncated == 0


def test_make_preferences_returns_a_fresh_list():
    first = make_preferences()
    first.clear()
    assert len(make_preferences()) == 12
