"""eval.py end to end (tiny random checkpoint in HF layout, data and BFCL files written here) and the
evaluation loop of minifc/evalloop.py with a scripted model whose answers are known."""

import importlib.util
import json
import shutil
import types
from pathlib import Path

import pytest
import torch

from minifc.chat import get_format
from minifc.data import Example
from minifc.evalloop import cases_from_examples, run_eval, split_gold
from minifc.evaluate import compute_metrics, gold_from_message, score_example
from tiny_checkpoint import format_tokenizer, gemma_hf_config, random_model, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name."},
                                                    "days": {"type": "integer"}}, "required": ["city"]}}}
REMIND = {"type": "function", "function": {
    "name": "set_reminder", "description": "Remind the user about something.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}, "time": {"type": "string"}},
                   "required": ["text", "time"]}}}


def call(name, **arguments):
    return {"role": "assistant",
            "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]}


EXAMPLES = [  # canonical records as in a data file
    {"category": "single_call", "tools": [WEATHER, REMIND],
     "messages": [{"role": "user", "content": "What's the weather in Oslo?"}, call("get_weather", city="Oslo")]},
    {"category": "single_call", "tools": [WEATHER, REMIND],
     "messages": [{"role": "user", "content": "Weather in Lima for 3 days?"},
                  call("get_weather", city="Lima", days=3)]},
    {"category": "no_tool", "tools": [WEATHER],
     "messages": [{"role": "user", "content": "What's 2 plus 2?"}, {"role": "assistant", "content": "4."}]},
]

BFCL_SIMPLE = [  # BFCL v3 question file rows and their possible answers
    ({"id": "simple_0", "question": [[{"role": "user", "content": "Area of a triangle with base 10 and height 5?"}]],
      "function": [{"name": "calc_area", "description": "Area of a triangle.", "parameters": {
          "type": "dict", "properties": {"base": {"type": "integer"}, "height": {"type": "integer"}},
          "required": ["base", "height"]}}]},
     {"id": "simple_0", "ground_truth": [{"calc_area": {"base": [10], "height": [5]}}]}),
    ({"id": "simple_1", "question": [[{"role": "user", "content": "Triangle area, base 3, height 4?"}]],
      "function": [{"name": "calc_area", "description": "Area of a triangle.", "parameters": {
          "type": "dict", "properties": {"base": {"type": "integer"}, "height": {"type": "integer"}},
          "required": ["base", "height"]}}]},
     {"id": "simple_1", "ground_truth": [{"calc_area": {"base": [3], "height": [4]}}]}),
]
BFCL_IRRELEVANCE = {"id": "irrelevance_0", "question": [[{"role": "user", "content": "Who wrote Hamlet?"}]],
                    "function": [WEATHER["function"]]}


def load_eval_module():
    spec = importlib.util.spec_from_file_location("eval_cli", ROOT / "eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def answer_text(fmt, messages, tools) -> str:
    """What the format renders for the last (assistant) message after the generation prompt: the
    text a perfect model generates."""
    full = fmt.render(messages, tools=tools).text
    prompt = fmt.render(messages[:-1], tools=tools, add_generation_prompt=True).text
    assert full.startswith(prompt)
    return full[len(prompt):]


def corpus(fmt) -> list[str]:
    return [fmt.render(r["messages"], tools=r["tools"]).text for r in EXAMPLES] * 3


class ScriptedModel(torch.nn.Module):
    """Generates `script` token by token whatever the prompt (logit 0 for the scripted token, -1e4 for
    the rest), through the same KV-cache calls as the Transformer."""

    def __init__(self, script: list[int], vocab_size: int):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # generate() reads the device from a parameter
        self.script, self.vocab_size = torch.tensor(script), vocab_size
        self.config = types.SimpleNamespace(max_position_embeddings=100_000)

    def new_kv_cache(self, batch_size, max_len):
        return types.SimpleNamespace(length=0, prompt_length=None)

    def hidden_states(self, input_ids, attention_mask=None, kv_cache=None):
        batch, seqlen = input_ids.shape
        if kv_cache.prompt_length is None:
            kv_cache.prompt_length = seqlen
        kv_cache.length += seqlen
        generated = kv_cache.length - kv_cache.prompt_length  # tokens generated before the next one
        return torch.full((batch, seqlen, 1), float(generated))

    def output(self, hidden):
        step = hidden[..., 0].long().clamp(max=len(self.script) - 1)
        logits = torch.full((*step.shape, self.vocab_size), -1e4)
        return logits.scatter(-1, self.script[step][..., None], 0.0)


# ----------------------------------------------------------------------------- scripted model: exact numbers

@pytest.mark.parametrize("format_name", ["gemma3", "functiongemma", "gemma4", "llama3.2", "qwen3", "qwen3-2507", "qwen2.5"])
def test_scripted_model_scores_exactly(tmp_path, monkeypatch, capsys, format_name):
    fmt = get_format(format_name)
    tokenizer = format_tokenizer(fmt, corpus(fmt))
    first = EXAMPLES[0]
    script = tokenizer.encode(answer_text(fmt, first["messages"], first["tools"]))  # get_weather(city="Oslo")
    model = ScriptedModel(script, tokenizer.vocab_size)
    eval_cli = load_eval_module()
    monkeypatch.setattr(eval_cli, "load_model", lambda *args: (model, tokenizer, fmt))
    data = write_jsonl(tmp_path / "data.jsonl", EXAMPLES)
    out = tmp_path / "out"
    report = eval_cli.main(["--model", "scripted", "--data", str(data), "--out", str(out), "--batch-size", "2",
                            "--max-new-tokens", str(len(script) + 5)])

    predictions = [json.loads(line) for line in (out / "predictions_base.jsonl").read_text().splitlines()]
    assert [p["verdict"] for p in predictions] == ["correct", "wrong", "wrong"]
    assert predictions[1]["reason"] == "value mismatch for 'city': got 'Oslo', allowed ['Lima']"
    assert predictions[2]["reason"] == "expected no call, got 1 call(s): get_weather"
    assert [p["stop_reason"] for p in predictions] == ["stop"] * 3
    overall = report["runs"]["base"]["metrics"]["overall"]
    assert (overall["exact"]["count"], overall["exact"]["total"]) == (1, 3)
    assert overall["valid_syntax"]["count"] == 3
    assert (overall["call_recall"]["count"], overall["call_recall"]["total"]) == (2, 2)
    assert (overall["arguments"]["count"], overall["arguments"]["total"]) == (1, 2)
    assert (overall["call_precision"]["count"], overall["call_precision"]["total"]) == (2, 3)
    table = capsys.readouterr().out
    assert "exact answer                         1/3 (33.3%)" in table
    assert (out / "table.txt").read_text() + "\n" == table
    assert json.loads((out / "report.json").read_text()) == report


def test_prompts_too_long_are_skipped_counted_as_wrong_and_never_tokenized(tmp_path, monkeypatch, capsys):
    """--max-prompt-len (and the model's max_position_embeddings): a longer prompt is not generated; it is a
    wrong answer with the reason, counted in report.json and on stderr. A prompt whose characters alone
    prove it too long is never tokenized."""
    fmt = get_format("gemma3")
    tokenizer = format_tokenizer(fmt, corpus(fmt))
    first = EXAMPLES[0]
    script = tokenizer.encode(answer_text(fmt, first["messages"], first["tools"]))
    model = ScriptedModel(script, tokenizer.vocab_size)
    eval_cli = load_eval_module()
    monkeypatch.setattr(eval_cli, "load_model", lambda *args: (model, tokenizer, fmt))
    huge = {**EXAMPLES[0], "messages": [{"role": "user", "content": "Oslo? " + "x" * 2_000_000}, EXAMPLES[0]["messages"][1]]}
    longer = {**first, "messages": [{"role": "user", "content": "What's the weather in Oslo now, please?"},
                                    first["messages"][1]]}
    data = write_jsonl(tmp_path / "data.jsonl", [huge, first, longer])
    limit = len(tokenizer.encode(fmt.render(first["messages"][:-1], tools=first["tools"],
                                            add_generation_prompt=True).text))
    encoded = []
    encode = tokenizer.encode
    monkeypatch.setattr(tokenizer, "encode", lambda text: encoded.append(len(text)) or encode(text))
    report = eval_cli.main(["--model", "scripted", "--data", str(data), "--out", str(tmp_path / "out"),
                            "--max-new-tokens", str(len(script) + 5), "--max-prompt-len", str(limit)])
    assert max(encoded) < 2_000_000  # the huge prompt was measured in characters only
    predictions = [json.loads(line) for line in (tmp_path / "out" / "predictions_base.jsonl").read_text().splitlines()]
    assert [p["verdict"] for p in predictions] == ["skipped", "correct", "skipped"]
    assert predictions[0]["reason"] == f"skipped: the prompt is longer than {limit} tokens"
    assert (predictions[0]["output"], predictions[0]["stop_reason"], predictions[0]["new_tokens"]) == ("", "skipped", 0)
    run = report["runs"]["base"]
    assert run["skipped"] == {"count": 2, "reason": f"not generated: the prompt is longer than {limit} tokens",
                              "first": [f"{data}:1", f"{data}:3"]}
    assert (run["metrics"]["overall"]["exact"]["count"], run["metrics"]["overall"]["exact"]["total"]) == (1, 3)
    assert report["settings"]["max_prompt_len"] == limit
    assert (f"[base] skipped 2 of 3 examples, counted as wrong: not generated: the prompt is longer than {limit} "
            f"tokens (--max-prompt-len), e.g. {data}:1, {data}:3") in capsys.readouterr().err


@pytest.mark.parametrize("format_name", ["gemma3", "qwen3", "gemma4"])
def test_scripted_model_on_bfcl_files(tmp_path, monkeypatch, capsys, format_name):
    fmt = get_format(format_name)
    tokenizer = format_tokenizer(fmt, corpus(fmt))
    bfcl = tmp_path / "bfcl"
    simple = write_jsonl(bfcl / "BFCL_v3_simple.json", [q for q, _ in BFCL_SIMPLE])
    write_jsonl(tmp_path / "answers" / "BFCL_v3_simple.json", [a for _, a in BFCL_SIMPLE])
    irrelevance = write_jsonl(bfcl / "BFCL_v3_irrelevance.json", [BFCL_IRRELEVANCE])
    from minifc.bfcl import convert_function
    tools = [convert_function(BFCL_SIMPLE[0][0]["function"][0])]
    messages = BFCL_SIMPLE[0][0]["question"][0] + [call("calc_area", base=10, height=5)]
    script = tokenizer.encode(answer_text(fmt, messages, tools))  # the right answer to simple_0
    eval_cli = load_eval_module()
    monkeypatch.setattr(eval_cli, "load_model", lambda *args: (ScriptedModel(script, tokenizer.vocab_size),
                                                               tokenizer, fmt))
    out = tmp_path / "out"
    report = eval_cli.main(["--model", "scripted", "--bfcl", str(simple), str(irrelevance),
                            "--bfcl-answers", str(tmp_path / "answers"), "--out", str(out)])
    assert report["examples"] == 3
    assert report["runs"]["base"]["bfcl"]["categories"] == {"simple": {"correct": 1, "total": 2, "accuracy": 0.5},
                                                            "irrelevance": {"correct": 0, "total": 1, "accuracy": 0.0}}
    assert report["runs"]["base"]["bfcl"]["aggregates"]["non_live_ast"] is None  # not every category was run
    predictions = [json.loads(line) for line in (out / "predictions_base.jsonl").read_text().splitlines()]
    assert [p["bfcl"]["ok"] for p in predictions] == [True, False, False]
    printed = capsys.readouterr().out
    assert "simple                        1/2       50.00%" in printed
    assert "irrelevance                   0/1        0.00%" in printed
    assert "non-live AST summary                       n/a" in printed


# ----------------------------------------------------------------------------- a real tiny checkpoint

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    fmt = get_format("gemma3")
    tokenizer = format_tokenizer(fmt, corpus(fmt))
    hf_config = gemma_hf_config(tokenizer.vocab_size)
    model = random_model(hf_config, seed=1)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt"), model, hf_config, tokenizer), model, tokenizer, fmt


def uncached_greedy_text(model, tokenizer, fmt, prompt: str, steps: int) -> str:
    ids, stops = tokenizer.encode(prompt), set(tokenizer.stop_ids(fmt))
    new = []
    with torch.no_grad():
        for _ in range(steps):
            new.append(int(model(torch.tensor([ids + new]))[0, -1].argmax()))
            if new[-1] in stops:
                break
    return tokenizer.decode(new)


def read_predictions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_eval_end_to_end_on_a_saved_checkpoint(tmp_path, checkpoint):
    directory, model, tokenizer, fmt = checkpoint
    data = write_jsonl(tmp_path / "data.jsonl", EXAMPLES)
    out = tmp_path / "out"
    load_eval_module().main(["--model", str(directory), "--format", "gemma3", "--data", str(data),
                             "--out", str(out), "--max-new-tokens", "6", "--batch-size", "2"])
    report = json.loads((out / "report.json").read_text())
    predictions = read_predictions(out / "predictions_base.jsonl")
    assert report["examples"] == len(predictions) == 3 and list(report["runs"]) == ["base"]
    assert report["runs"]["base"]["metrics"] == compute_metrics([p["record"] for p in predictions])
    for row, prediction in zip(EXAMPLES, predictions):
        prompt = fmt.render(row["messages"][:-1], tools=row["tools"], add_generation_prompt=True).text
        assert prediction["prompt"] == prompt
        assert prediction["output"] == uncached_greedy_text(model, tokenizer, fmt, prompt, 6)
        gold = gold_from_message(row["messages"][-1])
        assert prediction["record"] == score_example(fmt.parse(prediction["output"]), gold, row["tools"],
                                                     row["category"], prediction["stop_reason"])


@pytest.mark.slow
def test_eval_compare_base_and_adapter(tmp_path, checkpoint, capsys):
    from minifc.adapters import load_adapter, save_adapter
    from minifc.lora import apply_lora
    directory, _, tokenizer, fmt = checkpoint
    from minifc.checkpoint import load_pretrained
    trained = load_pretrained(str(directory))
    apply_lora(trained, r=4, alpha=8)
    torch.manual_seed(5)
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)  # a non-zero update, so the adapter changes the answers
    adapter = save_adapter(trained, tmp_path / "adapter")
    data = write_jsonl(tmp_path / "data.jsonl", EXAMPLES)
    out = tmp_path / "out"
    report = load_eval_module().main(["--model", str(directory), "--format", "gemma3", "--adapter", str(adapter),
                                      "--compare", "--data", str(data), "--out", str(out), "--max-new-tokens", "5"])
    assert list(report["runs"]) == ["base", "adapter"]
    base = read_predictions(out / "predictions_base.jsonl")
    tuned = read_predictions(out / "predictions_adapter.jsonl")
    reference = load_pretrained(str(directory))
    for row, b in zip(EXAMPLES, base):
        assert b["output"] == uncached_greedy_text(reference, tokenizer, fmt, b["prompt"], 5)
    load_adapter(reference, adapter)
    for row, t in zip(EXAMPLES, tuned):
        assert t["output"] == uncached_greedy_text(reference, tokenizer, fmt, t["prompt"], 5)
    assert [b["output"] for b in base] != [t["output"] for t in tuned]
    for label, predictions in (("base", base), ("adapter", tuned)):
        assert report["runs"][label]["metrics"] == compute_metrics([p["record"] for p in predictions])
    table = capsys.readouterr().out
    assert "base" in table.splitlines()[1] and "adapter" in table.splitlines()[1] and "change" in table


# ----------------------------------------------------------------------------- the library loop

def test_run_eval_keeps_order_and_training_mode(checkpoint):
    _, model, tokenizer, fmt = checkpoint
    examples = [Example(r["messages"], r["tools"], r["category"], f"data.jsonl:{i + 1}")
                for i, r in enumerate(EXAMPLES)]
    cases = cases_from_examples(examples)
    model.train()
    records, predictions = run_eval(model, tokenizer, fmt, cases, batch_size=2, max_new_tokens=4)
    assert model.training
    assert [p["location"] for p in predictions] == ["data.jsonl:1", "data.jsonl:2", "data.jsonl:3"]
    _, alone = run_eval(model, tokenizer, fmt, cases[2:], batch_size=1, max_new_tokens=4)
    assert alone[0]["output"] == predictions[2]["output"]
    assert records == [p["record"] for p in predictions]


def test_split_gold_needs_a_final_assistant_turn():
    example = Example([{"role": "user", "content": "hi"}], [], None, "data.jsonl:7")
    with pytest.raises(ValueError, match="data.jsonl:7: the last message must be the assistant's answer"):
        split_gold(example)
    prompt, gold = split_gold(Example(EXAMPLES[1]["messages"], EXAMPLES[1]["tools"]))
    assert prompt.messages == EXAMPLES[1]["messages"][:1]
    assert gold == [{"name": "get_weather", "arguments": {"city": ["Lima"], "days": [3]}}]


def test_compare_needs_an_adapter():
    with pytest.raises(SystemExit):
        load_eval_module().parse_args(["--compare"])


def test_format_comes_from_minifc_json_of_a_local_directory(tmp_path, checkpoint):
    """A directory written by train.py records its chat format; eval.py needs no --format for it, and
    --format still wins over the recorded one."""
    directory, _, _, _ = checkpoint
    eval_cli = load_eval_module()
    with pytest.raises(SystemExit, match="pass --format"):
        eval_cli.load_model(str(directory), "cpu", torch.float32)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "minifc.json").write_text(json.dumps({"chat_format": "gemma3"}))
    assert eval_cli.load_model(str(directory), "cpu", torch.float32, adapter=str(adapter))[2].name == "gemma3"
    recorded = tmp_path / "model"
    shutil.copytree(directory, recorded)
    (recorded / "minifc.json").write_text(json.dumps({"chat_format": "gemma3"}))
    assert eval_cli.load_model(str(recorded), "cpu", torch.float32)[2].name == "gemma3"
    with pytest.raises(SystemExit, match="does not fit chat format llama3.2"):
        eval_cli.load_model(str(recorded), "cpu", torch.float32, "llama3.2")
