"""Checkpoints (checkpoint-<step>/ folders) and model files: weights, config, optimizer state,
step and RNG state survive a round trip; the write is atomic; `load_state_dict(load_file(...))`
works in PyTorch and a torch TinyGPT gives the same logits; damaged or foreign files, and NaN or
infinite values, give one clear CheckpointError."""

import os

import numpy as np
import pytest

import dpo.safetensors_io as safetensors_io
from dpo.batching import collate
from dpo.checkpoint import (
    FORMAT,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    remove_leftovers,
    rotate_checkpoints,
    save_checkpoint,
    save_model,
)
from dpo.tokenizer import InstructionTokenizer
from dpo.training import build_models, dpo_step, reference_log_probs
from tests.dpo.pipeline_setup import backend, backend_names, numpy_of, pairs, tiny_config, tiny_model


def trained(backend_name, steps=2, dtype="float32"):
    """(policy, optimizer, scheduler, config) after `steps` DPO updates: the optimizer has state."""
    be = backend(backend_name, dtype)
    config = tiny_config()
    policy, reference = build_models(config, backend=be)
    optimizer = be.optimizer("adamw", policy.parameters(), lr=config.lr, weight_decay=0.0)
    scheduler = be.lambda_lr(optimizer, lambda step: 1.0 / (1 + step))
    tokenizer = InstructionTokenizer()
    batch = collate(pairs(4), tokenizer, 96)
    ref = reference_log_probs(reference, pairs(4), tokenizer, 96) - 0.5
    for step in range(steps):
        dpo_step(policy, batch, ref, optimizer, config, scheduler, step=step + 1)
    return policy, optimizer, scheduler, config, batch, ref


def next_update(policy, optimizer, scheduler, config, batch, ref):
    dpo_step(policy, batch, ref, optimizer, config, scheduler)
    return policy.export_weights()


# ---- round trip ------------------------------------------------------------------------------
@backend_names
def test_round_trip_of_weights_config_step_and_optimizer(backend_name, tmp_path):
    policy, optimizer, scheduler, config, _, _ = trained(backend_name)
    path = tmp_path / "checkpoint-2"
    save_checkpoint(path, policy, config, optimizer=optimizer, scheduler=scheduler, step=2, epoch=1,
                    extra={"note": "hi"}, log_history=[{"step": 1, "loss": 0.5}])
    assert sorted(os.listdir(path)) == ["model.safetensors", "optimizer.safetensors", "trainer_state.json"]
    loaded = load_checkpoint(path)
    weights = policy.export_weights()
    assert loaded.weights.keys() == weights.keys()
    for name, array in weights.items():
        assert loaded.weights[name].dtype == array.dtype and np.array_equal(loaded.weights[name], array), name
    assert loaded.config == config.to_dict()
    assert (loaded.step, loaded.epoch, loaded.extra) == (2, 1, {"note": "hi"})
    assert loaded.log_history == [{"step": 1, "loss": 0.5}]
    assert loaded.architecture == {"class": "TinyGPT", **config.model.to_dict()}
    assert loaded.backend == {"name": backend_name, "dtype": "float32"}
    saved_state = type(policy).backend.optimizer_state_to_numpy(optimizer)
    restored = loaded.optimizer_state()
    assert restored["state"].keys() == saved_state["state"].keys()
    for index, entry in saved_state["state"].items():
        for key, value in entry.items():
            assert np.array_equal(np.asarray(restored["state"][index][key]), np.asarray(value)), (index, key)
    assert restored["param_groups"][0]["lr"] == saved_state["param_groups"][0]["lr"]


@backend_names
def test_restored_training_state_continues_exactly(backend_name, tmp_path):
    """Continue the original optimizer one step, and a fresh one restored from the
    checkpoint one step: the weights come out bit-identical."""
    policy, optimizer, scheduler, config, batch, ref = trained(backend_name)
    path = tmp_path / "checkpoint-2"
    save_checkpoint(path, policy, config, optimizer=optimizer, scheduler=scheduler, step=2)
    expected = next_update(policy, optimizer, scheduler, config, batch, ref)

    be = type(policy).backend
    fresh, _ = build_models(config, backend=be, seed=99)
    fresh_optimizer = be.optimizer("adamw", fresh.parameters(), lr=config.lr, weight_decay=0.0)
    fresh_scheduler = be.lambda_lr(fresh_optimizer, lambda step: 1.0 / (1 + step))
    loaded = load_checkpoint(path)
    fresh.load_weights(loaded.weights)
    loaded.restore_training_state(fresh_optimizer, fresh_scheduler, be)
    assert fresh_scheduler.last_epoch == scheduler.last_epoch - 1
    got = next_update(fresh, fresh_optimizer, fresh_scheduler, config, batch, ref)
    assert all(np.array_equal(got[k], expected[k]) for k in expected)


