"""Model configuration: one dataclass for every family, and the registry of supported checkpoints.

`ModelConfig` holds every number the decoder in model.py needs. Llama 3.x, Gemma 3, Qwen3 and Qwen2.5
differ only by its family flags (and Gemma's sliding-window layers), never by subclasses.

`ModelConfig.from_hf(config_json_dict)` reads a Hugging Face config.json. It understands both the key
names found in the hub's files (`rope_theta`, `rope_scaling`, `rope_local_base_freq`,
`sliding_window_pattern`, a multimodal `gemma3` config with a nested `text_config`) and the names that
newer transformers versions write (`rope_parameters`, `layer_types`).

`MODELS` maps the short names accepted by `--model` to a hub id, a chat format and the real
architecture numbers (copied from each checkpoint's config.json, linked in a comment), so that
`ModelConfig.from_hf(MODELS[name].hf_config)` gives the full-size configuration offline (benchmarks
build random-weight models from it; nothing is downloaded).
"""

import re
from dataclasses import dataclass
from pathlib import Path

# rope types model.py implements (see model.rope_inv_freq)
_ROPE_TYPES = ("default", "linear", "llama3", "proportional")
_MODEL_TYPES = ("llama (Llama 3.x)", "gemma3_text (Gemma 3 1B/270M, FunctionGemma)",
                "gemma3 (Gemma 3 4B/12B/27B, text part only)",
                "gemma4_text / gemma4 (Gemma 4 E2B/E4B/31B, text part only)", "qwen3 (Qwen3 dense)",
                "qwen2 (Qwen2.5)")


@dataclass
class ModelConfig:
    model_type: str                     # "llama", "gemma3_text" (a multimodal config unwrapped), "qwen3", "qwen2"
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    # RoPE per layer type, HF's newer layout: {"full_attention": {"rope_type": "llama3", "rope_theta": ...,
    # "factor": ...}, "sliding_attention": {...}}. Llama has only "full_attention".
    rope_parameters: dict
    layer_types: tuple[str, ...]        # one per layer: "full_attention" or "sliding_attention"
    sliding_window: int | None = None   # a sliding layer's query sees itself and the window-1 tokens before it
    query_pre_attn_scalar: float | None = None  # attention scale is this ** -0.5 (None: head_dim)
    attention_bias: bool = False        # bias on q, k, v and o_proj (Llama, Qwen3 configs may set it)
    qkv_bias: bool = False              # Qwen2.5: bias on q, k and v_proj only, never on o_proj
    mlp_bias: bool = False
    final_logit_softcapping: float | None = None  # logits = tanh(logits / cap) * cap when set
    # --- family flags (set by from_hf from model_type) ---
    hidden_act: str = "silu"            # "silu" (Llama SwiGLU) or "gelu_pytorch_tanh" (Gemma GeGLU)
    norm_plus_one: bool = False         # Gemma RMSNorm: fp32 compute, output * (1 + weight)
    scale_embeddings: bool = False      # Gemma: embeddings * sqrt(hidden_size), scale cast to compute dtype
    qk_norm: bool = False               # Gemma 3, Qwen3: RMSNorm on each query and key head, before RoPE
    sandwich_norm: bool = False         # Gemma: post-attention and pre/post-feedforward norms too
    # --- Gemma 4 (set by _gemma4_from_hf; off for the other families) ---
    norm_fp32_weight: bool = False      # RMSNorm: normed * weight in fp32, then cast (Llama casts first)
    global_head_dim: int | None = None  # head size of full-attention layers (None: head_dim)
    num_global_key_value_heads: int | None = None  # K/V heads of full-attention layers (None: as sliding)
    attention_k_eq_v: bool = False      # full-attention layers have no v_proj: values come from k_proj
    v_norm: bool = False                # a scale-free RMSNorm on each value head
    num_kv_shared_layers: int = 0       # the last N layers attend with the K/V of an earlier layer (kv_source)
    double_wide_mlp: bool = False       # KV-shared layers have 2 * intermediate_size
    hidden_size_per_layer_input: int = 0  # width of the per-layer embeddings (PLE) per layer; 0: none
    vocab_size_per_layer_input: int = 0   # rows of the per-layer embedding table
    layer_scalar: bool = False          # each layer's output times a stored scalar (a buffer, as in HF)

    def architecture(self) -> dict:
        """The numbers that make two models interchangeable for an adapter (its shapes, the vocabulary):
        recorded beside an adapter (minifc.json) and compared when it is loaded (adapters.load_adapter)."""
        return {key: getattr(self, key) for key in _ARCHITECTURE}

    @property
    def attention_scale(self) -> float:
        scalar = self.query_pre_attn_scalar if self.query_pre_attn_scalar is not None else self.head_dim
        return scalar ** -0.5

    def head_dim_of(self, layer_type: str) -> int:
        return self.global_head_dim or self.head_dim if layer_type == "full_attention" else self.head_dim

    def kv_heads_of(self, layer_type: str) -> int:
        return self.num_global_key_value_heads or self.num_key_value_heads if layer_type == "full_attention" \
            else self.num_key_value_heads

    def kv_source(self, layer_idx: int) -> int:
        """The layer whose keys and values layer `layer_idx` attends with: itself, or for one of the last
        num_kv_shared_layers layers (Gemma 4), the last layer of its type before them."""
        first_shared = self.num_hidden_layers - self.num_kv_shared_layers
        if layer_idx < first_shared:
            return layer_idx
        kind = self.layer_types[layer_idx]
        return max(i for i in range(first_shared) if self.layer_types[i] == kind)

    @classmethod
    def from_hf(cls, hf: dict, source: str = "config.json") -> "ModelConfig":
        """Build from a Hugging Face config.json dict. `source` names the file in error messages."""
        hf = text_config(hf)
        model_type = hf.get("model_type")
        readers = {"gemma3_text": _gemma3_from_hf, "llama": _llama_from_hf, "qwen3": _qwen_from_hf,
                   "qwen2": _qwen_from_hf, "gemma4_text": _gemma4_from_hf}
        if model_type not in readers:
            raise ValueError(
                f"{source}: unsupported architecture model_type={model_type!r} "
                f"(architectures={hf.get('architectures')}). minifc supports: {', '.join(_MODEL_TYPES)}.")
        for key in _SIZES:  # checked first: the rest of the reading computes with them
            if hf.get(key) is not None and (not isinstance(hf[key], int) or isinstance(hf[key], bool) or hf[key] < 1):
                raise ValueError(f"{source}: {key} must be a positive integer, got {hf[key]!r}")
        return readers[model_type](hf, source)


