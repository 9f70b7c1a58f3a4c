"""InstructionTokenizer: byte-level UTF-8 with INST / RESP / PAD / EOC markers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpo.tokenizer import InstructionTokenizer, Message, conversation_problem

INST, RESP, PAD, EOC = 256, 257, 258, 259


@pytest.fixture
def tok():
    return InstructionTokenizer()


def test_special_token_ids_and_vocabulary():
    t = InstructionTokenizer
    assert (t.INST, t.RESP, t.PAD, t.EOC, t.vocab_size) == (256, 257, 258, 259, 260)


def test_prompt_is_inst_bytes_resp(tok):
    assert tok.encode_prompt("Hi?") == [INST, 72, 105, 63, RESP]
    assert tok.encode_prompt("") == [INST, RESP]


def test_completion_ends_with_eoc_unless_turned_off(tok):
    assert tok.encode_completion("ok") == [111, 107, EOC]
    assert tok.encode_completion("ok", eoc=False) == [111, 107]
    assert tok.encode_completion("") == [EOC]
    assert InstructionTokenizer(add_eoc=False).encode_completion("ok") == [111, 107]
    assert InstructionTokenizer(add_eoc=False).encode_completion("ok", eoc=True) == [111, 107, EOC]


def test_multibyte_utf8_is_encoded_as_bytes(tok):
    # "é" = C3 A9, "€" = E2 82 AC, "😀" = F0 9F 98 80
    assert tok.encode_text("é€😀") == [0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80]


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_round_trip_any_text(text):
    tok = InstructionTokenizer()
    assert tok.decode(tok.encode_prompt(text)) == text
    assert tok.decode(tok.encode_completion(text)) == text


def test_round_trip_multibyte_with_markers(tok):
    ids = tok.encode_prompt("Café?") + tok.encode_completion("Ja, 😀.")
    assert tok.decode(ids) == "Café?Ja, 😀."
    assert tok.decode(ids, skip_special=False) == "[INST]Café?[RESP]Ja, 😀.[EOC]"
    assert tok.decode([PAD, 97, PAD], skip_special=False) == "[PAD]a[PAD]"


def test_decode_tolerates_cut_off_utf8(tok):
    euro = [0xE2, 0x82, 0xAC]
    assert tok.decode([97] + euro[:2]) == "a\ufffd"  # generation stopped half way through "€"
    assert tok.decode(euro[:1] + [98]) == "\ufffdb"
    assert tok.decode([0xFF]) == "\ufffd"  # never valid in UTF-8


def test_special_tokens_split_the_byte_stream(tok):
    # the two halves of "é" do not join across a marker
    assert tok.decode([0xC3, RESP, 0xA9]) == "\ufffd\ufffd"


def test_decode_accepts_numpy_ids(tok):
    assert tok.decode(np.array([INST, 104, 105, RESP], dtype=np.int64)) == "hi"
    assert tok.decode([np.int32(104), np.uint8(105)]) == "hi"
    assert tok.decode([]) == ""


@pytest.mark.parametrize(
    "ids, error, match",
    [
        ([97, -1], ValueError, r"id -1 at position 1 is outside the vocabulary \[0, 260\)"),
        ([260], ValueError, r"id 260 at position 0 is outside"),
        (np.array([5, 300]), ValueError, r"id 300 at position 1 is outside"),
        ([97, 1.0], TypeError, r"id at position 1 is 1.0 \(float\); ids must be ints"),
        ([True], TypeError, r"id at position 0 is True \(bool\)"),
        (["a"], TypeError, r"id at position 0 is 'a' \(str\)"),
        (np.array([1.0, 2.0]), TypeError, r"ids must be integers, got dtype float64"),
        (np.zeros((2, 2), dtype=np.int64), ValueError, r"ids must be a 1-D sequence, got shape \(2, 2\)"),
    ],
)
def test_decode_rejects_bad_ids(tok, ids, error, match):
    with pytest.raises(error, match="InstructionTokenizer.decode: " + match):
        tok.decode(ids)


def test_encode_rejects_non_strings_and_lone_surrogates(tok):
    with pytest.raises(TypeError, match="encode_prompt: text must be a str, got bytes"):
        tok.encode_prompt(b"hi")
    with pytest.raises(TypeError, match="encode_completion: text must be a str, got int"):
        tok.encode_completion(42)
    surrogate = r"encode_text: text has no UTF-8 encoding: lone surrogate '\\ud800' at index 1"
    with pytest.raises(ValueError, match=surrogate):
        tok.encode_text("a\ud800")
    with pytest.raises(TypeError, match="eoc must be True, False or None, got 1"):
        tok.encode_completion("a", eoc=1)
    with pytest.raises(TypeError, match="add_eoc must be True or False"):
        InstructionTokenizer(add_eoc="yes")


def test_conversation_rendering_example_from_docstring(tok):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Capital of Spain?"},
    ]
    expected = (
        [INST, *b"Be brief.\n\nHi", RESP]
        + [*b"Hello!", EOC]
        + [INST, *b"Capital of Spain?", RESP]
    )
    assert tok.encode_conversation(messages) == expected
    assert tok.encode_conversation([Message(m["role"], m["content"]) for m in messages]) == expected


def test_single_user_turn_renders_like_a_prompt(tok):
    assert tok.encode_conversation([{"role": "user", "content": "Hi"}]) == tok.encode_prompt("Hi")


def test_earlier_assistant_turns_follow_add_eoc():
    tok = InstructionTokenizer(add_eoc=False)
    messages = [Message("user", "a"), Message("assistant", "b"), Message("user", "c")]
    assert tok.encode_conversation(messages) == [INST, 97, RESP, 98, INST, 99, RESP]


@pytest.mark.parametrize(
    "messages, where, what",
    [
        ([], "", "must be a non-empty list of messages, got []"),
        ("hi", "", "must be a non-empty list of messages, got 'hi'"),
        ([42], "[0]", 'must be an object with "role" and "content", got 42'),
        ([{"content": "hi"}], "[0]", 'has no "role"'),
        ([{"role": "user"}], "[0]", 'has no "content"'),
        ([{"role": "bot", "content": "hi"}], "[0].role", "must be \"system\", \"user\" or \"assistant\", got 'bot'"),
        ([{"role": "user", "content": 3}], "[0].content", "must be a string, got 3"),
        ([{"role": "assistant", "content": "hi"}], "[0].role", 'must be "user", got "assistant"'),
        ([Message("user", "a"), Message("user", "b")], "[1].role", 'must be "assistant", got "user"'),
        ([Message("user", "a"), Message("system", "b")], "[1].role", "a system message may only come first"),
        ([Message("system", "s")], "", "has no user message"),
        ([Message("user", "a"), Message("assistant", "b")], "[1].role", "a prompt ends with a user turn"),
    ],
)
def test_conversation_problems(messages, where, what):
    found_where, found_what = conversation_problem(messages)
    assert found_where == where
    assert what in found_what


def test_encode_conversation_rejects_bad_order_with_a_clear_message(tok):
    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(ValueError, match=r'encode_conversation: messages\[1\].role must be "assistant", got "user"'):
        tok.encode_conversation(bad)
