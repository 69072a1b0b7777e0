"""Converters, each on small records written in its source's own shape, quirks included."""

import json

import pytest

from minifc.chat import get_format
from minifc.convert import (SIMPLE_TOOLS, ConversionError, convert_glaive, convert_hermes, convert_simple,
                            convert_xlam, detect_format, xlam_type)
from minifc.data import load_examples
from minifc.encode import render_example
from minifc.schema import validate_example


def call(name, arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


# --- glaive-function-calling-v2 ----------------------------------------------------------------------------

GLAIVE_SYSTEM = (
    "SYSTEM: You are a helpful assistant with access to the following functions. Use them if required -\n"
    "{\n    \"name\": \"calculate_tip\",\n    \"description\": \"Calculate the tip amount\",\n    \"parameters\": {\n"
    "        \"type\": \"object\",\n        \"properties\": {\n"
    "            \"bill_amount\": {\"type\": \"number\", \"description\": \"The bill\"},\n"
    "            \"tip_percentage\": {\"type\": \"number\", \"description\": \"The tip percentage\"}\n        },\n"
    "        \"required\": [\"bill_amount\", \"tip_percentage\"]\n    }\n}\n\n"
    "{\n    \"name\": \"create_note\",\n    \"description\": \"Create a note\",\n    \"parameters\": {\n"
    "        \"type\": \"object\",\n        \"properties\": {\"text\": {\"type\": \"string\"}},\n"
    "        \"required\": [\"text\"]\n    }\n}\n")
GLAIVE_CHAT = (
    "USER: Hi, I need help with calculating the tip for my bill. The total is $85 and I want to tip 15%.\n\n\n"
    "ASSISTANT: <functioncall> {\"name\": \"calculate_tip\", \"arguments\": '{\"bill_amount\": 85, "
    "\"tip_percentage\": 15}'} <|endoftext|>\n\n\n"
    "FUNCTION RESPONSE: {\"tip_amount\": 12.75}\n\n\n"
    "ASSISTANT: The tip amount for your bill should be $12.75. <|endoftext|>\n\n\n"
    "USER: Note that I'm happy with it.\n\n\n"
    "ASSISTANT: <functioncall> {\"name\": \"create_note\", \"arguments\": '{\"text\": \"I'm happy\"}'} <|endoftext|>\n\n\n"
    "FUNCTION RESPONSE: {\"status\": \"ok\"}\n\n\n"
    "ASSISTANT: Done! <|endoftext|>\n")


def test_glaive_record():
    ex = convert_glaive({"system": GLAIVE_SYSTEM, "chat": GLAIVE_CHAT}, "g.json:3")
    assert [t["function"]["name"] for t in ex.tools] == ["calculate_tip", "create_note"]
    assert ex.tools[0] == {"type": "function", "function": {
        "name": "calculate_tip", "description": "Calculate the tip amount", "parameters": {
            "type": "object", "properties": {"bill_amount": {"type": "number", "description": "The bill"},
                                             "tip_percentage": {"type": "number", "description": "The tip percentage"}},
            "required": ["bill_amount", "tip_percentage"]}}}
    assert ex.messages == [
        {"role": "user", "content": "Hi, I need help with calculating the tip for my bill. The total is $85 and I "
                                    "want to tip 15%."},
        {"role": "assistant", "content": None,
         "tool_calls": [call("calculate_tip", {"bill_amount": 85, "tip_percentage": 15})]},
        {"role": "tool", "name": "calculate_tip", "content": "{\"tip_amount\": 12.75}"},
        {"role": "assistant", "content": "The tip amount for your bill should be $12.75."},
        {"role": "user", "content": "Note that I'm happy with it."},
        {"role": "assistant", "content": None, "tool_calls": [call("create_note", {"text": "I'm happy"})]},
        {"role": "tool", "name": "create_note", "content": "{\"status\": \"ok\"}"},
        {"role": "assistant", "content": "Done!"}]
    assert validate_example(ex) == []


def test_glaive_without_functions_and_with_plain_json_arguments():
    ex = convert_glaive({"system": "SYSTEM: You are a helpful assistant, with no access to external functions.",
                         "chat": "USER: Tell me a joke.\n\n\nASSISTANT: Why did the chicken cross the road? "
                                 "<|endoftext|>\n"}, "g:1")
    assert ex.tools == []
    assert ex.messages == [{"role": "user", "content": "Tell me a joke."},
                           {"role": "assistant", "content": "Why did the chicken cross the road?"}]
    plain = convert_glaive({"system": GLAIVE_SYSTEM, "chat": "USER: tip?\n\n\nASSISTANT: <functioncall> {\"name\": "
                            "\"create_note\", \"arguments\": {\"text\": \"x\"}} <|endoftext|>"}, "g:2")
    assert plain.messages[1]["tool_calls"] == [call("create_note", {"text": "x"})]


def test_glaive_unreadable_call_is_counted(tmp_path):
    broken = {"system": GLAIVE_SYSTEM, "chat": "USER: Weather?\n\n\nASSISTANT: <functioncall> {\"name\": "
                                               "\"calculate_tip\", \"arguments\": '{\"bill_amount\": }'}"}
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"system": GLAIVE_SYSTEM, "chat": GLAIVE_CHAT}) + "\n" + json.dumps(broken) + "\n")
    examples, report = load_examples(path)
    assert len(examples) == 1 and report.skipped == {"unreadable_glaive": 1}
    assert f"{path}:2: chat <functioncall> arguments: not valid JSON (Expecting value)" in report.summary()


