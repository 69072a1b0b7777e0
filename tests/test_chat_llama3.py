"""Llama 3.1 / 3.2 chat format against the official templates, transformers' apply_chat_template and the
real tokenizer: identical text and token ids, trained spans on token boundaries, parse round trips."""

import json
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinja_oracle import TemplateError, render_template
from minifc.chat import get_format
from minifc.chat.llama3 import LLAMA31, LLAMA32, parse
from minifc.tokenizer import Tokenizer

FORMATS = {"3.1": LLAMA31, "3.2": LLAMA32}
TEMPLATES = {"3.1": "llama-3.1-instruct.jinja", "3.2": "llama-3.2-instruct.jinja"}
BOS = "<|begin_of_text|>"
ASSISTANT_HEADER = "<|start_header_id|>assistant<|end_header_id|>\n\n"


def tool(name, description, properties, required=()):
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": list(required)}}}


def call(name, **arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def calls(*tool_calls):
    return {"role": "assistant", "tool_calls": list(tool_calls)}


WEATHER = tool("get_weather", "Get the current weather for a city.", {
    "city": {"type": "string", "description": "City name"},
    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"}}, ["city"])
EVENT = tool("create_event", "Create a calendar event — «quoted» {braces}.", {
    "title": {"type": "string"},
    "attendees": {"type": "array", "items": {"type": "string"}},
    "location": {"type": "object", "properties": {"city": {"type": "string"}, "room": {"type": ["string", "null"]}},
                 "required": ["city"]},
    "priority": {"type": "number", "minimum": 0},
    "all_day": {"type": "boolean", "default": False},
    "visibility": {"type": "string", "enum": ["public", "private"]}}, ["title"])
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
ASK = {"role": "user", "content": "What's the weather in Paris?"}
PARIS = call("get_weather", city="Paris", unit="celsius")

TRICKY = 'é ü 中文 🙂 "quoted" \\back\\slash {braces} [brackets]; semi\nnew line\t tab {"json": [1, "x"]} <b>'
# name -> (messages, tools, add_generation_prompt, format options)
CASES = {
    "chat_no_system": ([{"role": "user", "content": "Hi!"}], None, True, {}),
    "chat_system_two_rounds": ([SYSTEM, {"role": "user", "content": "Hi!"},
                                {"role": "assistant", "content": "Hello! How can I help?"},
                                {"role": "user", "content": "Tell me a joke."},
                                {"role": "assistant", "content": "Why did the chicken... 🐔"}], None, False, {}),
    "whitespace_is_trimmed": ([{"role": "system", "content": "  \n sys \n"}, {"role": "user", "content": "\n\n  hi  \n"},
                               {"role": "assistant", "content": "  answer\n\n"}], None, False, {}),
    "one_call": ([SYSTEM, ASK, calls(PARIS)], [WEATHER], False, {}),
    "one_call_no_system": ([ASK, calls(PARIS)], [WEATHER], False, {}),
    "call_result_answer": ([SYSTEM, ASK, calls(PARIS),
                            {"role": "tool", "name": "get_weather", "content": {"temperature": 21, "condition": "sunny"}},
                            {"role": "assistant", "content": "It is 21 °C and sunny in Paris."}], [WEATHER], False, {}),
    "two_rounds_string_and_number_results": (
        [SYSTEM, ASK, calls(PARIS), {"role": "tool", "name": "get_weather", "content": "21 C and \"sunny\""},
         {"role": "assistant", "content": "Sunny, 21 C."}, {"role": "user", "content": "And Tokyo in fahrenheit?"},
         calls(call("get_weather", city="Tokyo", unit="fahrenheit")), {"role": "tool", "content": 70},
         {"role": "assistant", "content": "70 °F."}], [WEATHER], False, {}),
    "genprompt_after_result": ([SYSTEM, ASK, calls(PARIS), {"role": "tool", "content": [1.5, True, None, "x"]},
                                {"role": "ipython", "content": False}],
                               [WEATHER], True, {}),
    "tricky_strings": ([{"role": "system", "content": TRICKY}, {"role": "user", "content": TRICKY},
                        calls(call("create_event", title=TRICKY, attendees=[TRICKY, "a@x.com"])),
                        {"role": "tool", "content": TRICKY}, {"role": "tool", "content": '{"ok": true}'},
                        {"role": "tool", "content": {"echo": TRICKY, "n": None}},
                        {"role": "assistant", "content": TRICKY}], [EVENT, WEATHER], False, {}),
    "nested_and_optional_arguments": (
        [ASK, calls(call("create_event", title="Sync", attendees=[], location={"city": "Paris", "room": None},
                         priority=0.5, all_day=True, visibility="private")),
         {"role": "tool", "content": 1e-07}, {"role": "user", "content": "Another, minimal."},
         calls(call("create_event", title="Solo")), {"role": "tool", "content": -3}],
        [EVENT], True, {}),
    "tools_in_system": ([SYSTEM, ASK, calls(PARIS), {"role": "tool", "content": "sunny"},
                         {"role": "assistant", "content": "Sunny."}], [WEATHER, EVENT], False,
                        {"tools_in_user_message": False}),
    "tools_in_system_no_system_message": ([ASK], [WEATHER], True, {"tools_in_user_message": False}),
    "call_with_content_drops_content": ([ASK, {"role": "assistant", "content": "Let me check.", "tool_calls": [PARIS]}],
                                        [WEATHER], False, {}),
    "developer_and_late_system": ([{"role": "user", "content": "Hi"}, {"role": "developer", "content": "Be brief."},
                                   {"role": "system", "content": "Late system."},
                                   {"role": "assistant", "content": "Ok."}], None, False, {}),
    "custom_date": ([SYSTEM, {"role": "user", "content": "Date?"}], None, True, {"date_string": "05 Jan 2025"}),
    "empty_answer": ([{"role": "user", "content": "Say nothing."}, {"role": "assistant", "content": ""}],
                     None, False, {}),
}


@pytest.fixture(scope="module")
def tokenizer(reference_tokenizer_dir):
    return Tokenizer.from_dir(reference_tokenizer_dir("llama-3.2"))


@pytest.fixture(scope="module")
def hf_tokenizer(reference_tokenizer_dir):
    transformers = pytest.importorskip("transformers")
    return transformers.PreTrainedTokenizerFast.from_pretrained(str(reference_tokenizer_dir("llama-3.2")))


def oracle(reference, variant, messages, tools, add_generation_prompt, options):
    extra = {"date_string": "26 Jul 2024", **options}
    return render_template(reference / "templates" / TEMPLATES[variant], messages, tools=tools or None,
                           add_generation_prompt=add_generation_prompt, bos_token=BOS, **extra)


def trained_runs(rendered, tokenizer):
    """Decoded text of each maximal run of trained tokens; asserts no token straddles a span edge."""
    ids, offsets = tokenizer.encode_with_offsets(rendered.text)
    runs, current = [], []
    for token_id, (start, end) in zip(ids, offsets):
        inside = [a <= start and end <= b for a, b in rendered.spans]
        overlap = [start < b and a < end for a, b in rendered.spans]
        assert any(inside) == any(overlap), f"token {rendered.text[start:end]!r} straddles a span edge"
        if any(inside):
            current.append(token_id)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def oracle_assistant_bodies(oracle_text):
    """From the official render: body + end token of every assistant turn (the text a model generates)."""
    bodies = []
    for chunk in oracle_text.split("<|start_header_id|>")[1:]:
        role, body = chunk.split("<|end_header_id|>\n\n", 1)
        if role == "assistant" and body:
            bodies.append(body)
    return bodies


@pytest.mark.parametrize("variant", ["3.1", "3.2"])
@pytest.mark.parametrize("name", list(CASES))
def test_text_and_ids_match_official_template(reference, tokenizer, hf_tokenizer, variant, name):
    messages, tools, add_generation_prompt, options = CASES[name]
    rendered = FORMATS[variant].render(messages, tools, add_generation_prompt, **options)
    expected = oracle(reference, variant, messages, tools, add_generation_prompt, options)
    assert rendered.text == expected
    # token ids: transformers' own apply_chat_template with the official template and the real tokenizer
    template = (reference / "templates" / TEMPLATES[variant]).read_text(encoding="utf-8")
    hf_ids = hf_tokenizer.apply_chat_template(messages, tools=tools or None, chat_template=template, tokenize=True,
                                              add_generation_prompt=add_generation_prompt, return_dict=False,
                                              **{"date_string": "26 Jul 2024", **options})
    ids = tokenizer.encode(rendered.text)
    assert ids == list(hf_ids)
    assert ids.count(128000) == 1 and ids[0] == 128000  # BOS once, written by the renderer


@pytest.mark.parametrize("name", list(CASES))
def test_spans_are_exactly_the_assistant_turns_on_token_boundaries(reference, tokenizer, name):
    messages, tools, add_generation_prompt, options = CASES[name]
    rendered = LLAMA32.render(messages, tools, add_generation_prompt, **options)
    expected = oracle_assistant_bodies(oracle(reference, "3.2", messages, tools, add_generation_prompt, options))
    assert trained_runs(rendered, tokenizer) == expected
    assert all(body.endswith("<|eot_id|>") for body in expected)  # every assistant turn's end token is trained
    # nothing trained outside assistant turns: no header, declarations, user text, system text or results
    for a, b in rendered.spans:
        before = rendered.text[:a]
        assert before.endswith(ASSISTANT_HEADER) and "<|start_header_id|>" not in rendered.text[a:b]


def test_official_examples(reference):
    cases = json.loads((reference / "examples" / "rendered_examples.json").read_text(encoding="utf-8"))["cases"]
    strftime_day = datetime(2025, 11, 22).strftime("%d %b %Y")  # render_settings: strftime_now fixed to that day
    checked = 0
    for case in cases:
        if not case["model"].startswith("llama"):
            continue
        inputs = case["inputs"]
        options = {"date_string": strftime_day, **(inputs.get("extra") or {})}
        fmt = FORMATS[case["model"].removeprefix("llama-")]
        rendered = fmt.render(inputs["messages"], inputs["tools"], inputs["add_generation_prompt"], **options)
        if case.get("error"):  # the official template refuses parallel calls; minifc joins them with "; "
            assert case["error"] == "This model only supports single tool-calls at once!"
            assert rendered.text.endswith('"Paris", "unit": "celsius"}}; {"name": "get_time", '
                                          '"parameters": {"timezone": "Europe/Paris"}}<|eot_id|>')
        else:
            assert rendered.text == case["output"], case["name"]
        checked += 1
    assert checked == 18


def test_default_date_is_pinned_and_equals_official_32_on_that_day(reference):
    messages = [{"role": "user", "content": "Hi!"}]
    expected = render_template(reference / "templates" / TEMPLATES["3.2"], messages, add_generation_prompt=True,
                               bos_token=BOS, now=datetime(2024, 7, 26))
    assert LLAMA32.render(messages, add_generation_prompt=True).text == expected
    assert LLAMA31.render(messages, add_generation_prompt=True).text == render_template(
        reference / "templates" / TEMPLATES["3.1"], messages, add_generation_prompt=True, bos_token=BOS)


def test_empty_tool_list_means_no_tools(reference):
    messages = [{"role": "user", "content": "Hi!"}]
    assert LLAMA32.render(messages, tools=[]).text == oracle(reference, "3.2", messages, None, False, {})


def test_parallel_calls_join_official_single_calls_with_semicolons(reference, tokenizer):
    second = call("get_time", timezone="Europe/Paris")
    messages = [ASK, calls(PARIS, second)]
    with pytest.raises(TemplateError, match="single tool-calls"):
        oracle(reference, "3.2", messages, [WEATHER], False, {})
    singles = [oracle_assistant_bodies(oracle(reference, "3.2", [ASK, calls(c)], [WEATHER], False, {}))[0]
               for c in (PARIS, second)]
    rendered = LLAMA32.render(messages, [WEATHER])
    expected = singles[0].removesuffix("<|eot_id|>") + "; " + singles[1]
    assert rendered.text == oracle(reference, "3.2", [ASK], [WEATHER], True, {}) + expected
    assert trained_runs(rendered, tokenizer) == [expected]
    assert parse(expected)["tool_calls"] == [PARIS, second]


def test_builtin_tool_call_31_ends_with_eom_and_parses(reference, tokenizer):
    messages = [SYSTEM, {"role": "user", "content": "Weather?"}, calls(call("brave_search", query="weather, Paris")),
                {"role": "tool", "content": "sunny"}, calls(PARIS)]
    options = {"builtin_tools": ["brave_search", "code_interpreter"]}
    rendered = LLAMA31.render(messages, [WEATHER], **options)
    official = oracle(reference, "3.1", messages, [WEATHER], False, options)
    assert rendered.text == official
    runs = trained_runs(rendered, tokenizer)
    assert runs == oracle_assistant_bodies(official)
    assert runs[0] == '<|python_tag|>brave_search.call(query="weather, Paris")<|eom_id|>'
    assert runs[1].endswith("<|eom_id|>")  # ipython mode: every call ends with <|eom_id|>
    assert parse(runs[0])["tool_calls"] == [call("brave_search", query="weather, Paris")]
    with pytest.raises(ValueError, match="only in the Llama 3.1"):
        LLAMA32.render(messages, [WEATHER], **options)


def test_train_overrides(tokenizer):
    messages = [SYSTEM | {"train": True}, ASK | {"train": True}, calls(PARIS) | {"train": False},
                {"role": "tool", "content": {"t": 21}, "train": True}, {"role": "assistant", "content": "Sunny."}]
    rendered = LLAMA32.render(messages, [WEATHER])
    assert [rendered.text[a:b] for a, b in rendered.spans] == [
        "You are a helpful assistant.", "What's the weather in Paris?", '{"t": 21}', "Sunny.<|eot_id|>"]
    assert trained_runs(rendered, tokenizer) == [
        "You are a helpful assistant.", "What's the weather in Paris?", '{"t": 21}', "Sunny.<|eot_id|>"]


def test_control_and_stop_tokens_are_single_ids(tokenizer):
    # ids from FORMATS.md section 1.6
    expected = {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|start_header_id|>": 128006,
                "<|end_header_id|>": 128007, "<|eom_id|>": 128008, "<|eot_id|>": 128009, "<|python_tag|>": 128010}
    for fmt in FORMATS.values():
        for token in fmt.control_tokens + fmt.stop_tokens:
            assert tokenizer.encode(token) == [expected[token]]
        assert tokenizer.stop_ids(fmt) == [128009, 128008, 128001]
    written = set()
    for messages, tools, add_generation_prompt, options in CASES.values():
        ids = tokenizer.encode(LLAMA31.render(messages, tools, add_generation_prompt, **options).text)
        written |= {tokenizer.decode([i]) for i in ids if i >= 128000}
    written |= {"<|python_tag|>", "<|eom_id|>"}  # written by 3.1 builtin_tools, tested above
    assert written == set(LLAMA31.control_tokens)
    assert get_format("llama3") is LLAMA32 and get_format("llama3.2") is LLAMA32 and get_format("llama3.1") is LLAMA31


@pytest.mark.parametrize("messages, tools, match", [
    ([ASK, {"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Paris"}'}}]}], [WEATHER], r"messages\[1\].tool_calls\[0\]"),
    ([SYSTEM, {"role": "assistant", "content": "Hi"}], [WEATHER], "must be a user message"),
    ([SYSTEM], [WEATHER], "no message after the system message"),
    ([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], None, r"messages\[0\].*must be a string"),
    ([ASK, {"role": "assistant"}], None, "neither content nor tool_calls"),
    ([{"role": "user", "content": "x", "tool_calls": [PARIS]}], None, "only assistant messages"),
    ([{"content": "x"}], None, r"messages\[0\]: role must be"),
    ([ASK, {"role": "assistant", "tool_calls": [{"name": "f", "arguments": {}}]}], None, r"tool_calls\[0\] must be"),
    ([ASK, calls(PARIS), {"role": "tool", "content": None}], None, r"messages\[2\]: tool result has no content"),
    ([SYSTEM, {"role": "user", "content": "a <|eot_id|> b"}], [WEATHER], r"messages\[1\].content.*'<\|eot_id\|>'"),
    ([ASK, {"role": "tool", "content": {"x": "<|python_tag|>"}}], None, r"messages\[1\].content"),
    ([ASK, calls(call("f", a="<|reserved_special_token_7|>"))], None, r"tool_calls\[0\].function.arguments"),
    ([{"role": "system", "content": "<|begin_of_text|>"}, ASK], None, r"messages\[0\].content"),
    ([ASK], [tool("f", "<|eom_id|>", {})], r"tools\[0\]\.function\.description contains"),
])
def test_bad_input_is_refused_with_the_field(messages, tools, match):
    with pytest.raises(ValueError, match=match):
        LLAMA32.render(messages, tools)


def test_empty_tool_calls_list_is_plain_answer(reference):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello", "tool_calls": []}]
    plain = [messages[0], {"role": "assistant", "content": "Hello"}]
    assert LLAMA32.render(messages).text == oracle(reference, "3.2", plain, None, False, {})


# ---------------------------------------------------------------------------------------------- parse

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=8), children, max_size=4),
    max_leaves=12)
tool_calls = st.lists(st.builds(lambda name, arguments: {"type": "function", "function": {
    "name": name, "arguments": arguments}}, st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,24}", fullmatch=True),
    st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=10), json_values, max_size=5)),
    min_size=1, max_size=3)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tool_calls=tool_calls)