_ARCHITECTURE = ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                 "num_attention_heads", "num_key_value_heads", "head_dim")
_SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
          "num_key_value_heads", "head_dim", "max_position_embeddings", "sliding_window")


# multimodal model_type -> (its text decoder's model_type, the transformers class that runs it alone)
_MULTIMODAL = {"gemma3": ("gemma3_text", "Gemma3ForCausalLM"), "gemma4": ("gemma4_text", "Gemma4ForCausalLM")}


def text_config(hf: dict) -> dict:
    """A multimodal Gemma 3 / Gemma 4 config.json -> the config of its text decoder, as transformers'
    Gemma3ForCausalLM / Gemma4ForCausalLM writes it; any other config unchanged (a copy)."""
    if hf.get("model_type") not in _MULTIMODAL:
        return dict(hf)
    model_type, architecture = _MULTIMODAL[hf["model_type"]]
    text = dict(hf.get("text_config") or {})
    text.setdefault("tie_word_embeddings", hf.get("tie_word_embeddings", True))
    return {**text, "model_type": model_type, "architectures": [architecture]}


def _rope_entry(params: dict | None, theta: float, source: str) -> dict:
    """Normalise one rope dict (old `rope_scaling` or new `rope_parameters` entry) and check its type."""
    entry = {"rope_type": "default", "rope_theta": float(theta)}
    for key, value in (params or {}).items():
        entry["rope_type" if key == "type" else key] = value  # very old configs wrote "type"
    entry["rope_theta"] = float(entry["rope_theta"])
    if entry["rope_type"] not in _ROPE_TYPES:
        raise ValueError(f"{source}: rope_type {entry['rope_type']!r} is not supported "
                         f"(supported: {', '.join(_ROPE_TYPES)})")
    return entry


