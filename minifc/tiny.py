"""The offline demo model (`python train.py --model tiny`, README): a small, randomly initialised Gemma 3
(or Llama 3 for the llama and qwen formats, or Gemma 4 for gemma4) and a tokenizer trained here, built from
nothing on the training data itself, so that the whole pipeline runs without a download or a GPU. It only
learns the shape of the training data.

    fmt = get_format("gemma3")
    directory = save_tiny("out/tiny/init", tokenizer_for_examples(examples, fmt), fmt)
    model = load_pretrained(directory); tokenizer = Tokenizer.from_dir(directory)

The tokenizer is built from the rendered training conversations: every control token of the chat format
(and `<pad>`) is one special token, as in the real tokenizers; the most frequent pieces (PIECES) are whole
tokens and any other piece is spelled in byte-level characters (train_tokenizer says why). A word is the
same tokens wherever it stands, so that an argument is copied token for token from the request into the
call. The directory is written by export.save_hf_model, so it looks like any downloaded checkpoint.
"""

import re
from collections import Counter
from pathlib import Path

import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import Regex, decoders, models, pre_tokenizers

from .config import ModelConfig
from .encode import render_example
from .export import save_hf_model
from .model import Transformer
from .tokenizer import Tokenizer

_PAD = "<pad>"
# ~0.9M parameters in all (0.13M of them the tied embedding): a few hundred steps on 2 CPU cores in a few minutes.
SIZES = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, head_dim=32, max_position_embeddings=4096)


def tiny_hf_config(family: str, vocab_size: int, tokenizer: Tokenizer) -> dict:
    """config.json of the tiny model, in the layout transformers writes (so transformers loads it too)."""
    ids = dict(bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id)
    if family == "llama":
        return dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=vocab_size,
                    rms_norm_eps=1e-5, rope_theta=500_000.0, tie_word_embeddings=True, hidden_act="silu",
                    **SIZES, **ids)
    n = SIZES["num_hidden_layers"]
    # Gemma 3's mix of local (sliding-window) and global layers, with a window shorter than the
    # conversations so that both kinds of layer are exercised.
    layer_types = ["full_attention" if (i + 1) % 2 == 0 else "sliding_attention" for i in range(n)]
    if family == "gemma4":  # and the last half of the layers reuse the K/V of the first, per-layer embeddings
        return dict(architectures=["Gemma4ForCausalLM"], model_type="gemma4_text", vocab_size=vocab_size,
                    rms_norm_eps=1e-6, sliding_window=128, layer_types=layer_types, tie_word_embeddings=True,
                    hidden_activation="gelu_pytorch_tanh", final_logit_softcapping=30.0,
                    global_head_dim=2 * SIZES["head_dim"], num_kv_shared_layers=n // 2 if n >= 4 else 0,
                    use_double_wide_mlp=True,
                    hidden_size_per_layer_input=16, vocab_size_per_layer_input=vocab_size, attention_k_eq_v=False,
                    rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                                     "full_attention": {"rope_type": "proportional", "rope_theta": 1_000_000.0,
                                                        "partial_rotary_factor": 0.25}},
                    **SIZES, **ids)
    return dict(architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", vocab_size=vocab_size,
                rms_norm_eps=1e-6, rope_theta=1_000_000.0, rope_local_base_freq=10_000.0, sliding_window=128,
                layer_types=layer_types, query_pre_attn_scalar=SIZES["head_dim"], tie_word_embeddings=True,
                hidden_activation="gelu_pytorch_tanh", final_logit_softcapping=None,
                attn_logit_softcapping=None, **SIZES, **ids)


def bos_token(texts, fmt) -> str | None:
    """The format's BOS: its first control token when every conversation starts with it and holds it once
    (`<bos>`, `<|begin_of_text|>`); None for a format that writes no BOS (Qwen's `<|im_start|>` opens every turn)."""
    first = fmt.control_tokens[0]
    return first if all(text.startswith(first) and text.count(first) == 1 for text in texts) else None


# The pieces a text is cut into before tokens: a run of letters, one digit, a run of other characters (spaces and
# punctuation) or of newlines. A word is then the same tokens wherever it stands: "Oslo" in the user's
# "weather in Oslo?" and in the call's city="Oslo". GPT-2's pieces glue a leading space to a word (" Oslo"
# is another token than "Oslo"), so copying a value from the request into a call would need a learned
# mapping for every word, which a model trained from scratch cannot have for a word it never saw.
# Newlines stand alone so that no piece crosses from a role header into the trained text after it.
PIECES = r"\p{L}+|\p{N}|[^\p{L}\p{N}\n]+|\n+"


def train_tokenizer(texts, fmt, vocab_size: int = 1024) -> Tokenizer:
    """The demo's tokenizer: `<pad>` and the format's control tokens, the 256 byte-level characters, and
    the most frequent pieces (PIECES) of `texts` as whole tokens. A piece that is not among them is spelled
    in characters, save for whole pieces inside it ("and" in "Auckland": a Unigram model that scores a
    whole piece above any spelling of it), so that a word the model never saw, an invented name or a
    held-out city, is written with the same few dozen characters that every copied value uses: copying is
    learned once, for all words. (Byte-level BPE would split such a word into sub-word pieces that it
    rarely copied anywhere.)"""
    texts = list(texts)
    specials = list(dict.fromkeys([_PAD, *fmt.control_tokens, *fmt.stop_tokens]))
    pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(PIECES), behavior="isolated"),
                                             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    between_specials = re.compile("|".join(map(re.escape, specials)))
    counts = Counter(piece for text in texts for segment in between_specials.split(text)
                     for piece, _ in pre_tokenizer.pre_tokenize_str(segment))
    characters = sorted(pre_tokenizers.ByteLevel.alphabet())
    words = [p for p, _ in counts.most_common() if len(p) > 1][:vocab_size - len(specials) - len(characters)]
    # Scores are log-probabilities: one whole piece (-1) always beats spelling it (-10 per character).
    vocab = [(t, 0.0) for t in specials] + [(c, -10.0) for c in characters] + [(w, -1.0) for w in words]
    tk = HFTokenizer(models.Unigram(vocab, unk_id=None, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizer
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens(specials)
    # EOS is the last stop token (<eos>, <|end_of_text|>, <|endoftext|>)
    return Tokenizer(tk, bos_token=bos_token(texts, fmt), eos_token=fmt.stop_tokens[-1], pad_token=_PAD)


def family_of(fmt) -> str:
    # Qwen formats get the Llama architecture: the decoder closest to Qwen's among minifc's
    if fmt.name.startswith(("llama", "qwen")):
        return "llama"
    return "gemma4" if fmt.name.startswith("gemma4") else "gemma3"


def tokenizer_for_examples(examples, fmt) -> Tokenizer:
    """train_tokenizer on the conversations as `fmt` renders them (so it learns the format's text too)."""
    return train_tokenizer([render_example(example, fmt).text for example in examples], fmt)


def save_tiny(directory, tokenizer: Tokenizer, fmt, seed: int = 0) -> Path:
    """A randomly initialised tiny model for `tokenizer`, written with it as an HF directory."""
    hf_config = tiny_hf_config(family_of(fmt), tokenizer.vocab_size, tokenizer)
    torch.manual_seed(seed)
    model = Transformer(ModelConfig.from_hf(hf_config, source="tiny model"))  # init_weights: N(0, 0.02)
    return save_hf_model(model, directory, hf_config, tokenizer, fmt,
                         extra_info={"note": "minifc --model tiny: random init, trained on the data; a demo"})
