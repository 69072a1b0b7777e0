"""minifc.chat.functiongemma against the official FunctionGemma template and Google's published strings.

Oracles: the template rendered by tests/jinja_oracle.py (text), the real FunctionGemma tokenizer (ids,
token boundaries), Google's notebook outputs and the worked examples (exact strings). The trained spans
are checked against the template too: what a model turn trains on is exactly what the template adds
after the generation prompt (render(messages[:k], add_generation_prompt=True) is a prefix of
render(messages[:k+1])), up to and including the turn's stop token.
"""

import copy
import json

import pytest
from hypothesis import given, settings, strategies as st

from jinja_oracle import TemplateError, load_template
from minifc.chat import get_format
from minifc.chat.functiongemma import FORMAT, parse, render
from minifc.tokenizer import Tokenizer

# ---------------------------------------------------------------------------------------------------
# Tools and conversations

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"}},
        "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Get the local time in a timezone.",
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string", "description": "IANA timezone"}},
                   "required": ["timezone"]}}}
EVENT = {"type": "function", "function": {
    "name": "create_event", "description": "Create a calendar event.",
    "parameters": {"type": "object", "properties": {
        "title": {"type": "string", "description": "Event title"},
        "duration_minutes": {"type": "integer", "description": "Length in minutes"},
        "priority": {"type": "number", "description": "Priority score"},
        "all_day": {"type": "boolean", "description": "All-day event"},
        "attendees": {"type": "array", "description": "Attendee emails", "items": {"type": "string"}},
        "location": {"type": "object", "description": "Where", "required": ["city"], "properties": {
            "city": {"type": "string", "description": "City"}, "room": {"type": "string", "description": "Room"}}},
        "tags": {"type": "array", "description": "Tags", "items": {
            "type": "object", "properties": {"name": {"type": "string", "description": "Tag name"}}, "required": ["name"]}},
        "notes": {"type": "string", "description": "Free text"}},
        "required": ["title", "duration_minutes"]}}}
# Every declaration rule and quirk of FORMATS.md 3.3 in one tool.
QUIRKY = {"type": "function", "function": {
    "name": "quirky", "description": "Schema corner cases: \"quotes\", {braces}, ünïcode.",
    "return": {"type": "string"}, "strict": True,
    "parameters": {"type": "OBJECT", "properties": {
        "Beta": {"type": "string", "description": "upper-case name sorts case-insensitively"},
        "alpha": {"type": "integer", "description": "enum on a non-string is dropped", "enum": [1, 2]},
        "_under": {"type": "number", "minimum": 0, "default": 1.5, "format": "float"},
        "type": {"type": "string", "description": "a property named type is skipped"},
        "maybe": {"type": ["string", "null"], "description": "union type"},
        "loose": {"type": "object", "description": "no properties", "additionalProperties": True, "title": "Loose"},
        "deep": {"type": "object", "description": "nested", "properties": {
            "Zed": {"type": "boolean", "description": "z"}, "inner": {"type": "object", "properties": {
                "x": {"type": "integer", "description": "x"}}, "required": ["x"]}}},
        "choices": {"type": "array", "description": "items with enum", "items": {
            "type": "string", "enum": ["a", 1, {"k": "v"}], "description": "an item", "nullable": None}},
        "multi": {"type": "array", "items": {"type": ["integer", "null"]}},
        "empty_items": {"type": "array", "description": "items {}", "items": {}},
        "nothing": {"description": None}},
        "required": ["type", "Beta"]}}}
