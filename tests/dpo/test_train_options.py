"""The trainer options with TRL's names, each against an independent reference: gradient
accumulation against one batch of the same pairs, the schedules against transformers'
`get_scheduler`, LD-DPO's sums and WPO's weights against a direct computation from the
token log-probs and logits, TR-DPO's sync against its closed form, the optimizer choice
against the backend's classes, and bf16 (torch autocast; one clear line on numpy)."""

import math

import numpy as np
import pytest

from dpo.batching import collate
from dpo.cli import main
from dpo.logprobs import sequence_log_prob
from dpo.tokenizer import InstructionTokenizer
from dpo.train_options import (
    ld_token_weights,
    lr_factor,
    make_optimizer,
    mix_reference,
    policy_forward,
    warmup_updates,
)
from dpo.training import build_models, train_dpo
from tests.dpo.pipeline_setup import backend, pairs, tiny_config

LOG2 = math.log(2.0)


def trained(config, be, n=12):
    policy, reference = build_models(config, backend=be)
    result = train_dpo(policy, reference, pairs(n), config)
    return result, policy.export_weights(), reference


# ---- gradient accumulation -------------------------------------------------------------------
def test_k_micro_batches_equal_one_batch_of_the_same_pairs():
    be = backend("numpy", "float64")
    whole, whole_weights, _ = trained(tiny_config(batch_size=6, max_steps=2, lr=1e-2), be)
    micro, micro_weights, _ = trained(tiny_config(batch_size=2, gradient_accumulation_steps=3, max_steps=2,
                                                  lr=1e-2), be)
    assert micro.rows("step") == [1, 2]
    np.testing.assert_allclose(micro.rows("loss"), whole.rows("loss"), rtol=0, atol=1e-10)
    np.testing.assert_allclose(micro.rows("grad_norm"), whole.rows("grad_norm"), rtol=0, atol=1e-10)
    for name in whole_weights:
        np.testing.assert_allclose(micro_weights[name], whole_weights[name], rtol=0, atol=1e-10, err_msg=name)
    assert not np.array_equal(whole_weights["head.weight"], build_models(tiny_config(), backend=be)[0]
                              .export_weights()["head.weight"])  # the updates moved the weights


def test_an_uneven_last_update_is_weighted_by_its_pairs():
    """10 pairs, micro-batches of 2, 3 per update: the second update has 4 pairs in 2 micro-batches."""
    be = backend("numpy", "float64")
    whole, whole_weights, _ = trained(tiny_config(batch_size=6, max_steps=None, epochs=1), be, n=10)
    micro, micro_weights, _ = trained(tiny_config(batch_size=2, gradient_accumulation_steps=3, max_steps=None,
                                                  epochs=1), be, n=10)
    assert micro.steps == whole.steps == 2
    np.testing.assert_allclose(micro.rows("loss"), whole.rows("loss"), rtol=0, atol=1e-10)
    for name in whole_weights:
        np.testing.assert_allclose(micro_weights[name], whole_weights[name], rtol=0, atol=1e-10, err_msg=name)


# ---- learning-rate schedules -----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["constant", "constant_with_warmup", "linear", "cosine"])
@pytest.mark.parametrize("warmup,total", [(0, 10), (3, 10), (4, 7)])
def test_schedules_match_transformers(kind, warmup, total):
    torch = pytest.importorskip("torch", reason="transformers' schedules run on torch")
    transformers = pytest.importorskip("transformers", reason="the schedules are compared with transformers'")
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=2.0)
    scheduler = transformers.get_scheduler(kind, optimizer, num_warmup_steps=warmup, num_training_steps=total)
    theirs = []
    for _ in range(total):
        theirs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    ours = [2.0 * lr_factor(kind, warmup, total)(s) for s in range(total)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=1e-15)


def test_warmup_ratio_and_the_logged_learning_rate():
    assert warmup_updates(tiny_config(warmup_ratio=0.25, warmup_steps=7), 10) == 3  # ceil(2.5), replaces 7
    assert warmup_updates(tiny_config(warmup_steps=7), 10) == 7
    config = tiny_config(lr_scheduler_type="linear", warmup_ratio=0.5, max_steps=4, lr=0.01)
    result, _, _ = trained(config, backend("numpy", "float64"))
    assert result.rows("learning_rate") == pytest.approx([0.0, 0.005, 0.01, 0.005], abs=1e-15)


