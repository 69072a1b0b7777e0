"""Merged Hugging Face export: transformers (the oracle) loads the directory and computes the same logits
as minifc's model with its LoRA adapters; tied embeddings stay tied; generation stops at end of turn."""

import json

import pytest
import torch
from safetensors import safe_open

from minifc import tiny
from minifc.chat import get_format
from minifc.checkpoint import load_pretrained
from minifc.config import MODELS, ModelConfig
from minifc.chat.lookup import read_chat_format
from minifc.export import save_hf_model
from minifc.lora import apply_lora, lora_layers
from minifc.model import Transformer
from minifc.tokenizer import Tokenizer

SMALL = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=512)
TEXTS = ["What's the weather in Paris today?", "[get_weather(city=\"Paris\")]", "It is 21 degrees and sunny."] * 20


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def adapted_model(fmt_name, monkeypatch, registry_name=None, family=None, **overrides):
    """A random tiny model (every weight non-trivial, norms included) with LoRA whose B is non-zero: the
    demo's architecture for the format (or `family`'s: Gemma 4 with the gemma3 format's tokens), or with
    `registry_name` that entry's hub config keys at SMALL widths."""
    monkeypatch.setattr(tiny, "SIZES", SMALL)
    fmt = get_format(fmt_name)
    tokenizer = tiny.train_tokenizer(TEXTS, fmt, vocab_size=300)
    hf_config = tiny.tiny_hf_config(family or tiny.family_of(fmt), tokenizer.vocab_size, tokenizer)
    if registry_name is not None:
        ids = {key: hf_config[key] for key in ("bos_token_id", "eos_token_id", "pad_token_id")}
        hf_config = {**MODELS[registry_name].hf_config, **SMALL, "vocab_size": tokenizer.vocab_size, **ids,
                     **overrides}
    if fmt_name == "gemma3":
        hf_config["sliding_window"] = 8  # shorter than the test sequence, so the local layers differ
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_hf(hf_config))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    apply_lora(model, r=4, alpha=8, targets=("all",))
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.weight.normal_(0.0, 0.2)
    return model.eval(), hf_config, tokenizer, fmt


# Qwen3 (QK-norm; head_dim 32 != 64 / 4) tied, Qwen2.5 (q, k, v biases) untied, from the registry's hub keys.
# The Qwen chat formats live in minifc/chat/qwen.py of another branch; the format here only decides the
# tokenizer and the stop tokens, which do not depend on the architecture.
ARCHITECTURES = {"gemma3": ("gemma3", None, {}), "llama3.2": ("llama3.2", None, {}),
                 "qwen3": ("llama3.2", "qwen3-0.6b", {"head_dim": 32}),
                 "qwen2.5": ("llama3.2", "qwen2.5-7b", {}),
                 "gemma4": ("gemma3", None, {})}  # the tiny demo's Gemma 4 (KV sharing, per-layer embeddings)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_merged_export_matches_transformers(arch, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM
    fmt_name, registry_name, overrides = ARCHITECTURES[arch]
    family = "gemma4" if arch == "gemma4" else None
    model, hf_config, tokenizer, fmt = adapted_model(fmt_name, monkeypatch, registry_name, family, **overrides)
    if family == "gemma4":  # LoRA on every linear layer peft's all-linear selects, per-layer projections too
        assert "model.per_layer_model_projection" in lora_layers(model)
    out = save_hf_model(model, tmp_path / "merged", hf_config, tokenizer, fmt)
    ids = torch.randint(0, hf_config["vocab_size"], (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(ids)
        hf = AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager", dtype=torch.float32).eval()
        got_hf = hf(ids).logits
        got_minifc = load_pretrained(str(out))(ids)
    torch.testing.assert_close(got_hf, expected, rtol=0, atol=5e-5)
    torch.testing.assert_close(got_minifc, expected, rtol=0, atol=5e-5)
    # tied embeddings stay tied: stored once, shared by transformers' lm_head; an untied lm_head is stored
    tied = model.config.tie_word_embeddings
    assert tied == (arch != "qwen2.5")
    with safe_open(out / "model.safetensors", "pt") as f:
        assert ("lm_head.weight" not in f.keys()) == tied and not any("lora" in k for k in f.keys())
    assert (hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()) == tied
    # generation stops at the format's end-of-turn tokens; the chat format is recorded
    eos = json.loads((out / "generation_config.json").read_text())["eos_token_id"]
    assert set(tokenizer.stop_ids(fmt)) <= set(eos)
    assert read_chat_format(out) == fmt_name
    assert Tokenizer.from_dir(out).encode(TEXTS[0]) == tokenizer.encode(TEXTS[0])


def test_export_leaves_the_model_untouched(tmp_path, monkeypatch):
    model, hf_config, tokenizer, fmt = adapted_model("gemma3", monkeypatch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    save_hf_model(model, tmp_path / "merged", hf_config, tokenizer, fmt)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
