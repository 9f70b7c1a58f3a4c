"""The Llama family (`LlamaForCausalLM`, `Qwen2ForCausalLM`), written once against
the backend surface.

Per layer `x + attn(rms(x))` then `x + down(silu(gate(rms(x))) ∘ up(rms(x)))`;
rotary position embeddings on queries and keys ("rotate half" layout);
grouped-query attention (`num_key_value_heads` key/value heads, each shared by
`heads / kv_heads` query heads); a final RMSNorm; a head tied to the embedding or
not. Qwen2 is the same with biases on q, k and v; Llama's `attention_bias` puts
them on q, k, v and o, `mlp_bias` on the MLP.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from backends import ModelDefinition

from ..model_inputs import check_inputs, key_mask_of
from .base import PretrainedCausalLM
from .files import PretrainedError

ROPE_TYPES = ("default", "llama3")


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    rope_theta: float
    rope_scaling: tuple = ()  # llama3: sorted (key, value) pairs of its parameters
    raw: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def max_len(self):
        return self.max_position_embeddings

    def to_hf(self, model_type: str) -> dict:
        """The config.json dict: the loaded one, with every value this model uses written
        out under transformers' names (rope settings stay as they were given)."""
        names = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "head_dim", "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings",
                 "mlp_bias")
        out = {**self.raw, **{k: getattr(self, k) for k in names}, "model_type": model_type, "hidden_act": "silu"}
        if model_type == "llama":
            out["attention_bias"] = self.qkv_bias
        if not (self.raw.get("rope_parameters") or self.raw.get("rope_theta")):
            out["rope_theta"] = self.rope_theta
        return out

    @classmethod
    def from_hf(cls, raw: dict, architecture: str, source="config.json") -> LlamaConfig:
        """From a transformers config dict (rope as `rope_parameters`, or the older
        `rope_theta` + `rope_scaling`); one line for each option not implemented."""
        def need(key):
            value = raw.get(key)
            if value is None:
                raise PretrainedError(f"{source}: {architecture} config needs {key!r}")
            return value

        if raw.get("hidden_act", "silu") != "silu":
            raise PretrainedError(f"{source}: hidden_act {raw['hidden_act']!r} is not implemented; supported: silu")
        layer_types = raw.get("layer_types") or []
        if raw.get("use_sliding_window") or any(t != "full_attention" for t in layer_types):
            raise PretrainedError(f"{source}: sliding-window attention (use_sliding_window / layer_types) "
                                  "is not implemented")
        rope = dict(raw.get("rope_parameters") or raw.get("rope_scaling") or {})
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in ROPE_TYPES:
            raise PretrainedError(f"{source}: rope scaling type {rope_type!r} is not implemented; "
                                  f"supported: {', '.join(ROPE_TYPES)}")
        if float(rope.get("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0))) != 1.0:
            raise PretrainedError(f"{source}: partial_rotary_factor != 1 is not implemented")
        scaling = ()
        if rope_type == "llama3":
            keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
            missing = [k for k in keys if k not in rope]
            if missing:
                raise PretrainedError(f"{source}: llama3 rope scaling needs {missing[0]!r}")
            scaling = tuple(sorted((k, float(rope[k])) for k in keys))
        hidden, heads = int(need("hidden_size")), int(need("num_attention_heads"))
        kv_heads = int(raw.get("num_key_value_heads") or heads)
        if heads % kv_heads:
            raise PretrainedError(f"{source}: num_attention_heads ({heads}) must be a multiple of "
                                  f"num_key_value_heads ({kv_heads})")
        head_dim = int(raw.get("head_dim") or hidden // heads)
        qwen2 = architecture == "Qwen2ForCausalLM"
        attention_bias = bool(raw.get("attention_bias", False))
        return cls(vocab_size=int(need("vocab_size")), hidden_size=hidden,
                   intermediate_size=int(need("intermediate_size")), num_hidden_layers=int(need("num_hidden_layers")),
                   num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
                   rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
                   max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
                   tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
                   qkv_bias=qwen2 or attention_bias, o_bias=attention_bias and not qwen2,
                   mlp_bias=bool(raw.get("mlp_bias", False)),
                   rope_theta=float(rope.get("rope_theta", raw.get("rope_theta", 10000.0))),
                   rope_scaling=scaling, raw=dict(raw))


def inverse_frequencies(config: LlamaConfig) -> np.ndarray:
    """θ^(-2i/d) for i < d/2, rounded to float32 as the checkpoints were trained with
    (transformers builds them in float32 whatever the model's dtype), with Llama 3's
    frequency-dependent scaling where configured. The float32 steps follow
    transformers' order of operations (x / y for a scalar x is (1/y)·x in torch), so
    the values match it bit for bit; the angles are then formed in float64."""
    f32, d = np.float32, config.head_dim
    exponent = np.arange(0, d, 2, dtype=np.float32) / f32(d)
    inv = f32(1.0) / (config.rope_theta ** exponent.astype(np.float64)).astype(np.float32)
    if config.rope_scaling:
        s = dict(config.rope_scaling)
        factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
        old = s["original_max_position_embeddings"]
        low_wavelen, high_wavelen = f32(old / low), f32(old / high)
        wavelen = (f32(1.0) / inv) * f32(2 * math.pi)
        scaled = np.where(wavelen > low_wavelen, inv / f32(factor), inv)  # long waves: slowed by `factor`
        smooth = ((f32(1.0) / wavelen) * f32(old) - f32(low)) / f32(high - low)
        smoothed = (f32(1.0) - smooth) * scaled / f32(factor) + smooth * scaled  # between: interpolated
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        inv = np.where(medium, smoothed, scaled).astype(np.float32)
    return inv


class LlamaAttention(ModelDefinition):
    def __init__(self, config: LlamaConfig, layer_index: int):
        super().__init__()
        nn, c = self.nn, config
        self.layer_index, self.heads, self.kv_heads, self.head_dim = (
            layer_index, c.num_attention_heads, c.num_key_value_heads, c.head_dim)
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * c.head_dim, bias=c.qkv_bias)
        self.k_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=c.qkv_bias)
        self.v_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=c.qkv_bias)
        self.o_proj = nn.Linear(c.num_attention_heads * c.head_dim, c.hidden_size, bias=c.o_bias)

    def forward(self, x, cos, sin, key_mask, cache):
        B, T, _ = x.shape
        F, hd = self.F, self.head_dim
        q = self.q_proj(x).view(B, T, self.heads, hd).transpose(1, 2)  # (B, heads, T, hd)
        k = self.k_proj(x).view(B, T, self.kv_heads, hd).transpose(1, 2)  # (B, kv_heads, T, hd)
        v = self.v_proj(x).view(B, T, self.kv_heads, hd).transpose(1, 2)
        q, k = F.rotary_embedding(q, cos, sin), F.rotary_embedding(k, cos, sin)
        if self.kv_heads != self.heads:  # query head j reads key/value head j // (heads / kv_heads)
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)  # (B, heads, T, hd)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, is_causal=True)
        else:
            y = cache.attend(self.layer_index, q, k, v)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.heads * hd))  # (B, T, C)


