"""Converters: one record of a public function-calling dataset -> a canonical Example.

Each converter is `convert_<name>(record, location) -> Example` and raises ConversionError (field +
message) on a record it cannot read; load_examples counts those as skipped. The `--data-format` names and
their sources are in README ("Data"); what each converter repairs or assumes:

    canonical  JSON-string arguments become dicts; bare {name, description, parameters} tools are wrapped
               as {"type": "function", "function": ...}
    glaive     USER:, ASSISTANT:, <functioncall> {...} <|endoftext|> and FUNCTION RESPONSE: turns; its
               arguments are a single-quoted string wrapping JSON ('{"a": 1}'), repaired here
    hermes     <tools>, <tool_call>, <tool_response> tags may hold Python-literal dicts; or a "tools" string
    xlam       "query", "tools", "answers" as JSON strings; tool parameters are a flat {name: {"type": "str",
               "description", "default"}} map, turned into JSON Schema (xlam_type)
    simple     tools from the row's "tools", or the two search tools of Google's FunctionGemma guide

The format is detected from the first record's keys (detect_format); system prompts that only declare
the tools (glaive's, hermes's) are dropped, since each chat format renders the tools itself.
"""

import ast
import json
import re

from minifc.chat.kit import function_tool, tool_call
from minifc.schema import DataError, Example


