"""A small Hugging Face tokenizer folder for the tests: byte-level BPE trained here with `tokenizers`
(nothing downloaded), ChatML special tokens and a ChatML chat template; optionally a BOS the
post-processor adds to plain text and the template writes itself."""

import json

import pytest

tokenizers = pytest.importorskip("tokenizers", reason="the hf extra (tokenizers) is not installed")
pytest.importorskip("jinja2", reason="the hf extra (jinja2) is not installed")

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# the same, opening with the BOS text and refusing a conversation that does not start with the user or system
CHATML_BOS = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] not in ['user', 'system'] %}"
    "{{ raise_exception('Conversations must start with a user or system message') }}{% endif %}"
    + CHATML
)
CORPUS = [
    "What is the capital of France? Paris. The capital of Japan is Tokyo.",
    "Compute 2 + 3. The answer is 5. Maybe 6, I think. Seven times six is 42.",
    "Human: hello there. Assistant: hi! How can I help you today?",
    "Name three colors: red, green, blue. Vowels: a, e, i, o, u. Sort the items.",
    "Define a variable: a named value. A function maps inputs to outputs. print(42)",
] * 4
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>"]


def train_tokenizer(vocab_size=400):
    """A byte-level BPE `tokenizers.Tokenizer` trained on CORPUS with the SPECIALS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def write_folder(path, bos=False, template=None, extra_config=None):
    """A tokenizer folder at `path`: tokenizer.json and tokenizer_config.json (ChatML; with `bos`,
    "<s>" as bos_token, added to plain text by the post-processor and written by the template)."""
    from tokenizers import processors

    tok = train_tokenizer()
    config = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": template or CHATML}
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", tok.token_to_id("<s>"))])
        config.update(bos_token="<s>", chat_template=template or CHATML_BOS)
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    config.update(extra_config or {})
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return path