# ---- optimizers ------------------------------------------------------------------------------
@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
@pytest.mark.parametrize("optim,class_name", [("adamw", "AdamW"), ("adam", "Adam"), ("sgd", "SGD"),
                                              ("rmsprop", "RMSprop")])
def test_optim_chooses_the_backends_optimizer(backend_name, optim, class_name):
    be = backend(backend_name)
    policy, _ = build_models(tiny_config(), backend=be)
    optimizer = make_optimizer(be, policy.parameters(), tiny_config(optim=optim, lr=0.02, weight_decay=0.1))
    assert type(optimizer).__name__ == class_name
    assert optimizer.param_groups[0]["lr"] == 0.02 and optimizer.param_groups[0]["weight_decay"] == 0.1


def test_rmsprop_trains_the_same_on_both_backends():
    config = tiny_config(optim="rmsprop", lr=1e-3, max_steps=3)
    losses = [trained(config, backend(name))[0].rows("loss") for name in ("numpy", "torch")]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-9)
    assert losses[0][-1] < losses[0][0]


# ---- LD-DPO and WPO --------------------------------------------------------------------------
def one_batch(n=4):
    return collate(pairs(n), InstructionTokenizer(), 96)


def test_ld_alpha_sums_shared_tokens_whole_and_the_longer_tail_times_alpha():
    be = backend("numpy", "float64")
    policy, _ = build_models(tiny_config(), backend=be)
    batch = one_batch()
    logits = policy(be.tensor(batch.input_ids), be.tensor(batch.attention_mask))
    token = be.to_numpy(be.F.token_logprobs(logits, be.tensor(batch.targets)))
    b = batch.batch_size
    for alpha in (0.0, 0.3, 1.0):
        got = be.to_numpy(policy_forward(policy, batch, tiny_config(ld_alpha=alpha)).logps)
        for i in range(b):  # by hand: row i (chosen) and b + i (rejected) of pair i
            rows = [token[i][batch.loss_mask[i]], token[b + i][batch.loss_mask[b + i]]]
            shared = min(len(rows[0]), len(rows[1]))
            for k, row in enumerate(rows):
                expected = row[:shared].sum() + alpha * row[shared:].sum()
                assert got[k * b + i] == pytest.approx(expected, rel=1e-13)
    plain = be.to_numpy(sequence_log_prob(policy, batch).logps)
    np.testing.assert_allclose(be.to_numpy(policy_forward(policy, batch, tiny_config()).logps), plain, rtol=1e-13)
    weights = ld_token_weights(batch, 0.3)
    assert set(np.unique(weights)) <= {0.0, 0.3, 1.0} and (weights[~batch.loss_mask] == 0).all()


def test_wpo_weights_against_torch():
    torch = pytest.importorskip("torch", reason="WPO's weights are checked with torch")
    be = backend("numpy", "float64")
    policy, _ = build_models(tiny_config(), backend=be)
    batch = one_batch()
    got = policy_forward(policy, batch, tiny_config(use_weighting=True)).wpo_weights
    logits = torch.tensor(be.to_numpy(policy(be.tensor(batch.input_ids), be.tensor(batch.attention_mask))))
    log_probs = torch.log_softmax(logits, -1)
    targets = torch.tensor(batch.targets)
    mask = targets != -100
    picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    aligned = (picked - torch.logsumexp(2 * log_probs, -1)) * mask
    weights = torch.exp(aligned.sum(1) / mask.sum(1))
    b = batch.batch_size
    np.testing.assert_allclose(got, (weights[:b] * weights[b:]).numpy(), rtol=1e-12)
    assert (got > 0).all() and not np.allclose(got, 1.0)


