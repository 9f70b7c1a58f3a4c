"""LoRA on the pretrained models (GPT-2, Llama, Qwen2) against PEFT on transformers:
PEFT, loading the adapter we saved onto the transformers model, gives our logits
(float64, both backends); an adapter PEFT trained loads onto ours with PEFT's logits;
the merged model exported with save_pretrained loads in transformers with the same
logits; each architecture gets PEFT's default targets; and `train --model DIR --lora-r`
end to end."""

import json

import numpy as np
import pytest

from dpo import load_pretrained
from dpo.lora import adapter_state, apply_lora, load_adapter, load_adapter_state, merge_lora, save_adapter
from tests.dpo.pretrained_setup import ARCHS, build_hf, float64_reference

peft = pytest.importorskip("peft", reason="peft is not installed (the dev extra installs it after torch)")
torch = pytest.importorskip("torch", reason="torch is not installed")
pytest.importorskip("transformers", reason="transformers is not installed (the dev extra)")

TARGETS = {"gpt2": ["c_attn", "c_proj", "c_fc"],
           "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
TARGETS["qwen2"] = TARGETS["llama"]
DEFAULTS = {"gpt2": ["c_attn"], "llama": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"]}


def right_padded(vocab, rows=3, T=10, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, vocab, (rows, T))
    mask = np.ones((rows, T), dtype=np.int64)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return ids, mask


def hf_logits(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.double().numpy()


def assert_tokens_close(ours, theirs, mask, atol):
    """Compared where the mask has tokens: padded positions' logits are not defined alike."""
    keep = mask.astype(bool)
    worst = np.abs(ours[keep] - theirs[keep]).max()
    assert worst <= atol, f"worst |logit difference| {worst:.3g} > {atol:g}"


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("arch", ARCHS)
def test_peft_on_our_saved_adapter_gives_our_logits(arch, backend, tmp_path):
    hf = build_hf(arch)
    hf.save_pretrained(tmp_path / "model")
    ours = load_pretrained(tmp_path / "model", backend=backend, dtype="float64")
    apply_lora(ours, r=4, alpha=8, target_modules=TARGETS[arch])
    rng = np.random.default_rng(1)
    load_adapter_state(ours, {k: 0.2 * rng.standard_normal(v.shape) for k, v in adapter_state(ours).items()})
    save_adapter(ours, tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["fan_in_fan_out"] is (arch == "gpt2")
    assert config["base_model_name_or_path"] == str(tmp_path / "model")

    theirs = peft.PeftModel.from_pretrained(float64_reference(hf), tmp_path / "adapter")
    ids, mask = right_padded(hf.config.vocab_size)
    expected = hf_logits(theirs, ids, mask)
    be = type(ours).backend
    got = np.array(be.to_numpy(ours(be.tensor(ids), be.tensor(mask))))
    assert_tokens_close(got, expected, mask, 1e-10)

    # merged and exported with save_pretrained: transformers alone gives the same logits
    merge_lora(ours)
    ours.save_pretrained(tmp_path / "merged", dtype="float64")
    import transformers

    merged = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float64)
    assert_tokens_close(hf_logits(float64_reference(merged), ids, mask), expected, mask, 1e-10)


@pytest.mark.parametrize("arch", ARCHS)
def test_default_targets_are_peft_defaults(arch, tmp_path):
    build_hf(arch).save_pretrained(tmp_path)
    model = apply_lora(load_pretrained(tmp_path))
    assert sorted({k.split(".")[-3] for k in adapter_state(model)}) == DEFAULTS[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_peft_trained_adapter_loads_onto_ours_with_its_logits(arch, tmp_path):
    hf = build_hf(arch)
    hf.save_pretrained(tmp_path / "model")
    theirs = peft.get_peft_model(float64_reference(hf), peft.LoraConfig(r=2, lora_alpha=6, target_modules=TARGETS[arch],
                                                                        fan_in_fan_out=arch == "gpt2",
                                                                        task_type="CAUSAL_LM"))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "lora_B" in name:  # zero at PEFT's init; as if trained
                p.normal_(0.0, 0.2)
    theirs.save_pretrained(tmp_path / "adapter")
    ours = load_adapter(load_pretrained(tmp_path / "model", dtype="float64"), tmp_path / "adapter")
    ids, mask = right_padded(hf.config.vocab_size, seed=4)
    assert_tokens_close(ours(ids, mask).data, hf_logits(theirs, ids, mask), mask, 1e-10)


ROWS = [{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
         "chosen": [{"role": "assistant", "content": f"It is {2 * i}."}],
         "rejected": [{"role": "assistant", "content": "Maybe 6, I think."}]} for i in range(4)]


def test_cli_train_with_lora_on_a_model_folder(tmp_path, capsys):
    """train --model DIR --lora-r: only the adapters train; OUT/adapter is PEFT's and PEFT puts it on the
    folder's model with the logits of OUT/model, the merged model transformers loads."""
    import transformers

    from dpo.cli import main
    from tests.dpo.hf_setup import write_folder

    folder = write_folder(tmp_path / "qwen")
    torch.manual_seed(0)
    config = transformers.Qwen2Config(vocab_size=400, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    transformers.Qwen2ForCausalLM(config).save_pretrained(folder)
    data = tmp_path / "prefs.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    out = tmp_path / "run"
    assert main([str(a) for a in ("train", "--model", folder, "--data", data, "--out", out, "--max-steps", 2,
                                  "--batch-size", 2, "--lr", 1e-2, "--lora-r", 4, "--lora-alpha", 8)]) == 0
    assert "(PEFT LoRA adapter)" in capsys.readouterr().out
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["target_modules"] == ["q_proj", "v_proj"]  # Qwen2's default, as PEFT's
    assert adapter_config["base_model_name_or_path"] == str(folder)

    start = load_pretrained(folder).export_weights()
    merged = load_pretrained(out / "model").export_weights()
    for name, value in start.items():  # only the targeted layers moved (their adapters merged in)
        moved = not np.array_equal(merged[name], value)
        assert moved == name.endswith(("q_proj.weight", "v_proj.weight")), name

    ids = np.array([[5, 17, 42, 9, 3, 8]])
    mask = np.ones_like(ids)
    peft_model = peft.PeftModel.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(folder),
                                                out / "adapter")
    exported = transformers.AutoModelForCausalLM.from_pretrained(out / "model")
    assert_tokens_close(hf_logits(exported, ids, mask), hf_logits(peft_model, ids, mask), mask, 1e-4)
    assert main(["eval", "--checkpoint", str(out / "checkpoint-2"), "--data", str(data)]) == 0
