"""The commands' behaviour a user meets first (issue 17): defaults in every --help, one-line errors for a
wrong adapter, an unreachable hub or data that is all invalid, the export's dtype, eval's folder names."""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open

import chat
import inspect_masks
import train
from minifc import export, tiny
from minifc.adapters import save_adapter
from minifc.chat import get_format
from minifc.checkpoint import load_pretrained
from minifc.data import DataError, load_examples
from minifc.lora import apply_lora, lora_layers

REPO = Path(__file__).resolve().parent.parent
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, head_dim=16, max_position_embeddings=512)


def load_eval_module():
    spec = importlib.util.spec_from_file_location("eval_cli", REPO / "eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def base_and_adapter(tmp_path_factory):
    """A tiny fp32 gemma3 base and a LoRA adapter for it with a non-zero update."""
    root = tmp_path_factory.mktemp("usability")
    fmt = get_format("gemma3")
    texts = [fmt.render([{"role": "user", "content": "Weather in Oslo?"},
                         {"role": "assistant", "content": "Cold."}]).text]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiny, "SIZES", SMALL)
        base = tiny.save_tiny(root / "base", tiny.train_tokenizer(texts * 4, fmt, 300), fmt)
    model = load_pretrained(str(base))
    apply_lora(model, r=2, alpha=4)
    torch.manual_seed(0)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.weight.normal_(0.0, 0.2)
    return base, save_adapter(model, root / "adapter", str(base)), model


def parsers(monkeypatch) -> dict:
    """Every command's ArgumentParser, caught as it parses."""
    class Caught(Exception):
        pass

    def catch(self, *args, **kwargs):
        raise Caught(self)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    found = {}
    for name, run in [("train.py", train.parse_args), ("eval.py", load_eval_module().parse_args),
                      ("chat.py", chat.parse_args), ("inspect_masks.py", inspect_masks.main),
                      ("minifc.export", export.main)]:
        with pytest.raises(Caught) as caught:
            run([])
        found[name] = caught.value.args[0]
    return found


def test_every_help_shows_the_defaults(monkeypatch):
    for name, parser in parsers(monkeypatch).items():
        formatter = parser.formatter_class(prog=name)
        for action in parser._actions:
            if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
                continue
            assert action.help, f"{name} {action.option_strings}: no help, so --help shows no default"
            shown = formatter._expand_help(action)
            assert "default" in shown, f"{name} {action.option_strings}: {shown!r}"
    assert "--lora-r LORA_R" in train.build_parser().format_help()
    assert "(default: 16)" in train.build_parser().format_help()
    assert "seed of initialisation, data order and sampling (default: 0)" in " ".join(
        train.build_parser().format_help().split())  # a default of 0 is shown too


def test_export_checks_the_adapter_before_loading_the_base(tmp_path, capsys):
    (tmp_path / "adapter").mkdir()
    with pytest.raises(SystemExit) as stop:  # gemma-3-1b would be downloaded if the base came first
        export.main(["--model", "gemma-3-1b", "--adapter", str(tmp_path / "adapter"), "--out", str(tmp_path / "x")])
    assert stop.value.code == 1
    assert capsys.readouterr().err == (f"minifc.export: {tmp_path / 'adapter' / 'adapter_config.json'}: no adapter "
                                       "config (expected the output of save_adapter or peft's save_pretrained)\n")


def test_export_keeps_the_base_dtype(base_and_adapter, tmp_path, capsys):
    base, adapter, model = base_and_adapter
    export.main(["--model", str(base), "--adapter", str(adapter), "--out", str(tmp_path / "merged")])
    assert capsys.readouterr().out == f"wrote {tmp_path / 'merged'} (float32)\n"
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["torch_dtype"] == "float32"
    with safe_open(tmp_path / "merged" / "model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}
    ids = torch.arange(1, 20)[None]
    with torch.no_grad():
        torch.testing.assert_close(load_pretrained(str(tmp_path / "merged"))(ids), model(ids), rtol=0, atol=1e-5)
    export.main(["--model", str(base), "--adapter", str(adapter), "--out", str(tmp_path / "bf16"),
                 "--dtype", "bfloat16"])
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["torch_dtype"] == "bfloat16"


@pytest.mark.slow
def test_export_offline_is_one_line(base_and_adapter, tmp_path):
    _, adapter, _ = base_and_adapter
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    command = [sys.executable, "-m", "minifc.export", "--model", "gemma-3-1b", "--adapter", str(adapter),
               "--out", str(tmp_path / "x")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert done.returncode == 1
    assert done.stderr == ("minifc.export: google/gemma-3-1b-it is not in the local Hugging Face cache and cannot be "
                           "downloaded (offline, or HF_HUB_OFFLINE=1): download it once with network access, or pass "
                           "a local directory holding config.json, the safetensors and tokenizer.json.\n")


def test_hub_data_unreachable_is_one_line(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache")

    def unreachable(*args, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(DataError, match=r"^hf:a/b/c.jsonl: not in the local Hugging Face cache and the Hub cannot "
                                        r"be reached \(offline, or HF_HUB_OFFLINE=1\)"):
        load_examples("hf:a/b/c.jsonl")
    monkeypatch.setattr(huggingface_hub, "list_repo_files", unreachable)
    with pytest.raises(DataError, match=r"^hf:a/b: the Hugging Face Hub cannot be reached \(ConnectionError: "):
        load_examples("hf:a/b")


def test_eval_compare_checks_the_adapter_first(base_and_adapter, tmp_path):
    base, _, _ = base_and_adapter
    (tmp_path / "adapter").mkdir()
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        load_eval_module().main(["--model", str(base), "--adapter", str(tmp_path / "adapter"), "--compare",
                                 "--out", str(out), "--limit", "1"])
    assert str(stop.value).startswith(f"eval.py: --adapter: {tmp_path / 'adapter' / 'adapter_config.json'}: no adapter")
    assert not out.exists()  # nothing was evaluated


def test_eval_folder_names_say_what_was_evaluated(base_and_adapter, tmp_path):
    base, adapter, _ = base_and_adapter
    name = load_eval_module().default_out_dir(SimpleNamespace(
        model=str(base), adapter=str(adapter), compare=True, bfcl=None, data="my/heldout.jsonl")).name
    assert name.startswith(f"{base.parent.name}_base+{adapter.parent.name}_adapter-compare-heldout-")
    name = load_eval_module().default_out_dir(SimpleNamespace(
        model="google/gemma-3-1b-it", adapter=None, compare=False, bfcl=["simple_python", "irrelevance"],
        data=None)).name
    assert name.startswith("google_gemma-3-1b-it-bfcl_simple_python_irrelevance-")


def test_inspector_prints_the_summary_and_fails_when_nothing_is_usable(base_and_adapter, tmp_path, capsys):
    base, _, _ = base_and_adapter
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "assistant", "content": "x"}]}) + "\n")
    with pytest.raises(SystemExit) as stop:
        inspect_masks.main(["--model", str(base), "--data", str(bad)])
    assert str(stop.value).startswith(f"error: no usable example in {bad}\ndata {bad}: read 1, kept 0, skipped 1\n")
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"user_content": "Weather in Oslo?", "tool_name": "search_google",
                                "tool_arguments": json.dumps({"query": "Oslo weather"})}) + "\n")
    inspect_masks.main(["--model", str(base), "--data", str(good), "--data-format", "simple"])
    captured = capsys.readouterr()
    assert captured.err.startswith(f"data {good}: read 1, kept 1, skipped 0")
    assert "⟦[search_google(query=\"Oslo weather\")]" in captured.out.replace("⟧⟦", "")
