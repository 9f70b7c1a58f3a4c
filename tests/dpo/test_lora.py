"""LoRA (dpo.lora): the layer's math and gradients, both backends alike, the reference
being exactly the adapters-off model, merging, DPO training only the adapters, and
every bad input's message. PEFT's files: tests/dpo/test_lora_peft.py."""

import json
import math
import os

import numpy as np
import pytest

import minigrad
from backends import get_backend
from dpo.config import DPOConfig
from dpo.data import make_preferences
from dpo.lora import (
    LoraError,
    LoraLinear,
    adapter_state,
    adapters_off,
    apply_lora,
    disable_adapters,
    load_adapter,
    load_adapter_state,
    merge_lora,
    read_adapter,
    save_adapter,
)
from dpo.model import GPTConfig, TinyGPT
from dpo.training import build_models, train_dpo
from tests.conftest import require_torch
from tests.minigrad.op_cases import LAYOUTS, assert_close, case, check_gradcheck, check_torch_parity, params

SMALL = GPTConfig(hidden=16, heads=2, depth=2)  # the tokenizer's vocabulary (260) and max_len (96)
BACKENDS = ["numpy", "torch"]


def backend(name, dtype="float64"):
    if name == "torch":
        require_torch()
    return get_backend(name, dtype=dtype)


def batch(rng, rows=3, T=9):
    """Token ids and a right-padded mask (the last row shorter)."""
    ids = rng.integers(0, SMALL.vocab_size, (rows, T))
    mask = np.ones((rows, T), dtype=np.int64)
    mask[-1, T - 3:] = 0
    return ids, mask


def random_adapters(model, seed=1, scale=0.3):
    """Non-zero A and B (B is zero after apply_lora, which would hide a wrong formula)."""
    rng = np.random.default_rng(seed)
    load_adapter_state(model, {k: scale * rng.standard_normal(v.shape) for k, v in adapter_state(model).items()})


def newest_checkpoint(run_dir):
    """The run's last checkpoint folder, checkpoint-<step>."""
    steps = [int(name.split("-")[1]) for name in os.listdir(run_dir) if name.startswith("checkpoint-")]
    return os.path.join(run_dir, f"checkpoint-{max(steps)}")


def logits(model, ids, mask=None):
    be = type(model).backend
    with be.no_grad():
        return np.array(be.to_numpy(model(be.tensor(ids), None if mask is None else be.tensor(mask))), copy=True)


# ---- the layer ------------------------------------------------------------------------------
LORA_CASE = case("lora_linear", lambda lib, F, x, w, b, a, bb: F.linear(x, w, b) + F.linear(F.linear(x, a), bb) * 0.75,
                 (2, 3, 5), (4, 5), (4,), (2, 5), (4, 2))


@pytest.mark.parametrize("lora_case, layout", params([LORA_CASE], LAYOUTS, for_gradcheck=True))
def test_lora_formula_gradcheck_and_torch(lora_case, layout, torch):
    check_gradcheck(lora_case, layout)
    check_torch_parity(lora_case, layout, torch)


def test_lora_linear_module_matches_closed_form_and_gradchecks():
    be = backend("numpy")
    rng = np.random.default_rng(0)
    base = be.nn.Linear(5, 4).to(np.float64)
    a, b = rng.standard_normal((3, 5)), rng.standard_normal((4, 3))
    layer = LoraLinear(base, 3, 6.0, 0.0, a, b, backend=be)
    x = minigrad.tensor(rng.standard_normal((2, 3, 5)), requires_grad=True)
    w, bias = base.weight.data, base.bias.data
    expected = x.data @ w.T + bias + 2.0 * (x.data @ a.T @ b.T)  # scaling alpha / r = 6 / 3
    np.testing.assert_allclose(layer(x).data, expected, rtol=0, atol=1e-12)
    inputs = [x, layer.weight, layer.bias, layer.lora_A.weight, layer.lora_B.weight]
    for t in inputs:
        t.requires_grad_(True)
    assert minigrad.gradcheck(lambda *_: layer(x), inputs, names=["x", "weight", "bias", "lora_A", "lora_B"])