# --- hermes-function-calling-v1 ----------------------------------------------------------------------------

HERMES_SYSTEM = (
    "You are a function calling AI model. You are provided with function signatures within <tools> </tools> XML "
    "tags. You may call one or more functions to assist with the user query. Don't make assumptions about what "
    "values to plug into functions.\n<tools>\n[{'type': 'function', 'function': {'name': 'get_stock_price', "
    "'description': 'Get the current stock price', 'parameters': {'type': 'object', 'properties': {'symbol': "
    "{'type': 'string', 'description': 'Ticker'}}, 'required': ['symbol']}}}]\n</tools>\nFor each function call "
    "return a json object with function name and arguments within <tool_call> </tool_call> tags with the following "
    "schema:\n<tool_call>\n{'arguments': <args-dict>, 'name': <function-name>}\n</tool_call>\n")


def test_hermes_record_with_parallel_calls_in_python_literal_syntax():
    record = {"id": "x1", "category": "Finance", "subcategory": "Stocks", "task": "t", "conversations": [
        {"from": "system", "value": HERMES_SYSTEM},
        {"from": "human", "value": "Prices of TSLA and AAPL?"},
        {"from": "gpt", "value": "<tool_call>\n{'arguments': {'symbol': 'TSLA'}, 'name': 'get_stock_price'}\n"
                                 "</tool_call>\n<tool_call>\n{'arguments': {'symbol': 'AAPL'}, 'name': "
                                 "'get_stock_price'}\n</tool_call>\n"},
        {"from": "tool", "value": "<tool_response>\n{\"name\": \"get_stock_price\", \"content\": {\"price\": 191.97}}\n"
                                  "</tool_response>\n<tool_response>\n{\"name\": \"get_stock_price\", \"content\": "
                                  "{\"price\": 172.5}}\n</tool_response>\n"},
        {"from": "gpt", "value": "TSLA is at 191.97 and AAPL at 172.5."}]}
    ex = convert_hermes(record, "h.json:2")
    assert ex.tools == [{"type": "function", "function": {
        "name": "get_stock_price", "description": "Get the current stock price", "parameters": {
            "type": "object", "properties": {"symbol": {"type": "string", "description": "Ticker"}},
            "required": ["symbol"]}}}]
    assert ex.category == "Finance"
    assert ex.messages == [
        {"role": "user", "content": "Prices of TSLA and AAPL?"},
        {"role": "assistant", "content": None, "tool_calls": [call("get_stock_price", {"symbol": "TSLA"}),
                                                              call("get_stock_price", {"symbol": "AAPL"})]},
        {"role": "tool", "name": "get_stock_price", "content": "{\"price\": 191.97}"},
        {"role": "tool", "name": "get_stock_price", "content": "{\"price\": 172.5}"},
        {"role": "assistant", "content": "TSLA is at 191.97 and AAPL at 172.5."}]
    assert validate_example(ex) == []


