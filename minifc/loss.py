"""The training loss: `token_loss` (edit it to change the loss of every path) summed over the trained
tokens only, chunked so that full-vocabulary logits never exist at once.

Logits for every token of a 16k-token batch under Gemma's 262k vocabulary would take 17 GB in fp32, and
most tokens are prompt, not trained. So: (1) gather the final hidden states at the trained positions
only (`batch_loss` asks the model for those alone: its last block then computes no other position,
model.hidden_states(positions=...)); (2) run the output projection (`output_fn`, e.g. `model.output`:
lm_head plus any soft-capping) and `token_loss` on `chunk_size` rows at a time; (3) checkpoint each
chunk, so backward recomputes its logits instead of autograd keeping every chunk's [chunk, vocab]
tensors. Peak memory for logits is one chunk (about 1 GB for 1024 x 262k), at the price of one extra
output projection.

Fast path (FUSED_BACKWARD, on by default): when no parameter of `output_fn` is trained (LoRA: lm_head
and the tied embedding are frozen), only the rows need a gradient. Each chunk computes it right away in
forward and frees its logits; backward just scales the stored [N, D] fp32 gradient (2 matmuls per chunk
instead of 3). The logits' gradient is then written by hand (softmax minus one-hot, over the fp32 logits
themselves: one [chunk, vocab] tensor alive instead of autograd's three) if a one-time check finds that it is
`token_loss`'s (cross-entropy); for any other `token_loss` it comes from autograd through it.
"""

from functools import cache

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from minifc.masking import IGNORE_INDEX

