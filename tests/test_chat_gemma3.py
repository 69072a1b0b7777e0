"""The gemma3 chat format (v1): official-template parity without tools, the exact tool-calling strings of
the documented spec, parse(render()) round trips, and trained spans at token level with the real tokenizer."""

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinja_oracle import render_template
from minifc.chat import Rendered, get_format
from minifc.chat.gemma3 import FORMAT, INSTRUCTION, format_calls, parse, python_literal, render
from minifc.tokenizer import Tokenizer

TEMPLATE = "templates/gemma-3-it.jinja"
START_OF_TURN, END_OF_TURN, NEWLINE, BOS_ID = 105, 106, 107, 2  # FORMATS.md section 6

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
WEATHER_JSON = ('[{"name": "get_weather", "description": "Current weather in a city", "parameters": {"type": "object", '
                '"properties": {"city": {"type": "string"}}, "required": ["city"]}}]')


def call(name, **arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


@pytest.fixture(scope="module")
def tokenizer(reference_tokenizer_dir):
    return Tokenizer.from_dir(reference_tokenizer_dir("gemma-3"))


# ------------------------------------------------------------------ no tools: identical to the official template

TOOL_FREE = {
    "user_only": [{"role": "user", "content": "Hi!"}],
    "system_folded": [{"role": "system", "content": "You are a helpful assistant."},
                      {"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help?"},
                      {"role": "user", "content": "Tell me a joke."}],
    "multi_turn": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                   {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}],
    "unicode": [{"role": "system", "content": "Réponds en français 🇫🇷."}, {"role": "user", "content": "日本語で？ Ünïcödé"},
                {"role": "assistant", "content": "はい — ok ✓"}],
    "whitespace_edges": [{"role": "system", "content": "  sys with edges \n"}, {"role": "user", "content": "\n\n  hi \t"},
                         {"role": "assistant", "content": "  answer\n\n"}, {"role": "user", "content": " next "}],
    "empty_texts": [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}],
    "markup_in_text": [{"role": "user", "content": "<b>markup</b> and <start_of_tool> are text; [f(x=1)] is not a call here"},
                       {"role": "assistant", "content": "```python\nprint('x')\n```"}],
}


@pytest.mark.parametrize("add_generation_prompt", [False, True])
@pytest.mark.parametrize("name", list(TOOL_FREE))
def test_tool_free_conversations_match_official_template(reference, tokenizer, name, add_generation_prompt):
    messages = TOOL_FREE[name]
    expected = render_template(reference / TEMPLATE, messages, add_generation_prompt=add_generation_prompt,
                               bos_token="<bos>")
    ours = render(messages, add_generation_prompt=add_generation_prompt).text
    assert ours == expected
    assert render(messages, tools=[], add_generation_prompt=add_generation_prompt).text == expected
    ids = tokenizer.encode(ours)
    assert ids == tokenizer.encode(expected)
    assert ids[0] == BOS_ID and ids.count(BOS_ID) == 1  # BOS written once, never added again


def test_reference_examples_for_gemma3(reference):
    cases = json.loads((reference / "examples" / "rendered_examples.json").read_text(encoding="utf-8"))["cases"]
    gemma_cases = [case for case in cases if case["template"] == TEMPLATE and case["error"] is None]
    assert len(gemma_cases) >= 2
    for case in gemma_cases:
        inputs = case["inputs"]
        assert render(inputs["messages"], inputs["tools"], inputs["add_generation_prompt"]).text == case["output"]


edge_text = st.text(st.sampled_from(list("ab é日🙂<>[]()\"'\\") + [" ", "\n", "\t", "\r"]), max_size=12)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(system=st.none() | edge_text, texts=st.lists(edge_text, min_size=1, max_size=5), generation=st.booleans())
def test_random_tool_free_conversations_match_official_template(reference, system, texts, generation):
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(texts)]
    expected = render_template(reference / TEMPLATE, messages, add_generation_prompt=generation, bos_token="<bos>")
    assert render(messages, add_generation_prompt=generation).text == expected


