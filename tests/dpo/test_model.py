"""TinyGPT defined once: config, initialisation, state-dict layout, weight conversion,
padding, input errors and a finite-difference gradient check."""

import math

import numpy as np
import pytest

import minigrad
from backends import get_backend
from dpo.model import GPTConfig, TinyGPT, init_weights
from tests.backends.lm_batch import next_token_nll, padded_batch, random_weights
from tests.conftest import require_torch

TINY = GPTConfig(vocab_size=13, hidden=8, heads=2, depth=1, max_len=6)
SMALL = GPTConfig(vocab_size=37, hidden=16, heads=4, depth=2, max_len=12)


def expected_layout(vocab, hidden, depth, max_len):
    """The classic PyTorch TinyGPT's state dict: (name, shape) in registration order."""
    layout = [("tok.weight", (vocab, hidden)), ("pos.weight", (max_len, hidden))]
    for i in range(depth):
        p = f"blocks.{i}."
        layout += [
            (p + "ln1.weight", (hidden,)), (p + "ln1.bias", (hidden,)),
            (p + "attn.qkv.weight", (3 * hidden, hidden)), (p + "attn.out.weight", (hidden, hidden)),
            (p + "ln2.weight", (hidden,)), (p + "ln2.bias", (hidden,)),
            (p + "fc1.weight", (4 * hidden, hidden)), (p + "fc1.bias", (4 * hidden,)),
            (p + "fc2.weight", (hidden, 4 * hidden)), (p + "fc2.bias", (hidden,)),
        ]
    return layout + [("ln_f.weight", (hidden,)), ("ln_f.bias", (hidden,)), ("head.weight", (vocab, hidden))]


@pytest.fixture(params=["numpy", "torch"])
def backend_name(request):
    if request.param == "torch":
        require_torch()
    return request.param


def one_line(excinfo):
    assert "\n" not in str(excinfo.value), str(excinfo.value)
    return str(excinfo.value)


# ---- config ----------------------------------------------------------------------------
def test_config_defaults():
    c = GPTConfig()
    assert (c.vocab_size, c.hidden, c.heads, c.depth, c.max_len) == (260, 64, 4, 2, 96)
    assert c.head_dim == 16
    assert c.to_dict() == {"vocab_size": 260, "hidden": 64, "heads": 4, "depth": 2, "max_len": 96}


