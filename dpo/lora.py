"""LoRA adapters, written once against the backend surface, in PEFT's names and files.

    apply_lora(model, r=8, alpha=16, target_modules=["qkv"])   # only the adapters require grad
    with disable_adapters(model): ...                          # the base model, same weights
    reference = adapters_off(model)                            # a DPO reference sharing them
    save_adapter(model, "runs/a/adapter"); load_adapter(other, "runs/a/adapter")
    merge_lora(model)                                          # W += (alpha/r)·B·A; plain Linears back

A targeted Linear y = W x + b becomes y = W x + b + (alpha/r)·B(A(dropout(x))),
with A (r, in) drawn kaiming-uniform(a=sqrt(5)) (PEFT's default, which is
U(-1/sqrt(in), 1/sqrt(in))) in NumPy from a seed, so both backends start from
the same numbers, and B (out, r) zero, so the adapted model starts equal to the
base. The base weight and bias are the Linear's own parameters, kept under their
names (`...q_proj.weight`); the adapters are `...q_proj.lora_A.weight` and
`...q_proj.lora_B.weight`, and in PEFT's `adapter_model.safetensors` they are
`base_model.model.<module name>.lora_A.weight`.

Targets are matched on module names as PEFT does: a list entry matches a
Linear whose dotted name equals it or ends with "." + entry; a string is a
regular expression that must match the whole name.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re

import numpy as np

from backends import ModelDefinition

from . import safetensors_io

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."

# PEFT's default target modules for the architectures here (by config model_type; TinyGPT's by analogy)
DEFAULT_TARGETS = {"tinygpt": ["qkv"], "gpt2": ["c_attn"], "llama": ["q_proj", "v_proj"],
                   "qwen2": ["q_proj", "v_proj"]}
# architectures whose checkpoints store Linear weights transposed (GPT-2's Conv1D): PEFT's fan_in_fan_out
FAN_IN_FAN_OUT = ("gpt2",)
# adapter_config.json entries PEFT may set that these adapters do not implement -> the value that means "off"
UNSUPPORTED_OPTIONS = {"use_rslora": False, "use_dora": False, "modules_to_save": None, "layers_to_transform": None,
                       "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {}, "lora_bias": False,
                       "target_parameters": None, "exclude_modules": None, "layer_replication": None,
                       "trainable_token_indices": None}


class LoraError(ValueError):
    """A bad LoRA setting, a target that matches nothing, or an adapter folder that cannot be used."""


# ---- settings ---------------------------------------------------------------------------------
def check_lora_settings(r, alpha, dropout, target_modules, where="apply_lora"):
    """The settings as (r, alpha, dropout, targets), or a one-line LoraError naming the bad one.
    targets: a list of names, a regex string, or None (the architecture's default).
    Messages read "<where>: r must ..." or, when `where` ends with "_" or ".", "<where>r must ..."."""
    def name(n):
        return f"{where}{n}" if where.endswith(("_", ".")) else f"{where}: {n}"

    if not isinstance(r, (int, np.integer)) or isinstance(r, bool) or r <= 0:
        raise LoraError(f"{name('r')} must be a positive int, got {r!r}")
    ok = isinstance(alpha, (int, float, np.number)) and not isinstance(alpha, bool) and math.isfinite(alpha)
    if not ok or alpha <= 0:
        raise LoraError(f"{name('alpha')} must be a positive number, got {alpha!r}")
    ok = isinstance(dropout, (int, float, np.number)) and not isinstance(dropout, bool)
    if not ok or not 0.0 <= dropout < 1.0:
        raise LoraError(f"{name('dropout')} must be a number in [0, 1), got {dropout!r}")
    if target_modules is not None:
        if isinstance(target_modules, str):
            try:
                re.compile(target_modules)
            except re.error as error:
                raise LoraError(f"{name('target_modules')} {target_modules!r} is not a regular expression "
                                f"({error})") from None
        names = [target_modules] if isinstance(target_modules, str) else (
            list(target_modules) if isinstance(target_modules, (list, tuple, set)) else None)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise LoraError(f"{name('target_modules')} must be a non-empty list of module names "
                            f"or a regex string, got {target_modules!r}")
        if not isinstance(target_modules, str):
            target_modules = sorted(set(names))
    return int(r), alpha, float(dropout), target_modules


ARCHITECTURES = {"GPT2LMHeadModel": "gpt2", "LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}


def _config_value(config, key):
    """config[key] for a dict, config.key for an object, or its raw config.json dict's entry."""
    if isinstance(config, dict):
        return config.get(key)
    value = getattr(config, key, None)
    raw = getattr(config, "raw", None)
    return raw.get(key) if value is None and isinstance(raw, dict) else value


def _model_type(model) -> str | None:
    """"tinygpt", or the Hugging Face model_type of a pretrained model (its config's
    model_type, else its architecture class name)."""
    from .model import GPTConfig

    config = getattr(model, "config", None)
    if isinstance(config, GPTConfig):
        return "tinygpt"
    value = _config_value(config, "model_type") if config is not None else None
    if not isinstance(value, str):
        value = ARCHITECTURES.get(getattr(model, "architecture", None)) or ARCHITECTURES.get(type(model).__name__)
    return value


def default_target_modules(model) -> list:
    """PEFT's default targets for this model's architecture; LoraError if there is none."""
    kind = _model_type(model)
    if kind not in DEFAULT_TARGETS:
        raise LoraError(f"apply_lora: no default target_modules for a {type(model).__name__} "
                        f"(model_type {kind!r}); pass target_modules, e.g. {linear_suffixes(model)}")
    return list(DEFAULT_TARGETS[kind])


def linear_names(model) -> list:
    """Dotted names of the model's Linear layers (adapted or not), in module order."""
    linear = type(model).backend.nn.Linear
    return [name for name, m in model.named_modules() if name and isinstance(m, (linear, LoraLinear))]


def linear_suffixes(model) -> list:
    """The distinct last components of the Linear layers' names (what target_modules names)."""
    return sorted({name.rsplit(".", 1)[-1] for name in linear_names(model)})


def _matches(name, targets) -> bool:
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


# ---- the layer --------------------------------------------------------------------------------
class LoraWeight(ModelDefinition):
    """One adapter matrix as a bias-free linear map (PEFT's lora_A / lora_B), holding `weight`."""

    def __init__(self, array):
        super().__init__()
        backend = type(self).backend
        self.weight = self.nn.Parameter(backend.tensor(array))

    def forward(self, x):
        return self.F.linear(x, self.weight)


class LoraLinear(ModelDefinition):
    """A Linear plus a low-rank update: W x + b + B((alpha/r)·A(dropout(x))).

    `weight` and `bias` are the wrapped Linear's own parameters (no copy);
    `lora_A` (r, in) and `lora_B` (out, r) are the adapters. `adapters_enabled`
    False gives exactly the base layer's output (the same op on the same arrays)."""

    def __init__(self, base, r, alpha, dropout, lora_a, lora_b=None):
        super().__init__()
        backend = type(self).backend
        out_features, in_features = (int(n) for n in base.weight.shape)
        self.in_features, self.out_features = in_features, out_features
        self.r, self.alpha, self.dropout = r, alpha, dropout
        self.scaling = alpha / r
        self.weight = base.weight
        self.bias = base.bias
        self.lora_A = LoraWeight(lora_a, backend=backend)
        self.lora_B = LoraWeight(np.zeros((out_features, r)) if lora_b is None else lora_b, backend=backend)
        self.adapters_enabled = True
        object.__setattr__(self, "base_layer", base)  # not a submodule: its parameters are ours already

    def forward(self, x):
        y = self.F.linear(x, self.weight, self.bias)
        if not self.adapters_enabled:
            return y
        if self.dropout and self.training:
            x = self.F.dropout(x, self.dropout, True)
        return y + self.lora_B(self.lora_A(x) * self.scaling)  # scaled at rank r: no (T, out) temporary

    def delta_weight(self) -> np.ndarray:
        """(alpha/r)·B·A as a float64 NumPy array of the base weight's shape."""
        to_numpy = type(self).backend.to_numpy
        a = to_numpy(self.lora_A.weight).astype(np.float64)
        b = to_numpy(self.lora_B.weight).astype(np.float64)
        return self.scaling * (b @ a)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
                f"alpha={self.alpha}, dropout={self.dropout}")