# ------------------------------------------------------------------ tools: the exact strings of format v1

def test_instruction_is_googles_python_style_sentence_verbatim(reference):
    formats = (reference / "FORMATS.md").read_text(encoding="utf-8")
    first, second = INSTRUCTION.split("\n")
    assert f"Python style: `{first}` followed by `{second}`" in formats


def test_formats_2_2_examples():
    # FORMATS.md 2.2: the model answer `[fn(a="x", n=5)]<end_of_turn>`, Google's doc output
    # `[get_product_name_by_PID(PID="807ZPKBL9V")]`, results as a user turn ```tool_output\n...\n```.
    assert format_calls([call("fn", a="x", n=5)]) == '[fn(a="x", n=5)]'
    assert format_calls([call("get_product_name_by_PID", PID="807ZPKBL9V")]) == '[get_product_name_by_PID(PID="807ZPKBL9V")]'
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [call("fn", a="x", n=5)]},
                {"role": "tool", "name": "fn", "content": "42"}]
    text = render(messages).text
    assert '<start_of_turn>model\n[fn(a="x", n=5)]<end_of_turn>\n' in text
    assert text.endswith("<start_of_turn>user\n```tool_output\n42\n```<end_of_turn>\n")


def test_full_tool_conversation_exact_text():
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": " Weather in Paris and Rome? "},
        {"role": "assistant", "tool_calls": [call("get_weather", city="Paris"), call("get_weather", city="Rome")]},
        {"role": "tool", "name": "get_weather", "content": {"temp": 21, "sky": "sunny"}},
        {"role": "tool", "name": "get_weather", "content": " 18 C, rain \n"},
        {"role": "assistant", "content": "Paris: 21 °C, sunny. Rome: 18 °C, rain."},
        {"role": "user", "content": "Thanks!"},
    ]
    expected = (
        "<bos><start_of_turn>user\n"
        "You are terse.\n\n"
        "You have access to functions. If you decide to invoke any of the function(s), you MUST put it in the "
        "format of [func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]\n"
        "You SHOULD NOT include any other text in the response if you call a function\n"
        + WEATHER_JSON + "\n\n"
        "Weather in Paris and Rome?<end_of_turn>\n"
        "<start_of_turn>model\n"
        '[get_weather(city="Paris"), get_weather(city="Rome")]<end_of_turn>\n'
        "<start_of_turn>user\n"
        '```tool_output\n{"temp": 21, "sky": "sunny"}\n```\n\n'
        "```tool_output\n18 C, rain\n```<end_of_turn>\n"
        "<start_of_turn>model\n"
        "Paris: 21 °C, sunny. Rome: 18 °C, rain.<end_of_turn>\n"
        "<start_of_turn>user\n"
        "Thanks!<end_of_turn>\n"
        "<start_of_turn>model\n")
    rendered = render(messages, tools=[WEATHER], add_generation_prompt=True)
    assert rendered.text == expected
    assert [rendered.text[a:b] for a, b in rendered.spans] == [
        '[get_weather(city="Paris"), get_weather(city="Rome")]<end_of_turn>',
        "Paris: 21 °C, sunny. Rome: 18 °C, rain.<end_of_turn>"]


def test_tools_without_system_and_result_followed_by_user_text():
    messages = [{"role": "user", "content": "Paris?"},
                {"role": "assistant", "content": " Let me check. ", "tool_calls": [call("get_weather", city="Paris")]},
                {"role": "tool", "content": "sunny"},
                {"role": "user", "content": "And tomorrow?"}]
    assert render(messages, tools=[WEATHER]).text == (
        "<bos><start_of_turn>user\n" + INSTRUCTION + "\n" + WEATHER_JSON + "\n\nParis?<end_of_turn>\n"
        '<start_of_turn>model\nLet me check.\n\n[get_weather(city="Paris")]<end_of_turn>\n'
        "<start_of_turn>user\n```tool_output\nsunny\n```\n\nAnd tomorrow?<end_of_turn>\n")


