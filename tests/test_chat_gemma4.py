"""minifc.chat.gemma4 against Google's Gemma 4 templates (both variants), Google's printed prompts and the
reference's rendered examples, with the real Gemma 4 tokenizer.

Oracles: the templates rendered by tests/jinja_oracle.py (text), the real tokenizer (ids, token boundaries),
`examples/google_gemma4_examples.json` (Google's notebook prompts and model outputs) and
`examples/rendered_examples_qwen3_gemma4.json` (transformers' own renders). What a model turn trains is
checked against the template too: it is what the template adds after the generation prompt, up to and
including the turn's stop token, and never a tool result.
"""

import copy
import json

import pytest
from hypothesis import given, settings, strategies as st

from jinja_oracle import load_template
from minifc.chat import get_format
from minifc.chat.gemma4 import FORMAT, FORMAT_31B, parse, render
from minifc.encode import encode_example, inspect_example, label_tokens
from minifc.tokenizer import Tokenizer

TEMPLATES = {"gemma4": "gemma-4-E2B-E4B-it.jinja", "gemma4-31b": "gemma-4-31B-26B-A4B-it.jinja"}

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
        "attendees": {"type": "array", "description": "Attendee emails", "items": {"type": "string"}},
        "location": {"type": "object", "description": "Where", "required": ["city"], "properties": {
            "city": {"type": "string", "description": "City"}, "room": {"type": "string"}}},
        "tags": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}},
                                            "required": ["name"]}},
        "note": {"type": "string", "nullable": True}},
        "required": ["title", "duration_minutes"]}}}
# Every declaration rule and quirk of FORMATS.md 8.3 in one tool.
QUIRKY = {"type": "function", "function": {
    "name": "quirky", "description": "Schema corner cases: \"quotes\", {braces}, ünïcode.",
    "parameters": {"type": "OBJECT", "properties": {
        "Beta": {"type": "string", "description": "upper-case name sorts case-insensitively"},
        "alpha": {"type": "integer", "description": "enum on a non-string is dropped", "enum": [1, 2]},
        "_under": {"type": "number", "minimum": 0, "default": 1.5},
        "type": {"type": "string", "description": "a property named type is kept"},
        "maybe": {"type": ["string", "null"], "description": "union type"},
        "loose": {"type": "object", "description": "no properties", "additionalProperties": {"type": "string"},
                  "title": "Loose", "required": ["x"]},
        "choices": {"type": "array", "items": {"type": "string", "enum": ["a", 1, {"k": "v"}], "nullable": None}},
        "multi": {"type": "array", "items": {"type": ["integer", "null"]}},
        "empty_items": {"type": "array", "description": "items {}", "items": {}},
        "nothing": {"description": None}},
        "required": ["type", "Beta"]}}}
NO_PARAMS = {"type": "function", "function": {"name": "ping", "description": "Ping."}}
WITH_RESPONSE = {"type": "function", "function": {"name": "pong", "parameters": {"type": "object"},
                                                  "response": {"description": "Pong.", "type": "object"}}}

SYSTEM = {"role": "system", "content": "  You are a helpful assistant.\n"}
ASK = {"role": "user", "content": "What's the weather in Paris?"}


def call(name, id=None, **arguments):
    tool_call = {"type": "function", "function": {"name": name, "arguments": arguments}}
    return tool_call if id is None else {"id": id, **tool_call}


def calls(*tool_calls, content=None, reasoning=None):
    message = {"role": "assistant", "tool_calls": list(tool_calls)}
    if content is not None:
        message["content"] = content
    if reasoning is not None:
        message["reasoning"] = reasoning
    return message


def user(text):
    return {"role": "user", "content": text}


def answer(text, reasoning=None):
    return {"role": "assistant", "content": text, **({"reasoning": reasoning} if reasoning else {})}


def result(name, content, id=None):
    return {"role": "tool", "name": name, "content": content, **({"tool_call_id": id} if id else {})}


PARIS = call("get_weather", city="Paris", unit="celsius")
SUNNY = result("get_weather", "sunny, 21 °C")
TRICKY = 'He said "hi", {not: json} [1, 2]\nline two\ttab: é ü 東京 😀 — a < b > c, ok'