@backend_names
def test_rng_state_round_trip(backend_name, tmp_path):
    be = backend(backend_name, "float32")
    be.manual_seed(123)
    path = tmp_path / "checkpoint-0"
    save_checkpoint(path, tiny_model(be), tiny_config())
    saved = be.get_rng_state()
    be.manual_seed(7)  # move the generator elsewhere
    assert load_checkpoint(path).rng_state().keys() == saved.keys()
    load_checkpoint(path).restore_training_state(backend=be)
    restored = be.get_rng_state()
    for key, value in saved.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(restored[key], value), key
        else:
            assert restored[key] == value, key


def test_numpy_backend_rng_draws_repeat_after_restore(tmp_path):
    import minigrad

    be = backend("numpy", "float32")
    model = tiny_model(be)
    be.manual_seed(5)
    save_checkpoint(tmp_path / "c", model, tiny_config())
    expected = minigrad.randn(4).data.copy()
    be.manual_seed(6)
    load_checkpoint(tmp_path / "c").restore_training_state(backend=be)
    assert np.array_equal(minigrad.randn(4).data, expected)


# ---- atomic write ----------------------------------------------------------------------------
def crash_on_replace(monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(safetensors_io.os, "replace", crash)


def crash_on_fsync(monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("simulated crash while flushing")

    monkeypatch.setattr(safetensors_io.os, "fsync", crash)


@pytest.mark.parametrize("crash", [crash_on_replace, crash_on_fsync])
@pytest.mark.parametrize("target", ["checkpoint-1", "checkpoint-2"])  # the same step again, or the next one
def test_a_crash_mid_write_leaves_the_previous_checkpoint_intact(crash, target, tmp_path, monkeypatch):
    policy, optimizer, scheduler, config, batch, ref = trained("numpy", steps=1)
    path = tmp_path / "checkpoint-1"
    save_checkpoint(path, policy, config, optimizer=optimizer, step=1)
    before = {name: (path / name).read_bytes() for name in os.listdir(path)}
    next_update(policy, optimizer, scheduler, config, batch, ref)
    crash(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(tmp_path / target, policy, config, optimizer=optimizer, step=2)
    monkeypatch.undo()
    assert {name: (path / name).read_bytes() for name in os.listdir(path)} == before
    assert os.listdir(tmp_path) == ["checkpoint-1"]  # no temporary folder left behind
    assert load_checkpoint(path).step == 1


def test_saving_the_same_step_again_replaces_the_folder(tmp_path):
    policy, optimizer, _, config, _, _ = trained("numpy", steps=1)
    save_checkpoint(tmp_path / "checkpoint-1", policy, config, optimizer=optimizer, step=1, epoch=0)
    save_checkpoint(tmp_path / "checkpoint-1", policy, config, optimizer=optimizer, step=1, epoch=7)
    assert os.listdir(tmp_path) == ["checkpoint-1"] and load_checkpoint(tmp_path / "checkpoint-1").epoch == 7


def test_newest_rotation_and_leftovers(tmp_path):
    model, config = tiny_model(backend("numpy", "float32")), tiny_config()
    for step in (2, 10, 4):  # numeric order, not the names' order
        save_checkpoint(tmp_path / f"checkpoint-{step}", model, config, step=step)
    os.mkdir(tmp_path / "checkpoint-99")  # no model.safetensors inside: not a checkpoint
    (tmp_path / ".checkpoint-12.123.abc.tmp").mkdir()
    (tmp_path / ".reference.safetensors.123.abc.tmp").write_bytes(b"half")
    (tmp_path / "ref_logps_train.npz.tmp.npz").write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("mine")
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert load_checkpoint(tmp_path).path == str(tmp_path / "checkpoint-10")  # a run folder: its newest
    assert remove_leftovers(tmp_path) == [".checkpoint-12.123.abc.tmp", ".reference.safetensors.123.abc.tmp",
                                          "ref_logps_train.npz.tmp.npz"]
    assert rotate_checkpoints(tmp_path, 2) == [str(tmp_path / "checkpoint-2")]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-10", "checkpoint-4", "checkpoint-99", "notes.txt"]
    assert rotate_checkpoints(tmp_path, None) == []


def test_checkpoint_gets_the_usual_file_permissions(tmp_path):
    """Not mkstemp's private 0600: a checkpoint is readable like any file the user writes."""
    mask = os.umask(0o022)
    try:
        save_model(tmp_path / "c.safetensors", tiny_model(backend("numpy", "float32")), tiny_config())
    finally:
        os.umask(mask)
    assert (tmp_path / "c.safetensors").stat().st_mode & 0o777 == 0o644


# ---- PyTorch reads it ------------------------------------------------------------------------
def test_pytorch_safetensors_reader_loads_the_weights_and_torch_tinygpt_agrees(tmp_path, torch):
    safetensors_torch = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")
    source = tiny_model(backend("numpy", "float64"), perturb=3)
    save_checkpoint(tmp_path / "checkpoint-1", source, tiny_config())
    path = tmp_path / "checkpoint-1" / "model.safetensors"
    weights = safetensors_torch.load_file(str(path))  # plain state-dict names, nothing else
    expected = source.export_weights()
    assert weights.keys() == expected.keys()
    for name, array in expected.items():
        assert weights[name].dtype == torch.float64 and np.array_equal(weights[name].numpy(), array), name
    target = tiny_model(backend("torch", "float64"))
    assert not target.load_state_dict(weights).missing_keys
    batch = collate(pairs(3), InstructionTokenizer(), 96)
    logits_torch = target(torch.tensor(batch.input_ids), torch.tensor(batch.attention_mask)).detach().numpy()
    logits_numpy = numpy_of(source, source(batch.input_ids, batch.attention_mask))
    assert np.abs(logits_torch - logits_numpy).max() <= 1e-10
    with safetensors_torch.safe_open(str(path), "pt") as f:
        assert f.metadata()["format"] == "pt" and f.metadata()["minigrad_dpo"] == FORMAT


def test_files_written_by_the_safetensors_library_are_read(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="safetensors is not installed")
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, -2], dtype=np.int64),
              "c": np.zeros((0, 4), dtype=np.float64)}
    safetensors_numpy.save_file(arrays, str(tmp_path / "x.safetensors"), metadata={"k": "v"})
    tensors, metadata = safetensors_io.load_file(tmp_path / "x.safetensors")
    assert metadata == {"k": "v"}
    for name, array in arrays.items():
        assert tensors[name].dtype == array.dtype and tensors[name].shape == array.shape
        assert np.array_equal(tensors[name], array)


