"""The loss family against TRL 1.16's own code on the same log-probs.

TRL's DPOTrainer computes its loss inline in `_compute_loss`; the test runs that
method on a trainer made without `__init__`, with a stand-in model that returns
given per-token log-probs (TRL sums them itself), and reference log-probs passed
as precomputed. SimPO and ORPO's odds-ratio term come from `CPOTrainer.cpo_loss`
and `ORPOTrainer.odds_ratio_loss`; LD-DPO's token weights (`ld_alpha`) and WPO's
pair weights (`use_weighting`) are held against the same `_compute_loss`. Each case is expected to agree (float64, or
TRL's float32 where TRL computes in float32) or to differ for a documented
reason (docs/loss-variants.md, column "vs TRL 1.16"); a documented difference
that vanished fails too. `pytest -s` prints the table.
"""

import types
from collections import defaultdict

import numpy as np
import pytest

from backends import get_backend
from dpo.losses import dpo_loss

torch = pytest.importorskip("torch", reason="TRL's losses run on torch")
pytest.importorskip("trl", reason="the comparison with TRL needs trl (the dev extra)")

B, T = 8, 24
BETA = 0.3
F32, F64 = 1e-5, 1e-12  # relative agreement: TRL's float32 paths, float64 paths


def batch(seed, equal_lengths=False):
    """Per-token log-probs (TRL's fused head gives 0 off the completion), masks and summed log-probs."""
    rng = np.random.default_rng(seed)
    prompt = rng.integers(2, 6, size=2 * B)
    length = np.full(2 * B, 7) if equal_lengths else rng.integers(1, T - 6, size=2 * B)
    completion_mask = np.zeros((2 * B, T), dtype=np.int64)
    for i in range(2 * B):
        completion_mask[i, prompt[i]:prompt[i] + length[i]] = 1
    shift = completion_mask[:, 1:]
    per_token = -rng.uniform(0.01, 2.0, size=(2 * B, T - 1)) * shift
    ref_per_token = -rng.uniform(0.01, 2.0, size=(2 * B, T - 1)) * shift
    return dict(completion_mask=completion_mask, attention_mask=(np.arange(T) < (prompt + length)[:, None]),
                per_token=per_token, logps=per_token.sum(1), ref_logps=ref_per_token.sum(1), lengths=length)


def batch_with_logits(seed, vocab=11):
    """`batch` with the per-token log-probs drawn from random logits (for WPO's weights)."""
    data = batch(seed)
    rng = np.random.default_rng(seed + 100)
    shift = data["completion_mask"][:, 1:]
    logits = rng.normal(0.0, 2.0, size=(2 * B, T - 1, vocab))
    targets = rng.integers(0, vocab, size=(2 * B, T - 1))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_token = np.take_along_axis(log_probs, targets[..., None], -1)[..., 0] * shift
    return {**data, "logits": logits, "per_token": per_token, "logps": per_token.sum(1)}


def trl_dpo_loss(data, loss_type, weights=None, dtype=torch.float64, **options):
    """TRL 1.16's DPOTrainer._compute_loss on `data`, the scalar loss."""
    from trl.trainer.dpo_trainer import DPOTrainer

    trainer = DPOTrainer.__new__(DPOTrainer)
    loss_types = loss_type if isinstance(loss_type, list) else [loss_type]
    trainer.__dict__.update(
        beta=BETA, loss_types=loss_types, loss_weights=weights or [1.0] * len(loss_types),
        ld_alpha=options.get("ld_alpha"),
        f_divergence_type=options.get("f_divergence", "reverse_kl"),
        f_alpha_divergence_coef=options.get("f_alpha", 0.5),
        label_smoothing=options.get("label_smoothing", 0.0), use_weighting=options.get("use_weighting", False),
        precompute_ref_logps=True,
        aux_loss_enabled=False, _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0, _tp_size=1, args=types.SimpleNamespace(discopop_tau=options.get("discopop_tau", 0.05)),
        model=types.SimpleNamespace(training=True),
        accelerator=types.SimpleNamespace(device="cpu", gather=lambda t: t, gather_for_metrics=lambda t: t))
    n = data["per_token"].shape[0]
    outputs = types.SimpleNamespace(log_probs=torch.tensor(data["per_token"], dtype=dtype),
                                    entropy=torch.zeros(n, T - 1, dtype=dtype),
                                    mean_logits=torch.zeros(n, T - 1, dtype=dtype),
                                    is_top1=torch.zeros(n, T - 1, dtype=torch.bool))
    if "logits" in data:  # WPO reads log Σ_v p(v)² per position
        outputs.log_sum_sq_probs = torch.logsumexp(2 * torch.log_softmax(torch.tensor(data["logits"]), -1), -1)
    ref = torch.tensor(data["ref_logps"], dtype=dtype)
    inputs = dict(input_ids=torch.zeros(n, T, dtype=torch.long), attention_mask=torch.tensor(data["attention_mask"]),
                  completion_mask=torch.tensor(data["completion_mask"]), ref_chosen_logps=ref[:B],
                  ref_rejected_logps=ref[B:])
    return float(trainer._compute_loss(lambda **kwargs: outputs, inputs, return_outputs=False))


