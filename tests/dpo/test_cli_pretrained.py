"""`--model DIR` on sft / train / eval / generate: a Hugging Face folder (a random small
Qwen2 with a tokenizer trained here) trains, evaluates and generates, the run's model is
a Hugging Face folder transformers loads with the same logits, and each bad combination
is one line with exit status 2."""

import json

import numpy as np
import pytest

from dpo.checkpoint import load_checkpoint
from dpo.cli import EXIT_USAGE, main
from tests.dpo.pretrained_setup import as_numpy, transformers_or_skip

ROWS = [{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
         "chosen": [{"role": "assistant", "content": f"It is {2 * i}."}],
         "rejected": [{"role": "assistant", "content": "Maybe 6, I think."}]} for i in range(4)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A Qwen2 folder whose tokenizer (vocab 400, ChatML template) was trained here, and a data file."""
    transformers = transformers_or_skip()
    import torch

    from tests.dpo.hf_setup import write_folder

    root = tmp_path_factory.mktemp("cli-model")
    path = write_folder(root / "qwen")
    torch.manual_seed(0)
    config = transformers.Qwen2Config(vocab_size=400, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    transformers.Qwen2ForCausalLM(config).save_pretrained(path)
    (root / "prefs.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    return root


def run(*argv):
    return main([str(a) for a in argv])


def test_train_writes_a_hugging_face_folder_transformers_loads(folder, tmp_path, capsys):
    import torch
    import transformers

    from dpo.pretrained import load_pretrained

    out = tmp_path / "run"
    assert run("train", "--model", folder / "qwen", "--data", folder / "prefs.jsonl", "--out", out,
               "--max-steps", 2, "--batch-size", 2, "--lr", 1e-2) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "model" / "tokenizer.json").is_file() and (out / "metrics.jsonl").is_file()
    ours = load_pretrained(out / "model", dtype="float32")
    start = load_pretrained(folder / "qwen", dtype="float32")
    name = "model.layers.0.mlp.up_proj.weight"
    assert not np.array_equal(ours.export_weights()[name], start.export_weights()[name]), "DPO changed nothing"
    theirs = transformers.AutoModelForCausalLM.from_pretrained(out / "model").eval()
    ids = np.array([[5, 17, 42, 9, 3, 8]])
    with torch.no_grad():
        expected = theirs(torch.tensor(ids)).logits.numpy()
    assert np.abs(as_numpy(ours(ids)) - expected).max() <= 1e-4

    assert run("eval", "--model", out / "model", "--reference", folder / "qwen", "--data", folder / "prefs.jsonl") == 0
    assert "accuracy" in capsys.readouterr().out


def test_generate_and_sft_with_a_folder(folder, tmp_path, capsys):
    from dpo.generation import generate
    from dpo.hf_tokenizer import load_tokenizer
    from dpo.pretrained import load_pretrained

    assert run("generate", "--model", folder / "qwen", "--prompt", "What is 2 + 2?", "--max-new-tokens", 6) == 0
    expected = generate(load_pretrained(folder / "qwen"), load_tokenizer(folder / "qwen"), "What is 2 + 2?",
                        max_new_tokens=6)
    assert f"  -> {expected}" in capsys.readouterr().out
    assert run("sft", "--model", folder / "qwen", "--data", folder / "prefs.jsonl", "--out", tmp_path / "s",
               "--steps", 2, "--batch-size", 2) == 0
    assert (tmp_path / "s" / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize(("argv", "message"), [
    (["generate", "--model", "{q}", "--checkpoint", "x.safetensors", "--prompt", "hi"], "give one of --checkpoint"),
    (["generate", "--prompt", "hi"], "give one of --checkpoint"),
    (["generate", "--model", "{root}/missing", "--prompt", "hi"], "missing: no such folder"),
    (["generate", "--model", "org/model-id", "--prompt", "hi"], "download the folder first"),
    (["train", "--model", "{q}", "--out", "{tmp}/o"], "give --data FILE"),
    (["train", "--model", "{q}", "--data", "{root}/prefs.jsonl", "--init", "a.safetensors", "--out", "{tmp}/o"],
     "--init takes a TinyGPT checkpoint; a model folder starts from --model DIR"),
    (["eval", "--model", "{q}", "--data", "{root}/prefs.jsonl"], "give the reference folder as --reference DIR"),
    (["eval", "--data", "{root}/prefs.jsonl"], "give --checkpoint CKPT (TinyGPT) or --model DIR"),
    (["generate", "--model", "{q}", "--prompt", "hi", "--top-p", "0"], "--top-p"),
])
def test_bad_combinations_are_one_line_and_exit_2(folder, tmp_path, capsys, argv, message):
    argv = [a.format(q=folder / "qwen", root=folder, tmp=tmp_path) for a in argv]
    assert run(*argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(folder, tmp_path, capsys):
    import shutil

    small = tmp_path / "small"
    shutil.copytree(folder / "qwen", small)
    config = json.loads((small / "config.json").read_text())
    (small / "config.json").write_text(json.dumps({**config, "vocab_size": 300}))
    from dpo import safetensors_io

    tensors, _ = safetensors_io.load_file(small / "model.safetensors")
    tensors = {k: (v[:300] if k in ("model.embed_tokens.weight", "lm_head.weight") else v) for k, v in tensors.items()}
    safetensors_io.save_file(small / "model.safetensors", tensors)
    assert run("generate", "--model", small, "--prompt", "hi") == EXIT_USAGE
    assert "the tokenizer has 400 ids, the model's vocabulary only 300" in capsys.readouterr().err


def test_the_run_checkpoint_evaluates_generates_and_resumes(folder, tmp_path, capsys):
    """A --model run's checkpoint names its folder (DPOConfig.model_path) and holds the folder's own
    files (config.json): eval and generate take it with --checkpoint, train --resume continues it,
    --init refuses it, transformers' config reader reads it."""
    out = tmp_path / "run"
    data = folder / "prefs.jsonl"
    assert run("train", "--model", folder / "qwen", "--data", data, "--out", out, "--max-steps", 1,
               "--batch-size", 2, "--checkpoint-every", 1) == 0
    assert (out / "checkpoint-1" / "config.json").is_file() and (out / "model" / "config.json").is_file()
    transformers = transformers_or_skip()
    loaded = transformers.AutoModelForCausalLM.from_pretrained(out / "checkpoint-1")  # the checkpoint as HF reads it
    saved = load_checkpoint(out / "checkpoint-1").weights
    state = loaded.state_dict()
    assert set(saved) <= set(state)
    for name, value in saved.items():
        assert np.array_equal(state[name].numpy(), value.astype(state[name].numpy().dtype)), name
    assert run("eval", "--checkpoint", out / "checkpoint-1", "--data", data) == 0
    assert run("generate", "--checkpoint", out, "--prompt", "What is 1 + 1?", "--max-new-tokens", 3) == 0
    capsys.readouterr()
    assert run("train", "--resume", "--out", out, "--max-steps", 2) == 0  # data, batch size: the run's
    assert "step    2" in capsys.readouterr().out
    assert run("train", "--init", out / "checkpoint-2", "--data", data, "--out", tmp_path / "x") == 2
    assert "start from its folder with --model DIR" in capsys.readouterr().err


def test_config_max_len_is_the_folders_context(folder):
    from dpo.config import DPOConfig

    config = DPOConfig(model_path=str(folder / "qwen"), max_length=120)  # > TinyGPT's 96, within the folder's 128
    assert config.max_len == 128
    with pytest.raises(ValueError, match="model_path must be a folder path or None"):
        DPOConfig(model_path=7)