# ---- damaged and foreign files ---------------------------------------------------------------
@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.safetensors"
    save_model(path, tiny_model(backend("numpy", "float32")), tiny_config(), step=3)
    return path


def write(tmp_path, blob):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "nothing.safetensors")


def test_empty_and_tiny_files(tmp_path):
    with pytest.raises(CheckpointError, match=r"not a safetensors file \(only 0 bytes\)"):
        load_checkpoint(write(tmp_path, b""))
    with pytest.raises(CheckpointError, match=r"only 4 bytes"):
        load_checkpoint(write(tmp_path, b"abcd"))


def test_truncated_file(good_file, tmp_path):
    blob = good_file.read_bytes()
    with pytest.raises(CheckpointError, match="lies outside the file"):
        load_checkpoint(write(tmp_path, blob[:-10]))
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(write(tmp_path, blob[:50]))  # cut inside the header


def test_a_text_file_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not a safetensors file, or truncated"):
        load_checkpoint(write(tmp_path, b'{"prompt": "hi", "chosen": "a", "rejected": "b"}\n'))


def test_garbled_header(good_file, tmp_path):
    blob = bytearray(good_file.read_bytes())
    blob[8:12] = b"\xff\xfe{["
    with pytest.raises(CheckpointError, match="unreadable safetensors header"):
        load_checkpoint(write(tmp_path, bytes(blob)))