def lora_layers(model) -> list:
    """[(dotted name, LoraLinear)] in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoraLinear)]


def has_lora(model) -> bool:
    return bool(lora_layers(model))


def is_adapter_name(name: str) -> bool:
    """True for a parameter name of an adapter (`....lora_A.weight`, `....lora_B.weight`)."""
    return name.endswith((".lora_A.weight", ".lora_B.weight"))


def trainable_parameters(model) -> list:
    """The parameters that require grad (with LoRA applied: only the adapters)."""
    return [p for p in model.parameters() if p.requires_grad]


def _replace(model, name, module):
    parent_name, _, child = name.rpartition(".")
    setattr(_submodule(model, parent_name), child, module)


def _submodule(model, name):
    for n, m in model.named_modules():
        if n == name:
            return m
    raise KeyError(name)


# ---- apply / disable / merge ----------------------------------------------------------------
def apply_lora(model, r: int = 8, alpha: float = 16, dropout: float = 0.0, target_modules=None, seed: int = 0):
    """Replace the Linear layers named by `target_modules` (default: the architecture's,
    `DEFAULT_TARGETS`) with LoraLinear layers, in place; freeze every other parameter.
    A is drawn per layer in module order from NumPy's generator seeded with `seed`,
    B is zero. Returns the model. One LoraError per bad setting, for a model that
    already has adapters, and for a target that matches no Linear (listing the
    Linear layers' names)."""
    r, alpha, dropout, targets = check_lora_settings(r, alpha, dropout, target_modules)
    if has_lora(model):
        raise LoraError(f"apply_lora: {type(model).__name__} already has LoRA adapters; merge_lora or "
                        "load a fresh model first")
    targets = default_target_modules(model) if targets is None else targets
    names = [n for n in linear_names(model) if _matches(n, targets)]
    if isinstance(targets, str) and not names:
        example = linear_names(model)[0] if linear_names(model) else "none"
        raise LoraError(f"apply_lora: target_modules {targets!r} is a regular expression (PEFT's rule for a string) "
                        f"and matches no whole linear layer name (such as {example}); pass a list of names to match "
                        "name suffixes")
    if isinstance(targets, str):
        unmatched = []
    else:
        unmatched = [t for t in targets if not any(_matches(n, [t]) for n in names)]
    if unmatched:
        raise LoraError(f"apply_lora: target module(s) {', '.join(map(repr, unmatched))} match no linear layer "
                        f"of {type(model).__name__}; its linear layers are named: {', '.join(linear_suffixes(model))}")
    backend = type(model).backend
    rng = np.random.default_rng(seed)
    model.requires_grad_(False)
    for name in names:
        base = _submodule(model, name)
        fan_in = int(base.weight.shape[1])
        bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)): gain sqrt(1/3) · sqrt(3 / fan_in)
        lora_a = rng.uniform(-bound, bound, size=(r, fan_in))
        layer = LoraLinear(base, r, alpha, dropout, lora_a, backend=backend)
        layer.train(base.training)
        _replace(model, name, layer)
    object.__setattr__(model, "lora_settings", {"r": r, "alpha": alpha, "dropout": dropout, "target_modules":
                                                targets})
    return model


