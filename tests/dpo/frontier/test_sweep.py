"""The sweep end to end through `python -m dpo frontier --quick`, on a configuration smaller than
the real --quick one (its presets are swapped for the test's): DPO beats the reference's true
reward, KL grows with training, a smaller β ends at a larger KL; and the command's bad input."""

import json
import math

import pytest

from dpo.cli import main
from dpo.frontier.sweep import FrontierConfig
from dpo.model import GPTConfig

TINY = dict(model=GPTConfig(hidden=32, heads=2, depth=1, max_len=64), corpus_size=800, sft_steps=150, sft_lr=1e-2,
            train_prompts=64, samples_per_prompt=4, runs=(("sigmoid", 0.1), ("sigmoid", 5.0)), steps=40,
            eval_every=20, batch_size=16, lr=1e-3, eval_prompts=32, eval_samples=4, bandit_prompts=4,
            bandit_betas=(0.1, 1.0), bandit_steps=400)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("frontier")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FrontierConfig, "quick", classmethod(lambda cls, **changes: cls(**{**TINY, **changes})))
        code = main(["frontier", "--quick", "--out", str(out)])
    rows = [json.loads(line) for line in (out / "frontier.jsonl").read_text().splitlines()]
    return code, out, rows


def test_quick_run_completes_and_writes_its_files(tiny_run):
    code, out, rows = tiny_run
    assert code == 0
    assert json.loads((out / "config.json").read_text())["steps"] == TINY["steps"]
    assert (out / "preferences.jsonl").stat().st_size > 0
    pytest.importorskip("matplotlib", reason="the figure needs matplotlib (the plots extra)")
    assert (out / "frontier.png").stat().st_size > 0


def _runs(rows):
    runs = {}
    for row in rows:
        if row["kind"] == "policy":
            runs.setdefault(row["beta"], []).append(row)
    return {beta: sorted(points, key=lambda r: r["step"]) for beta, points in runs.items()}


def test_dpo_beats_the_reference_reward_and_kl_grows(tiny_run):
    _, _, rows = tiny_run
    reference = next(r for r in rows if r["kind"] == "reference")
    assert reference["kl"] == 0.0
    runs = _runs(rows)
    assert sorted(runs) == [0.1, 5.0]
    for beta, points in runs.items():
        assert [p["step"] for p in points] == [0, 20, 40]
        assert points[0]["kl"] == 0.0 and all(p["kl"] > 3 * p["kl_se"] for p in points[1:]), beta
    first, last = runs[0.1][1:]  # a small β keeps moving away; a large one levels off (its KL is bounded)
    assert last["kl"] - first["kl"] > 2 * math.hypot(first["kl_se"], last["kl_se"])
    final = runs[5.0][-1]
    noise = math.hypot(final["reward_se"], reference["reward_se"])
    assert final["reward"] - reference["reward"] > 2 * noise


def test_smaller_beta_reaches_larger_kl(tiny_run):
    runs = _runs(tiny_run[2])
    assert runs[0.1][-1]["kl"] > runs[5.0][-1]["kl"] + 2 * math.hypot(runs[0.1][-1]["kl_se"], runs[5.0][-1]["kl_se"])


def test_bandit_rows_follow_the_closed_form(tiny_run):
    rows = tiny_run[2]
    learned = [r for r in rows if r["kind"] == "bandit_dpo"]
    optimal = [r for r in rows if r["kind"] == "bandit_optimal"]
    assert [r["beta"] for r in learned] == [0.1, 1.0] and len(optimal) > 10
    assert all(r["kl_to_optimal"] < 1e-6 for r in learned)


@pytest.mark.parametrize("argv, message", [
    (["frontier"], "the following arguments are required: --out"),
    (["frontier", "--out", "x", "--betas", "0.1,-1"], "--betas: expected comma-separated positive numbers"),
    (["frontier", "--out", "x", "--steps", "0"], "--steps: expected a positive integer, got '0'"),
])
def test_bad_options_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_config_names_a_bad_field():
    with pytest.raises(ValueError, match="FrontierConfig.steps must be a positive int, got 0"):
        FrontierConfig(steps=0)
    with pytest.raises(ValueError, match="unknown loss_type .dpo."):
        FrontierConfig(runs=(("dpo", 0.1),))


def test_options_shape_the_config():
    from dpo.cli import build_parser
    from dpo.frontier.command import config_from_args

    args = build_parser().parse_args(["frontier", "--out", "x", "--betas", "0.2,2", "--steps", "30", "--seed", "3"])
    config = config_from_args(args)
    assert config.runs == (("sigmoid", 0.2), ("sigmoid", 2.0), ("ipo", 5.0), ("simpo", 2.0), ("sft", 0.1))
    assert (config.steps, config.seed, config.sft_steps) == (30, 3, FrontierConfig().sft_steps)
    quick = config_from_args(build_parser().parse_args(["frontier", "--out", "x", "--quick", "--eval-every", "5"]))
    assert quick.eval_every == 5 and quick.sft_steps == FrontierConfig.quick().sft_steps < FrontierConfig().sft_steps
