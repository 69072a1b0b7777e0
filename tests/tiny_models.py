"""Tiny random Gemma 3 / Llama 3 models built with transformers (the oracle) and saved to disk."""

import torch

VOCAB = 128


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