# name -> (messages, tools, add_generation_prompt, options); every result here is a string or text parts, or
# named by matching ids, so the template itself renders it (the pitfalls are tested separately below).
CASES = {
    "chat": ([user("Hi!"), answer("Hello! How can I help?")], None, False, {}),
    "chat_system_two_turns": ([SYSTEM, user(" Hi "), answer("Hello."), user("And now?"), answer("\n Still.\n")],
                              None, False, {}),
    "developer_parts": ([{"role": "developer", "content": [{"type": "text", "text": " Be brief. "},
                                                           {"type": "text", "text": "Be kind."}]}, user("Hi")],
                        None, True, {}),
    "user_parts": ([{"role": "user", "content": [{"type": "text", "text": " a "}, {"type": "text", "text": "b"}]}],
                   None, True, {}),
    "prompt_with_tools": ([ASK], [WEATHER, TIME], True, {}),
    "prompt_system_tools": ([SYSTEM, ASK], [WEATHER], True, {}),
    "one_call": ([SYSTEM, ASK, calls(PARIS)], [WEATHER], False, {}),
    "call_result_answer": ([SYSTEM, ASK, calls(PARIS), SUNNY, answer("It is 21 °C and sunny in Paris.")],
                           [WEATHER], False, {}),
    "prompt_after_result": ([SYSTEM, ASK, calls(PARIS), SUNNY], [WEATHER], True, {}),
    "parallel_with_ids": ([user("Weather and time in Paris?"),
                           calls(call("get_weather", "c1", city="Paris"), call("get_time", "c2", timezone="Europe/Paris")),
                           result("get_weather", "sunny", "c1"), result("get_time", "14:05", "c2"),
                           answer("Sunny; 14:05.")], [WEATHER, TIME], False, {}),
    "two_rounds": ([SYSTEM, ASK, calls(PARIS), SUNNY, answer("Sunny, 21."), user("And the time there?"),
                    calls(call("get_time", timezone="Europe/Paris")), result("get_time", "14:05"),
                    answer("It is 14:05.")], [WEATHER, TIME], False, {}),
    "multi_step_in_one_turn": ([ASK, calls(PARIS), SUNNY, calls(call("get_time", timezone="Europe/Paris")),
                                result("get_time", "14:05"), answer("Sunny at 14:05.")], [WEATHER, TIME], False, {}),
    "user_after_result": ([ASK, calls(PARIS), SUNNY, user("thanks"), answer("You're welcome.")], [WEATHER], False, {}),
    "call_then_user_without_result": ([ASK, calls(PARIS), user("Never mind."), answer("OK.")], [WEATHER], False, {}),
    "call_then_answer_without_result": ([ASK, calls(PARIS), answer("B")], [WEATHER], False, {}),
    "content_plus_call": ([ASK, calls(PARIS, content="  Let me check.  ")], [WEATHER], False, {}),
    "content_plus_call_result": ([ASK, calls(PARIS, content="Let me check."), SUNNY, answer("Sunny.")],
                                 [WEATHER], False, {}),
    "content_plus_call_result_prompt": ([ASK, calls(PARIS, content="Let me check."), SUNNY], [WEATHER], True,
                                        {"enable_thinking": True}),
    "consecutive_answers": ([user("q"), answer("A"), answer("B")], None, False, {}),
    "text_parts_result": ([ASK, calls(PARIS), {"role": "tool", "name": "get_weather", "content": [
        {"type": "text", "text": " sunny "}, {"type": "text", "text": "21"}]}], [WEATHER], True, {}),
    "empty_and_none_results": ([ASK, calls(call("get_weather", "1", city="Paris"), call("get_time", "2", timezone="UTC")),
                                result("get_weather", "", "1"),
                                {"role": "tool", "tool_call_id": "2", "content": None}, answer("No data.")],
                               [WEATHER, TIME], False, {}),
    "tricky_strings": ([user(TRICKY), calls(call("get_weather", city=TRICKY, unit='{"x": null}')),
                        result("get_weather", TRICKY), answer(TRICKY)], [WEATHER], False, {}),
    "nested_values": ([user("Book it."), calls(call(
        "create_event", title="Sync {weekly}, team", duration_minutes=30, priority=0.5, all_day=False,
        attendees=["a@x.com", "b@x.com"], location={"room": "4B", "city": "Paris", "floor": {"n": -2, "ok": True}},
        tags=[{"name": "work"}], note=None, ratio=21.0, tiny=1e-07, big=10**20, empty_list=[], empty_obj={},
        matrix=[[1, 2], [3.5, None]], Zeta="z", alpha="a"))], [EVENT], False, {}),
    "schema_quirks": ([user("?")], [QUIRKY, NO_PARAMS, WITH_RESPONSE, EVENT], True, {}),
    "empty_arguments": ([user("ping"), calls(call("ping"))], [NO_PARAMS], False, {}),
    "empty_assistant": ([user("Say nothing."), answer(""), user("Thanks"), {"role": "assistant", "content": None}],
                        None, False, {}),
    "system_not_first": ([user("Hi"), {"role": "system", "content": "Late system."}, answer("Hello")], None, False, {}),
    "trailing_call_generation_prompt": ([ASK, calls(PARIS)], [WEATHER], True, {}),
    # thinking
    "thinking_prompt": ([ASK], [WEATHER], True, {"enable_thinking": True}),
    "thinking_no_system_no_tools": ([user("Hello.")], None, True, {"enable_thinking": True}),
    "thinking_call_and_answer": ([SYSTEM, ASK, calls(PARIS, reasoning="I should call get_weather."), SUNNY,
                                  answer("Sunny.", reasoning="Tool says sunny.")], [WEATHER], False,
                                 {"enable_thinking": True}),
    "thinking_prompt_after_result": ([ASK, calls(PARIS, reasoning="Call it."), SUNNY], [WEATHER], True,
                                     {"enable_thinking": True}),
    "reasoning_before_last_user_dropped": ([user("2+2?"), answer("4", reasoning="Two and two."), user("3+3?"),
                                            answer("6", reasoning="Three and three.")], None, False,
                                           {"enable_thinking": True}),
    "reasoning_with_thinking_off": ([user("2+2?"), answer("4", reasoning="  Two and two.\n")], None, False, {}),
    "preserve_thinking": ([user("q"), calls(PARIS, reasoning="R1"), SUNNY, answer("Sunny.", reasoning="R2"),
                           user("again")], [WEATHER], True, {"enable_thinking": True, "preserve_thinking": True}),
    "reasoning_content_key": ([user("q"), {"role": "assistant", "content": "A", "reasoning_content": "R"}],
                              None, False, {}),
}


