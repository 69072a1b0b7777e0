"""Converters: one record of a public function-calling dataset -> a canonical Example.

Each converter is `convert_<name>(record, location) -> Example` and raises ConversionError (field +
message) on a record it cannot read; load_examples counts those as skipped. The `--data-format` names and
their sources are in README ("Data"); what each converter repairs or assumes:

    canonical  JSON-string arguments become dicts; bare {name, description, parameters} tools are wrapped
               as {"type": "function", "function": ...}; an assistant's "reasoning_content" or leading
               <think>...</think> becomes "reasoning" (minifc/convertkit.py)
    glaive     USER:, ASSISTANT:, <functioncall> {...} <|endoftext|> and FUNCTION RESPONSE: turns; its
               arguments are a single-quoted string wrapping JSON ('{"a": 1}'), repaired here
    hermes     ShareGPT turns with <tools>, <think>, <tool_call>, <tool_response> tags (minifc/hermes.py)
    xlam       "query", "tools", "answers" as JSON strings; tool parameters are a flat {name: {"type": "str",
               "description", "default"}} map, turned into JSON Schema (xlam_type)
    simple     tools from the row's "tools", or the two search tools of Google's FunctionGemma guide

The format is detected from the first record (detect_format); system prompts that only declare the
tools (glaive's, hermes's) are dropped, since each chat format renders the tools itself.
"""

import json
import re

from minifc.chat.kit import function_tool, tool_call
from minifc.convertkit import (ConversionError, given_reasoning, normalise_call, normalise_tools, parse_json,
                               require_object, take_reasoning)
from minifc.hermes import convert_hermes, looks_like_hermes
from minifc.schema import DataError, Example


# -------------------------------------------------------------------------------------------------- Canonical

def convert_canonical(record, location) -> Example:
    require_object(record)
    if "messages" not in record:
        raise ConversionError("messages", "missing; a canonical example is {\"messages\": [...], \"tools\": [...]}")
    messages = record["messages"]
    if isinstance(messages, list):
        messages = [_normalise_message(m, f"messages[{i}]") if isinstance(m, dict) else m
                    for i, m in enumerate(messages)]
    return Example(messages=messages, tools=normalise_tools(record.get("tools") or []),
                   category=record.get("category"), location=location)


def _normalise_message(message: dict, where: str) -> dict:
    """Copies a message with tool calls as {"type": "function", "function": {name, arguments: dict}} and
    its reasoning as "reasoning" (on any role: validation refuses it where it does not belong)."""
    reasoning = given_reasoning(message, where)
    message = {key: value for key, value in message.items() if key not in ("reasoning", "reasoning_content")}
    if message.get("role") == "assistant":
        reasoning, content = take_reasoning(message.get("content"), reasoning, f"{where}.content")
        if content != message.get("content"):
            message["content"] = content or None
    if reasoning is not None:
        message["reasoning"] = reasoning
    if isinstance(message.get("tool_calls"), list):
        message["tool_calls"] = [normalise_call(call) for call in message["tool_calls"]]
    return message


# --------------------------------------------------------------------------------- glaive-function-calling-v2

_GLAIVE_TOOLS_MARKER = "Use them if required -"
_GLAIVE_TURN = re.compile(r"(?:^|\n)\s*(USER|ASSISTANT|FUNCTION RESPONSE):[ \t]?")
_GLAIVE_END = "<|endoftext|>"
_SPACE = re.compile(r"\s*")


def convert_glaive(record, location) -> Example:
    require_object(record)
    for key in ("system", "chat"):
        if not isinstance(record.get(key), str):
            raise ConversionError(key, "missing or not a string (glaive records have \"system\" and \"chat\")")
    tools = _glaive_tools(record["system"])
    parts = _GLAIVE_TURN.split(record["chat"])
    if parts[0].strip():
        raise ConversionError("chat", f"text before the first USER:/ASSISTANT: turn: {parts[0].strip()[:60]!r}")
    messages, last_call = [], None
    for speaker, text in zip(parts[1::2], parts[2::2]):
        text = text.strip().removesuffix(_GLAIVE_END).rstrip()
        if speaker == "USER":
            messages.append({"role": "user", "content": text})
        elif speaker == "FUNCTION RESPONSE":
            messages.append({"role": "tool", "name": last_call, "content": text})
        elif "<functioncall>" in text:
            before, call_text = text.split("<functioncall>", 1)
            call = _glaive_call(call_text.strip())
            last_call = call["function"]["name"]
            messages.append({"role": "assistant", "content": before.strip() or None, "tool_calls": [call]})
        else:
            messages.append({"role": "assistant", "content": text})
    return Example(messages=messages, tools=tools, location=location)


