"""A tiny random model and a small trained BPE tokenizer, saved in the Hugging Face layout, for the
generation and evaluation tests (no download, a few hundred milliseconds)."""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from minifc.config import ModelConfig
from minifc.model import Transformer
from minifc.tokenizer import Tokenizer

PAD = "<pad>"


def gemma_hf_config(vocab_size: int) -> dict:
    """Gemma 3 text architecture, tiny: sliding layers with window 4 (shorter than the prompts, so the
    cache's sliding mask matters), one global layer, GQA 4/2. The head is not tied to the embedding: a
    random tied model only repeats its input token."""
    return dict(model_type="gemma3_text", vocab_size=vocab_size, hidden_size=64, intermediate_size=96,
                num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                sliding_window=4, sliding_window_pattern=2, query_pre_attn_scalar=16,
                max_position_embeddings=512, rms_norm_eps=1e-6, tie_word_embeddings=False)


def random_model(hf_config: dict, seed: int = 0, std: float = 0.2) -> Transformer:
    """A Transformer with every parameter drawn from N(0, std): big enough that greedy choices are not
    near-ties, so fp32 round-off cannot flip an argmax."""
    torch.manual_seed(seed)
    model = Transformer(ModelConfig.from_hf(hf_config))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, std)
    return model.eval()


def train_tokenizer(texts: list[str], special_tokens: list[str], vocab_size: int = 400) -> HFTokenizer:
    """Byte-level BPE trained on `texts`; every special token is one token (as in the real tokenizers)."""
    tokenizer = HFTokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, *special_tokens],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def format_tokenizer(fmt, texts: list[str]) -> Tokenizer:
    """A minifc Tokenizer holding every control token of chat format `fmt`, trained on `texts`."""
    specials = list(dict.fromkeys(fmt.control_tokens + fmt.stop_tokens))
    return Tokenizer(train_tokenizer(texts, specials), bos_token=specials[0], eos_token=fmt.stop_tokens[-1],
                     pad_token=PAD)


def save_checkpoint(directory, model: Transformer, hf_config: dict, tokenizer: Tokenizer) -> Path:
    """config.json + model.safetensors + tokenizer.json (+ tokenizer_config.json), as HF writes them."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(hf_config))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if hf_config.get("tie_word_embeddings"):
        del state["lm_head.weight"]  # HF stores a tied head once, as the embedding
    save_file(state, str(directory / "model.safetensors"))
    tokenizer.tk.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token}))
    return directory
