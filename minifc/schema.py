"""The canonical example, its validation with clear errors, and the one JSON-Schema type rule.

An example is one conversation in the OpenAI / Hugging Face chat layout (README, "Data"): "tools" (each
{"type": "function", "function": {name, description, parameters: a JSON Schema}}), "messages" ({role,
content}, assistant messages also "tool_calls" and an optional "reasoning" string, the thinking before the
reply), an optional "category", and on any message an optional "train": true/false that overrides the
masking rule (minifc/masking.py). An assistant message must say something (content or tool calls):
reasoning alone is not a reply.

    validate_example(example, train_on) -> list[Problem]   every problem names file:line, field and the fix
    json_type(value), has_type(value, type_name)           JSON-Schema types, shared with the call checker
"""

import json
from dataclasses import dataclass, field

from minifc import masking

_ROLES = ("system", "developer", "user", "assistant", "tool")
_OPENING = ("system", "developer")  # roles that may only open a conversation
_CALL_SHAPE = '{"type": "function", "function": {"name": ..., "arguments": {...}}}'


@dataclass
class Example:
    """One conversation. `tools` are normalised to {"type": "function", "function": {name, description,
    parameters}}; assistant tool-call `arguments` are dicts. `location` ("file:line") is where it came from."""
    messages: list[dict]
    tools: list[dict] = field(default_factory=list)
    category: str | None = None
    location: str = ""


class DataError(ValueError):
    """Bad input data: the message names the file, line, field and the fix."""


@dataclass
class Problem:
    reason: str    # short key used for counting, e.g. "undeclared_function"
    location: str  # "path:line"
    field: str     # e.g. "messages[2].tool_calls[0].function.arguments.city"
    message: str   # what is wrong and how to fix it

    def __str__(self):
        return f"{self.location}: {self.field}: {self.message}"


# JSON-Schema type -> the JSON types (json_type) of the values it accepts: an integer is a number too
SCHEMA_TYPES = {"string": {"string"}, "integer": {"integer"}, "number": {"number", "integer"},
                "boolean": {"boolean"}, "array": {"array"}, "object": {"object"}, "null": {"null"}}


_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), ((list, tuple), "array"),
               (dict, "object"), (type(None), "null"))  # bool first: Python's bool is an int


def json_type(value) -> str:
    """The JSON type of a Python value (the Python type name if it has none); a bool is never an integer."""
    return next((name for types, name in _JSON_TYPES if isinstance(value, types)), type(value).__name__)


def has_type(value, type_name: str) -> bool:
    """Whether `value` is of the JSON-Schema type `type_name` (a key of SCHEMA_TYPES)."""
    return json_type(value) in SCHEMA_TYPES[type_name]


