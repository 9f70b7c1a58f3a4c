"""Pretrained GPT-2 / Llama / Qwen2 against transformers, on both backends: logits of a
right-padded batch (float64, 1e-10), every parameter's gradient of a masked next-token
loss (cosine >= 1 - 1e-9, max relative error <= 1e-6), float32 against transformers
untouched, sharded and legacy files, save_pretrained back into transformers, and one
clear line for each bad folder."""

import copy
import json
import os
import shutil

import numpy as np
import pytest

import dpo
from backends import get_backend
from backends.parity import compare_named
from dpo import safetensors_io
from dpo.pretrained import PretrainedError, load_pretrained
from tests.dpo.pretrained_setup import (
    ARCHS,
    as_numpy,
    build_hf,
    float64_reference,
    masked_next_token_loss,
    right_padded_batch,
    transformers_or_skip,
)

BACKENDS = ["numpy", "torch"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{arch: (transformers model in float32, its folder)}, each folder with a tokenizer file."""
    transformers_or_skip()
    out = {}
    for arch in ARCHS:
        model = build_hf(arch)
        folder = tmp_path_factory.mktemp(arch)
        model.save_pretrained(folder)
        (folder / "tokenizer.json").write_text('{"stand-in": "copied as it is"}')
        out[arch] = (model, str(folder))
    return out


def hf_logits_and_grads(model, ids, mask):
    import torch

    model.zero_grad()
    logits = model(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits
    loss = masked_next_token_loss(torch.nn.functional, logits, ids, mask, torch.tensor)
    loss.backward()
    grads = {n: as_numpy(p.grad) for n, p in model.named_parameters()}
    return as_numpy(logits), float(loss.item()), grads


def our_logits_and_grads(model, ids, mask):
    be = type(model).backend
    logits = model(ids, mask)
    loss = masked_next_token_loss(be.F, logits, ids, mask, be.tensor)
    loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        g = as_numpy(p.grad)
        grads[name] = g.T if name.endswith(type(model).transposed) else g  # the file's (in, out) layout
    return as_numpy(logits), float(loss.item()), grads


def split_key_biases(grads):
    """GPT-2's key bias moves every score of a query row by the same amount q·b_k, which
    softmax ignores: its gradient is exactly 0, and both sides hold only rounding noise
    there (relative error is meaningless). (Under RoPE the bias is rotated differently
    at each position, so Qwen2's is not 0.) Returns the gradients without those
    entries, and the key-bias gradients on their own."""
    kept, key_biases = {}, {}
    for name, g in grads.items():
        if name.endswith("attn.c_attn.bias"):  # GPT-2's fused q | k | v
            third = g.shape[0] // 3
            kept[name + "[q,v]"] = np.concatenate((g[:third], g[2 * third:]))
            key_biases[name + "[k]"] = g[third:2 * third]
        else:
            kept[name] = g
    return kept, key_biases


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_float64_logits_and_every_gradient_match_transformers(saved, arch, backend):
    hf, folder = saved[arch]
    reference = float64_reference(copy.deepcopy(hf))
    ours = load_pretrained(folder, backend=backend, dtype="float64")
    ids, mask = right_padded_batch()
    ref_logits, ref_loss, ref_grads = hf_logits_and_grads(reference, ids, mask)
    logits, loss, grads = our_logits_and_grads(ours, ids, mask)
    worst = np.abs(logits - ref_logits).max()
    print(f"{arch} on {backend}: worst |logit difference| {worst:.3g}")
    assert worst <= 1e-10
    assert loss == pytest.approx(ref_loss, abs=1e-12)
    assert set(grads) == set(ref_grads), "parameter names differ from transformers'"
    grads, key_biases = split_key_biases(grads)
    ref_grads, ref_key_biases = split_key_biases(ref_grads)
    assert all(np.any(g != 0) for g in grads.values()), "a parameter got no gradient"
    compare_named(grads, ref_grads).check(min_cosine=1 - 1e-9, max_rel_err=1e-6)
    assert bool(key_biases) == (arch == "gpt2")
    for name, g in {**key_biases, **ref_key_biases}.items():
        assert np.abs(g).max() <= 1e-15, f"{name}: the gradient of a key bias must be 0, got {np.abs(g).max()}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_float32_matches_transformers_untouched(saved, arch, backend):
    hf, folder = saved[arch]
    ours = load_pretrained(folder, backend=backend, dtype="float32")
    ids, mask = right_padded_batch(seed=1)
    ref_logits, ref_loss, ref_grads = hf_logits_and_grads(hf, ids, mask)
    logits, loss, grads = our_logits_and_grads(ours, ids, mask)
    assert abs(loss - ref_loss) / abs(ref_loss) <= 1e-5
    assert np.abs(logits - ref_logits).max() <= 1e-4
    grads, ref_grads = split_key_biases(grads)[0], split_key_biases(ref_grads)[0]
    compare_named(grads, ref_grads).check(min_cosine=0.9999)


def test_tied_head_is_one_parameter_and_names_are_the_checkpoints(saved):
    import torch

    for arch, embedding in (("gpt2", "transformer.wte.weight"), ("llama", "model.embed_tokens.weight")):
        for backend in BACKENDS:
            model = load_pretrained(saved[arch][1], backend=backend, dtype="float64")
            names = [n for n, _ in model.named_parameters()]
            assert "lm_head.weight" not in names and embedding in names
            assert model.lm_head.weight is dict(model.named_parameters())[embedding]
    torch_model = load_pretrained(saved["qwen2"][1], backend="torch")
    assert isinstance(torch_model, torch.nn.Module)
    assert "lm_head.weight" in dict(torch_model.named_parameters())  # untied
    assert "model.layers.0.self_attn.q_proj.bias" in dict(torch_model.named_parameters())
    assert "model.layers.0.self_attn.o_proj.bias" not in dict(torch_model.named_parameters())


def test_llama3_inverse_frequencies_equal_transformers_bit_for_bit(saved):
    for arch in ("llama", "qwen2"):
        hf, folder = saved[arch]
        ours = load_pretrained(folder)
        np.testing.assert_array_equal(ours.inv_freq, hf.model.rotary_emb.inv_freq.double().numpy())


def test_sharded_folder_loads_the_same_weights(saved, tmp_path):
    hf, folder = saved["llama"]
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert os.path.isfile(tmp_path / "model.safetensors.index.json") and not os.path.isfile(
        tmp_path / "model.safetensors")
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".safetensors")]) > 1
    whole, sharded = load_pretrained(folder, dtype="float64"), load_pretrained(tmp_path, dtype="float64")
    for name, value in whole.export_weights().items():
        np.testing.assert_array_equal(sharded.export_weights()[name], value, err_msg=name)


def test_legacy_gpt2_file_without_prefix_and_with_mask_buffers(saved, tmp_path):
    hf, folder = saved["gpt2"]
    tensors, _ = safetensors_io.load_file(os.path.join(folder, "model.safetensors"))
    legacy = {name.removeprefix("transformer."): value for name, value in tensors.items()}
    legacy["h.0.attn.bias"] = np.tril(np.ones((1, 1, 48, 48), dtype=np.float32))
    legacy["h.0.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    safetensors_io.save_file(tmp_path / "model.safetensors", legacy)
    shutil.copy(os.path.join(folder, "config.json"), tmp_path / "config.json")
    ids, mask = right_padded_batch()
    a, b = load_pretrained(folder, dtype="float64"), load_pretrained(tmp_path, dtype="float64")
    np.testing.assert_array_equal(as_numpy(a(ids, mask)), as_numpy(b(ids, mask)))


def test_bfloat16_file_loads_exactly(saved, tmp_path):
    import torch
    from safetensors.torch import load_file

    hf, _ = saved["qwen2"]
    copy.deepcopy(hf).to(torch.bfloat16).save_pretrained(tmp_path)
    expected = {k: v.float().numpy() for k, v in load_file(tmp_path / "model.safetensors").items()}
    model = load_pretrained(tmp_path, dtype="float32")
    for name, value in model.export_weights().items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


@pytest.mark.parametrize("arch", ARCHS)
def test_save_pretrained_loads_in_transformers_with_the_same_logits(saved, arch, tmp_path):
    import torch
    import transformers

    ours = load_pretrained(saved[arch][1], backend="numpy", dtype="float64")
    ours.save_pretrained(tmp_path, dtype="float64")
    assert json.loads((tmp_path / "tokenizer.json").read_text()) == {"stand-in": "copied as it is"}
    back = float64_reference(transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float64).eval())
    assert type(back).__name__ == ours.architecture
    ids, mask = right_padded_batch(seed=2)
    expected = as_numpy(back(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits)
    assert np.abs(as_numpy(ours(ids, mask)) - expected).max() <= 1e-10
    again = load_pretrained(tmp_path, backend="torch", dtype="float64")  # and back here, on the other backend
    assert np.abs(as_numpy(again(ids, mask)) - expected).max() <= 1e-10


@pytest.mark.parametrize("arch", ARCHS)
def test_a_model_built_here_from_a_minimal_config_loads_in_transformers(arch, tmp_path):
    """No source folder: save_pretrained writes out model_type and every value the model
    uses, so transformers' defaults cannot disagree with ours."""
    import torch
    import transformers

    from dpo.pretrained import ARCHITECTURES

    name = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[arch]
    raw = {"architectures": [name], "vocab_size": 50}
    raw.update({"n_embd": 16, "n_layer": 1, "n_head": 2, "n_positions": 32} if arch == "gpt2" else
               {"hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1, "num_attention_heads": 4,
                "num_key_value_heads": 2, "max_position_embeddings": 32})
    definition, parse = ARCHITECTURES[name]
    ours = definition(parse(raw, "test"), backend=get_backend("numpy", dtype="float64"))
    ours.save_pretrained(tmp_path, dtype="float64")
    back = float64_reference(transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float64).eval())
    ids, mask = right_padded_batch(seed=3, T=6)
    ids = ids % 50
    expected = as_numpy(back(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits)
    assert np.abs(as_numpy(ours(ids, mask)) - expected).max() <= 1e-10


def test_to_backend_and_load_weights_round_trip(saved):
    numpy_model = load_pretrained(saved["gpt2"][1], dtype="float64")
    torch_model = numpy_model.to_backend(get_backend("torch", dtype="float64"))
    ids, mask = right_padded_batch()
    np.testing.assert_allclose(as_numpy(torch_model(ids, mask)), as_numpy(numpy_model(ids, mask)), atol=1e-12)
    assert dpo.load_pretrained is load_pretrained


# ---- every bad folder is one clear line ------------------------------------------------------
def _edit_config(folder, tmp_path, **changes):
    target = tmp_path / "edited"
    shutil.copytree(folder, target)
    config = json.loads((target / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (target / "config.json").write_text(json.dumps(config))
    return target


def _bad_weights(folder, tmp_path, edit):
    target = tmp_path / "weights"
    shutil.copytree(folder, target)
    tensors, _ = safetensors_io.load_file(target / "model.safetensors")
    edit(tensors)
    safetensors_io.save_file(target / "model.safetensors", tensors)
    return target


BAD = {
    "hub id": (lambda f, t: "HuggingFaceTB/SmolLM2-135M", "download the folder first"),
    "no folder": (lambda f, t: t / "nothing-here", "no such folder"),
    "a file": (lambda f, t: os.path.join(f, "config.json"), "not a folder"),
    "no config": (lambda f, t: (os.remove(shutil.copytree(f, t / "c") / "config.json"), t / "c")[1],
                  "config.json: missing"),
    "bad json": (lambda f, t: ((t / "j").mkdir(), (t / "j" / "config.json").write_text("{oops"), t / "j")[2],
                 "config.json: unreadable"),
    "unknown architecture": (lambda f, t: _edit_config(f, t, architectures=["MambaForCausalLM"]),
                             "architecture 'MambaForCausalLM' is not supported; supported: GPT2LMHeadModel"),
    "no weights": (lambda f, t: (os.remove(shutil.copytree(f, t / "w") / "model.safetensors"), t / "w")[1],
                   "no model.safetensors and no model.safetensors.index.json"),
    "truncated weights": (lambda f, t: (shutil.copytree(f, t / "tr"),
                                        (t / "tr" / "model.safetensors").write_bytes(b"\x10\x00"), t / "tr")[2],
                          "not a safetensors file"),
    "missing tensor": (lambda f, t: _bad_weights(f, t, lambda w: w.pop("model.layers.1.mlp.up_proj.weight")),
                       "tensor model.layers.1.mlp.up_proj.weight is missing from the weights"),
    "wrong shape": (lambda f, t: _bad_weights(f, t, lambda w: w.update({"model.norm.weight": np.ones(7, np.float32)})),
                    "tensor model.norm.weight has shape (7,), the config expects (32,)"),
    "sliding window": (lambda f, t: _edit_config(f, t, use_sliding_window=True), "sliding-window attention"),
    "rope type": (lambda f, t: _edit_config(f, t, rope_parameters={"rope_type": "yarn", "factor": 4.0}),
                  "rope scaling type 'yarn' is not implemented; supported: default, llama3"),
    "activation": (lambda f, t: _edit_config(f, t, hidden_act="gelu"), "hidden_act 'gelu' is not implemented"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_folders_are_one_clear_line(saved, tmp_path, case):
    make, message = BAD[case]
    with pytest.raises(PretrainedError) as excinfo:
        load_pretrained(make(saved["llama"][1], tmp_path))
    text = str(excinfo.value)
    assert message in text and "\n" not in text, text


def test_missing_shard_and_bad_gpt2_option_are_one_line(saved, tmp_path):
    hf, _ = saved["gpt2"]
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    shard = sorted(n for n in os.listdir(tmp_path / "sharded") if n.endswith(".safetensors"))[0]
    os.remove(tmp_path / "sharded" / shard)
    with pytest.raises(PretrainedError, match=f"{shard}: missing; model.safetensors.index.json lists this shard"):
        load_pretrained(tmp_path / "sharded")
    edited = _edit_config(saved["gpt2"][1], tmp_path, scale_attn_by_inverse_layer_idx=True)
    with pytest.raises(PretrainedError, match="scale_attn_by_inverse_layer_idx=True .* is not implemented"):
        load_pretrained(edited)


@pytest.mark.parametrize(("ids", "mask", "error", "message"), [
    (np.ones((2, 3)), None, TypeError, "GPT2LMHeadModel: token ids must be integers, got float64"),
    (np.ones(3, dtype=np.int64), None, ValueError, "token ids must have shape (batch, time), got (3,)"),
    (np.full((1, 3), 96), None, ValueError, "token id 96 is outside the vocabulary [0, 96)"),
    (np.ones((1, 49), dtype=np.int64), None, ValueError, "sequence length 49 exceeds max_len 48"),
    (np.ones((2, 3), dtype=np.int64), np.ones((2, 4)), ValueError, "attention_mask has shape (2, 4)"),
    (np.ones((2, 3), dtype=np.int64), np.array([[1, 1, 1], [0, 1, 1]]), ValueError,
     "attention_mask row 1 is not right padding"),
])
def test_bad_forward_inputs_are_one_clear_line(saved, ids, mask, error, message):
    model = load_pretrained(saved["gpt2"][1])
    with pytest.raises(error) as excinfo:
        model(ids, mask)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value), str(excinfo.value)
