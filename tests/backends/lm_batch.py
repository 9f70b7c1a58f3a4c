"""Test helpers for language-model parity: a right-padded batch, random weights, and
the next-token NLL, written once against the backend surface (so they also show
that a loss needs no branch on the backend)."""

import numpy as np

PAD_ID = 0


def padded_batch(rng, lengths, T, vocab_size, pad_id=PAD_ID):
    """Token ids (B, T) int64 and mask (B, T): row b holds lengths[b] random tokens,
    then padding (pad_id, mask 0)."""
    lengths = np.asarray(lengths)
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(0, vocab_size, size=(len(lengths), T))
    return np.where(mask == 1, ids, pad_id).astype(np.int64), mask


def random_weights(arrays, rng, scale=0.05):
    """`arrays` (a state dict of NumPy arrays) with every entry moved by N(0, scale):
    LayerNorm weights no longer one and biases no longer zero, so a parity test sees
    each parameter act."""
    return {k: v + rng.normal(0.0, scale, size=v.shape) for k, v in arrays.items()}


def next_token_nll(model, ids, mask):
    """Mean of -log p(ids[t+1] | ids[..t]) over the positions t+1 that are real tokens."""
    backend = type(model).backend
    logits = model(ids, mask)
    vocab = logits.shape[-1]
    targets = np.where(np.asarray(mask)[:, 1:] != 0, np.asarray(ids)[:, 1:], -100)
    return model.F.cross_entropy(logits[:, :-1].reshape(-1, vocab), backend.tensor(targets.reshape(-1)),
                                 ignore_index=-100)


def next_token_nll_numpy(logits, ids, mask):
    """The same mean NLL from NumPy logits, computed directly (an independent check)."""
    logits = np.asarray(logits, dtype=np.float64)[:, :-1]
    shifted = logits - logits.max(axis=-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    targets, real = np.asarray(ids)[:, 1:], np.asarray(mask)[:, 1:] != 0
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    return float(-picked[real].mean())
