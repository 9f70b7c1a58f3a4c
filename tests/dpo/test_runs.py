"""Trustworthy runs, in process: a run folder holds one run (run.json, --overwrite), --resume reads
its data and reference from the folder and refuses changed data, hyper-parameters or reference,
eval refuses a reference of another architecture or another run, --save-total-limit, "nothing left
to do", a partial metrics line, an interrupt that saves, and every bad option or file refused with
one line and exit status 2. The subprocess kills are in test_faults.py."""

import json
import os
import shutil
import signal

import numpy as np
import pytest

from dpo import interrupts, run_folder
from dpo.checkpoint import list_checkpoints, load_checkpoint, save_model, weights_fingerprint
from dpo.cli import EXIT_STATUS, EXIT_USAGE, main
from dpo.config import DPOConfig
from dpo.losses import LOSS_TYPE_NAMES, dpo_loss
from dpo.losses.options import USES_LABEL_SMOOTHING
from dpo.metrics import read_metrics
from dpo.model import GPTConfig, TinyGPT
from dpo.run_folder import file_sha256
from dpo.training import build_models, train_dpo
from tests.dpo.pipeline_setup import TINY, backend, pairs, tiny_config

PAIRS = [
    '{"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "Maybe Lyon."}',
    '{"prompt": "Compute 2 + 3.", "chosen": "5", "rejected": "Roughly 6, I think."}',
    '{"prompt": "Python: print 42", "chosen": "print(42)", "rejected": "echo 42, maybe."}',
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny model file to start from (--init), a data file, and a model of another architecture."""
    folder = tmp_path_factory.mktemp("inputs")
    config = DPOConfig(model=TINY)
    save_model(folder / "tiny.safetensors", TinyGPT(TINY, seed=0), config)
    wide = GPTConfig(hidden=32, heads=2, depth=1, max_len=96)
    save_model(folder / "wide.safetensors", TinyGPT(wide, seed=0), DPOConfig(model=wide))
    (folder / "pairs.jsonl").write_text("\n".join(PAIRS) + "\n")
    return {"init": str(folder / "tiny.safetensors"), "wide": str(folder / "wide.safetensors"),
            "data": str(folder / "pairs.jsonl"), "folder": folder}


def train_args(files, out, *more):
    return ["train", "--init", files["init"], "--data", files["data"], "--batch-size", "2", "--lr", "0.01",
            "--out", str(out), *more]


def ok(capsys, argv):
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured


def refused(capsys, argv, message, status=EXIT_USAGE):
    got = main(argv)
    captured = capsys.readouterr()
    assert got == status, (got, captured.err)
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err
    assert "Traceback" not in captured.err + captured.out


# ---- a run folder is one run -------------------------------------------------------------------
def test_run_json_and_one_run_per_folder(files, tmp_path, capsys):
    out = tmp_path / "run"
    ok(capsys, train_args(files, out, "--max-steps", "4", "--checkpoint-every", "2"))
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "train" and run["config"]["max_steps"] == 4 and run["config"]["lr"] == 0.01
    assert run["data"] == {"path": os.path.abspath(files["data"]), "sha256": file_sha256(files["data"]),
                           "skip_invalid": False}
    reference = load_checkpoint(out / "reference.safetensors")
    assert run["reference"]["fingerprint"] == weights_fingerprint(reference.weights)
    assert run["reference"]["architecture"] == {"class": "TinyGPT", **TINY.to_dict()}
    assert run["tokenizer"]["name"] == "InstructionTokenizer" and run["versions"]["numpy"] == np.__version__
    assert run["init"] == os.path.abspath(files["init"])
    assert [step for step, _ in list_checkpoints(out)] == [2, 4]
    assert load_checkpoint(out / "checkpoint-4").reference == run["reference"]["fingerprint"]

    refused(capsys, train_args(files, out, "--max-steps", "2"), f"--out {out} holds another run (run.json")
    captured = ok(capsys, train_args(files, out, "--max-steps", "1", "--overwrite"))
    assert "--overwrite removed the previous run" in captured.err
    assert [step for step, _ in list_checkpoints(out)] == [1]  # the old checkpoints went with the old run
    assert [row["step"] for row in read_metrics(out / "metrics.jsonl")] == [1]


def test_overwrite_never_deletes_what_the_run_reads(files, tmp_path, capsys):
    out = tmp_path / "run"
    ok(capsys, train_args(files, out, "--max-steps", "1"))
    argv = ["train", "--init", str(out / "checkpoint-1"), "--data", files["data"], "--out", str(out), "--overwrite"]
    refused(capsys, argv, f"--overwrite would delete {out / 'checkpoint-1'}, which this run reads")


def test_save_total_limit_resume_newest_and_nothing_left(files, tmp_path, capsys):
    out = tmp_path / "run"
    ok(capsys, train_args(files, out, "--max-steps", "3", "--checkpoint-every", "1", "--save-total-limit", "2"))
    assert [step for step, _ in list_checkpoints(out)] == [2, 3]
    captured = ok(capsys, ["train", "--resume", "--out", str(out)])
    assert captured.out.strip() == (f"nothing left to do: {out / 'checkpoint-3'} is at step 3 of 3; raise --epochs "
                                    "or --max-steps to train further")
    ok(capsys, ["train", "--resume", "--out", str(out), "--max-steps", "5"])  # newest, data from run.json
    assert [step for step, _ in list_checkpoints(out)] == [4, 5]
    log = load_checkpoint(out / "checkpoint-5").log_history
    assert [row["step"] for row in log] == [1, 2, 3, 4, 5] == [r["step"] for r in read_metrics(out / "metrics.jsonl")]


def test_resume_refuses_other_data_and_changed_hyper_parameters(files, tmp_path, capsys):
    out = tmp_path / "run"
    ok(capsys, train_args(files, out, "--max-steps", "2", "--checkpoint-every", "1"))
    other = tmp_path / "other.jsonl"
    other.write_text(PAIRS[0] + "\n")
    refused(capsys, ["train", "--resume", "--out", str(out), "--data", str(other)],
            f"--data {other} (sha256 {file_sha256(other)[:12]}) is not the data the run in {out} was trained on: "
            f"{os.path.abspath(files['data'])} (sha256 {file_sha256(files['data'])[:12]})")
    refused(capsys, ["train", "--resume", "--out", str(out), "--lr", "0.02"],
            "the options change the run's configuration (lr 0.01 -> 0.02)")
    refused(capsys, ["train", "--resume", "--out", str(out), "--overwrite"], "--overwrite and --resume")
    refused(capsys, ["train", "--resume", str(out / "checkpoint-1"), "--out", str(tmp_path)],
            "no run.json, so not a run that can be resumed")

    moved = tmp_path / "moved"  # the run's data file edited in place
    os.rename(out, moved)
    data = json.loads((moved / "run.json").read_text())["data"]["path"]
    with open(data, "a") as f:
        f.write(PAIRS[1] + "\n")
    try:
        refused(capsys, ["train", "--resume", "--out", str(moved)], f"{data}: changed since the run in {moved}")
    finally:
        with open(data, "w") as f:
            f.write("\n".join(PAIRS) + "\n")


def test_resume_and_eval_refuse_another_reference(files, tmp_path, capsys):
    out = tmp_path / "run"
    ok(capsys, train_args(files, out, "--max-steps", "2", "--checkpoint-every", "1"))
    ok(capsys, ["eval", "--checkpoint", str(out), "--data", files["data"]])
    refused(capsys, ["eval", "--checkpoint", str(out / "checkpoint-2"), "--reference", files["wide"]],
            "has another architecture than the policy")
    refused(capsys, ["eval", "--checkpoint", files["wide"], "--reference", str(out / "reference.safetensors")],
            "(policy vs reference: hidden 32 vs 16)")
    other = TinyGPT(TINY, seed=5)  # same architecture, other weights
    save_model(tmp_path / "other.safetensors", other, DPOConfig(model=TINY))
    refused(capsys, ["eval", "--checkpoint", str(out / "checkpoint-2"), "--reference",
                     str(tmp_path / "other.safetensors")], "is not the reference")
    os.replace(tmp_path / "other.safetensors", out / "reference.safetensors")  # swapped under a run
    refused(capsys, ["train", "--resume", "--out", str(out), "--max-steps", "3"], "is not the reference")


def test_a_partial_last_metrics_line_is_dropped_with_a_message(files, tmp_path, capsys):
    out = tmp_path / "run"
    ok(capsys, train_args(files, out, "--max-steps", "2", "--checkpoint-every", "1"))
    whole = (out / "metrics.jsonl").read_text()
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss": 0.69')
    captured = ok(capsys, ["train", "--resume", "--out", str(out), "--max-steps", "3"])
    assert f"{out / 'metrics.jsonl'}: dropped a partly written last line" in captured.err
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3] and (out / "metrics.jsonl").read_text().startswith(whole)


# ---- interrupts (in process; the subprocess signals are in test_faults.py) ---------------------
def test_an_interrupt_finishes_the_step_saves_and_resumes_exactly(tmp_path):
    config = tiny_config(max_steps=5, checkpoint_every=0, warmup_steps=3)
    be = backend("numpy", "float32")
    policy, reference = build_models(config, backend=be)
    whole = train_dpo(policy, reference, pairs(6), config, out_dir=tmp_path / "whole")
    expected = policy.export_weights()

    def signal_at_step_2(row):
        if row["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    policy, reference = build_models(config, backend=be)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the shell started the tests in the background
    with interrupts.saving_on_interrupt(), pytest.raises(interrupts.RunInterrupted) as caught:
        train_dpo(policy, reference, pairs(6), config, out_dir=tmp_path / "cut", on_log=signal_at_step_2)
    assert caught.value.exit_code == 130 and caught.value.step == 2
    assert str(caught.value) == f"interrupted by SIGINT after DPO step 2: saved {tmp_path / 'cut' / 'checkpoint-2'}"
    assert signal.getsignal(signal.SIGINT) is before  # put back
    policy, reference = build_models(config, backend=be)
    rest = train_dpo(policy, reference, pairs(6), config, out_dir=tmp_path / "cut",
                     resume_from=tmp_path / "cut" / "checkpoint-2")
    assert rest.rows("loss") == whole.rows("loss")[2:]
    assert all(np.array_equal(policy.export_weights()[k], expected[k]) for k in expected)


# ---- bad options and files: one line, exit 2 ---------------------------------------------------
@pytest.mark.parametrize("extra, message", [
    (["--loss-type", "sigmoid,sft", "--loss-weights", "1,-0.5"], "loss_weights entry -0.5 for 'sft' is negative"),
    (["--loss-type", "sigmoid,sft", "--loss-weights", "0,0"], "loss_weights are all zero"),
    (["--loss-type", "sigmoid,sigmoid"], "loss type 'sigmoid' is named twice"),
    (["--loss-type", "hinge", "--label-smoothing", "0.1"], "label_smoothing 0.1 has no effect on loss type(s) hinge"),
    (["--sft-steps", "3"], "--sft-steps has no effect with --init"),
])
def test_bad_options_refused_before_any_work(extra, message, files, tmp_path, capsys):
    refused(capsys, train_args(files, tmp_path / "run", *extra), message)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_an_empty_data_file_is_bad_input(files, tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    argv = train_args(files, tmp_path / "run")
    argv[argv.index("--data") + 1] = str(tmp_path / "empty.jsonl")
    refused(capsys, argv, "empty.jsonl: has no preference rows")


def test_an_unwritable_out_is_refused_before_any_work(files, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for command in (train_args(files, blocker / "run"), ["sft", "--data", files["data"], "--out", str(blocker)]):
        refused(capsys, command, f"--out {blocker}")
    os.makedirs(tmp_path / "s")
    save_model(tmp_path / "s" / "sft.safetensors", TinyGPT(TINY, seed=0), DPOConfig(model=TINY))
    refused(capsys, ["sft", "--out", str(tmp_path / "s")], "sft.safetensors exists; pass --overwrite")
    (tmp_path / "s" / ".sft.safetensors.123.abc.tmp").write_bytes(b"half")  # a killed write's leftover
    captured = ok(capsys, ["sft", "--data", files["data"], "--steps", "1", "--out", str(tmp_path / "s"), "--overwrite"])
    assert f"{tmp_path / 's'}: removed 1 temporary file(s)" in captured.err
    assert os.listdir(tmp_path / "s") == ["sft.safetensors"]


def test_nan_weights_are_refused_in_every_file_loaded(files, tmp_path, capsys):
    model = TinyGPT(TINY, seed=0)
    weights = model.export_weights()
    weights["head.weight" if "head.weight" in weights else sorted(weights)[0]][0, 0] = np.nan
    model.load_weights(weights)
    bad = tmp_path / "nan.safetensors"
    save_model(bad, model, DPOConfig(model=TINY))
    message = "holds 1 NaN value(s); the file is unusable"
    refused(capsys, train_args(files, tmp_path / "run", "--max-steps", "1")[:2] + [str(bad)] +
            train_args(files, tmp_path / "run")[3:], message)
    refused(capsys, ["generate", "--checkpoint", str(bad), "--prompt", "hi"], message)
    refused(capsys, ["eval", "--checkpoint", files["init"], "--reference", str(bad)], message)


def test_version_and_exit_status_in_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"minigrad-dpo {run_folder.version()}"
    for command in ([], ["train"], ["eval"]):
        assert main([*command, "--help"]) == 0
        assert " ".join(EXIT_STATUS.split()) in " ".join(capsys.readouterr().out.split())


def test_unknown_device_on_torch_is_bad_input(capsys, torch):
    refused(capsys, ["demo", "--backend", "torch", "--device", "tpu"], "unknown device 'tpu'")


# ---- label smoothing: which loss types read it ---------------------------------------------------
def test_uses_label_smoothing_is_what_the_losses_read():
    """Independent of the list: a type reads ε iff `dpo_loss` changes with ε; DPOConfig refuses
    ε > 0 for exactly the others."""
    rng = np.random.default_rng(0)
    be = backend("numpy", "float64")
    logps = [be.tensor(rng.normal(-20, 3, 6)) for _ in range(4)]
    lengths = dict(chosen_lengths=np.full(6, 5.0), rejected_lengths=np.full(6, 7.0), backend=be)

    def losses(name, eps):
        return be.to_numpy(dpo_loss(*logps, loss_type=name, label_smoothing=eps, **lengths).losses)

    reading = [name for name in LOSS_TYPE_NAMES
               if not np.allclose(losses(name, 0.1), losses(name, 0.2) if name == "exo_pair" else losses(name, 0.0))]
    assert reading == list(USES_LABEL_SMOOTHING)
    for name in set(LOSS_TYPE_NAMES) - set(reading):
        with pytest.raises(ValueError, match=f"label_smoothing 0.2 has no effect on loss type.s. {name}; only "):
            DPOConfig(loss_type=name, label_smoothing=0.2)
    DPOConfig(loss_type=[reading[0], "hinge"], label_smoothing=0.2)  # read by one of the types: accepted


def test_an_interrupt_at_the_end_of_an_epoch_keeps_its_evaluation(tmp_path):
    """The checkpoint of the epoch's last step is written before the epoch's held-out evaluation;
    the resumed run evaluates it then, so the log matches an uninterrupted run's."""
    config = tiny_config(max_steps=None, epochs=3, eval_fraction=0.3, checkpoint_every=0)  # 7 pairs: 2 steps/epoch
    be = backend("numpy", "float32")
    policy, reference = build_models(config, backend=be)
    whole = train_dpo(policy, reference, pairs(10), config, out_dir=tmp_path / "whole")
    assert [row["step"] for row in whole.history if "eval_loss" in row] == [2, 4, 6]

    def signal_at_step_2(row):
        if row["step"] == 2 and "loss" in row:
            os.kill(os.getpid(), signal.SIGTERM)

    policy, reference = build_models(config, backend=be)
    with interrupts.saving_on_interrupt(), pytest.raises(interrupts.RunInterrupted) as caught:
        train_dpo(policy, reference, pairs(10), config, out_dir=tmp_path / "cut", on_log=signal_at_step_2)
    assert caught.value.exit_code == 143
    policy, reference = build_models(config, backend=be)
    train_dpo(policy, reference, pairs(10), config, out_dir=tmp_path / "cut",
              resume_from=tmp_path / "cut" / "checkpoint-2")
    assert read_metrics(tmp_path / "cut" / "metrics.jsonl") == read_metrics(tmp_path / "whole" / "metrics.jsonl")


def test_a_model_file_whose_architecture_and_weights_disagree(files, tmp_path, capsys):
    from dpo import safetensors_io

    tensors, metadata = safetensors_io.load_file(files["init"])
    metadata["architecture"] = json.dumps({"class": "TinyGPT", **TINY.to_dict(), "hidden": 32})
    safetensors_io.save_file(tmp_path / "odd.safetensors", tensors, metadata)
    refused(capsys, ["generate", "--checkpoint", str(tmp_path / "odd.safetensors"), "--prompt", "hi"],
            "its architecture and its config disagree (hidden 32 vs 16)")


def test_an_interrupt_during_sft_stops_after_the_step_and_saves_nothing(files, tmp_path, capsys, monkeypatch):
    import dpo.training

    real = dpo.training.warmup_pretrain

    def signalling(*args, **kwargs):
        kwargs["log"] = lambda step, loss: os.kill(os.getpid(), signal.SIGINT) if step == 2 else None
        return real(*args, **kwargs)

    monkeypatch.setattr(dpo.training, "warmup_pretrain", signalling)
    status = main(["sft", "--data", files["data"], "--steps", "50", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 130 and err.splitlines()[-1] == ("interrupted by SIGINT after SFT step 2: nothing saved "
                                                      "(SFT is not checkpointed)")
    assert not (tmp_path / "sft.safetensors").exists()


def test_demo_refuses_a_folder_holding_a_run(files, tmp_path, capsys):
    ok(capsys, train_args(files, tmp_path, "--max-steps", "1"))
    refused(capsys, ["demo", "--out", str(tmp_path)], f"--out {tmp_path} holds another run")


def test_resume_of_a_run_stopped_before_its_first_checkpoint(files, tmp_path, capsys):
    ok(capsys, train_args(files, tmp_path, "--max-steps", "1"))
    shutil.rmtree(tmp_path / "checkpoint-1")
    refused(capsys, ["train", "--resume", "--out", str(tmp_path)],
            f"--resume: {tmp_path} holds no checkpoint-<step> folder yet")
    refused(capsys, ["train", "--resume", files["init"], "--out", str(tmp_path)],
            f"--resume {files['init']} is not a checkpoint of the run in --out {tmp_path}")


def test_sigterm_outside_training_exits_143_with_one_line(files, capsys, monkeypatch):
    import dpo.evaluation

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return []

    monkeypatch.setattr(dpo.evaluation, "evaluate_margins", terminated)
    status = main(["eval", "--checkpoint", files["init"], "--reference", files["init"], "--data", files["data"]])
    assert status == 143 and capsys.readouterr().err == "terminated (SIGTERM)\n"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