def test_lora_linear_same_on_both_backends():
    np_be, torch_be = backend("numpy"), backend("torch")
    rng = np.random.default_rng(2)
    w, bias, a, b = (rng.standard_normal(s) for s in [(6, 5), (6,), (2, 5), (6, 2)])
    x = rng.standard_normal((3, 5))
    results = []
    for be in (np_be, torch_be):
        base = be.nn.Linear(5, 6)
        be.place(base)
        be.load_numpy_state(base, {"weight": w, "bias": bias})
        layer = LoraLinear(base, 2, 3.0, 0.0, a, b, backend=be)
        base.requires_grad_(False)
        xt = be.tensor(x, requires_grad=True)
        out = layer(xt)
        (out * be.tensor(np.arange(18.0).reshape(3, 6))).sum().backward()
        grads = [xt.grad, layer.lora_A.weight.grad, layer.lora_B.weight.grad]
        assert layer.weight.grad is None and layer.bias.grad is None  # frozen base
        results.append([be.to_numpy(t) for t in [out, *grads]])
    for k, (mine, theirs) in enumerate(zip(*results)):
        assert_close(np.asarray(mine), np.asarray(theirs), f"LoraLinear output/grad {k}")


# ---- apply_lora ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKENDS)
def test_apply_lora_names_init_and_trainable(name):
    be = backend(name)
    model = TinyGPT(SMALL, backend=be)
    ids, mask = batch(np.random.default_rng(0))
    before = logits(model, ids, mask)
    apply_lora(model, r=4, alpha=8, target_modules=["qkv", "fc2"], seed=7)
    keys = list(model.state_dict())
    assert keys[keys.index("blocks.0.attn.qkv.weight") + 1] == "blocks.0.attn.qkv.lora_A.weight"
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == sorted(f"blocks.{i}.{m}.lora_{x}.weight" for i in range(2) for m in ("attn.qkv", "fc2")
                               for x in "AB")
    state = adapter_state(model)
    # PEFT's init, drawn independently: A ~ U(-1/sqrt(in), 1/sqrt(in)) per layer in module order, B = 0
    rng = np.random.default_rng(7)
    bound = 1 / math.sqrt(SMALL.hidden)
    for i in range(2):
        np.testing.assert_array_equal(state[f"blocks.{i}.attn.qkv.lora_A.weight"],
                                      rng.uniform(-bound, bound, (4, SMALL.hidden)))
        np.testing.assert_array_equal(state[f"blocks.{i}.fc2.lora_A.weight"],
                                      rng.uniform(-1 / math.sqrt(4 * SMALL.hidden), 1 / math.sqrt(4 * SMALL.hidden),
                                                  (4, 4 * SMALL.hidden)))
        assert not state[f"blocks.{i}.fc2.lora_B.weight"].any()
    np.testing.assert_array_equal(logits(model, ids, mask), before)  # B = 0: the adapted model starts as the base


@pytest.mark.parametrize("name", BACKENDS)
def test_reference_is_the_adapters_off_model_exactly(name):
    be = backend(name)
    model = TinyGPT(SMALL, backend=be)
    ids, mask = batch(np.random.default_rng(1))
    base = logits(model, ids, mask)
    apply_lora(model, r=2, alpha=4, target_modules=["qkv", "out", "fc1", "fc2", "head"])
    random_adapters(model)
    adapted = logits(model, ids, mask)
    assert np.abs(adapted - base).max() > 1e-3
    reference = adapters_off(model)
    assert list(reference.parameters()) == []  # no second copy of the weights
    np.testing.assert_array_equal(logits(reference, ids, mask), base)
    with disable_adapters(model):
        np.testing.assert_array_equal(logits(model, ids, mask), base)
    np.testing.assert_array_equal(logits(model, ids, mask), adapted)  # switched back on


