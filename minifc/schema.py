"""The canonical example, its validation with clear errors, and the one JSON-Schema type rule.

An example is one conversation in the OpenAI / Hugging Face chat layout (README, "Data"): "tools" (each
{"type": "function", "function": {name, description, parameters: a JSON Schema}}), "messages" ({role,
content}, assistant messages also "tool_calls" and an optional "reasoning" string, the thinking before the
reply), an optional "category", and on any message an optional "train": true/false that overrides the
masking rule (minifc/masking.py). An assistant message must say something (content or tool calls):
reasoning alone is not a reply.

    validate_example(example, train_on) -> list[Problem]   every problem names file:line, field and the fix
    fits_type(value, schema), json_type(value)             the one JSON-Schema type rule, shared with the call checker

Tool schemas may use type (a name or a list, "null" included), enum, required, properties,
additionalProperties, items, anyOf / oneOf / allOf and local $ref ("#/$defs/Name", "#/definitions/Name").
A schema that cannot be read (an unknown type name such as "str", a $ref to nowhere, a list where an
object belongs) makes its example a skip "bad_schema" naming the field; two tools of one name, "duplicate_tool".
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
    if example.category is not None and not isinstance(example.category, str):
        problem("bad_structure", "category", f"must be a string (the evaluation's breakdown by category), "
                                             f"got {_shown(example.category)}")
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
    schemas, declared_at = {}, {}
    if not isinstance(tools, list):
        problem("bad_structure", "tools", "must be a list of {\"type\": \"function\", \"function\": {...}}")
        return schemas
    for j, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            problem("bad_structure", f"tools[{j}]", "must be {\"type\": \"function\", \"function\": "
                                                    "{\"name\": ..., \"description\": ..., \"parameters\": {...}}}")
            continue
        name, parameters = function["name"], function.get("parameters")
        if name in declared_at:
            problem("duplicate_tool", f"tools[{j}].function.name", f"{name!r} is declared twice (also tools"
                                      f"[{declared_at[name]}]); give each tool its own name or drop one")
            continue
        declared_at[name] = j
        if parameters is not None and not isinstance(parameters, dict):
            problem("bad_structure", f"tools[{j}].function.parameters", "must be a JSON Schema object")
        malformed = _malformed(parameters, parameters, f"tools[{j}].function.parameters") \
            if isinstance(parameters, dict) else []
        for where, message in malformed:
            problem("bad_schema", where, message)
        schemas[name] = parameters if isinstance(parameters, dict) and not malformed else {}
    return schemas


def _shown(value) -> str:
    return json.dumps(value, default=str)


def type_names(schema) -> list[str]:
    """The type names a schema's "type" gives ([] when it gives none, or none readable: _malformed reports that)."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    return [t for t in ([kind] if isinstance(kind, str) else kind if isinstance(kind, list) else [])
            if isinstance(t, str)]


def fits_type(value, schema) -> bool:
    """Whether `value` is of a type `schema` names; true when it names no type SCHEMA_TYPES knows.
    The one type rule: validation (unknown names are reported there first) and the call checker."""
    known = [t for t in type_names(schema) if t in SCHEMA_TYPES]
    return not known or any(has_type(value, t) for t in known)