@pytest.mark.parametrize("value, written", [
    ("plain", '"plain"'),
    ('say "hi"', r'"say \"hi\""'),
    ("back\\slash", r'"back\\slash"'),
    ("line\nbreak\ttab\r", r'"line\nbreak\ttab\r"'),
    ("\x00\x1f", r'"\u0000\u001f"'),
    ("é 日本 🙂", '"é 日本 🙂"'),
    ("it's [a] (b), {c}=d", '"it\'s [a] (b), {c}=d"'),
    (True, "True"), (False, "False"), (None, "None"),
    (0, "0"), (-7, "-7"), (12345678901234567890, "12345678901234567890"),
    (1.5, "1.5"), (1e-05, "1e-05"), (-0.0, "-0.0"), (1e100, "1e+100"),
    ([], "[]"), ([1, "a", None], '[1, "a", None]'),
    ({}, "{}"), ({"k": [True, {"n": 1.0}], "é": "v"}, '{"k": [True, {"n": 1.0}], "é": "v"}'),
])
def test_argument_values_are_written_as_python_literals(value, written):
    assert python_literal(value) == written
    assert parse(f"[f(x={written})]")["tool_calls"][0]["function"]["arguments"] == {"x": value}


def test_call_names_with_dots_and_hyphens_and_no_arguments():
    calls = [call("math.factorial", n=5), call("get-time"), call("spotify.play", **{"from": "x", "dry-run": False})]
    text = format_calls(calls)
    assert text == '[math.factorial(n=5), get-time(), spotify.play(from="x", dry-run=False)]'
    assert parse(text) == {"role": "assistant", "content": None, "tool_calls": calls, "parse_error": None, "reasoning": None}


# ------------------------------------------------------------------ round trip parse(render(assistant turn))

json_leaf = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
             | st.text(st.sampled_from(list("\"'\\\n\t[](){},=#é日🙂ab ")) | st.characters(exclude_categories=("Cs",)), max_size=10))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=6), inner, max_size=3), max_leaves=8)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}([.\-][A-Za-z_][A-Za-z0-9_]{0,5})?", fullmatch=True)
tool_call = st.builds(lambda name, arguments: {"type": "function", "function": {"name": name, "arguments": arguments}},
                      names, st.dictionaries(names, json_value, max_size=4))
content = st.none() | st.text(st.characters(exclude_characters="[<", exclude_categories=("Cs",)), max_size=30)


@settings(max_examples=100, deadline=None)
@given(calls=st.lists(tool_call, min_size=1, max_size=3), text=content)
def test_parse_inverts_render_of_assistant_turn(calls, text):
    messages = [{"role": "user", "content": "go"}, {"role": "assistant", "content": text, "tool_calls": calls}]
    rendered = render(messages, tools=[WEATHER])
    (start, end), = rendered.spans
    generated = rendered.text[start:end]  # what the model produces after the generation prompt, stop token included
    assert rendered.text[:start].endswith("<start_of_turn>model\n") and generated.endswith("<end_of_turn>")
    assert parse(generated) == {"role": "assistant", "content": (text or "").strip() or None,
                                "tool_calls": calls, "parse_error": None, "reasoning": None}


# ------------------------------------------------------------------ parse: plain text, malformed output

@pytest.mark.parametrize("generated, content", [
    ("Hello there!<end_of_turn>", "Hello there!"),
    ("  It is [1, 2] or (a) <eos>", "It is [1, 2] or (a)"),
    ("[see the docs] for more", "[see the docs] for more"),
    ("get_weather(city=\"Paris\")", 'get_weather(city="Paris")'),
    ("```python\nprint('x')\n```", "```python\nprint('x')\n```"),
    ("", None),
])
def test_plain_text_is_content_not_an_error(generated, content):
    assert parse(generated) == {"role": "assistant", "content": content, "tool_calls": [], "parse_error": None, "reasoning": None}


def test_parse_accepts_googles_tool_code_fence_and_json_literals():
    result = parse('```tool_code\n[get_weather(city="Paris", metric=true, extra=null, days=(1, 2))]\n```<end_of_turn>')
    assert result["parse_error"] is None
    assert result["tool_calls"] == [call("get_weather", city="Paris", metric=True, extra=None, days=[1, 2])]


