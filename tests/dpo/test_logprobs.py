"""sequence_log_prob: the summed completion-token log-probs of each row, and their token counts,
held against a plain NumPy computation (full log-softmax of the logits, pick the targets, mask)."""

import numpy as np
import pytest

from dpo.batching import IGNORE_INDEX, collate, collate_token_ids
from dpo.logprobs import sequence_log_prob
from dpo.tokenizer import InstructionTokenizer
from tests.dpo.pipeline_setup import backend, backend_names, numpy_of, pairs, tiny_model

TOKENIZER = InstructionTokenizer()


def numpy_sequence_log_prob(logits, batch):
    """Per row: Σ_t log_softmax(logits[t])[targets[t]] over the t whose target is a completion
    token, written out from the logits alone."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    rows, steps = np.indices(batch.targets.shape)
    scored = batch.targets != IGNORE_INDEX
    picked = log_probs[rows, steps, np.where(scored, batch.targets, 0)]
    return np.where(scored, picked, 0.0).sum(axis=-1)


@backend_names
def test_matches_numpy_log_softmax_gather_mask(backend_name):
    model = tiny_model(backend(backend_name), perturb=1)
    batch = collate(pairs(5), TOKENIZER, model.config.max_len)
    result = sequence_log_prob(model, batch)
    logits = numpy_of(model, model(batch.input_ids, batch.attention_mask))
    expected = numpy_sequence_log_prob(logits, batch)
    assert np.abs(numpy_of(model, result.logps) - expected).max() <= 1e-10


@backend_names
def test_token_counts_are_the_completion_lengths(backend_name):
    model = tiny_model(backend(backend_name))
    chosen = pairs(3)
    batch = collate(chosen, TOKENIZER, model.config.max_len)
    counts = sequence_log_prob(model, batch).token_counts
    expected = [len(p.chosen.encode()) + 1 for p in chosen] + [len(p.rejected.encode()) + 1 for p in chosen]  # + EOC
    assert counts.tolist() == expected
    assert counts.dtype == np.int64


@backend_names
def test_empty_completion_has_log_prob_zero(backend_name):
    model = tiny_model(backend(backend_name), perturb=2)
    prompt = TOKENIZER.encode_prompt("Say nothing.")
    rejected = TOKENIZER.encode_completion("Something.")
    batch = collate_token_ids([(prompt, [], rejected)], model.config.max_len)
    result = sequence_log_prob(model, batch)
    logps = numpy_of(model, result.logps)
    assert logps[0] == 0.0
    assert result.token_counts.tolist() == [0, len(rejected)]
    assert logps[1] < 0.0


@backend_names
def test_log_probs_are_never_positive(backend_name):
    model = tiny_model(backend(backend_name), perturb=3)
    batch = collate(pairs(12), TOKENIZER, model.config.max_len)
    logps = numpy_of(model, sequence_log_prob(model, batch).logps)
    assert np.all(logps <= 0.0)
    assert np.all(logps < 0.0)  # every row here has a completion, each of whose tokens costs something


@backend_names
def test_a_row_alone_equals_the_row_in_a_padded_batch(backend_name):
    model = tiny_model(backend(backend_name), perturb=4)
    batch_pairs = pairs(6)
    together = numpy_of(model, sequence_log_prob(model, collate(batch_pairs, TOKENIZER, 96)).logps)
    together_chosen, together_rejected = together[:6], together[6:]
    lengths = collate(batch_pairs, TOKENIZER, 96).attention_mask.sum(axis=1)
    assert len(set(lengths.tolist())) > 1  # the batch really pads some rows
    for i, pair in enumerate(batch_pairs):
        alone = numpy_of(model, sequence_log_prob(model, collate([pair], TOKENIZER, 96)).logps)
        assert abs(alone[0] - together_chosen[i]) <= 1e-10
        assert abs(alone[1] - together_rejected[i]) <= 1e-10


@backend_names
def test_runs_through_the_fused_token_logprob_op(backend_name, monkeypatch):
    be = backend(backend_name)
    model = tiny_model(be)
    calls = []
    fused = be.F.token_logprobs

    def counting(logits, targets, ignore_index=-100):
        calls.append(tuple(logits.shape))
        return fused(logits, targets, ignore_index=ignore_index)

    monkeypatch.setattr(be.F, "token_logprobs", counting)
    batch = collate(pairs(2), TOKENIZER, 96)
    sequence_log_prob(model, batch)
    counted = int((batch.targets != IGNORE_INDEX).sum())
    assert calls == [(counted, model.config.vocab_size)]  # the head ran at the counted positions only
    assert counted < batch.targets.size


def test_gradient_flows_to_the_policy():
    be = backend("numpy")
    model = tiny_model(be, perturb=5)
    batch = collate(pairs(2), TOKENIZER, 96)
    sequence_log_prob(model, batch).logps.sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None for g in grads.values())
    assert np.abs(numpy_of(model, grads["head.weight"])).max() > 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_probs_come_back_in_the_backend_dtype(dtype):
    model = tiny_model(backend("numpy", dtype))
    logps = sequence_log_prob(model, collate(pairs(1), TOKENIZER, 96)).logps
    assert numpy_of(model, logps).dtype == np.dtype(dtype)


@backend_names
def test_the_head_can_run_at_the_counted_positions_only(backend_name):
    """The model contract the log-probs rely on: forward == logits(hidden_states), and the head
    applied to the hidden states at the completion positions gives those rows of the logits."""
    be = backend(backend_name)
    model = tiny_model(be, perturb=3)
    batch = collate(pairs(2), TOKENIZER, 96)
    ids, mask = be.tensor(batch.input_ids), be.tensor(batch.attention_mask)
    full = numpy_of(model, model(ids, mask))
    hidden = model.hidden_states(ids, mask)
    np.testing.assert_array_equal(numpy_of(model, model.logits(hidden)), full)
    rows, cols = np.nonzero(batch.targets != IGNORE_INDEX)
    picked = numpy_of(model, model.logits(hidden[be.tensor(rows), be.tensor(cols)]))
    assert picked.shape == (len(rows), model.config.vocab_size) and len(rows) < batch.targets.size
    np.testing.assert_allclose(picked, full[rows, cols], rtol=0, atol=1e-12)
