"""evaluate_margins and margin_table: the per-pair rewards the demo and `eval` print."""

import math

import numpy as np
import pytest

from dpo.batching import collate
from dpo.evaluation import PairMargin, evaluate_margins, margin_table
from dpo.logprobs import sequence_log_prob
from dpo.tokenizer import InstructionTokenizer
from dpo.training import build_models
from tests.dpo.pipeline_setup import backend, backend_names, pairs, tiny_config, tiny_model


@backend_names
def test_margins_are_beta_times_the_log_ratio_difference(backend_name):
    be = backend(backend_name)
    config = tiny_config(beta=0.5)
    policy, reference = tiny_model(be, perturb=1), tiny_model(be)
    data = pairs()[:5]
    margins = evaluate_margins(policy, reference, data, config, batch_size=2)  # batches of 2, 2, 1
    batch = collate(data, InstructionTokenizer(), config.max_len)
    pc, pr = (be.to_numpy(t) for t in batch.chosen_rejected(sequence_log_prob(policy, batch).logps))
    rc, rr = (be.to_numpy(t) for t in batch.chosen_rejected(sequence_log_prob(reference, batch).logps))
    assert [m.prompt for m in margins] == [p.prompt_text for p in data]
    for i, m in enumerate(margins):
        assert (m.policy_chosen, m.reference_rejected) == pytest.approx((pc[i], rr[i]), abs=1e-10)
        assert m.chosen_reward == pytest.approx(0.5 * (pc[i] - rc[i]), abs=1e-10)
        assert m.margin == pytest.approx(0.5 * ((pc[i] - rc[i]) - (pr[i] - rr[i])), abs=1e-10)
        assert m.policy_chosen <= 0 and m.policy_rejected <= 0


def test_policy_equal_to_reference_has_zero_margins():
    policy, reference = build_models(tiny_config(), backend=backend("numpy"))
    assert all(m.margin == 0.0 for m in evaluate_margins(policy, reference, pairs()[:3], tiny_config()))


def test_margin_table_rows_mean_and_before_column():
    def margin(prompt, chosen_reward, rejected_reward):
        return PairMargin(prompt, -1.0, -2.0, -1.5, -1.5, chosen_reward, rejected_reward)

    after = [margin("What is the capital of France?", 0.3, -0.1), margin("x " * 40, 0.0, 0.2)]
    before = [margin("a", 0.0, 0.0), margin("b", 0.1, 0.0)]
    lines = margin_table(after, before, width=20).splitlines()
    assert lines[0].split() == ["prompt", "logp", "chosen", "logp", "rejected", "margin", "before"]
    assert lines[2].startswith("What is the capital…") and lines[2].split()[-2:] == ["0.4000", "0.0000"]
    assert lines[3].split()[-2:] == ["-0.2000", "0.1000"]  # a long prompt is clipped to the width
    assert len(lines[3].split("  ")[0]) == 20
    mean = lines[-1].split()
    assert mean[0] == "mean" and float(mean[-2]) == pytest.approx(0.1) and float(mean[-1]) == pytest.approx(0.05)
    assert "before" not in margin_table(after).splitlines()[0]
    assert not math.isnan(float(margin_table(after).splitlines()[-1].split()[-1]))
    assert np.isclose(float(mean[1]), -1.0)