def resolve_ref(root: dict, ref) -> dict | None:
    """The schema a local $ref ("#", "#/$defs/Name", "#/definitions/Name", any JSON pointer into `root`)
    points at, or None when it points nowhere (or is not local)."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node = root
    for part in filter(None, ref[1:].split("/")):
        node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


_SHAPES = (("properties", dict, 'an object {"name": {"type": ...}, ...}'),
           ("required", list, 'a list of property names, e.g. ["city"]'),
           ("enum", list, 'a list of the allowed values, e.g. ["celsius", "fahrenheit"]'),
           ("items", dict, 'a schema object, e.g. {"type": "string"}'),
           ("additionalProperties", (bool, dict), "true, false or a schema object"),
           ("$defs", dict, 'an object {"Name": {schema}, ...}'),
           ("definitions", dict, 'an object {"Name": {schema}, ...}'))
_COMBINERS = ("anyOf", "oneOf", "allOf")


def _malformed(schema: dict, root: dict, path: str) -> list[tuple[str, str]]:
    """(field, message) for each part of a tool's JSON Schema that checking arguments against it could not
    read: a list where an object belongs, an unknown type name, a $ref to nowhere..., nested schemas included."""
    errors = []
    kind = schema.get("type")
    readable = isinstance(kind, str) or isinstance(kind, list) and all(isinstance(t, str) for t in kind)
    if kind is not None and not readable:
        errors.append((f"{path}.type", f"must be a type name or a list of them, got {_shown(kind)}"))
    elif unknown := [t for t in type_names(schema) if t not in SCHEMA_TYPES]:
        errors.append((f"{path}.type", f"unknown type {_shown(unknown[0])}; JSON Schema's types are "
                                       f"{', '.join(SCHEMA_TYPES)}"))
    for key, shape, fix in _SHAPES:  # null stands for absent, as before
        if schema.get(key) is not None and not isinstance(schema[key], shape):
            errors.append((f"{path}.{key}", f"must be {fix}, got {_shown(schema[key])}"))
    if isinstance(schema.get("required"), list) and not all(isinstance(k, str) for k in schema["required"]):
        errors.append((f"{path}.required", f"must list property names (strings), got {_shown(schema['required'])}"))
    if "$ref" in schema and resolve_ref(root, schema["$ref"]) is None:
        errors.append((f"{path}.$ref", f"{_shown(schema['$ref'])} points at no schema in this tool's parameters; "
                                       "use a local reference such as \"#/$defs/Name\" and define Name there"))
    subschemas = []  # (path, schema) of every schema nested in this one
    for key in ("properties", "$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            subschemas += [(f"{path}.{key}.{name}", sub) for name, sub in schema[key].items()]
    subschemas += [(f"{path}.{key}", schema[key]) for key in ("items", "additionalProperties")
                   if isinstance(schema.get(key), dict)]
    for key in _COMBINERS:
        if key in schema and not (isinstance(schema[key], list) and schema[key]):
            errors.append((f"{path}.{key}", f"must be a non-empty list of schema objects, got {_shown(schema[key])}"))
        elif key in schema:
            subschemas += [(f"{path}.{key}[{i}]", sub) for i, sub in enumerate(schema[key])]
    for where, sub in subschemas:
        if isinstance(sub, dict):
            errors += _malformed(sub, root, where)
        else:
            errors.append((where, f'must be a schema object, e.g. {{"type": "string"}}, got {_shown(sub)}'))
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


def _schema_errors(value, schema: dict, root: dict | None = None, path: str = "",
                   seen: frozenset = frozenset()) -> list[tuple[str, str]]:
    """(path, message) for each way `value` breaks `schema` (read by _malformed without complaint): $ref,
    type, enum, allOf / anyOf / oneOf, required / unexpected object keys, additionalProperties and array items;
    nested values are checked recursively. `root` is the tool's parameters schema, where $ref points;
    `seen` the schemas applied to this value already, so a $ref cycle that reaches no nested value ends."""
    if not isinstance(schema, dict) or id(schema) in seen:
        return []
    root, seen = root or schema, seen | {id(schema)}
    errors = _schema_errors(value, resolve_ref(root, schema["$ref"]), root, path, seen) if "$ref" in schema else []
    if not fits_type(value, schema):
        return errors + [(path, f"{json.dumps(value)} is not of type {' or '.join(type_names(schema))}")]
    if "enum" in schema and value not in schema["enum"]:
        errors.append((path, f"{json.dumps(value)} is not one of {json.dumps(schema['enum'])}"))
    for sub in schema.get("allOf", ()):
        errors += _schema_errors(value, sub, root, path, seen)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            failures = [_schema_errors(value, sub, root, path, seen) for sub in schema[key]]
            matched = failures.count([])
            if matched == 0 or key == "oneOf" and matched > 1:
                why = "; ".join(f"{i + 1}: {f[0][1]}" for i, f in enumerate(failures) if f)
                errors.append((path, f"{json.dumps(value)} matches {matched} of the {key} schemas, "
                                     f"{'exactly one' if key == 'oneOf' else 'at least one'} must match ({why})"))
    if isinstance(value, dict):
        properties, extra = schema.get("properties") or {}, schema.get("additionalProperties", False)
        for key in schema.get("required") or []:
            if key not in value:
                errors.append((f"{path}.{key}", "required argument is missing"))
        for key, item in value.items():
            if key in properties:
                errors.extend(_schema_errors(item, properties[key], root, f"{path}.{key}"))
            elif isinstance(extra, dict):
                errors.extend(_schema_errors(item, extra, root, f"{path}.{key}"))
            elif properties and not extra:
                errors.append((f"{path}.{key}", f"unexpected argument; known: {', '.join(properties)}"))
    if json_type(value) == "array" and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors.extend(_schema_errors(item, schema["items"], root, f"{path}[{i}]"))
    return errors