def test_use_weighting_scales_each_pairs_loss():
    """At policy = reference every sigmoid loss is log 2, so the first step's loss is log 2 · mean(w)."""
    be = backend("numpy", "float64")
    config = tiny_config(use_weighting=True, max_steps=1, batch_size=4)
    policy, reference = build_models(config, backend=be)
    from dpo.batching import iterate_batches

    chunk = next(iter(iterate_batches(list(range(12)), 4, config.seed, epoch=0)))
    batch = collate([pairs()[i] for i in chunk], InstructionTokenizer(), 96)
    weights = policy_forward(policy, batch, config).wpo_weights
    loss = train_dpo(policy, reference, pairs(), config).rows("loss")[0]
    assert loss == pytest.approx(LOG2 * weights.mean(), rel=1e-12) and loss != pytest.approx(LOG2, rel=1e-6)


# ---- TR-DPO ----------------------------------------------------------------------------------
def test_sync_with_alpha_1_every_step_keeps_every_loss_at_log_2():
    """The reference becomes the policy after each update and the cached reference log-probs are
    recomputed, so each step starts at policy = reference: rewards 0, loss log 2."""
    config = tiny_config(sync_ref_model=True, ref_model_sync_steps=1, ref_model_mixup_alpha=1.0, max_steps=3)
    result, weights, reference = trained(config, backend("numpy", "float64"))
    np.testing.assert_allclose(result.rows("loss"), [LOG2] * 3, rtol=1e-12)
    assert result.rows("rewards/margins") == [0.0] * 3
    mine = reference.export_weights()
    assert all(np.array_equal(mine[k], weights[k]) for k in weights)
    plain, _, _ = trained(tiny_config(max_steps=3), backend("numpy", "float64"))
    assert plain.rows("loss")[1] < LOG2  # without the sync the second step already sees a margin


def test_mix_reference_is_alpha_policy_plus_rest_reference():
    be = backend("numpy", "float64")
    policy, _ = build_models(tiny_config(), backend=be, seed=1)
    reference, _ = build_models(tiny_config(), backend=be, seed=2)
    p, r = policy.export_weights(), reference.export_weights()
    mix_reference(policy, reference, 0.6)
    mixed = reference.export_weights()
    for name in p:
        np.testing.assert_allclose(mixed[name], 0.6 * p[name] + 0.4 * r[name], rtol=1e-15, atol=1e-17)


# ---- bf16 ------------------------------------------------------------------------------------
def test_bf16_on_torch_autocasts_and_stays_near_float32():
    be = backend("torch", "float32")
    full, _, _ = trained(tiny_config(max_steps=2), be)
    half, _, _ = trained(tiny_config(max_steps=2, bf16=True), be)
    np.testing.assert_allclose(half.rows("loss"), full.rows("loss"), rtol=2e-2)
    assert half.rows("loss") != full.rows("loss")  # bfloat16 rounding did happen