def test_parse_stops_at_the_stop_token():
    result = parse('[f(a=1)]<end_of_turn>\n<start_of_turn>user\nmore')
    assert result["tool_calls"] == [call("f", a=1)] and result["parse_error"] is None


@pytest.mark.parametrize("generated, error", [
    ('[get_weather(city="Paris")', "unbalanced"),
    ('[get_weather(city="Paris"]', "unbalanced"),
    ('[get_weather(city="Paris)]', "unterminated string"),
    ('[get_weather("Paris")]', "name=value"),
    ('[get_weather(city=Paris)]', "not a literal"),
    ('[get_weather(city=open("x"))]', "not a literal"),
    ('[get_weather(city="a" + "b")]', "not a literal"),
    ('[get_weather(city=)]', "no value"),
    ('[get_weather(city="a", city="b")]', "twice"),
    ('[f(a={1: 2})]', "keys must be strings"),
    ('[f(a=1e999)]', "not a JSON number"),
    ('[f(a=b"x")]', "not a literal"),
    ('[f(a=1) g(b=2)]', "expected ','"),
    ('[f(a=1)] and then some text', "text after the call list"),
    ('Sure.\n[f(a=1.2.3)]', "not a Python literal"),
    ("[f(a=" + "[" * 500 + "]" * 500 + ")]", "malformed call list"),
])
def test_malformed_call_list_gives_parse_error(generated, error):
    result = parse(generated)
    assert result["tool_calls"] == [] and result["content"] == generated.strip()
    assert error in result["parse_error"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list("[](){}=,\"'\\ \nabf1.-_#") + ["[f(", "a=", "<end_of_turn>", '"""']),
                max_size=30).map("".join))
def test_parse_never_raises(text):
    result = parse(text)
    assert set(result) == {"role", "content", "tool_calls", "parse_error", "reasoning"}
    assert result["parse_error"] is None or result["tool_calls"] == []


# ------------------------------------------------------------------ trained spans at token level

def trained_token_ids(tokenizer, rendered: Rendered) -> tuple[list[int], list[bool]]:
    ids, offsets = tokenizer.encode_with_offsets(rendered.text)
    trained = []
    for start, end in offsets:
        inside = any(a <= start and end <= b for a, b in rendered.spans)
        overlapping = any(start < b and a < end for a, b in rendered.spans)
        assert inside == overlapping, f"token {rendered.text[start:end]!r} straddles a span boundary"
        trained.append(inside)
    return ids, trained


def test_spans_at_token_level(tokenizer):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking both.",
         "tool_calls": [call("get_weather", city="Paris"), call("get_weather", city='Ro"me')]},
        {"role": "tool", "content": {"temp": 21}},
        {"role": "tool", "content": "rain"},
        {"role": "assistant", "content": "Paris 21, Rome rain."},
        {"role": "user", "content": "ok"},
        {"role": "assistant", "content": "👍"},
    ]
    rendered = render(messages, tools=[WEATHER])
    ids, trained = trained_token_ids(tokenizer, rendered)
    supervised = [i for i, t in zip(ids, trained) if t]
    assert tokenizer.decode(supervised) == (
        'Checking both.\n\n[get_weather(city="Paris"), get_weather(city="Ro\\"me")]<end_of_turn>'
        "Paris 21, Rome rain.<end_of_turn>👍<end_of_turn>")
    end_positions = [p for p, i in enumerate(ids) if i == END_OF_TURN]
    assert [trained[p] for p in end_positions] == [False, True, False, True, False, True]  # user ends never trained
    assert all(ids[p + 1] == NEWLINE and not trained[p + 1] for p in end_positions)  # "\n" after it: not trained
    assert not any(t for i, t in zip(ids, trained) if i in (BOS_ID, START_OF_TURN))
    for p, i in enumerate(ids):  # the "model\n" header before each trained turn is context
        if i == START_OF_TURN:
            assert not trained[p + 1] and not trained[p + 2]
    untrained_text = tokenizer.decode([i for i, t in zip(ids, trained) if not t])
    for context in ("You are terse.", "You have access to functions", '"name": "get_weather"',
                    "Weather in Paris and Rome?", '{"temp": 21}', "rain\n```", "ok"):
        assert context in untrained_text


