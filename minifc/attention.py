"""Attention kernels behind one function, `attend`, and the KV cache used for decoding.

Every layer of a forward pass shares one `AttentionPlan`, made once by `plan_attention`:

(a) SDPA with an explicit boolean mask: the reference path, used on CPU and wherever (b) does not
    apply. The mask combines causality, the sliding window (a query sees itself and the window-1
    tokens before it, as in HF), the block diagonal of packed sequences (cu_seqlens) and the validity
    of key slots (left padding, unfilled cache slots). A query always sees itself, so a padding
    query never has an empty row (which would give NaN).
(a') Packed rows on CPU, SDPA per sequence: one causal SDPA call per packed sequence (and per padding
    tail), so a row costs sum(L_i^2) instead of the T^2 of (a)'s block-diagonal mask; sliding layers
    use (a)'s causal+window mask for sequences longer than the window. Used without a KV cache or
    attention_mask, on the CPU only, where reading cu_seqlens costs nothing. The CUDA SDPA fallback
    (fp32, or no usable varlen kernel) keeps (a): the loop would need a host sync for the bounds and
    launch a few kernels per sequence and layer, where one masked kernel per layer keeps the GPU busy.
    Compiled blocks keep (a) too: a loop over each batch's own lengths would recompile per batch. On
    CPU cores shared with other jobs, the many small calls can wait on the thread pool more than they
    save (benchmarks/RESULTS.md). Set PER_SEGMENT = False to force (a). `plan_rows` + `attend_rows`: the
    same for the queries of some positions only (the last block under the loss: model.py).
(b) Packed variable-length flash attention on CUDA (torch.nn.attention.varlen.varlen_attn) over the
    flattened B*T tokens, window_size=(window-1, 0) on sliding layers; for fp16/bf16 without a KV cache
    or padding mask. An unpacked batch is B sequences of length T. Set FLASH_VARLEN = False to force (a).
(c) Decoding with a KV cache: keys/values of each call are written into preallocated slots, and the
    queries attend (with the mask of (a)) to every slot filled so far.

Layouts: q [B, T, Hq, D] and k, v [B, T, Hkv, D] (after RoPE); `attend` returns [B, T, Hq*D].
Grouped-query attention (Hkv < Hq) is handled by the kernels (enable_gqa), without copying k, v.
"""

import inspect
import warnings
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F

FLASH_VARLEN = True  # tests flip this to compare (a) and (b) on the same machine
PER_SEGMENT = True  # tests and benchmarks flip this to compare (a) and (a') on the CPU


@cache
def varlen_attn():
    """torch's varlen flash-attention function, or None where this torch has none. Imported on first
    use on CUDA only: the module pulls in torch._dynamo, which takes seconds to import."""
    try:
        from torch.nn.attention.varlen import varlen_attn as function
    except ImportError:
        return None
    return without_unknown_gqa_flag(function)


def without_unknown_gqa_flag(function):
    """`function`, or a wrapper that drops `enable_gqa` where `function` has no such argument (torch
    releases before it was added, 2.11 and older): their flash kernel takes fewer key/value heads than
    query heads as they are. _varlen_agrees confirms the results on each device before any use."""
    if "enable_gqa" in inspect.signature(function).parameters:
        return function

    def call(*args, enable_gqa=False, **kwargs):
        return function(*args, **kwargs)
    return call


