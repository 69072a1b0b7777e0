"""Which chat format a model speaks: the record in `minifc.json`, and the one lookup for --model.

    write_chat_format(directory, fmt, base_dir)   # train.py (adapters, checkpoints) and export.save_hf_model
    read_chat_format(directory) -> "gemma3"       # or None when the directory has no minifc.json
    read_record(directory) -> dict                # all of minifc.json ({} without one): an adapter's base model too
    chat_template(fmt, base_dir) -> str | None    # the Jinja template that renders fmt (ChatFormat.template)
    fmt = resolve_chat_format(args.model, args.format, [model_dir, adapter_dir])

A local directory cannot otherwise tell the prompt format it was trained with. Beside minifc.json goes
`chat_template.jinja`, for transformers' apply_chat_template, vLLM and the like: the template that renders
exactly what the format's render() writes, so that a served model gets the prompt it was trained on.

`resolve_chat_format` (for minifc/loader.py, so for every command): the --format flag, else the model
registry's, else a minifc.json.
"""

import json
from pathlib import Path

from minifc.chat import FORMATS, get_format
from minifc.registry import resolve_model_name

_FILE = "minifc.json"
TEMPLATE_FILE = "chat_template.jinja"
TEMPLATES = Path(__file__).parent / "templates"  # minifc's own templates, for formats that extend the official


def write_chat_format(directory, fmt, base_dir=None, **extra) -> bool:
    """Record `fmt` (and `extra` fields, e.g. the base model) in `directory`/minifc.json, and write its
    chat_template.jinja (chat_template(fmt, base_dir)); False when there is no template to write."""
    text = json.dumps({"chat_format": fmt.name, **extra}, indent=2) + "\n"
    (Path(directory) / _FILE).write_text(text, encoding="utf-8")
    template = chat_template(fmt, base_dir)
    if template is not None:
        (Path(directory) / TEMPLATE_FILE).write_text(template, encoding="utf-8")
    return template is not None


def chat_template(fmt, base_dir=None) -> str | None:
    """The Jinja chat template that renders `fmt`: minifc's own file (fmt.template), or for "official" the
    base model's own (its chat_template.jinja, else tokenizer_config.json's "chat_template"); None when
    neither is known."""
    if fmt.template is None:
        return None
    if fmt.template != "official":
        return (TEMPLATES / fmt.template).read_text(encoding="utf-8")
    base = Path(base_dir) if base_dir is not None else None
    if base is None:
        return None
    if (base / TEMPLATE_FILE).is_file():
        return (base / TEMPLATE_FILE).read_text(encoding="utf-8")
    config = base / "tokenizer_config.json"
    template = json.loads(config.read_text(encoding="utf-8")).get("chat_template") if config.is_file() else None
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
        template = {entry.get("name"): entry.get("template") for entry in template}.get("default")
    return template if isinstance(template, str) else None


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
    """The ChatFormat for --model, as the module docstring says: the registry is minifc.registry.MODELS (by
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
                     f"(minifc/registry.py) and {missing}: pass --format, one of {', '.join(sorted(FORMATS))}")
