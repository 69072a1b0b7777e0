"""The decoder: Llama 3.x, Gemma 3 and Gemma 4 (text), Qwen3 and Qwen2.5 in one implementation; the
differences are config flags.

Module names mirror Hugging Face's *ForCausalLM exactly, so `Transformer.state_dict()` keys equal
HF's keys and checkpoints load without renaming:

    model.embed_tokens                          nn.Embedding
    model.layers.{i}.input_layernorm            RMSNorm
    model.layers.{i}.self_attn.{q,k,v,o}_proj   nn.Linear (LoRA wraps these by name; Qwen2.5: q,k,v biased)
    model.layers.{i}.self_attn.{q,k}_norm       RMSNorm per head (Gemma and Qwen3 only)
    model.layers.{i}.post_attention_layernorm   RMSNorm
    model.layers.{i}.pre_feedforward_layernorm  RMSNorm (Gemma only)
    model.layers.{i}.post_feedforward_layernorm RMSNorm (Gemma only)
    model.layers.{i}.mlp.{gate,up,down}_proj    nn.Linear
    model.layers.{i}.per_layer_input_gate, .per_layer_projection, .post_per_layer_input_norm,
    model.embed_tokens_per_layer, model.per_layer_model_projection, model.per_layer_projection_norm
                                                Gemma 4's per-layer embeddings (gemma4.py)
    model.layers.{i}.layer_scalar               Gemma 4: a buffer [1] scaling the layer's output
    model.norm                                  RMSNorm
    lm_head                                     nn.Linear; its weight IS model.embed_tokens.weight if tied

Calling conventions (all tensors on the model's device):

    model(input_ids, position_ids=None, cu_seqlens=None, attention_mask=None, kv_cache=None, max_seqlen=None)
        -> logits [B, T, vocab] (in the model's dtype)
    model.hidden_states(<same arguments>) -> [B, T, hidden] after the final norm
    model.hidden_states(<same arguments>, positions=p) -> [N, hidden] at the flat positions p [N] only
    model.output(hidden) -> logits (lm_head, then soft-capping if the config sets it)

- Training / scoring: input_ids [B, T]. Packed rows pass cu_seqlens (int32 cumulative lengths over the
  flattened B*T tokens, each row holding whole sequences) and position_ids that restart at 0 per
  sequence; attention never crosses sequences. max_seqlen (the longest sequence, as collate.Batch has
  it) spares the GPU path a host sync per forward. position_ids default to 0..T-1 per row (per packed
  sequence with cu_seqlens; counted over real tokens with attention_mask).
- positions (the loss's trained positions, ascending): the last block computes its queries, attention
  output, MLP and norms at those positions only (every position still gives keys and values), where
  attention runs per packed sequence (CPU, attention.py path (a')) and LAST_BLOCK_ROWS is on; elsewhere
  all positions are computed and these selected. The hidden states, the loss and gradients are the same.
- `model.gradient_checkpointing = True` recomputes each block in the backward pass
  (torch.utils.checkpoint, use_reentrant=False); ignored under no_grad and with a KV cache.
- Decoding (generate.py): `cache = model.new_kv_cache(batch_size, max_len)` preallocates keys and
  values. Prefill with left-padded prompts: `model(ids [B, T], attention_mask=mask [B, T] bool,
  kv_cache=cache)`; then one token at a time: `model(next_ids [B, 1], kv_cache=cache)`. Each call
  appends to the cache and attends to all its valid slots; position_ids default to the count of real
  tokens before each one (left padding does not shift positions). Sliding layers see the last `window` slots.
"""

import math

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from .attention import KVCache, attend, attend_rows, plan_attention, plan_rows
from .config import ModelConfig
from .gemma4 import per_layer_inputs, per_layer_residual
from .mlp import MLP

LAST_BLOCK_ROWS = True  # hidden_states(positions=...)'s fast path; tests and benchmarks flip it to compare


