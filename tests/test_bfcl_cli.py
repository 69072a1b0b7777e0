"""eval.py --bfcl with category names: BFCL's data directory (--bfcl-data or an installed bfcl-eval,
found without importing it), Java answers scored on the values BFCL reads, live_relevance on BFCL's
rule only, base and adapter side by side, and the per-category chart."""

import json
import sys
import types

import pytest
import torch

import minifc.bfcl
from minifc.chat import get_format
from minifc.evalchart import category_rates, plot_categories
from test_eval_cli import ScriptedModel, answer_text, call, corpus, load_eval_module, write_jsonl
from tiny_checkpoint import format_tokenizer

JAVA = {"id": "simple_java_0", "question": [[{"role": "user", "content": "Wait 42 ms, then stop."}]],
        "function": [{"name": "Waiter.await", "description": "Waits.", "parameters": {
            "type": "dict", "properties": {"millis": {"type": "long", "description": "How long."}},
            "required": ["millis"]}}]}
JAVA_ANSWER = {"id": "simple_java_0", "ground_truth": [{"Waiter.await": {"millis": [42]}}]}
RELEVANCE = {"id": "live_relevance_0-0-0", "question": [[{"role": "user", "content": "Find a cafe."}]],
             "function": [{"name": "search", "description": "Search.", "parameters": {
                 "type": "dict", "properties": {"query": {"type": "string"}}, "required": ["query"]}}]}


@pytest.fixture
def data_dir(tmp_path):
    data = tmp_path / "bfcl_eval" / "data"
    write_jsonl(data / "BFCL_v4_simple_java.json", [JAVA])
    write_jsonl(data / "possible_answer" / "BFCL_v4_simple_java.json", [JAVA_ANSWER])
    write_jsonl(data / "BFCL_v4_live_relevance.json", [RELEVANCE])
    return data


def script_for(tokenizer, fmt, message) -> torch.Tensor:
    """The tokens of `message` as the model's answer to the Java question."""
    tools = [minifc.bfcl.convert_function(minifc.bfcl.prompt_function(JAVA["function"][0], "java"))]
    return torch.tensor(tokenizer.encode(answer_text(fmt, JAVA["question"][0] + [message], tools)))


def test_categories_from_bfcl_data_compared_with_the_chart(tmp_path, data_dir, monkeypatch, capsys):
    fmt = get_format("gemma3")
    tokenizer = format_tokenizer(fmt, corpus(fmt))
    right = script_for(tokenizer, fmt, call("Waiter.await", millis="42L"))  # source text, as BFCL asks
    text = script_for(tokenizer, fmt, {"role": "assistant", "content": "Sorry."})
    model = ScriptedModel(right.tolist(), tokenizer.vocab_size)
    eval_cli = load_eval_module()
    monkeypatch.setattr(eval_cli, "load_model", lambda *args: (model, tokenizer, fmt))
    monkeypatch.setattr(eval_cli, "load_adapter", lambda model, path: setattr(model, "script", text))
    monkeypatch.setattr(eval_cli, "check_adapter", lambda path: {})  # the scripted "adapter" has no files
    charts = []
    monkeypatch.setattr(eval_cli, "plot_categories", lambda runs, path: charts.append((runs, path)))
    out = tmp_path / "out"
    report = eval_cli.main(["--model", "scripted", "--adapter", str(tmp_path), "--compare", "--bfcl", "simple_java",
                            "live_relevance", "--bfcl-data", str(data_dir), "--out", str(out),
                            "--max-new-tokens", str(len(right) + 2)])
    base, adapter = report["runs"]["base"], report["runs"]["adapter"]
    assert base["bfcl"]["categories"] == {"simple_java": {"correct": 1, "total": 1, "accuracy": 1.0},
                                          "live_relevance": {"correct": 1, "total": 1, "accuracy": 1.0}}
    assert adapter["bfcl"]["categories"] == {"simple_java": {"correct": 0, "total": 1, "accuracy": 0.0},
                                             "live_relevance": {"correct": 0, "total": 1, "accuracy": 0.0}}
    assert base["bfcl"]["aggregates"]["relevance"] == 1.0 and adapter["bfcl"]["aggregates"]["relevance"] == 0.0
    # minifc's own metrics: "42L" read as BFCL reads it (42) matches the gold; live_relevance has no gold
    assert list(base["metrics"]["by_category"]) == ["simple_java"]
    assert base["metrics"]["overall"]["exact"] == {"count": 1, "total": 1, "rate": 1.0}
    predictions = [json.loads(line) for line in (out / "predictions_base.jsonl").read_text().splitlines()]
    assert predictions[0]["parsed"]["tool_calls"][0]["function"]["arguments"] == {"millis": "42L"}
    assert [p["bfcl"]["ok"] for p in predictions] == [True, True]
    assert predictions[1]["record"] is None and predictions[1]["verdict"] is None
    # the prompt is BFCL's: a string parameter whose description names the Java type
    assert "This is Java long type parameter in string representation." in predictions[0]["prompt"]
    table = capsys.readouterr().out
    assert "BFCL category                             base             adapter change" in table
    assert "simple_java                   1/1      100.00%    0/1        0.00% -100.0 pts" in table
    assert "relevance detection                    100.00%               0.00% -100.0 pts" in table
    assert charts == [(report["runs"], out / "categories.png")]


