"""Every preference format through the whole pipeline with a Hugging Face tokenizer trained here
(ChatML): load -> tokenize -> one DPO step -> eval -> generate, on both backends; the same
batch gives the same reference log-probs on both; reference log-probs cached on disk, reused
and invalidated by each thing they depend on; the CLI's length options, counts and messages."""

import json
import os

import numpy as np
import pytest

from dpo import DPOConfig, load_preferences, load_tokenizer, tokenize_row
from dpo.batching import collate
from dpo.cli import EXIT_USAGE, main
from dpo.evaluation import evaluate_margins
from dpo.generation import generate
from dpo.model import GPTConfig, TinyGPT
from dpo.training import build_models, reference_log_probs, train_dpo
from tests.dpo.hf_setup import write_folder
from tests.dpo.pipeline_setup import backend, backend_names


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


ROWS = [  # one row of each format, in one file
    {"prompt": "What is 2 + 3?", "chosen": " 5.", "rejected": " Maybe 6."},
    {"prompt": [{"role": "system", "content": "Be brief."}, user("Capital of France?")],
     "chosen": [assistant("Paris.")], "rejected": [assistant("Tokyo, I think.")]},
    {"chosen": "Name three colors: red, green, blue", "rejected": "Name three colors: red"},
    {"chosen": [user("Vowels?"), assistant("a e i o u")], "rejected": [user("Vowels?"), assistant("b c d")]},
    {"chosen": "\n\nHuman: Define a variable.\n\nAssistant: A named value.",
     "rejected": "\n\nHuman: Define a variable.\n\nAssistant: A thing, maybe."},
    {"prompt": "Sort the items.", "prompt_id": "u1", "score_chosen": 8.0, "score_rejected": 2.0,
     "chosen": [user("Sort the items."), assistant("Sorted.")], "rejected": [user("Sort the items."), assistant("No.")],
     "messages": []},
]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return load_tokenizer(write_folder(tmp_path_factory.mktemp("tok")))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "prefs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


def config_for(tok, **changes):
    model = GPTConfig(vocab_size=tok.vocab_size, hidden=16, heads=2, depth=1, max_len=64)
    return DPOConfig(**{**dict(model=model, batch_size=6, warmup_steps=0, lr=1e-2, max_steps=1, sft_steps=0),
                        **changes})


@backend_names
def test_every_format_trains_evaluates_and_generates(tok, data, backend_name, tmp_path):
    config = config_for(tok)
    pairs = load_preferences(data, tokenizer=tok, max_len=config.max_len, config=config)
    assert len(pairs.formats) == 6 and sum(pairs.formats.values()) == 6
    be = backend(backend_name, dtype="float64")
    policy, reference = build_models(config, backend=be)
    before = policy.export_weights()
    result = train_dpo(policy, reference, pairs, config, tokenizer=tok, out_dir=str(tmp_path))
    assert result.steps == 1 and np.isfinite(result.history[-1]["loss"])
    assert any(not np.array_equal(before[k], v) for k, v in policy.export_weights().items())
    margins = evaluate_margins(policy, reference, pairs, config, tokenizer=tok)
    assert len(margins) == 6 and all(np.isfinite(m.margin) for m in margins)
    assert isinstance(generate(policy, tok, [user("Vowels?")], max_new_tokens=3), str)
    assert isinstance(generate(policy, tok, "2 + 3?", system="Be brief.", max_new_tokens=3), str)


def test_both_backends_score_the_hf_batch_alike(tok, data):
    config = config_for(tok)
    pairs = load_preferences(data, tokenizer=tok, max_len=config.max_len)
    logps = []
    for name in ("numpy", "torch"):
        model = TinyGPT(config.model, seed=3, backend=backend(name, dtype="float64"))
        logps.append(reference_log_probs(model, pairs, tok, config.max_len, config=config))
    np.testing.assert_allclose(logps[0], logps[1], rtol=1e-10, atol=1e-10)
    batch = collate(pairs, tok, config.max_len)  # the batch holds exactly tokenize_row's ids, right-padded
    row = tokenize_row(pairs[1], tok)
    n = len(row["prompt_ids"]) + len(row["chosen_ids"])
    assert batch.input_ids[1, :n].tolist() == row["prompt_ids"] + row["chosen_ids"]
    assert (batch.input_ids[1, n:] == tok.pad_token_id).all()


def test_reference_log_probs_cached_reused_and_invalidated(tok, data, tmp_path, capfd):
    from dpo import ref_cache

    config = config_for(tok, precompute_ref_log_probs=True)
    pairs = load_preferences(data, tokenizer=tok, max_len=config.max_len)
    be = backend("numpy", dtype="float64")
    _, reference = build_models(config, backend=be)
    calls, notes = [], []

    def compute(ref=reference, ps=pairs, cfg=config):
        calls.append(1)
        return reference_log_probs(ref, ps, tok, cfg.max_len, config=cfg)

    def cached(ref=reference, ps=pairs, cfg=config, tokenizer=tok):
        prints = ref_cache.fingerprint(ref, ps, tokenizer, cfg)
        return ref_cache.load_or_compute(str(tmp_path), "train", prints, lambda: compute(ref, ps, cfg), notes.append)

    first = cached()
    assert os.path.isfile(tmp_path / "ref_logps_train.npz") and len(calls) == 1
    np.testing.assert_array_equal(cached(), first)
    assert len(calls) == 1 and notes[-1].startswith("reusing the reference log-probs in ")
    _, other = build_models(config, backend=be, seed=5)
    changes = [dict(ref=other), dict(ps=pairs[:-1]), dict(cfg=config_for(tok, max_length=40)),
               dict(tokenizer=load_tokenizer(write_folder(tmp_path / "tok2", bos=True)))]
    for change, part in zip(changes, ("reference", "data", "lengths", "tokenizer")):
        cached(**change)
        assert any(f"the {part} changed since it was written; recomputing" in n for n in notes[-2:]), notes[-2:]
        cached()  # back to the original: recomputed again, since the file now holds the changed one
    assert len(calls) == 1 + 2 * len(changes)
    (tmp_path / "ref_logps_train.npz").write_bytes(b"garbage")
    cached()
    assert "cannot be read" in notes[-2]


