"""Loading and validation: locations, normalisation, every rule of validate_example, strict mode, the report."""

import json
import re
import sys
import types

import pytest

from minifc.data import DataError, Example, load_examples
from minifc.masking import TrainOn
from minifc.schema import validate_example

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
        "threshold": {"type": "number"},
        "alerts": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "where": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]}},
        "required": ["city"]}}}


def call(name, arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def example(messages, tools=(WEATHER,)):
    return Example(messages=messages, tools=list(tools), location="f.jsonl:7")


def asking(arguments, name="get_weather"):
    return example([{"role": "user", "content": "weather?"}, {"role": "assistant", "tool_calls": [call(name, arguments)]}])


def reasons(ex):
    return [(p.reason, p.field) for p in validate_example(ex)]


def write_jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


GOOD = {"messages": [{"role": "user", "content": "Weather in Oslo?"},
                     {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Oslo"})]}],
        "tools": [WEATHER]}


# --- validation rules ------------------------------------------------------------------------------------

def test_a_full_conversation_is_valid():
    ex = example([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Oslo and Rome?"},
                  {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Oslo"}),
                                                       call("get_weather", {"city": "Rome", "days": 3})]},
                  {"role": "tool", "name": "get_weather", "content": "{\"t\": 3}"},
                  {"role": "tool", "content": "{\"t\": 20}"},  # no name: answers the next pending call
                  {"role": "assistant", "content": "3 and 20 degrees."}])
    assert validate_example(ex) == []


@pytest.mark.parametrize("arguments, expected", [
    ({"city": "Oslo", "threshold": 3}, []),                     # an integer is a number
    ({"city": "Oslo", "threshold": 2.5, "alerts": True, "tags": ["a"], "where": {"lat": 1}}, []),
    ({}, [("schema_violation", "messages[1].tool_calls[0].function.arguments.city")]),
    ({"city": 3}, [("schema_violation", "messages[1].tool_calls[0].function.arguments.city")]),
    ({"city": "Oslo", "days": 2.5}, [("schema_violation", "messages[1].tool_calls[0].function.arguments.days")]),
    ({"city": "Oslo", "days": True}, [("schema_violation", "messages[1].tool_calls[0].function.arguments.days")]),
    ({"city": "Oslo", "unit": "kelvin"}, [("schema_violation", "messages[1].tool_calls[0].function.arguments.unit")]),
    ({"city": "Oslo", "tags": ["a", 1]}, [("schema_violation",
                                          "messages[1].tool_calls[0].function.arguments.tags[1]")]),
    ({"city": "Oslo", "where": {}}, [("schema_violation", "messages[1].tool_calls[0].function.arguments.where.lat")]),
    ({"city": "Oslo", "colour": "red"}, [("schema_violation",
                                          "messages[1].tool_calls[0].function.arguments.colour")]),
    ("{not json", [("bad_arguments", "messages[1].tool_calls[0].function.arguments")]),
])
def test_arguments_are_checked_against_the_schema(arguments, expected):
    assert reasons(asking(arguments)) == expected


def test_undeclared_function_names_the_declared_ones():
    [problem] = validate_example(asking({"city": "Oslo"}, name="get_wether"))
    assert (problem.reason, problem.field) == ("undeclared_function", "messages[1].tool_calls[0].function.name")
    assert str(problem) == ("f.jsonl:7: messages[1].tool_calls[0].function.name: calls 'get_wether', which is not "
                            "in the example's tools (declared: get_weather); declare it in \"tools\" or fix the name")


@pytest.mark.parametrize("messages, expected", [
    ([{"role": "narrator", "content": "x"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
     [("unknown_role", "messages[0].role")]),
    ([{"role": "assistant", "content": "hi"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}],
     [("role_order", "messages[0]")]),
    ([{"role": "user", "content": "hi"}, {"role": "system", "content": "x"}, {"role": "assistant", "content": "x"}],
     [("role_order", "messages[1].role")]),
    ([{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}, {"role": "assistant", "content": "x"}],
     [("orphan_tool_result", "messages[1]")]),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [call("get_weather", {"city": "A"})]},
      {"role": "tool", "name": "get_time", "content": "x"}], [("orphan_tool_result", "messages[2].name")]),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [call("get_weather", {"city": "A"})]},
      {"role": "user", "content": "and?"}, {"role": "assistant", "content": "x"}], [("role_order", "messages[2]")]),
    ([{"role": "user", "content": "hi"}], [("nothing_to_train", "messages")]),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "train": False}],
     [("nothing_to_train", "messages")]),
    ([{"role": "user", "content": "hi", "train": True}, {"role": "assistant", "content": "x", "train": False}], []),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "train": "yes"}],
     [("bad_structure", "messages[1].train")]),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}], [("bad_structure", "messages[1]")]),
    ([{"role": "user", "content": ["hi"]}, {"role": "assistant", "content": "x"}],
     [("bad_structure", "messages[0].content")]),
    ([], [("bad_structure", "messages")]),
])
def test_conversation_order_and_structure(messages, expected):
    assert reasons(example(messages)) == expected