class KVCache:
    """Preallocated keys and values of every layer, for batched decoding.

    k[layer], v[layer]: [B, Hkv, max_len, D], with each layer's own Hkv and D (Gemma 4's global layers
    differ from its sliding ones), or None for a layer that reuses another layer's keys and values (Gemma
    4's KV sharing: it reads them with `read`). `valid` [B, max_len] marks slots that hold a real token
    (False for left padding and for slots not filled yet). `length` is how many slots every row has
    filled: all rows advance together, so prompts of different lengths are left-padded.
    Sliding-window layers keep all slots too; the mask limits what they see to the window.
    """

    def __init__(self, shapes: list, batch_size: int, max_len: int, device, dtype):
        """shapes: per layer, (Hkv, D) or None (a layer that stores nothing)."""
        new = lambda shape: None if shape is None else torch.zeros(
            (batch_size, shape[0], max_len, shape[1]), device=device, dtype=dtype)
        self.k, self.v = [new(shape) for shape in shapes], [new(shape) for shape in shapes]
        self.valid = torch.zeros(batch_size, max_len, dtype=torch.bool, device=device)
        self.max_len, self.length = max_len, 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int):
        """Write k, v [B, Hkv, T, D] into slots start..start+T; return all keys/values up to there."""
        end = start + k.shape[2]
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.read(layer, end)

    def read(self, layer: int, end: int):
        """The keys and values of slots 0..end of `layer`."""
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


@dataclass
class AttentionPlan:
    """What all layers of one forward pass share."""
    varlen: bool                          # path (b)
    cu_seqlens: torch.Tensor | None       # int32 [S+1] over the flattened tokens (path b)
    max_seqlen: int                       # longest sequence (path b)
    window: int | None                    # sliding window of sliding layers
    masks: dict                           # layer type -> bool [B, 1, Tq, Tk] or None = plain causal
    cache: KVCache | None = None          # path (c)
    start: int = 0                        # first cache slot of this call's tokens
    kernel: object = None                 # path (b): the varlen function, fetched once per forward
    segments: list | None = None          # path (a'): length of each sequence, in flattened token order
    window_masks: dict | None = None      # path (a'): length -> causal+window mask, lengths > window
    rows: tuple | None = None             # path (a') for the queries of some positions only: see plan_rows


def varlen_usable(device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    """Whether path (b) can run: CUDA flash kernels take fp16/bf16, head_dim <= 256, sm80+, and the
    kernel passes a one-time check against SDPA on this device."""
    return (FLASH_VARLEN and device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)
            and head_dim <= 256 and torch.cuda.get_device_capability(device)[0] >= 8
            and varlen_attn() is not None and _varlen_agrees(device, dtype, head_dim))


@cache
def _varlen_agrees(device: torch.device, dtype: torch.dtype, head_dim: int) -> bool:
    """Run the flash kernel once on two small packed sequences as `attend` calls it (grouped-query heads;
    causal, then with a sliding window) and compare with SDPA. A varlen kernel that is missing, misbehaves
    on this GPU or lacks an argument `attend` passes (older releases had no window_size / enable_gqa)
    then costs speed (path (a), with a warning), not a crash in the middle of a training run."""
    try:
        q = torch.randn(12, 4, head_dim, device=device, dtype=dtype)
        k, v = (torch.randn(12, 2, head_dim, device=device, dtype=dtype) for _ in range(2))
        cu = torch.tensor([0, 5, 12], device=device, dtype=torch.int32)
        worst = 0.0
        for window in (None, 3):
            out = varlen_attn()(q, k, v, cu, cu, 7, 7, scale=head_dim ** -0.5, enable_gqa=True,
                                window_size=(window - 1, 0) if window else (-1, 0))
            expected = torch.cat([F.scaled_dot_product_attention(
                q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), v[a:b].transpose(0, 1),
                attn_mask=build_mask(b - a, 0, device, window)[0, 0], scale=head_dim ** -0.5,
                enable_gqa=True).transpose(0, 1) for a, b in ((0, 5), (5, 12))])
            worst = max(worst, (out.float() - expected.float()).abs().max().item())
        if worst <= 2e-2:
            return True
        reason = f"it differs from SDPA by {worst:.3g}"
    except Exception as error:  # noqa: BLE001 -- any failure of the kernel means: do not use it
        reason = f"{type(error).__name__}: {error}"
    warnings.warn(f"varlen flash attention is not used on {device} ({reason}); packed batches take the "
                  "SDPA path with a block-diagonal mask (slower, same results)")
    return False