def test_hermes_tools_field_json_calls_and_text_around_them():
    tools = [{"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}, "exact": {"type": "boolean"}}, "required": ["q"]}}}]
    record = {"tools": json.dumps(tools), "conversations": [
        {"from": "system", "value": "You are a helpful assistant."},
        {"from": "human", "value": "Look up cats."},
        {"from": "gpt", "value": "Let me check.\n<tool_call>\n{\"name\": \"lookup\", \"arguments\": {\"q\": \"cats\", "
                                 "\"exact\": true}}\n</tool_call>"},
        {"from": "tool", "value": "<tool_response>\nplain text result\n</tool_response>"},
        {"from": "gpt", "value": "Cats are mammals."}]}
    ex = convert_hermes(record, "h:1")
    assert ex.tools == tools
    assert ex.messages == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Look up cats."},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [call("lookup", {"q": "cats", "exact": True})]},
        {"role": "tool", "name": "lookup", "content": "plain text result"},
        {"role": "assistant", "content": "Cats are mammals."}]
    assert validate_example(ex) == []


@pytest.mark.parametrize("text", ["{oops", "{'name': 'f', 'arguments': {'a': {1, 2}}}", "{[1]: 2}", "[" * 200_000])
def test_hermes_bad_call_raises_conversion_error(text):
    record = {"conversations": [{"from": "human", "value": "x"},
                                {"from": "gpt", "value": f"<tool_call>{text}</tool_call>"}]}
    with pytest.raises(ConversionError) as caught:
        convert_hermes(record, "h:1")
    assert caught.value.field == "conversations[1].value <tool_call>"
    assert caught.value.message == ("neither JSON nor a Python literal of JSON values (dicts, lists, strings, numbers, "
                                    f"True, False, None): {text[:80]!r}")


# --- Jofthomas/hermes-function-calling-thinking-V1 (the Hugging Face agents course) ---------------------------
# Its layout: "conversations" of {"role", "content"} with roles system / human / model / tool; the system
# prompt of hermes-function-calling-v1 with the tools as a Python-literal list; <think> before each call;
# calls and results as Python-literal dicts.

AGENTS_SYSTEM = (
    "You are a function calling AI model. You are provided with function signatures within <tools></tools> XML "
    "tags.You may call one or more functions to assist with the user query. Don't make assumptions about what "
    "values to plug into functions.Here are the available tools:<tools> [{'type': 'function', 'function': "
    "{'name': 'get_current_temperature', 'description': 'Get the current temperature of a city', 'parameters': "
    "{'type': 'object', 'properties': {'location': {'type': 'string', 'description': \"A city, e.g. 'Copenhagen'\"}, "
    "'unit': {'type': 'string', 'enum': ['celsius', 'fahrenheit'], 'description': 'The unit'}}, 'required': "
    "['location']}}}, {'type': 'function', 'function': {'name': 'convert_currency', 'description': 'Convert an "
    "amount between currencies', 'parameters': {'type': 'object', 'properties': {'amount': {'type': 'number', "
    "'description': 'The amount'}, 'from': {'type': 'string', 'description': 'From currency'}, 'to': {'type': "
    "'string', 'description': 'To currency'}}, 'required': ['amount', 'from', 'to']}}}] </tools>Use the following "
    "pydantic model json schema for each tool call you will make: {'title': 'FunctionCall', 'type': 'object', "
    "'properties': {'arguments': {'title': 'Arguments', 'type': 'object'}, 'name': {'title': 'Name', 'type': "
    "'string'}}, 'required': ['arguments', 'name']}For each function call return a json object with function name "
    "and arguments within <tool_call></tool_call> XML tags as follows:\n<tool_call>\n{tool_call}\n</tool_call>")
AGENTS_THINK = ("Okay, so the user is asking about the weather in Copenhagen. Looking at the available tools, "
                "get_current_temperature gives the temperature at a location, and the user named the city, so I "
                "should call it with location 'Copenhagen'.")
AGENTS_RECORD = {"conversations": [
    {"role": "system", "content": AGENTS_SYSTEM},
    {"role": "human", "content": "Hi, what is the weather like in Copenhagen?"},
    {"role": "model", "content": "<think>" + AGENTS_THINK + "\n</think><tool_call>\n{'name': "
                                 "'get_current_temperature', 'arguments': {'location': 'Copenhagen'}}\n</tool_call>"},
    {"role": "tool", "content": "<tool_response>\n{'name': 'get_current_temperature', 'content': {'temperature': "
                                "-2, 'unit': 'celsius', 'sunny': True}}\n</tool_response>"},
    {"role": "model", "content": "It is -2°C in Copenhagen right now, and sunny."},
    {"role": "human", "content": "Thanks! And 100 EUR in DKK?"},
    {"role": "model", "content": "<think>The user wants a currency conversion.</think>\n\n<tool_call>\n{'name': "
                                 "'convert_currency', 'arguments': {'amount': 100, 'from': 'EUR', 'to': 'DKK'}}\n"
                                 "</tool_call>"},
    {"role": "tool", "content": "<tool_response>\n{'name': 'convert_currency', 'content': {'converted_amount': "
                                "746.0}}\n</tool_response>"},
    {"role": "model", "content": "<think>746 DKK.</think>100 EUR is 746.0 DKK."}]}
AGENTS_TOOLS = [
    {"type": "function", "function": {"name": "get_current_temperature",
                                      "description": "Get the current temperature of a city", "parameters": {
        "type": "object", "properties": {"location": {"type": "string", "description": "A city, e.g. 'Copenhagen'"},
                                         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                                                  "description": "The unit"}}, "required": ["location"]}}},
    {"type": "function", "function": {"name": "convert_currency", "description": "Convert an amount between currencies",
                                      "parameters": {"type": "object", "properties": {
                                          "amount": {"type": "number", "description": "The amount"},
                                          "from": {"type": "string", "description": "From currency"},
                                          "to": {"type": "string", "description": "To currency"}},
                                          "required": ["amount", "from", "to"]}}}]
