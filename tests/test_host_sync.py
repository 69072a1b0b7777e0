"""The training step never makes the host wait for the GPU, and the varlen plan feeds the kernel right.

A host sync (`.item()`, `.tolist()`, `bool(tensor)`, a boolean-mask selection whose size must be read
back, a copy from pageable host memory) stalls the CPU until the GPU has finished everything queued,
so the GPU idles while Python prepares the next kernels. There is no GPU here, so the step runs on
CPU with the CUDA path's attention plan forced on (`varlen_usable` -> True) and torch's varlen flash
kernel replaced by `fake_varlen_attn`, an SDPA re-implementation of its documented semantics that
itself reads nothing back. A dispatch mode records every operator that would sync on a GPU.

The same fake kernel also checks what the CUDA path hands the kernel (cu_seqlens, max_seqlen, the
window tuple): its loss and gradients must equal the SDPA path's. On a machine with CUDA,
`test_cuda_step_has_no_host_sync` runs the real thing under torch.cuda.set_sync_debug_mode("error").
"""

from contextlib import contextmanager, nullcontext
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import train
from minifc import attention
from minifc.collate import packed_batch
from minifc.config import ModelConfig
from minifc.loss import batch_loss
from minifc.lora import apply_lora, lora_parameters, mark_only_lora_trainable
from minifc.model import Transformer

aten = torch.ops.aten
# Operators whose result the host must read back (value or output size) before it can go on.
SYNCING = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default,
           aten.is_nonzero.default, aten.unique_consecutive.default, aten._unique2.default}
# Indexing with a boolean mask: the output size is the mask's count (torch finds it with nonzero inside
# the kernel, below where a dispatch mode sees it).
INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}


def boolean_index(func, args) -> bool:
    if func not in INDEXING:
        return False
    indices = args[1] if len(args) > 1 else []
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices)


class HostSyncRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.syncs = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in SYNCING or boolean_index(func, args):
            self.syncs.append(str(func))
        return func(*args, **(kwargs or {}))


@contextmanager
def recording_host_syncs(monkeypatch):
    """Yields the list of syncing calls made inside. `.tolist()` reads CPU memory without going through
    the dispatcher, so it is caught by wrapping it."""
    recorder = HostSyncRecorder()
    tolist = torch.Tensor.tolist

    def recording_tolist(self):
        recorder.syncs.append("Tensor.tolist")
        return tolist(self)

    monkeypatch.setattr(torch.Tensor, "tolist", recording_tolist)
    with recorder:
        yield recorder.syncs
    monkeypatch.setattr(torch.Tensor, "tolist", tolist)


def test_the_recorder_catches_the_syncs_it_looks_for(monkeypatch):
    x = torch.randn(6, 3)
    mask = torch.tensor([True, False, True, True, False, False])
    with recording_host_syncs(monkeypatch) as syncs:
        x[mask].sum().item()
        x.shape[0] and x[0, 0].tolist()
        bool((x > 0).any())
    assert syncs == ["aten.index.Tensor", "aten._local_scalar_dense.default", "Tensor.tolist",
                     "aten._local_scalar_dense.default"]


def fake_varlen_attn(calls):
    """torch.nn.attention.varlen.varlen_attn's semantics in SDPA: causal attention within each packed
    sequence of q [N, Hq, D]; window_size (left, right): key j is seen by query i iff
    i - left <= j <= i + right (left = -1: unbounded)."""
    def varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, *, scale, window_size, enable_gqa=False):
        calls.append(dict(cu_q=cu_q, cu_k=cu_k, max_q=max_q, max_k=max_k, window_size=window_size))
        n = q.shape[0]
        token = torch.arange(n, device=q.device)
        sequence = torch.searchsorted(cu_q.long(), token, right=True) - 1
        i, j = token[:, None], token[None, :]
        left, right = window_size
        mask = (sequence[:, None] == sequence[None, :]) & (j <= i + right)
        if left >= 0:
            mask = mask & (j >= i - left)
        out = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1),
                                             attn_mask=mask, scale=scale, enable_gqa=enable_gqa)
        return out.transpose(0, 1)
    return varlen_attn


def tiny(kind: str) -> ModelConfig:
    common = dict(vocab_size=300, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128)
    if kind == "gemma":  # window 6: the 11- and 13-token sequences below are longer than it
        return ModelConfig.from_hf(dict(model_type="gemma3_text", sliding_window=6,
                                        layer_types=["sliding_attention", "full_attention"], **common))
    return ModelConfig.from_hf(dict(model_type="llama", tie_word_embeddings=True, **common))


def lora_model(kind: str) -> Transformer:
    torch.manual_seed(0)
    model = Transformer(tiny(kind))
    apply_lora(model, r=4, alpha=8, dropout=0.0)
    mark_only_lora_trainable(model)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.normal_(0.0, 0.1)  # B != 0: gradients reach every adapter
    return model.train()