def plan_attention(batch_size: int, seqlen: int, device: torch.device, dtype: torch.dtype, config,
                   cu_seqlens: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                   kv_cache: KVCache | None = None, max_seqlen: int | None = None,
                   per_segment: bool = True) -> AttentionPlan:
    """Decide the kernel and build what it needs, once per forward pass.

    cu_seqlens: cumulative lengths of the sequences packed into the flattened B*T tokens (each row
    must hold whole sequences; tokens after the last boundary form one more sequence).
    max_seqlen: the longest of those sequences, when the caller knows it (collate.Batch does). The
    varlen kernel takes it as a Python int; without it, it is read off cu_seqlens, which makes the
    host wait for the GPU once per forward. With it, cu_seqlens must end at B*T (the collator's
    always does: its padding tail is a sequence of its own).
    attention_mask: [B, Tk] bool, True for real tokens, where Tk = seqlen (or, with a cache, the
    new tokens only or all tokens so far); the cache records it per slot.
    per_segment: whether path (a') may be used (not in compiled blocks: Transformer.compile_blocks).
    """
    if kv_cache is not None and cu_seqlens is not None:
        raise ValueError("cu_seqlens (packed sequences) cannot be combined with a KV cache: decode "
                         "left-padded rows with attention_mask instead")
    window, layer_types = config.sliding_window, set(config.layer_types)
    simple = kv_cache is None and attention_mask is None
    head_dim = max(config.head_dim_of(kind) for kind in layer_types)  # Gemma 4's global 512: no flash kernel
    if simple and varlen_usable(device, dtype, head_dim):
        cu_seqlens, max_seqlen = _varlen_bounds(batch_size, seqlen, device, cu_seqlens, max_seqlen)
        return AttentionPlan(True, cu_seqlens, max_seqlen, window, {t: None for t in layer_types},
                             kernel=varlen_attn())

    segments = _segment_ids(cu_seqlens, batch_size, seqlen) if cu_seqlens is not None else None
    if simple and segments is not None and per_segment and PER_SEGMENT and device.type == "cpu":
        # path (a'): the length of each sequence in token order (repeated bounds: no empty sequence)
        lengths = [n for n in torch.bincount(segments.flatten()).tolist() if n]
        sliding = window is not None and "sliding_attention" in layer_types
        window_masks = {n: build_mask(n, 0, device, window) for n in set(lengths) if sliding and n > window}
        return AttentionPlan(False, None, max(lengths), window, {}, segments=lengths, window_masks=window_masks)

    start, key_valid = 0, None
    if kv_cache is not None:
        start = kv_cache.length
        if start + seqlen > kv_cache.max_len:
            raise ValueError(f"KV cache full: {start} + {seqlen} tokens > max_len {kv_cache.max_len}")
        kv_cache.valid[:, start:start + seqlen] = _new_token_mask(attention_mask, batch_size, seqlen, start, device)
        key_valid = kv_cache.valid[:, :start + seqlen]
    elif attention_mask is not None:
        if attention_mask.shape != (batch_size, seqlen):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                             f"{(batch_size, seqlen)}")
        key_valid = attention_mask.bool()

    masks = {}
    for layer_type in layer_types:
        layer_window = window if layer_type == "sliding_attention" else None
        plain_causal = (key_valid is None and segments is None and start == 0
                        and (layer_window is None or seqlen <= layer_window))
        masks[layer_type] = None if plain_causal else build_mask(
            seqlen, start, device, layer_window, key_valid, segments)
    return AttentionPlan(False, None, seqlen, window, masks, kv_cache, start)


def _varlen_bounds(batch_size, seqlen, device, cu_seqlens, max_seqlen) -> tuple[torch.Tensor, int]:
    """cu_seqlens (int32, ending at B*T) and max_seqlen for the varlen kernel, without a host sync
    where the caller knows max_seqlen or the batch is not packed."""
    total = batch_size * seqlen
    if cu_seqlens is None:  # unpacked: each row is one sequence
        return torch.arange(0, total + 1, seqlen, device=device, dtype=torch.int32), seqlen
    if max_seqlen is not None:
        return cu_seqlens.to(device=device, dtype=torch.int32), max_seqlen
    bounds = cu_seqlens.tolist()  # a host sync: pass max_seqlen to avoid it
    if bounds[-1] != total:
        bounds.append(total)
    max_seqlen = max(b - a for a, b in zip(bounds[:-1], bounds[1:]))
    return torch.tensor(bounds, device=device, dtype=torch.int32), max_seqlen