def test_parse_inverts_render(tokenizer, tool_calls):
    prompt = LLAMA32.render([ASK], [WEATHER], add_generation_prompt=True).text
    messages = [ASK, {"role": "assistant", "tool_calls": tool_calls}]
    data = json.dumps(tool_calls, ensure_ascii=False)
    if any(token.content in data for token in tokenizer.tk.get_added_tokens_decoder().values()):
        with pytest.raises(ValueError, match="contains the control token"):  # the tokenizer would read it as control
            LLAMA32.render(messages, [WEATHER])
        return
    rendered = LLAMA32.render(messages, [WEATHER])
    assert rendered.text.startswith(prompt)
    generated = tokenizer.decode(tokenizer.encode(rendered.text[len(prompt):]))  # what generation returns
    assert parse(generated) == {"role": "assistant", "content": None, "tool_calls": tool_calls, "parse_error": None, "reasoning": None}


@pytest.mark.parametrize("generated, expected_calls", [
    ('<|python_tag|>{"name": "f", "parameters": {"a": 1}}<|eom_id|>', [call("f", a=1)]),
    ('{"name": "f", "arguments": {"a": "x"}}<|eot_id|>', [call("f", a="x")]),
    ('{"name": "f", "parameters": "{\\"a\\": 2}"}', [call("f", a=2)]),
    ('{"name": "f", "parameters": {}}\n{"name": "g", "parameters": {"b": [1]}};', [call("f"), call("g", b=[1])]),
    ('[{"name": "f", "parameters": {}}, {"name": "g", "arguments": {"s": "; }"}}]', [call("f"), call("g", s="; }")]),
    ('  {"type": "function", "name": "f", "parameters": {}}  <|eot_id|>junk after stop', [call("f")]),
])
def test_parse_accepts_variants(generated, expected_calls):
    assert parse(generated) == {"role": "assistant", "content": None, "tool_calls": expected_calls,
                                "parse_error": None, "reasoning": None}