@pytest.mark.parametrize("name", BACKENDS)
def test_merged_equals_unmerged(name):
    be = backend(name)
    model = TinyGPT(SMALL, backend=be)
    plain_names = list(model.state_dict())
    apply_lora(model, r=3, alpha=5, target_modules=["qkv", "fc1"])
    random_adapters(model)
    ids, mask = batch(np.random.default_rng(2))
    unmerged = logits(model, ids, mask)
    weight = be.to_numpy(model.blocks[0].fc1.weight).copy()
    a, b = (adapter_state(model)[f"blocks.0.fc1.lora_{x}.weight"] for x in "AB")
    merge_lora(model)
    assert list(model.state_dict()) == plain_names
    np.testing.assert_allclose(be.to_numpy(model.blocks[0].fc1.weight), weight + (5 / 3) * b @ a, rtol=0, atol=1e-14)
    np.testing.assert_allclose(logits(model, ids, mask), unmerged, rtol=0, atol=1e-10)


def test_merge_keeping_adapters_resets_them():
    model = TinyGPT(SMALL, backend=backend("numpy"))
    apply_lora(model, r=2, target_modules=["qkv"])
    random_adapters(model)
    ids, _ = batch(np.random.default_rng(3))
    adapted = logits(model, ids)
    merge_lora(model, unload=False)
    assert all(not v.any() for k, v in adapter_state(model).items() if "lora_B" in k)
    np.testing.assert_allclose(logits(adapters_off(model), ids), adapted, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", BACKENDS)
def test_reference_loading_the_policy_folds_its_adapters(name):
    """The warm-up idiom `reference.load_weights(policy.export_weights())`: the reference
    becomes the policy, whose outputs stay as they were."""
    be = backend(name)
    policy, reference = build_models(DPOConfig(model=SMALL, lora_r=2, lora_target_modules=["qkv", "fc2"]), backend=be)
    random_adapters(policy)  # as a LoRA warm-up leaves them
    ids, mask = batch(np.random.default_rng(6))
    warmed = logits(policy, ids, mask)
    assert np.abs(logits(reference, ids, mask) - warmed).max() > 1e-3
    reference.load_weights(policy.export_weights())
    np.testing.assert_allclose(logits(reference, ids, mask), warmed, rtol=0, atol=1e-10)
    np.testing.assert_allclose(logits(policy, ids, mask), warmed, rtol=0, atol=1e-10)
    assert all(not v.any() for k, v in adapter_state(policy).items() if "lora_B" in k)
    with pytest.raises(LoraError, match=r"AdaptersOff.load_weights: the weights do not fit TinyGPT: missing "
                                        r"tok.weight \(1 missing, 0 unexpected\)"):
        reference.load_weights({k: v for k, v in policy.export_weights().items() if k != "tok.weight"})


# ---- training -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BACKENDS)
def test_dpo_step_changes_only_the_adapters(name, tmp_path):
    be = backend(name)
    config = DPOConfig(model=SMALL, lora_r=2, lora_alpha=4, lora_target_modules=["qkv", "fc1"], max_steps=1,
                       warmup_steps=0, batch_size=4, lr=1e-2)
    policy, reference = build_models(config, backend=be)
    random_adapters(policy)
    pairs = make_preferences()[:4]
    before = policy.export_weights()
    base_before = reference.export_weights()
    train_dpo(policy, reference, pairs, config, out_dir=str(tmp_path))
    after = policy.export_weights()
    assert set(base_before) == {k for k in before if "lora_" not in k}
    for key, value in before.items():
        if "lora_" in key:
            assert np.abs(after[key] - value).max() > 1e-6, f"{key} did not change"
        else:
            np.testing.assert_array_equal(after[key], value, err_msg=f"{key} (a base weight) changed")
    # the run's adapter folder loads back into a fresh model: same logits as the trained policy
    fresh = TinyGPT(SMALL, backend=be)
    load_adapter(fresh, tmp_path / "adapter")
    ids, mask = batch(np.random.default_rng(4))
    np.testing.assert_allclose(logits(fresh, ids, mask), logits(policy, ids, mask), rtol=0, atol=1e-12)


def test_save_and_load_adapter_round_trip(tmp_path):
    model = TinyGPT(SMALL, backend=backend("numpy"))
    apply_lora(model, r=2, alpha=3, dropout=0.1, target_modules=["out"])
    random_adapters(model)
    save_adapter(model, tmp_path, base_model_name_or_path="some/folder")
    config, tensors = read_adapter(tmp_path)
    assert (config["r"], config["lora_alpha"], config["lora_dropout"], config["target_modules"]) == (2, 3, 0.1, ["out"])
    assert config["base_model_name_or_path"] == "some/folder" and config["fan_in_fan_out"] is False
    assert sorted(tensors) == sorted(adapter_state(model))
    for key, value in adapter_state(model).items():
        np.testing.assert_array_equal(tensors[key], value)


# ---- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(r=0), "apply_lora: r must be a positive int, got 0"),
    (dict(r=2.5), "apply_lora: r must be a positive int, got 2.5"),
    (dict(alpha=-1), "apply_lora: alpha must be a positive number, got -1"),
    (dict(dropout=1.0), "apply_lora: dropout must be a number in [0, 1), got 1.0"),
    (dict(target_modules=[]), "apply_lora: target_modules must be a non-empty list"),
    (dict(target_modules="("), "apply_lora: target_modules '(' is not a regular expression"),
    (dict(target_modules="qkv"), "apply_lora: target_modules 'qkv' is a regular expression (PEFT's rule for a string) "
                                 "and matches no whole linear layer name (such as blocks.0.attn.qkv)"),
    (dict(target_modules=["qkv", "q_proj"]),
     "apply_lora: target module(s) 'q_proj' match no linear layer of TinyGPT; its linear layers are named: "
     "fc1, fc2, head, out, qkv"),
])
def test_apply_lora_bad_settings(kwargs, message):
    model = TinyGPT(SMALL, backend=backend("numpy"))
    with pytest.raises(LoraError) as error:
        apply_lora(model, **kwargs)
    assert str(error.value).startswith(message)
    assert not any("lora" in k for k in model.state_dict())