@pytest.fixture(scope="module", params=list(TEMPLATES))
def variant(request, reference):
    """(format, loaded template) for each of the two variants."""
    return get_format(request.param), load_template(reference / "templates" / TEMPLATES[request.param])


@pytest.fixture(scope="module")
def e2b_template(reference):
    return load_template(reference / "templates" / TEMPLATES["gemma4"])


@pytest.fixture(scope="module")
def tokenizer(reference_tokenizer_dir):
    return Tokenizer.from_dir(reference_tokenizer_dir("gemma-4"))


def text_then_calls(messages):
    """A message with text and calls as two assistant messages, the text first: how minifc writes it (the
    template alone would move the text after the results; see the module docstring)."""
    split = []
    for message in messages:
        if message["role"] == "assistant" and message.get("tool_calls") and message.get("content"):
            calls_only = {key: value for key, value in message.items() if key not in ("content", "reasoning")}
            split += [{key: value for key, value in message.items() if key != "tool_calls"}, calls_only]
        else:
            split.append(message)
    return split


def oracle(template, messages, tools=None, add_generation_prompt=False, **options):
    # The template gets its own copy: minifc must not depend on (or mutate) anything shared.
    return template.render(messages=copy.deepcopy(text_then_calls(messages)), tools=copy.deepcopy(tools),
                           add_generation_prompt=add_generation_prompt, bos_token="<bos>", **options)


def plain_oracle(template, messages, tools=None, add_generation_prompt=False, **options):
    """The template on the messages as they are."""
    return template.render(messages=copy.deepcopy(messages), tools=copy.deepcopy(tools),
                           add_generation_prompt=add_generation_prompt, bos_token="<bos>", **options)


EMPTY_THOUGHT = "<|channel>thought\n<channel|>"


def served_render(template, messages, tools=None, **options):
    """The template's render, except that a last model turn of its own starts as the template's generation
    prompt served it: with 31B's template and thinking off, that prompt ends with an empty thought channel
    its history render lacks (gemma4-31b writes it; module docstring). For every other render: the render."""
    full = oracle(template, messages, tools, **options)
    if not messages or messages[-1]["role"] != "assistant":
        return full
    prompt = oracle(template, messages[:-1], tools, True, **options)
    header_end = len(prompt) - len(EMPTY_THOUGHT)
    if (prompt.endswith(EMPTY_THOUGHT) and full.startswith(prompt[:header_end])
            and not full.startswith("<|channel>", header_end)):
        return prompt + full[header_end:]
    return full


def span_texts(rendered, train_on=None):
    spans = rendered.spans if train_on is None else rendered.trained_spans(train_on)
    return [rendered.text[start:end] for start, end in spans]


def trained_text(example, tokenizer, fmt=FORMAT, **options):
    """The trained tokens of encode_example (real tokenizer), decoded run by run."""
    ids, labels = encode_example(example, tokenizer, fmt, **options)
    runs, current = [], []
    for token, label in zip(ids, labels):
        if label != -100:
            current.append(token)
        elif current:
            runs, current = runs + [tokenizer.decode(current)], []
    return runs + ([tokenizer.decode(current)] if current else [])


# ---------------------------------------------------------------------------------------------------
# Text and token ids equal the templates'

@pytest.mark.parametrize("name", CASES)
def test_render_equals_template(name, variant, tokenizer):
    fmt, template = variant
    messages, tools, add_generation_prompt, options = CASES[name]
    if add_generation_prompt:
        expected = oracle(template, messages, tools, add_generation_prompt, **options)
    else:
        expected = served_render(template, messages, tools, **options)  # the template's text but for 31B's last turn
    rendered = fmt.render(messages, tools=tools, add_generation_prompt=add_generation_prompt, **options)
    assert rendered.text == expected
    ids = tokenizer.encode(rendered.text)
    assert ids == tokenizer.encode(expected) and ids[0] == 2 and ids.count(2) == 1  # one <bos>, not doubled


def test_every_prefix_equals_the_template(e2b_template):
    """encode.py renders prefixes messages[:k] of a conversation (reasoning makes renders non-prefix-preserving):
    each prefix, with and without the generation prompt, is the template's text too."""
    for name, (messages, tools, _, options) in CASES.items():
        for k in range(len(messages) + 1):
            for add_generation_prompt in (False, True):
                expected = oracle(e2b_template, messages[:k], tools, add_generation_prompt, **options)
                assert render(messages[:k], tools, add_generation_prompt, **options).text == expected, (name, k)


def test_31b_writes_the_served_empty_thought_only_on_a_last_model_turn(reference):
    template = load_template(reference / "templates" / TEMPLATES["gemma4-31b"])
    messages, tools, _, _ = CASES["call_result_answer"]
    served = FORMAT_31B.render(messages[:3], tools).text  # the call is the last message: as served
    assert served.endswith("<|turn>model\n" + EMPTY_THOUGHT + PARIS_CALL + "<|tool_response>")
    assert served != oracle(template, messages[:3], tools)
    assert served.startswith(FORMAT_31B.render(messages[:2], tools, add_generation_prompt=True).text)
    # the full conversation ends with a message that continues the turn: the template's text, no channel
    assert FORMAT_31B.render(messages, tools).text == oracle(template, messages, tools) == render(messages, tools).text
    assert span_texts(FORMAT_31B.render(messages[:3], tools)) == [PARIS_CALL + "<|tool_response>"]  # not trained
    thinking = FORMAT_31B.render(messages[:3], tools, enable_thinking=True).text
    assert thinking == render(messages[:3], tools, enable_thinking=True).text and EMPTY_THOUGHT not in thinking


