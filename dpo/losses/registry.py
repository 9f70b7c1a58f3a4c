"""Every loss type by name, in the order the documentation lists them."""

from . import completion_losses, margin_losses, ranking_losses, reference_free_losses

_ALL = {t.name: t for t in (*margin_losses.TYPES, *completion_losses.TYPES, *ranking_losses.TYPES,
                            *reference_free_losses.TYPES)}

LOSS_TYPE_NAMES = ("sigmoid", "robust", "ipo", "hinge", "exo_pair", "nca_pair", "bco_pair", "sppo_hard",
                   "apo_zero", "apo_down", "aot", "aot_unpaired", "discopop", "sigmoid_norm", "simpo", "orpo", "sft")
LOSS_TYPES = {name: _ALL[name] for name in LOSS_TYPE_NAMES}
REFERENCE_FREE = tuple(name for name, t in LOSS_TYPES.items() if not t.needs_reference)

assert set(_ALL) == set(LOSS_TYPES), "a loss type is defined but not listed (or listed twice)"