def _new_token_mask(attention_mask, batch_size, seqlen, start, device) -> torch.Tensor:
    if attention_mask is None:
        return torch.ones(batch_size, seqlen, dtype=torch.bool, device=device)
    if attention_mask.shape == (batch_size, start + seqlen):  # HF style: the mask of all tokens so far
        attention_mask = attention_mask[:, start:]
    if attention_mask.shape != (batch_size, seqlen):
        raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                         f"{(batch_size, seqlen)} (new tokens) or {(batch_size, start + seqlen)} (all tokens)")
    return attention_mask.to(device=device, dtype=torch.bool)


def _segment_ids(cu_seqlens: torch.Tensor, batch_size: int, seqlen: int) -> torch.Tensor:
    """[B, T] index of the packed sequence each token belongs to; checks no sequence spans two rows."""
    cu = cu_seqlens.to(torch.int64)
    tokens = torch.arange(batch_size * seqlen, device=cu.device)
    segments = (torch.searchsorted(cu, tokens, right=True) - 1).view(batch_size, seqlen)
    if batch_size > 1 and bool((segments[1:, 0] == segments[:-1, -1]).any()):
        raise ValueError("cu_seqlens has a sequence that continues from one row into the next; "
                         "each row of a packed batch must hold whole sequences")
    return segments


