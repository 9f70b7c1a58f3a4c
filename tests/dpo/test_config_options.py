"""DPOConfig is the one source of options: every field is reachable on the command line (TRL's
names first, older names as aliases) and in a --config file, with defaults and help read from
DPOConfig, flags overriding the file, and every bad value or key one line naming where it is."""

import dataclasses
import json

import pytest

from dpo import cli
from dpo.config import DPOConfig, config_options, load_config_file
from dpo.model import GPTConfig


def parse(argv):
    return cli.build_parser().parse_args(argv)


def config_of(argv):
    return cli._config(parse(argv))


def test_every_field_is_an_option_with_its_default_and_help():
    paths = {o.path for o in config_options()}
    for field in dataclasses.fields(DPOConfig):
        if field.name == "model":
            assert {("model", f.name) for f in dataclasses.fields(GPTConfig)} <= paths
        elif field.name == "loss_options":
            assert {p for p in paths if p[0] == "loss_options"} == {
                ("loss_options", n) for n in ("gamma", "f_divergence", "f_alpha", "ipo_average", "discopop_tau")}
        else:
            assert (field.name,) in paths, field.name
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for opt in config_options():
        assert cli._flag(opt.names[0]) in help_text, opt.names[0]
    assert "--learning-rate X, --lr X" in help_text and "(default: 0.0001)" in help_text


def test_defaults_are_dpoconfig_defaults():
    assert config_of(["train", "--out", "x"]) == DPOConfig()


def test_trl_names_and_old_names_set_the_same_field():
    new = config_of(["train", "--out", "x", "--learning-rate", "0.01", "--per-device-train-batch-size", "3",
                     "--num-train-epochs", "2", "--logging-steps", "5", "--save-steps", "4", "--max-len", "40",
                     "--f-divergence-type", "js_divergence", "--f-alpha-divergence-coef", "0.3",
                     "--simpo-gamma", "1.5"])
    old = config_of(["train", "--out", "x", "--lr", "0.01", "--batch-size", "3", "--epochs", "2", "--log-every", "5",
                     "--checkpoint-every", "4", "--max-len", "40", "--f-divergence", "js_divergence",
                     "--f-alpha", "0.3", "--gamma", "1.5"])
    assert new == old
    assert (new.lr, new.batch_size, new.epochs, new.log_every, new.checkpoint_every, new.max_len) == (
        0.01, 3, 2, 5, 4, 40)
    assert new.loss_options == {"f_divergence": "js_divergence", "f_alpha": 0.3, "gamma": 1.5}


def test_fields_the_cli_did_not_reach_before():
    config = config_of(["train", "--out", "x", "--weight-decay", "0.1", "--warmup-steps", "0", "--max-grad-norm",
                        "2", "--no-ipo-average", "--discopop-tau", "0.1", "--hidden", "32", "--heads", "2",
                        "--depth", "1", "--vocab-size", "300", "--sft-lr", "0.01"])
    assert (config.weight_decay, config.warmup_steps, config.max_grad_norm, config.sft_lr) == (0.1, 0, 2.0, 0.01)
    assert config.loss_options == {"ipo_average": False, "discopop_tau": 0.1}
    assert config.model == GPTConfig(vocab_size=300, hidden=32, heads=2, depth=1)


def test_sft_learning_rate_and_steps_are_the_warmups():
    config = config_of(["sft", "--out", "x", "--lr", "0.02", "--steps", "7"])
    assert (config.sft_lr, config.sft_steps, config.lr) == (0.02, 7, DPOConfig().lr)


def test_config_file_under_flags(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"learning_rate": 0.01, "beta": 0.3, "loss_type": ["sigmoid", "sft"],
                                "loss_weights": [1, 0.5], "hidden": 32, "model": {"depth": 1},
                                "f_divergence_type": "forward_kl", "max_steps": 9}))
    config = config_of(["train", "--out", "x", "--config", str(path), "--beta", "0.2"])
    assert (config.lr, config.beta, config.loss_type, config.loss_weights, config.max_steps) == (
        0.01, 0.2, ["sigmoid", "sft"], [1, 0.5], 9)
    assert (config.model.hidden, config.model.depth) == (32, 1)
    assert config.loss_options == {"f_divergence": "forward_kl"}


def test_a_checkpoints_stored_config_is_a_config_file(tmp_path):
    stored = DPOConfig(beta=0.4, loss_options={"gamma": 1.0}, model=GPTConfig(hidden=32, heads=2)).to_dict()
    path = tmp_path / "c.json"
    path.write_text(json.dumps(stored))
    assert config_of(["train", "--out", "x", "--config", str(path)]) == DPOConfig.from_dict(stored)


def test_yaml_config_file(tmp_path):
    pytest.importorskip("yaml", reason="YAML config files need PyYAML")
    path = tmp_path / "run.yaml"
    path.write_text("learning_rate: 0.002\nloss_type: ipo\nmodel:\n  heads: 2\n")
    config = config_of(["train", "--out", "x", "--config", str(path)])
    assert (config.lr, config.loss_type, config.model.heads) == (0.002, "ipo", 2)


def one_line_error(capsys, argv, message):
    assert cli.main(argv) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err


def test_bad_config_files(capsys, tmp_path):
    unknown = tmp_path / "run.json"
    unknown.write_text(json.dumps({"beta": 0.2, "learnig_rate": 1, "model": {"width": 3}}))
    one_line_error(capsys, ["train", "--out", str(tmp_path), "--config", str(unknown)],
                   f"{unknown}: unknown key(s) learnig_rate, model.width")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{beta: 1")
    one_line_error(capsys, ["train", "--out", str(tmp_path), "--config", str(bad_json)], f"{bad_json}: not valid JSON")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    one_line_error(capsys, ["train", "--out", str(tmp_path), "--config", str(listed)], "expected a mapping")
    one_line_error(capsys, ["train", "--out", str(tmp_path), "--config", str(tmp_path / "none.json")],
                   "none.json: no such config file")
    bad_value = tmp_path / "value.json"
    bad_value.write_text(json.dumps({"per_device_train_batch_size": 0}))
    one_line_error(capsys, ["train", "--out", str(tmp_path), "--config", str(bad_value)],
                   f"{bad_value}: DPOConfig.batch_size must be a positive int, got 0")


def test_bad_model_size_names_the_option(capsys, tmp_path):
    one_line_error(capsys, ["train", "--out", str(tmp_path), "--heads", "3"],
                   "argument --heads: GPTConfig: hidden (64) must be divisible by heads (3)")
    one_line_error(capsys, ["train", "--out", str(tmp_path), "--depth", "0"],
                   "argument --depth: GPTConfig.depth must be a positive int, got 0")


def test_load_config_file_returns_paths(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"lr": 0.5, "loss_options": {"gamma": 2}}))
    assert load_config_file(str(path)) == {("lr",): 0.5, ("loss_options", "gamma"): 2}


def test_settings_that_differ_from_trl_are_noted(capsys, tmp_path):
    assert DPOConfig().trl_differences() == []
    notes = DPOConfig(loss_type=["sigmoid", "bco_pair"], label_smoothing=0.1).trl_differences()
    assert len(notes) == 2 and "cDPO" in notes[0] and "running reward shift" in notes[1]
    assert cli.main(["train", "--label-smoothing", "0.1", "--sft-steps", "0", "--max-steps", "1", "--hidden", "16",
                     "--heads", "2", "--depth", "1", "--batch-size", "2", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "note: label_smoothing 0.1 makes sigmoid conservative DPO (cDPO) here" in err