@contextlib.contextmanager
def disable_adapters(model):
    """Inside: every LoraLinear gives its base layer's output, so `model` is the base model."""
    layers = [layer for _, layer in lora_layers(model)]
    before = [layer.adapters_enabled for layer in layers]
    for layer in layers:
        layer.adapters_enabled = False
    try:
        yield model
    finally:
        for layer, enabled in zip(layers, before):
            layer.adapters_enabled = enabled


def merge_lora(model, unload: bool = True):
    """Fold each adapter into its base weight, W ← W + (alpha/r)·B·A, in place (PEFT's
    merge_and_unload). unload=True puts the plain Linear layers back (the model has
    its original parameter names only, ready for export); unload=False keeps the
    adapters with B reset to zero, so a new adapter starts on the merged weights.
    The base parameters stay frozen, as apply_lora left them (`model.requires_grad_()`
    makes them trainable again). Returns the model."""
    backend = type(model).backend
    for name, layer in lora_layers(model):
        merged = backend.to_numpy(layer.weight).astype(np.float64) + layer.delta_weight()
        backend.load_numpy_state(layer.base_layer, {"weight": merged}, strict=False)
        if unload:
            _replace(model, name, layer.base_layer)
        else:
            backend.load_numpy_state(layer.lora_B, {"weight": np.zeros(tuple(layer.lora_B.weight.shape))})
    if unload and "lora_settings" in vars(model):
        object.__delattr__(model, "lora_settings")
    return model