def test_render_does_not_mutate_its_inputs():
    messages, tools, _, _ = CASES["nested_values"]
    before = copy.deepcopy((messages, tools))
    render(messages, tools)
    assert (messages, tools) == before


def test_reference_rendered_examples(reference):
    """transformers' own renders: equal wherever minifc renders, and the differences are the decisions."""
    data = json.loads((reference / "examples" / "rendered_examples_qwen3_gemma4.json").read_text("utf-8"))
    cases = [case for case in data["cases"] if case["model"].startswith("gemma-4")]
    large_template = load_template(reference / "templates" / TEMPLATES["gemma4-31b"])
    decided = {  # case -> what minifc does instead (module docstring)
        "tool_content_dict": "renders", "legacy_tool_responses_on_assistant": "refuses",
        "legacy_response_value_types": "refuses", "legacy_string_response": "refuses",
        "inline_thought_channel_in_content_stripped": "refuses", "arguments_as_json_string_raises": "refuses",
        "user_image_part": "refuses", "tool_messages_without_ids_get_last_call_name": "names by order",
        "call_content_rendered_after_responses": "text before calls"}
    assert len(cases) == 66
    for case in cases:
        fmt = FORMAT_31B if "31B" in case["template"] else FORMAT
        inputs = case["inputs"]
        render_it = lambda: fmt.render(inputs["messages"], inputs["tools"], inputs["add_generation_prompt"],
                                       **inputs["extra"])
        if case["name"] not in decided:
            expected = case["output"]
            if fmt is FORMAT_31B and not inputs["add_generation_prompt"]:
                expected = served_render(large_template, inputs["messages"], inputs["tools"], **inputs["extra"])
                assert expected.replace(EMPTY_THOUGHT, "", 1) == case["output"] or expected == case["output"]
            assert render_it().text == expected, case["name"]
        elif decided[case["name"]] == "refuses":
            with pytest.raises(ValueError):
                render_it()
        else:
            assert render_it().text != case.get("output"), case["name"]


@pytest.fixture(scope="module")
def google(reference):
    return json.loads((reference / "examples" / "google_gemma4_examples.json").read_text("utf-8"))["notebook_examples"]


def as_tool_messages(messages):
    """Google's notebook form (tool_responses on the assistant message) as minifc's tool messages."""
    converted = []
    for message in messages:
        message = dict(message)
        responses = message.pop("tool_responses", [])
        converted.append(message)
        converted += [{"role": "tool", "name": r["name"], "content": r["response"]} for r in responses]
    return converted


def test_google_notebook_prompts_and_generations(google, tokenizer):
    """Google's printed prompts, byte for byte; the model's printed generations parse and render back."""
    by_id = {example["id"]: example for example in google}
    for name in ("cell11_json_schema_tool", "cell13_python_function_tool"):
        example = by_id[name]
        inputs = example["inputs"]
        prompt = render(inputs["messages"], inputs["tools"], add_generation_prompt=True).text
        assert prompt == example["rendered_prompt_part"]
        assert example["printed_output_verbatim"] == prompt + example["generated_part"]
        generated = example["generated_part"].rstrip("\n")  # TextStreamer's final newline
        parsed = parse(generated)
        assert parsed == {"role": "assistant", "content": None, "parse_error": None, "reasoning": None,
                          "tool_calls": [call("get_current_temperature", location="London")]}
        full = render(inputs["messages"] + [parsed], inputs["tools"])
        assert full.text == prompt + generated and span_texts(full) == [generated]
    raw = by_id["cell16_model_turn_raw_output"]["printed_output_verbatim"].split("Output: ")[1].rstrip("\n")
    assert parse(raw)["tool_calls"] == [call("get_current_weather", location="Tokyo, JP")]


def test_google_full_sequence_with_results_in_the_model_turn(google, tokenizer):
    """Cell 23: Google's own form (tool_responses, a dict result) printed by Google; minifc renders the same
    conversation, written as tool messages with the dict as content, to the same text and ids."""
    example = next(e for e in google if e["id"] == "cell23_full_sequence_decoded")
    inputs = example["inputs_of_final_generation"]
    printed = example["printed_output_verbatim"].split("Output: ")[1].removesuffix("\n")  # print()'s newline
    messages = as_tool_messages(inputs["messages"])
    prompt = render(messages, inputs["tools"], add_generation_prompt=True).text
    assert printed.startswith(prompt)
    generated = printed[len(prompt):]
    assert generated == "The current weather in Tokyo is 15 degrees and sunny.<turn|>"  # ended by its stop token
    full = render(messages + [parse(generated)], inputs["tools"])
    assert full.text == printed + "\n"
    assert tokenizer.decode(tokenizer.encode(printed)) == printed
    # trained: the call and its stop token, the answer and <turn|>; never the result
    assert span_texts(full) == ['<|tool_call>call:get_current_weather{location:<|"|>Tokyo, JP<|"|>}<tool_call|>'
                                "<|tool_response>", generated]


# ---------------------------------------------------------------------------------------------------
# The pitfalls, decided (module docstring)

