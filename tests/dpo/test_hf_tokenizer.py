"""dpo.load_tokenizer: what a Hugging Face folder holds, read as transformers reads it (checked
against transformers where it is installed), and every bad folder one line; a missing `hf`
extra is one line with the install command."""

import json
import re
import sys

import pytest

from dpo import load_tokenizer, tokenize_row
from dpo.chat_template import ChatTemplate, ChatTemplateError
from dpo.data import PreferenceDataError
from dpo.hf_extra import MissingExtraError
from dpo.hf_tokenizer import TokenizerFolderError
from tests.dpo.hf_setup import CHATML, write_folder


def test_special_tokens_template_and_padding(tmp_path):
    tok = load_tokenizer(write_folder(tmp_path / "t"))
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id == tok._tok.token_to_id("<|endoftext|>")
    assert tok.bos_token_id is None and tok.has_chat_template
    assert tok.decode(tok.encode("Paris. Tokyo!")) == "Paris. Tokyo!"
    # without a pad token, batches are padded with the EOS (TRL's rule)
    folder = write_folder(tmp_path / "nopad", extra_config={"pad_token": None})
    assert load_tokenizer(folder).pad_token_id == tok.eos_token_id


def test_named_templates_and_chat_template_jinja(tmp_path):
    folder = write_folder(tmp_path / "jinja")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = [{"name": "tool_use", "template": "x"}, {"name": "default", "template": CHATML}]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    messages = [{"role": "user", "content": "Hi"}]
    text = load_tokenizer(folder).apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    (folder / "chat_template.jinja").write_text("{{ 'from the file' }}")  # the file wins, as in transformers
    assert load_tokenizer(folder).apply_chat_template(messages, tokenize=False) == "from the file"


def test_plain_text_special_tokens_come_from_the_post_processor_as_in_transformers(tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    for bos in (False, True):  # add_bos_token in the config is ignored by both when tokenizer.json is there
        folder = write_folder(tmp_path / f"t{bos}", bos=bos, extra_config={"add_bos_token": not bos})
        ours = load_tokenizer(folder)
        theirs = transformers.PreTrainedTokenizerFast.from_pretrained(str(folder))
        assert ours.encode("2 + 3?") == theirs("2 + 3?")["input_ids"]
        assert (ours.encode("2 + 3?")[0] == ours.bos_token_id) == bos


def test_template_variables_as_transformers_passes_them():
    template = ChatTemplate("{{ bos_token }}|{{ messages | tojson }}|{{ add_generation_prompt }}|{{ tools }}",
                            {"bos_token": "<s>"})
    assert template.render([{"role": "user", "content": "é<b>", "name": None}], add_generation_prompt=True) == (
        '<s>|[{"role": "user", "content": "é<b>"}]|True|None')
    with pytest.raises(ChatTemplateError, match="^chat template has a syntax error at line 1"):
        ChatTemplate("{% for %}")
    with pytest.raises(ChatTemplateError, match="^chat template: no system messages$"):
        ChatTemplate("{{ raise_exception('no system messages') }}").render([])


BAD_FOLDERS = [
    (lambda d: None, "no such tokenizer folder"),
    (lambda d: d.mkdir(), "has no tokenizer.json"),
    (lambda d: (d.mkdir(), (d / "tokenizer.json").write_text("{")), "tokenizer.json cannot be loaded"),
    (lambda d: write_folder(d, extra_config={"eos_token": "<nope>"}), "eos_token '<nope>' is not in the vocabulary"),
    (lambda d: (write_folder(d), (d / "tokenizer_config.json").write_text("[1]")),
     "tokenizer_config.json must hold a JSON object"),
    (lambda d: (write_folder(d), (d / "tokenizer_config.json").write_text("{x")), "cannot read tokenizer_config.json"),
    (lambda d: write_folder(d, extra_config={"chat_template": 7}), "chat_template must be a string, got int"),
    (lambda d: write_folder(d, template="{% if %}"), "chat template has a syntax error"),
]


@pytest.mark.parametrize("make, message", BAD_FOLDERS)
def test_bad_folder_is_one_line(tmp_path, make, message):
    folder = tmp_path / "tok"
    make(folder)
    with pytest.raises((TokenizerFolderError, ChatTemplateError), match=re.escape(message)) as info:
        load_tokenizer(folder)
    assert "\n" not in str(info.value)


def test_conversational_row_without_a_template_is_one_line(tmp_path):
    tok = load_tokenizer(write_folder(tmp_path / "t", extra_config={"chat_template": None}))
    row = {"prompt": [{"role": "user", "content": "Hi"}], "chosen": "a", "rejected": "b"}
    with pytest.raises(TokenizerFolderError, match="has no chat_template, so conversational rows"):
        tokenize_row(row, tok)
    assert tokenize_row({"prompt": "Hi", "chosen": "a", "rejected": "b"}, tok)["chosen_ids"][-1] == tok.eos_token_id
    with pytest.raises(PreferenceDataError, match='^row: field "rejected" is missing'):
        tokenize_row({"prompt": "Hi", "chosen": "a"}, tok)


@pytest.mark.parametrize("module", ["tokenizers", "jinja2"])
def test_missing_extra_is_one_line_with_the_install_command(tmp_path, monkeypatch, module):
    folder = write_folder(tmp_path / "t")
    monkeypatch.setitem(sys.modules, module, None)  # import of it now fails, as when it is not installed
    with pytest.raises(MissingExtraError, match=f"^{module} is not installed; .*: pip install 'minigrad-dpo\\[hf\\]'$"):
        load_tokenizer(folder)


def test_jinja2_older_than_3_1_6_is_refused(monkeypatch):
    import jinja2

    monkeypatch.setattr(jinja2, "__version__", "3.1.5")
    with pytest.raises(MissingExtraError, match=r"^jinja2 3.1.5 is too old for chat templates \(3.1.6 or later\)"):
        ChatTemplate("{{ 1 }}")