def base_weights(model) -> dict:
    """model.export_weights() less the adapters: the names a model without LoRA has."""
    return {k: v for k, v in model.export_weights().items() if not is_adapter_name(k)}


def copy_adapters(source, target):
    """Give `target` (a copy of `source` built anew, on another backend or dtype, its base
    weights loaded) `source`'s adapters: the same settings and adapter weights, each
    layer's on/off switch, and which parameters require grad. Returns target. A model
    with adapters but no recorded settings is one LoraError saying what to do."""
    if not has_lora(source):
        return target
    settings = getattr(source, "lora_settings", None)
    if settings is None:
        raise LoraError(f"to_backend: {type(source).__name__} has LoRA layers but no lora_settings; "
                        "merge_lora it first, or save_adapter and load_adapter on the new model")
    apply_lora(target, settings["r"], settings["alpha"], settings["dropout"], settings["target_modules"])
    load_adapter_state(target, adapter_state(source), source=f"{type(source).__name__}.to_backend")
    for (_, mine), (_, theirs) in zip(lora_layers(source), lora_layers(target)):
        theirs.adapters_enabled = mine.adapters_enabled
    for (_, mine), (_, theirs) in zip(source.named_parameters(), target.named_parameters()):
        theirs.requires_grad_(bool(mine.requires_grad))
    return target


class AdaptersOff(ModelDefinition):
    """The DPO reference of a LoRA policy: the same model, run with its adapters
    disabled and in eval mode. It holds no weights of its own (no second copy):
    `export_weights` gives the shared base weights (the adapters left out), and
    `load_weights` writes into the shared model (see there)."""

    def __init__(self, model):
        super().__init__()
        object.__setattr__(self, "model", model)  # not a submodule: the reference owns no parameters

    @property
    def config(self):
        return self.model.config

    def _run(self, method, *args, **kwargs):
        was_training = self.model.training
        self.model.eval()
        try:
            with disable_adapters(self.model):
                return getattr(self.model, method)(*args, **kwargs)
        finally:
            self.model.train(was_training)

    def forward(self, *args, **kwargs):
        return self._run("forward", *args, **kwargs)

    def hidden_states(self, *args, **kwargs):
        return self._run("hidden_states", *args, **kwargs)

    def logits(self, *args, **kwargs):
        return self._run("logits", *args, **kwargs)

    def export_weights(self) -> dict:
        return {k: v for k, v in self.model.export_weights().items() if not is_adapter_name(k)}

    def load_weights(self, arrays: dict, strict: bool = True):
        """Make this reference the model with `arrays` (named as the policy's export_weights):
        the base weights go into the shared model, and adapter weights, where given, are
        folded into them (W + (alpha/r)·B·A) while the model's adapters restart from them
        with B = 0. So `reference.load_weights(policy.export_weights())`, the warm-up
        idiom, makes the reference equal to the policy and leaves the policy's outputs
        as they were. strict: the base names must be exactly the model's."""
        adapters = {k: v for k, v in arrays.items() if is_adapter_name(k)}
        base = {k: v for k, v in arrays.items() if not is_adapter_name(k)}
        if strict:
            expected = set(self.export_weights())
            missing, unexpected = sorted(expected - set(base)), sorted(set(base) - expected)
            if missing or unexpected:
                what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
                raise LoraError(f"AdaptersOff.load_weights: the weights do not fit {type(self.model).__name__}: "
                                f"{what} ({len(missing)} missing, {len(unexpected)} unexpected)")
        result = self.model.load_weights(base, strict=False)
        if adapters:
            load_adapter_state(self.model, adapters, source="AdaptersOff.load_weights")
            merge_lora(self.model, unload=False)
        return result