def _common(hf: dict, defaults: dict) -> dict:
    get = lambda key: hf[key] if hf.get(key) is not None else defaults.get(key)
    heads = get("num_attention_heads")
    return dict(
        vocab_size=get("vocab_size"), hidden_size=get("hidden_size"),
        intermediate_size=get("intermediate_size"), num_hidden_layers=get("num_hidden_layers"),
        num_attention_heads=heads, num_key_value_heads=get("num_key_value_heads") or heads,
        head_dim=get("head_dim") or get("hidden_size") // heads, rms_norm_eps=float(get("rms_norm_eps")),
        max_position_embeddings=get("max_position_embeddings"),
        tie_word_embeddings=bool(get("tie_word_embeddings")),
        attention_bias=bool(hf.get("attention_bias")), mlp_bias=bool(hf.get("mlp_bias")),
        final_logit_softcapping=hf.get("final_logit_softcapping"),
        # attn_logit_softcapping is deliberately not read: Gemma 3 sets it to null, and transformers'
        # Gemma3Attention never applies it even when set (only Gemma 2 did), so neither do we.
    )


# transformers' LlamaConfig defaults, used where a config.json leaves a key out
_LLAMA_DEFAULTS = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, rms_norm_eps=1e-6, max_position_embeddings=2048,
                       tie_word_embeddings=False, rope_theta=10000.0, hidden_act="silu")


def _llama_from_hf(hf: dict, source: str) -> ModelConfig:
    common = _common(hf, _LLAMA_DEFAULTS)
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"{source}: hidden_act {hf['hidden_act']!r} is not supported for llama (only silu)")
    params = hf.get("rope_parameters") or hf.get("rope_scaling")  # newer transformers, or the hub files
    rope = _rope_entry(params, hf.get("rope_theta", _LLAMA_DEFAULTS["rope_theta"]), source)
    return ModelConfig(model_type="llama", **common, rope_parameters={"full_attention": rope},
                       layer_types=("full_attention",) * common["num_hidden_layers"], hidden_act="silu")


# transformers' Gemma3TextConfig defaults. The multimodal configs (4B/12B/27B) rely on them: their
# text_config lists only the keys that differ (e.g. 4B has no num_attention_heads: 8 comes from here).
_GEMMA3_DEFAULTS = dict(vocab_size=262_208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                        num_attention_heads=8, num_key_value_heads=4, head_dim=256, rms_norm_eps=1e-6,
                        max_position_embeddings=131_072, tie_word_embeddings=True, rope_theta=1_000_000.0,
                        rope_local_base_freq=10_000.0, query_pre_attn_scalar=256, sliding_window=4096,
                        sliding_window_pattern=6)


def _gemma3_from_hf(hf: dict, source: str) -> ModelConfig:
    if hf.get("use_bidirectional_attention"):
        raise ValueError(f"{source}: use_bidirectional_attention=true (an embedding model) is not supported")
    if hf.get("hidden_activation", "gelu_pytorch_tanh") != "gelu_pytorch_tanh":
        raise ValueError(f"{source}: hidden_activation {hf['hidden_activation']!r} is not supported "
                         "(Gemma 3 uses gelu_pytorch_tanh)")
    common = _common(hf, _GEMMA3_DEFAULTS)
    n = common["num_hidden_layers"]
    get = lambda key: hf[key] if hf.get(key) is not None else _GEMMA3_DEFAULTS[key]

    layer_types = hf.get("layer_types")
    if layer_types is None:  # hub files: every `pattern`-th layer is global, the rest slide
        pattern = hf.get("sliding_window_pattern") or hf.get("_sliding_window_pattern") or 6
        layer_types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
    if len(layer_types) != n or set(layer_types) - {"sliding_attention", "full_attention"}:
        raise ValueError(f"{source}: layer_types must list {n} entries of 'sliding_attention'/'full_attention'")

    params = hf.get("rope_parameters")  # newer transformers: one rope dict per layer type
    if not params or "full_attention" not in params:
        # hub files: rope_theta (+ rope_scaling, e.g. linear x8 on 4B+) for global layers,
        # rope_local_base_freq (10k, never scaled) for sliding layers
        params = {"full_attention": hf.get("rope_scaling")}
    rope = {"full_attention": _rope_entry(params["full_attention"], get("rope_theta"), source),
            "sliding_attention": _rope_entry(params.get("sliding_attention"), get("rope_local_base_freq"), source)}
    return ModelConfig(
        model_type="gemma3_text", **common, rope_parameters=rope, layer_types=tuple(layer_types),
        sliding_window=get("sliding_window"), query_pre_attn_scalar=get("query_pre_attn_scalar"),
        hidden_act="gelu_pytorch_tanh", norm_plus_one=True, scale_embeddings=True, qk_norm=True,
        sandwich_norm=True)