AGENTS_MESSAGES = [
    {"role": "user", "content": "Hi, what is the weather like in Copenhagen?"},
    {"role": "assistant", "content": None, "reasoning": AGENTS_THINK,
     "tool_calls": [call("get_current_temperature", {"location": "Copenhagen"})]},
    {"role": "tool", "name": "get_current_temperature",
     "content": "{\"temperature\": -2, \"unit\": \"celsius\", \"sunny\": true}"},
    {"role": "assistant", "content": "It is -2°C in Copenhagen right now, and sunny."},
    {"role": "user", "content": "Thanks! And 100 EUR in DKK?"},
    {"role": "assistant", "content": None, "reasoning": "The user wants a currency conversion.",
     "tool_calls": [call("convert_currency", {"amount": 100, "from": "EUR", "to": "DKK"})]},
    {"role": "tool", "name": "convert_currency", "content": "{\"converted_amount\": 746.0}"},
    {"role": "assistant", "content": "100 EUR is 746.0 DKK.", "reasoning": "746 DKK."}]


def test_agents_course_record():
    ex = convert_hermes(AGENTS_RECORD, "a.jsonl:1")
    assert ex.tools == AGENTS_TOOLS
    assert ex.messages == AGENTS_MESSAGES
    assert validate_example(ex) == []


