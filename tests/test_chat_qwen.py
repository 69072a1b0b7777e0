"""The Qwen chat formats (qwen3, qwen3-2507, qwen2.5) against the official templates, transformers'
apply_chat_template and the real tokenizers: identical text and token ids for every case and every prefix
of it, trained spans on token boundaries (exact trained text), reasoning as the templates show it, parse
round trips."""

import copy
import json
import unicodedata
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jinja_oracle import load_template
from minifc.chat import get_format
from minifc.chat.qwen import ADDED_TOKENS, parse
from minifc.encode import label_tokens
from minifc.masking import DEFAULT, IGNORE_INDEX, TrainOn
from minifc.tokenizer import Tokenizer

TEMPLATES = {"qwen3": "qwen3-hf-current.jinja", "qwen3-a": "qwen3.jinja", "qwen3-2507": "qwen3-instruct-2507.jinja",
             "qwen2.5": "qwen2.5-instruct.jinja"}
TOKENIZERS = {"qwen3": "qwen3", "qwen3-2507": "qwen3", "qwen2.5": "qwen2.5"}
FORMATS = ("qwen3", "qwen3-2507", "qwen2.5")
IM_START, IM_END, END_OF_TEXT = 151644, 151645, 151643  # FORMATS.md sections 4 and 7.6


def tool(name, description, properties, required=()):
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": list(required)}}}