def test_bf16_on_numpy_is_one_clear_line(capsys, tmp_path):
    be = backend("numpy", "float32")
    policy, reference = build_models(tiny_config(), backend=be)
    with pytest.raises(ValueError, match="the numpy backend has no mixed precision"):
        train_dpo(policy, reference, pairs(), tiny_config(bf16=True))
    assert main(["train", "--bf16", "--sft-steps", "0", "--max-steps", "1", "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "--bf16" in lines[0] and "no mixed precision" in lines[0], lines


# ---- reachable from the command line ---------------------------------------------------------
def test_the_options_on_the_command_line():
    from dpo.cli import _config, build_parser

    config = _config(build_parser().parse_args([
        "train", "--out", "x", "--optim", "rmsprop", "--lr-scheduler-type", "cosine", "--warmup-ratio", "0.1",
        "--gradient-accumulation-steps", "2", "--bf16", "--ld-alpha", "0.5", "--use-weighting", "--sync-ref-model",
        "--ref-model-mixup-alpha", "0.9", "--ref-model-sync-steps", "64"]))
    assert (config.optim, config.lr_scheduler_type, config.warmup_ratio, config.gradient_accumulation_steps,
            config.bf16, config.ld_alpha, config.use_weighting, config.sync_ref_model, config.ref_model_mixup_alpha,
            config.ref_model_sync_steps) == ("rmsprop", "cosine", 0.1, 2, True, 0.5, True, True, 0.9, 64)


@pytest.mark.parametrize("argv,message", [
    (["--optim", "lion"], "argument --optim: DPOConfig.optim: unknown 'lion'; choose from: adamw, adam, sgd"),
    (["--lr-scheduler-type", "step"], "argument --lr-scheduler-type: DPOConfig.lr_scheduler_type: unknown 'step'"),
    (["--ld-alpha", "2"], "argument --ld-alpha: DPOConfig.ld_alpha must be a number in [0, 1], got 2.0"),
    (["--gradient-accumulation-steps", "0"], "DPOConfig.gradient_accumulation_steps must be a positive int"),
    (["--use-weighting", "--loss-type", "aot"], "DPOConfig.use_weighting: WPO weights are per pair"),
])
def test_bad_option_values(argv, message, capsys, tmp_path):
    assert main(["train", *argv, "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_sync_ref_model_resumes_from_the_synced_reference(tmp_path):
    """The checkpoint holds the moved reference; resuming from both equals one run."""
    import dataclasses

    from dpo.checkpoint import load_checkpoint

    be = backend("numpy", "float64")
    config = tiny_config(sync_ref_model=True, ref_model_sync_steps=2, ref_model_mixup_alpha=0.5, max_steps=6)

    def run(cfg, out, resume=False):
        policy, reference = build_models(cfg, backend=be)
        if resume:
            reference.load_weights(load_checkpoint(out / "checkpoint-3" / "reference.safetensors").weights)
        result = train_dpo(policy, reference, pairs(), cfg, out_dir=out,
                           resume_from=out / "checkpoint-3" if resume else None)
        return result, policy.export_weights()

    whole, whole_weights = run(config, tmp_path / "whole")
    run(dataclasses.replace(config, max_steps=3), tmp_path / "split")  # checkpoint at 3, after the sync at 2
    rest, rest_weights = run(config, tmp_path / "split", resume=True)
    assert rest.rows("step") == [4, 5, 6]
    np.testing.assert_allclose(rest.rows("loss"), whole.rows("loss")[3:], rtol=1e-12)
    for name in whole_weights:
        np.testing.assert_allclose(rest_weights[name], whole_weights[name], rtol=1e-12, atol=1e-15)


def test_sft_warmup_defaults_come_from_the_config():
    be = backend("numpy", "float64")
    policy, _ = build_models(tiny_config(), backend=be)
    from dpo.training import warmup_pretrain

    assert len(warmup_pretrain(policy, pairs(), config=tiny_config(sft_steps=3))) == 3


def test_logits_metrics_are_the_mean_logit_over_completion_tokens():
    be = backend("numpy", "float64")
    policy, _ = build_models(tiny_config(), backend=be)
    batch = one_batch()
    forward = policy_forward(policy, batch, tiny_config())
    logits = be.to_numpy(policy(be.tensor(batch.input_ids), be.tensor(batch.attention_mask)))
    b = batch.batch_size
    per_position = logits.mean(-1)  # over the vocabulary
    assert forward.logits_chosen == pytest.approx(per_position[:b][batch.loss_mask[:b]].mean(), rel=1e-12)
    assert forward.logits_rejected == pytest.approx(per_position[b:][batch.loss_mask[b:]].mean(), rel=1e-12)


def test_evaluate_margins_reads_ld_weighted_log_probs():
    from dpo.evaluation import evaluate_margins

    be = backend("numpy", "float64")
    policy, _ = build_models(tiny_config(), backend=be, seed=1)
    reference, _ = build_models(tiny_config(), backend=be, seed=2)
    config = tiny_config(ld_alpha=0.0)
    margins = evaluate_margins(policy, reference, pairs(4), config)
    batch = one_batch(4)
    expected = be.to_numpy(policy_forward(policy, batch, config).logps)
    def both(rows):
        return [m.policy_chosen for m in rows] + [m.policy_rejected for m in rows]

    assert both(margins) == pytest.approx(list(expected), rel=1e-12)
    assert both(evaluate_margins(policy, reference, pairs(4), tiny_config())) != pytest.approx(list(expected), rel=1e-6)