NO_PARAMS = {"type": "function", "function": {"name": "ping", "description": "Ping."}}
EMPTY_PROPS = {"type": "function", "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}}}

DEV = {"role": "developer", "content": "You are a model that can do function calling with the following functions"}
ASK = {"role": "user", "content": "What's the weather in Paris?"}


def call(name, **arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def calls(*tool_calls, content=None):
    message = {"role": "assistant", "tool_calls": list(tool_calls)}
    if content is not None:
        message["content"] = content
    return message


def user(text):
    return {"role": "user", "content": text}


def answer(text):
    return {"role": "assistant", "content": text}


def result(name, content):
    return {"role": "tool", "name": name, "content": content}


PARIS = call("get_weather", city="Paris", unit="celsius")
SUNNY = result("get_weather", {"temperature": 21, "condition": "sunny"})
TRICKY_TEXT = 'He said "hi", {not: json} [1, 2]\nline two\ttab: é ü 東京 😀 — a < b > c, ok'
JSON_TEXT = '{"city": "Paris", "list": [1, 2, {"x": null}], "quote": "\\"q\\""}'

# name -> (messages, tools, add_generation_prompt)
CASES = {
    "chat_no_system": ([user("Hi!"), answer("Hello! How can I help?")], None, False),
    "chat_system_two_turns": ([{"role": "system", "content": "  Be brief.\n"}, user("Hi"), answer("Hello."),
                               user("  And now?  "), answer("\n Still here.\n\n")], None, False),
    "chat_developer_list_content": ([{"role": "developer", "content": [{"type": "text", "text": " Part one. "},
                                                                        {"type": "text", "text": "Part two."}]},
                                     user("Hi")], None, True),
    "prompt_with_tools": ([ASK], [WEATHER, TIME], True),
    "prompt_custom_system_with_tools": ([{"role": "system", "content": "You are terse."}, ASK], [WEATHER], True),
    "one_call": ([DEV, ASK, calls(PARIS)], [WEATHER], False),
    "one_call_no_developer": ([ASK, calls(PARIS)], [WEATHER], False),
    "call_result_answer": ([DEV, ASK, calls(PARIS), SUNNY, answer("It is 21 °C and sunny in Paris.")], [WEATHER], False),
    "two_rounds": ([DEV, ASK, calls(PARIS), SUNNY, answer("Sunny, 21."), user("And the time there?"),
                    calls(call("get_time", timezone="Europe/Paris")), result("get_time", {"time": "14:05"}),
                    answer("It is 14:05.")], [WEATHER, TIME], False),
    "parallel_calls_separate_results": ([DEV, user("Weather and time in Paris?"),
                                         calls(PARIS, call("get_time", timezone="Europe/Paris")), SUNNY,
                                         result("get_time", {"time": "14:05"}), answer("Sunny; 14:05.")],
                                        [WEATHER, TIME], False),
    "parallel_calls_google_list_results": ([DEV, user("Weather and time?"),
                                            calls(PARIS, call("get_time", timezone="Europe/Paris")),
                                            {"role": "tool", "content": [
                                                {"name": "get_weather", "response": {"temperature": 21}},
                                                {"name": "get_time", "response": {"time": "14:05"}}]},
                                            answer("Done.")], [WEATHER, TIME], False),
    "content_plus_call": ([DEV, ASK, calls(PARIS, content="  Let me check.  ")], [WEATHER], False),
    "tricky_strings": ([DEV, user(TRICKY_TEXT),
                        calls(call("get_weather", city=TRICKY_TEXT, unit=JSON_TEXT)),
                        result("get_weather", {"report": TRICKY_TEXT, "raw": JSON_TEXT, "Nested": {"k": [TRICKY_TEXT]}}),
                        answer(TRICKY_TEXT)], [WEATHER], False),
    "string_results": ([DEV, ASK, calls(PARIS, call("get_time", timezone="UTC")), result("get_weather", JSON_TEXT),
                        result("get_time", "  12:00  "), answer("ok")], [WEATHER, TIME], False),
    # notes=None prints `None` (template quirk, reproduced); floats keep their Python form.
    "nested_values": ([DEV, user("Book it."), calls(call(
        "create_event", title="Sync {weekly}, team", duration_minutes=30, priority=0.5, all_day=False,
        attendees=["a@x.com", "b@x.com"], location={"room": "4B", "city": "Paris", "floor": {"n": -2, "ok": True}},
        tags=[{"name": "work"}, {"name": "Ünï"}], notes=None, ratio=21.0, tiny=1e-07, big=10**20,
        empty_list=[], empty_obj={}, matrix=[[1, 2], [3.5, None]], Zeta="z", alpha="a"))], [EVENT], False),
    "nested_values_result": ([DEV, user("Book it."), calls(call("create_event", title="x", duration_minutes=5)),
                              result("create_event", {"id": 7, "ok": True, "warnings": [], "when": {"start": "9:00",
                                                      "end": None}, "score": 0.25}),
                              answer("Booked.")], [EVENT], False),
    "optional_param_omitted": ([DEV, ASK, calls(call("get_weather", city="Paris"))], [WEATHER], False),
    "empty_arguments": ([user("ping"), calls(call("ping"))], [NO_PARAMS], False),
    "schema_quirks": ([user("?")], [QUIRKY, NO_PARAMS, EMPTY_PROPS], True),
    "prompt_after_tool_result": ([DEV, ASK, calls(PARIS), SUNNY], [WEATHER], True),
    # Quirk (reproduced): a user message right after a tool result is glued on without a user header.
    "user_after_tool_result": ([DEV, ASK, calls(PARIS), SUNNY, user("And in London?"),
                                calls(call("get_weather", city="London"))], [WEATHER], False),
    "call_then_user_without_result": ([DEV, ASK, calls(PARIS), user("Never mind."), answer("OK.")], [WEATHER], False),
    "multi_step_in_one_turn": ([DEV, ASK, calls(PARIS), SUNNY, calls(call("get_time", timezone="Europe/Paris")),
                                result("get_time", {"time": "14:05"}), answer("Sunny at 14:05.")], [WEATHER, TIME], False),
    "empty_tool_result": ([DEV, ASK, calls(PARIS), result("get_weather", ""), answer("No data.")], [WEATHER], False),
    "empty_assistant_content": ([user("Say nothing."), answer(""), user("Thanks"), {"role": "assistant", "content": None}],
                                None, False),
    "system_not_first": ([user("Hi"), {"role": "system", "content": "Late system."}, answer("Hello")], None, False),
    # Pitfall (reproduced): a generation prompt after a trailing call.
    "trailing_call_with_generation_prompt": ([ASK, calls(PARIS)], [WEATHER], True),
}


# ---------------------------------------------------------------------------------------------------
# Fixtures and helpers

@pytest.fixture(scope="module")
def template(reference):
    return load_template(reference / "templates" / "functiongemma-270m-it.jinja")


@pytest.fixture(scope="module")
def tokenizer(reference_tokenizer_dir):
    return Tokenizer.from_dir(reference_tokenizer_dir("functiongemma"))  # 33 MB: once per module


def oracle(template, messages, tools=None, add_generation_prompt=False):
    # The template must see its own copy: minifc must not depend on (or mutate) anything shared.
    return template.render(messages=copy.deepcopy(messages), tools=copy.deepcopy(tools),
                           add_generation_prompt=add_generation_prompt, bos_token="<bos>")


def span_texts(rendered):
    return [rendered.text[start:end] for start, end in rendered.spans]


def expected_spans(template, messages, tools):
    """The trained spans according to the template: for each assistant message k, what the template
    writes after the generation prompt of messages[:k], up to and including its stop token."""
    full = oracle(template, messages, tools)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("train") is False:
            continue
        prompt = oracle(template, messages[:k], tools, add_generation_prompt=True)
        turn = oracle(template, messages[:k + 1], tools)
        assert turn.startswith(prompt)
        generated = turn[len(prompt):]
        if generated.endswith("<end_of_turn>\n"):
            generated = generated[:-1]  # the newline is glue the model never generates
        if not full.startswith(generated, len(prompt)):
            # Calls not followed by a result (next message is a user, or an empty result): no stop token.
            assert generated.endswith("<start_function_response>")
            generated = generated[:-len("<start_function_response>")]
            assert full.startswith(generated, len(prompt))
        if generated:
            if spans and spans[-1][1] == len(prompt):
                spans[-1] = (spans[-1][0], len(prompt) + len(generated))
            else:
                spans.append((len(prompt), len(prompt) + len(generated)))
    return spans


def assistant_messages(messages):
    return [(k, m) for k, m in enumerate(messages) if m["role"] == "assistant"]


def generated_part(messages, k):
    """What the model generates for assistant message k: the render of messages[:k+1] after the prompt."""
    prompt = render(messages[:k], add_generation_prompt=True).text
    return render(messages[:k + 1]).text[len(prompt):]


def trained_token_mask(rendered, tokenizer):
    """Token ids and, per token, whether it is trained; asserts tokens never straddle a span boundary."""
    ids, offsets = tokenizer.encode_with_offsets(rendered.text)
    mask = []
    for (start, end) in offsets:
        inside = [a <= start and end <= b for a, b in rendered.spans]
        overlaps = [start < b and a < end for a, b in rendered.spans]
        assert any(inside) == any(overlaps), f"token {rendered.text[start:end]!r} at {start} straddles a span edge"
        mask.append(any(inside))
    return ids, mask


# ---------------------------------------------------------------------------------------------------
# Text and token ids equal the template's

@pytest.mark.parametrize("name", CASES)
def test_render_equals_template(name, template, tokenizer):
    messages, tools, add_generation_prompt = CASES[name]
    expected = oracle(template, messages, tools, add_generation_prompt)
    rendered = render(messages, tools, add_generation_prompt)
    assert rendered.text == expected
    assert tokenizer.encode(rendered.text) == tokenizer.encode(expected)
    assert tokenizer.encode(rendered.text)[0] == 2 and tokenizer.encode(rendered.text).count(2) == 1  # one <bos>


def test_render_does_not_mutate_its_inputs():
    messages, tools, _ = CASES["nested_values"]
    before = copy.deepcopy((messages, tools))
    render(messages, tools)
    assert (messages, tools) == before


def test_reference_worked_examples(reference):
    data = json.loads((reference / "examples" / "rendered_examples.json").read_text(encoding="utf-8"))
    cases = [case for case in data["cases"] if case["model"] == "functiongemma"]
    assert len(cases) >= 15
    for case in cases:
        inputs = case["inputs"]
        assert case["error"] is None
        assert render(inputs["messages"], inputs["tools"], inputs["add_generation_prompt"]).text == case["output"], \
            case["name"]


@pytest.fixture(scope="module")
def notebook(reference):
    data = json.loads((reference / "examples" / "google_functiongemma_notebook_outputs.json").read_text("utf-8"))
    return [item["text"] for item in data["items"]]


def test_google_notebook_training_sample(reference, notebook):
    data = json.loads((reference / "examples" / "rendered_examples.json").read_text(encoding="utf-8"))
    seed = next(case for case in data["cases"] if case["name"] == "seed_example_from_google_notebook")["inputs"]
    rendered = render(seed["messages"], seed["tools"])
    assert rendered.text == notebook[0]
    assert span_texts(rendered) == ["<start_function_call>call:search_knowledge_base{query:<escape>travel meal "
                                    "reimbursement limit policy<escape>}<end_function_call><start_function_response>"]


GOOGLE_WEATHER = {"type": "function", "function": {
    "name": "get_current_weather", "description": "Gets the current weather in a given location.",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": 'The city and state, e.g. "San Francisco, CA" or "Tokyo, JP"'},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                 "description": "The unit to return the temperature in."}}, "required": ["location"]}}}


def test_google_notebook_full_sequence(reference, notebook, tokenizer):
    data = json.loads((reference / "examples" / "google_functiongemma_notebook_outputs.json").read_text("utf-8"))
    messages = data["items"][1]["messages_used"]
    text = notebook[1]
    prompt_end = text.index("<end_function_response>") + len("<end_function_response>")
    assert render(messages, [GOOGLE_WEATHER], add_generation_prompt=True).text == text[:prompt_end]
    generated = text[prompt_end:]
    assert parse(generated) == {"role": "assistant", "content": generated[:-len("<end_of_turn>")],
                                "tool_calls": [], "parse_error": None, "reasoning": None}
    full = render(messages + [parse(generated)], [GOOGLE_WEATHER])
    assert full.text == text + "\n"
    assert span_texts(full) == [
        "<start_function_call>call:get_current_weather{location:<escape>Tokyo, Japan<escape>}<end_function_call>"
        "<start_function_response>", generated]
    # The notebook decoded the model's ids back to this text: ours encode it to the same ids.
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_google_notebook_generations_parse_and_render_back(notebook):
    """Outputs 2-4 are what the model generated; rendering the parsed turn gives them back exactly."""
    single, parallel, text_answer = notebook[2:5]
    assert parse(single) == {"role": "assistant", "content": None, "parse_error": None, "reasoning": None,
                             "tool_calls": [call("search_google", query="AAPL stock price")]}
    assert parse(parallel)["tool_calls"] == [call("search_knowledge_base", query="Floor plan for Building B"),
                                             call("search_google", query="Floor plan for Building B")]
    assert parse(text_answer)["content"] == text_answer[:-len("<end_of_turn>")]
    for generated in (single, parallel, text_answer):
        messages = [user("q"), parse(generated)]
        assert generated_part(messages, 1).rstrip("\n") == generated
        assert span_texts(render(messages)) == [generated]


@pytest.mark.slow
def test_token_ids_equal_transformers_apply_chat_template(reference, reference_tokenizer_dir, tokenizer):
    """HF's own path (apply_chat_template, tokenize=True) gives the same ids as render + encode."""
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(str(reference_tokenizer_dir("functiongemma")))
    chat_template = (reference / "templates" / "functiongemma-270m-it.jinja").read_text(encoding="utf-8")
    for name, (messages, tools, add_generation_prompt) in CASES.items():
        hf_ids = hf.apply_chat_template(copy.deepcopy(messages), tools=copy.deepcopy(tools), chat_template=chat_template,
                                        add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=True)
        assert tokenizer.encode(render(messages, tools, add_generation_prompt).text) == hf_ids["input_ids"], name


# ---------------------------------------------------------------------------------------------------
# Trained spans

@pytest.mark.parametrize("name", CASES)
def test_spans_are_what_the_template_adds_after_the_generation_prompt(name, template):
    messages, tools, add_generation_prompt = CASES[name]
    rendered = render(messages, tools)
    assert rendered.spans == expected_spans(template, messages, tools)


def test_builtin_data_renders_like_the_template(template):
    """Every built-in example (tool results there are JSON strings: they render as {value:<escape>...})."""
    from minifc.data import BUILTIN_TEST, BUILTIN_TRAIN
    examples = [json.loads(line) for path in (BUILTIN_TRAIN, BUILTIN_TEST) if path.is_file()
                for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not examples:
        pytest.skip("no built-in data")
    for number, example in enumerate(examples):
        messages, tools = example["messages"], example.get("tools")
        rendered = render(messages, tools)
        assert rendered.text == oracle(template, messages, tools), number
        if number % 8 == 0:  # the span oracle renders twice per assistant turn: a sample keeps this fast
            assert rendered.spans == expected_spans(template, messages, tools), number
        for k, message in assistant_messages(messages):
            assert parse(generated_part(messages, k))["tool_calls"] == message.get("tool_calls", []), number


@pytest.mark.parametrize("name", CASES)
def test_spans_at_token_level(name, tokenizer):
    messages, tools, add_generation_prompt = CASES[name]
    rendered = render(messages, tools, add_generation_prompt)
    ids, mask = trained_token_mask(rendered, tokenizer)
    trained = [i for i, m in zip(ids, mask) if m]
    # Never trained: <bos>, turn headers, declarations, result bodies' closing token.
    assert not {2, 105, 46, 47, 51} & set(trained)
    # Each trained assistant turn's stop token is trained, and no other <end_of_turn> is.
    assistant_text_turns = sum(1 for m in messages if m["role"] == "assistant" and not m.get("tool_calls"))
    assert trained.count(106) == assistant_text_turns
    # Every <start_function_response> that directly follows a call is trained; the others are not.
    for i, token in enumerate(ids):
        if token == 50:
            assert mask[i] == (ids[i - 1] == 49), (name, i)
    # The role header that opens a model turn is never trained.
    for i in range(len(ids) - 2):
        if ids[i] == 105 and tokenizer.decode(ids[i + 1:i + 3]) == "model\n":
            assert not any(mask[i:i + 3])
    # The trained tokens decode exactly to the span texts.
    runs, current = [], []
    for token, m in zip(ids, mask):
        if m:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    runs += [tokenizer.decode(current)] if current else []
    assert runs == span_texts(rendered)


def test_spans_exact_for_full_flow():
    messages, tools, _ = CASES["call_result_answer"]
    assert span_texts(render(messages, tools)) == [
        "<start_function_call>call:get_weather{city:<escape>Paris<escape>,unit:<escape>celsius<escape>}"
        "<end_function_call><start_function_response>",
        "It is 21 °C and sunny in Paris.<end_of_turn>"]


def test_spans_exact_for_user_after_tool_quirk():
    messages, tools, _ = CASES["user_after_tool_result"]
    rendered = render(messages, tools)
    assert "<end_function_response>And in London?<end_of_turn>\n<start_of_turn>model\n" in rendered.text
    assert span_texts(rendered) == [
        "<start_function_call>call:get_weather{city:<escape>Paris<escape>,unit:<escape>celsius<escape>}"
        "<end_function_call><start_function_response>",
        "<start_function_call>call:get_weather{city:<escape>London<escape>}<end_function_call><start_function_response>"]


def test_train_overrides():
    messages = [{"role": "system", "content": "Sys text.", "train": True}, {**ASK, "train": True},
                {**calls(PARIS), "train": False}, {**SUNNY, "train": True}, answer("Sunny."),
                user("Thanks"), {**answer("You're welcome."), "train": False}]
    rendered = render(messages, [WEATHER])
    assert span_texts(rendered) == [
        "Sys text.", "What's the weather in Paris?",
        "<start_function_response>response:get_weather{condition:<escape>sunny<escape>,temperature:21}"
        "<end_function_response>Sunny.<end_of_turn>"]
    assert render([user("Hi"), {**answer("Hello"), "train": False}]).spans == []


def test_no_spans_without_assistant_messages():
    for name in ("prompt_with_tools", "prompt_custom_system_with_tools", "schema_quirks"):
        messages, tools, add_generation_prompt = CASES[name]
        assert render(messages, tools, add_generation_prompt).spans == []


# ---------------------------------------------------------------------------------------------------
# parse()

@pytest.mark.parametrize("name", [name for name, case in CASES.items() if assistant_messages(case[0])])
def test_parse_inverts_render_on_every_case(name):
    messages, tools, _ = CASES[name]
    for k, message in assistant_messages(messages):
        parsed = parse(generated_part(messages, k))
        content = message.get("content")
        assert parsed == {"role": "assistant", "content": content.strip() or None if content else None,
                          "tool_calls": message.get("tool_calls", []), "parse_error": None, "reasoning": None}, k


def test_parse_values():
    text = ("Sure.<start_function_call>call:f{a:1,b:-2.5,c:1e-07,d:true,e:false,f:None,g:<escape> x, y: {z} <escape>,"
            "h:[1,[2,<escape>3<escape>]],i:{j:{k:[]},l:{}},m:bare text,n:21.0,o:100000000000000000000}<end_function_call>"
            "<start_function_call>call:ns.g-2{}<end_function_call><start_function_response>")
    assert parse(text) == {"role": "assistant", "content": "Sure.", "parse_error": None, "reasoning": None, "tool_calls": [
        call("f", a=1, b=-2.5, c=1e-07, d=True, e=False, f=None, g=" x, y: {z} ", h=[1, [2, "3"]],
             i={"j": {"k": []}, "l": {}}, m="bare text", n=21.0, o=10**20),
        call("ns.g-2")]}
    assert isinstance(parse(text)["tool_calls"][0]["function"]["arguments"]["n"], float)


def test_parse_stops_and_truncation():
    assert parse("Hello<end_of_turn>") == {"role": "assistant", "content": "Hello", "tool_calls": [], "parse_error": None, "reasoning": None}
    assert parse("Hello<eos>")["content"] == "Hello"
    assert parse("Hello")["content"] == "Hello"  # cut by max_new_tokens: no stop token
    assert parse("")["content"] is None and parse("")["parse_error"] is None
    # Anything after the stop token is not part of the turn.
    assert parse("Hi<end_of_turn>\n<start_of_turn>user\nmore")["content"] == "Hi"
    only_call = "<start_function_call>call:f{a:1}<end_function_call>"
    for ending in ("", "<start_function_response>", "<end_of_turn>", "<eos>",
                   "<start_function_response>response:f{x:1}<end_function_response>"):
        assert parse(only_call + ending)["tool_calls"] == [call("f", a=1)], ending


MALFORMED = [
    "<start_function_call>call:f{a:<escape>x}<end_function_call>",   # unclosed <escape>
    "<start_function_call>call:f{a:1",                               # truncated arguments
    "<start_function_call>call:f{a:1}",                              # missing <end_function_call>
    "<start_function_call>f{a:1}<end_function_call>",                # missing call:
    "<start_function_call>call:{a:1}<end_function_call>",            # missing name
    "<start_function_call>call:f{a}<end_function_call>",             # key without value
    "<start_function_call>call:f{:1}<end_function_call>",            # value without key
    "<start_function_call>call:f{a:1,}<end_function_call>",          # trailing comma
    "<start_function_call>call:f{a:[1,2}<end_function_call>",        # unbalanced bracket
    "<start_function_call>call:f{a:{b:1}<end_function_call>",        # unbalanced brace
    "<start_function_call>call:f a:1<end_function_call>",            # no braces
    "<start_function_call>call:f{a:1}<end_function_call>and then text<end_of_turn>",  # text after calls
    "<start_function_call>call:f{a:1}<end_function_call><start_function_call>",       # dangling call
    "<start_function_call>",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_parse_malformed_reports_an_error(text):
    parsed = parse(text)
    assert isinstance(parsed["parse_error"], str) and parsed["parse_error"]
    assert parsed["tool_calls"] == [] and parsed["role"] == "assistant"


FRAGMENTS = ["<start_function_call>", "<end_function_call>", "<start_function_response>", "<end_of_turn>",
             "<escape>", "call:", "f", "{", "}", "[", "]", ",", ":", "x", "1", "-", ".", "None", "true", " ", "\n"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join) | st.text(max_size=60))
def test_parse_never_raises(text):
    parsed = parse(text)
    assert set(parsed) == {"role", "content", "tool_calls", "parse_error", "reasoning"}
    assert parsed["parse_error"] is None or parsed["tool_calls"] == []


# ---------------------------------------------------------------------------------------------------
# Round trip over random arguments (hypothesis); render also checked against the template there.

CONTROL = ["<escape>", "<start_function_call>", "<end_function_call>", "<start_function_response>",
           "<end_function_response>", "<end_of_turn>", "<start_of_turn>", "<eos>", "<bos>"]
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=20).filter(lambda s: not any(c in s for c in CONTROL))
keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
scalars = (texts | st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False)
           | st.booleans() | st.none())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                      max_leaves=8)
tool_calls = st.lists(st.builds(lambda name, arguments: {"type": "function", "function": {"name": name, "arguments": arguments}},
                                st.from_regex(r"[a-z_][a-z0-9_.\-]{0,10}", fullmatch=True),
                                st.dictionaries(keys, values, max_size=4)), max_size=3)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(content=st.none() | texts, tool_calls=tool_calls)
def test_round_trip_random_turns(content, tool_calls, template):
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    messages = [user("go"), message]
    rendered = render(messages)
    assert rendered.text == oracle(template, messages)
    generated = generated_part(messages, 1)
    assert span_texts(rendered) == [generated.rstrip("\n")]
    assert parse(generated) == {"role": "assistant", "content": (content or "").strip() or None,
                                "tool_calls": tool_calls, "parse_error": None, "reasoning": None}


# ---------------------------------------------------------------------------------------------------
# Bad input and the format object

def test_bad_input_gets_a_clear_error(template):
    with pytest.raises(ValueError, match="arguments of type str; pass a dict"):
        render([user("x"), {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}])
    with pytest.raises(ValueError, match='Add "type": "object"'):
        render([user("x")], [{"type": "function", "function": {"name": "f", "parameters": {"properties": {}}}}])
    with pytest.raises(ValueError, match="renders text only"):
        render([{"role": "user", "content": [{"type": "image"}]}])
    with pytest.raises(ValueError, match="at least one message"):
        render([])
    with pytest.raises(TypeError, match="no format options"):
        render([user("x")], date_string="26 Jul 2024")
    # Where the template itself refuses, so does minifc (with the message index).
    for bad, template_error in (({"role": "tool", "name": "f", "content": ["not a dict"]}, TemplateError),
                                ({"role": "tool", "content": "answers no call"}, TemplateError),
                                ({"role": "tool", "content": [{"name": "f", "response": "text"}]}, AttributeError)):
        with pytest.raises(template_error):
            oracle(template, [user("x"), bad])
        with pytest.raises(ValueError, match=r"messages\[1\] \(tool\)"):
            render([user("x"), bad])


def test_nameless_tool_results_take_the_name_of_the_call_they_answer(template):
    """The template refuses a tool message without "name"; minifc renders what the template renders once
    each result is named after the call it answers, in order."""
    named = [DEV, user("Weather and time?"), calls(PARIS, call("get_time", timezone="UTC")),
             result("get_weather", "sunny"), result("get_time", {"time": "14:05"}), answer("ok"),
             user("again"), calls(call("get_time", timezone="UTC")), result("get_time", "15:00")]
    nameless = [{key: value for key, value in m.items() if key != "name"} for m in named]
    with pytest.raises(TemplateError):
        oracle(template, nameless, [WEATHER, TIME])
    assert render(nameless, [WEATHER, TIME]) == render(named, [WEATHER, TIME])
    assert render(nameless, [WEATHER, TIME]).text == oracle(template, named, [WEATHER, TIME])
    # A named result may come in any order; the nameless one takes the call still unanswered.
    out_of_order = named[:3] + [result("get_time", {"time": "14:05"}), nameless[3]]
    assert "response:get_weather{value:<escape>sunny<escape>}" in render(out_of_order, [WEATHER, TIME]).text


def test_format_object():
    assert get_format("functiongemma") is FORMAT
    assert FORMAT.render is render and FORMAT.parse is parse
    assert set(FORMAT.stop_tokens) == {"<end_of_turn>", "<start_function_response>", "<eos>"}


def test_control_tokens_are_single_ids_and_cover_every_rendering(tokenizer):
    for token in FORMAT.control_tokens + FORMAT.stop_tokens:
        assert len(tokenizer.encode(token)) == 1, token
    assert sorted(tokenizer.stop_ids(FORMAT)) == [1, 50, 106]  # the checkpoint's generation_config stops
    # Every control token the renders of all cases contain is declared.
    control_ids = {tokenizer.token_id(token) for token in FORMAT.control_tokens}
    for messages, tools, add_generation_prompt in CASES.values():
        ids = tokenizer.encode(render(messages, tools, add_generation_prompt).text)
        assert {i for i in ids if i in range(46, 53) or i in (1, 2, 105, 106)} <= control_ids


@pytest.mark.parametrize("name, arguments, match", [
    ("get weather", {"city": "Paris"}, r"function name 'get weather' cannot be written"),
    ("get{weather}", {"city": "Paris"}, r"function name 'get\{weather\}' cannot be written"),
    ("get_weather", {"ci:ty": "Paris"}, r"argument name 'ci:ty' of 'get_weather' cannot be written"),
    ("get_weather", {"where": [{"ci,ty": "Paris"}]}, r"argument name 'ci,ty' of 'get_weather' cannot be written"),
])
def test_calls_that_parse_could_not_read_back_are_refused(name, arguments, match):
    """A call is trained only if parse() reads back what it trains: names and argument keys are written bare."""
    with pytest.raises(ValueError, match=r"^messages\[1\] \(assistant\): " + match):
        render([user("x"), calls(call(name, **arguments))])
    readable = render([user("x"), calls(call("get_weather", **{"the city": "Paris", "where": [{"a b": 1}]}))])
    assert parse(readable.text.split("<start_of_turn>model\n")[1])["tool_calls"] == [
        call("get_weather", **{"the city": "Paris", "where": [{"a b": 1}]})]