def test_what_has_something_to_train_follows_the_masking_policy(tmp_path):
    """"nothing_to_train" is masking.trains_anything under the policy given to validation and loading."""
    no_reply = example([{"role": "user", "content": "hi"}])
    assert reasons(no_reply) == [("nothing_to_train", "messages")]
    assert validate_example(no_reply, TrainOn.parse("user")) == []
    results = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [
        call("get_weather", {"city": "Oslo"})]}, {"role": "tool", "content": "3"}], "tools": [WEATHER]}]
    path = write_jsonl(tmp_path / "a.jsonl", results)
    assert load_examples(path)[1].kept == 1
    results[0]["messages"][1]["train"] = False
    path = write_jsonl(tmp_path / "b.jsonl", results)
    assert load_examples(path)[1].skipped == {"nothing_to_train": 1}
    assert load_examples(path, train_on=TrainOn.parse("assistant,tool"))[1].kept == 1


def test_bad_tool_definition_is_reported():
    ex = example([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], tools=[{"name": 3}])
    assert reasons(ex) == [("bad_structure", "tools[0]")]


@pytest.mark.parametrize("message, expected", [
    ({"role": "assistant", "content": "x", "reasoning": "Think first."}, []),
    ({"role": "assistant", "content": "x", "reasoning": ""}, []),      # empty: renders as none
    ({"role": "assistant", "content": "x", "reasoning": None}, []),    # null: none
    ({"role": "assistant", "tool_calls": [call("get_weather", {"city": "A"})], "reasoning": "Need A."}, []),
    ({"role": "assistant", "content": "x", "reasoning": ["a"]},
     [("bad_reasoning", "messages[1].reasoning", "must be a string (the assistant's thinking), got array")]),
    ({"role": "assistant", "reasoning": "Hmm."},
     [("bad_structure", "messages[1]", "an assistant message needs non-empty content or tool_calls; reasoning "
                                       "alone says nothing (add the reply it leads to)")]),
    ({"role": "assistant", "content": " ", "reasoning": "Hmm."},
     [("bad_structure", "messages[1]", "an assistant message needs non-empty content or tool_calls; reasoning "
                                       "alone says nothing (add the reply it leads to)")]),
])
def test_reasoning_on_assistant_messages(message, expected):
    problems = validate_example(example([{"role": "user", "content": "hi"}, message]))
    assert [(p.reason, p.field, p.message) for p in problems] == expected


@pytest.mark.parametrize("role", ["system", "user", "tool"])
def test_reasoning_on_other_roles_is_refused(role):
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [call("get_weather", {"city": "A"})]},
                {"role": "tool", "content": "3"}, {"role": "assistant", "content": "x"}]
    index = {"system": 0, "user": 0, "tool": 2}[role]
    if role == "system":
        messages.insert(0, {"role": "system", "content": "Be brief."})
    messages[index]["reasoning"] = "Why not."
    [problem] = validate_example(example(messages))
    assert (problem.reason, problem.field, problem.message) == (
        "bad_reasoning", f"messages[{index}].reasoning", f"only assistant messages carry reasoning, not a {role} "
                                                         "message; remove it")


# --- loading ---------------------------------------------------------------------------------------------