class LlamaMLP(ModelDefinition):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        nn, c = self.nn, config
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=c.mlp_bias)

    def forward(self, x):
        return self.down_proj(self.F.silu(self.gate_proj(x)) * self.up_proj(x))  # (B, T, C)


class LlamaDecoderLayer(ModelDefinition):
    def __init__(self, config: LlamaConfig, layer_index: int):
        super().__init__()
        nn, backend = self.nn, type(self).backend
        self.input_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.self_attn = LlamaAttention(config, layer_index, backend=backend)
        self.post_attention_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = LlamaMLP(config, backend=backend)

    def forward(self, x, cos, sin, key_mask, cache):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, key_mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(ModelDefinition):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        nn, backend = self.nn, type(self).backend
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([LlamaDecoderLayer(config, i, backend=backend)
                                     for i in range(config.num_hidden_layers)])
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class LlamaForCausalLM(PretrainedCausalLM):
    """Token ids (B, T) [+ attention mask, right padding] -> logits (B, T, vocab_size)."""

    architecture = "LlamaForCausalLM"
    model_type = "llama"
    ignored = (".rotary_emb.inv_freq",)  # recomputed from the config, stored by some older files
    embedding_name = "model.embed_tokens.weight"

    def __init__(self, config: LlamaConfig):
        super().__init__()
        backend = type(self).backend
        self.config = config
        self.model = LlamaModel(config, backend=backend)
        self.lm_head = self.nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight  # one parameter, listed under embed_tokens
        backend.place(self)
        self.inv_freq = inverse_frequencies(config).astype(np.float64)  # (hd/2,), a constant, not a buffer

    def rotary_tables(self, positions: np.ndarray):
        """cos, sin of shape (B or 1, 1, T, hd) for int positions (B or 1, T): angle
        position·inv_freq in float64, repeated for the two halves."""
        angles = positions[..., None].astype(np.float64) * self.inv_freq  # (B, T, hd/2)
        angles = np.concatenate((angles, angles), axis=-1)[:, None]  # (B, 1, T, hd)
        backend = type(self).backend
        return backend.tensor(np.cos(angles)), backend.tensor(np.sin(angles))

    def hidden_states(self, ids, attention_mask=None, cache=None):
        """(B, T, C) after the final RMSNorm."""
        ids, attention_mask = check_inputs(self, ids, attention_mask, cache)
        cos, sin = self.rotary_tables(self.positions(ids.shape[1], cache, attention_mask))
        x = self.model.embed_tokens(ids)  # (B, T, C)
        key_mask = key_mask_of(attention_mask) if cache is None else None
        for layer in self.model.layers:
            x = layer(x, cos, sin, key_mask, cache)
        return self.model.norm(x)

    def logits(self, hidden):
        return self.lm_head(hidden)  # (..., V)

    def hf_config(self) -> dict:
        return self.config.to_hf(self.model_type)


class Qwen2ForCausalLM(LlamaForCausalLM):
    """Llama with biases on the q, k and v projections (Qwen2, Qwen2.5)."""

    architecture = "Qwen2ForCausalLM"
    model_type = "qwen2"