class ConversionError(Exception):
    """A record that a converter cannot turn into an Example; load_examples counts it as skipped."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


# -------------------------------------------------------------------------------------------------- Canonical

def convert_canonical(record, location) -> Example:
    _require_object(record)
    if "messages" not in record:
        raise ConversionError("messages", "missing; a canonical example is {\"messages\": [...], \"tools\": [...]}")
    messages = record["messages"]
    if isinstance(messages, list):
        messages = [_normalise_message(m) if isinstance(m, dict) else m for m in messages]
    return Example(messages=messages, tools=_normalise_tools(record.get("tools") or []),
                   category=record.get("category"), location=location)


def _normalise_tools(tools):
    """Wraps bare {name, description, parameters} tools as {"type": "function", "function": {...}}."""
    tools = _parse_json(tools, "tools")
    if not isinstance(tools, list):
        return tools  # validation reports it
    return [function_tool(tool) if isinstance(tool, dict) and "function" not in tool and "name" in tool else tool
            for tool in tools]


def _normalise_message(message: dict) -> dict:
    """Copies a message with tool calls as {"type": "function", "function": {name, arguments: dict}}."""
    message = dict(message)
    if isinstance(message.get("tool_calls"), list):
        message["tool_calls"] = [_normalise_call(call) for call in message["tool_calls"]]
    return message


def _normalise_call(call):
    function = call.get("function", call) if isinstance(call, dict) else None  # a bare {name, arguments} too
    if not isinstance(function, dict):
        return call
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):  # OpenAI API style: arguments as a JSON string
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            pass  # left as a string; validation reports "arguments are not an object"
    return tool_call(function.get("name"), arguments)


# --------------------------------------------------------------------------------- glaive-function-calling-v2

_GLAIVE_TOOLS_MARKER = "Use them if required -"
_GLAIVE_TURN = re.compile(r"(?:^|\n)\s*(USER|ASSISTANT|FUNCTION RESPONSE):[ \t]?")
_GLAIVE_END = "<|endoftext|>"
_SPACE = re.compile(r"\s*")


def convert_glaive(record, location) -> Example:
    _require_object(record)
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
    return _normalise_tools(tools)


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
        call = {"name": name.group(1), "arguments": _parse_json(quoted.group(1), "chat <functioncall> arguments")}
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise ConversionError("chat", f"<functioncall> without a name: {text[:80]!r}")
    return _normalise_call({"name": call["name"], "arguments": call.get("arguments", {})})


# --------------------------------------------------------------------------------- hermes-function-calling-v1

_HERMES_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                "assistant": "assistant", "tool": "tool"}
_HERMES_TOOLS = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
_HERMES_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_HERMES_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)


def convert_hermes(record, location) -> Example:
    _require_object(record)
    turns = record.get("conversations")
    if not isinstance(turns, list):
        raise ConversionError("conversations", "missing or not a list of {\"from\": ..., \"value\": ...}")
    tools = _normalise_tools(_parse_literal(record["tools"], "tools")) if record.get("tools") else []
    messages, calls = [], []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str) or not isinstance(turn.get("from"), str):
            raise ConversionError(f"conversations[{i}]", "must be {\"from\": \"...\", \"value\": \"...\"}")
        role, value = _HERMES_ROLES.get(turn.get("from"), turn.get("from")), turn["value"]
        if role == "system" and "<tools>" in value:
            if not tools:
                # the prompt's own prose says "within <tools> </tools> XML tags": skip empty matches
                found = [t for t in _HERMES_TOOLS.findall(value) if t.strip()]
                parsed = [_parse_literal(t, f"conversations[{i}] <tools>") for t in found]  # each a tool or a list
                tools = _normalise_tools([x for item in parsed for x in (item if isinstance(item, list) else [item])])
        elif role == "assistant":
            calls = [_hermes_call(text, f"conversations[{i}] <tool_call>") for text in _HERMES_CALL.findall(value)]
            content = _HERMES_CALL.sub("", value).strip()
            message = {"role": "assistant", "content": content or None}
            if calls:
                message["tool_calls"] = calls
            messages.append(message)
        elif role == "tool":
            messages.extend(_hermes_results(value, calls))
        else:
            messages.append({"role": role, "content": value})  # unknown roles are reported by validation
    return Example(messages=messages, tools=tools, category=record.get("category"), location=location)


def _hermes_call(text, field):
    call = _parse_literal(text, field)
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise ConversionError(field, f"expected {{\"name\": ..., \"arguments\": {{...}}}}, got {text.strip()[:80]!r}")
    return _normalise_call(call)


def _hermes_results(value, calls) -> list[dict]:
    """One tool message per <tool_response>{"name": ..., "content": ...}</tool_response> block."""
    results = []
    for k, block in enumerate(_HERMES_RESPONSE.findall(value) or [value]):
        try:
            response = _parse_literal(block, "tool_response")
        except ConversionError:
            response = None
        if isinstance(response, dict) and "name" in response:
            content = response.get("content", {key: v for key, v in response.items() if key != "name"})
            name = response["name"]
        else:
            content, name = block.strip(), None
        if name is None and k < len(calls):
            name = calls[k]["function"]["name"]
        results.append({"role": "tool", "name": name,
                        "content": content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)})
    return results


# ---------------------------------------------------------------------------------- xlam-function-calling-60k

_XLAM_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
              "number": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "tuple": "array",
              "set": "array", "array": "array", "dict": "object", "object": "object"}


def convert_xlam(record, location) -> Example:
    _require_object(record)
    for key in ("query", "tools", "answers"):
        if key not in record:
            raise ConversionError(key, "missing (xlam records have \"query\", \"tools\" and \"answers\")")
    tools, answers = _parse_json(record["tools"], "tools"), _parse_json(record["answers"], "answers")
    if not isinstance(tools, list) or not isinstance(answers, list):
        raise ConversionError("tools" if not isinstance(tools, list) else "answers", "must be a JSON list")
    messages = [{"role": "user", "content": record["query"]}]
    if answers:
        messages.append({"role": "assistant", "tool_calls": [_normalise_call(a) for a in answers]})
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
    _require_object(record)
    for key in ("user_content", "tool_name"):
        if not isinstance(record.get(key), str):
            raise ConversionError(key, "missing or not a string (simple rows have user_content, tool_name, "
                                       "tool_arguments)")
    arguments = _parse_json(record.get("tool_arguments", {}), "tool_arguments")
    tools = _normalise_tools(record.get("tools") or tools or SIMPLE_TOOLS)
    messages = [{"role": "user", "content": record["user_content"]},
                {"role": "assistant", "tool_calls": [tool_call(record["tool_name"], arguments)]}]
    return Example(messages=messages, tools=tools, category=record.get("category"), location=location)


# ------------------------------------------------------------------------------- Detection and shared helpers

FORMATS = {"canonical": convert_canonical, "glaive": convert_glaive, "hermes": convert_hermes,
           "xlam": convert_xlam, "simple": convert_simple}
_FORMAT_KEYS = [("canonical", "messages"), ("hermes", "conversations"), ("glaive", "chat"),
               ("xlam", "answers"), ("simple", "user_content")]


def detect_format(record, location) -> str:
    """The format name whose telltale key the record has (see _FORMAT_KEYS)."""
    if isinstance(record, dict):
        for name, key in _FORMAT_KEYS:
            if key in record:
                return name
    keys = ", ".join(map(str, record)) if isinstance(record, dict) else type(record).__name__
    raise DataError(f"{location}: cannot tell the data format from this record (keys: {keys}); expected one of "
                    + ", ".join(f"{name} (has \"{key}\")" for name, key in _FORMAT_KEYS)
                    + "; pass --data-format to choose")


def _require_object(record):
    if not isinstance(record, dict):
        raise ConversionError("record", f"must be a JSON object, got {type(record).__name__}")


def _parse_json(text, field):
    """JSON text parsed; anything else (already parsed) as it is."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConversionError(field, f"not valid JSON ({error.msg}): {text.strip()[:80]!r}") from None
    except RecursionError:
        raise ConversionError(field, "JSON nested too deeply to read; flatten it") from None


def _parse_literal(text, field):
    """JSON, or failing that a Python literal ({'a': True}), as hermes writes some of its dicts."""
    try:
        return _parse_json(text, field)
    except ConversionError:
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):  # TypeError: {[1]: 2}
            raise ConversionError(field, f"neither JSON nor a Python literal: {text.strip()[:80]!r}") from None
        if not _is_json(value):
            raise ConversionError(field, f"a Python literal that JSON cannot hold (a set, bytes, a key that is not "
                                         f"a string...): {text.strip()[:80]!r}")
        return value


def _is_json(value) -> bool:
    """Whether a Python literal is a JSON value (a tuple counts as an array)."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(map(_is_json, value))
    return value is None or isinstance(value, (str, bool, int, float))