def _glaive_tools(system: str) -> list[dict]:
    """The JSON objects after "...Use them if required -" (one or several, back to back)."""
    if _GLAIVE_TOOLS_MARKER not in system:
        return []  # "You are a helpful assistant, with no access to external functions."
    text = system.split(_GLAIVE_TOOLS_MARKER, 1)[1]
    decoder, position, tools = json.JSONDecoder(), _SPACE.match(text).end(), []
    while position < len(text):
        try:
            tool, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise ConversionError("system", f"function definition is not valid JSON ({error.msg})") from None
        tools.append(tool)
        position = _SPACE.match(text, position).end()
    return normalise_tools(tools)


def _glaive_call(text: str) -> dict:
    """{"name": "f", "arguments": '{"a": 1}'} -> a tool call with arguments {"a": 1}. Glaive wraps the
    arguments JSON in single quotes, which is not JSON; the quoted text is cut out and parsed on its own."""
    try:
        call = json.loads(text)
    except json.JSONDecodeError:
        name = re.search(r'"name"\s*:\s*"([^"]+)"', text)
        quoted = re.search(r'"arguments"\s*:\s*\'(.*)\'\s*}\s*$', text, re.DOTALL)
        if not name or not quoted:
            raise ConversionError("chat", f"unreadable <functioncall>: {text[:80]!r}") from None
        call = {"name": name.group(1), "arguments": parse_json(quoted.group(1), "chat <functioncall> arguments")}
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise ConversionError("chat", f"<functioncall> without a name: {text[:80]!r}")
    return normalise_call({"name": call["name"], "arguments": call.get("arguments", {})})


# ---------------------------------------------------------------------------------- xlam-function-calling-60k

_XLAM_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
              "number": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "tuple": "array",
              "set": "array", "array": "array", "dict": "object", "object": "object"}


def convert_xlam(record, location) -> Example:
    require_object(record)
    for key in ("query", "tools", "answers"):
        if key not in record:
            raise ConversionError(key, "missing (xlam records have \"query\", \"tools\" and \"answers\")")
    tools, answers = parse_json(record["tools"], "tools"), parse_json(record["answers"], "answers")
    if not isinstance(tools, list) or not isinstance(answers, list):
        raise ConversionError("tools" if not isinstance(tools, list) else "answers", "must be a JSON list")
    messages = [{"role": "user", "content": record["query"]}]
    if answers:
        messages.append({"role": "assistant", "tool_calls": [normalise_call(a) for a in answers]})
    return Example(messages=messages, tools=[_xlam_tool(t) for t in tools], location=location)


def _xlam_tool(tool) -> dict:
    """{name, description, parameters: {p: {"type": "int, optional", ...}}} -> a canonical tool."""
    if not isinstance(tool, dict) or "name" not in tool:
        raise ConversionError("tools", f"expected {{\"name\", \"description\", \"parameters\"}}, got {str(tool)[:80]}")
    parameters = tool.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ConversionError("tools", f"parameters of {str(tool['name'])[:40]!r} must be an object "
                                       f"{{name: {{\"type\": ..., \"description\": ...}}}}, got {str(parameters)[:80]}")
    if parameters.get("type") in ("object", "dict") and "properties" in parameters:  # already JSON Schema
        schema = dict(parameters, type="object")
    else:
        properties, required = {}, []
        for name, spec in parameters.items():
            spec = spec if isinstance(spec, dict) else {}
            property_schema, optional = xlam_type(str(spec.get("type", "")))
            if spec.get("description"):
                property_schema["description"] = spec["description"]
            properties[name] = property_schema
            if not optional and "default" not in spec and spec.get("required", True):
                required.append(name)
        schema = {"type": "object", "properties": properties, "required": required}
    return function_tool({"name": tool["name"], "description": tool.get("description", ""), "parameters": schema})