def ours(data, loss_type, weights=None, reference=True, **options):
    be = get_backend("numpy", dtype="float64")
    logps, ref = data["logps"], data["ref_logps"]
    refs = (be.tensor(ref[:B]), be.tensor(ref[B:])) if reference else (None, None)
    out = dpo_loss(be.tensor(logps[:B]), be.tensor(logps[B:]), *refs, beta=BETA, loss_type=loss_type,
                   loss_weights=weights, chosen_lengths=data["lengths"][:B], rejected_lengths=data["lengths"][B:],
                   backend=be, **options)
    return be.to_numpy(out.losses)


def as_preference_batch(data):
    """The fields of a PreferenceBatch that `ld_token_weights` and `wpo_weights` read."""
    return types.SimpleNamespace(loss_mask=data["completion_mask"][:, 1:].astype(bool),
                                 completion_lengths=data["lengths"],
                                 chosen_rejected=lambda values: (values[:B], values[B:]))


def ours_ld(data, loss_type, ld_alpha):
    """LD-DPO: our token weights on the policy's and the (precomputed) reference's per-token log-probs."""
    from dpo.train_options import ld_token_weights

    weights = ld_token_weights(as_preference_batch(data), ld_alpha)
    rng = np.random.default_rng(7)
    ref_per_token = -rng.uniform(0.01, 2.0, size=data["per_token"].shape) * data["completion_mask"][:, 1:]
    ld = {**data, "logps": (data["per_token"] * weights).sum(1), "ref_logps": (ref_per_token * weights).sum(1)}
    return ours(ld, loss_type).mean(), ld["ref_logps"]


def ours_wpo(data, loss_type):
    from dpo.train_options import wpo_weights

    weights = wpo_weights(data["logits"], data["per_token"], as_preference_batch(data))
    return (ours(data, loss_type) * weights).mean()


def trl_simpo(data, gamma, label_smoothing):
    from trl.experimental.cpo.cpo_trainer import CPOTrainer

    trainer = CPOTrainer.__new__(CPOTrainer)
    trainer.__dict__.update(alpha=0.0, loss_type="simpo", simpo_gamma=gamma, beta=BETA,
                            label_smoothing=label_smoothing, accelerator=types.SimpleNamespace(device="cpu"))
    average = torch.tensor(data["logps"] / data["lengths"], dtype=torch.float64)
    return trainer.cpo_loss(average[:B], average[B:])[0].numpy()


def trl_orpo_odds_ratio(data):
    from trl.experimental.orpo.orpo_trainer import ORPOTrainer

    trainer = ORPOTrainer.__new__(ORPOTrainer)
    trainer.__dict__.update(beta=BETA, accelerator=types.SimpleNamespace(device="cpu"))
    average = torch.tensor(data["logps"] / data["lengths"], dtype=torch.float64)
    return -trainer.odds_ratio_loss(average[:B], average[B:])[0].numpy()  # TRL subtracts it from the NLL


DPO_TYPES = ["sigmoid", "robust", "ipo", "hinge", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "apo_zero",
             "apo_down", "aot", "aot_unpaired", "discopop", "sigmoid_norm"]
WITH_F_DIVERGENCE = ["sigmoid", "robust", "ipo", "hinge", "exo_pair", "discopop", "sigmoid_norm"]
SMOOTHING = {"robust": 0.1, "exo_pair": 1e-3, "aot": 0.1, "aot_unpaired": 0.1}


