"""Tokenization against TRL 1.16's own code, row by row: `dpo.tokenize_row` equals what
DPOTrainer._prepare_dataset writes, for every preference format, with a ChatML tokenizer trained
here (with and without a BOS); the collator's max_length truncation equals TRL's
DataCollatorForPreference in both modes; prompt extraction equals trl.extract_prompt; the chat
template renders as transformers renders it."""

import types

import numpy as np
import pytest

from tests.dpo.hf_setup import write_folder

pytest.importorskip("trl", reason="trl is not installed: the comparison with TRL's own tokenization is skipped")
pytest.importorskip("datasets", reason="datasets (a trl dependency) is not installed")

import datasets  # noqa: E402
import transformers  # noqa: E402
from trl.data_utils import extract_prompt as trl_extract_prompt  # noqa: E402
from trl.data_utils import maybe_extract_prompt  # noqa: E402
from trl.trainer.dpo_trainer import DataCollatorForPreference, DPOTrainer  # noqa: E402

from dpo import load_tokenizer, tokenize_row  # noqa: E402
from dpo.batching import collate_token_ids  # noqa: E402
from dpo.chat_template import ChatTemplateError  # noqa: E402
from dpo.formats import extract_prompt, hh_messages, normalize_row  # noqa: E402

datasets.disable_progress_bars()


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


SYSTEM = {"role": "system", "content": "Be brief."}
# rows grouped by format: TRL decides a dataset's format from its first row
ROWS = {
    "standard": [
        {"prompt": "What is 2 + 3?", "chosen": " 5.", "rejected": " Maybe 6."},
        {"prompt": "Capital of France?", "chosen": "Paris<|im_end|>", "rejected": "Tokyo"},  # EOS already there
        {"prompt": "Name three colors:", "chosen": "red, green, blue", "rejected": "red"},  # merges across the join
    ],
    "conversational": [
        {"prompt": [SYSTEM, user("2 + 3?")], "chosen": [assistant("5")], "rejected": [assistant("Maybe 6.")]},
        {"prompt": [user("Hi"), assistant("Hello!"), user("Capital of Japan?")], "chosen": [assistant("Tokyo.")],
         "rejected": [assistant("Paris, I think.")]},
    ],
    "implicit text": [
        {"chosen": "Q: capital of France? A: Paris.", "rejected": "Q: capital of France? A: Tokyo."},
        {"chosen": "Compute 2 + 3. 5", "rejected": "Compute 2 + 3. Maybe 6"},
    ],
    "implicit conversational": [
        {"chosen": [user("2 + 3?"), assistant("5")], "rejected": [user("2 + 3?"), assistant("6")]},
        {"chosen": [SYSTEM, user("Hi"), assistant("Hello!"), user("Vowels?"), assistant("a e i o u")],
         "rejected": [SYSTEM, user("Hi"), assistant("Hello!"), user("Vowels?"), assistant("b c d")]},
    ],
}
ULTRAFEEDBACK = [
    {"prompt": "Sort the items.", "prompt_id": "abc", "score_chosen": 8.0, "score_rejected": 3.0,
     "chosen": [user("Sort the items."), assistant("Sorted: a, b.")],
     "rejected": [user("Sort the items."), assistant("No.")],
     "messages": [user("Sort the items."), assistant("Sorted: a, b.")]},
    {"prompt": "Hi", "prompt_id": "def", "score_chosen": 9.0, "score_rejected": 1.0,
     "chosen": [user("Hi"), assistant("Hello!"), user("2 + 3?"), assistant("5")],
     "rejected": [user("Hi"), assistant("Hello!"), user("2 + 3?"), assistant("Seven")],
     "messages": []},
    {"prompt": "Hi", "prompt_id": "ghi", "score_chosen": 7.0, "score_rejected": 2.0,  # differs at an earlier turn
     "chosen": [user("Hi"), assistant("Hello!"), user("2 + 3?"), assistant("5")],
     "rejected": [user("Hi"), assistant("Go away."), user("2 + 3?"), assistant("6")],
     "messages": []},
]
HH = [
    {"chosen": "\n\nHuman: What is 2 + 3?\n\nAssistant: 5.\n\nHuman: And 7 * 6?\n\nAssistant: 42.",
     "rejected": "\n\nHuman: What is 2 + 3?\n\nAssistant: 5.\n\nHuman: And 7 * 6?\n\nAssistant: Maybe 41."},
]


