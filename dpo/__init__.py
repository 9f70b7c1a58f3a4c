"""dpo: Direct Preference Optimization on a tiny GPT, on minigrad (NumPy + numba) or PyTorch.

Every function takes a `backend` (a name or `backends.get_backend(...)`; default
"numpy"), or uses the backend of the model it is given.

    from dpo import make_preferences, DPOConfig, build_models, warmup_pretrain, train_dpo
    pairs = make_preferences()
    policy, reference = build_models(DPOConfig(), backend="numpy")
    warmup_pretrain(policy, pairs)
    reference.load_weights(policy.export_weights())
    train_dpo(policy, reference, pairs, DPOConfig())
"""

from .batching import PreferenceBatch, collate, iterate_batches, split_train_eval
from .checkpoint import load_checkpoint, save_checkpoint
from .config import DPOConfig
from .data import PreferencePair, load_preferences, make_preferences
from .demo import run_demo
from .evaluation import evaluate_margins, margin_table
from .generation import generate
from .hf_tokenizer import HFTokenizer, load_tokenizer
from .logprobs import sequence_log_prob
from .losses import dpo_loss
from .model import GPTConfig, TinyGPT, init_weights
from .pretrained import PretrainedError, load_pretrained
from .tokenize import tokenize_row
from .tokenizer import InstructionTokenizer
from .training import TrainingDiverged, build_models, freeze, train_dpo, warmup_pretrain

__all__ = [
    "InstructionTokenizer", "make_preferences", "load_preferences", "PreferencePair", "TinyGPT", "GPTConfig",
    "init_weights", "DPOConfig", "build_models", "freeze", "warmup_pretrain", "sequence_log_prob", "dpo_loss",
    "train_dpo", "TrainingDiverged", "evaluate_margins", "margin_table", "generate", "run_demo",
    "PreferenceBatch", "collate", "iterate_batches", "split_train_eval", "save_checkpoint", "load_checkpoint",
    "load_pretrained", "PretrainedError",
    "load_tokenizer", "HFTokenizer", "tokenize_row",
]