def validate_example(example: Example, train_on: masking.TrainOn = masking.DEFAULT) -> list[Problem]:
    """Everything wrong with one (normalised) example; an empty list means it is fine to train on."""
    problems = []

    def problem(reason, where, message):
        problems.append(Problem(reason, example.location, where, message))

    schemas = _check_tools(example.tools, problem)
    if not isinstance(example.messages, list) or not example.messages:
        problem("bad_structure", "messages", "must be a non-empty list of {role, content} objects")
        return problems
    seen_user, pending = False, []  # pending: names of calls not answered yet
    for i, message in enumerate(example.messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            problem("bad_structure", where, "must be an object with 'role' and 'content'")
            continue
        role = message.get("role")
        if role not in _ROLES:
            problem("unknown_role", f"{where}.role", f"unknown role {role!r}; use one of {', '.join(_ROLES)}")
            continue
        if "train" in message and not isinstance(message["train"], bool):
            problem("bad_structure", f"{where}.train", "must be true or false")
        _check_reasoning(message, where, problem)
        if pending and role != "tool":
            problem("role_order", where, f"the call(s) to {', '.join(pending)} before it have no tool result; "
                                         "add a 'tool' message answering each call first")
            pending = []
        if role in _OPENING and any(m.get("role") not in _OPENING for m in example.messages[:i] if isinstance(m, dict)):
            problem("role_order", f"{where}.role", f"a {role} message may only open the conversation; "
                                                   "move it to the start or make it a user message")
        if role == "assistant":
            if not seen_user:
                problem("role_order", where, "an assistant message comes before any user message; "
                                             "start the conversation with a user message")
            pending = _check_assistant(message, where, schemas, problem)
        elif role == "tool":
            _check_tool_result(message, where, pending, problem)
        elif not isinstance(message.get("content"), str):  # system, developer, user
            problem("bad_structure", f"{where}.content", "must be a string")
        seen_user = seen_user or role == "user"
    # the masking rule decides, over the messages of known roles; a bad "train" flag (reported) counts as absent
    readable = [{key: value for key, value in m.items() if key != "train" or isinstance(value, bool)}
                for m in example.messages if isinstance(m, dict) and m.get("role") in _ROLES]
    if not masking.trains_anything(readable, train_on):
        problem("nothing_to_train", "messages", f"no {' or '.join(train_on.roles)} message to train on (none, or all "
                                                "\"train\": false); add an assistant reply or remove \"train\": false")
    return problems


def _check_tools(tools, problem) -> dict:
    """Checks the tool list; returns {function name: parameters schema}."""
    schemas = {}
    if not isinstance(tools, list):
        problem("bad_structure", "tools", "must be a list of {\"type\": \"function\", \"function\": {...}}")
        return schemas
    for j, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            problem("bad_structure", f"tools[{j}]", "must be {\"type\": \"function\", \"function\": "
                                                    "{\"name\": ..., \"description\": ..., \"parameters\": {...}}}")
            continue
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            problem("bad_structure", f"tools[{j}].function.parameters", "must be a JSON Schema object")
        malformed = _malformed(parameters, f"tools[{j}].function.parameters") if isinstance(parameters, dict) else []
        for where, message in malformed:
            problem("bad_schema", where, message)
        schemas[function["name"]] = parameters if isinstance(parameters, dict) and not malformed else {}
    return schemas


def _shown(value) -> str:
    return json.dumps(value, default=str)


def _malformed(schema: dict, path: str) -> list[tuple[str, str]]:
    """(field, message) for each part of a tool's JSON Schema that checking arguments against it could not
    read (a list where an object belongs, a string where a list belongs...), nested properties included."""
    errors = []
    kind = schema.get("type")
    names = isinstance(kind, str) or isinstance(kind, list) and all(isinstance(t, str) for t in kind)
    if kind is not None and not names:
        errors.append((f"{path}.type", f"must be a type name or a list of them, got {_shown(kind)}"))
    for key, shape, fix in (("properties", dict, 'an object {"name": {"type": ...}, ...}'),
                            ("required", list, 'a list of property names, e.g. ["city"]'),
                            ("enum", list, 'a list of the allowed values, e.g. ["celsius", "fahrenheit"]')):
        value = schema.get(key)
        if value is not None and not isinstance(value, shape):
            errors.append((f"{path}.{key}", f"must be {fix}, got {_shown(value)}"))
    if isinstance(schema.get("required"), list) and not all(isinstance(k, str) for k in schema["required"]):
        errors.append((f"{path}.required", f"must list property names (strings), got {_shown(schema['required'])}"))
    for name, sub in (schema.get("properties") or {}).items() if isinstance(schema.get("properties"), dict) else ():
        errors += _malformed(sub, f"{path}.properties.{name}") if isinstance(sub, dict) else []
    if isinstance(schema.get("items"), dict):
        errors += _malformed(schema["items"], f"{path}.items")
    return errors


def _check_assistant(message, where, schemas, problem) -> list[str]:
    """Checks an assistant message; returns the names of the functions it calls."""
    content, calls = message.get("content"), message.get("tool_calls") or []
    if content is not None and not isinstance(content, str):
        problem("bad_structure", f"{where}.content", "must be a string or null")
    if not isinstance(calls, list):
        problem("bad_structure", f"{where}.tool_calls", f"must be a list of {_CALL_SHAPE}")
        return []
    if not calls and not (isinstance(content, str) and content.strip()):
        problem("bad_structure", where, "an assistant message needs non-empty content or tool_calls"
                + ("; reasoning alone says nothing (add the reply it leads to)" if message.get("reasoning") else ""))
    names = []
    for k, call in enumerate(calls):
        call_where = f"{where}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            problem("bad_structure", call_where, f"must be {_CALL_SHAPE}")
            continue
        name, arguments = function["name"], function.get("arguments", {})
        names.append(name)
        if name not in schemas:
            problem("undeclared_function", f"{call_where}.function.name",
                    f"calls {name!r}, which is not in the example's tools (declared: {', '.join(schemas) or 'none'}); "
                    "declare it in \"tools\" or fix the name")
        elif not isinstance(arguments, dict):
            problem("bad_arguments", f"{call_where}.function.arguments",
                    f"must be a JSON object of argument names to values, got {type(arguments).__name__}")
        else:
            for path, error in _schema_errors(arguments, schemas[name]):
                problem("schema_violation", f"{call_where}.function.arguments{path}",
                        f"{error} (function {name!r}); fix the value or the tool's parameters schema")
    return names


def _check_reasoning(message, where, problem):
    """"reasoning" (absent or null when there is none) is a string, on assistant messages only."""
    reasoning = message.get("reasoning")
    if reasoning is None:
        return
    if message["role"] != "assistant":
        problem("bad_reasoning", f"{where}.reasoning", f"only assistant messages carry reasoning, not a "
                                                       f"{message['role']} message; remove it")
    elif not isinstance(reasoning, str):
        problem("bad_reasoning", f"{where}.reasoning", f"must be a string (the assistant's thinking), got "
                                                       f"{json_type(reasoning)}")


def _check_tool_result(message, where, pending, problem):
    name = message.get("name")
    if not pending:
        problem("orphan_tool_result", where, "a tool result with no unanswered call before it; put it after the "
                                             "assistant message whose tool call it answers")
    elif name is not None and name not in pending:
        problem("orphan_tool_result", f"{where}.name", f"answers {name!r}, but the pending call(s) are to "
                                                       f"{', '.join(pending)}; fix the name or the order")
    else:
        pending.remove(name if name is not None else pending[0])
    if not isinstance(message.get("content"), (str, dict, list)):
        problem("bad_structure", f"{where}.content", "a tool result must be a string (or a JSON object/list)")


def _schema_errors(value, schema: dict, path: str = "") -> list[tuple[str, str]]:
    """(path, message) for each way `value` breaks `schema`: type (of the types it names that SCHEMA_TYPES
    knows), enum, required / unexpected object keys, and array items; nested values are checked recursively."""
    if not isinstance(schema, dict):
        return []
    errors = []
    types = schema.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    known = [t for t in types if t in SCHEMA_TYPES]
    if known and not any(has_type(value, t) for t in known):
        return [(path, f"{json.dumps(value)} is not of type {' or '.join(known)}")]
    if "enum" in schema and value not in schema["enum"]:
        errors.append((path, f"{json.dumps(value)} is not one of {json.dumps(schema['enum'])}"))
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key in schema.get("required") or []:
            if key not in value:
                errors.append((f"{path}.{key}", "required argument is missing"))
        for key, item in value.items():
            if key in properties:
                errors.extend(_schema_errors(item, properties[key], f"{path}.{key}"))
            elif properties and not schema.get("additionalProperties", False):
                errors.append((f"{path}.{key}", f"unexpected argument; known: {', '.join(properties)}"))
    if json_type(value) == "array" and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors.extend(_schema_errors(item, schema["items"], f"{path}[{i}]"))
    return errors
