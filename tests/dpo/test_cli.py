"""The command line: every subcommand end to end on a tiny run (sft -> train --init -> eval ->
generate, train --resume, demo), --help of each, `python -m dpo` and the `minigrad-dpo` script;
each bad input gives exactly one line on stderr, a non-zero exit and no traceback."""

import os
import subprocess
import sys

import pytest

from dpo.checkpoint import load_checkpoint
from dpo.cli import EXIT_FAILED, EXIT_USAGE, main
from dpo.metrics import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAIRS = [
    '{"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "Maybe Lyon."}',
    '{"prompt": "Compute 2 + 3.", "chosen": "5", "rejected": "Roughly 6, I think."}',
    '{"prompt": "Python: print 42", "chosen": "print(42)", "rejected": "echo 42, maybe."}',
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    path.write_text("\n".join(PAIRS) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def sft_run(data, tmp_path_factory):
    """`sft` once for the module: DIR/sft.safetensors."""
    out = str(tmp_path_factory.mktemp("run"))
    assert main(["sft", "--data", data, "--steps", "2", "--out", out]) == 0
    return out


def run_ok(capsys, argv):
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out


def fails_with_one_line(capsys, argv, message, status=EXIT_USAGE):
    got = main(argv)
    captured = capsys.readouterr()
    assert got == status, (got, captured.err)
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out


# ---- end to end --------------------------------------------------------------------------------
def test_sft_writes_its_checkpoint(sft_run):
    checkpoint = load_checkpoint(os.path.join(sft_run, "sft.safetensors"))
    assert checkpoint.step == 2 and checkpoint.config["sft_steps"] == 2


def test_sft_train_eval_generate(sft_run, data, capsys):
    out = run_ok(capsys, ["train", "--init", os.path.join(sft_run, "sft.safetensors"), "--data", data,
                          "--max-steps", "3", "--lr", "0.01", "--beta", "0.2", "--loss-type", "sigmoid,sft",
                          "--loss-weights", "1,0.5", "--batch-size", "2", "--seed", "3", "--out", sft_run])
    assert "step    3" in out and "wrote" in out
    checkpoint = load_checkpoint(os.path.join(sft_run, "checkpoint-3"))
    config = checkpoint.config
    assert checkpoint.step == 3
    assert (config["lr"], config["beta"], config["loss_type"], config["loss_weights"], config["batch_size"],
            config["seed"]) == (0.01, 0.2, ["sigmoid", "sft"], [1.0, 0.5], 2, 3)
    reference = load_checkpoint(os.path.join(sft_run, "reference.safetensors"))
    sft = load_checkpoint(os.path.join(sft_run, "sft.safetensors"))
    assert all((reference.weights[k] == sft.weights[k]).all() for k in sft.weights)  # --init is the reference
    assert [row["step"] for row in read_metrics(os.path.join(sft_run, "metrics.jsonl"))] == [1, 2, 3]
    assert os.path.exists(os.path.join(sft_run, "metrics.png"))

    out = run_ok(capsys, ["eval", "--checkpoint", os.path.join(sft_run, "checkpoint-3"), "--data", data])
    assert "What is the capital of France?" in out and "accuracy" in out

    out = run_ok(capsys, ["generate", "--checkpoint", sft_run,  # a run folder: its newest checkpoint
                          "--prompt", "Compute 2 + 3.", "--prompt", "Hi", "--max-new-tokens", "3",
                          "--temperature", "0.8", "--top-k", "5", "--seed", "1"])
    assert out.count("  -> ") == 2


def test_train_then_resume_with_more_steps(data, tmp_path, capsys):
    out_dir = str(tmp_path)
    run_ok(capsys, ["train", "--data", data, "--sft-steps", "1", "--max-steps", "2", "--out", out_dir])
    out = run_ok(capsys, ["train", "--resume", "--max-steps", "3", "--out", out_dir])  # data: from run.json
    assert "SFT warm-up" not in out  # a resumed run keeps its reference
    assert load_checkpoint(os.path.join(out_dir, "checkpoint-3")).step == 3
    assert [row["step"] for row in read_metrics(os.path.join(out_dir, "metrics.jsonl"))] == [1, 2, 3]


def test_demo_small_run(data, capsys):
    out = run_ok(capsys, ["demo", "--data", data, "--sft-steps", "3", "--max-steps", "4", "--lr", "0.001"])
    assert "Reward margins per pair" in out and out.rstrip().splitlines()[-1].startswith("OK:")


def test_demo_exit_status_follows_its_verdict(data, capsys, monkeypatch):
    """A demo that did not learn exits 1 (run_demo replaced: a real failing run is in test_demo.py)."""
    import dpo.demo

    verdicts = []

    def fake_run_demo(backend, config=None, pairs=None, out_dir=None):
        verdicts.append((backend.name, config.lr, len(pairs)))
        failed = len(verdicts) == 1
        return dpo.demo.DemoResult(0.5, 0.6 if failed else 0.4, 0.0, 1.0, 0.0, 1.0, 0.1)

    monkeypatch.setattr(dpo.demo, "run_demo", fake_run_demo)
    assert main(["demo", "--data", data, "--lr", "0.002"]) == EXIT_FAILED
    assert main(["demo", "--data", data, "--lr", "0.002"]) == 0
    assert verdicts == [("numpy", 0.002, 3)] * 2


@pytest.mark.parametrize("command", ["demo", "sft", "train", "eval", "generate"])
def test_help_of_each_command(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m dpo " + command)
    assert "--backend" in out and "--dtype" in out


def test_help_and_no_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m dpo") and all(f"    {c} " in out for c in ("demo", "sft", "train"))
    assert main([]) == EXIT_USAGE  # no command: the help, and the usage status
    assert capsys.readouterr().out.startswith("usage: python -m dpo")


# ---- bad input: one line, non-zero, no traceback ------------------------------------------------
def test_missing_data_file(capsys, tmp_path):
    fails_with_one_line(capsys, ["train", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path)],
                        "no such file")


def test_malformed_row(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(PAIRS[0] + '\n{"prompt": "a", "chosen": "b"}\n')
    fails_with_one_line(capsys, ["sft", "--data", str(bad), "--out", str(tmp_path)],
                        f'{bad}:2: field "rejected" is missing')


def test_skip_invalid_reports_and_goes_on(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(PAIRS[0] + '\n{"prompt": "a", "chosen": "b"}\n')
    assert main(["sft", "--data", str(bad), "--skip-invalid", "--steps", "1", "--out", str(tmp_path)]) == 0
    assert "skipped 1 invalid row(s)" in capsys.readouterr().err


def test_pairs_cut_to_fit_max_len_are_reported(capsys, tmp_path):
    long = tmp_path / "long.jsonl"
    long.write_text('{"prompt": "' + "word " * 30 + '", "chosen": "yes", "rejected": "no"}\n' + PAIRS[0] + "\n")
    assert main(["sft", "--data", str(long), "--steps", "1", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"{long}: 1 of 2 pairs do not fit in max_len 96" in err and "prompts cut from the left" in err


def test_unknown_loss_type(capsys, tmp_path):
    fails_with_one_line(capsys, ["train", "--loss-type", "dpo", "--out", str(tmp_path)],
                        "argument --loss-type: DPOConfig: unknown loss_type 'dpo'; choose from: sigmoid")


@pytest.mark.parametrize("argv, message", [
    (["train", "--lr", "-1"], "argument --learning-rate: DPOConfig.lr must be a positive number, got -1.0"),
    (["train", "--beta", "nan"], "argument --beta: DPOConfig: beta must be finite, got nan"),
    (["train", "--epochs", "0"], "argument --num-train-epochs: DPOConfig.epochs must be a positive int, got 0"),
    (["train", "--batch-size", "two"],
     "argument --per-device-train-batch-size/--batch-size: expected an integer, got 'two'"),
    (["train", "--eval-fraction", "1.5"], "argument --eval-fraction: DPOConfig.eval_fraction must be in [0, 1)"),
    (["train", "--label-smoothing", "0.5"],
     "argument --label-smoothing: DPOConfig: label_smoothing must be in [0, 0.5), got 0.5"),
    (["train", "--loss-weights", "1,x"], "argument --loss-weights: expected comma-separated numbers"),
    (["train", "--sft-steps", "-2"], "argument --sft-steps: DPOConfig.sft_steps must be a non-negative int, got -2"),
    (["train", "--seed", "-1"], "argument --seed: DPOConfig.seed must be a non-negative int, got -1"),
    (["train", "--loss-type", "sigmoid,sft", "--loss-weights", "1"], "1 loss_weights for 2 loss types"),
    (["train", "--loss-type", "exo_pair"], "'exo_pair' needs label_smoothing"),
    (["generate", "--checkpoint", "c", "--prompt", "p", "--temperature", "-1"], "argument --temperature"),
    (["generate", "--checkpoint", "c", "--prompt", "p", "--top-k", "0"], "argument --top-k"),
    (["train", "--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["train", "--backend", "jax"], "argument --backend: invalid choice: 'jax'"),
    (["train"], "the following arguments are required: --out"),
    (["fly"], "invalid choice: 'fly'"),
])
def test_bad_options(argv, message, capsys, tmp_path):
    if argv[0] == "train" and "--out" not in argv and argv != ["train"]:
        argv = [*argv, "--out", str(tmp_path)]
    fails_with_one_line(capsys, argv, message)


def test_init_and_resume_together(capsys, tmp_path):
    fails_with_one_line(capsys, ["train", "--init", "a", "--resume", "b", "--out", str(tmp_path)],
                        "argument --resume: not allowed with argument --init")


def test_missing_and_foreign_checkpoints(capsys, tmp_path, data):
    fails_with_one_line(capsys, ["eval", "--checkpoint", str(tmp_path / "none.safetensors")], "no such checkpoint")
    fails_with_one_line(capsys, ["generate", "--checkpoint", data, "--prompt", "hi"], "not a safetensors file")
    fails_with_one_line(capsys, ["train", "--resume", str(tmp_path / "gone"), "--out", str(tmp_path)],
                        "no run.json, so not a run that can be resumed")


def test_eval_without_a_reference_beside_the_checkpoint(capsys, sft_run, tmp_path):
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(open(os.path.join(sft_run, "sft.safetensors"), "rb").read())
    fails_with_one_line(capsys, ["eval", "--checkpoint", str(lone)], "no reference checkpoint; pass --reference")


def test_prompt_too_long_for_generation_keeps_its_end_and_says_so(capsys, sft_run):
    status = main(["generate", "--checkpoint", os.path.join(sft_run, "sft.safetensors"), "--prompt", "x" * 200,
                   "--max-new-tokens", "4"])
    err = capsys.readouterr().err.splitlines()
    assert status == 0
    assert err == ["note: the prompt is 202 tokens, more than the model's context (max_len 96) allows; "
                   "kept its last 95",
                   "note: max_new_tokens cut from 4 to 1: the prompt's 95 tokens leave that much room in max_len 96"]


def test_cuda_absent(capsys, tmp_path, torch):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present here; this checks the message where there is none")
    fails_with_one_line(capsys, ["train", "--backend", "torch", "--device", "cuda", "--out", str(tmp_path)],
                        "device='cuda' asked for, but CUDA is not available")


def test_cuda_on_the_numpy_backend(capsys, tmp_path):
    fails_with_one_line(capsys, ["demo", "--device", "cuda"], "the numpy backend runs on the CPU only")
    fails_with_one_line(capsys, ["demo", "--backend", "torch", "--device", "tpu"], "unknown device 'tpu'")


# ---- real processes ----------------------------------------------------------------------------
def run_process(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT, **kwargs)


def test_python_dash_m_dpo_generates(sft_run):
    done = run_process([sys.executable, "-m", "dpo", "generate", "--checkpoint",
                        os.path.join(sft_run, "sft.safetensors"), "--prompt", "Compute 2 + 3.",
                        "--max-new-tokens", "2"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Compute 2 + 3.\n  -> ")


def test_torch_absent_in_a_process(tmp_path):
    """`import torch` fails in this process: --backend torch is one line, exit 2 (the option asks for
    something this installation lacks)."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from dpo.cli import main\n"
            "sys.exit(main(sys.argv[1:]))")
    done = run_process([sys.executable, "-c", code, "train", "--backend", "torch", "--out", str(tmp_path)])
    assert done.returncode == EXIT_USAGE
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: the torch backend needs PyTorch, which is not installed")


def test_console_script():
    script = os.path.join(os.path.dirname(sys.executable), "minigrad-dpo")
    if not os.path.exists(script):
        pytest.skip("the minigrad-dpo script is not installed here (pip install -e .)")
    done = run_process([script, "eval", "--help"])
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m dpo eval")
    done = run_process([script, "eval", "--checkpoint", "nowhere.safetensors"])
    assert done.returncode == EXIT_USAGE and done.stderr == "error: nowhere.safetensors: no such checkpoint file\n"
