"""One loader for every command: a model's short name, hub id or directory -> (model, tokenizer, chat format).

    model, tokenizer, fmt = load("gemma-3-1b", device="cuda", dtype=torch.bfloat16)
    _, tokenizer, fmt = load("llama-3.2-1b", weights=False)     # no model: only the tokenizer files are fetched
    model, tokenizer, fmt = load("path/to/base", adapter="out/run/final")   # the adapter may name the format

The chat format is chat.lookup.resolve_chat_format's (--format, the registry, or the minifc.json of the
model or adapter directory). `tokenizer.directory` is where the tokenizer (and config.json) was read. With
weights, the tokenizer must hold the format's stop tokens (generation needs them) and `model.checkpoint_dir`
is that directory; the adapter's weights are the caller's to load (adapters.load_adapter: eval.py --compare
runs the base model first). Every problem raises LoadError, whose message names the fix.
"""

from pathlib import Path

import torch

from .chat.lookup import resolve_chat_format
from .checkpoint import CheckpointError, load_pretrained, resolve_checkpoint_dir
from .tokenizer import Tokenizer

_TOKENIZER_FILES = ["tokenizer*", "*.json"]


class LoadError(Exception):
    """The model, its tokenizer, its chat format or the adapter directory cannot be loaded or found."""


def load(name_or_dir, format_name: str | None = None, adapter=None, *, weights: bool = True, device="cpu",
         dtype: torch.dtype = torch.float32, quantize: str | None = None):
    """(model or None without weights, Tokenizer, ChatFormat); see the module docstring. quantize="nf4":
    the blocks' linear weights in NF4 (checkpoint.load_pretrained)."""
    if adapter is not None and not Path(adapter).is_dir():
        raise LoadError(f"--adapter {adapter}: no such directory (give the directory train.py wrote, e.g. OUT/final)")
    try:
        directory = (resolve_checkpoint_dir(str(name_or_dir)) if weights
                     else resolve_checkpoint_dir(str(name_or_dir), _TOKENIZER_FILES))
        fmt = resolve_chat_format(str(name_or_dir), format_name, [directory, adapter])
        tokenizer = Tokenizer.from_dir(directory)
        tokenizer.directory = directory
        if not weights:
            return None, tokenizer, fmt
        try:
            tokenizer.stop_ids(fmt)
        except KeyError as error:
            raise LoadError(f"{directory}/tokenizer.json does not fit chat format {fmt.name}: {error.args[0]}; "
                            "pass the --format this model was trained with") from None
        return load_pretrained(str(directory), device, dtype, quantize), tokenizer, fmt
    except (CheckpointError, ValueError, OSError) as error:  # their messages say what to fix
        raise LoadError(str(error)) from error
