"""Cross-entropy on the trained tokens only, chunked so full-vocabulary logits never exist at once.

Most tokens of function-calling data are prompt (system text, tool declarations, user turns, tool
results) and are not trained, and Gemma's vocabulary has 262k entries: logits for every token of a
batch of 16k tokens would be 16k x 262k x 4 bytes = 17 GB in fp32. So:

1. gather the final hidden states at the trained positions only (targets != -100);
2. run the output projection (`output_fn`, e.g. `model.output`: lm_head plus any soft-capping) and
   the cross-entropy on `chunk_size` rows at a time, upcasting each chunk's logits to fp32;
3. wrap each chunk in activation checkpointing, so backward recomputes that chunk's logits instead
   of autograd keeping every chunk's fp32 [chunk, vocab] log-softmax alive until backward. Without
   it the chunking would save nothing in training: autograd would hold all chunks at once. The
   price is one extra output projection over the trained rows.

Peak memory for logits is then one chunk (chunk_size x vocab x 4 bytes, about 1 GB for 1024 x 262k)
in forward and in backward, independent of the batch.
"""

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100


def trained_token_loss(hidden: torch.Tensor, targets: torch.Tensor, output_fn, chunk_size: int = 1024,
                       normalizer: int | float | None = None) -> torch.Tensor:
    """Sum of the cross-entropies of the trained tokens, divided by `normalizer`.

    hidden:     [B, T, D] final hidden states (after the final norm).
    targets:    [B, T] token to predict at each position, IGNORE_INDEX (-100) where not trained.
    output_fn:  rows [N, D] -> logits [N, V] (e.g. model.output).
    normalizer: number of trained tokens of the whole optimiser step. With gradient accumulation over
                k micro-batches, pass the total over all k, so the summed gradients equal the gradient
                of one big batch (a per-micro-batch mean would weight a token of a short micro-batch
                more than one of a long one). Default: this batch's trained-token count (a plain mean).
    Returns a scalar fp32 tensor.
    """
    if hidden.shape[:-1] != targets.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and targets {tuple(targets.shape)} differ in [B, T]")
    trained = targets != IGNORE_INDEX
    rows = hidden[trained]  # [N, D]: only these rows ever reach the output projection
    labels = targets[trained]
    if normalizer is None:
        normalizer = rows.shape[0]
    if rows.shape[0] == 0:  # nothing trained here: a zero that still backpropagates
        return hidden.sum().float() * 0.0
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, rows.shape[0], chunk_size):
        chunk_rows, chunk_labels = rows[start:start + chunk_size], labels[start:start + chunk_size]
        if torch.is_grad_enabled():
            total = total + checkpoint(_chunk_loss_sum, chunk_rows, chunk_labels, output_fn, use_reentrant=False)
        else:
            total = total + _chunk_loss_sum(chunk_rows, chunk_labels, output_fn)
    return total / normalizer


def _chunk_loss_sum(rows: torch.Tensor, labels: torch.Tensor, output_fn) -> torch.Tensor:
    logits = output_fn(rows).float()  # fp32 before log-softmax: bf16 log-probs are too coarse
    return F.cross_entropy(logits, labels, reduction="sum")


def count_trained(targets: torch.Tensor) -> int:
    """Number of trained tokens (targets != -100): sum this over the micro-batches of a step."""
    return int((targets != IGNORE_INDEX).sum())