def test_header_that_is_not_an_object(tmp_path):
    header = b"[1, 2]  "
    with pytest.raises(CheckpointError, match="header is not a JSON object"):
        load_checkpoint(write(tmp_path, len(header).to_bytes(8, "little") + header))


def test_bad_tensor_entries(tmp_path):
    for entry, message in [('{"dtype": "Q8", "shape": [1], "data_offsets": [0, 1]}', "unsupported dtype 'Q8'"),
                           ('{"dtype": "F32", "shape": "x", "data_offsets": [0, 4]}', "malformed shape"),
                           ('{"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}', "4 bytes for shape"),
                           ('"F32"', "malformed header entry")]:
        header = ('{"w": ' + entry + "}").encode()
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(write(tmp_path, len(header).to_bytes(8, "little") + header + b"\0" * 8))


def test_a_plain_safetensors_file_is_the_wrong_format(tmp_path):
    safetensors_io.save_file(tmp_path / "w.safetensors", {"tok.weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(CheckpointError, match="not a minigrad-dpo model file .format None"):
        load_checkpoint(tmp_path / "w.safetensors")


def test_damaged_metadata(tmp_path, good_file):
    tensors, metadata = safetensors_io.load_file(good_file)
    for change, message in [({"config": None}, "lacks 'config'"), ({"step": "three"}, "unreadable metadata"),
                            ({"config": "{not json"}, "unreadable metadata"), ({"config": "[1]"}, "not a JSON object")]:
        damaged = {k: v for k, v in {**metadata, **change}.items() if v is not None}
        safetensors_io.save_file(tmp_path / "d.safetensors", tensors, damaged)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(tmp_path / "d.safetensors")
    safetensors_io.save_file(tmp_path / "d.safetensors", {}, metadata)
    with pytest.raises(CheckpointError, match="holds no weights"):
        load_checkpoint(tmp_path / "d.safetensors")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_values_are_refused(bad, tmp_path, good_file):
    tensors, metadata = safetensors_io.load_file(good_file)
    name = sorted(tensors)[1]
    tensors[name].flat[3] = bad
    safetensors_io.save_file(tmp_path / "n.safetensors", tensors, metadata)
    what = "NaN" if np.isnan(bad) else "infinite"
    with pytest.raises(CheckpointError, match=rf"n.safetensors: tensor '{name}' holds 1 {what} value"):
        load_checkpoint(tmp_path / "n.safetensors")
    policy, optimizer, _, config, _, _ = trained("numpy", steps=1)  # and in a checkpoint's optimizer state
    save_checkpoint(tmp_path / "checkpoint-1", policy, config, optimizer=optimizer, step=1)
    arrays, meta = safetensors_io.load_file(tmp_path / "checkpoint-1" / "optimizer.safetensors")
    key = sorted(arrays)[0]
    arrays[key].flat[0] = bad
    safetensors_io.save_file(tmp_path / "checkpoint-1" / "optimizer.safetensors", arrays, meta)
    with pytest.raises(CheckpointError, match=rf"optimizer.safetensors: tensor '{key}' holds 1 {what}"):
        load_checkpoint(tmp_path / "checkpoint-1")


def test_a_model_with_save_pretrained_gets_its_files_in_the_checkpoint(tmp_path):
    """A pretrained family's own files (config.json, ...) lie beside model.safetensors, whose
    tensors stay the plain state dict with this project's metadata."""
    model = tiny_model(backend("numpy", "float32"))
    written = []

    def save_pretrained(folder):
        written.append(folder)
        with open(os.path.join(folder, "config.json"), "w") as f:
            f.write('{"model_type": "tiny"}')
        with open(os.path.join(folder, "model.safetensors"), "wb") as f:
            f.write(b"replaced below")

    model.save_pretrained = save_pretrained
    save_checkpoint(tmp_path / "checkpoint-1", model, tiny_config(), step=1)
    assert (tmp_path / "checkpoint-1" / "config.json").read_text() == '{"model_type": "tiny"}'
    loaded = load_checkpoint(tmp_path / "checkpoint-1")
    assert loaded.step == 1 and all(np.array_equal(loaded.weights[k], v) for k, v in model.export_weights().items())
    assert os.path.basename(written[0]).startswith(".checkpoint-1.")  # written into the temporary folder