@pytest.mark.parametrize("key", ["conversations", "messages"])
def test_agents_course_record_loads_keeps_its_reasoning_and_renders(tmp_path, key):
    path = tmp_path / "agents.jsonl"
    path.write_text(json.dumps({key: AGENTS_RECORD["conversations"]}) + "\n", encoding="utf-8")
    [ex], report = load_examples(path)
    assert (report.read, report.kept) == (1, 1), report.summary()
    assert (ex.tools, ex.messages, ex.location) == (AGENTS_TOOLS, AGENTS_MESSAGES, f"{path}:1")
    calls = {"gemma3": 'get_current_temperature(location="Copenhagen")',
             "functiongemma": "<start_function_call>call:get_current_temperature{location:<escape>Copenhagen<escape>}",
             "llama3.2": '{"name": "get_current_temperature", "parameters": {"location": "Copenhagen"}}'}
    for name, rendered_call in calls.items():  # these formats have no place for reasoning (README)
        assert rendered_call in render_example(ex, get_format(name)).text, name
    assert [m.get("reasoning") for m in ex.messages] == [None, AGENTS_THINK, None, None, None,
                                                         "The user wants a currency conversion.", None, "746 DKK."]


@pytest.mark.parametrize("turn, field, error", [
    ({"role": "model", "content": "<think>Hmm<tool_call>\n{'name': 'f', 'arguments': {}}\n</tool_call>"},
     "conversations[1].content", "opens <think> but never closes it; add </think> after the reasoning"),
    ({"from": "gpt", "value": "<think>a</think>b", "reasoning_content": "a"}, "conversations[1].value",
     "opens with a <think> block, but the message also has \"reasoning\" (or \"reasoning_content\"); keep one of "
     "the two"),
    ({"role": "model", "content": "<tool_call>\n{'name': 'f', 'arguments': {}}"}, "conversations[1].content",
     "a <tool_call> is never closed; add </tool_call> after the call"),
    ({"role": "model", "content": "<tool_call>['f']</tool_call>"}, "conversations[1].content <tool_call>",
     "expected {\"name\": ..., \"arguments\": {...}}, got \"['f']\""),
    ({"role": "assistant", "content": None, "tool_calls": [call("f", {})]}, "conversations[1].tool_calls",
     "hermes turns hold their calls as <tool_call> tags in the text; for structured tool_calls use the canonical "
     "layout (\"messages\", --data-format canonical)"),
    ({"role": "model", "content": ["parts"]}, "conversations[1]",
     "must be {\"from\": ..., \"value\": \"...\"} or {\"role\": ..., \"content\": \"...\"}"),
    ({"role": "tool", "content": "<tool_response>\n{'name': 'f', 'content': 1}"}, "conversations[1].content",
     "a <tool_response> is never closed; add </tool_response> after the result"),
])
def test_hermes_refusals_name_the_turn(turn, field, error):
    record = {"conversations": [{"role": "human", "content": "hi"}, turn]}
    with pytest.raises(ConversionError) as caught:
        convert_hermes(record, "h:1")
    assert (caught.value.field, caught.value.message) == (field, error)


def test_forced_hermes_reads_plain_messages_like_canonical(tmp_path):
    path = tmp_path / "d.jsonl"
    record = {"messages": [{"role": "user", "content": "hi"},
                           {"role": "assistant", "content": "<think>Greet.</think>hello"}]}
    path.write_text(json.dumps(record) + "\n")
    [canonical], _ = load_examples(path)
    [hermes], _ = load_examples(path, data_format="hermes")
    assert canonical.messages == hermes.messages == [{"role": "user", "content": "hi"},
                                                     {"role": "assistant", "content": "hello", "reasoning": "Greet."}]


# --- xlam-function-calling-60k -----------------------------------------------------------------------------

