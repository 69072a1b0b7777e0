"""A thin wrapper over `tokenizers.Tokenizer`.

The chat renderers write every control string as text (BOS included, once), so encoding here never
adds special tokens: `encode(text)` is exactly the ids of `text`. The encoder needs character offsets
to turn the renderer's trained character spans into trained tokens, hence `encode_with_offsets`.
"""

import json
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer

# Pad token candidates, in order of preference. Llama 3 ships no pad token; its reserved
# `<|finetune_right_pad_id|>` is meant for exactly this.
_PAD_CANDIDATES = ("<pad>", "<|finetune_right_pad_id|>", "<|endoftext|>")


def _token_text(value) -> str | None:
    """tokenizer_config.json writes special tokens as a string or as {"content": ...}."""
    return value.get("content") if isinstance(value, dict) else value


class Tokenizer:
    def __init__(self, tokenizer: HFTokenizer, bos_token: str | None = None, eos_token: str | None = None,
                 pad_token: str | None = None):
        self.tk, self.bos_token, self.eos_token = tokenizer, bos_token, eos_token
        if pad_token is None:
            pad_token = next((t for t in _PAD_CANDIDATES if tokenizer.token_to_id(t) is not None), eos_token)
        self.pad_token = pad_token

    @classmethod
    def from_dir(cls, path) -> "Tokenizer":
        """Load tokenizer.json (required) and the special tokens of tokenizer_config.json (optional)."""
        path = Path(path)
        tokenizer_file = path / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise FileNotFoundError(
                f"{tokenizer_file} not found: minifc needs the fast-tokenizer file tokenizer.json "
                "(every Gemma 3 and Llama 3.x checkpoint on the hub ships one)")
        config_file = path / "tokenizer_config.json"
        try:
            config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
            tokens = {key: _token_text(config.get(key)) for key in ("bos_token", "eos_token", "pad_token")}
        except (ValueError, AttributeError) as error:  # invalid JSON or UTF-8, not an object
            raise ValueError(f"{config_file}: cannot be read ({error}); download it again") from None
        try:
            tokenizer = HFTokenizer.from_file(str(tokenizer_file))
        except Exception as error:  # the tokenizers library raises a plain Exception for a damaged file
            raise ValueError(f"{tokenizer_file}: the tokenizers library cannot read it ({error}); download it "
                             "again") from None
        return cls(tokenizer, **tokens)

    @property
    def max_token_chars(self) -> int:
        """The most characters one token stands for (its longest vocabulary entry; a byte-level entry has one
        character per byte, so at least as many as it decodes to): a text of more than n * max_token_chars
        characters has more than n tokens, known without tokenizing it."""
        if not hasattr(self, "_max_token_chars"):
            self._max_token_chars = max(map(len, self.tk.get_vocab(with_added_tokens=True)), default=1)
        return self._max_token_chars

    @property
    def vocab_size(self) -> int:
        return self.tk.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, with no BOS or other special tokens added."""
        return self.tk.encode(text, add_special_tokens=False).ids

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and, for each token, the (start, end) character range of `text` it came from."""
        encoding = self.tk.encode(text, add_special_tokens=False)
        return encoding.ids, encoding.offsets

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Text of `ids` (a list, or a 1-D tensor / array: each id goes through int())."""
        return self.tk.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def token_id(self, token: str) -> int:
        """The id of a single token (a control string such as `<end_of_turn>`); KeyError if absent."""
        token_id = self.tk.token_to_id(token)
        if token_id is None:
            raise KeyError(f"token {token!r} is not in this tokenizer's vocabulary")
        return token_id

    @property
    def bos_id(self) -> int | None:
        return self.tk.token_to_id(self.bos_token) if self.bos_token else None

    @property
    def eos_id(self) -> int | None:
        return self.tk.token_to_id(self.eos_token) if self.eos_token else None

    @property
    def pad_id(self) -> int:
        if self.pad_token is None:
            raise ValueError("this tokenizer has no pad token (none in tokenizer_config.json, no <pad>-like token, "
                             "no eos): pass pad_token= to Tokenizer()")
        return self.token_id(self.pad_token)

    def stop_ids(self, fmt) -> list[int]:
        """Ids that end a generated assistant turn in chat format `fmt` (see ChatFormat.stop_tokens)."""
        return [self.token_id(token) for token in fmt.stop_tokens]