def take_rows(t: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """[B, T, ...] -> [1, N, ...]: the entries at flat positions (into B*T)."""
    return t.flatten(0, 1).index_select(0, positions)[None]


class RMSNorm(nn.Module):
    """RMSNorm in fp32. Llama: weight * normed.to(dtype). Gemma 3 (plus_one): (normed * (1 + weight))
    in fp32, then cast; Gemma 3 stores the weight as an offset from 1, so it is initialised to zeros.
    Gemma 4 (fp32_weight): (normed * weight) in fp32, then cast; without a weight (its value norm): normed."""

    def __init__(self, dim: int, eps: float, plus_one: bool, fp32_weight: bool = False, weight: bool = True):
        super().__init__()
        self.eps, self.plus_one, self.fp32_weight = eps, plus_one, fp32_weight
        self.weight = nn.Parameter(torch.zeros(dim) if plus_one else torch.ones(dim)) if weight else None

    @classmethod
    def of(cls, config: ModelConfig, dim: int) -> "RMSNorm":
        return cls(dim, config.rms_norm_eps, config.norm_plus_one, config.norm_fp32_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.weight is None:
            return normed.type_as(x)
        if self.plus_one or self.fp32_weight:
            return (normed * ((1.0 if self.plus_one else 0.0) + self.weight.float())).type_as(x)
        return self.weight * normed.type_as(x)


def rope_inv_freq(head_dim: int, params: dict) -> torch.Tensor:
    """RoPE inverse frequencies (fp32, CPU) for one rope dict: default, linear or llama3 scaling."""
    inv_freq = 1.0 / (params["rope_theta"] ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    kind = params["rope_type"]
    if kind == "proportional":
        # Gemma 4 global layers: frequencies of the full head size on the first partial_rotary_factor of
        # the pairs; the other pairs get frequency 0 (cos 1, sin 0): those dimensions are not rotated
        rotated = int(params.get("partial_rotary_factor", 1.0) * head_dim // 2)
        inv_freq[rotated:] = 0.0
        return inv_freq / params.get("factor", 1.0)
    if kind == "linear":  # Gemma 3 4B+ global layers: positions divided by `factor`
        return inv_freq / params["factor"]
    if kind == "llama3":
        # Llama 3.1+: keep high frequencies (short wavelengths), divide low frequencies by `factor`,
        # and interpolate smoothly in between (wavelengths relative to the original context length).
        factor, old_len = params["factor"], params["original_max_position_embeddings"]
        low, high = params["low_freq_factor"], params["high_freq_factor"]
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
        return torch.where(medium, smoothed, scaled)
    if kind != "default":
        raise ValueError(f"rope_type {kind!r} is not supported")
    return inv_freq


def rope_cos_sin(position_ids: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype):
    """cos, sin [B, T, 1, D], computed in fp32 and cast to the compute dtype (as HF does)."""
    freqs = position_ids[..., None].float() * inv_freq.to(position_ids.device)
    emb = torch.cat((freqs, freqs), dim=-1)[:, :, None, :]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, T, H, D] (HF's half-split layout: pairs are (i, i + D/2))."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.layer_idx, self.layer_type = layer_idx, config.layer_types[layer_idx]
        hidden, heads = config.hidden_size, config.num_attention_heads
        hd, kv_heads = config.head_dim_of(self.layer_type), config.kv_heads_of(self.layer_type)
        self.head_dim, self.scale = hd, config.attention_scale
        # Gemma 4's KV sharing: a shared layer attends with the keys and values of layer kv_layer and has
        # no k/v projections or norms of its own (nor in the checkpoint)
        self.kv_layer = config.kv_source(layer_idx)
        qkv_bias = config.attention_bias or config.qkv_bias  # Qwen2.5: q, k, v have a bias, o_proj none
        self.q_proj = nn.Linear(hidden, heads * hd, bias=qkv_bias)
        self.k_proj = self.v_proj = self.q_norm = self.k_norm = self.v_norm = None
        if self.kv_layer == layer_idx:
            self.k_proj = nn.Linear(hidden, kv_heads * hd, bias=qkv_bias)
            if not (config.attention_k_eq_v and self.layer_type == "full_attention"):
                self.v_proj = nn.Linear(hidden, kv_heads * hd, bias=qkv_bias)  # else values = k_proj's output
            if config.v_norm:  # Gemma 4: values normalised too, without a weight
                self.v_norm = RMSNorm(hd, config.rms_norm_eps, plus_one=False, weight=False)
        self.o_proj = nn.Linear(heads * hd, hidden, bias=config.attention_bias)
        if config.qk_norm:  # Gemma, Qwen3: normalise each query/key head before RoPE
            self.q_norm = RMSNorm.of(config, hd)
            self.k_norm = RMSNorm.of(config, hd) if self.k_proj is not None else None

    def forward(self, x: torch.Tensor, rope, plan, shared_kv=None, positions=None):
        """-> (output, (k, v)): k, v [B, T, Hkv, D] after norms and RoPE, for the layers that share them.
        shared_kv: layer kv_layer's (k, v) when this layer shares them. positions: queries (and the
        output, [1, N, hidden]) at these flat positions only (plan_rows has prepared the plan)."""
        heads = lambda t: t.view(*t.shape[:2], -1, self.head_dim)
        x_q, rope_q = x, rope  # rope: (cos, sin)
        if positions is not None:
            x_q, rope_q = take_rows(x, positions), tuple(take_rows(t, positions) for t in rope)
        q = heads(self.q_proj(x_q))
        if self.q_norm is not None:
            q = self.q_norm(q)
        q = apply_rope(q, *rope_q)
        if self.k_proj is None:
            k, v = shared_kv
        else:
            k = heads(self.k_proj(x))
            v = heads(self.v_proj(x)) if self.v_proj is not None else k
            if self.k_norm is not None:
                k = self.k_norm(k)
            k = apply_rope(k, *rope)
            if self.v_norm is not None:
                v = self.v_norm(v)
        if positions is not None:
            out = attend_rows(q, k, v, plan, self.layer_type, self.scale)
        else:
            out = attend(q, k, v, plan, self.kv_layer, self.layer_type, self.scale, shared=self.k_proj is None)
        return self.o_proj(out), (k, v)


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        norm = lambda: RMSNorm.of(config, config.hidden_size)
        self.layer_type = config.layer_types[layer_idx]
        self.self_attn = Attention(config, layer_idx)
        wide = config.double_wide_mlp and self.self_attn.kv_layer != layer_idx  # Gemma 4 E2B's shared layers
        self.mlp = MLP(config, config.intermediate_size * (2 if wide else 1))
        self.input_layernorm = norm()
        self.post_attention_layernorm = norm()
        self.sandwich = config.sandwich_norm
        if self.sandwich:
            self.pre_feedforward_layernorm = norm()
            self.post_feedforward_layernorm = norm()
        if config.hidden_size_per_layer_input:  # Gemma 4 E models: the per-layer residual (gemma4.py)
            self.per_layer_input_gate = nn.Linear(config.hidden_size, config.hidden_size_per_layer_input, bias=False)
            self.per_layer_projection = nn.Linear(config.hidden_size_per_layer_input, config.hidden_size, bias=False)
            self.post_per_layer_input_norm = norm()
        # Gemma 4: a buffer as in transformers (saved, loaded, never trained); None: no buffer
        self.register_buffer("layer_scalar", torch.ones(1) if config.layer_scalar else None)

    def forward(self, x: torch.Tensor, rope, plan, shared_kv=None, per_layer_input=None, positions=None):
        """-> (x, (k, v)); shared_kv and per_layer_input: Gemma 4's, see Attention and gemma4.py.
        positions: the output at these flat positions only, x [1, N, hidden] (see Attention)."""
        attn, kv = self.self_attn(self.input_layernorm(x), rope, plan, shared_kv, positions)
        if positions is not None:  # from here on every operation is per position
            x = take_rows(x, positions)
            per_layer_input = None if per_layer_input is None else take_rows(per_layer_input, positions)
        if self.sandwich:  # Gemma: norms before AND after attention and MLP, inside the residual branch
            x = x + self.post_attention_layernorm(attn)
            x = x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))
        else:  # Llama: the norm HF calls post_attention_layernorm is the one *before* the MLP
            x = x + attn
            x = x + self.mlp(self.post_attention_layernorm(x))
        if per_layer_input is not None:
            x = per_layer_residual(self, x, per_layer_input)
        if self.layer_scalar is not None:
            x = x * self.layer_scalar
        return x, kv


class Decoder(nn.Module):
    """HF's *Model: embeddings, blocks, final norm (the `model.` prefix of the state dict)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm.of(config, config.hidden_size)
        if config.hidden_size_per_layer_input:  # Gemma 4 E models: per-layer embeddings (gemma4.py)
            width = config.num_hidden_layers * config.hidden_size_per_layer_input
            self.embed_tokens_per_layer = nn.Embedding(config.vocab_size_per_layer_input, width)
            self.per_layer_model_projection = nn.Linear(config.hidden_size, width, bias=False)
            self.per_layer_projection_norm = RMSNorm.of(config, config.hidden_size_per_layer_input)


class Transformer(nn.Module):
    """Decoder-only LM; see the module docstring for names and calling conventions."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.model = Decoder(config)
        # Tied: on meta, never allocated (tie_weights puts the embedding in its place). A real one would be a
        # [vocab, hidden] matrix built only to be dropped: 1.1 GiB for Gemma 3 in fp32, the peak of building.
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False,
                                 device="meta" if config.tie_word_embeddings else None)
        # layers whose keys and values later layers reuse (Gemma 4's KV sharing): kept during a forward
        sources = [config.kv_source(i) for i in range(config.num_hidden_layers)]
        self.kv_shared_from = {source for i, source in enumerate(sources) if source != i}
        self.gradient_checkpointing = False
        self.blocks_compiled = False  # set by compile_blocks
        self._inv_freq = {}  # (layer type, device) -> fp32 tensor; see inv_freq()
        self.init_weights()
        self.tie_weights()

    def tie_weights(self):
        """Share the embedding with lm_head when the config says so (Gemma 3, Llama 3.2 1B/3B)."""
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    @torch.no_grad()
    def init_weights(self):
        """Random weights as HF initialises them (normal(0, 0.02), norms at identity); for models built
        without a checkpoint (tests, benchmarks). load_pretrained overwrites everything."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.normal_(0.0, 0.02)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
            elif isinstance(module, RMSNorm) and module.weight is not None:
                module.weight.fill_(0.0 if module.plus_one else 1.0)

    def inv_freq(self, kind: str, device: torch.device) -> torch.Tensor:
        """RoPE inverse frequencies of one layer type, fp32, made once per device. Not a buffer: model.to()
        would cast it to bf16 (too coarse for long positions); and not rebuilt per forward: copying it
        from host memory to a GPU makes the host wait for the GPU every step."""
        key = (kind, str(device))
        if key not in self._inv_freq:
            head_dim = self.config.head_dim_of(kind)
            self._inv_freq[key] = rope_inv_freq(head_dim, self.config.rope_parameters[kind]).to(device)
        return self._inv_freq[key]

    def compile_blocks(self, **options):
        """torch.compile each block (train.py --compile); `options` go to torch.compile. All blocks run
        Block.forward, so they share a few compiled variants instead of one compile of the whole model:
        one per layer type and per whether the block's input needs a gradient (not the first block's under
        LoRA), each recompiled once with dynamic shapes when the batch shape first changes; Gemma 4's
        KV-shared layers (no k/v, wider MLP, other inputs) are variants of their own. Dynamo allows 8
        variants per code (torch._dynamo.config.recompile_limit) and runs any further one eagerly, so the
        limit is raised to what these blocks need (Gemma 4 E2B: 10). Compiled blocks attend to packed rows
        with one masked kernel, not per sequence (attention.py, path (a'))."""
        kinds = {(block.layer_type, block.self_attn.k_proj is None) for block in self.model.layers}
        needed = 2 * (len(kinds) + 1)  # + the first block's; each once more with dynamic shapes
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, needed)
        for block in self.model.layers:
            block.compile(**options)
        self.blocks_compiled = True

    def new_kv_cache(self, batch_size: int, max_len: int) -> KVCache:
        """Slots for every layer that computes its own keys and values (KV-shared layers read their source's)."""
        weight, config = self.model.embed_tokens.weight, self.config
        shapes = [(config.kv_heads_of(kind), config.head_dim_of(kind)) if config.kv_source(i) == i else None
                  for i, kind in enumerate(config.layer_types)]
        return KVCache(shapes, batch_size, max_len, weight.device, weight.dtype)

    def forward(self, input_ids, position_ids=None, cu_seqlens=None, attention_mask=None, kv_cache=None,
                max_seqlen=None):
        return self.output(self.hidden_states(input_ids, position_ids, cu_seqlens, attention_mask, kv_cache,
                                              max_seqlen))

    def output(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(hidden)
        cap = self.config.final_logit_softcapping
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def hidden_states(self, input_ids, position_ids=None, cu_seqlens=None, attention_mask=None,
                      kv_cache=None, max_seqlen=None, positions=None) -> torch.Tensor:
        config = self.config
        batch, seqlen = input_ids.shape
        x = self.model.embed_tokens(input_ids)
        if config.scale_embeddings:
            # Gemma: multiply by sqrt(hidden) rounded to the compute dtype first, as HF does (in bf16,
            # sqrt(640) = 25.30 becomes 25.25); a 0-dim CPU tensor is a GPU kernel's scalar argument: no host sync
            x = x * torch.tensor(config.hidden_size ** 0.5).to(x.dtype)
        per_layer = None  # Gemma 4 E models: [B, T, layers, width] of per-layer inputs (gemma4.py)
        if config.hidden_size_per_layer_input:
            per_layer = per_layer_inputs(self.model, config, input_ids, x)
        plan = plan_attention(batch, seqlen, x.device, x.dtype, config, cu_seqlens, attention_mask, kv_cache,
                              max_seqlen, per_segment=not self.blocks_compiled)
        if position_ids is None:
            position_ids = default_position_ids(batch, seqlen, x.device, cu_seqlens, attention_mask, kv_cache)
        rope = {kind: rope_cos_sin(position_ids, self.inv_freq(kind, x.device), x.dtype)
                for kind in config.rope_parameters if kind in config.layer_types}

        recompute = self.gradient_checkpointing and torch.is_grad_enabled() and kv_cache is None
        # positions: computed by the last block alone (last_rows), or selected from the final states
        last_rows = (positions is not None and positions.numel() > 0 and LAST_BLOCK_ROWS
                     and not self.blocks_compiled and plan_rows(plan, positions))
        shared_kv = {}  # layer index -> its (k, v), for the layers that reuse them (Gemma 4)
        last = len(self.model.layers) - 1
        for i, layer in enumerate(self.model.layers):
            inputs = (x, rope[layer.layer_type], plan, shared_kv.get(layer.self_attn.kv_layer),
                      None if per_layer is None else per_layer[:, :, i],
                      positions if last_rows and i == last else None)
            x, kv = checkpoint(layer, *inputs, use_reentrant=False) if recompute else layer(*inputs)
            if i in self.kv_shared_from:
                shared_kv[i] = kv
        if kv_cache is not None:
            kv_cache.length += seqlen
        if positions is None:
            return self.model.norm(x)
        return self.model.norm(x if last_rows else take_rows(x, positions))[0]


def default_position_ids(batch, seqlen, device, cu_seqlens=None, attention_mask=None, kv_cache=None):
    """Positions when the caller gives none: per packed sequence, per real token, or per row."""
    if kv_cache is not None:  # plan_attention has already recorded this call's tokens in kv_cache.valid
        start = kv_cache.length
        counted = kv_cache.valid[:, :start + seqlen].long().cumsum(-1) - 1
        return counted[:, start:].clamp(min=0)
    if attention_mask is not None:
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    if cu_seqlens is not None:
        cu = cu_seqlens.to(device=device, dtype=torch.int64)
        tokens = torch.arange(batch * seqlen, device=device)
        seq = torch.searchsorted(cu, tokens, right=True) - 1
        return (tokens - cu[seq]).view(batch, seqlen)  # tokens after the last bound: one more sequence
    return torch.arange(seqlen, device=device).expand(batch, seqlen)