def test_results_without_ids_are_named_after_the_call_they_answer(e2b_template):
    named = [user("Weather and time?"), calls(PARIS, call("get_time", timezone="UTC")),
             result("get_weather", "sunny"), result("get_time", "14:05"), answer("ok")]
    with_ids = [user("Weather and time?"), calls(call("get_weather", "a", city="Paris", unit="celsius"),
                                                 call("get_time", "b", timezone="UTC")),
                result("get_weather", "sunny", "a"), result("get_time", "14:05", "b"), answer("ok")]
    nameless = [{key: value for key, value in m.items() if key != "name"} for m in named]
    # the template names both results get_time (None == None matches the last call) ...
    assert "response:get_time{value:<|\"|>sunny" in oracle(e2b_template, named, [WEATHER, TIME])
    # ... minifc renders what the template renders once ids say which call each result answers
    expected = oracle(e2b_template, with_ids, [WEATHER, TIME])
    assert render(named, [WEATHER, TIME]).text == render(nameless, [WEATHER, TIME]).text == expected
    assert render(with_ids, [WEATHER, TIME]).text == expected


def test_dict_results_render_as_googles_own_form(e2b_template):
    """The template raises on a dict tool content; minifc writes what it writes for tool_responses."""
    dict_result = result("get_weather", {"temperature": 21, "condition": "sunny", "Wind": {"kmh": 5.0, "dir": None}})
    messages = [SYSTEM, ASK, calls(PARIS), dict_result, answer("Sunny.")]
    with pytest.raises(Exception, match="has no attribute 'get'"):
        oracle(e2b_template, messages, [WEATHER])
    native = [SYSTEM, ASK, {**calls(PARIS), "tool_responses": [{"name": "get_weather", "response": dict_result["content"]}]},
              answer("Sunny.")]
    assert render(messages, [WEATHER]).text == oracle(e2b_template, native, [WEATHER])
    assert "response:get_weather{condition:<|\"|>sunny<|\"|>,temperature:21,Wind:{dir:null,kmh:5.0}}" in \
        render(messages, [WEATHER]).text
    with pytest.raises(ValueError, match=r'messages\[2\] \(assistant\): "tool_responses" .* renders identically'):
        render(native, [WEATHER])


def test_text_with_calls_is_written_before_the_calls(e2b_template):
    """The template moves a call message's text after the results; minifc writes it before the calls, as the
    template writes the text and the calls as two consecutive assistant messages."""
    messages, tools, _, _ = CASES["content_plus_call_result"]
    assert "<tool_response|>Let me check.Sunny.<turn|>" in plain_oracle(e2b_template, messages, tools)
    rendered = render(messages, tools)
    assert rendered.text == plain_oracle(e2b_template, text_then_calls(messages), tools)
    assert "<|turn>model\nLet me check." + PARIS_CALL + "<|tool_response>response:" in rendered.text
    assert span_texts(rendered) == ["Let me check." + PARIS_CALL + "<|tool_response>", "Sunny.<turn|>"]
    alone = render(*CASES["content_plus_call"][:2])
    assert alone.text.endswith("<|turn>model\nLet me check." + PARIS_CALL + "<|tool_response>")
    assert rendered.text.startswith(alone.text)  # served as rendered: one sequence
    prompt = render(*CASES["content_plus_call_result_prompt"][:2], add_generation_prompt=True).text
    assert prompt.endswith("<tool_response|>")  # the model continues its turn after the result


PARIS_CALL = '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,unit:<|"|>celsius<|"|>}<tool_call|>'


# ---------------------------------------------------------------------------------------------------
# What is trained

def served_turns(template, messages, tools, options):
    """For each assistant message k whose turn the full render shows as served: what the template adds after
    the generation prompt of messages[:k], up to and including its stop token (the model's output). The thought
    opener that the prompt writes after tool results with thinking on is the prompt's, not the model's: a
    training render labels it REASONING, and encode.py leaves it untrained (it precedes the served turn)."""
    full = oracle(template, messages, tools, **options)
    generated = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = oracle(template, messages[:k], tools, True, **options)
        turn = oracle(template, messages[:k + 1], tools, **options)[len(prompt):].removesuffix("\n")
        if full.startswith(prompt + turn):
            generated.append(turn)
    return generated


# Conversations whose full render does not show every assistant turn as served (encode.py splits them); their
# trained text is checked in test_spans_exact_for_the_full_flow_and_thinking instead.
NOT_SERVED_AS_RENDERED = {"consecutive_answers", "reasoning_before_last_user_dropped"}


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if not case[2]])
def test_trained_text_is_what_the_model_generated(name, e2b_template, tokenizer):
    """In conversations that are prefixes of their continuations, the trained text is exactly what the model
    generates for each assistant turn (the template's render after the prompt), cut at its stop token; and the
    real tokenizer's trained tokens decode to the same text (every span aligns to tokens)."""
    messages, tools, _, options = CASES[name]
    served = served_turns(e2b_template, messages, tools, options)
    all_served = len(served) == sum(m["role"] == "assistant" for m in messages)
    assert all_served == (name not in NOT_SERVED_AS_RENDERED)
    if not all_served:
        return
    merged = "".join(served)
    assert "".join(trained_text({"messages": messages, "tools": tools}, tokenizer, **options)) == merged