def call(name, **arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


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
    return {"role": "assistant", "content": text} | ({"reasoning": reasoning} if reasoning is not None else {})


def result(content):
    return {"role": "tool", "content": content}


WEATHER = tool("get_weather", "Get the current weather for a city.", {
    "city": {"type": "string", "description": "City name"},
    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"}}, ["city"])
TIME = tool("get_time", "Get the local time in a timezone — «IANA».", {"timezone": {"type": "string"}}, ["timezone"])
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
ASK = user("What's the weather in Paris?")
PARIS = call("get_weather", city="Paris", unit="celsius")
TOKYO = call("get_time", timezone="Asia/Tokyo")
TRICKY = 'é ü 中文 🙂 "quoted" \\back\\slash {braces} [brackets]; semi\nnew line\t tab {"json": [1, "x"]} <b>'

# name -> (messages, tools, add_generation_prompt, qwen3 options)
CASES = {
    "chat_no_system": ([user("Hi!")], None, True, {}),
    "chat_system_two_rounds": ([SYSTEM, user("Hi!"), answer("Hello! How can I help?"), user("A joke?"),
                                answer("Why did the chicken... 🐔")], None, False, {}),
    "empty_system_with_tools": ([{"role": "system", "content": ""}, ASK, calls(PARIS)], [WEATHER], False, {}),
    "one_call": ([SYSTEM, ASK, calls(PARIS)], [WEATHER], False, {}),
    "one_call_no_system": ([ASK, calls(PARIS)], [WEATHER, TIME], False, {}),
    "text_with_parallel_calls": ([ASK, calls(PARIS, TOKYO, content="Let me check both.")], [WEATHER, TIME], False, {}),
    "parallel_results_grouped_answer": (
        [SYSTEM, ASK, calls(PARIS, TOKYO), result('{"temperature": 21, "condition": "sunny"}'), result("14:05"),
         answer("It is 21 °C and sunny; 14:05 in Tokyo.")], [WEATHER, TIME], False, {}),
    "full_flow_with_reasoning": (
        [SYSTEM, ASK, calls(PARIS, TOKYO, content="", reasoning="I need the weather and the time."),
         result('{"temperature": 21}'), result('{"time": "14:05"}'),
         answer("It is 21 °C; the time is 14:05.", reasoning="Both tools answered.")], [WEATHER, TIME], False, {}),
    "reasoning_dropped_before_last_user": (
        [user("2+2?"), answer("4", reasoning="Simple arithmetic."), user("3+3?"),
         answer("6", reasoning="Again simple.")], None, False, {}),
    "multi_turn_tools_reasoning": (
        [SYSTEM, ASK, calls(PARIS, reasoning="Weather first."), result({"temperature": 21}),
         answer("Sunny, 21 °C.", reasoning="\nReport it.\n"), user("And the time in Tokyo?"),
         calls(TOKYO, reasoning="Time now."), result({"time": "22:05"}), answer("22:05.")], [WEATHER, TIME], False, {}),
    "empty_reasoning_mid_turn_not_shown": (
        [ASK, calls(PARIS, reasoning=""), result("sunny"), answer("Sunny.", reasoning="Read it.")], [WEATHER], False, {}),
    "genprompt_after_results": ([ASK, calls(PARIS, reasoning="Call it."), result([1.5, True, None, "x"]),
                                 result(21)], [WEATHER], True, {}),
    "genprompt_no_thinking": ([SYSTEM, ASK, calls(PARIS, reasoning="Call it."), result("sunny")], [WEATHER], True,
                              {"enable_thinking": False}),
    "genprompt_no_thinking_plain": ([user("Hi!")], None, True, {"enable_thinking": False}),
    "late_system_and_no_user_query": ([SYSTEM, answer("Hello.", reasoning="No query yet."),
                                       {"role": "system", "content": "Late system."}, answer("Ok.", reasoning="r")],
                                      None, False, {}),
    "tricky_strings": ([{"role": "system", "content": TRICKY}, user(TRICKY),
                        calls(call("get_weather", city=TRICKY, unit="celsius"), content=TRICKY, reasoning=TRICKY),
                        result(TRICKY), result({"echo": TRICKY, "n": None}), answer(TRICKY, reasoning=TRICKY)],
                       [WEATHER, TIME], False, {}),
    "content_newlines_final": ([user("Hi"), answer("\n\nHello\n", reasoning="\n\nthink\n\n")], None, False, {}),
    "empty_answer": ([user("Say nothing."), answer("")], None, False, {}),
    "call_without_arguments_and_non_ascii_keys": (
        [user("Zürich?"), calls(call("get_time"), call("get_weather", unit="celsius", city="Zürich"))],
        [TIME, WEATHER], False, {}),
}
# content starting with a newline right after `<|im_start|>assistant\n`: Qwen's "\n\n" is one token across the
# header and the text, which encode refuses (qwen3's final turn strips it; qwen3-2507 and qwen2.5 do not)
UNALIGNED = {("content_newlines_final", "qwen3-2507"), ("content_newlines_final", "qwen2.5")}


@lru_cache(maxsize=None)
def template(reference, key):
    return load_template(reference / "templates" / TEMPLATES[key])


def oracle_messages(messages):
    """What an application passes to the official template: `reasoning` as `reasoning_content` (what
    transformers 5 copies it to), non-string tool results serialised to JSON, string contents (calls without
    text get "", which the current templates assume and the first-release qwen3 one needs)."""
    converted = copy.deepcopy(messages)
    for message in converted:
        message.setdefault("content", "")
        if "reasoning" in message:
            message["reasoning_content"] = message.pop("reasoning")
        if message["role"] == "tool" and not isinstance(message["content"], str):
            message["content"] = json.dumps(message["content"], ensure_ascii=False)
    return converted


def oracle(reference, key, messages, tools, add_generation_prompt, options):
    options = options if key.startswith("qwen3") else {}
    return template(reference, key).render(messages=oracle_messages(messages), tools=tools or None,
                                           add_generation_prompt=add_generation_prompt, bos_token=None, **options)


def render(name, messages, tools, add_generation_prompt, options):
    return get_format(name).render(messages, tools, add_generation_prompt, **(options if name == "qwen3" else {}))


@pytest.fixture(scope="module")
def tokenizers(reference_tokenizer_dir):
    return {name: Tokenizer.from_dir(reference_tokenizer_dir(directory)) for name, directory in TOKENIZERS.items()}


@pytest.fixture(scope="module")
def hf_tokenizers(reference_tokenizer_dir):
    transformers = pytest.importorskip("transformers")
    return {name: transformers.PreTrainedTokenizerFast.from_pretrained(str(reference_tokenizer_dir(directory)))
            for name, directory in TOKENIZERS.items()}


def assistant_bodies(text):
    """From an official render: everything after `<|im_start|>assistant\\n` through `<|im_end|>`, per turn."""
    bodies = []
    for chunk in text.split("<|im_start|>")[1:]:
        role, _, body = chunk.partition("\n")
        if role == "assistant" and "<|im_end|>" in body:
            bodies.append(body[:body.index("<|im_end|>") + len("<|im_end|>")])
    return bodies


def encode(rendered, tokenizer, train_on=DEFAULT):
    """(ids, labels) of one render by encode's own labelling rule (SpanAlignmentError when a token straddles
    a span edge). Renders, not examples: training may split a qwen3 conversation into several sequences,
    each the render of a prefix, so the tests check every prefix render."""
    ids, offsets = tokenizer.encode_with_offsets(rendered.text)
    return ids, label_tokens(ids, offsets, rendered.trained_spans(train_on), rendered.text)


def trained_runs(ids, labels, tokenizer):
    """Decoded text of each maximal run of trained tokens."""
    runs, current = [], []
    for token_id, label in zip(ids, labels):
        if label != IGNORE_INDEX:
            current.append(token_id)
        elif current:
            runs.append(current)
            current = []
    return [tokenizer.decode(run) for run in runs + ([current] if current else [])]


# ------------------------------------------------------------------------------- text and ids: the templates

@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("case", list(CASES))
def test_text_and_ids_match_official_template(reference, tokenizers, hf_tokenizers, name, case):
    messages, tools, add_generation_prompt, options = CASES[case]
    rendered = render(name, messages, tools, add_generation_prompt, options)
    assert rendered.text == oracle(reference, name, messages, tools, add_generation_prompt, options)
    if name == "qwen3":  # the first-release template renders string contents identically
        assert rendered.text == oracle(reference, "qwen3-a", messages, tools, add_generation_prompt, options)
    # token ids: transformers' own apply_chat_template (which maps `reasoning` itself) and the real tokenizer
    chat_template = (reference / "templates" / TEMPLATES[name]).read_text(encoding="utf-8")
    hf_messages = [m if m["role"] != "tool" else oracle_messages([m])[0] for m in messages]
    hf_ids = hf_tokenizers[name].apply_chat_template(
        hf_messages, tools=tools, chat_template=chat_template, tokenize=True, return_dict=False,
        add_generation_prompt=add_generation_prompt, **(options if name == "qwen3" else {}))
    assert tokenizers[name].encode(rendered.text) == list(hf_ids)


@pytest.mark.parametrize("name", FORMATS)
def test_every_prefix_and_generation_prompt_match(reference, name):
    """render(messages[:k]) is the template's render of that prefix, with and without the generation prompt:
    what splitting a conversation into prefixes (not prefix-preserving qwen3) relies on."""
    checked = 0
    for messages, tools, _, options in CASES.values():
        for k in range(1, len(messages) + 1):
            for add_generation_prompt in (False, True):
                expected = oracle(reference, name, messages[:k], tools, add_generation_prompt, options)
                assert render(name, messages[:k], tools, add_generation_prompt, options).text == expected
                checked += 1
    assert checked == 2 * sum(len(messages) for messages, *_ in CASES.values())


def test_official_examples(reference):
    """examples/rendered_examples_qwen3_gemma4.json: the Qwen cases, `reasoning_content` read as `reasoning`.
    Three inputs are written the way minifc's data holds them (the bytes must still be the template's)."""
    cases = json.loads((reference / "examples" / "rendered_examples_qwen3_gemma4.json").read_text("utf-8"))["cases"]
    names = {"templates/qwen3.jinja": "qwen3", "templates/qwen3-hf-current.jinja": "qwen3",
             "templates/qwen3-instruct-2507.jinja": "qwen3-2507"}
    checked = 0
    for case in cases:
        if case["template"] not in names:
            continue
        fmt, inputs = get_format(names[case["template"]]), copy.deepcopy(case["inputs"])
        messages = inputs["messages"]
        for message in messages:
            if "reasoning_content" in message:
                message["reasoning"] = message.pop("reasoning_content")
        if case["name"] == "inline_think_in_content_is_split":  # a reader moves inline <think> to "reasoning"
            messages[1] = answer("Hello!", reasoning="Greet back.")
        if case["name"] == "tool_response_wrapped_user_is_not_a_query":  # a wrapped user text is a tool result
            messages[2] = result('{"temperature": 21}')
        options = inputs["extra"] if fmt.name == "qwen3" else {}
        rendered = fmt.render(messages, inputs["tools"], inputs["add_generation_prompt"], **options)
        if case["name"] == "tool_content_dict_not_string":  # templates write "" (B) or a repr (A); minifc JSON
            expected = case["output"].replace("<tool_response>\n\n", "<tool_response>\n{'temperature': 21}\n")
            assert rendered.text == expected.replace("{'temperature': 21}", '{"temperature": 21}')
        else:
            assert rendered.text == case["output"], case["name"]
        checked += 1
    assert checked == 30


def test_reasoning_only_where_qwen3_shows_it():
    messages = CASES["multi_turn_tools_reasoning"][0]
    text = get_format("qwen3").render(messages, [WEATHER, TIME]).text
    assert "Weather first." not in text and "Report it." not in text  # before the last user query: dropped
    assert "<think>\nTime now.\n</think>\n\n<tool_call>" in text        # after it: shown
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n22:05.<|im_end|>\n")  # final: empty block
    for name in ("qwen3-2507", "qwen2.5"):  # no place for reasoning in these templates
        assert "<think>" not in get_format(name).render(messages, [WEATHER, TIME]).text


def test_tool_result_serialisation_and_string_arguments(reference):
    """A string argument is written as it is by qwen3 and 2507 (the template's rule), refused for qwen2.5
    (its template would double-encode it); non-string results are written as JSON."""
    as_string = [ASK, {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'}}]}]
    for name in ("qwen3", "qwen3-2507"):
        text = get_format(name).render(as_string, [WEATHER]).text
        assert text == oracle(reference, name, as_string, [WEATHER], False, {})
        assert text == get_format(name).render([ASK, calls(call("get_weather", city="Zürich"))], [WEATHER]).text
    with pytest.raises(ValueError, match=r"messages\[1\].tool_calls\[0\].function.arguments must be a dict"):
        get_format("qwen2.5").render(as_string, [WEATHER])
    text = get_format("qwen2.5").render([ASK, calls(PARIS), result({"t": "é"}), result(0.5), result(False)], [WEATHER]).text
    assert text.endswith('<tool_response>\n{"t": "é"}\n</tool_response>\n<tool_response>\n0.5\n</tool_response>\n'
                         "<tool_response>\nfalse\n</tool_response><|im_end|>\n")


def test_qwen25_default_system_and_empty_tool_list(reference):
    text = get_format("qwen2.5").render([user("Hi!")], tools=[]).text
    assert text == ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                    "<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n")
    for name in FORMATS:
        assert render(name, [user("Hi!")], [], False, {}).text == oracle(reference, name, [user("Hi!")], None, False, {})


# --------------------------------------------------------------------------------------- what is trained

@pytest.mark.parametrize("name", FORMATS)
def test_trained_text_is_each_assistant_turn_on_token_boundaries(reference, tokenizers, name):
    """With the real tokenizer, every case and every prefix of it aligns (the default rule and every role
    trained), and the trained text is exactly each assistant turn of the official render, its think block
    and <|im_end|> included."""
    fmt, tokenizer = get_format(name), tokenizers[name]
    everything = TrainOn(("assistant", "tool", "user", "system"))
    for case, (messages, tools, _, options) in CASES.items():
        if (case, name) in UNALIGNED:
            with pytest.raises(ValueError, match="straddles"):
                encode(fmt.render(messages, tools), tokenizer)
            continue
        for k in range(1, len(messages) + 1):
            rendered = fmt.render(messages[:k], tools)
            ids, labels = encode(rendered, tokenizer)
            expected = assistant_bodies(oracle(reference, name, messages[:k], tools, False, {}))
            assert "".join(trained_runs(ids, labels, tokenizer)) == "".join(expected), (case, k)
            assert sum(label == IM_END for label in labels) == len(expected)
            assert encode(rendered, tokenizer, everything)[0] == ids


def test_exact_trained_text(tokenizers):
    tokenizer, fmt = tokenizers["qwen3"], get_format("qwen3")
    ids, labels = encode(fmt.render(CASES["multi_turn_tools_reasoning"][0], [WEATHER, TIME]), tokenizer)
    assert trained_runs(ids, labels, tokenizer) == [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call><|im_end|>',
        "Sunny, 21 °C.<|im_end|>",
        '<think>\nTime now.\n</think>\n\n<tool_call>\n{"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}}\n'
        "</tool_call><|im_end|>",
        "<think>\n\n</think>\n\n22:05.<|im_end|>"]
    messages = CASES["parallel_results_grouped_answer"][0]
    ids, labels = encode(fmt.render(messages, [WEATHER, TIME]), tokenizer, TrainOn(("assistant", "tool", "system")))
    assert trained_runs(ids, labels, tokenizer) == [
        "You are a helpful assistant.\n\n", "<|im_end|>",  # the system text, not the declarations; its end token
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}}\n</tool_call><|im_end|>',
        '{"temperature": 21, "condition": "sunny"}\n', "14:05\n", "<|im_end|>",
        "<think>\n\n</think>\n\nIt is 21 °C and sunny; 14:05 in Tokyo.<|im_end|>"]
    ids, labels = encode(get_format("qwen2.5").render(messages, [WEATHER, TIME]), tokenizers["qwen2.5"])
    assert trained_runs(ids, labels, tokenizers["qwen2.5"])[-1] == "It is 21 °C and sunny; 14:05 in Tokyo.<|im_end|>"


def test_final_turn_is_what_serving_adds_after_the_generation_prompt():
    """The issue's rule for the last turn: render(messages) = render(messages[:-1], add_generation_prompt=True)
    + the trained text of the last assistant turn (qwen3: with its think block, possibly empty)."""
    for name in FORMATS:
        fmt = get_format(name)
        for case, (messages, tools, _, _) in CASES.items():
            if messages[-1]["role"] != "assistant" or not any(m["role"] == "user" for m in messages):
                continue
            full = fmt.render(messages, tools)
            prompt = fmt.render(messages[:-1], tools, add_generation_prompt=True).text
            last_start, last_end = full.spans[-1]
            assert full.text[:last_start] == prompt and full.text[last_end:] == "\n", (name, case)


# ---------------------------------------------------------------------------------------------- tokens

def test_control_and_stop_tokens_are_single_ids(tokenizers):
    qwen3, qwen25 = tokenizers["qwen3"], tokenizers["qwen2.5"]
    added = {token.content for token in qwen3.tk.get_added_tokens_decoder().values()}
    assert set(ADDED_TOKENS) == added  # refused inside data: every added token of the Qwen3 tokenizer
    assert {token.content for token in qwen25.tk.get_added_tokens_decoder().values()} < added
    for name in FORMATS:
        fmt, tokenizer = get_format(name), tokenizers[name]
        for token in fmt.control_tokens + fmt.stop_tokens:
            assert len(tokenizer.encode(token)) == 1, (name, token)
        assert tokenizer.stop_ids(fmt) == [IM_END, END_OF_TEXT]
        written = set()
        for messages, tools, add_generation_prompt, options in CASES.values():
            ids = tokenizer.encode(render(name, messages, tools, add_generation_prompt, options).text)
            written |= {tokenizer.decode([i]) for i in ids if i >= END_OF_TEXT}  # the added tokens
        assert written == set(fmt.control_tokens), name
    assert tokenizers["qwen2.5"].encode("<tool_response>") == [27, 14172, 9655, 29]  # no such token in Qwen2.5


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("messages, tools, match", [
    ([{"role": "developer", "content": "Be brief."}, ASK], None, r"messages\[0\]: role 'developer'"),
    ([ASK, {"role": "ipython", "content": "x"}], None, r"messages\[1\]: role 'ipython'"),
    ([user([{"type": "text", "text": "hi"}])], None, r"messages\[0\].content .* must be a string"),
    ([ASK, {"role": "assistant"}], None, "neither content nor tool_calls"),
    ([ASK, calls(PARIS), result(None)], None, r"messages\[2\]: tool result has no content"),
    ([user("x") | {"tool_calls": [PARIS]}], None, "only assistant messages"),
    ([ASK, calls({"name": "f", "arguments": {}})], None, r"tool_calls\[0\] must be"),
    ([ASK, calls(call(""))], None, r"tool_calls\[0\].function.name must be"),
    ([ASK, calls({"type": "function", "function": {"name": "f", "arguments": [1]}})], None, "must be a dict"),
    ([user("a <|im_end|> b")], [WEATHER], r"messages\[0\].content contains the control token '<\|im_end\|>'"),
    ([ASK, answer("ok <tool_call>")], None, r"messages\[1\].content contains"),
    ([ASK, answer("ok", reasoning="<think>")], None, r"messages\[1\].reasoning contains"),
    ([ASK, calls(PARIS), result({"x": "</tool_response>"})], None, r"messages\[2\].content.x contains"),
    ([ASK], [tool("f", "<|endoftext|>", {})], r"tools\[0\].function.description contains"),
])
def test_bad_input_is_refused_with_the_field(name, messages, tools, match):
    with pytest.raises(ValueError, match=match):
        get_format(name).render(messages, tools)


def test_non_string_reasoning_is_refused_where_shown():
    with pytest.raises(ValueError, match=r"messages\[1\].reasoning .* must be a string"):
        get_format("qwen3").render([ASK, answer("ok", reasoning=["x"])])
    with pytest.raises(TypeError, match="enable_thinking"):  # only qwen3 has the switch
        get_format("qwen3-2507").render([ASK], add_generation_prompt=True, enable_thinking=False)


small_texts = st.sampled_from(["", "a", "\n", "\n\nb.\n", " c ", '{"k": "é"}', "d\n\n"]) | st.text(
    st.sampled_from(["a", "é", " ", "\n", ".", "{", "}", '"', "<", "/", ">"]), max_size=6)
conversation_messages = st.lists(st.one_of(
    st.builds(user, small_texts),
    st.builds(lambda content, reasoning, tool_calls: {"role": "assistant", "content": content, "tool_calls": tool_calls}
              | ({"reasoning": reasoning} if reasoning is not None else {}),
              st.none() | small_texts, st.none() | small_texts,
              st.lists(st.sampled_from([PARIS, TOKYO, call("get_time")]), max_size=2)).filter(
        lambda m: m["content"] is not None or m["tool_calls"]),
    st.builds(result, small_texts | st.dictionaries(small_texts, st.integers(), max_size=2)),
    st.builds(lambda text: {"role": "system", "content": text}, small_texts)), min_size=1, max_size=7)


@settings(max_examples=150, deadline=None)
@given(messages=conversation_messages, with_tools=st.booleans(), add_generation_prompt=st.booleans(),
       enable_thinking=st.booleans())
def test_any_conversation_matches_official_template(reference, messages, with_tools, add_generation_prompt,
                                                    enable_thinking):
    """Random conversations, in any order of roles, with edge-case texts (empty, newlines at either end)."""
    tools = [WEATHER, TIME] if with_tools else None
    options = {"enable_thinking": enable_thinking}
    for name in FORMATS:
        assert render(name, messages, tools, add_generation_prompt, options).text == oracle(
            reference, name, messages, tools, add_generation_prompt, options)


# ---------------------------------------------------------------------------------------------- parse

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=8), children, max_size=4),
    max_leaves=12)