def test_parse_plain_text():
    assert parse("  It is sunny in Paris.\n<|eot_id|>") == {
        "role": "assistant", "content": "It is sunny in Paris.", "tool_calls": [], "parse_error": None, "reasoning": None}
    assert parse("[1] is a citation {x}") == {
        "role": "assistant", "content": "[1] is a citation {x}", "tool_calls": [], "parse_error": None, "reasoning": None}


@pytest.mark.parametrize("generated", [
    '{"name": "f", "parameters": {"a": 1}',            # truncated
    '{"name": "f"}',                                     # no parameters
    '{"parameters": {"a": 1}}',                          # no name
    '{"name": "f", "parameters": [1, 2]}',               # parameters not an object
    '{"name": "f", "parameters": {}, "arguments": {}}',  # both keys
    '{"name": "f", "parameters": {}} and then I said',   # trailing text
    '{"name": "f", "parameters": {}}; 42',                # not an object after ';'
    '[{"name": "f", "parameters": {}}',                  # unterminated list
    '[{"name": "f", "parameters": {}}, 3]',              # list item not an object
    "<|python_tag|>",                                    # tag and nothing
    "<|python_tag|>print('hi')",                         # code, not a call
    '<|python_tag|>brave_search.call(query=weather)',    # unquoted built-in argument
    pytest.param("{" * 100000, id="deep-nesting"),     # pathological nesting
])
def test_parse_malformed_returns_error_and_never_raises(generated):
    result = parse(generated + "<|eot_id|>")
    assert result["tool_calls"] == [] and result["role"] == "assistant"
    assert isinstance(result["parse_error"], str) and result["parse_error"].startswith("malformed tool call")
    assert result["content"] == generated.strip()
