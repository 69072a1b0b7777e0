"""Which chat format a model speaks: the record in `minifc.json`, and the one lookup for --model.

    write_chat_format(directory, fmt)         # train.py (adapters, checkpoints) and export.save_hf_model
    read_chat_format(directory) -> "gemma3"   # or None when the directory has no minifc.json
    read_record(directory) -> dict            # all of minifc.json ({} without one): an adapter's base model too
    fmt = resolve_chat_format(args.model, args.format, [model_dir, adapter_dir])

A local directory cannot otherwise tell the prompt format it was trained with. `resolve_chat_format` (for
minifc/loader.py, so for every command): the --format flag, else the model registry's, else a minifc.json.
"""

import json
from pathlib import Path

from minifc.chat import FORMATS, get_format
from minifc.config import resolve_model_name

_FILE = "minifc.json"


def write_chat_format(directory, fmt, **extra):
    """Record `fmt` (and `extra` fields, e.g. the base model) in `directory`/minifc.json."""
    text = json.dumps({"chat_format": fmt.name, **extra}, indent=2) + "\n"
    (Path(directory) / _FILE).write_text(text, encoding="utf-8")


def read_record(directory) -> dict:
    """What write_chat_format recorded in a local directory ({} when it has no minifc.json)."""
    path = Path(directory) / _FILE
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path}: expected a JSON object with a \"chat_format\" field, like "
                         f"{{\"chat_format\": \"gemma3\"}} ({type(error).__name__}: {error})") from error
    if not isinstance(record, dict) or "chat_format" not in record:
        raise ValueError(f"{path}: expected a JSON object with a \"chat_format\" field, like "
                         f"{{\"chat_format\": \"gemma3\"}}, got {json.dumps(record)[:80]}")
    return record


def read_chat_format(directory) -> str | None:
    """The chat format recorded by write_chat_format in a local directory, or None."""
    return read_record(directory).get("chat_format")


def resolve_chat_format(model: str, format_name: str | None = None, directories=()):
    """The ChatFormat for --model, as the module docstring says: the registry is minifc.config.MODELS (by
    short name or hub id), `directories` the model's local directory and an adapter directory (entries that
    are None or not directories are skipped). Raises ValueError naming what to pass when nothing says."""
    if name := format_name or resolve_model_name(model)[1]:
        return get_format(name)
    searched = [Path(d) for d in directories if d and Path(d).is_dir()]
    for directory in searched:
        recorded = read_chat_format(directory)
        if recorded in FORMATS:
            return get_format(recorded)
        if recorded is not None:
            raise ValueError(f"{directory / _FILE}: chat_format {recorded!r} is not one of "
                             f"{', '.join(sorted(FORMATS))}; fix the file or pass --format")
    missing = (f"there is no {' or '.join(str(d / _FILE) for d in searched)}" if searched
               else "it is no local directory with a minifc.json")
    raise ValueError(f"which chat format does --model {model} use? It is not in the model registry "
                     f"(minifc/config.py) and {missing}: pass --format, one of {', '.join(sorted(FORMATS))}")
