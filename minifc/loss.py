"""Cross-entropy on the trained tokens only, chunked so full-vocabulary logits never exist at once.

Most tokens of function-calling data are prompt (system text, tool declarations, user turns, tool
results) and are not trained, and Gemma's vocabulary has 262k entries: logits for every token of a
batch of 16k tokens would be 16k x 262k x 4 bytes = 17 GB in fp32. So:

1. gather the final hidden states at the trained positions only (targets != -100; the collator
   lists them up front, so the GPU never has to report how many there are);
2. run the output projection (`output_fn`, e.g. `model.output`: lm_head plus any soft-capping) and
   the cross-entropy on `chunk_size` rows at a time, upcasting each chunk's logits to fp32;
3. wrap each chunk in activation checkpointing, so backward recomputes that chunk's logits instead
   of autograd keeping every chunk's fp32 [chunk, vocab] log-softmax alive until backward. Without
   it the chunking would save nothing in training: autograd would hold all chunks at once. The
   price is one extra output projection over the trained rows.

Peak memory for logits is then one chunk (chunk_size x vocab x 4 bytes, about 1 GB for 1024 x 262k)
in forward and in backward, independent of the batch.

Fast path (FUSED_BACKWARD, on by default): when no parameter of `output_fn` is trained (LoRA: lm_head
and the tied embedding are frozen), the only gradient needed is the one for the rows. Each chunk then
computes it right away in forward (the logits' gradient is the chunk's own softmax minus the one-hot
labels, made in place) and frees its logits; backward just scales the stored [N, D] fp32 gradient.
Same numbers, one output projection fewer than recomputing (2 matmuls per chunk instead of 3), and
two [chunk, vocab] tensors alive at once instead of the three of autograd's log-softmax backward. With a trained
output projection (full fine-tuning) the checkpointed chunks above are used.
"""

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100
FUSED_BACKWARD = True  # tests and benchmarks flip this to compare the fast path with the checkpointed one


def trained_token_loss(hidden: torch.Tensor, targets: torch.Tensor, output_fn, chunk_size: int = 1024,
                       normalizer: int | float | None = None,
                       trained_positions: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of the cross-entropies of the trained tokens, divided by `normalizer`.

    hidden:     [B, T, D] final hidden states (after the final norm).
    targets:    [B, T] token to predict at each position, IGNORE_INDEX (-100) where not trained.
    output_fn:  rows [N, D] -> logits [N, V] (e.g. model.output).
    normalizer: number of trained tokens of the whole optimiser step. With gradient accumulation over
                k micro-batches, pass the total over all k, so the summed gradients equal the gradient
                of one big batch (a per-micro-batch mean would weight a token of a short micro-batch
                more than one of a long one). Default: this batch's trained-token count (a plain mean).
    trained_positions: [N] long, the flat indices (into B*T) where targets != -100, in order, as
                collate.Batch has them. Without them they are found here with a boolean selection,
                whose size the host must wait for (a GPU sync per call).
    Returns a scalar fp32 tensor.
    """
    if hidden.shape[:-1] != targets.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and targets {tuple(targets.shape)} differ in [B, T]")
    if trained_positions is None:
        trained_positions = (targets.reshape(-1) != IGNORE_INDEX).nonzero().squeeze(1)
    # [N, D]: only these rows ever reach the output projection
    rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, trained_positions)
    labels = targets.reshape(-1).index_select(0, trained_positions)
    if normalizer is None:
        normalizer = rows.shape[0]
    if rows.shape[0] == 0:  # nothing trained here: a zero that still backpropagates
        return hidden.sum().float() * 0.0
    if FUSED_BACKWARD and torch.is_grad_enabled() and rows.requires_grad and not _trains(output_fn, rows):
        return _GradientInForward.apply(rows, labels, output_fn, chunk_size) / normalizer
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, rows.shape[0], chunk_size):
        chunk_rows, chunk_labels = rows[start:start + chunk_size], labels[start:start + chunk_size]
        if torch.is_grad_enabled():
            total = total + checkpoint(_chunk_loss_sum, chunk_rows, chunk_labels, output_fn, use_reentrant=False)
        else:
            total = total + _chunk_loss_sum(chunk_rows, chunk_labels, output_fn)
    return total / normalizer


def batch_loss(model, batch, chunk_size: int = 1024, normalizer: int | float | None = None) -> torch.Tensor:
    """trained_token_loss of a collate.Batch (already on the model's device) under a model.Transformer.
    Everything the GPU needs is passed along (max_seqlen, trained_positions), so nothing here makes
    the host wait for the GPU."""
    hidden = model.hidden_states(batch.input_ids, batch.position_ids, batch.cu_seqlens, max_seqlen=batch.max_seqlen)
    return trained_token_loss(hidden, batch.targets, model.output, chunk_size, normalizer, batch.trained_positions)


def _chunk_loss_sum(rows: torch.Tensor, labels: torch.Tensor, output_fn) -> torch.Tensor:
    logits = output_fn(rows).float()  # fp32 before log-softmax: bf16 log-probs are too coarse
    return F.cross_entropy(logits, labels, reduction="sum")


def _trains(output_fn, rows: torch.Tensor) -> bool:
    """Whether output_fn has a parameter that wants a gradient: its output on zero detached rows
    requires grad only then (and costs nothing)."""
    with torch.enable_grad():
        return output_fn(rows[:0].detach()).requires_grad


class _GradientInForward(torch.autograd.Function):
    """Summed cross-entropy of the rows, whose gradient (rows only) is computed chunk by chunk in forward."""

    @staticmethod
    def forward(ctx, rows, labels, output_fn, chunk_size):
        grad = torch.empty(rows.shape, dtype=torch.float32, device=rows.device)
        total = rows.new_zeros((), dtype=torch.float32)
        for start in range(0, rows.shape[0], chunk_size):
            end = start + chunk_size
            with torch.enable_grad():
                chunk = rows[start:end].detach().requires_grad_(True)
                logits = output_fn(chunk)
            # The cross-entropy's gradient wrt the logits is softmax - one_hot(label): made in place
            # from the log-probabilities, so a chunk holds two [chunk, vocab] tensors (logits and
            # these) where autograd through log-softmax held three (tests/test_memory.py measures it).
            log_probs = torch.log_softmax(logits.detach().float(), dim=-1)  # fp32: bf16 is too coarse
            picked = labels[start:end, None]
            total -= log_probs.gather(1, picked).sum()
            dlogits = log_probs.exp_().scatter_add_(1, picked, torch.full_like(picked, -1, dtype=log_probs.dtype))
            (grad[start:end],) = torch.autograd.grad(logits, chunk, dlogits.to(logits.dtype))
            del logits, log_probs, dlogits
        ctx.save_for_backward(grad)
        ctx.rows_dtype = rows.dtype
        return total

    @staticmethod
    def backward(ctx, grad_total):
        (grad,) = ctx.saved_tensors
        return (grad * grad_total).to(ctx.rows_dtype), None, None, None


def count_trained(targets: torch.Tensor) -> int:
    """Number of trained tokens (targets != -100): sum this over the micro-batches of a step."""
    return int((targets != IGNORE_INDEX).sum())