# transformers' Gemma4TextConfig defaults (global_head_dim: the default its __post_init__ pops)
_GEMMA4_DEFAULTS = dict(vocab_size=262_144, hidden_size=2304, intermediate_size=9216, num_hidden_layers=30,
                        num_attention_heads=8, num_key_value_heads=4, head_dim=256, rms_norm_eps=1e-6,
                        max_position_embeddings=131_072, tie_word_embeddings=True, sliding_window=512,
                        global_head_dim=512, vocab_size_per_layer_input=262_144, hidden_size_per_layer_input=256)
_GEMMA4_ROPE = {"sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1e6}}


def _global_layer_overrides(per_layer: dict, layer_types: list, source: str) -> tuple[int | None, int | None]:
    """per_layer_config {"5": {"head_dim": 512, ...}, ...} -> (head_dim, num_key_value_heads) of the
    full-attention layers; minifc supports only the same overrides on every one of them, none elsewhere."""
    overrides = {int(i): dict(values) for i, values in per_layer.items()}
    full = [i for i, kind in enumerate(layer_types) if kind == "full_attention"]
    first = overrides.get(full[0], {})
    if (set(overrides) - set(full) or any(overrides.get(i, {}) != first for i in full)
            or set(first) - {"head_dim", "num_key_value_heads"}):
        raise ValueError(f"{source}: per_layer_config {per_layer} is not supported: minifc reads only the same "
                         "head_dim / num_key_value_heads on every full-attention layer (as Gemma 4 has)")
    return first.get("head_dim"), first.get("num_key_value_heads")


def _gemma4_from_hf(hf: dict, source: str) -> ModelConfig:
    if hf.get("enable_moe_block") or hf.get("num_experts"):
        raise ValueError(f"{source}: Gemma 4 with mixture-of-experts blocks (enable_moe_block, num_experts="
                         f"{hf.get('num_experts')}: gemma-4-26B-A4B) is not supported yet; the dense Gemma 4 "
                         "models are (gemma-4-e2b, gemma-4-e4b, gemma-4-31b)")
    if hf.get("use_bidirectional_attention") == "all":
        raise ValueError(f"{source}: use_bidirectional_attention='all' (an encoder) is not supported")
    if hf.get("hidden_activation", "gelu_pytorch_tanh") != "gelu_pytorch_tanh":
        raise ValueError(f"{source}: hidden_activation {hf['hidden_activation']!r} is not supported "
                         "(Gemma 4 uses gelu_pytorch_tanh)")
    common = _common(hf, _GEMMA4_DEFAULTS)
    get = lambda key: hf[key] if hf.get(key) is not None else _GEMMA4_DEFAULTS[key]
    n = common["num_hidden_layers"]
    layer_types = list(hf.get("layer_types") or
                       ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(n)])
    if len(layer_types) != n or set(layer_types) - {"sliding_attention", "full_attention"}:
        raise ValueError(f"{source}: layer_types must list {n} entries of 'sliding_attention'/'full_attention'")
    layer_types[-1] = "full_attention"  # as transformers forces it
    shared = hf.get("num_kv_shared_layers") or 0
    if not 0 <= shared < n or set(layer_types[n - shared:]) - set(layer_types[:n - shared]):
        raise ValueError(f"{source}: num_kv_shared_layers={shared}: each of the last {shared} layers needs an "
                         f"earlier layer of its type to share keys and values with (of {n} layers)")
    params = hf.get("rope_parameters") or _GEMMA4_ROPE
    rope = {kind: _rope_entry(params.get(kind), _GEMMA4_ROPE[kind]["rope_theta"], source) for kind in _GEMMA4_ROPE}
    k_eq_v = bool(hf.get("attention_k_eq_v"))
    # transformers gives full-attention layers their own K/V head count only with attention_k_eq_v
    global_head_dim, global_kv_heads = get("global_head_dim"), hf.get("num_global_key_value_heads") if k_eq_v else None
    if hf.get("per_layer_config"):  # what transformers 5.2x writes instead: overrides per layer index
        global_head_dim, global_kv_heads = _global_layer_overrides(hf["per_layer_config"], layer_types, source)
        global_head_dim = global_head_dim or common["head_dim"]
    return ModelConfig(
        model_type="gemma4_text", **common, rope_parameters=rope, layer_types=tuple(layer_types),
        sliding_window=get("sliding_window"), query_pre_attn_scalar=1.0,  # attention scale 1: q/k are normed
        hidden_act="gelu_pytorch_tanh", norm_fp32_weight=True, scale_embeddings=True, qk_norm=True,
        sandwich_norm=True, global_head_dim=global_head_dim, num_global_key_value_heads=global_kv_heads,
        attention_k_eq_v=k_eq_v, v_norm=True, num_kv_shared_layers=shared,
        double_wide_mlp=bool(hf.get("use_double_wide_mlp")),
        hidden_size_per_layer_input=get("hidden_size_per_layer_input"),
        vocab_size_per_layer_input=get("vocab_size_per_layer_input"), layer_scalar=True)