XLAM_TOOLS = [
    {"name": "live_giveaways_by_type", "description": "Retrieve live giveaways from the GamerPower API.",
     "parameters": {"type": {"description": "The type of giveaways (e.g., game, loot, beta).", "type": "str",
                             "default": "game"}}},
    {"name": "find_peaks", "description": "Finds peaks in a list.",
     "parameters": {"nums": {"description": "The numbers.", "type": "List[int]"},
                    "threshold": {"description": "Minimum height.", "type": "float, optional", "default": ""},
                    "strict": {"description": "Strict peaks.", "type": "bool"},
                    "labels": {"description": "Names.", "type": "List[str], optional"},
                    "options": {"description": "Extra options.", "type": "Dict"}}},
]


def test_xlam_record():
    record = {"id": 7, "query": "Find peaks in [1, 3, 2] strictly, and list beta giveaways.",
              "tools": json.dumps(XLAM_TOOLS),
              "answers": json.dumps([{"name": "find_peaks", "arguments": {"nums": [1, 3, 2], "strict": True,
                                                                          "options": {}}},
                                     {"name": "live_giveaways_by_type", "arguments": {"type": "beta"}}])}
    ex = convert_xlam(record, "x.json:1")
    assert ex.tools[0] == {"type": "function", "function": {
        "name": "live_giveaways_by_type", "description": "Retrieve live giveaways from the GamerPower API.",
        "parameters": {"type": "object", "properties": {"type": {
            "type": "string", "description": "The type of giveaways (e.g., game, loot, beta)."}}, "required": []}}}
    assert ex.tools[1]["function"]["parameters"] == {"type": "object", "properties": {
        "nums": {"type": "array", "items": {"type": "integer"}, "description": "The numbers."},
        "threshold": {"type": "number", "description": "Minimum height."},
        "strict": {"type": "boolean", "description": "Strict peaks."},
        "labels": {"type": "array", "items": {"type": "string"}, "description": "Names."},
        "options": {"type": "object", "description": "Extra options."}}, "required": ["nums", "strict", "options"]}
    assert ex.messages == [
        {"role": "user", "content": "Find peaks in [1, 3, 2] strictly, and list beta giveaways."},
        {"role": "assistant", "tool_calls": [call("find_peaks", {"nums": [1, 3, 2], "strict": True, "options": {}}),
                                             call("live_giveaways_by_type", {"type": "beta"})]}]
    assert validate_example(ex) == []


def test_xlam_answer_that_breaks_the_declared_types_is_reported():
    record = {"query": "peaks", "tools": json.dumps(XLAM_TOOLS[1:]),
              "answers": json.dumps([{"name": "find_peaks", "arguments": {"nums": "1,3,2", "strict": True,
                                                                          "options": {}}}])}
    [problem] = validate_example(convert_xlam(record, "x:1"))
    assert (problem.reason, problem.field) == ("schema_violation", "messages[1].tool_calls[0].function.arguments.nums")


@pytest.mark.parametrize("text, schema, optional", [
    ("str", {"type": "string"}, False),
    ("int, optional", {"type": "integer"}, True),
    ("float", {"type": "number"}, False),
    ("bool, optional", {"type": "boolean"}, True),
    ("List[int]", {"type": "array", "items": {"type": "integer"}}, False),
    ("List[List[str]]", {"type": "array", "items": {"type": "array", "items": {"type": "string"}}}, False),
    ("List", {"type": "array"}, False),
    ("Tuple[int, int]", {"type": "array", "items": {"type": "integer"}}, False),
    ("Tuple[int, str]", {"type": "array"}, False),
    ("Dict[str, Any]", {"type": "object"}, False),
    ("Optional[str]", {"type": "string"}, True),
    ("Union[int, float]", {"type": "number"}, False),
    ("Union[str, int]", {}, False),
    ("Callable", {}, False),
    ("Any", {}, False),
])
def test_xlam_types(text, schema, optional):
    assert xlam_type(text) == (schema, optional)