@pytest.fixture(scope="module", params=[False, True], ids=["no-bos", "bos"])
def tokenizers_pair(request, tmp_path_factory):
    """(ours, theirs): the same folder through dpo.load_tokenizer and transformers."""
    folder = write_folder(tmp_path_factory.mktemp("tok"), bos=request.param)
    return load_tokenizer(folder), transformers.PreTrainedTokenizerFast.from_pretrained(str(folder))


def trl_columns(rows, hf_tokenizer, max_length=None, truncation_mode="keep_start"):
    """TRL 1.16's own dataset preparation (prompt extraction, EOS, tokenization, filtering)."""
    fake_trainer = types.SimpleNamespace(_tokenizer=hf_tokenizer)
    args = types.SimpleNamespace(dataset_num_proc=None, max_length=max_length, truncation_mode=truncation_mode)
    out = DPOTrainer._prepare_dataset(fake_trainer, datasets.Dataset.from_list(rows), hf_tokenizer, args, "train")
    return [{k: row[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for row in out]


@pytest.mark.parametrize("fmt", list(ROWS))
def test_tokenize_row_equals_trl_row_by_row(tokenizers_pair, fmt):
    ours, theirs = tokenizers_pair
    expected = trl_columns(ROWS[fmt], theirs)
    for row, want in zip(ROWS[fmt], expected, strict=True):
        assert tokenize_row(row, ours) == want, row


def test_ultrafeedback_equals_trl_after_its_maybe_extract_prompt(tokenizers_pair):
    ours, theirs = tokenizers_pair
    extracted = [maybe_extract_prompt(row) for row in ULTRAFEEDBACK]
    for row, trl_row in zip(ULTRAFEEDBACK, extracted):
        assert normalize_row(row)[1:] == (trl_row["prompt"], trl_row["chosen"], trl_row["rejected"])
    expected = trl_columns([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in extracted], theirs)
    assert [tokenize_row(row, ours) for row in ULTRAFEEDBACK] == expected


def test_hh_rlhf_is_split_into_turns_then_tokenized_as_trl_tokenizes_the_conversation(tokenizers_pair):
    ours, theirs = tokenizers_pair
    row = HH[0]
    chosen = hh_messages(row["chosen"])
    assert chosen == [user("What is 2 + 3?"), assistant("5."), user("And 7 * 6?"), assistant("42.")]
    rows = [{"chosen": hh_messages(row["chosen"]), "rejected": hh_messages(row["rejected"])}]
    assert [tokenize_row(row, ours)] == trl_columns(rows, theirs)


def test_exactly_one_bos_where_the_tokenizer_has_one(tokenizers_pair):
    ours, _ = tokenizers_pair
    bos = ours._tok.token_to_id("<s>")
    for row in (ROWS["standard"][0], ROWS["conversational"][0]):  # post-processor / template writes the BOS
        ids = tokenize_row(row, ours)
        assert ids["prompt_ids"].count(bos) == (ours.bos_token_id is not None)
        assert bos not in ids["chosen_ids"] + ids["rejected_ids"]
        if ours.bos_token_id is not None:
            assert ids["prompt_ids"][0] == bos


@pytest.mark.parametrize("mode", ["keep_start", "keep_end"])
def test_max_length_truncation_equals_trl_collator(tokenizers_pair, mode):
    ours, theirs = tokenizers_pair
    rows = ROWS["standard"] + ROWS["conversational"]
    examples = [tokenize_row(row, ours) for row in rows]
    max_length = 12
    triples = [(e["prompt_ids"], e["chosen_ids"], e["rejected_ids"]) for e in examples]
    batch = collate_token_ids(triples, max_len=64, pad_id=ours.pad_token_id, vocab_size=ours.vocab_size,
                              max_length=max_length, truncation_mode=mode)
    want = DataCollatorForPreference(pad_token_id=ours.pad_token_id, max_length=max_length,
                                     truncation_mode=mode)(examples)
    np.testing.assert_array_equal(batch.input_ids, want["input_ids"].numpy())
    np.testing.assert_array_equal(batch.attention_mask, want["attention_mask"].numpy())
    scored = want["completion_mask"].numpy()[:, 1:].astype(bool)  # TRL scores token t + 1 from logits at t
    np.testing.assert_array_equal(batch.loss_mask[:, :-1], scored)
    np.testing.assert_array_equal(batch.targets[:, :-1][scored], want["input_ids"].numpy()[:, 1:][scored])
    assert batch.truncated == sum(len(p) + max(len(c), len(r)) > max_length for p, c, r in triples)


def test_keep_start_drops_the_rows_trl_drops(tokenizers_pair, tmp_path):
    import json

    from dpo import DPOConfig, load_preferences

    ours, theirs = tokenizers_pair
    rows = ROWS["standard"]
    lengths = [len(tokenize_row(row, ours)["prompt_ids"]) for row in rows]
    max_length = sorted(lengths)[1]  # the longest prompt(s) fill max_length on their own
    kept = trl_columns(rows, theirs, max_length=max_length)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = DPOConfig(max_length=max_length)
    pairs = load_preferences(path, tokenizer=ours, config=config, skip_invalid=True)
    assert [tokenize_row(pair, ours) for pair in pairs] == kept
    assert len(pairs.skipped) == len(rows) - len(kept) > 0
    assert "fills max_length" in pairs.skipped[0].reason


@pytest.mark.parametrize("chosen, rejected", [
    ("Q: sky? A: blue", "Q: sky? A: green"),
    ("same start then x", "same start then y"),
    ("abc", "abcd"),  # one a prefix of the other
    ([user("a"), assistant("b")], [user("a"), assistant("c")]),
    ([user("a"), assistant("b")], [user("a"), assistant("b"), user("c"), assistant("d")]),
])
def test_extract_prompt_equals_trl(chosen, rejected):
    want = trl_extract_prompt({"chosen": chosen, "rejected": rejected})
    assert extract_prompt(chosen, rejected) == (want["prompt"], want["chosen"], want["rejected"])


def test_chat_template_renders_as_transformers(tokenizers_pair):
    ours, theirs = tokenizers_pair
    conversations = [[user("Hi")], [SYSTEM, user("2 + 3?"), assistant("5"), user("And 4?")]]
    for messages in conversations:
        for generation in (False, True):
            text = ours.apply_chat_template(messages, add_generation_prompt=generation, tokenize=False)
            assert text == theirs.apply_chat_template(messages, add_generation_prompt=generation, tokenize=False)
            assert ours.apply_chat_template(messages, add_generation_prompt=generation) == theirs.apply_chat_template(
                messages, add_generation_prompt=generation, tokenize=True, return_dict=False)
    for text in ("What is 2 + 3?", "héllo wörld <|im_end|> tail"):
        assert ours.encode(text) == theirs(text)["input_ids"]
        ids = ours.encode(text)
        assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=True)
    assert ours.pad_token_id == theirs.pad_token_id and ours.eos_token_id == theirs.eos_token_id
    if ours.bos_token_id is not None:  # the template refuses a conversation opening with the assistant
        with pytest.raises(ChatTemplateError, match="Conversations must start with a user or system message"):
            ours.apply_chat_template([assistant("Hi")])