# transformers' Qwen3Config / Qwen2Config defaults (they differ only in head_dim: Qwen3Config has its own
# field, 128; Qwen2 divides hidden_size by the heads)
_QWEN_DEFAULTS = dict(vocab_size=151_936, hidden_size=4096, intermediate_size=22016, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, rms_norm_eps=1e-6,
                      max_position_embeddings=32768, tie_word_embeddings=False, rope_theta=10_000.0)


def _qwen_from_hf(hf: dict, source: str) -> ModelConfig:
    """Qwen3 and Qwen2.5: Llama's block and plain RMSNorm; Qwen3 adds an RMSNorm on each query and key
    head (weights not plus-one, before RoPE) and an explicit head_dim; Qwen2.5 has a bias on q, k, v
    but not on o_proj (Qwen2Attention hard-codes it and reads no bias key)."""
    model_type = hf["model_type"]
    defaults = {**_QWEN_DEFAULTS, "head_dim": 128} if model_type == "qwen3" else _QWEN_DEFAULTS
    common = _common(hf, defaults)
    n = common["num_hidden_layers"]
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"{source}: hidden_act {hf['hidden_act']!r} is not supported for {model_type} (only silu)")
    # Sliding-window attention is off in every released Qwen3 / Qwen2.5 checkpoint (use_sliding_window
    # false; sliding_window and max_window_layers are then ignored), and minifc does not implement Qwen's
    # variant of it (the layers from max_window_layers on would slide).
    layer_types = hf.get("layer_types") or ["full_attention"] * n
    if hf.get("use_sliding_window") or set(layer_types) != {"full_attention"} or len(layer_types) != n:
        raise ValueError(f"{source}: sliding-window attention (use_sliding_window=true or 'sliding_attention' "
                         f"in layer_types) is not supported for {model_type}; released Qwen checkpoints have "
                         "use_sliding_window=false: set it to false and layer_types to full_attention for "
                         f"all {n} layers")
    params = hf.get("rope_parameters") or hf.get("rope_scaling")  # newer transformers, or the hub files
    if params and "full_attention" in params:  # a per-layer-type rope dict
        params = params["full_attention"]
    rope = _rope_entry(params, hf.get("rope_theta") or defaults["rope_theta"], source)
    qwen3 = model_type == "qwen3"
    return ModelConfig(
        model_type=model_type, **{**common, "attention_bias": qwen3 and common["attention_bias"],
                                  "mlp_bias": False, "final_logit_softcapping": None},
        rope_parameters={"full_attention": rope}, layer_types=("full_attention",) * n,
        qkv_bias=not qwen3, qk_norm=qwen3, hidden_act="silu")