_VIEWS = {}


def adapters_off(model) -> AdaptersOff:
    """The reference view of `model` with adapters disabled (see AdaptersOff). Its class
    bears the model's class name, as checkpoints record a model's architecture by it."""
    if not has_lora(model):
        raise LoraError(f"adapters_off: {type(model).__name__} has no LoRA adapters; call apply_lora first")
    name = type(model).__name__
    if name not in _VIEWS:
        _VIEWS[name] = type(name, (AdaptersOff,), {"__doc__": AdaptersOff.__doc__})
    return _VIEWS[name](model, backend=type(model).backend)


# ---- PEFT files -------------------------------------------------------------------------------
def adapter_state(model) -> dict:
    """{our parameter name: NumPy copy} of the adapters (`<module>.lora_A.weight`, ...)."""
    to_numpy = type(model).backend.to_numpy
    out = {}
    for name, layer in lora_layers(model):
        out[f"{name}.lora_A.weight"] = np.array(to_numpy(layer.lora_A.weight), copy=True)
        out[f"{name}.lora_B.weight"] = np.array(to_numpy(layer.lora_B.weight), copy=True)
    return out


def peft_config(r, alpha, dropout, target_modules, base_model_name_or_path=None, fan_in_fan_out=False) -> dict:
    """adapter_config.json's content, with PEFT's keys and the values PEFT writes for
    a plain LoRA (no rslora, DoRA, bias training or modules_to_save)."""
    alpha = int(alpha) if float(alpha).is_integer() else float(alpha)
    return {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name_or_path,
        "revision": None, "inference_mode": True, "r": int(r), "lora_alpha": alpha, "lora_dropout": float(dropout),
        "target_modules": target_modules, "bias": "none", "fan_in_fan_out": bool(fan_in_fan_out),
        "init_lora_weights": True, "use_rslora": False, "use_dora": False, "modules_to_save": None,
        "layers_to_transform": None, "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {},
    }