# --- simple (FunctionGemma guide) ---------------------------------------------------------------------------

def test_simple_row_uses_the_guide_tools_by_default():
    row = {"user_content": "What is the reimbursement limit for travel meals?", "tool_name": "search_knowledge_base",
           "tool_arguments": "{\"query\": \"travel meal reimbursement limit policy\"}"}
    ex = convert_simple(row, "s.jsonl:1")
    assert ex.tools == SIMPLE_TOOLS
    assert [t["function"]["name"] for t in ex.tools] == ["search_knowledge_base", "search_google"]
    assert ex.messages == [
        {"role": "user", "content": "What is the reimbursement limit for travel meals?"},
        {"role": "assistant", "tool_calls": [call("search_knowledge_base",
                                                  {"query": "travel meal reimbursement limit policy"})]}]
    assert validate_example(ex) == []


def test_simple_row_with_given_tools():
    tools = [{"name": "open_app", "description": "Open an app.", "parameters": {
        "type": "object", "properties": {"app": {"type": "string"}}, "required": ["app"]}}]
    ex = convert_simple({"user_content": "Open maps", "tool_name": "open_app", "tool_arguments": {"app": "maps"}},
                        "s:1", tools=tools)
    assert ex.tools == [{"type": "function", "function": tools[0]}]
    assert validate_example(ex) == []


# --- detection and end to end -----------------------------------------------------------------------------

RECORDS = {
    "canonical": {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    "glaive": {"system": GLAIVE_SYSTEM, "chat": GLAIVE_CHAT},
    "hermes": {"conversations": [{"from": "system", "value": HERMES_SYSTEM}, {"from": "human", "value": "TSLA?"},
                                 {"from": "gpt", "value": "<tool_call>\n{'arguments': {'symbol': 'TSLA'}, 'name': "
                                                          "'get_stock_price'}\n</tool_call>"}]},
    "xlam": {"query": "beta giveaways", "tools": json.dumps(XLAM_TOOLS[:1]),
             "answers": json.dumps([{"name": "live_giveaways_by_type", "arguments": {"type": "beta"}}])},
    "simple": {"user_content": "Latest Node.js version?", "tool_name": "search_google",
               "tool_arguments": "{\"query\": \"latest Node.js version\"}"},
}


@pytest.mark.parametrize("messages, expected", [
    ([{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}], "hermes"),             # ShareGPT turns
    ([{"role": "human", "content": "hi"}, {"role": "model", "content": "yo"}], "hermes"),        # ShareGPT roles
    ([{"role": "system", "content": "<tools>[]</tools>"}, {"role": "user", "content": "hi"}], "hermes"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<tool_call>{}</tool_call>"}], "hermes"),
    ([{"role": "tool", "content": "<tool_response>1</tool_response>"}], "hermes"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>x</think>yo"}], "canonical"),
    ([{"role": "system", "content": "<tools>[]</tools>"}, {"role": "user", "content": "hi"},
      {"role": "assistant", "tool_calls": [call("f", {})]}], "canonical"),                        # structured calls
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "tool_calls": None}], "canonical"),
])
def test_messages_records_in_hermes_style_are_detected(messages, expected):
    assert detect_format({"messages": messages}, "f:1") == expected


@pytest.mark.parametrize("name", list(RECORDS))
def test_formats_are_detected_and_load_end_to_end(tmp_path, name):
    assert detect_format(RECORDS[name], "f:1") == name
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(RECORDS[name]) + "\n" + json.dumps(RECORDS[name]) + "\n")
    examples, report = load_examples(path)
    assert (report.read, report.kept) == (2, 2), report.summary()
    assert examples[1].location == f"{path}:2"


def test_forced_format_reports_records_of_another_shape(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(RECORDS["simple"]) + "\n")
    examples, report = load_examples(path, data_format="xlam")
    assert examples == [] and report.skipped == {"unreadable_xlam": 1}
    assert f"{path}:1: query: missing" in report.summary()
