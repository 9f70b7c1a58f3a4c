"""GPT-2 (`GPT2LMHeadModel`), written once against the backend surface.

Per block `x + attn(ln_1(x))` then `x + mlp(ln_2(x))`; learned positions; one
biased fused `c_attn` projection (q | k | v along the output); `gelu_new` (the
tanh approximation); a final LayerNorm and a head tied to the token embedding.

The file stores the four Conv1D weights as (in, out); here they are nn.Linear
(out, in), transposed on load and back on export (`transposed` below). Hub files
from the original release have no `transformer.` prefix; transformers 5 writes it.
"""

from __future__ import annotations

import dataclasses

from backends import ModelDefinition

from ..model_inputs import check_inputs, key_mask_of
from .base import PretrainedCausalLM
from .files import PretrainedError

ACTIVATIONS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh", "gelu": "none"}


@dataclasses.dataclass(frozen=True)
class GPT2Config:
    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    n_inner: int
    layer_norm_epsilon: float
    activation_function: str
    tie_word_embeddings: bool
    raw: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def max_len(self):
        return self.n_positions

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    def to_hf(self) -> dict:
        """The config.json dict: the loaded one, with every value this model uses written out."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "raw"}
        return {**self.raw, **fields, "model_type": "gpt2"}

    @classmethod
    def from_hf(cls, raw: dict, source="config.json") -> GPT2Config:
        """From a transformers config dict; one line for each option not implemented."""
        def need(key, default=None):
            value = raw.get(key, default)
            if value is None:
                raise PretrainedError(f"{source}: GPT-2 config needs {key!r}")
            return value

        activation = raw.get("activation_function", "gelu_new")
        if activation not in ACTIVATIONS:
            raise PretrainedError(f"{source}: activation_function {activation!r} is not implemented; "
                                  f"supported: {', '.join(ACTIVATIONS)}")
        for key, bad, why in (("scale_attn_by_inverse_layer_idx", True, "scaling attention by 1/layer"),
                              ("scale_attn_weights", False, "attention without the 1/sqrt(head_dim) scale"),
                              ("add_cross_attention", True, "cross-attention")):
            if raw.get(key, not bad) == bad:
                raise PretrainedError(f"{source}: {key}={bad} ({why}) is not implemented")
        n_embd, n_head = int(need("n_embd", 768)), int(need("n_head", 12))
        if n_embd % n_head:
            raise PretrainedError(f"{source}: n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        return cls(vocab_size=int(need("vocab_size", 50257)), n_positions=int(need("n_positions", 1024)),
                   n_embd=n_embd, n_layer=int(need("n_layer", 12)), n_head=n_head,
                   n_inner=int(raw.get("n_inner") or 4 * n_embd),
                   layer_norm_epsilon=float(raw.get("layer_norm_epsilon", 1e-5)), activation_function=activation,
                   tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)), raw=dict(raw))


class GPT2Attention(ModelDefinition):
    def __init__(self, config: GPT2Config, layer_index: int):
        super().__init__()
        self.heads, self.layer_index = config.n_head, layer_index
        self.c_attn = self.nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = self.nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x, key_mask, cache):
        B, T, C = x.shape
        qkv = self.c_attn(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, heads, T, head_dim)
        if cache is None:
            y = self.F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, is_causal=True)
        else:
            y = cache.attend(self.layer_index, q, k, v)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


class GPT2MLP(ModelDefinition):
    def __init__(self, config: GPT2Config):
        super().__init__()
        self.approximate = ACTIVATIONS[config.activation_function]
        self.c_fc = self.nn.Linear(config.n_embd, config.n_inner)
        self.c_proj = self.nn.Linear(config.n_inner, config.n_embd)

    def forward(self, x):
        return self.c_proj(self.F.gelu(self.c_fc(x), approximate=self.approximate))  # (B, T, C)


class GPT2Block(ModelDefinition):
    def __init__(self, config: GPT2Config, layer_index: int):
        super().__init__()
        nn, backend = self.nn, type(self).backend
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config, layer_index, backend=backend)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(config, backend=backend)

    def forward(self, x, key_mask, cache):
        x = x + self.attn(self.ln_1(x), key_mask, cache)
        return x + self.mlp(self.ln_2(x))


class GPT2Model(ModelDefinition):
    def __init__(self, config: GPT2Config):
        super().__init__()
        nn, backend = self.nn, type(self).backend
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.h = nn.ModuleList([GPT2Block(config, i, backend=backend) for i in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)


class GPT2LMHeadModel(PretrainedCausalLM):
    """Token ids (B, T) [+ attention mask, right padding] -> logits (B, T, vocab_size)."""

    architecture = "GPT2LMHeadModel"
    file_prefix = "transformer."
    transposed = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
    ignored = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers of older files
    embedding_name = "transformer.wte.weight"

    def __init__(self, config: GPT2Config):
        super().__init__()
        backend = type(self).backend
        self.config = config
        self.transformer = GPT2Model(config, backend=backend)
        self.lm_head = self.nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.transformer.wte.weight  # one parameter, listed under wte
        backend.place(self)

    def hidden_states(self, ids, attention_mask=None, cache=None):
        """(B, T, C) after the final LayerNorm."""
        ids, attention_mask = check_inputs(self, ids, attention_mask, cache)
        backend, body = type(self).backend, self.transformer
        positions = backend.tensor(self.positions(ids.shape[1], cache, attention_mask))
        x = body.wte(ids) + body.wpe(positions)  # (B, T, C)
        key_mask = key_mask_of(attention_mask) if cache is None else None
        for block in body.h:
            x = block(x, key_mask, cache)
        return body.ln_f(x)

    def logits(self, hidden):
        return self.lm_head(hidden)  # (..., V)

    def hf_config(self) -> dict:
        return self.config.to_hf()
