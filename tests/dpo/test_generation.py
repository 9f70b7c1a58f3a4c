"""Generation: greedy is deterministic and is the argmax at each step; it stops at the stop token,
after max_new_tokens and at max_len; sampling repeats with its seed, varies with it, and top-k
keeps to the k best; bad arguments are refused with one clear message."""

import numpy as np
import pytest

from dpo.generation import generate, generate_ids
from dpo.model import GPTConfig, TinyGPT
from dpo.tokenizer import InstructionTokenizer
from tests.dpo.pipeline_setup import TINY, backend, numpy_of, tiny_model

TOKENIZER = InstructionTokenizer()
PROMPT = TOKENIZER.encode_prompt("Compute 2 + 3.")


def last_logits(model, ids):
    return numpy_of(model, model(np.asarray([ids], dtype=np.int64)))[0, -1]


def rigged(token, config=TINY):
    """A model whose head prefers `token` whatever the input: the final LayerNorm outputs its
    bias (weight 0) and only `token`'s head row is non-zero."""
    model = TinyGPT(config, backend=backend("numpy"))
    weights = model.export_weights()
    weights["ln_f.weight"][:] = 0.0
    weights["ln_f.bias"][:] = 1.0
    weights["head.weight"][:] = 0.0
    weights["head.weight"][token] = 1.0
    model.load_weights(weights)
    return model


def test_greedy_is_the_argmax_at_each_step_and_deterministic():
    model = tiny_model(backend("numpy"), perturb=1)
    new = generate_ids(model, PROMPT, max_new_tokens=6)
    assert new == generate_ids(model, PROMPT, max_new_tokens=6)
    ids = list(PROMPT)
    for token in new:
        assert token == int(np.argmax(last_logits(model, ids)))
        ids.append(token)


def test_greedy_is_the_same_on_both_backends():
    numpy_model = tiny_model(backend("numpy"), perturb=2)
    torch_model = tiny_model(backend("torch"), perturb=2)
    assert generate_ids(numpy_model, PROMPT, 8) == generate_ids(torch_model, PROMPT, 8)


def test_stops_at_the_end_of_completion_token():
    model = rigged(InstructionTokenizer.EOC)
    assert generate_ids(model, PROMPT, 10, stop_id=InstructionTokenizer.EOC) == []
    assert generate(model, TOKENIZER, "Anything?") == ""


def test_stops_at_the_stop_token_after_some_tokens_and_drops_it():
    model = tiny_model(backend("numpy"), perturb=3)
    free = generate_ids(model, PROMPT, 10)
    k = next(i for i in range(1, len(free)) if free[i] not in free[:i])
    assert generate_ids(model, PROMPT, 10, stop_id=free[k]) == free[:k]


def test_stops_after_max_new_tokens():
    model = rigged(ord("A"))
    assert generate(model, TOKENIZER, "Shout.", max_new_tokens=5) == "AAAAA"
    assert generate_ids(model, PROMPT, 0) == []


def test_stops_at_max_len():
    model = rigged(ord("A"), GPTConfig(hidden=16, heads=2, depth=1, max_len=len(PROMPT) + 3))
    assert generate_ids(model, PROMPT, max_new_tokens=50) == [ord("A")] * 3


def test_sampling_repeats_with_its_seed_and_varies_with_it():
    model = tiny_model(backend("numpy"), perturb=4)
    draws = {seed: generate_ids(model, PROMPT, 8, temperature=1.0, seed=seed) for seed in range(4)}
    assert draws[0] == generate_ids(model, PROMPT, 8, temperature=1.0, seed=0)
    assert len({tuple(d) for d in draws.values()}) > 1


def test_top_k_one_is_greedy_and_top_k_keeps_to_the_k_best():
    model = tiny_model(backend("numpy"), perturb=5)
    greedy = generate_ids(model, PROMPT, 6)
    assert generate_ids(model, PROMPT, 6, temperature=1.5, top_k=1, seed=3) == greedy
    sampled = generate_ids(model, PROMPT, 6, temperature=5.0, top_k=3, seed=3)
    ids = list(PROMPT)
    for token in sampled:
        best3 = np.argsort(last_logits(model, ids))[-3:]
        assert token in best3
        ids.append(token)
    assert sampled != greedy  # a hot temperature does leave the argmax


def test_a_tiny_temperature_is_greedy_without_overflow_warnings():
    model = tiny_model(backend("numpy"), perturb=6)
    assert generate_ids(model, PROMPT, 5, temperature=1e-300) == generate_ids(model, PROMPT, 5)


def test_generation_restores_the_training_mode():
    model = tiny_model(backend("numpy"))
    model.train()
    generate_ids(model, PROMPT, 2)
    assert model.training
    model.eval()
    generate_ids(model, PROMPT, 2)
    assert not model.training


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=-1.0), "temperature must be a finite number >= 0"),
    (dict(temperature=float("nan")), "temperature must be a finite number >= 0"),
    (dict(top_k=0), "top_k must be a positive int"),
    (dict(top_k=2.5), "top_k must be a positive int"),
    (dict(max_new_tokens=-1), "max_new_tokens must be an int >= 0"),
])
def test_bad_sampling_arguments(kwargs, message):
    model = tiny_model(backend("numpy"))
    with pytest.raises(ValueError, match=message):
        generate_ids(model, PROMPT, **{"max_new_tokens": 3, **kwargs})


def test_prompt_too_long_or_empty():
    model = tiny_model(backend("numpy"))
    with pytest.raises(ValueError, match="the prompt is 96 tokens, which leaves no room under max_len 96"):
        generate_ids(model, [65] * 96, 3)
    with pytest.raises(ValueError, match="the prompt is empty"):
        generate_ids(model, [], 3)
    notices = []  # generate (text) keeps the end of an over-long prompt and says so
    generate(model, TOKENIZER, "x" * 200, max_new_tokens=3, notify=notices.append)
    assert notices == ["the prompt is 202 tokens, more than the model's context (max_len 96) allows; kept its last 95",
                       "max_new_tokens cut from 3 to 1: the prompt's 95 tokens leave that much room in max_len 96"]