FUSED_BACKWARD = True  # tests and benchmarks flip this to compare the fast path with the checkpointed one


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss of each trained token: logits [N, V], labels [N] -> [N] fp32. The one definition."""
    return F.cross_entropy(logits.float(), labels, reduction="none")  # fp32: bf16 log-probs are too coarse


def trained_token_loss(hidden: torch.Tensor, targets: torch.Tensor, output_fn, chunk_size: int = 1024,
                       normalizer: int | float | None = None,
                       trained_positions: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of `token_loss` over the trained tokens, divided by `normalizer`.

    hidden:     [B, T, D] final hidden states (after the final norm).
    targets:    [B, T] token to predict at each position, IGNORE_INDEX (-100) where not trained.
    output_fn:  rows [N, D] -> logits [N, V].
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
    rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, trained_positions)  # [N, D]
    labels = targets.reshape(-1).index_select(0, trained_positions)
    if rows.shape[0] == 0:  # nothing trained here: a zero that still backpropagates, to every weight used
        return (hidden.sum().float() + output_fn(rows).sum().float()) * 0.0  # (DDP waits for each one's gradient)
    return rows_loss(rows, labels, output_fn, chunk_size, normalizer)


def rows_loss(rows: torch.Tensor, labels: torch.Tensor, output_fn, chunk_size: int = 1024,
              normalizer: int | float | None = None) -> torch.Tensor:
    """trained_token_loss of the trained rows themselves: rows [N, D] (N > 0), labels [N]."""
    if normalizer is None:
        normalizer = rows.shape[0]
    chunks = [(rows[i:i + chunk_size], labels[i:i + chunk_size]) for i in range(0, rows.shape[0], chunk_size)]
    if not torch.is_grad_enabled():
        return sum(_chunk_loss_sum(r, l, output_fn) for r, l in chunks) / normalizer
    if FUSED_BACKWARD and rows.requires_grad and not _trains(output_fn, rows):
        return _GradientInForward.apply(rows, labels, output_fn, chunk_size, _is_cross_entropy(token_loss)) / normalizer
    return sum(checkpoint(_chunk_loss_sum, r, l, output_fn, use_reentrant=False) for r, l in chunks) / normalizer


def batch_loss(model, batch, chunk_size: int = 1024, normalizer: int | float | None = None) -> torch.Tensor:
    """trained_token_loss of a collate.Batch (already on the model's device) under a model.Transformer.
    Everything the GPU needs is passed along (max_seqlen, trained_positions), so nothing here makes
    the host wait for the GPU."""
    inputs = (batch.input_ids, batch.position_ids, batch.cu_seqlens)
    if batch.num_trained == 0:  # the zero loss that reaches every weight (trained_token_loss)
        hidden = model.hidden_states(*inputs, max_seqlen=batch.max_seqlen)
        return trained_token_loss(hidden, batch.targets, model.output, chunk_size, normalizer, batch.trained_positions)
    # only the trained positions' final states: the last block computes only those (model.hidden_states)
    rows = model.hidden_states(*inputs, max_seqlen=batch.max_seqlen, positions=batch.trained_positions)
    labels = batch.targets.reshape(-1).index_select(0, batch.trained_positions)
    return rows_loss(rows, labels, model.output, chunk_size, normalizer)


def _chunk_loss_sum(rows: torch.Tensor, labels: torch.Tensor, output_fn) -> torch.Tensor:
    return token_loss(output_fn(rows), labels).sum()


def _trains(output_fn, rows: torch.Tensor) -> bool:
    """Whether output_fn has a trained parameter: only then does its output on zero detached rows require grad."""
    with torch.enable_grad():
        return output_fn(rows[:0].detach()).requires_grad


def _cross_entropy_and_grad(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy [N] and its gradient wrt the logits [N, V], by hand: softmax minus the
    one-hot labels. Written over the fp32 logits themselves (over an fp32 copy if they are not fp32):
    one [N, V] tensor alive instead of two (logits and log-probabilities). The caller must not need
    the logits' values afterwards (an output projection's backward needs only its weight)."""
    work = logits.float()  # the logits themselves when they are fp32
    picked = labels[:, None]
    picked_logit = work.gather(1, picked).squeeze(1)
    maxes = work.amax(-1, keepdim=True)
    probs = work.sub_(maxes).exp_()  # exp(l - max): at most 1, no overflow (log_softmax's own shift)
    sums = probs.sum(-1, keepdim=True)
    losses = (sums.log() + maxes).squeeze(1) - picked_logit  # logsumexp - the label's logit
    return losses, probs.div_(sums).scatter_add_(1, picked, torch.full_like(picked, -1, dtype=probs.dtype))


@cache
def _is_cross_entropy(loss_fn) -> bool:
    """Whether _cross_entropy_and_grad gives loss_fn's values and gradient (so the fast path may use it):
    checked once per loss function, against autograd through it on small random CPU logits (no GPU sync)."""
    g = torch.Generator().manual_seed(0)
    logits = (4 * torch.randn(8, 13, generator=g, device="cpu")).requires_grad_()
    labels = torch.randint(0, 13, (8,), generator=g, device="cpu")
    with torch.enable_grad():
        losses = loss_fn(logits, labels)
        (grad,) = torch.autograd.grad(losses.sum(), logits)
    by_hand = _cross_entropy_and_grad(logits.detach().clone(), labels)  # it overwrites what it is given
    return losses.shape == by_hand[0].shape and all(torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6)
                                                    for ours, theirs in zip((losses.detach(), grad), by_hand))


class _GradientInForward(torch.autograd.Function):
    """Summed token_loss of the rows, whose gradient (rows only) is computed chunk by chunk in forward:
    by hand when `by_hand` (token_loss is cross-entropy), else by autograd through token_loss."""

    @staticmethod
    def forward(ctx, rows, labels, output_fn, chunk_size, by_hand):
        grad = torch.empty(rows.shape, dtype=torch.float32, device=rows.device)
        total = rows.new_zeros((), dtype=torch.float32)
        for start in range(0, rows.shape[0], chunk_size):
            end = start + chunk_size
            with torch.enable_grad():
                chunk = rows[start:end].detach().requires_grad_(True)
                logits = output_fn(chunk)
                if by_hand:  # dlogits overwrites the logits (fp32): autograd.grad below needs only W
                    losses, dlogits = _cross_entropy_and_grad(logits.detach(), labels[start:end])
                else:  # any other token_loss: the logits' gradient by autograd through it
                    losses = token_loss(logits, labels[start:end])
                    (dlogits,) = torch.autograd.grad(losses.sum(), logits)
            (grad[start:end],) = torch.autograd.grad(logits, chunk, dlogits.to(logits.dtype))
            total += losses.detach().sum()
            del logits, losses, dlogits
        ctx.save_for_backward(grad)
        ctx.rows_dtype = rows.dtype
        return total

    @staticmethod
    def backward(ctx, grad_total):
        (grad,) = ctx.saved_tensors
        return (grad * grad_total).to(ctx.rows_dtype), None, None, None, None