# ---- the command line ---------------------------------------------------------------------------------
def cli(capsys, argv):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def byte_data(tmp_path_factory):
    """A JSON array mixing formats, for the byte tokenizer the CLI's TinyGPT uses."""
    rows = [{"prompt": "Compute 2 + 3 and explain it at some length please.", "chosen": "5", "rejected": "6"},
            {"chosen": [user("Capital of Japan?"), assistant("Tokyo.")],
             "rejected": [user("Capital of Japan?"), assistant("Kyoto, I think, or maybe Osaka.")]},
            {"chosen": "\n\nHuman: Say hi.\n\nAssistant: hi", "rejected": "\n\nHuman: Say hi.\n\nAssistant: bye"}]
    path = tmp_path_factory.mktemp("data") / "prefs.json"
    path.write_text(json.dumps(rows, indent=2))
    return str(path)


def test_cli_length_options_report_counts_and_the_cache_is_reused(capsys, byte_data, tmp_path):
    out = str(tmp_path / "run")
    argv = ["train", "--data", byte_data, "--out", out, "--max-steps", "1", "--sft-steps", "0",
            "--max-length", "40", "--truncation-mode", "keep_end", "--max-completion-length", "20",
            "--precompute-ref-log-probs"]
    status, _, err = cli(capsys, argv)
    assert status == 0, err
    assert f"{byte_data}: 2 of 3 pairs truncated by max_completion_length 20, max_length 40 " \
           "(truncation_mode keep_end)" in err
    assert f"wrote the reference log-probs to {os.path.join(out, 'ref_logps_train.npz')}" in err
    argv.append("--overwrite")  # a new run in the same folder: the cache beside it stays
    status, _, err = cli(capsys, argv)
    assert status == 0 and "reusing the reference log-probs" in err
    status, _, err = cli(capsys, [a if a != "40" else "30" for a in argv])
    assert status == 0 and "the lengths changed since it was written; recomputing" in err


def test_cli_skip_invalid_counts_rows_whose_prompt_fills_max_length(capsys, byte_data, tmp_path):
    argv = ["train", "--data", byte_data, "--out", str(tmp_path), "--max-steps", "1", "--sft-steps", "0",
            "--max-length", "20"]
    status, _, err = cli(capsys, argv)
    assert status == EXIT_USAGE and err.count("\n") == 1
    assert f'error: {byte_data}:2: field "prompt" fills max_length 20 on its own (53 tokens)' in err
    status, _, err = cli(capsys, argv + ["--skip-invalid"])
    assert status == 0 and f"skipped 1 invalid row(s) of {byte_data}; first: {byte_data}:2: field \"prompt\"" in err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run"))
    assert main(["sft", "--steps", "1", "--out", out]) == 0
    return os.path.join(out, "sft.safetensors")


def test_cli_generate_with_messages_and_system(capsys, checkpoint, tmp_path):
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"role": "system", "content": "Be brief."}, user("2 + 3?")]))
    status, out, err = cli(capsys, ["generate", "--checkpoint", checkpoint, "--messages", str(chat),
                                    "--messages", json.dumps([user("Hi")]), "--prompt", "Colors?",
                                    "--system", "Answer in one word.", "--max-new-tokens", "2"])
    assert status == 0, err
    assert out.splitlines()[::2] == ["Colors?", "2 + 3?", "Hi"]


@pytest.mark.parametrize("extra, message", [
    ([], "generate: give --prompt TEXT or --messages FILE_OR_JSON"),
    (["--messages", "[]"], "--messages: messages must be a non-empty list of messages"),
    (["--messages", "no-such-file.json"], "--messages: 'no-such-file.json' is neither JSON nor a file"),
    (["--messages", '[{"role": "user", "content": "a"}]', "--system", "s"], "--system goes with --prompt"),
])
def test_cli_generate_bad_input(capsys, checkpoint, extra, message):
    status, _, err = cli(capsys, ["generate", "--checkpoint", checkpoint, *extra])
    assert status == EXIT_USAGE and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("extra, message", [
    (["--max-length", "0"], "--max-length: DPOConfig.max_length must be a positive int, got 0"),
    (["--truncation-mode", "left"],
     "--truncation-mode: DPOConfig.truncation_mode must be 'keep_start' or 'keep_end', got 'left'"),
    (["--max-length", "500"], "DPOConfig.max_length 500 exceeds the model's context (model.max_len 96)"),
])
def test_cli_bad_length_options(capsys, tmp_path, extra, message):
    status, _, err = cli(capsys, ["train", "--out", str(tmp_path), *extra])
    assert status == EXIT_USAGE and err.count("\n") == 1 and message in err, err