def test_lora_misuse_messages():
    model = TinyGPT(SMALL, backend=backend("numpy"))
    with pytest.raises(LoraError, match="adapters_off: TinyGPT has no LoRA adapters; call apply_lora first"):
        adapters_off(model)
    apply_lora(model)  # TinyGPT's default target: qkv
    assert sorted({k.split(".")[-3] for k in adapter_state(model)}) == ["qkv"]
    with pytest.raises(LoraError, match="apply_lora: TinyGPT already has LoRA adapters"):
        apply_lora(model)
    bad = {k: np.zeros((3, 3)) for k in adapter_state(model)}
    with pytest.raises(LoraError, match=r"blocks.0.attn.qkv.lora_A.weight has shape \(3, 3\), the model needs"):
        load_adapter_state(model, bad)
    with pytest.raises(LoraError, match="missing blocks.1.attn.qkv.lora_A.weight"):
        load_adapter_state(model, {k: v for k, v in adapter_state(model).items() if not k.startswith("blocks.1")})


@pytest.mark.parametrize("edit, message", [
    (lambda d: os.remove(d / "adapter_model.safetensors"), "adapter_model.safetensors: missing"),
    (lambda d: (d / "adapter_config.json").write_text("{"), "adapter_config.json: not readable JSON"),
    (lambda d: _set(d, peft_type="IA3"), "peft_type is 'IA3', only LORA adapters are supported"),
    (lambda d: _set(d, use_dora=True), "use_dora=True is not supported (only plain LoRA)"),
    (lambda d: _set(d, modules_to_save=["head"]), "modules_to_save=['head'] is not supported"),
    (lambda d: _set(d, bias="all"), "bias='all' is not supported (only 'none')"),
    (lambda d: _set(d, r=0), "adapter_config.json: r must be a positive int, got 0"),
])
def test_bad_adapter_folders(tmp_path, edit, message):
    model = TinyGPT(SMALL, backend=backend("numpy"))
    apply_lora(model, r=2, target_modules=["qkv"])
    save_adapter(model, tmp_path)
    edit(tmp_path)
    with pytest.raises(LoraError) as error:
        load_adapter(TinyGPT(SMALL, backend=backend("numpy")), tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


def _set(directory, **values):
    path = directory / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


def test_missing_adapter_folder(tmp_path):
    with pytest.raises(LoraError, match="nowhere: no such adapter folder"):
        read_adapter(str(tmp_path / "nowhere"))


@pytest.mark.parametrize("kwargs, message", [
    (dict(lora_r=-1), "DPOConfig.lora_r must be a non-negative int, got -1"),
    (dict(lora_target_modules=["qkv"]),
     "DPOConfig.lora_target_modules is set (['qkv']) but lora_r is 0, so LoRA is off"),
    (dict(lora_r=2, sync_ref_model=True), "DPOConfig.sync_ref_model: TR-DPO moves the reference, but with LoRA"),
    (dict(lora_r=4, lora_alpha=0), "DPOConfig.lora_alpha must be a positive number, got 0"),
    (dict(lora_r=4, lora_dropout=-0.1), "DPOConfig.lora_dropout must be a number in [0, 1), got -0.1"),
    (dict(lora_r=4, lora_target_modules=[""]), "DPOConfig.lora_target_modules must be a non-empty list"),
])
def test_config_lora_fields_validated(kwargs, message):
    with pytest.raises(ValueError) as error:
        DPOConfig(**kwargs)
    assert str(error.value).startswith(message)


# ---- command line -------------------------------------------------------------------------------
def test_cli_sft_and_train_with_lora(tmp_path, capsys):
    from dpo.checkpoint import load_checkpoint
    from dpo.cli import main
    from dpo.model import init_weights

    sft_dir, run_dir = str(tmp_path / "sft"), str(tmp_path / "run")
    assert main(["sft", "--steps", "2", "--batch-size", "4", "--lora-r", "2", "--lora-target-modules", "qkv,fc1",
                 "--out", sft_dir]) == 0
    assert "wrote the LoRA adapter to" in capsys.readouterr().out
    merged = load_checkpoint(os.path.join(sft_dir, "sft.safetensors")).weights
    assert not any("lora_" in k for k in merged)  # the merged model, for `train --init`
    initial = init_weights(GPTConfig())
    assert np.array_equal(merged["blocks.0.fc2.weight"], initial["blocks.0.fc2.weight"].astype(np.float32))
    assert not np.array_equal(merged["blocks.0.fc1.weight"], initial["blocks.0.fc1.weight"].astype(np.float32))
    config, _ = read_adapter(os.path.join(sft_dir, "adapter"))
    assert (config["r"], config["target_modules"]) == (2, ["fc1", "qkv"])

    assert main(["train", "--init", os.path.join(sft_dir, "sft.safetensors"), "--max-steps", "1", "--batch-size",
                 "4", "--lora-r", "2", "--lora-alpha", "4", "--out", run_dir]) == 0
    assert "(PEFT LoRA adapter)" in capsys.readouterr().out
    trained = load_checkpoint(newest_checkpoint(run_dir)).weights
    reference = load_checkpoint(os.path.join(run_dir, "reference.safetensors")).weights
    assert sorted(reference) == sorted(merged)
    for key, value in reference.items():  # the base is the --init model, untouched
        np.testing.assert_array_equal(value, merged[key])
        np.testing.assert_array_equal(trained[key], merged[key])
    assert read_adapter(os.path.join(run_dir, "adapter"))[0]["lora_alpha"] == 4
    assert main(["eval", "--checkpoint", newest_checkpoint(run_dir)]) == 0  # adapters applied


def test_cli_train_with_lora_warm_up_folds_it_into_the_reference(tmp_path, capsys):
    from dpo.checkpoint import load_checkpoint
    from dpo.cli import main
    from dpo.model import init_weights

    assert main(["train", "--sft-steps", "2", "--max-steps", "1", "--batch-size", "4", "--lora-r", "2",
                 "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    reference = load_checkpoint(os.path.join(tmp_path, "reference.safetensors")).weights
    trained = load_checkpoint(newest_checkpoint(tmp_path)).weights
    initial = init_weights(GPTConfig())
    # the warm-up trained the qkv adapters (TinyGPT's default target), then they were merged into the base
    assert not np.array_equal(reference["blocks.0.attn.qkv.weight"], initial["blocks.0.attn.qkv.weight"])
    assert np.array_equal(reference["blocks.0.fc1.weight"], initial["blocks.0.fc1.weight"].astype(np.float32))
    for key, value in reference.items():  # DPO trained only the adapters on top of it
        np.testing.assert_array_equal(trained[key], value)


@pytest.mark.parametrize("argv, message", [
    (["--lora-alpha", "3"], "argument --lora-alpha: DPOConfig.lora_alpha is set (3.0) but lora_r is 0, so LoRA is off"),
    (["--lora-r", "-1"], "argument --lora-r: DPOConfig.lora_r must be a non-negative int, got -1"),
    (["--lora-r", "2", "--lora-dropout", "1"],
     "argument --lora-dropout: DPOConfig.lora_dropout must be a number in [0, 1), got 1.0"),
    (["--lora-r", "2", "--lora-target-modules", ","],
     "argument --lora-target-modules: expected comma-separated module names, got ','"),
    (["--lora-r", "2", "--lora-target-modules", "nope"],
     "apply_lora: target module(s) 'nope' match no linear layer of TinyGPT; its linear layers are named: "
     "fc1, fc2, head, out, qkv"),
])
@pytest.mark.parametrize("command", ["sft", "train"])
def test_cli_bad_lora_options(command, argv, message, tmp_path, capsys):
    from dpo.cli import EXIT_USAGE, main

    status = main([command, "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE, err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


@pytest.mark.parametrize("name", BACKENDS)
def test_dropout_acts_on_the_adapter_input_in_training_only(name):
    be = backend(name)
    model = TinyGPT(SMALL, backend=be)
    apply_lora(model, r=2, dropout=0.5, target_modules=["qkv"])
    random_adapters(model)
    ids, _ = batch(np.random.default_rng(5))
    model.eval()
    evaluated = logits(model, ids)
    np.testing.assert_array_equal(logits(model, ids), evaluated)  # no randomness in eval mode
    model.train()
    be.manual_seed(0)
    trained = logits(model, ids)
    assert np.abs(trained - evaluated).max() > 1e-6
    with disable_adapters(model):  # dropout sits only on the adapter path
        np.testing.assert_array_equal(logits(model, ids), logits(adapters_off(model), ids))


def test_lora_run_resumed_equals_uninterrupted(tmp_path):
    be = backend("numpy")
    config = DPOConfig(model=SMALL, lora_r=2, lora_target_modules=["qkv", "fc1"], max_steps=2, batch_size=4, lr=1e-2,
                       warmup_steps=0, checkpoint_every=1)
    pairs = make_preferences()[:8]
    policy, reference = build_models(config, backend=be)
    train_dpo(policy, reference, pairs, config, out_dir=str(tmp_path / "whole"))

    first = DPOConfig(**{**config.to_dict(), "max_steps": 1})
    partial, partial_reference = build_models(first, backend=be)
    train_dpo(partial, partial_reference, pairs, first, out_dir=str(tmp_path / "cut"))
    resumed, resumed_reference = build_models(config, backend=be)
    train_dpo(resumed, resumed_reference, pairs, config, out_dir=str(tmp_path / "cut"),
              resume_from=newest_checkpoint(tmp_path / "cut"))
    expected, got = adapter_state(policy), adapter_state(resumed)
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    assert np.abs(expected["blocks.0.fc1.lora_B.weight"]).max() > 0  # it trained


def test_a_string_target_is_a_regular_expression_on_whole_names():
    model = apply_lora(TinyGPT(SMALL, backend=backend("numpy")), target_modules=r"blocks\.1\..*(qkv|fc2)")
    assert sorted({k.rsplit(".", 2)[0] for k in adapter_state(model)}) == ["blocks.1.attn.qkv", "blocks.1.fc2"]


@pytest.mark.parametrize("name", BACKENDS)
def test_generation_with_adapters_same_with_and_without_the_cache(name):
    from dpo.generation import generate_batch

    model = TinyGPT(SMALL, backend=backend(name))
    apply_lora(model, r=2, target_modules=["qkv", "fc1"])
    random_adapters(model, scale=1.0)
    prompts = [[5, 6, 7], [9, 10, 11, 12, 13]]
    cached = generate_batch(model, prompts, max_new_tokens=6)
    assert cached == generate_batch(model, prompts, max_new_tokens=6, use_cache=False)
    with disable_adapters(model):
        assert cached != generate_batch(model, prompts, max_new_tokens=6)  # the adapters are used


# ---- to_backend carries the adapters --------------------------------------------------------------
def _tiny_gpt2(be):
    from dpo.pretrained.gpt2 import GPT2Config, GPT2LMHeadModel

    config = GPT2Config.from_hf({"n_layer": 2, "n_embd": 16, "n_head": 2, "vocab_size": SMALL.vocab_size,
                                 "n_positions": 32, "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})
    model = GPT2LMHeadModel(config, backend=be)
    rng = np.random.default_rng(4)
    model.load_weights({k: 0.1 * rng.standard_normal(v.shape) for k, v in model.export_weights().items()})
    return model


@pytest.mark.parametrize("kind", ["tinygpt", "gpt2"])
def test_to_backend_carries_the_adapters(kind):
    numpy64, torch64 = backend("numpy"), backend("torch")
    model = TinyGPT(SMALL, backend=numpy64) if kind == "tinygpt" else _tiny_gpt2(numpy64)
    ids, mask = batch(np.random.default_rng(8))
    base = logits(model, ids, mask)
    apply_lora(model, r=2, alpha=6)
    random_adapters(model)
    adapted = logits(model, ids, mask)
    there = model.to_backend(torch64)
    assert adapter_state(there).keys() == adapter_state(model).keys()
    for key, value in adapter_state(model).items():
        np.testing.assert_array_equal(adapter_state(there)[key], value)
    assert ([n for n, p in there.named_parameters() if p.requires_grad]
            == [n for n, p in model.named_parameters() if p.requires_grad])
    np.testing.assert_allclose(logits(there, ids, mask), adapted, rtol=0, atol=1e-10)
    np.testing.assert_allclose(logits(adapters_off(there), ids, mask), base, rtol=0, atol=1e-10)
    save_free = there.to_backend(numpy64)  # and back, with an adapter switched off on the way
    with disable_adapters(there):
        np.testing.assert_allclose(logits(there.to_backend(numpy64), ids, mask), base, rtol=0, atol=1e-10)
    np.testing.assert_allclose(logits(save_free, ids, mask), adapted, rtol=0, atol=1e-10)


def test_to_backend_without_lora_settings_says_what_to_do():
    model = TinyGPT(SMALL, backend=backend("numpy"))
    apply_lora(model, r=2)
    object.__delattr__(model, "lora_settings")
    with pytest.raises(LoraError, match=r"^to_backend: TinyGPT has LoRA layers but no lora_settings; merge_lora"):
        model.to_backend(backend("numpy", "float32"))