def write_adapter(directory, tensors: dict, config: dict) -> None:
    """Write {our adapter name: array} and a peft_config dict as PEFT's two files."""
    os.makedirs(directory, exist_ok=True)
    renamed = {PEFT_PREFIX + k: np.ascontiguousarray(v) for k, v in tensors.items()}
    safetensors_io.save_file(os.path.join(directory, ADAPTER_WEIGHTS), renamed, {"format": "pt"})
    with open(os.path.join(directory, ADAPTER_CONFIG), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def _name_or_path(model):
    """The folder a pretrained model was loaded from, where it says."""
    for value in (getattr(model, "source_folder", None), getattr(model, "name_or_path", None),
                  _config_value(getattr(model, "config", None) or {}, "_name_or_path")):
        if isinstance(value, (str, os.PathLike)) and os.fspath(value):
            return os.fspath(value)
    return None


def save_adapter(model, directory, base_model_name_or_path=None) -> str:
    """Write the model's adapters alone in PEFT's format (adapter_config.json +
    adapter_model.safetensors) to `directory`; returns it. base_model_name_or_path
    defaults to the folder the model was loaded from, where known."""
    settings = getattr(model, "lora_settings", None)
    if not has_lora(model) or settings is None:
        raise LoraError(f"save_adapter: {type(model).__name__} has no LoRA adapters; call apply_lora first")
    config = peft_config(settings["r"], settings["alpha"], settings["dropout"], settings["target_modules"],
                         base_model_name_or_path or _name_or_path(model), _model_type(model) in FAN_IN_FAN_OUT)
    write_adapter(directory, adapter_state(model), config)
    return os.fspath(directory)


def read_adapter(directory) -> tuple[dict, dict]:
    """(adapter_config dict, {our adapter name: array}) from a PEFT LoRA folder, or one
    LoraError naming the file and what in it these adapters cannot use."""
    config_path = os.path.join(directory, ADAPTER_CONFIG)
    weights_path = os.path.join(directory, ADAPTER_WEIGHTS)
    if not os.path.isdir(directory):
        raise LoraError(f"{directory}: no such adapter folder")
    for path in (config_path, weights_path):
        if not os.path.isfile(path):
            raise LoraError(f"{path}: missing; an adapter folder holds {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}")
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, ValueError) as error:
        raise LoraError(f"{config_path}: not readable JSON ({error})") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise LoraError(f"{config_path}: peft_type is {config.get('peft_type') if isinstance(config, dict) else None!r}"
                        ", only LORA adapters are supported")
    for key, off in UNSUPPORTED_OPTIONS.items():
        if config.get(key) not in (None, off):
            raise LoraError(f"{config_path}: {key}={config[key]!r} is not supported (only plain LoRA)")
    if config.get("bias", "none") != "none":
        raise LoraError(f"{config_path}: bias={config['bias']!r} is not supported (only 'none')")
    check_lora_settings(config.get("r"), config.get("lora_alpha"), config.get("lora_dropout", 0.0),
                        config.get("target_modules"), where=config_path)
    tensors, _ = safetensors_io.load_file(weights_path)
    out = {}
    for key, value in tensors.items():
        name = key.removeprefix(PEFT_PREFIX)
        if not key.startswith(PEFT_PREFIX) or not is_adapter_name(name):
            raise LoraError(f"{weights_path}: tensor {key!r} is not a LoRA adapter weight "
                            f"({PEFT_PREFIX}<module>.lora_A.weight / .lora_B.weight)")
        out[name] = value
    return config, out


def load_adapter(model, directory, seed: int = 0):
    """Apply the adapter in `directory` (PEFT's format, from PEFT or save_adapter) to
    `model` and load its weights; returns the model. A tensor missing, unexpected or
    of the wrong shape is one LoraError naming it."""
    config, tensors = read_adapter(directory)
    apply_lora(model, config["r"], config["lora_alpha"], config.get("lora_dropout", 0.0),
               config["target_modules"], seed=seed)
    load_adapter_state(model, tensors, source=directory)
    return model


def load_adapter_state(model, tensors: dict, source="adapter"):
    """Copy {our adapter name: array} into the model's adapters (all of them, exactly)."""
    backend = type(model).backend
    expected = adapter_state(model)
    unexpected = sorted(set(tensors) - set(expected))
    missing = sorted(set(expected) - set(tensors))
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise LoraError(f"{source}: the adapter does not fit {type(model).__name__}: {what} "
                        f"({len(missing)} missing, {len(unexpected)} unexpected)")
    for name, layer in lora_layers(model):
        for part in ("lora_A", "lora_B"):
            key = f"{name}.{part}.weight"
            value = np.asarray(tensors[key])
            if value.shape != expected[key].shape:
                raise LoraError(f"{source}: {key} has shape {value.shape}, the model needs {expected[key].shape}")
            backend.load_numpy_state(getattr(layer, part), {"weight": value})