def test_canonical_records_are_normalised(tmp_path):
    bare_tool = {"name": "get_weather", "description": "d", "parameters": WEATHER["function"]["parameters"]}
    record = {"category": "single_call", "tools": [bare_tool], "messages": [
        {"role": "user", "content": "Oslo?", "train": True},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "name": "get_weather", "content": "cold"},
        {"role": "assistant", "content": "Cold.", "train": False}]}
    path = write_jsonl(tmp_path / "a.jsonl", ["", json.dumps(record)])  # a blank first line keeps line numbers true
    [ex], report = load_examples(path)
    assert ex.location == f"{path}:2"
    assert ex.category == "single_call"
    assert ex.tools == [{"type": "function", "function": bare_tool}]
    assert ex.messages[1] == {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Oslo"})]}
    assert ex.messages[0]["train"] is True and ex.messages[3]["train"] is False
    assert (report.read, report.kept) == (1, 1)


def test_canonical_reasoning_from_its_aliases(tmp_path):
    """"reasoning_content" (HF templates, vLLM) and a leading <think> block both become "reasoning"."""
    weather = call("get_weather", {"city": "Oslo"})
    record = {"tools": [WEATHER], "messages": [
        {"role": "user", "content": "Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [weather], "reasoning_content": "Call it."},
        {"role": "tool", "content": "cold"},
        {"role": "assistant", "content": "\n<think>\nIt says cold.\n</think>\n\nIt is cold. <think>kept</think>"},
        {"role": "user", "content": "<think>a user's text is never split</think> Thanks."},
        {"role": "assistant", "content": "<think></think>You're welcome.", "reasoning": None},
        {"role": "user", "content": "Bye."},
        {"role": "assistant", "content": "Bye.", "reasoning": "Same.", "reasoning_content": "Same."}]}
    [ex], _ = load_examples(write_jsonl(tmp_path / "a.jsonl", [record]))
    assert ex.messages == [
        {"role": "user", "content": "Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [weather], "reasoning": "Call it."},
        {"role": "tool", "content": "cold"},
        {"role": "assistant", "content": "It is cold. <think>kept</think>", "reasoning": "It says cold."},
        {"role": "user", "content": "<think>a user's text is never split</think> Thanks."},
        {"role": "assistant", "content": "You're welcome."},
        {"role": "user", "content": "Bye."},
        {"role": "assistant", "content": "Bye.", "reasoning": "Same."}]


@pytest.mark.parametrize("message, field, error", [
    ({"role": "assistant", "content": "<think>a</think>b", "reasoning_content": "a"}, "messages[1].content",
     "opens with a <think> block, but the message also has \"reasoning\" (or \"reasoning_content\"); keep one of "
     "the two"),
    ({"role": "assistant", "content": "<think>a</think>b", "reasoning": "a"}, "messages[1].content",
     "opens with a <think> block, but the message also has \"reasoning\" (or \"reasoning_content\"); keep one of "
     "the two"),
    ({"role": "assistant", "content": "b", "reasoning": "a", "reasoning_content": "c"}, "messages[1].reasoning_content",
     "differs from the message's \"reasoning\"; keep one of the two"),
    ({"role": "assistant", "content": "  <think>I never stop thinking"}, "messages[1].content",
     "opens <think> but never closes it; add </think> after the reasoning"),
])
def test_canonical_reasoning_refusals(tmp_path, message, field, error):
    record = {"messages": [{"role": "user", "content": "hi"}, message]}
    path = write_jsonl(tmp_path / "a.jsonl", [record])
    examples, report = load_examples(path)
    assert examples == [] and report.skipped == {"unreadable_canonical": 1}
    [problem] = report.examples["unreadable_canonical"]
    assert (problem.location, problem.field, problem.message) == (f"{path}:1", field, error)


def test_reasoning_on_a_user_message_is_a_counted_skip(tmp_path):
    record = {"messages": [{"role": "user", "content": "hi", "reasoning_content": "?"},
                           {"role": "assistant", "content": "yo"}]}
    examples, report = load_examples(write_jsonl(tmp_path / "a.jsonl", [record]))
    assert examples == [] and report.skipped == {"bad_reasoning": 1}


def test_invalid_examples_are_skipped_and_counted(tmp_path):
    bad_call = dict(GOOD, messages=[GOOD["messages"][0], {"role": "assistant", "tool_calls": [call("nope", {})]}])
    path = write_jsonl(tmp_path / "a.jsonl", [GOOD, "{broken", bad_call, GOOD])
    examples, report = load_examples(path)
    assert [e.location for e in examples] == [f"{path}:1", f"{path}:4"]
    assert (report.read, report.kept) == (4, 2)
    assert dict(report.skipped) == {"invalid_json": 1, "undeclared_function": 1}
    summary = report.summary()
    assert summary.splitlines()[0] == f"data {path}: read 4, kept 2, skipped 2"
    assert f"{path}:2: line: invalid JSON" in summary
    assert f"{path}:3: messages[1].tool_calls[0].function.name: calls 'nope'" in summary
    assert "every example was skipped" not in summary


def test_strict_raises_on_the_first_invalid_example(tmp_path):
    bad = dict(GOOD, messages=[GOOD["messages"][0], {"role": "assistant", "tool_calls": [
        call("get_weather", {"city": "Oslo", "unit": "kelvin"})]}])
    path = write_jsonl(tmp_path / "a.jsonl", [GOOD, bad])
    with pytest.raises(DataError) as error:
        load_examples(path, strict=True)
    assert str(error.value) == (f"{path}:2: messages[1].tool_calls[0].function.arguments.unit: \"kelvin\" is not one "
                                "of [\"celsius\", \"fahrenheit\"] (function 'get_weather'); fix the value or the "
                                "tool's parameters schema")


def test_summary_helps_when_everything_is_skipped(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    examples, report = load_examples(path)
    assert examples == [] and report.skipped == {"nothing_to_train": 1}
    assert "every example was skipped" in report.summary()


def test_json_list_items_get_their_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[\n" + json.dumps(GOOD) + ",\n\n  " + json.dumps(GOOD) + "\n]\n", encoding="utf-8")
    examples, _ = load_examples(path)
    assert [e.location for e in examples] == [f"{path}:2", f"{path}:4"]


def test_a_single_json_object_and_a_directory(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps(GOOD), encoding="utf-8")
    write_jsonl(tmp_path / "a.jsonl", [GOOD, GOOD])
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    examples, report = load_examples(tmp_path)
    assert [e.location for e in examples] == [f"{tmp_path}/a.jsonl:1", f"{tmp_path}/a.jsonl:2", f"{tmp_path}/b.json:1"]


@pytest.mark.parametrize("name, content, message", [
    ("empty.jsonl", "\n\n", "no examples found"),
    ("x.parquet", "", "parquet is not supported"),
    ("x.csv", "", "expected a .jsonl or .json file"),
])
def test_unusable_sources_raise(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        load_examples(tmp_path / name)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        load_examples(tmp_path / "nope.jsonl")
    path = write_jsonl(tmp_path / "a.jsonl", [GOOD])
    with pytest.raises(DataError, match="unknown --data-format 'sharegpt'; known formats: canonical, glaive"):
        load_examples(path, data_format="sharegpt")
    weird = write_jsonl(tmp_path / "w.jsonl", [{"prompt": "x", "completion": "y"}])
    with pytest.raises(DataError, match=r"w.jsonl:1: cannot tell the data format .*keys: prompt, completion"):
        load_examples(weird)


def fake_hub(monkeypatch, files, local):
    calls = []
    module = types.SimpleNamespace(
        list_repo_files=lambda repo_id, repo_type: files,
        hf_hub_download=lambda repo_id, filename, repo_type: calls.append((repo_id, filename, repo_type)) or str(local))
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    return calls


def test_hub_dataset_file_is_downloaded_as_a_dataset(tmp_path, monkeypatch):
    local = write_jsonl(tmp_path / "train.jsonl", [GOOD])
    calls = fake_hub(monkeypatch, [], local)
    examples, _ = load_examples("hf:someone/tools/data/train.jsonl")
    assert calls == [("someone/tools", "data/train.jsonl", "dataset")]
    assert examples[0].location == f"{local}:1"


def test_hub_dataset_without_file_picks_its_only_json_file(tmp_path, monkeypatch):
    local = write_jsonl(tmp_path / "train.jsonl", [GOOD])
    calls = fake_hub(monkeypatch, [".gitattributes", "README.md", "x.json"], local)
    load_examples("hf:someone/tools")
    assert calls == [("someone/tools", "x.json", "dataset")]


@pytest.mark.parametrize("files, message", [
    (["data/train-00000-of-00001.parquet"], "no JSON/JSONL files .* parquet is not supported"),
    (["a.json", "b.json"], "several JSON/JSONL files .*name one as hf:someone/tools/FILE"),
])
def test_hub_dataset_without_a_usable_file_raises(tmp_path, monkeypatch, files, message):
    fake_hub(monkeypatch, files, tmp_path / "unused")
    with pytest.raises(DataError, match=message):
        load_examples("hf:someone/tools")


def test_hub_parquet_file_raises(tmp_path, monkeypatch):
    fake_hub(monkeypatch, [], tmp_path / "unused")
    with pytest.raises(DataError, match="parquet is not supported"):
        load_examples("hf:someone/tools/train.parquet")


@pytest.mark.parametrize("parameters, field, found", [
    ({"type": "object", "properties": ["city"]}, "parameters.properties", r'got \["city"\]'),
    ({"type": "object", "properties": 3}, "parameters.properties", "got 3"),
    ({"type": "object", "properties": {"city": {"type": "string"}}, "required": "city"}, "parameters.required",
     'got "city"'),
    ({"type": "object", "properties": {"city": {"type": "string"}}, "required": [1]}, "parameters.required", r"got \[1\]"),
    ({"type": "object", "properties": {"city": {"type": "string", "enum": "celsius"}}},
     "parameters.properties.city.enum", 'got "celsius"'),
    ({"type": "object", "properties": {"city": {"type": {"a": 1}}}}, "parameters.properties.city.type", 'got {"a": 1}'),
])
def test_a_malformed_tool_schema_is_a_counted_skip_not_a_crash(parameters, field, found):
    example = Example([{"role": "user", "content": "Weather?"},
                       {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                           "name": "f", "arguments": {"city": "cel"}}}]}],
                      [{"type": "function", "function": {"name": "f", "parameters": parameters}}], location="d.jsonl:7")
    problems = validate_example(example)
    assert [(p.reason, p.field) for p in problems] == [("bad_schema", f"tools[0].function.{field}")]
    assert re.search(found, problems[0].message) and str(problems[0]).startswith("d.jsonl:7: tools[0]")


def test_jsonl_lines_end_at_newline_only_and_bad_utf8_is_a_counted_skip(tmp_path):
    """U+2028 and U+0085 inside a JSON string are text, not line ends (str.splitlines would split there and
    lose the record); a line of invalid UTF-8 is skipped and counted with its line, the rest still loads."""
    record = {"messages": [{"role": "user", "content": "a\u2028b\u0085c"}, {"role": "assistant", "content": "ok"}]}
    line = json.dumps(record, ensure_ascii=False).encode()
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + line + b"\n" + b'{"messages": "\xff"}\r\n' + line + b"\r\n")
    examples, report = load_examples(path)
    assert [e.messages[0]["content"] for e in examples] == ["a\u2028b\u0085c"] * 2
    assert [e.location for e in examples] == [f"{path}:1", f"{path}:3"]
    assert report.skipped == {"invalid_json": 1}
    assert f"{path}:2: line: invalid UTF-8 at byte 15 of the line" in report.summary()
    whole = tmp_path / "d.json"
    whole.write_bytes(b'[\n{"messages": []},\n"\xff"]')
    with pytest.raises(DataError, match=rf"^{re.escape(str(whole))}:3: invalid UTF-8"):
        load_examples(whole)


def test_deep_nesting_is_a_counted_skip_when_reading_and_when_encoding(tmp_path):
    """JSON nested beyond what Python's parser reads is an invalid record; a value just inside that limit
    loads but no format can render it: dropped and counted by the encoder, never a RecursionError."""
    from minifc.chat import get_format
    from minifc.encode import encode_dataset

    path = tmp_path / "deep.jsonl"
    ok = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    path.write_text('{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}\n" + json.dumps(ok) + "\n")
    examples, report = load_examples(path)
    assert len(examples) == 1
    assert f"{path}:1: line: JSON nested too deeply to read" in report.summary()
    value = 1
    for _ in range(900):
        value = [value]
    deep = Example([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                    {"role": "user", "content": "c"}, {"role": "assistant", "tool_calls": [
                        {"type": "function", "function": {"name": "f", "arguments": {"x": value}}}]}],
                   [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}], location="d:1")
    encoded, encode_report = encode_dataset([deep], None, get_format("gemma3"))
    assert encoded == [] and encode_report.dropped == {"cannot render": 1}
    assert "d:1: a value is nested too deeply to render" in str(encode_report)


def calling(parameters, arguments, tools=None):
    """An example that calls f(arguments), f declared with `parameters` (or the tools given)."""
    tools = tools or [{"type": "function", "function": {"name": "f", "parameters": parameters}}]
    return Example([{"role": "user", "content": "Weather?"},
                    {"role": "assistant", "tool_calls": [call("f", arguments)]}], tools, location="d.jsonl:7")


UNIT = {"type": "string", "enum": ["celsius", "fahrenheit"]}


@pytest.mark.parametrize("parameters, arguments, message", [
    ({"type": "object", "properties": {"u": {"$ref": "#/$defs/Unit"}}, "$defs": {"Unit": UNIT}}, {"u": "celsius"}, None),
    ({"type": "object", "properties": {"u": {"$ref": "#/$defs/Unit"}}, "$defs": {"Unit": UNIT}}, {"u": "kelvin"},
     '.u: "kelvin" is not one of ["celsius", "fahrenheit"]'),
    ({"type": "object", "properties": {"u": {"$ref": "#/definitions/Unit"}}, "definitions": {"Unit": UNIT}}, {"u": 3},
     ".u: 3 is not of type string"),
    ({"type": "object", "properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}}, {"n": None}, None),
    ({"type": "object", "properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}}, {"n": "2"},
     '.n: "2" matches 0 of the anyOf schemas, at least one must match (1: "2" is not of type integer; '
     '2: "2" is not of type null)'),
    ({"type": "object", "properties": {"n": {"oneOf": [{"type": "integer"}, {"type": "number"}]}}}, {"n": 2.5}, None),
    ({"type": "object", "properties": {"n": {"oneOf": [{"type": "integer"}, {"type": "number"}]}}}, {"n": 2},
     ".n: 2 matches 2 of the oneOf schemas, exactly one must match ()"),
    ({"type": "object", "properties": {"n": {"allOf": [{"type": "integer"}, {"enum": [1, 2]}]}}}, {"n": 3},
     ".n: 3 is not one of [1, 2]"),
    ({"type": "object", "properties": {"tags": {"type": "object", "additionalProperties": {"type": "string"}}}},
     {"tags": {"a": "x", "b": 1}}, ".tags.b: 1 is not of type string"),
    # a tree: a $ref back to the root, used through a nested value (the cycle ends with the value)
    ({"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}, "v": {"type": "integer"}}},
     {"v": 1, "kids": [{"v": 2, "kids": [{"v": "x"}]}]}, ".kids[0].kids[0].v: \"x\" is not of type integer"),
    # a $ref cycle that never reaches a nested value adds nothing (and never loops)
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"allOf": [{"$ref": "#/$defs/A"}]}}},
     {"a": 1}, None),
])
def test_anyof_oneof_allof_and_local_refs_are_checked(parameters, arguments, message):
    problems = validate_example(calling(parameters, arguments))
    if message is None:
        assert problems == []
    else:
        [problem] = problems
        assert problem.reason == "schema_violation"
        assert str(problem) == f"d.jsonl:7: messages[1].tool_calls[0].function.arguments{message} (function 'f'); " \
                               "fix the value or the tool's parameters schema"


@pytest.mark.parametrize("parameters, field, message", [
    ({"type": "object", "properties": {"city": {"type": "str"}}}, "parameters.properties.city.type",
     'unknown type "str"; JSON Schema\'s types are string, integer, number, boolean, array, object, null'),
    ({"type": "object", "properties": {"n": {"type": ["integer", "int"]}}}, "parameters.properties.n.type",
     'unknown type "int"'),
    ({"type": "object", "properties": {"u": {"$ref": "#/$defs/Unit"}}}, "parameters.properties.u.$ref",
     '"#/$defs/Unit" points at no schema in this tool\'s parameters'),
    ({"type": "object", "properties": {"u": {"$ref": "https://example.com/unit.json"}}}, "parameters.properties.u.$ref",
     "use a local reference such as"),
    ({"type": "object", "properties": {"n": {"anyOf": {"type": "integer"}}}}, "parameters.properties.n.anyOf",
     'must be a non-empty list of schema objects, got {"type": "integer"}'),
    ({"type": "object", "properties": {"n": {"oneOf": []}}}, "parameters.properties.n.oneOf", "got []"),
    ({"type": "object", "properties": {"n": {"allOf": ["integer"]}}}, "parameters.properties.n.allOf[0]",
     'must be a schema object, e.g. {"type": "string"}, got "integer"'),
    ({"type": "object", "properties": {"city": "string"}}, "parameters.properties.city", 'got "string"'),
    ({"type": "object", "$defs": {"U": {"type": "celsius"}}}, "parameters.$defs.U.type", 'unknown type "celsius"'),
    ({"type": "object", "properties": {"t": {"type": "array", "items": [{"type": "string"}]}}},
     "parameters.properties.t.items", 'must be a schema object, e.g. {"type": "string"}, got [{"type": "string"}]'),
    ({"type": "object", "additionalProperties": "yes"}, "parameters.additionalProperties",
     'must be true, false or a schema object, got "yes"'),
])
def test_unreadable_schemas_are_bad_schema_not_accepting_anything(parameters, field, message):
    problems = validate_example(calling(parameters, {"city": "Oslo"}))
    assert [(p.reason, p.field) for p in problems] == [("bad_schema", f"tools[0].function.{field}")]
    assert message in problems[0].message


def test_two_tools_of_one_name_are_a_problem_not_the_second_kept():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
                 "city": {"type": "string"}}}}},
             {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    [problem] = validate_example(calling(None, {"city": "Oslo"}, tools))
    assert str(problem) == ("d.jsonl:7: tools[1].function.name: 'f' is declared twice (also tools[0]); give each "
                            "tool its own name or drop one")
    assert problem.reason == "duplicate_tool"


@pytest.mark.parametrize("parameters, ok", [
    ({"type": "object", "properties": ["city"]}, False), ({"type": "object", "properties": {"city": {"type": {"a": 1}}}}, True),
    ({"type": "object", "properties": {"city": "string"}, "required": 3}, True), ([1, 2], False),
    ({"type": "object", "properties": {"city": {"type": "array", "items": [1]}}, "required": [["city"]]}, True),
])
def test_the_call_checker_never_crashes_on_a_malformed_schema(parameters, ok):
    """evaluate.py reads the same malformed shapes that validation reports (BFCL's files are not validated):
    a verdict, never a TypeError; a type it cannot read checks nothing."""
    from minifc.evaluate import check_calls

    tools = [{"type": "function", "function": {"name": "f", "parameters": parameters}}, "junk", {"function": {}}]
    verdict = check_calls([call("f", {"city": ["Oslo"]})], [{"name": "f", "arguments": {"city": [["Oslo"]]}}], tools)
    assert verdict.ok == ok
    assert verdict.reason == ("correct" if ok else "unexpected parameter 'city' (not in the schema of 'f')")


def test_a_category_that_is_not_a_string_is_a_problem_before_evaluation_not_after():
    """A list-valued category used to crash compute_metrics after every answer was generated."""
    ex = Example([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], category=["a", "b"],
                 location="d.jsonl:3")
    [problem] = validate_example(ex)
    assert str(problem) == ('d.jsonl:3: category: must be a string (the evaluation\'s breakdown by category), '
                            'got ["a", "b"]')
