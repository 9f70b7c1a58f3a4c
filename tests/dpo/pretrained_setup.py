"""Random small transformers models saved as Hugging Face folders (nothing is
downloaded), and the float64 reference used by the parity tests.

transformers computes two things in float32 whatever the model's dtype, by
design (an upcast meant for half precision): the rotary angles and Llama's
RMSNorm. In a float64 model that is a downcast, which would put every Llama
logit ~1e-8 away from its float64 value. `float64_reference` therefore replaces
exactly those two forwards with the same formulas kept in the model's dtype (the
rotary module's own inverse frequencies, the norm's own weight and eps);
everything else is transformers as it is. The float32 tests use transformers
untouched.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

ARCHS = ["gpt2", "llama", "qwen2"]
VOCAB = 96
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16, "rope_theta": 10000.0}


def transformers_or_skip():
    pytest.importorskip("torch", reason="the pretrained parity tests compare with torch/transformers")
    return pytest.importorskip("transformers", reason="transformers is not installed (the dev extra)")


def build_hf(arch: str, seed: int = 0, init_std: float = 0.02):
    """A randomly initialised small transformers model (float32), norms and biases
    perturbed so that an ignored norm weight or bias shows in the logits. A larger
    `init_std` gives peakier, more varied next-token choices (generation tests)."""
    transformers = transformers_or_skip()
    import torch

    torch.manual_seed(seed)
    if arch == "gpt2":  # tied head (GPT-2 always ties)
        config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=48,
                                         bos_token_id=0, eos_token_id=1, initializer_range=init_std)
        model = transformers.GPT2LMHeadModel(config)
    elif arch == "llama":  # GQA (4 query heads, 2 kv heads), tied embeddings, llama3 rope scaling
        config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                          tie_word_embeddings=True, rope_scaling=dict(LLAMA3_ROPE), rms_norm_eps=1e-5,
                                          bos_token_id=0, eos_token_id=1, initializer_range=init_std)
        model = transformers.LlamaForCausalLM(config)
    elif arch == "qwen2":  # q/k/v biases, untied head, GQA 4:1, rope_theta other than the default
        config = transformers.Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=64,
                                          tie_word_embeddings=False, rope_theta=50000.0, bos_token_id=0,
                                          eos_token_id=1, initializer_range=init_std)
        model = transformers.Qwen2ForCausalLM(config)
    else:
        raise ValueError(arch)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.5)
    return model.eval()


def float64_reference(model):
    """The model in float64 with rotary angles and RMSNorm kept in float64 (see the module docstring)."""
    import torch

    model = model.double()

    def rotary_forward(self, x, position_ids):
        freqs = position_ids[..., None].double() * self.inv_freq.double()
        angles = torch.cat((freqs, freqs), dim=-1)
        return (angles.cos() * self.attention_scaling).to(x.dtype), (angles.sin() * self.attention_scaling).to(x.dtype)

    def rms_forward(self, hidden):
        variance = hidden.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden * torch.rsqrt(variance + self.variance_epsilon))

    for module in model.modules():
        if type(module).__name__.endswith("RotaryEmbedding"):
            module.forward = types.MethodType(rotary_forward, module)
        elif type(module).__name__.endswith("RMSNorm"):
            module.forward = types.MethodType(rms_forward, module)
    return model


def right_padded_batch(seed=0, rows=3, T=10):
    """ids (rows, T) and a right-padding mask (row lengths T, T-3, 2)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, VOCAB, size=(rows, T))
    mask = np.ones((rows, T), dtype=np.int64)
    mask[1, T - 3:] = 0
    mask[2, 2:] = 0
    return ids.astype(np.int64), mask


def as_numpy(t):
    """A float64 NumPy copy of a minigrad or torch tensor."""
    from backends.parity import as_numpy as parity_as_numpy

    return parity_as_numpy(t)


def masked_next_token_loss(F, logits, ids, mask, backend_tensor):
    """Mean next-token cross-entropy over the positions whose target is a token."""
    targets = np.where(mask[:, 1:] != 0, ids[:, 1:], -100)
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), backend_tensor(targets.reshape(-1)), ignore_index=-100)