def packed(seed: int = 0):
    """Two rows of 32 slots: sequences of 11, 13, 1 (+ 7 padding) and 4, 20 (+ 8 padding)."""
    g = torch.Generator().manual_seed(seed)

    def example(n):
        ids = torch.randint(1, 300, (n,), generator=g).tolist()
        labels = [-100] * (n // 2) + ids[n // 2:]
        return ids, labels
    return packed_batch([[example(11), example(13), example(1)], [example(4), example(20)]], 32, pad_id=0)


def step(model, batch):
    """train.py's step (forward, loss, backward, clipping) on one micro-batch; the loss and the grads."""
    model.zero_grad(set_to_none=True)
    args = SimpleNamespace(device="cpu", loss_chunk=5, grad_clip=1.0)
    loss, norm = train.train_step(model, lora_parameters(model), [batch], args, nullcontext())
    return loss, norm, [p.grad.clone() for p in lora_parameters(model)]


@pytest.mark.parametrize("kind", ["llama", "gemma"])
def test_training_step_has_no_host_sync_on_the_varlen_path(kind, monkeypatch):
    model, batch = lora_model(kind), packed()
    calls = []
    monkeypatch.setattr(attention, "varlen_usable", lambda *args: True)
    monkeypatch.setattr(attention, "varlen_attn", lambda: fake_varlen_attn(calls))
    with recording_host_syncs(monkeypatch) as syncs:
        step(model, batch)
    assert syncs == []
    assert calls, "the varlen kernel was not used"


@pytest.mark.parametrize("kind", ["llama", "gemma"])
def test_varlen_plan_gives_the_sdpa_path_results(kind, monkeypatch):
    """What plan_attention/attend pass the varlen kernel (bounds, max_seqlen, the sliding window as
    (window - 1, 0)) gives the loss and gradients of the SDPA path with its block-diagonal mask."""
    model, batch = lora_model(kind), packed()
    sdpa_loss, sdpa_norm, sdpa_grads = step(model, batch)

    calls = []
    monkeypatch.setattr(attention, "varlen_usable", lambda *args: True)
    monkeypatch.setattr(attention, "varlen_attn", lambda: fake_varlen_attn(calls))
    loss, norm, grads = step(model, batch)

    assert torch.equal(calls[0]["cu_q"], torch.tensor([0, 11, 24, 25, 32, 36, 56, 64], dtype=torch.int32))
    assert calls[0]["max_q"] == calls[0]["max_k"] == 20 and isinstance(calls[0]["max_q"], int)
    windows = {c["window_size"] for c in calls}
    assert windows == ({(5, 0), (-1, 0)} if kind == "gemma" else {(-1, 0)})
    assert abs(loss.item() - sdpa_loss.item()) < 1e-6 and abs(norm.item() - sdpa_norm.item()) < 1e-6
    for a, b in zip(grads, sdpa_grads):
        assert (a - b).abs().max().item() < 1e-6


def test_batch_loss_gathers_the_rows_the_boolean_mask_would(monkeypatch):
    """Batch.trained_positions (computed by the collator) select exactly the targets != -100."""
    batch = packed(3)
    flat = batch.targets.view(-1)
    assert torch.equal(batch.trained_positions, torch.nonzero(flat != -100).squeeze(1))
    assert batch.num_trained == len(batch.trained_positions) == int((flat != -100).sum())
    model = lora_model("llama")
    with torch.no_grad():
        with_positions = batch_loss(model, batch)
        from minifc.loss import trained_token_loss
        hidden = model.hidden_states(batch.input_ids, batch.position_ids, batch.cu_seqlens)
        without = trained_token_loss(hidden, batch.targets, model.output)
    assert abs(with_positions.item() - without.item()) < 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["llama", "gemma"])
def test_cuda_step_has_no_host_sync(kind):
    """On a GPU: bf16 base weights, the real varlen kernel, fused AdamW; any sync raises."""
    model = lora_model(kind).to("cuda")
    for name, p in model.named_parameters():
        if "lora_" not in name:
            p.data = p.data.bfloat16()
    optimizer = torch.optim.AdamW(lora_parameters(model), lr=1e-3, fused=True)
    args = SimpleNamespace(device="cuda", loss_chunk=5, grad_clip=1.0)
    batch = packed()
    train.train_step(model, lora_parameters(model), [batch], args, nullcontext())  # warm-up: lazy inits
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):
            train.train_step(model, lora_parameters(model), [batch], args, nullcontext())
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert attention.plan_attention(2, 32, torch.device("cuda"), torch.bfloat16, model.config,
                                    batch.cu_seqlens.cuda(), max_seqlen=batch.max_seqlen).varlen


def test_the_varlen_self_check_accepts_the_kernel_semantics_and_refuses_others(monkeypatch):
    """Before the varlen kernel is used on a device, attention._varlen_agrees runs it the way attend
    does (GQA, causal and windowed) against SDPA. Checked here with stand-ins for the kernel."""
    check = attention._varlen_agrees.__wrapped__  # not the per-device cached result
    monkeypatch.setattr(attention, "varlen_attn", lambda: fake_varlen_attn([]))
    assert check(torch.device("cpu"), torch.float32, 8)

    def window_one_too_wide(q, k, v, *args, window_size, **kwargs):
        left, right = window_size
        return fake_varlen_attn([])(q, k, v, *args, window_size=(left + 1 if left >= 0 else left, right), **kwargs)

    def no_gqa_argument(q, k, v, cu_q, cu_k, max_q, max_k, *, scale, window_size):  # as older torch releases,
        return fake_varlen_attn([])(q, k, v, cu_q, cu_k, max_q, max_k, scale=scale,  # GQA by the head counts
                                    window_size=window_size, enable_gqa=q.shape[1] != k.shape[1])

    for wrong, reason in ((window_one_too_wide, "differs from SDPA"), (no_gqa_argument, "TypeError")):
        monkeypatch.setattr(attention, "varlen_attn", lambda: wrong)
        with pytest.warns(UserWarning, match=f"varlen flash attention is not used on cpu .*{reason}"):
            assert not check(torch.device("cpu"), torch.float32, 8)

    # varlen_attn() adapts a kernel without the enable_gqa argument: it is then used (when its results
    # with fewer key/value heads agree, as the stand-in's do)
    adapted = attention.without_unknown_gqa_flag(no_gqa_argument)
    assert attention.without_unknown_gqa_flag(fake_varlen_attn([])).__name__ == "varlen_attn"  # kept as is
    monkeypatch.setattr(attention, "varlen_attn", lambda: adapted)
    assert check(torch.device("cpu"), torch.float32, 8)