def test_an_installed_bfcl_eval_is_found_without_importing_it(tmp_path, data_dir, monkeypatch):
    package = types.SimpleNamespace(submodule_search_locations=[str(data_dir.parent)])
    monkeypatch.setattr(minifc.bfcl.importlib.util, "find_spec",
                        lambda name: package if name == "bfcl_eval" else None)
    assert minifc.bfcl.bfcl_data_dir() == data_dir
    entries = minifc.bfcl.load_bfcl_entries(["java", "live_relevance"])  # v3 name of simple_java too
    assert [(e.id, e.category, e.kind) for e in entries] == [
        ("simple_java_0", "simple_java", "simple_java"), ("live_relevance_0-0-0", "live_relevance", "live_relevance")]
    assert "bfcl_eval" not in sys.modules
    with pytest.raises(ValueError, match="BFCL category simple_python: none of .*BFCL_v4_simple_python.json"):
        minifc.bfcl.load_bfcl_entries(["all"])


def test_without_bfcl_eval_the_message_says_how_to_get_its_data(monkeypatch):
    monkeypatch.setattr(minifc.bfcl.importlib.util, "find_spec", lambda name: None)
    eval_cli = load_eval_module()
    with pytest.raises(ValueError, match=r"pip download --no-deps bfcl-eval .* --bfcl-data bfcl/bfcl_eval/data"):
        eval_cli.main(["--model", "scripted", "--bfcl", "simple_python"])


def fake_runs():
    return {"base": {"bfcl": {"categories": {"simple_python": {"correct": 1, "total": 2, "accuracy": 0.5},
                                             "irrelevance": {"correct": 0, "total": 1, "accuracy": 0.0}}}},
            "adapter": {"bfcl": {"categories": {"simple_python": {"correct": 2, "total": 2, "accuracy": 1.0}}}}}


def test_the_chart_shows_bfcl_accuracy_or_else_the_exact_answer_rate():
    assert category_rates(fake_runs()["base"]) == ("BFCL accuracy", {"simple_python": 0.5, "irrelevance": 0.0})
    run = {"metrics": {"by_category": {"single": {"exact": {"count": 2, "total": 2, "rate": 1.0}},
                                       "none": {"exact": {"count": 0, "total": 0, "rate": None}}}}}
    assert category_rates(run) == ("exact answer", {"single": 1.0})


def test_the_chart_needs_matplotlib_only_when_drawn(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    assert plot_categories(fake_runs(), tmp_path / "categories.png") is None
    assert "matplotlib is not installed: no chart" in capsys.readouterr().err
    assert not (tmp_path / "categories.png").exists()


def test_the_chart_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_categories(fake_runs(), tmp_path / "categories.png")
    assert path == tmp_path / "categories.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