def build_mask(seqlen: int, start: int, device, window: int | None = None,
               key_valid: torch.Tensor | None = None, segments: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean [B or 1, 1, Tq, Tk] mask, True where a query may attend to a key.

    Queries sit in slots start..start+seqlen-1, keys in slots 0..start+seqlen-1. Slot distance equals
    position distance for the real tokens of a row (padding is only on the left), so the window is
    measured in slots.
    """
    q_slot = torch.arange(start, start + seqlen, device=device)[:, None]
    k_slot = torch.arange(start + seqlen, device=device)[None, :]
    mask = k_slot <= q_slot
    if window is not None:
        mask = mask & (q_slot - k_slot < window)
    mask = mask[None]  # [1, Tq, Tk]
    if key_valid is not None:
        mask = mask & key_valid[:, None, :]
    if segments is not None:  # packed sequences: block diagonal (only without a cache, start == 0)
        mask = mask & (segments[:, :, None] == segments[:, None, :])
    mask = mask | (k_slot == q_slot)[None]  # a query always sees itself: no empty rows
    return mask[:, None]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: AttentionPlan, layer_idx: int,
           layer_type: str, scale: float, shared: bool = False) -> torch.Tensor:
    """Attention of one layer: q [B, T, Hq, D], k, v [B, T, Hkv, D] -> [B, T, Hq*D]. layer_idx: the
    layer whose keys and values these are; shared: they are another layer's (Gemma 4's KV sharing),
    which a KV cache already holds, so they are read from it, not written again."""
    batch, seqlen, heads, head_dim = q.shape
    gqa = heads != k.shape[2]
    if plan.varlen:
        sliding = layer_type == "sliding_attention" and plan.window is not None
        # flash window (left, right): key j is seen by query i when i - left <= j <= i + right.
        # A tuple, not a list: varlen_attn recognises plain causal by `window_size == (-1, 0)`.
        window_size = (plan.window - 1, 0) if sliding else (-1, 0)
        out = plan.kernel(q.reshape(batch * seqlen, heads, head_dim),
                          k.reshape(batch * seqlen, -1, head_dim), v.reshape(batch * seqlen, -1, head_dim),
                          plan.cu_seqlens, plan.cu_seqlens, plan.max_seqlen, plan.max_seqlen,
                          scale=scale, window_size=window_size, enable_gqa=gqa)
        return out.reshape(batch, seqlen, heads * head_dim)

    if plan.segments is not None:
        return _attend_per_segment(q, k, v, plan, layer_type, scale, gqa)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, D]
    if plan.cache is not None and shared:
        k, v = plan.cache.read(layer_idx, plan.start + seqlen)
    elif plan.cache is not None:
        k, v = plan.cache.update(layer_idx, k, v, plan.start)
    mask = plan.masks[layer_type]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, scale=scale,
                                         enable_gqa=gqa)
    return out.transpose(1, 2).reshape(batch, seqlen, heads * head_dim)


def plan_rows(plan: AttentionPlan, positions: torch.Tensor) -> bool:
    """Prepare `attend_rows` for queries at `positions` only ([N] flat indices into B*T, ascending), on
    path (a'); False (nothing done) on any other path. Records how many of the positions fall in each
    sequence (a host list: CPU only) and each one's offset in its sequence."""
    if plan.segments is None:
        return False
    if bool((positions[1:] <= positions[:-1]).any()):  # CPU: no host sync to speak of
        raise ValueError("positions must be strictly ascending (as collate.Batch.trained_positions are)")
    starts = torch.tensor([0] + plan.segments[:-1], device=positions.device).cumsum(0)
    segment = torch.searchsorted(starts, positions, right=True) - 1
    counts = torch.bincount(segment, minlength=len(plan.segments)).tolist()
    plan.rows = (counts, positions - starts[segment])
    return True


def attend_rows(q, k, v, plan: AttentionPlan, layer_type: str, scale: float) -> torch.Tensor:
    """Attention of the queries at plan_rows's positions only: q [1, N, Hq, D], k, v [B, T, Hkv, D] of
    every position -> [1, N, Hq*D]. Per sequence, as path (a'): its queries against its keys, each
    query seeing the keys up to its own offset (and within the window on sliding layers)."""
    counts, offsets = plan.rows
    heads, head_dim = q.shape[2], q.shape[3]
    window = plan.window if layer_type == "sliding_attention" else None
    k, v = (x.reshape(1, -1, x.shape[2], head_dim).split(plan.segments, dim=1) for x in (k, v))
    outs = []
    for qs, ks, vs, at in zip(q.split(counts, dim=1), k, v, offsets.split(counts)):
        if not at.numel():  # no query in this sequence: its keys and values are not needed
            continue
        keys = torch.arange(ks.shape[1], device=at.device)[None, :]
        mask = keys <= at[:, None]
        if window is not None:
            mask &= at[:, None] - keys < window
        out = F.scaled_dot_product_attention(qs.transpose(1, 2), ks.transpose(1, 2), vs.transpose(1, 2),
                                             attn_mask=mask, scale=scale, enable_gqa=heads != ks.shape[2])
        outs.append(out.transpose(1, 2))  # [1, n, H, D]
    return torch.cat(outs, dim=1).reshape(1, -1, heads * head_dim)


def _attend_per_segment(q, k, v, plan: AttentionPlan, layer_type: str, scale: float, gqa: bool):
    """Path (a'): causal SDPA on each packed sequence alone; q [B, T, Hq, D] -> [B, T, Hq*D]."""
    batch, seqlen, heads, head_dim = q.shape
    # Views [1, L, H, D] of each sequence. torch.split, not slicing: the backward of a slice writes
    # into a zero tensor of the full size, once per sequence; split's backward is one cat.
    q, k, v = (x.reshape(1, batch * seqlen, -1, head_dim).split(plan.segments, dim=1) for x in (q, k, v))
    sliding = layer_type == "sliding_attention"
    outs = []
    for qs, ks, vs, length in zip(q, k, v, plan.segments):
        mask = plan.window_masks.get(length) if sliding else None
        out = F.scaled_dot_product_attention(qs.transpose(1, 2), ks.transpose(1, 2), vs.transpose(1, 2),
                                             attn_mask=mask, is_causal=mask is None, scale=scale, enable_gqa=gqa)
        outs.append(out.transpose(1, 2))  # [1, L, H, D]
    return torch.cat(outs, dim=1).reshape(batch, seqlen, heads * head_dim)