def cases():
    """(name, ours() -> float, TRL() -> float, expected: "agree" or "differ", relative tolerance)."""
    data, equal = batch(0), batch(1, equal_lengths=True)
    for name in DPO_TYPES:
        opts = {"label_smoothing": SMOOTHING[name]} if name in SMOOTHING else {}
        tol = F32 if name == "exo_pair" else F64  # TRL's ε is a float32 tensor
        yield name, lambda n=name, o=opts: ours(data, n, **o).mean(), \
            lambda n=name, o=opts: trl_dpo_loss(data, n, **o), "agree", tol
        for divergence in ("forward_kl", "js_divergence", "alpha_divergence"):
            if name not in WITH_F_DIVERGENCE:
                continue
            o = {**opts, "f_divergence": divergence}
            dtype = torch.float32 if divergence == "alpha_divergence" else torch.float64  # TRL's clamp: no float64
            yield f"{name} + {divergence}", lambda n=name, o=o: ours(data, n, **o).mean(), \
                lambda n=name, o=o, d=dtype: trl_dpo_loss(data, n, dtype=d, **o), "agree", \
                F32 if dtype is torch.float32 or name == "exo_pair" else F64
    yield "sft (equal chosen lengths)", lambda: ours(equal, "sft").mean(), lambda: trl_dpo_loss(equal, "sft"), \
        "agree", F64
    yield "sft (unequal lengths: token vs example mean)", lambda: ours(data, "sft").mean(), \
        lambda: trl_dpo_loss(data, "sft"), "differ", F64
    yield "sigmoid,sft weights 1,0.5 (equal lengths)", \
        lambda: ours(equal, ["sigmoid", "sft"], [1.0, 0.5]).mean(), \
        lambda: trl_dpo_loss(equal, ["sigmoid", "sft"], [1.0, 0.5]), "agree", F64
    yield "sigmoid, label_smoothing 0.1 (cDPO here)", lambda: ours(data, "sigmoid", label_smoothing=0.1).mean(), \
        lambda: trl_dpo_loss(data, "sigmoid", label_smoothing=0.1), "differ", F64
    yield "bco_pair with a running shift (bco_state)", lambda: _bco_with_state(data), \
        lambda: trl_dpo_loss(data, "bco_pair"), "differ", F64
    for alpha in (0.0, 0.4, 1.0):
        def ld_pair(alpha=alpha):
            value, ref = ours_ld(data, "sigmoid", alpha)
            return value, trl_dpo_loss({**data, "ref_logps": ref}, "sigmoid", ld_alpha=alpha)

        yield f"sigmoid, ld_alpha {alpha}", lambda f=ld_pair: f()[0], lambda f=ld_pair: f()[1], "agree", F64
    logit_data = batch_with_logits(2)
    for name in ("sigmoid", "ipo"):
        yield f"{name}, use_weighting (WPO)", lambda n=name: ours_wpo(logit_data, n), \
            lambda n=name: trl_dpo_loss(logit_data, n, use_weighting=True), "agree", F64
    yield "simpo (CPOTrainer), γ 0.5, ε 0.1", \
        lambda: ours(data, "simpo", reference=False, gamma=0.5, label_smoothing=0.1).mean(), \
        lambda: trl_simpo(data, 0.5, 0.1).mean(), "agree", F64
    yield "orpo odds-ratio term (ORPOTrainer, float32)", \
        lambda: (ours(data, "orpo", reference=False) - ours(data, "sft", reference=False)).mean(), \
        lambda: trl_orpo_odds_ratio(data).mean(), "agree", F32


def _bco_with_state(data):
    from dpo.losses import RunningMean

    state = RunningMean()
    state.update(0.5)  # a shift left by earlier batches
    be = get_backend("numpy", dtype="float64")
    logps, ref = data["logps"], data["ref_logps"]
    out = dpo_loss(*(be.tensor(x) for x in (logps[:B], logps[B:], ref[:B], ref[B:])), beta=BETA,
                   loss_type="bco_pair", bco_state=state, backend=be)
    return be.to_numpy(out.losses).mean()


def test_every_shared_loss_type_against_trl():
    rows, wrong = [], []
    for name, mine, theirs, expected, tol in cases():
        a, b = float(mine()), float(theirs())
        diff = abs(a - b) / max(abs(b), 1e-300)
        got = "agree" if diff <= tol else "differ"
        rows.append(f"| {name} | {expected} | {got} | {diff:.1e} |")
        if got != expected:
            wrong.append(f"{name}: expected to {expected}, relative difference {diff:.2e} (ours {a!r}, TRL {b!r})")
    print("\n| case | expected | result | relative difference |\n|---|---|---|---|\n" + "\n".join(rows))
    assert not wrong, "\n".join(wrong)