def test_spans_exact_for_the_full_flow_and_thinking():
    messages, tools, _, options = CASES["thinking_call_and_answer"]
    assert span_texts(render(messages, tools, **options)) == [
        "<|channel>thought\nI should call get_weather.\n<channel|>" + PARIS_CALL + "<|tool_response>",
        "<|channel>thought\nTool says sunny.\n<channel|>Sunny.<turn|>"]
    messages, tools, _, options = CASES["parallel_with_ids"]
    assert span_texts(render(messages, tools)) == [
        '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_call>call:get_time{timezone:<|"|>'
        'Europe/Paris<|"|>}<tool_call|><|tool_response>', "Sunny; 14:05.<turn|>"]
    messages, tools, _, options = CASES["call_then_answer_without_result"]
    assert span_texts(render(messages, tools)) == [PARIS_CALL + "<|tool_response>B<turn|>"]
    # consecutive assistant messages share one model turn, so the first has no end token of its own
    assert span_texts(render(*CASES["consecutive_answers"][:2])) == ["AB<turn|>"]
    # reasoning before the last user message is not rendered, so not trained (encode.py splits such turns)
    messages, tools, _, options = CASES["reasoning_before_last_user_dropped"]
    assert span_texts(render(messages, tools, **options)) == [
        "4<turn|>", "<|channel>thought\nThree and three.\n<channel|>6<turn|>"]
    assert span_texts(render(messages[:2], tools, **options)) == ["<|channel>thought\nTwo and two.\n<channel|>4<turn|>"]


@pytest.mark.parametrize("name", CASES)
def test_tool_results_are_never_trained(name, tokenizer):
    """The full render of every case, labelled token by token (encode.label_tokens: raises if a span straddles
    a token) with the real tokenizer: no result, header or declaration is trained."""
    messages, tools, add_generation_prompt, options = CASES[name]
    rendered = render(messages, tools, add_generation_prompt, **options)
    ids, offsets = tokenizer.encode_with_offsets(rendered.text)
    labels = label_tokens(ids, offsets, rendered.spans, rendered.text)
    trained = [i for i, label in zip(ids, labels) if label != -100]
    assert not {2, 105, 46, 47, 51, 98} & set(trained)  # <bos>, <|turn>, declarations, <tool_response|>, <|think|>
    assert tokenizer.decode(trained) == "".join(span_texts(rendered))
    assert "response:" not in tokenizer.decode(trained) and "<|turn>" not in tokenizer.decode(trained)
    # the <|tool_response> that ends a model's calls (and its text after them) is trained, the opener of a
    # further result is not
    for i, token in enumerate(ids):
        if token == 50:
            assert (labels[i] != -100) == (ids[i - 1] != 51), (name, i)
    # every <turn|> that closes an assistant's text is trained; <turn|> after a bare result never is
    for i, token in enumerate(ids):
        if token == 106 and ids[i - 1] == 51:
            assert labels[i] == -100


def test_train_on_tool_trains_the_result_body_only(tokenizer):
    from minifc.masking import TrainOn
    messages, tools, _, _ = CASES["call_result_answer"]
    rendered = render(messages, tools)
    assert span_texts(rendered, TrainOn(("tool",))) == ['response:get_weather{value:<|"|>sunny, 21 °C<|"|>}']
    assert trained_text({"messages": messages, "tools": tools}, tokenizer, train_on=TrainOn(("assistant", "tool"))) == [
        PARIS_CALL + '<|tool_response>response:get_weather{value:<|"|>sunny, 21 °C<|"|>}',
        "It is 21 °C and sunny in Paris.<turn|>"]


def test_train_overrides():
    messages = [{**SYSTEM, "train": True}, {**ASK, "train": True}, {**calls(PARIS), "train": False}, SUNNY,
                answer("Sunny."), user("Thanks"), {**answer("You're welcome."), "train": False}]
    assert span_texts(render(messages, [WEATHER])) == ["You are a helpful assistant.", "What's the weather in Paris?",
                                                        "Sunny.<turn|>"]


def test_inspector_shows_tool_results_untrained(tokenizer):
    messages, tools, _, _ = CASES["call_result_answer"]
    report = inspect_example({"messages": messages, "tools": tools}, tokenizer, FORMAT, colour=False)
    assert "⟦" + PARIS_CALL + "<|tool_response>⟧response:get_weather{value:<|\"|>sunny, 21 °C<|\"|>}<tool_response|>" \
           "⟦It is 21 °C and sunny in Paris.<turn|>⟧\n" in report
    assert report.count("⟦") == 2
    assert "every assistant turn's end token trained: yes (2/2" in report


def test_inspector_command_line_with_the_real_tokenizer(reference_tokenizer_dir, tmp_path, capsys):
    import inspect_masks

    messages, tools, _, _ = CASES["call_result_answer"]
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"messages": messages, "tools": tools}) + "\n")
    inspect_masks.main(["--model", str(reference_tokenizer_dir("gemma-4")), "--format", "gemma4", "--data", str(data)])
    out = capsys.readouterr().out
    assert "<|turn>model\n⟦" + PARIS_CALL + "<|tool_response>⟧response:get_weather{value:<|\"|>sunny, 21 °C<|\"|>}" \
           "<tool_response|>⟦It is 21 °C and sunny in Paris.<turn|>⟧\n" in out
    table = out.split("tokens by role")[1].split("BOS tokens")[0]
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[1:] if line.strip()}
    assert rows["tool"][0] == "0" and rows["assistant"][0] != "0"
    assert "every assistant turn's end token trained: yes (2/2 turns have a trained stop token [1, 50, 106])" in out


# ---------------------------------------------------------------------------------------------------
# parse()