# ----------------------------------------------------------------------------------------------------
# Registry. Numbers are those of each checkpoint's config.json (the linked file); keys a file leaves
# out fall back to transformers' defaults exactly as above.


@dataclass(frozen=True)
class _ModelInfo:
    hub_id: str
    chat_format: str
    hf_config: dict  # the architecture keys of the hub's config.json


def _gemma3_text(**kw) -> dict:
    base = dict(model_type="gemma3_text", head_dim=256, query_pre_attn_scalar=256, rms_norm_eps=1e-6,
                rope_theta=1_000_000.0, rope_local_base_freq=10_000.0, sliding_window_pattern=6,
                tie_word_embeddings=True, bos_token_id=2, eos_token_id=[1, 106], pad_token_id=0)
    return {**base, **kw}


def _gemma3_multimodal(**text) -> dict:
    # 4B/12B/27B: Gemma3ForConditionalGeneration; only the text decoder is used. vocab 262208 includes
    # the image tokens; global layers use linear RoPE scaling x8.
    text = dict(vocab_size=262_208, max_position_embeddings=131_072, sliding_window=1024,
                rope_scaling={"rope_type": "linear", "factor": 8.0}, **text)
    return {"model_type": "gemma3", "text_config": _gemma3_text(**text)}


def _gemma4(every: int, **text) -> dict:
    # Gemma4ForConditionalGeneration (text, vision, and audio on E2B/E4B); only the text decoder is used.
    # Every `every`-th layer is global (head size 512, proportional RoPE on a quarter of it), the rest slide.
    layers = text["num_hidden_layers"]
    layer_types = ["sliding_attention" if (i + 1) % every else "full_attention" for i in range(layers)]
    text = dict(model_type="gemma4_text", vocab_size=262_144, head_dim=256, global_head_dim=512, rms_norm_eps=1e-6,
                final_logit_softcapping=30.0, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                vocab_size_per_layer_input=262_144, layer_types=layer_types, rope_parameters=_GEMMA4_ROPE,
                bos_token_id=2, eos_token_id=1, pad_token_id=0, **text)
    return {"model_type": "gemma4", "text_config": text, "tie_word_embeddings": True, "eos_token_id": [1, 106]}


def _llama3(**kw) -> dict:
    base = dict(model_type="llama", vocab_size=128_256, rms_norm_eps=1e-5, rope_theta=500_000.0,
                max_position_embeddings=131_072, num_key_value_heads=8, bos_token_id=128_000,
                eos_token_id=[128_001, 128_008, 128_009])
    return {**base, **kw}


def _qwen3(**kw) -> dict:
    base = dict(model_type="qwen3", vocab_size=151_936, head_dim=128, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
                rope_scaling=None, max_position_embeddings=40_960, num_key_value_heads=8, attention_bias=False,
                use_sliding_window=False, sliding_window=None, bos_token_id=151_643, eos_token_id=151_645)
    return {**base, **kw}


def _qwen25(**kw) -> dict:
    # no head_dim key: hidden_size / num_attention_heads (64 on 0.5B/1.5B, 128 on 3B/7B)
    base = dict(model_type="qwen2", vocab_size=151_936, rms_norm_eps=1e-6, rope_theta=1_000_000.0,
                max_position_embeddings=32_768, use_sliding_window=False, bos_token_id=151_643,
                eos_token_id=151_645)
    return {**base, **kw}