@pytest.mark.parametrize("kwargs,message", [
    ({"hidden": 10, "heads": 4}, r"hidden \(10\) must be divisible by heads \(4\)"),
    ({"depth": 0}, r"GPTConfig.depth must be a positive int, got 0"),
    ({"vocab_size": -3}, r"GPTConfig.vocab_size must be a positive int, got -3"),
    ({"max_len": 9.5}, r"GPTConfig.max_len must be a positive int, got 9.5"),
    ({"heads": True}, r"GPTConfig.heads must be a positive int, got True"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        GPTConfig(**kwargs)
    one_line(err)


# ---- initialisation --------------------------------------------------------------------
def test_init_weights_layout_and_statistics():
    config = GPTConfig()
    weights = init_weights(config, seed=0)
    assert [(k, v.shape) for k, v in weights.items()] == expected_layout(260, 64, 2, 96)
    assert all(v.dtype == np.float64 for v in weights.values())
    residual_std = 0.02 / math.sqrt(2 * config.depth)
    for name, w in weights.items():
        if name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
            np.testing.assert_array_equal(w, np.ones_like(w))
        elif name.endswith(".bias"):
            np.testing.assert_array_equal(w, np.zeros_like(w))
        else:  # normal(0, std): sample std within 6 standard errors (std·sqrt(1/(2n)))
            std = residual_std if name.endswith(("attn.out.weight", "fc2.weight")) else 0.02
            assert abs(w.std() - std) < 6 * std / math.sqrt(2 * w.size), (name, w.std(), std)
            assert abs(w.mean()) < 6 * std / math.sqrt(w.size), (name, w.mean())


def test_residual_scale_follows_depth():
    deep = init_weights(GPTConfig(hidden=32, heads=2, depth=8), seed=1)
    std = deep["blocks.5.fc2.weight"].std()
    assert abs(std - 0.02 / 4) < 0.0003  # 0.02 / sqrt(2·8)


def test_init_is_deterministic_in_the_seed():
    a, b, c = init_weights(SMALL, 7), init_weights(SMALL, 7), init_weights(SMALL, 8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["tok.weight"], c["tok.weight"])


def test_model_holds_exactly_the_initial_weights():
    model = TinyGPT(SMALL, seed=3, backend=get_backend("numpy", dtype="float64"))
    for key, value in init_weights(SMALL, 3).items():
        np.testing.assert_array_equal(model.export_weights()[key], value)
    assert model.num_parameters() == sum(v.size for v in init_weights(SMALL, 3).values())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_both_backends_start_bit_identical(dtype):
    require_torch()
    a = TinyGPT(SMALL, seed=5, backend=get_backend("numpy", dtype=dtype)).export_weights()
    b = TinyGPT(SMALL, seed=5, backend=get_backend("torch", dtype=dtype)).export_weights()
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a[key], b[key])


# ---- state dict layout and conversion ----------------------------------------------------
def test_state_dict_names_and_shapes(backend_name):
    model = TinyGPT(GPTConfig(), backend=backend_name)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == expected_layout(260, 64, 2, 96)
    assert [k for k, _ in model.named_parameters()] == [k for k, _ in expected_layout(260, 64, 2, 96)]


def test_state_dict_round_trips_numpy_torch_numpy_bit_exactly():
    require_torch()
    weights = random_weights(init_weights(SMALL), np.random.default_rng(1))
    for dtype in ("float64", "float32"):
        original = {k: v.astype(dtype) for k, v in weights.items()}
        on_numpy = TinyGPT(SMALL, backend=get_backend("numpy", dtype=dtype))
        on_numpy.load_weights(original)
        on_torch = TinyGPT(SMALL, backend=get_backend("torch", dtype=dtype))
        on_torch.load_weights(on_numpy.export_weights())
        back = TinyGPT(SMALL, backend=get_backend("numpy", dtype=dtype))
        back.load_weights({k: v.detach().numpy() for k, v in on_torch.state_dict().items()})
        for key, value in original.items():
            assert back.export_weights()[key].dtype == np.dtype(dtype)
            np.testing.assert_array_equal(back.export_weights()[key], value)


def test_weights_convert_between_backends_both_ways():
    require_torch()
    numpy64, torch64 = get_backend("numpy", dtype="float64"), get_backend("torch", dtype="float64")
    start = TinyGPT(SMALL, backend=numpy64)
    start.load_weights(random_weights(init_weights(SMALL), np.random.default_rng(2)))
    there = start.to_backend(torch64)
    back = there.to_backend(numpy64)
    assert type(there).backend is torch64 and type(back).backend is numpy64
    for key, value in start.export_weights().items():
        np.testing.assert_array_equal(there.export_weights()[key], value)
        np.testing.assert_array_equal(back.export_weights()[key], value)
    as32 = start.to_backend(get_backend("torch", dtype="float32"))
    np.testing.assert_array_equal(as32.export_weights()["head.weight"],
                                  start.export_weights()["head.weight"].astype(np.float32))


def test_load_weights_names_a_bad_shape(backend_name):
    model = TinyGPT(SMALL, backend=backend_name)
    weights = init_weights(SMALL)
    weights["head.weight"] = weights["head.weight"][:5]
    with pytest.raises(RuntimeError, match=r"size mismatch for head\.weight"):
        model.load_weights(weights)


def test_forward_is_written_once():
    require_torch()
    a = TinyGPT(TINY, backend="numpy")
    b = TinyGPT(TINY, backend="torch")
    assert isinstance(a, TinyGPT) and isinstance(b, TinyGPT)
    assert type(a).forward is type(b).forward is TinyGPT.forward
    assert isinstance(a, minigrad.nn.Module)


def test_a_bound_model_class_refuses_another_backend(backend_name):
    model = TinyGPT(TINY, backend=backend_name)
    other = "torch" if backend_name == "numpy" else "numpy"
    with pytest.raises(ValueError, match=rf"TinyGPT is already bound to <backend {backend_name} .*backend='{other}'"):
        type(model)(TINY, backend=other)


# ---- forward and padding ------------------------------------------------------------------
def test_forward_shapes_and_inputs(backend_name):
    be = get_backend(backend_name, dtype="float64")
    model = TinyGPT(SMALL, backend=be)
    ids = np.random.default_rng(0).integers(0, SMALL.vocab_size, size=(3, SMALL.max_len))
    logits = model(ids)
    assert tuple(logits.shape) == (3, SMALL.max_len, SMALL.vocab_size) and logits.dtype == be.dtype
    np.testing.assert_array_equal(be.to_numpy(model(be.tensor(ids))), be.to_numpy(logits))
    np.testing.assert_array_equal(be.to_numpy(model(ids.tolist())), be.to_numpy(logits))
    assert tuple(model([[4]]).shape) == (1, 1, SMALL.vocab_size)


def test_right_padding_leaves_real_positions_unchanged(backend_name):
    be = get_backend(backend_name, dtype="float64")
    model = TinyGPT(SMALL, backend=be)
    model.load_weights(random_weights(init_weights(SMALL), np.random.default_rng(3)))
    rng = np.random.default_rng(4)
    lengths = [12, 7, 3, 1]
    ids, mask = padded_batch(rng, lengths, 12, SMALL.vocab_size)
    logits = be.to_numpy(model(ids, mask))
    garbage = np.where(mask == 1, ids, rng.integers(0, SMALL.vocab_size, size=ids.shape))
    with_garbage = be.to_numpy(model(garbage, mask))
    for b, n in enumerate(lengths):
        alone = be.to_numpy(model(ids[b:b + 1, :n]))[0]
        np.testing.assert_allclose(logits[b, :n], alone, rtol=0, atol=1e-12)
        np.testing.assert_allclose(with_garbage[b, :n], alone, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(be.to_numpy(model(ids, np.ones_like(mask))), be.to_numpy(model(ids)))


def test_padded_positions_stay_finite_even_for_an_empty_row(backend_name):
    """A row with no real token: every query row of its attention is fully masked,
    which both backends turn into zeros (not NaN), so the logits stay finite."""
    be = get_backend(backend_name, dtype="float64")
    model = TinyGPT(SMALL, backend=be)
    ids, mask = padded_batch(np.random.default_rng(5), [0, 4], 6, SMALL.vocab_size)
    assert np.isfinite(be.to_numpy(model(ids, mask))).all()


def test_left_padding_is_refused(backend_name):
    be = get_backend(backend_name, dtype="float64")
    model = TinyGPT(SMALL, backend=be)
    ids = np.ones((2, 5), dtype=np.int64)
    mask = np.array([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1]])
    with pytest.raises(ValueError, match=r"^TinyGPT: attention_mask row 1 is not right padding"):
        model(ids, mask)


# ---- input errors: one line each, naming the bad value ------------------------------------
def test_input_errors(backend_name):
    be = get_backend(backend_name, dtype="float64")
    model = TinyGPT(SMALL, backend=be)
    ids = np.ones((2, 5), dtype=np.int64)
    cases = [
        (np.ones((2, 13), dtype=np.int64), None, ValueError, r"sequence length 13 exceeds max_len 12; truncate"),
        (np.full((2, 5), 37), None, ValueError, r"token id 37 is outside the vocabulary \[0, 37\)"),
        (np.array([[1, 2, -1]]), None, ValueError, r"token id -1 is outside the vocabulary \[0, 37\)"),
        (ids, np.ones((2, 6)), ValueError, r"attention_mask has shape \(2, 6\), expected the ids' shape \(2, 5\)"),
        (ids, np.ones(5), ValueError, r"attention_mask has shape \(5,\), expected the ids' shape \(2, 5\)"),
        (np.ones((2, 5)), None, TypeError, r"token ids must be integers, got float64"),
        (np.ones((2, 5), dtype=bool), None, TypeError, r"token ids must be integers, got bool"),
        (be.tensor(np.ones((2, 5))), None, TypeError, r"token ids must be int64 integers, got .*float64"),
        (np.arange(5), None, ValueError, r"token ids must have shape \(batch, time\), got \(5,\)"),
    ]
    for bad_ids, mask, error, message in cases:
        with pytest.raises(error, match="TinyGPT: " + message) as err:
            model(bad_ids, mask)
        one_line(err)


def test_torch_int32_ids_are_refused_with_their_dtype():
    torch = require_torch()
    model = TinyGPT(SMALL, backend="torch")
    with pytest.raises(TypeError, match=r"TinyGPT: token ids must be int64 integers, got torch.int32"):
        model(torch.ones(1, 3, dtype=torch.int32))


# ---- gradients by finite differences --------------------------------------------------------
def test_gradcheck_tiny_tinygpt_through_padding():
    """Every parameter of a tiny TinyGPT (hidden 8, heads 2, depth 1), float64, numpy
    backend: backward against central differences, for the logits at every position
    and the next-token NLL over the real tokens of a right-padded batch. The
    reference (NumPy) kernels are selected: the numba erf agrees with them bit for
    bit (minigrad's kernel tests) and ~2200 forwards stay fast."""
    be = get_backend("numpy", dtype="float64")
    model = TinyGPT(TINY, backend=be)
    model.load_weights(random_weights(init_weights(TINY, seed=1), np.random.default_rng(6), scale=0.3))
    ids, mask = padded_batch(np.random.default_rng(7), [6, 4, 2], 6, TINY.vocab_size)
    names, params = zip(*model.named_parameters())

    def outputs(*_params):  # the parameters are perturbed in place by gradcheck
        return model(ids, mask), next_token_nll(model, ids, mask)

    with minigrad.kernel_mode("numpy"):
        assert minigrad.gradcheck(outputs, params, eps=1e-6, atol=1e-7, rtol=1e-5, names=names)
