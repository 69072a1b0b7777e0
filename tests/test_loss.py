"""trained_token_loss against a plain full-logits cross-entropy (the oracle), fp32 on CPU."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minifc.loss import trained_token_loss
from minifc.masking import IGNORE_INDEX

B, T, D, V = 3, 20, 16, 97


class Head(nn.Module):
    """lm_head with Gemma-2-style soft-capping, counting the rows it is given."""

    def __init__(self, softcap=None):
        super().__init__()
        self.lm_head = nn.Linear(D, V, bias=False)
        self.softcap = softcap
        self.rows_seen = 0

    def forward(self, h):
        self.rows_seen += h.reshape(-1, D).shape[0]
        logits = self.lm_head(h)
        if self.softcap is not None:
            logits = self.softcap * torch.tanh(logits / self.softcap)
        return logits


def make_batch(seed, batch=B, frac_trained=0.3):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, T, D, generator=g)
    targets = torch.randint(0, V, (batch, T), generator=g)
    targets[torch.rand(batch, T, generator=g) > frac_trained] = IGNORE_INDEX
    return hidden, targets


def count_trained(targets):
    return int((targets != IGNORE_INDEX).sum())


def reference_loss(hidden, targets, head, reduction="mean"):
    logits = head(hidden)  # [B, T, V]: every position, the thing trained_token_loss avoids
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction=reduction)


@pytest.mark.parametrize("softcap", [None, 5.0])
@pytest.mark.parametrize("chunk_size", [1, 7, 1024])
def test_loss_and_gradients_equal_full_logits_cross_entropy(softcap, chunk_size):
    torch.manual_seed(0)
    head = Head(softcap)
    hidden, targets = make_batch(1)

    h1 = hidden.clone().requires_grad_()
    loss = trained_token_loss(h1, targets, head, chunk_size=chunk_size)
    loss.backward()
    grads = (h1.grad.clone(), head.lm_head.weight.grad.clone())
    head.zero_grad()

    h2 = hidden.clone().requires_grad_()
    ref = reference_loss(h2, targets, head)
    ref.backward()

    assert (loss - ref).abs().item() <= 1e-5
    assert (grads[0] - h2.grad).abs().max().item() <= 1e-5
    assert (grads[1] - head.lm_head.weight.grad).abs().max().item() <= 1e-5


def test_only_trained_rows_reach_the_output_projection():
    head = Head()
    hidden, targets = make_batch(2)
    n_trained = int((targets != IGNORE_INDEX).sum())
    assert 0 < n_trained < B * T
    with torch.no_grad():
        trained_token_loss(hidden, targets, head, chunk_size=8)
    assert head.rows_seen == n_trained == count_trained(targets)

    # In training each chunk runs once forward and once more when backward recomputes it.
    head.rows_seen = 0
    trained_token_loss(hidden.requires_grad_(), targets, head, chunk_size=8).backward()
    assert head.rows_seen == 2 * n_trained


def test_gradient_accumulation_normalises_by_the_step_total():
    """k micro-batches with normalizer = trained tokens of the whole step == one big batch."""
    torch.manual_seed(0)
    head = Head()
    micro = [make_batch(seed, batch=2, frac_trained=f) for seed, f in [(3, 0.1), (4, 0.6), (5, 0.3)]]
    total = sum(count_trained(t) for _, t in micro)
    assert len({count_trained(t) for _, t in micro}) == 3  # unequal counts: per-batch means would differ

    for hidden, targets in micro:
        trained_token_loss(hidden, targets, head, chunk_size=5, normalizer=total).backward()
    accumulated = head.lm_head.weight.grad.clone()
    head.zero_grad()

    big_hidden = torch.cat([h for h, _ in micro])
    big_targets = torch.cat([t for _, t in micro])
    reference_loss(big_hidden, big_targets, head).backward()
    assert (accumulated - head.lm_head.weight.grad).abs().max().item() <= 1e-5

    # The per-micro-batch mean (the common mistake) gives a different gradient here.
    head.zero_grad()
    for hidden, targets in micro:
        (trained_token_loss(hidden, targets, head) / len(micro)).backward()
    assert (head.lm_head.weight.grad - accumulated).abs().max().item() > 1e-3


def saved_for_backward_bytes(fn):
    """Bytes of the tensors autograd keeps for backward while fn() builds the graph."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return total, out


def test_no_chunk_logits_are_kept_for_backward():
    """The [N, V] fp32 logits of the trained rows are not stored for backward (checkpointed chunks)."""
    vocab, dim, n_tokens = 4096, 16, 256
    head = nn.Linear(dim, vocab, bias=False)
    hidden = torch.randn(1, n_tokens, dim, requires_grad=True)
    targets = torch.randint(0, vocab, (1, n_tokens))
    logits_bytes = n_tokens * vocab * 4

    plain, _ = saved_for_backward_bytes(lambda: reference_loss(hidden, targets, head))
    chunked, loss = saved_for_backward_bytes(lambda: trained_token_loss(hidden, targets, head, chunk_size=64))
    assert plain >= logits_bytes  # the plain loss keeps (at least) the full log-softmax
    assert chunked < logits_bytes / 10  # ours keeps the [N, D] rows and labels, not [N, V]
    loss.backward()  # and backward still works (it recomputes each chunk)


def test_no_trained_tokens_gives_zero_loss_that_backpropagates():
    head = Head()
    hidden = torch.randn(1, 4, D, requires_grad=True)
    targets = torch.full((1, 4), IGNORE_INDEX)
    loss = trained_token_loss(hidden, targets, head)
    loss.backward()
    assert loss.item() == 0.0 and head.rows_seen == 0
    assert torch.equal(hidden.grad, torch.zeros_like(hidden))


def test_bf16_hidden_gives_fp32_loss_close_to_fp32():
    torch.manual_seed(0)
    head = Head()
    hidden, targets = make_batch(6)
    loss32 = trained_token_loss(hidden, targets, head)
    loss16 = trained_token_loss(hidden.bfloat16(), targets, head.bfloat16())
    assert loss16.dtype == torch.float32
    assert abs(loss16.item() - loss32.item()) < 0.05


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"differ in \[B, T\]"):
        trained_token_loss(torch.zeros(2, 5, D), torch.zeros(2, 4, dtype=torch.long), Head())