def xlam_type(text: str) -> tuple[dict, bool]:
    """A Python-style type string -> (JSON Schema, optional?): "List[int]" -> array of integer,
    "str, optional" / "Optional[str]" -> string + optional, "Union[int, float]" -> number.
    Types JSON Schema cannot say (Any, Callable, mixed unions) get no "type", so any value passes."""
    text = text.strip()
    optional = text.lower().endswith(", optional")
    text = text[:-len(", optional")].strip() if optional else text
    match = re.fullmatch(r"(\w+)\s*\[(.*)\]", text)
    if match and match.group(1).lower() == "optional":
        return xlam_type(match.group(2))[0], True
    if match and match.group(1).lower() == "union":
        members = {xlam_type(m)[0].get("type") for m in _split_top(match.group(2))}
        return ({"type": "number"} if members <= {"integer", "number"} else {}), optional
    base = (match.group(1) if match else text).lower()
    if base not in _XLAM_TYPES:
        return {}, optional
    schema = {"type": _XLAM_TYPES[base]}
    if match and schema["type"] == "array":
        members = _split_top(match.group(2))
        if len(set(members)) == 1 and (item := xlam_type(members[0])[0]):  # items of one type
            schema["items"] = item
    return schema, optional


def _split_top(text):
    """'int, List[str]' -> ['int', 'List[str]'] (commas inside brackets do not split)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return parts + [current.strip()] if current.strip() else parts


# ------------------------------------------------------------------- simple (FunctionGemma fine-tuning guide)

_SEARCH_PARAMETERS = {"type": "object", "properties": {"query": {"type": "string", "description": "query string"}},
                      "required": ["query"]}
SIMPLE_TOOLS = [  # the two tools of Google's "Fine-tune FunctionGemma" guide, as get_json_schema writes them
    function_tool({"name": "search_knowledge_base",
                   "description": "Search internal company documents, policies and project data.",
                   "parameters": _SEARCH_PARAMETERS}),
    function_tool({"name": "search_google", "description": "Search public information.",
                   "parameters": _SEARCH_PARAMETERS}),
]


def convert_simple(record, location, tools=None) -> Example:
    require_object(record)
    for key in ("user_content", "tool_name"):
        if not isinstance(record.get(key), str):
            raise ConversionError(key, "missing or not a string (simple rows have user_content, tool_name, "
                                       "tool_arguments)")
    arguments = parse_json(record.get("tool_arguments", {}), "tool_arguments")
    tools = normalise_tools(record.get("tools") or tools or SIMPLE_TOOLS)
    messages = [{"role": "user", "content": record["user_content"]},
                {"role": "assistant", "tool_calls": [tool_call(record["tool_name"], arguments)]}]
    return Example(messages=messages, tools=tools, category=record.get("category"), location=location)


# -------------------------------------------------------------------------------------------------- Detection

FORMATS = {"canonical": convert_canonical, "glaive": convert_glaive, "hermes": convert_hermes,
           "xlam": convert_xlam, "simple": convert_simple}
_FORMAT_KEYS = [("canonical", "messages"), ("hermes", "conversations"), ("glaive", "chat"),
               ("xlam", "answers"), ("simple", "user_content")]


def detect_format(record, location) -> str:
    """The format name whose telltale key the record has (see _FORMAT_KEYS); a "messages" record written
    in hermes style (hermes.looks_like_hermes) is hermes."""
    if isinstance(record, dict):
        for name, key in _FORMAT_KEYS:
            if key in record:
                return "hermes" if key == "messages" and looks_like_hermes(record[key]) else name
    keys = ", ".join(map(str, record)) if isinstance(record, dict) else type(record).__name__
    raise DataError(f"{location}: cannot tell the data format from this record (keys: {keys}); expected one of "
                    + ", ".join(f"{name} (has \"{key}\")" for name, key in _FORMAT_KEYS)
                    + "; pass --data-format to choose")
