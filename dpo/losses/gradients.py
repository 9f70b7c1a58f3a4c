"""`analytic_grad_chosen`: d(Σ_i losses_i)/dπ_c written out by hand, for learners and tests.

Each loss type's `grad_chosen` (next to its `loss` in the family files) is the
derivative worked out on paper and typed in as NumPy; nothing here calls
autodiff. The tests hold it against autodiff on both backends (float64, 1e-10).
"""

from __future__ import annotations

import numpy as np

from .loss_type import make_pair
from .ops import NumpyOps
from .options import check_lengths, check_logps, check_orpo_domain, resolve_options


def analytic_grad_chosen(loss_type, policy_chosen_logps, policy_rejected_logps, ref_chosen_logps=None,
                         ref_rejected_logps=None, beta=0.1, label_smoothing=0.0, *, chosen_lengths=None,
                         rejected_lengths=None, gamma=0.5, f_divergence="reverse_kl", f_alpha=0.5, ipo_average=True,
                         loss_weights=None, discopop_tau=0.05, bco_delta=0.0) -> np.ndarray:
    """d(Σ_i dpo_loss(...).losses_i) / d policy_chosen_logps, from the hand-derived formulas.

    Same arguments as `dpo_loss` (array-likes instead of tensors, float64),
    except that bco_pair's shift δ is given as the number `bco_delta` (what
    `bco_state.mean` was after `dpo_loss` updated it). Returns a float64 array
    of shape (B,). For every type except aot/aot_unpaired the i-th entry is
    simply d losses_i / d π_c,i.
    """
    where = "analytic_grad_chosen"
    options = resolve_options(where, loss_type, loss_weights, f_divergence, f_alpha, beta, label_smoothing, gamma,
                              discopop_tau, ipo_average)
    given = dict(policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                 ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    arrays = {name: None if x is None else np.asarray(x, dtype=np.float64) for name, x in given.items()}
    batch = check_logps(where, options, arrays)
    chosen_np, rejected_np = check_lengths(where, options, chosen_lengths, rejected_lengths, batch)
    if options.has("orpo"):
        check_orpo_domain(where, arrays, chosen_np, rejected_np)
    pair = make_pair(NumpyOps(), options.divergence, options.f_alpha, arrays["policy_chosen_logps"],
                     arrays["policy_rejected_logps"], arrays["ref_chosen_logps"], arrays["ref_rejected_logps"],
                     with_slopes=True, chosen_lengths=chosen_np, rejected_lengths=rejected_np,
                     bco_delta=float(bco_delta), **options.hyper)
    grad = np.zeros(batch)
    for loss_kind, weight in options.terms:
        grad = grad + weight * np.broadcast_to(loss_kind.grad_chosen(pair), (batch,))
    return grad