def generated_part(messages, k, tools=None, **options):
    """What the model generates for assistant message k: the render of messages[:k+1] after the prompt (None
    where the template does not continue its prompt: merged assistant messages, text after results)."""
    prompt = render(messages[:k], tools, add_generation_prompt=True, **options).text
    turn = render(messages[:k + 1], tools, **options).text
    return turn[len(prompt):] if turn.startswith(prompt) else None


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if any(m["role"] == "assistant" for m in case[0])])
def test_parse_inverts_render(name):
    messages, tools, _, options = CASES[name]
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        generated = generated_part(messages, k, tools, **options)
        if generated is None:
            continue
        parsed = parse(generated)
        content = (message.get("content") or "").strip() or None
        tool_calls = [{key: value for key, value in c.items() if key != "id"} for c in message.get("tool_calls", [])]
        reasoning = message.get("reasoning") or message.get("reasoning_content")
        if not (k > max(i for i, m in enumerate(messages[:k + 1]) if m["role"] == "user")):
            reasoning = None
        assert parsed == {"role": "assistant", "content": content, "tool_calls": tool_calls,
                          "parse_error": None, "reasoning": reasoning}, k


def test_parse_values_and_thought_forms():
    text = ('<|channel>thought\nplan\n\n<channel|>Sure.<|tool_call>call:f{a:1,b:-2.5,c:1e-07,d:true,e:false,f:null,'
            'g:<|"|> x, y: {z} <|"|>,h:[1,[2,<|"|>3<|"|>]],i:{j:{k:[]},l:{}},m:bare text,n:21.0,<|"|>q<|"|>:1}<tool_call|>'
            '<|tool_call>call:ns.g-2{}<tool_call|><|tool_response>')
    assert parse(text) == {"role": "assistant", "content": "Sure.", "parse_error": None, "reasoning": "plan\n",
                           "tool_calls": [call("f", a=1, b=-2.5, c=1e-07, d=True, e=False, f=None, g=" x, y: {z} ",
                                               h=[1, [2, "3"]], i={"j": {"k": []}, "l": {}}, m="bare text", n=21.0, q=1),
                                          call("ns.g-2")]}
    assert isinstance(parse(text)["tool_calls"][0]["function"]["arguments"]["n"], float)
    # the prompt opened the thought (post-tool cue with thinking on): the output starts inside it
    assert parse("Tool says sunny.\n<channel|>Sunny.<turn|>")["reasoning"] == "Tool says sunny."
    assert parse("<|channel>thought\n<channel|>Hi<turn|>")["reasoning"] is None  # an empty thought
    assert parse("<|channel>thought\nstill thinking")["reasoning"] == "still thinking"  # cut by max_new_tokens
    assert parse("Hello<turn|>\n<|turn>user\nmore")["content"] == "Hello"
    assert parse("Hello<eos>")["content"] == "Hello" and parse("")["content"] is None
    assert parse(PARIS_CALL + "Let me check.<|tool_response>") == parse(
        "Let me check." + PARIS_CALL + "<|tool_response>") == calls(PARIS, content="Let me check.") | {
        "parse_error": None, "reasoning": None}


MALFORMED = [
    '<|tool_call>call:f{a:<|"|>x}<tool_call|>',    # unclosed string
    "<|tool_call>call:f{a:1",                       # truncated arguments
    "<|tool_call>call:f{a:1}",                      # missing <tool_call|>
    "<|tool_call>f{a:1}<tool_call|>",               # missing call:
    "<|tool_call>call:{a:1}<tool_call|>",           # missing name
    "<|tool_call>call:f{a}<tool_call|>",            # key without value
    "<|tool_call>call:f{a:1,}<tool_call|>",         # trailing comma
    "<|tool_call>call:f{a:[1,2}<tool_call|>",       # unbalanced bracket
    "<|tool_call>call:f a:1<tool_call|>",           # no braces
    "<|tool_call>call:f{}<tool_call|>text<|tool_call>call:g{}<tool_call|>",  # text between calls
    "a<|channel>thought\nx<channel|>b",              # thought after text
    "<|channel>thought\nx<channel|><|channel>thought\ny<channel|>",  # two thoughts
    "<|tool_call>call:f{n:" + "1" * 5000 + "}<tool_call|>",  # a number int() refuses
]


@pytest.mark.parametrize("text", MALFORMED)
def test_parse_malformed_reports_an_error(text):
    parsed = parse(text)
    assert isinstance(parsed["parse_error"], str) and parsed["parse_error"] and parsed["tool_calls"] == []


FRAGMENTS = ["<|tool_call>", "<tool_call|>", "<|tool_response>", "<turn|>", '<|"|>', "<|channel>", "<channel|>",
             "thought\n", "call:", "f", "{", "}", "[", "]", ",", ":", "x", "1", "-", ".", "null", "true", " ", "\n"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join) | st.text(max_size=60))
def test_parse_never_raises(text):
    parsed = parse(text)
    assert set(parsed) == {"role", "content", "tool_calls", "parse_error", "reasoning"}
    assert parsed["parse_error"] is None or parsed["tool_calls"] == []


CONTROL = ['<|"|>', "<|tool_call>", "<tool_call|>", "<|tool_response>", "<tool_response|>", "<turn|>", "<|turn>",
           "<eos>", "<bos>", "<|channel>", "<channel|>", "<|think|>", "<|tool>", "<tool|>"]
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=20).filter(lambda s: not any(c in s for c in CONTROL))
keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
values = st.recursive(texts | st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False)
                      | st.booleans() | st.none(),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3), max_leaves=8)
