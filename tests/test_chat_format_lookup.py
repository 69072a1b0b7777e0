"""One chat-format lookup (chat.lookup.resolve_chat_format) for train.py, eval.py, the mask inspector and the
export command: the --format flag, else the model registry's, else the minifc.json of the model's local
directory or of the adapter directory; otherwise an error that says what to pass."""

import json
from types import SimpleNamespace

import pytest

import inspect_masks
import train
from minifc import export, loader
from minifc.chat import FORMATS, get_format
from minifc.chat.lookup import resolve_chat_format

KNOWN = "pass --format, one of " + ", ".join(sorted(FORMATS))  # functiongemma, gemma3, gemma4, gemma4-31b, ...


def recorded(directory, chat_format):
    """A directory holding minifc.json naming `chat_format` (what train.py and save_hf_model write)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "minifc.json").write_text(json.dumps({"chat_format": chat_format}))
    return directory


def test_the_flag_wins_over_registry_and_recorded_format(tmp_path):
    model_dir = recorded(tmp_path / "model", "gemma3")
    assert resolve_chat_format("gemma-3-1b", "llama3.2") is get_format("llama3.2")
    assert resolve_chat_format(str(model_dir), "llama3.1", [model_dir]) is get_format("llama3.1")


def test_the_registry_knows_short_names_and_hub_ids(tmp_path):
    assert resolve_chat_format("llama-3.2-1b") is get_format("llama3.2")
    assert resolve_chat_format("google/gemma-3-1b-it") is get_format("gemma3")
    # a registry model's recorded minifc.json (say a downloaded snapshot) does not override the registry
    assert resolve_chat_format("functiongemma-270m", None, [recorded(tmp_path, "gemma3")]) is get_format("functiongemma")


def test_minifc_json_in_the_model_directory(tmp_path):
    model_dir = recorded(tmp_path / "model", "llama3.2")
    assert resolve_chat_format(str(model_dir), None, [model_dir, None]) is get_format("llama3.2")


def test_minifc_json_in_the_adapter_directory(tmp_path):
    model_dir, adapter = tmp_path / "model", recorded(tmp_path / "adapter", "gemma3")
    model_dir.mkdir()
    assert resolve_chat_format(str(model_dir), None, [model_dir, adapter]) is get_format("gemma3")
    recorded(model_dir, "llama3.1")  # both record one: the model directory's comes first
    assert resolve_chat_format(str(model_dir), None, [model_dir, adapter]) is get_format("llama3.1")


def test_nothing_found_says_what_was_searched_and_what_to_pass(tmp_path):
    model_dir, adapter = tmp_path / "model", tmp_path / "adapter"
    model_dir.mkdir(), adapter.mkdir()
    with pytest.raises(ValueError) as error:
        resolve_chat_format(str(model_dir), None, [model_dir, adapter, tmp_path / "missing"])
    assert str(error.value) == (
        f"which chat format does --model {model_dir} use? It is not in the model registry (minifc/config.py) "
        f"and there is no {model_dir / 'minifc.json'} or {adapter / 'minifc.json'}: {KNOWN}")
    with pytest.raises(ValueError) as error:  # a hub id the registry does not know, no local directory
        resolve_chat_format("someone/their-model", None, ["someone/their-model"])
    assert str(error.value) == (
        "which chat format does --model someone/their-model use? It is not in the model registry "
        f"(minifc/config.py) and it is no local directory with a minifc.json: {KNOWN}")


def test_bad_names_and_bad_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown chat format 'chatml'; known formats: functiongemma"):
        resolve_chat_format("gemma-3-1b", "chatml")
    with pytest.raises(ValueError, match=r"neither a known short name.*Known short names: "):
        resolve_chat_format("not-a-model")
    bad = recorded(tmp_path / "a", "chatml")
    with pytest.raises(ValueError) as error:
        resolve_chat_format(str(bad), None, [bad])
    assert str(error.value) == (f"{bad / 'minifc.json'}: chat_format 'chatml' is not one of "
                                f"{', '.join(sorted(FORMATS))}; fix the file or pass --format")
    broken = tmp_path / "b"
    broken.mkdir()
    (broken / "minifc.json").write_text('{"format": "gemma3"}')
    with pytest.raises(ValueError, match=f'^{broken / "minifc.json"}: expected a JSON object with a "chat_format"'):
        resolve_chat_format(str(broken), None, [broken])


# ------------------------------------------------------------------------------------ each caller

class NamedTokenizer(str):
    """A stand-in for a Tokenizer read from a directory (the loader notes the directory on it)."""


def test_train_looks_in_the_model_directory(tmp_path, monkeypatch):
    args = SimpleNamespace(model=tmp_path, format=None)  # train.py passes --model through (a str there)
    with pytest.raises(SystemExit, match=f"^model: which chat format does --model {tmp_path} use?.*{KNOWN}$"):
        train.tokenizer_and_format(args, [])
    recorded(tmp_path, "llama3.2")
    monkeypatch.setattr(loader.Tokenizer, "from_dir",
                        staticmethod(lambda directory: NamedTokenizer(f"tokenizer of {directory}")))
    assert train.tokenizer_and_format(args, []) == (tmp_path, f"tokenizer of {tmp_path}", get_format("llama3.2"))
    args.format = "gemma3"
    assert train.tokenizer_and_format(args, [])[2] is get_format("gemma3")


def test_mask_inspector_says_what_to_pass(tmp_path):
    with pytest.raises(SystemExit, match=f"^error: which chat format does --model {tmp_path} use?.*{KNOWN}$"):
        inspect_masks.main(["--model", str(tmp_path), "--data", "unused.jsonl"])


def test_export_command_reads_the_adapters_format(tmp_path, monkeypatch, capsys):
    """`python -m minifc.export` on a local base without minifc.json: the adapter's (train.py writes one)."""
    base, adapter = tmp_path / "base", recorded(tmp_path / "adapter", "llama3.2")
    base.mkdir()
    (base / "config.json").write_text("{}")
    formats = []
    monkeypatch.setattr("minifc.loader.load_pretrained", lambda *a, **k: SimpleNamespace(checkpoint_dir=base))
    monkeypatch.setattr("minifc.adapters.load_adapter", lambda *a, **k: None)
    monkeypatch.setattr("minifc.tokenizer.Tokenizer.from_dir",
                        staticmethod(lambda directory: SimpleNamespace(stop_ids=lambda fmt: [])))
    monkeypatch.setattr(export, "save_hf_model", lambda model, out, config, tokenizer, fmt, **k: formats.append(fmt))
    export.main(["--model", str(base), "--adapter", str(adapter), "--out", str(tmp_path / "out")])
    assert formats == [get_format("llama3.2")]
    (adapter / "minifc.json").unlink()
    with pytest.raises(SystemExit):
        export.main(["--model", str(base), "--adapter", str(adapter), "--out", str(tmp_path / "out")])
    assert f"which chat format does --model {base} use?" in capsys.readouterr().err


def test_loader_without_weights_fetches_the_tokenizer_files_only(tmp_path, monkeypatch):
    """load(weights=False): the tokenizer and JSON files of a hub model, no model, the directory noted on the
    tokenizer; a missing adapter directory or tokenizer.json is a LoadError that says what is missing."""
    import huggingface_hub

    from minifc.tiny import train_tokenizer
    train_tokenizer(["Hello there!"] * 4, get_format("gemma3")).tk.save(str(tmp_path / "tokenizer.json"))
    downloads = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, allow_patterns: downloads.append((repo, allow_patterns)) or str(tmp_path))
    model, tokenizer, fmt = loader.load("gemma-3-1b", weights=False)
    assert model is None and fmt is get_format("gemma3") and tokenizer.directory == tmp_path
    assert downloads == [("google/gemma-3-1b-it", ["tokenizer*", "*.json"])]
    with pytest.raises(loader.LoadError, match="--adapter .*missing: no such directory"):
        loader.load("gemma-3-1b", adapter=str(tmp_path / "missing"), weights=False)
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(loader.LoadError, match="tokenizer.json not found"):
        loader.load("gemma-3-1b", weights=False)
