"""KV-cache generation for TinyGPT, GPT-2, Llama and Qwen2 on both backends: cached
logits equal the full forward's, cached and uncached generation give identical
tokens (greedy and seeded sampling, float64, a batch of prompts of different
lengths), greedy equals transformers' own greedy generate, stops at EOS /
max_new_tokens / max_len, top-p, and one clear line for every bad input."""

import numpy as np
import pytest

from dpo.generation import generate_batch, generate_ids
from dpo.kv_cache import KVCache
from dpo.pretrained import load_pretrained
from tests.dpo.pipeline_setup import backend, tiny_model
from tests.dpo.pretrained_setup import ARCHS, as_numpy, build_hf, float64_reference, transformers_or_skip

KINDS = ["tinygpt"] + ARCHS
PROMPTS = [[5, 7, 9, 11, 13, 15], [3, 4], [20, 21, 22, 23]]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    transformers_or_skip()
    out = {}
    for arch in ARCHS:
        model = build_hf(arch, seed=3, init_std=0.5)
        folder = tmp_path_factory.mktemp(f"gen-{arch}")
        model.save_pretrained(folder)
        out[arch] = (model, str(folder))
    return out


def make(kind, be_name, folders):
    if kind == "tinygpt":
        return tiny_model(backend(be_name), perturb=1)
    return load_pretrained(folders[kind][1], backend=backend(be_name), dtype="float64")


@pytest.mark.parametrize("be_name", ["numpy", "torch"])
@pytest.mark.parametrize("kind", KINDS)
def test_cached_logits_equal_the_full_forward_chunk_by_chunk(folders, kind, be_name):
    model = make(kind, be_name, folders)
    be = type(model).backend
    ids = np.array([[5, 7, 9, 11, 13, 15, 17], [3, 4, 8, 6, 2, 9, 10]], dtype=np.int64)
    full = as_numpy(model(ids))
    cache, got = KVCache(model, 2), []
    for start, stop in ((0, 3), (3, 4), (4, 7)):  # a prompt, one token, then a chunk of three
        got.append(as_numpy(model(be.tensor(ids[:, start:stop]), cache=cache)))
    np.testing.assert_allclose(np.concatenate(got, axis=1), full, rtol=0, atol=1e-12)


@pytest.mark.parametrize("be_name", ["numpy", "torch"])
@pytest.mark.parametrize("kind", KINDS)
def test_cached_and_uncached_generation_give_identical_tokens(folders, kind, be_name):
    model = make(kind, be_name, folders)
    greedy = generate_batch(model, PROMPTS, max_new_tokens=10)
    assert greedy == generate_batch(model, PROMPTS, max_new_tokens=10, use_cache=False)
    assert [len(r) for r in greedy] == [10, 10, 10]
    assert len({t for r in greedy for t in r}) > 3, "degenerate model: the test would prove little"
    options = dict(max_new_tokens=8, temperature=1.3, top_k=40, top_p=0.9, seed=7)
    sampled = generate_batch(model, PROMPTS, **options)
    assert sampled == generate_batch(model, PROMPTS, use_cache=False, **options)
    assert sampled != greedy


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_equals_transformers_generate(folders, arch):
    import torch

    hf, folder = folders[arch]
    reference = float64_reference(hf.__class__.from_pretrained(folder, dtype=torch.float64).eval())
    ours = load_pretrained(folder, dtype="float64")
    for prompt in PROMPTS:
        out = reference.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                 max_new_tokens=9, do_sample=False, eos_token_id=None, pad_token_id=0)
        assert generate_ids(ours, prompt, max_new_tokens=9) == out[0, len(prompt):].tolist()


