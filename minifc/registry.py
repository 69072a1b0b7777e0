"""The registry of supported checkpoints: short names for `--model`, and resolving a --model value.

`MODELS` maps the short names accepted by `--model` to a hub id, a chat format and the real
architecture numbers (copied from each checkpoint's config.json, linked in a comment), so that
`ModelConfig.from_hf(MODELS[name].hf_config)` gives the full-size configuration offline (benchmarks
build random-weight models from it; nothing is downloaded).
"""

import re
from dataclasses import dataclass
from pathlib import Path

from .config import _GEMMA4_ROPE

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
    "gemma-4-31b": _ModelInfo("google/gemma-4-31B-it", "gemma4-31b", _gemma4(
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