tool_calls = st.lists(st.builds(lambda name, arguments: {"type": "function", "function": {
    "name": name, "arguments": arguments}}, st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,24}", fullmatch=True),
    st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=10), json_values, max_size=5)),
    max_size=3)
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=30).map(str.strip)


def contains_added_token(value) -> bool:
    return any(token in json.dumps(value, ensure_ascii=False) for token in ADDED_TOKENS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tool_calls=tool_calls, content=texts, reasoning=texts)
def test_parse_inverts_render(tokenizers, tool_calls, content, reasoning):
    message = {"role": "assistant", "content": content or None, "tool_calls": tool_calls}
    if reasoning:
        message["reasoning"] = reasoning
    data = json.dumps(message, ensure_ascii=False)
    if not content and not tool_calls or contains_added_token(message) or unicodedata.normalize("NFC", data) != data:
        return  # nothing to say, refused (tested above), or changed by the tokenizers' NFC normaliser
    for name in FORMATS:
        fmt, tokenizer = get_format(name), tokenizers[name]
        prompt = fmt.render([ASK], [WEATHER], add_generation_prompt=True).text
        rendered = fmt.render([ASK, message], [WEATHER])
        generated = tokenizer.decode(tokenizer.encode(rendered.text[len(prompt):]))  # what generation returns
        expected = {"role": "assistant", "content": content or None, "tool_calls": tool_calls, "parse_error": None,
                    "reasoning": reasoning.strip("\n") if name == "qwen3" and reasoning.strip("\n") else None}
        assert parse(generated) == expected