def test_train_overrides(tokenizer):
    messages = [
        {"role": "system", "content": "sys", "train": True},
        {"role": "user", "content": " question ", "train": True},
        {"role": "assistant", "tool_calls": [call("get_weather", city="Paris")], "train": False},
        {"role": "tool", "content": {"temp": 21}, "train": True},
        {"role": "user", "content": "plain"},
        {"role": "assistant", "content": "answer"},
    ]
    rendered = render(messages, tools=[WEATHER])
    assert [rendered.text[a:b] for a, b in rendered.spans] == ["sys", "question", '{"temp": 21}', "answer<end_of_turn>"]
    ids, trained = trained_token_ids(tokenizer, rendered)
    assert tokenizer.decode([i for i, t in zip(ids, trained) if t]) == 'sysquestion{"temp": 21}answer<end_of_turn>'


# ------------------------------------------------------------------ the ChatFormat object and bad input

def test_format_object_and_control_tokens(tokenizer):
    assert get_format("gemma3") is FORMAT and FORMAT.name == "gemma3"
    assert FORMAT.render is render and FORMAT.parse is parse
    assert tokenizer.stop_ids(FORMAT) == [END_OF_TURN, 1]  # <end_of_turn>, <eos>: FORMATS.md section 6
    for token in FORMAT.control_tokens:
        assert len(tokenizer.encode(token)) == 1, token
    assert tokenizer.encode("<bos><start_of_turn>") == [BOS_ID, START_OF_TURN]


@pytest.mark.parametrize("messages, tools, message", [
    ([], None, "no user message"),
    ([{"role": "system", "content": "s"}], None, "no user message"),
    ([{"role": "assistant", "content": "a"}], None, "messages[0]: this assistant message comes first"),
    ([{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}],
     None, "messages[2]: this assistant message follows the assistant message messages[1]"),
    ([{"role": "tool", "content": "r"}], None, "messages[0]: a tool result cannot come before"),
    ([{"role": "user", "content": "u"}, {"role": "system", "content": "s"}], None, "messages[1]: a system message"),
    ([{"role": "critic", "content": "u"}], None, "unknown role 'critic'"),
    ([{"role": "user", "content": ["x"]}], None, "messages[0] (role 'user'): content must be a string"),
    ([{"role": "user", "content": "u"}, {"role": "assistant"}], None, "neither content nor tool_calls"),
    ([{"role": "user", "content": "u"}, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}], None, "must be a dict"),
    ([{"role": "user", "content": "u"}, {"role": "assistant", "tool_calls": [call("f", a=float("nan"))]}],
     None, "not a JSON number"),
    ([{"role": "user", "content": "u"}, {"role": "assistant", "tool_calls": [call("bad name", a=1)]}],
     None, "messages[1].tool_calls[0].function.name: name 'bad name'"),
    ([{"role": "user", "content": "u"}, {"role": "assistant", "tool_calls": [call("f", **{"1a": 1})]}],
     None, "name '1a' cannot be written"),
    ([{"role": "user", "content": "u"}], [{"name": "f"}], "tools[0]: expected"),
])
def test_bad_input_is_refused_with_a_clear_error(messages, tools, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        render(messages, tools=tools)


def test_unknown_format_option_is_refused():
    with pytest.raises(TypeError, match="no options"):
        render([{"role": "user", "content": "u"}], date_string="x")


def test_consecutive_user_messages_share_one_turn():
    messages = [{"role": "user", "content": "first "}, {"role": "user", "content": " second"},
                {"role": "assistant", "content": "ok"}]
    assert render(messages).text == ("<bos><start_of_turn>user\nfirst\n\nsecond<end_of_turn>\n"
                                     "<start_of_turn>model\nok<end_of_turn>\n")