def test_stops_at_eos_per_row_and_at_max_len(folders):
    model = make("llama", "numpy", folders)
    free = generate_batch(model, PROMPTS, max_new_tokens=10)
    eos = free[0][0]  # row 0 stops at once; the others stop where they would emit it
    stopped = generate_batch(model, PROMPTS, max_new_tokens=10, eos_token_id=[eos, 10_000])
    assert stopped[0] == []
    for row, full in zip(stopped[1:], free[1:]):
        assert row == (full[:full.index(eos)] if eos in full else full)
    assert generate_batch(model, PROMPTS, max_new_tokens=10, eos_token_id=eos, use_cache=False) == stopped
    tiny = make("tinygpt", "numpy", folders)
    near = [[5] * (tiny.config.max_len - 3), [6, 7]]  # row 0 reaches max_len after 3 tokens
    out = generate_batch(tiny, near, max_new_tokens=6)
    assert [len(r) for r in out] == [3, 6] and out == generate_batch(tiny, near, max_new_tokens=6, use_cache=False)


def test_top_p_tiny_is_greedy_and_top_p_one_changes_nothing(folders):
    model = make("qwen2", "numpy", folders)
    greedy = generate_batch(model, PROMPTS, max_new_tokens=6)
    assert generate_batch(model, PROMPTS, max_new_tokens=6, temperature=2.0, top_p=1e-9, seed=1) == greedy
    hot = dict(max_new_tokens=6, temperature=2.0, seed=1)
    assert generate_batch(model, PROMPTS, top_p=1.0, **hot) == generate_batch(model, PROMPTS, **hot)


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: generate_batch(m, []), "prompts must be a non-empty list"),
    (lambda m: generate_batch(m, [[1, 2], []]), "prompt 1 is empty"),
    (lambda m: generate_batch(m, [[1, 2], [1.5]]), "prompt 1 must be a flat list of int token ids"),
    (lambda m: generate_batch(m, [[1] * 96]), "prompt 0 is 96 tokens, which leaves no room under max_len 96"),
    (lambda m: generate_batch(m, [[1, 999]]), "prompt 0 has token id 999 outside the vocabulary [0, 260)"),
    (lambda m: generate_batch(m, [[1]], top_p=0.0), "top_p must be a number in (0, 1] or None"),
    (lambda m: generate_batch(m, [[1]], top_p=1.5), "top_p must be a number in (0, 1] or None"),
    (lambda m: generate_batch(m, [[1]], eos_token_id="</s>"), "eos_token_id must be an int, a list of ints or None"),
    (lambda m: generate_batch(m, [[1]], temperature=-1), "temperature must be a finite number >= 0"),
    (lambda m: generate_batch(m, [[1]], top_k=0), "top_k must be a positive int or None"),
    (lambda m: generate_batch(m, [[1]], max_new_tokens=-2), "max_new_tokens must be an int >= 0"),
    (lambda m: KVCache(m, 0), "KVCache: batch_size must be a positive int"),
    (lambda m: KVCache(m, 2).attend(0, *(np.zeros((2, 1, 1, 4)),) * 3), "call positions(T) for the chunk first"),
    (lambda m: m(np.ones((3, 2), dtype=np.int64), cache=KVCache(m, 2)), "TinyGPT: the cache holds 2 rows, the ids 3"),
    (lambda m: (lambda c: (m(np.ones((1, 90), np.int64), cache=c), m(np.ones((1, 7), np.int64), cache=c)))(
        KVCache(m, 1)), "TinyGPT: sequence length 97 exceeds max_len 96"),
])
def test_bad_inputs_are_one_clear_line(call, message):
    model = tiny_model(backend("numpy"))
    with pytest.raises((ValueError, RuntimeError)) as excinfo:
        call(model)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value), str(excinfo.value)


def test_pretrained_model_refuses_a_cache_of_another_batch_size_or_past_max_len(folders):
    model = make("gpt2", "numpy", folders)
    with pytest.raises(ValueError, match="the cache holds 2 rows, the ids 1"):
        model(np.ones((1, 3), dtype=np.int64), cache=KVCache(model, 2))
    cache = KVCache(model, 1)
    model(np.ones((1, 40), dtype=np.int64), cache=cache)
    with pytest.raises(ValueError, match="GPT2LMHeadModel: sequence length 49 exceeds max_len 48"):
        model(np.ones((1, 9), dtype=np.int64), cache=cache)