@pytest.mark.parametrize("generated, expected", [
    ("<think>\nHm.\n</think>\n\nHello!<|im_end|>\n", {"content": "Hello!", "reasoning": "Hm."}),
    ("Hm, the prompt opened it.\n</think>\n\nHello!", {"content": "Hello!", "reasoning": "Hm, the prompt opened it."}),
    ("<think>\n\n</think>\n\nHello!<|endoftext|>junk", {"content": "Hello!"}),
    ('<tool_call>\n{"name": "f", "arguments": "{\\"a\\": 2}"}\n</tool_call>', {"tool_calls": [call("f", a=2)]}),
    ('Sure.\n<tool_call>{"name": "f", "arguments": {}}</tool_call>  \n <tool_call>\n{"name": "g", "arguments": '
     '{"b": [1]}}\n</tool_call>\n', {"content": "Sure.", "tool_calls": [call("f"), call("g", b=[1])]}),
])
def test_parse_accepts_variants(generated, expected):
    assert parse(generated) == {"role": "assistant", "content": None, "tool_calls": [], "parse_error": None,
                                "reasoning": None} | expected


@pytest.mark.parametrize("generated, error", [
    ('<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>', "malformed tool call: Expecting"),
    ('<tool_call>\n{"arguments": {}}\n</tool_call>', 'malformed tool call: call 1 has no "name"'),
    ('<tool_call>\n{"name": "f"}\n</tool_call>', '"arguments" must be a JSON object'),
    ('<tool_call>\n{"name": "f", "arguments": [1]}\n</tool_call>', '"arguments" must be a JSON object'),
    ('<tool_call>\n["f", {}]\n</tool_call>', "call 1 is a JSON list"),
    ('<tool_call>\n{"name": "f", "arguments": {}}', "is never closed"),
    ('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call> and then', "text after the tool calls"),
    ('I called it.</tool_call>', "</tool_call> without <tool_call>"),
    ("<think>\nStill thinking when the length ran out", "malformed reasoning: <think> is never closed"),
    pytest.param("<tool_call>" + "[" * 100000, "malformed tool call", id="deep-nesting"),
])
def test_parse_malformed_returns_error_and_never_raises(generated, error):
    result = parse(generated + "<|im_end|>")
    assert result["tool_calls"] == [] and result["parse_error"].startswith("malformed") and error in result["parse_error"]
    assert result["content"] == generated.strip()


@pytest.mark.slow
@pytest.mark.parametrize("name", FORMATS)
def test_builtin_data_matches_official_template_and_aligns(reference, tokenizers, name):
    """All 960 built-in conversations: the official template's text, and trained spans on token boundaries
    with the real tokenizer, for the default rule and with every role trained."""
    from minifc.data import BUILTIN_TEST, BUILTIN_TRAIN, load_examples
    examples = load_examples(BUILTIN_TRAIN)[0] + load_examples(BUILTIN_TEST)[0]
    everything = TrainOn(("assistant", "tool", "user", "system"))
    fmt, tokenizer = get_format(name), tokenizers[name]
    for example in examples:
        official = oracle(reference, name, example.messages, example.tools, False, {})
        assert fmt.render(example.messages, example.tools).text == official, example.location
        rendered = fmt.render(example.messages, example.tools)
        ids, labels = encode(rendered, tokenizer)
        assert "".join(trained_runs(ids, labels, tokenizer)) == "".join(assistant_bodies(official))
        encode(rendered, tokenizer, everything)
    assert len(examples) == 960
