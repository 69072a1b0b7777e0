"""Tiny random Gemma 3 / Llama 3 models, and Qwen3 / Qwen2.5 at their real widths cut to 2 layers, built
with transformers (the oracle) and saved to disk."""

import json

import torch

VOCAB = 128
QWEN_VOCAB = 4096  # the real 151936 would be 0.6 GB of fp32 embedding per model


def gemma_config(**overrides):
    from transformers import Gemma3TextConfig
    # 7 layers: sliding 0-4, full 5, sliding 6; window 4 (sequences are several times longer);
    # query_pre_attn_scalar != head_dim; linear RoPE scaling on full layers as on Gemma 3 4B+.
    kwargs = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=7,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=4,
                  query_pre_attn_scalar=24, rope_scaling={"rope_type": "linear", "factor": 8.0},
                  max_position_embeddings=256, attn_implementation="eager")
    return Gemma3TextConfig(**{**kwargs, **overrides})


def llama_config(**overrides):
    from transformers import LlamaConfig
    # GQA 4/2; llama3 scaling with original context 64 so that the three frequency bands
    # (kept, interpolated, divided) all occur for head_dim 16, and tests run past position 64.
    kwargs = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, rope_theta=500000.0, rms_norm_eps=1e-5,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                  max_position_embeddings=256, tie_word_embeddings=True, attn_implementation="eager")
    return LlamaConfig(**{**kwargs, **overrides})


def qwen_hub_config(short_name, **overrides) -> dict:
    """A Qwen registry entry's config.json keys (the hub's: rope_theta, rope_scaling null,
    use_sliding_window false), at its real widths but 2 layers and a QWEN_VOCAB vocabulary."""
    from minifc.config import MODELS
    hub = {**MODELS[short_name].hf_config, "num_hidden_layers": 2, "vocab_size": QWEN_VOCAB, **overrides}
    hub.pop("bos_token_id"), hub.pop("eos_token_id")  # beyond the cut vocabulary (transformers warns)
    return hub


def qwen_config(short_name, **overrides):
    """transformers' config (Qwen3Config / Qwen2Config) built from qwen_hub_config's keys."""
    from transformers import AutoConfig
    return AutoConfig.for_model(**qwen_hub_config(short_name, **overrides), attn_implementation="eager")


def write_hub_style_config(directory, hub: dict):
    """Replace the config.json save_pretrained wrote (newer keys: rope_parameters, layer_types) with the
    hub's layout, so that loading from the keys of the published files is tested."""
    (directory / "config.json").write_text(json.dumps({**hub, "architectures": [_ARCHITECTURES[hub["model_type"]]]}))


_ARCHITECTURES = {"qwen3": "Qwen3ForCausalLM", "qwen2": "Qwen2ForCausalLM"}


def gemma4_config(**overrides):
    from transformers import Gemma4TextConfig
    # 5 layers: sliding 0, full 1, sliding 2 own their K/V; the last 2 (sliding 3, full 4) reuse those of
    # layers 2 and 1 and have double-wide MLPs. Window 4; global layers: head size 32 (sliding 16), RoPE on
    # a quarter of it; per-layer embeddings of 8 per layer; final logits soft-capped as in the real ones.
    kwargs = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=5,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, global_head_dim=32,
                  layer_types=["sliding_attention", "full_attention", "sliding_attention", "sliding_attention",
                               "full_attention"],
                  num_kv_shared_layers=2, use_double_wide_mlp=True, sliding_window=4,
                  hidden_size_per_layer_input=8, vocab_size_per_layer_input=VOCAB, final_logit_softcapping=30.0,
                  max_position_embeddings=256, attn_implementation="eager")
    return Gemma4TextConfig(**{**kwargs, **overrides})


def gemma4_31b_like_config(**overrides):
    """Gemma 4 31B's attention: global layers with fewer K/V heads and no v_proj; no sharing, no PLE."""
    return gemma4_config(**{**dict(attention_k_eq_v=True, num_global_key_value_heads=1, num_kv_shared_layers=0,
                                   use_double_wide_mlp=False, hidden_size_per_layer_input=0), **overrides})


def hf_model(config, seed=0, std=0.2, skip_init=False):
    """An HF model with every parameter random (norm weights too, so 1+w vs w matters), and Gemma 4's
    per-layer scalars (buffers) too. skip_init: leave out transformers' own initialisation, time wasted on
    large models (only where the model makes its buffers in __init__: Gemma 4 does, Gemma 3 does not)."""
    from contextlib import nullcontext
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights
    torch.manual_seed(seed)
    with no_init_weights() if skip_init else nullcontext():
        model = AutoModelForCausalLM.from_config(config).eval()
    model.tie_weights()  # no_init_weights leaves them untied
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, std)
        for name, buffer in model.named_buffers():
            if name.endswith("layer_scalar"):
                buffer.uniform_(0.5, 1.5)
    return model


def save(model, directory, **kwargs):
    model.save_pretrained(directory, **kwargs)
    return directory


def randomize_b(model, seed=0):
    """Non-zero LoRA B matrices (as after training), so an adapter changes the output."""
    from minifc.lora import lora_layers
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.weight.copy_(torch.randn(layer.lora_B.weight.shape, generator=g) * 0.2)


def max_diff(a, b):
    return (a - b).abs().max().item()
