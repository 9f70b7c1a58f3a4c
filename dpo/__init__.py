"""dpo: Direct Preference Optimization on minigrad or PyTorch."""

from .model import GPTConfig, TinyGPT, init_weights

__all__ = ["GPTConfig", "TinyGPT", "init_weights"]
