"""Our LoRA adapters against PEFT's own: the files we write have exactly PEFT's tensor
names, shapes and config keys for a transformers model's module names; PEFT loads
them; an adapter PEFT wrote loads into ours; and PEFT, loading our adapter onto the
torch TinyGPT (a plain torch.nn.Module), gives our logits."""

import json

import numpy as np
import pytest

from backends import get_backend
from dpo.lora import (
    PEFT_PREFIX,
    adapter_state,
    apply_lora,
    load_adapter,
    load_adapter_state,
    peft_config,
    read_adapter,
    save_adapter,
    write_adapter,
)
from dpo.model import GPTConfig, TinyGPT

peft = pytest.importorskip("peft", reason="peft is not installed (the dev extra installs it after torch)")
transformers = pytest.importorskip("transformers", reason="transformers is not installed (the dev extra)")
torch = pytest.importorskip("torch", reason="torch is not installed")


def gpt2():
    config = transformers.GPT2Config(n_embd=16, n_layer=2, n_head=2, vocab_size=64, n_positions=32,
                                     bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config), ["c_attn", "c_proj"], True


def llama():
    config = transformers.LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=64,
                                      bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return transformers.LlamaForCausalLM(config), ["q_proj", "v_proj", "down_proj"], False


def peft_lora_weights(peft_model):
    """{module name: (A, B)} of a PEFT model's "default" adapter, as NumPy."""
    out = {}
    for name, module in peft_model.base_model.model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            out[name] = (module.lora_A["default"].weight.detach().numpy().copy(),
                         module.lora_B["default"].weight.detach().numpy().copy())
    return out


@pytest.mark.parametrize("build", [gpt2, llama])
def test_our_files_have_peft_names_and_config_and_peft_loads_them(build, tmp_path):
    torch.manual_seed(0)
    model, targets, fan_in_fan_out = build()
    peft_model = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                                            fan_in_fan_out=fan_in_fan_out, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(tmp_path / "peft")
    theirs_config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    theirs_tensors, _ = read_adapter_raw(tmp_path / "peft")

    # ours: random adapters under the transformers model's own module names
    rng = np.random.default_rng(0)
    ours = {}
    for name, (a, b) in peft_lora_weights(peft_model).items():
        ours[f"{name}.lora_A.weight"] = rng.standard_normal(a.shape)
        ours[f"{name}.lora_B.weight"] = rng.standard_normal(b.shape)
    write_adapter(tmp_path / "ours", ours, peft_config(4, 8.0, 0.0, sorted(targets), fan_in_fan_out=fan_in_fan_out))
    ours_config = json.loads((tmp_path / "ours" / "adapter_config.json").read_text())
    ours_tensors, _ = read_adapter_raw(tmp_path / "ours")

    assert {k: v.shape for k, v in ours_tensors.items()} == {k: v.shape for k, v in theirs_tensors.items()}
    assert all(k.startswith(PEFT_PREFIX) for k in ours_tensors)
    assert set(ours_config) <= set(theirs_config), sorted(set(ours_config) - set(theirs_config))
    different = {k: (ours_config[k], theirs_config[k]) for k in ours_config
                 if k != "target_modules" and ours_config[k] != theirs_config[k]}
    assert different == {}
    assert sorted(ours_config["target_modules"]) == sorted(theirs_config["target_modules"])

    # PEFT loads our folder onto a fresh transformers model: its adapters are ours
    fresh, _, _ = build()
    loaded = peft.PeftModel.from_pretrained(fresh, tmp_path / "ours")
    for name, (a, b) in peft_lora_weights(loaded).items():
        np.testing.assert_array_equal(a, ours[f"{name}.lora_A.weight"].astype(np.float32))
        np.testing.assert_array_equal(b, ours[f"{name}.lora_B.weight"].astype(np.float32))


def read_adapter_raw(directory):
    from dpo.safetensors_io import load_file

    return load_file(directory / "adapter_model.safetensors")


def test_peft_written_adapter_loads_into_ours(tmp_path):
    torch.manual_seed(1)
    model, targets, _ = llama()
    peft_model = peft.get_peft_model(model, peft.LoraConfig(r=2, lora_alpha=5, lora_dropout=0.1,
                                                            target_modules=targets, task_type="CAUSAL_LM"))
    for module in peft_lora_weights(peft_model):  # B is zero at PEFT's init; make it tell something
        torch.nn.init.normal_(peft_model.base_model.model.get_submodule(module).lora_B["default"].weight)
    peft_model.save_pretrained(tmp_path)
    config, tensors = read_adapter(tmp_path)
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (2, 5, 0.1)
    expected = peft_lora_weights(peft_model)
    assert sorted(tensors) == sorted(f"{n}.lora_{x}.weight" for n in expected for x in "AB")
    for name, (a, b) in expected.items():
        np.testing.assert_array_equal(tensors[f"{name}.lora_A.weight"], a)
        np.testing.assert_array_equal(tensors[f"{name}.lora_B.weight"], b)


TINY = GPTConfig(vocab_size=50, hidden=16, heads=2, depth=2, max_len=16)


def test_peft_on_our_adapter_gives_our_logits(tmp_path):
    """PEFT applies our saved adapter to the torch-backend TinyGPT (a plain torch.nn.Module,
    as a custom model): float64 logits equal ours on the numpy backend (with PEFT's
    module replacement, its LoRA forward and its file reading, not ours)."""
    ours = TinyGPT(TINY, backend=get_backend("numpy", dtype="float64"))
    apply_lora(ours, r=4, alpha=8, target_modules=["qkv", "fc1", "head"])
    rng = np.random.default_rng(2)
    load_adapter_state(ours, {k: 0.3 * rng.standard_normal(v.shape) for k, v in adapter_state(ours).items()})
    save_adapter(ours, tmp_path)

    theirs = TinyGPT(TINY, backend=get_backend("torch", dtype="float64"))  # same seed: same base weights
    config = peft.LoraConfig.from_pretrained(tmp_path)
    config.task_type = None  # a custom model: PEFT's generic wrapper (no transformers forward signature)
    peft.PeftModel.from_pretrained(theirs, tmp_path, config=config)
    assert any(".lora_A.default." in n for n, _ in theirs.named_parameters())  # PEFT's layers, not ours

    ids = np.random.default_rng(3).integers(0, TINY.vocab_size, (2, 11))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    with torch.no_grad():
        expected = theirs(torch.tensor(ids), torch.tensor(mask)).numpy()
    got = ours(ids, mask).data
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)

    # and back: our loader on PEFT's reading of the same folder gives the same model
    again = load_adapter(TinyGPT(TINY, backend=get_backend("numpy", dtype="float64")), tmp_path)
    np.testing.assert_array_equal(again(ids, mask).data, got)
