"""The optional `hf` extra (tokenizers, jinja2): imported on first use, with one line saying how to install it."""

from __future__ import annotations

import importlib

INSTALL_HINT = "pip install 'minigrad-dpo[hf]'"


class MissingExtraError(ImportError):
    """An optional package of the `hf` extra is not installed; str() is one line with the install command."""


def require(module: str):
    """Import `module` (tokenizers, jinja2 or pyarrow) or raise MissingExtraError naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{module} is not installed; Hugging Face tokenizers and chat templates need the "
                                f"hf extra: {INSTALL_HINT}") from None