random_calls = st.lists(st.builds(lambda name, arguments: {"type": "function",
                                                           "function": {"name": name, "arguments": arguments}},
                                  st.from_regex(r"[a-z_][a-z0-9_.\-]{0,10}", fullmatch=True),
                                  st.dictionaries(keys, values, max_size=4)), max_size=3)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(content=st.none() | texts, tool_calls=random_calls, reasoning=st.none() | texts)
def test_round_trip_random_turns(content, tool_calls, reasoning, e2b_template):
    message = {"role": "assistant", "content": content, **({"tool_calls": tool_calls} if tool_calls else {}),
               **({"reasoning": reasoning} if reasoning else {})}
    messages = [user("go"), message]
    rendered = render(messages)
    assert rendered.text == oracle(e2b_template, messages)
    generated = generated_part(messages, 1)
    assert span_texts(rendered) == [generated.removesuffix("\n")]
    assert parse(generated) == {"role": "assistant", "content": (content or "").strip() or None,
                                "tool_calls": tool_calls, "parse_error": None, "reasoning": reasoning or None}


# ---------------------------------------------------------------------------------------------------
# Bad input and the format objects

def test_bad_input_gets_a_clear_error(e2b_template):
    with pytest.raises(ValueError, match=r"arguments of type str .*pass a dict"):
        render([user("x"), {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}])
    with pytest.raises(ValueError, match='Add "type": "object"'):
        render([user("x")], [{"type": "function", "function": {"name": "f", "parameters": {"properties": {}}}}])
    with pytest.raises(ValueError, match='"response" declaration needs "type": "object"'):
        render([user("x")], [{"type": "function", "function": {"name": "f", "response": {"type": "string"}}}])
    with pytest.raises(ValueError, match="renders text only"):
        render([{"role": "user", "content": [{"type": "image"}]}])
    with pytest.raises(ValueError, match=r"messages\[1\]\.content contains the control token '<\|channel>'"):
        render([user("x"), answer("<|channel>thought\nhidden<channel|>Hello")])
    with pytest.raises(ValueError, match=r"messages\[0\]\.content contains the control token '<\|image\|>'"):
        render([user("look: <|image|>")])
    with pytest.raises(TypeError):
        render([user("x")], date_string="26 Jul 2024")
    orphan = [user("x"), answer("y"), {"role": "tool", "name": "f", "content": "answers no call"}]
    assert "answers no call" not in oracle(e2b_template, orphan)  # the template drops it silently
    with pytest.raises(ValueError, match=r"messages\[2\] \(tool\): a tool message must follow"):
        render(orphan)
    for name, arguments, match in (("get weather", {}, "function name 'get weather' cannot be written"),
                                   ("f", {"ci:ty": 1}, "argument name 'ci:ty' of 'f' cannot be written")):
        with pytest.raises(ValueError, match=r"^messages\[1\] \(assistant\): " + match):
            render([user("x"), calls(call(name, **arguments))])


def test_format_objects_and_control_tokens(tokenizer):
    assert get_format("gemma4") is FORMAT and get_format("gemma4-31b") is FORMAT_31B
    assert FORMAT.render is render and FORMAT.parse is FORMAT_31B.parse is parse
    assert FORMAT.control_tokens[0] == "<bos>" and FORMAT.stop_tokens[-1] == "<eos>"  # what tiny.py relies on
    for token in FORMAT.control_tokens + FORMAT.stop_tokens:
        assert len(tokenizer.encode(token)) == 1, token
    assert sorted(tokenizer.stop_ids(FORMAT)) == [1, 50, 106]  # the checkpoints' generation_config stops
    declared = {tokenizer.token_id(token) for token in FORMAT.control_tokens}
    special = set(range(46, 53)) | {1, 2, 98, 100, 101, 105, 106}
    for messages, tools, add_generation_prompt, options in CASES.values():
        for fmt in (FORMAT, FORMAT_31B):
            ids = tokenizer.encode(fmt.render(messages, tools, add_generation_prompt, **options).text)
            assert {i for i in ids if i in special} <= declared


def as_google_form(messages):
    """minifc's tool messages as Google's notebook form: tool_responses on the assistant message they answer."""
    converted = []
    for message in messages:
        if message["role"] == "tool":
            converted[-1].setdefault("tool_responses", []).append({"name": message["name"], "response": message["content"]})
        else:
            converted.append(copy.deepcopy(message))
    return converted


@pytest.mark.slow
def test_builtin_data_renders_as_the_template_renders_googles_form(e2b_template, tokenizer):
    """All 960 built-in conversations (results stored as objects): minifc's render equals the template's render
    of the same conversation in Google's own form, and every trained span aligns to the real tokenizer."""
    from minifc.data import BUILTIN_TEST, BUILTIN_TRAIN, load_examples

    examples = load_examples(BUILTIN_TRAIN)[0] + load_examples(BUILTIN_TEST)[0]
    assert len(examples) == 960
    for number, example in enumerate(examples):
        rendered = render(example.messages, example.tools)
        assert rendered.text == oracle(e2b_template, as_google_form(example.messages), example.tools), number
        if number % 10 == 0:
            ids, labels = encode_example(example, tokenizer, FORMAT)  # raises if a span straddles a token
            assert sum(label != -100 for label in labels) > 0