def _llama3_rope(factor: float) -> dict:
    return {"rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}


MODELS: dict[str, _ModelInfo] = {
    # https://huggingface.co/google/functiongemma-270m-it/blob/main/config.json (same decoder as gemma-3-270m)
    "functiongemma-270m": _ModelInfo("google/functiongemma-270m-it", "functiongemma", _gemma3_text(
        vocab_size=262_144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=32_768, sliding_window=512)),
    # https://huggingface.co/google/gemma-3-270m-it/blob/main/config.json
    "gemma-3-270m": _ModelInfo("google/gemma-3-270m-it", "gemma3", _gemma3_text(
        vocab_size=262_144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=32_768, sliding_window=512)),
    # https://huggingface.co/google/gemma-3-1b-it/blob/main/config.json
    "gemma-3-1b": _ModelInfo("google/gemma-3-1b-it", "gemma3", _gemma3_text(
        vocab_size=262_144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=32_768, sliding_window=512)),
    # https://huggingface.co/google/gemma-3-4b-it/blob/main/config.json (text_config)
    "gemma-3-4b": _ModelInfo("google/gemma-3-4b-it", "gemma3", _gemma3_multimodal(
        hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8,
        num_key_value_heads=4)),
    # https://huggingface.co/google/gemma-3-12b-it/blob/main/config.json (text_config)
    "gemma-3-12b": _ModelInfo("google/gemma-3-12b-it", "gemma3", _gemma3_multimodal(
        hidden_size=3840, intermediate_size=15360, num_hidden_layers=48, num_attention_heads=16,
        num_key_value_heads=8)),
    # https://huggingface.co/google/gemma-3-27b-it/blob/main/config.json (text_config; head_dim 128 and
    # query_pre_attn_scalar 168 = hidden_size / num_attention_heads, unlike the smaller models)
    "gemma-3-27b": _ModelInfo("google/gemma-3-27b-it", "gemma3", _gemma3_multimodal(
        hidden_size=5376, intermediate_size=21504, num_hidden_layers=62, num_attention_heads=32,
        num_key_value_heads=16, head_dim=128, query_pre_attn_scalar=168)),
    # https://huggingface.co/google/gemma-4-E2B-it/blob/main/config.json (text_config): the last 20 layers
    # reuse the K/V of earlier ones and have double-wide MLPs; per-layer embeddings of 256 per layer
    "gemma-4-e2b": _ModelInfo("google/gemma-4-E2B-it", "gemma4", _gemma4(
        5, hidden_size=1536, intermediate_size=6144, num_hidden_layers=35, num_attention_heads=8,
        num_key_value_heads=1, num_kv_shared_layers=20, use_double_wide_mlp=True, hidden_size_per_layer_input=256,
        sliding_window=512, max_position_embeddings=131_072, attention_k_eq_v=False)),
    # https://huggingface.co/google/gemma-4-E4B-it/blob/main/config.json (text_config)
    "gemma-4-e4b": _ModelInfo("google/gemma-4-E4B-it", "gemma4", _gemma4(
        6, hidden_size=2560, intermediate_size=10240, num_hidden_layers=42, num_attention_heads=8,
        num_key_value_heads=2, num_kv_shared_layers=18, use_double_wide_mlp=False, hidden_size_per_layer_input=256,
        sliding_window=512, max_position_embeddings=131_072, attention_k_eq_v=False)),
    # https://huggingface.co/google/gemma-4-31B-it/blob/main/config.json (text_config): global layers have
    # 4 K/V heads and no v_proj (values = keys' projection); no KV sharing, no per-layer embeddings
    "gemma-4-31b": _ModelInfo("google/gemma-4-31B-it", "gemma4", _gemma4(
        6, hidden_size=5376, intermediate_size=21504, num_hidden_layers=60, num_attention_heads=32,
        num_key_value_heads=16, num_global_key_value_heads=4, attention_k_eq_v=True, num_kv_shared_layers=0,
        use_double_wide_mlp=False, hidden_size_per_layer_input=0, sliding_window=1024,
        max_position_embeddings=262_144)),
    # https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct/blob/main/config.json
    "llama-3.2-1b": _ModelInfo("meta-llama/Llama-3.2-1B-Instruct", "llama3.2", _llama3(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, head_dim=64,
        tie_word_embeddings=True, rope_scaling=_llama3_rope(32.0))),
    # https://huggingface.co/meta-llama/Llama-3.2-3B-Instruct/blob/main/config.json
    "llama-3.2-3b": _ModelInfo("meta-llama/Llama-3.2-3B-Instruct", "llama3.2", _llama3(
        hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24, head_dim=128,
        tie_word_embeddings=True, rope_scaling=_llama3_rope(32.0))),
    # https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/blob/main/config.json (untied lm_head)
    "llama-3.1-8b": _ModelInfo("meta-llama/Llama-3.1-8B-Instruct", "llama3.1", _llama3(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        tie_word_embeddings=False, rope_scaling=_llama3_rope(8.0))),
    # https://huggingface.co/Qwen/Qwen3-0.6B/blob/main/config.json (Qwen3 hybrid thinking: head_dim 128
    # is explicit, 16 x 128 = 2048 != hidden_size 1024)
    "qwen3-0.6b": _ModelInfo("Qwen/Qwen3-0.6B", "qwen3", _qwen3(
        hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
        tie_word_embeddings=True)),
    # https://huggingface.co/Qwen/Qwen3-1.7B/blob/main/config.json
    "qwen3-1.7b": _ModelInfo("Qwen/Qwen3-1.7B", "qwen3", _qwen3(
        hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
        tie_word_embeddings=True)),
    # https://huggingface.co/Qwen/Qwen3-4B/blob/main/config.json
    "qwen3-4b": _ModelInfo("Qwen/Qwen3-4B", "qwen3", _qwen3(
        hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
        tie_word_embeddings=True)),
    # https://huggingface.co/Qwen/Qwen3-8B/blob/main/config.json (untied lm_head from 8B on)
    "qwen3-8b": _ModelInfo("Qwen/Qwen3-8B", "qwen3", _qwen3(
        hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
        tie_word_embeddings=False)),
    # https://huggingface.co/Qwen/Qwen3-14B/blob/main/config.json
    "qwen3-14b": _ModelInfo("Qwen/Qwen3-14B", "qwen3", _qwen3(
        hidden_size=5120, intermediate_size=17408, num_hidden_layers=40, num_attention_heads=40,
        tie_word_embeddings=False)),
    # https://huggingface.co/Qwen/Qwen3-32B/blob/main/config.json
    "qwen3-32b": _ModelInfo("Qwen/Qwen3-32B", "qwen3", _qwen3(
        hidden_size=5120, intermediate_size=25600, num_hidden_layers=64, num_attention_heads=64,
        tie_word_embeddings=False)),
    # https://huggingface.co/Qwen/Qwen3-4B-Instruct-2507/blob/main/config.json (non-thinking; Qwen3-4B's
    # widths, 256K context: rope_theta 5e6)
    "qwen3-4b-2507": _ModelInfo("Qwen/Qwen3-4B-Instruct-2507", "qwen3-2507", _qwen3(
        hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
        tie_word_embeddings=True, rope_theta=5_000_000.0, max_position_embeddings=262_144)),
    # https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/config.json (bias on q, k, v)
    "qwen2.5-0.5b": _ModelInfo("Qwen/Qwen2.5-0.5B-Instruct", "qwen2.5", _qwen25(
        hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, tie_word_embeddings=True)),
    # https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct/blob/main/config.json
    "qwen2.5-1.5b": _ModelInfo("Qwen/Qwen2.5-1.5B-Instruct", "qwen2.5", _qwen25(
        hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
        num_key_value_heads=2, tie_word_embeddings=True)),
    # https://huggingface.co/Qwen/Qwen2.5-3B-Instruct/blob/main/config.json
    "qwen2.5-3b": _ModelInfo("Qwen/Qwen2.5-3B-Instruct", "qwen2.5", _qwen25(
        hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
        num_key_value_heads=2, tie_word_embeddings=True)),
    # https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/config.json (untied; vocab 152064, the
    # embedding padded beyond the tokenizer's 151665 tokens as on every Qwen2.5 from 7B on)
    "qwen2.5-7b": _ModelInfo("Qwen/Qwen2.5-7B-Instruct", "qwen2.5", _qwen25(
        hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, tie_word_embeddings=False, vocab_size=152_064)),
}


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_model_name(name: str) -> tuple[str, str | None]:
    """--model value -> (hub id or local directory, chat format name or None when unknown): a short name
    of MODELS gives its hub id and format, an existing directory is used as is, a hub id ("org/name") is
    passed through (with its format if the registry has it). Anything else raises, listing the short names."""
    if name in MODELS:
        return MODELS[name].hub_id, MODELS[name].chat_format
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser()), None
    if _HUB_ID.match(name):
        fmt = next((info.chat_format for info in MODELS.values() if info.hub_id == name), None)
        return name, fmt
    raise ValueError(f"--model {name!r} is neither a known short name, an existing directory, nor a hub id "
                     f"like 'org/name'. Known short names: {', '.join(MODELS)}")
