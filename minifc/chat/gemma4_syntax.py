"""Gemma 4's structured-data syntax, shared by its declarations, calls and results (minifc/chat/gemma4.py).

    format_value(value)            a value: <|"|>string<|"|>, null, true, 21.0, [a,b], {key:value} (keys sorted)
    fields(mapping)                `key:value,...` with bare keys: the body of a call or of a dict result
    format_declaration(function)   `declaration:NAME{description:...,parameters:{...}}` of one tool
    format_call(call, where)       `<|tool_call>call:NAME{...}<tool_call|>`, refusing what parse() could not read
    Reader(text, pos).call()       the inverse of format_call (raises ParseError)

Written after the template's `format_argument`, `format_parameters` and `format_function_declaration`
macros (FORMATS.md 8.3-8.4), with the Jinja behaviour they rely on; FunctionGemma's syntax with `<|"|>` for
`<escape>`, `null` for `None`, and its own declaration layout.
"""

import re

from minifc.chat.kit import tool_call

QUOTE = '<|"|>'
CALL, CALL_END = "<|tool_call>", "<tool_call|>"

# ---------------------------------------------------------------------------------------------------
# Values and declarations: the template's `format_argument`, `format_parameters` and
# `format_function_declaration` macros, with the Jinja behaviour they rely on.

_MISSING = object()  # a key the template looks up but the data lacks (Jinja's "undefined")
_STANDARD_KEYS = ("description", "type", "properties", "required", "nullable")


def _dictsort(mapping: dict) -> list:
    """Jinja's `dictsort`: by key, case-insensitively; ties keep their insertion order."""
    return sorted(mapping.items(), key=lambda item: item[0].lower() if isinstance(item[0], str) else item[0])


def _get(mapping, key):
    """`mapping[key]` the Jinja way: missing keys and non-dict containers give an undefined value."""
    return mapping.get(key, _MISSING) if isinstance(mapping, dict) else _MISSING


def _str(value) -> str:
    """What `{{ value }}` prints: an undefined value prints nothing."""
    return "" if value is _MISSING else str(value)


def _truthy(value) -> bool:
    return value is not _MISSING and bool(value)


def format_value(value, escape_keys: bool = True) -> str:
    """A value in Gemma 4 syntax: strings in <|"|> (nothing escaped inside), null, true/false, numbers
    as Python prints them (21.0 stays 21.0), [a,b], {key:value} with sorted keys (quoted if escape_keys)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return QUOTE + value + QUOTE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ",".join((QUOTE + key + QUOTE if escape_keys else key) + ":" + format_value(item, escape_keys)
                              for key, item in _dictsort(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(item, escape_keys) for item in value) + "]"
    return str(value)


def fields(mapping: dict) -> str:
    """`key:value,...` with bare keys, sorted: the body of a call or of a dict tool result."""
    return ",".join(key + ":" + format_value(value, escape_keys=False) for key, value in _dictsort(mapping))


def _quoted_list(items) -> str:
    return "[" + ",".join(QUOTE + _str(item) + QUOTE for item in items) + "]"


def _format_items(items: dict) -> str:
    """The `items:{...}` body of an ARRAY property: keys sorted, null values skipped."""
    parts = []
    for key, value in _dictsort(items):
        if value is None:
            continue
        if key == "properties":
            parts.append("properties:{" + (_format_properties(value) if isinstance(value, dict) else "") + "}")
        elif key == "required":
            parts.append("required:" + _quoted_list(value))
        elif key == "type":
            upper = str(value).upper() if isinstance(value, str) else [str(item).upper() for item in value]
            parts.append("type:" + format_value(upper))
        else:
            parts.append(key + ":" + format_value(value))
    return "{" + ",".join(parts) + "}"


def _format_property(prop) -> str:
    """One property's `{description:...,enum/items/nullable/properties/required...,type:...}`."""
    kind = _str(_get(prop, "type")).upper()  # Jinja's upper: ["string", "null"] -> "['STRING', 'NULL']"
    fields = []
    if _truthy(_get(prop, "description")):
        fields.append("description:" + QUOTE + str(prop["description"]) + QUOTE)
    if kind == "STRING" and _truthy(_get(prop, "enum")):
        fields.append("enum:" + format_value(prop["enum"]))  # an enum on any other type is dropped (template)
    elif kind == "ARRAY" and isinstance(_get(prop, "items"), dict) and prop["items"]:
        fields.append("items:" + _format_items(prop["items"]))
    if _truthy(_get(prop, "nullable")):
        fields.append("nullable:true")
    if kind == "OBJECT":
        nested = _get(prop, "properties")
        if isinstance(nested, dict):
            fields.append("properties:{" + _format_properties(nested) + "}")
        elif isinstance(prop, dict):
            # Quirk (reproduced): an object without a `properties` dict has its own non-standard keys
            # (additionalProperties, title, ...) written as sub-properties. Give objects properties.
            fields.append("properties:{" + _format_properties(prop, skip_standard=True) + "}")
        if _truthy(_get(prop, "required")):
            fields.append("required:" + _quoted_list(prop["required"]))
    fields.append("type:" + QUOTE + kind + QUOTE)
    return "{" + ",".join(fields) + "}"


def _format_properties(properties: dict, skip_standard: bool = False) -> str:
    return ",".join(key + ":" + _format_property(prop) for key, prop in _dictsort(properties)
                    if not (skip_standard and key in _STANDARD_KEYS))


def format_declaration(function: dict) -> str:
    """`declaration:NAME{description:<|"|>...<|"|>,parameters:{...}}` for one tool's function."""
    name = function["name"]
    text = "declaration:" + _str(name) + "{description:" + QUOTE + _str(function.get("description", _MISSING)) + QUOTE
    params = function.get("parameters")
    if params:
        if not params.get("type"):
            raise ValueError(f"tool {name!r}: parameters has no \"type\"; Gemma 4's template renders a malformed "
                             "declaration without it. Add \"type\": \"object\" to its parameters.")
        text += ",parameters:{"
        if params.get("properties"):
            text += "properties:{" + _format_properties(params["properties"]) + "},"
        if params.get("required"):
            text += "required:" + _quoted_list(params["required"]) + ","
        text += "type:" + QUOTE + str(params["type"]).upper() + QUOTE + "}"
    if "response" in function:
        response = function["response"]
        if not isinstance(response, dict) or str(response.get("type")).upper() != "OBJECT":
            raise ValueError(f"tool {name!r}: a \"response\" declaration needs \"type\": \"object\"; Gemma 4's "
                             "template leaves it unclosed otherwise. Fix it or remove the \"response\" key.")
        text += ",response:{"
        if response.get("description"):
            text += "description:" + QUOTE + str(response["description"]) + QUOTE + ","
        text += "type:" + QUOTE + "OBJECT" + QUOTE + "}"
    return text + "}"


# ---------------------------------------------------------------------------------------------------
# Calls, and reading them back

def format_call(call: dict, where: str) -> str:
    function = call["function"]
    name, arguments = function["name"], function.get("arguments", {})
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ValueError(f"{where}: tool call {name!r} has arguments of type {type(arguments).__name__} (the "
                         "template refuses them); pass a dict (json.loads a JSON string first)")
    _check_writable(name, arguments, where)
    return CALL + "call:" + name + "{" + fields(arguments) + "}" + CALL_END


def _check_writable(name, arguments, where: str):
    """Refuse a call that parse() could not read back: its name and (nested) argument keys are written bare."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{where}: function name {name!r} cannot be written in Gemma 4's call syntax "
                         "(no spaces or any of {}<>:,[]); rename the tool")
    for key, value in arguments.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"{where}: argument name {key!r} of {name!r} cannot be written in Gemma 4's call "
                             "syntax (none of :,{}[]<); rename the argument")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                _check_writable(name, item, where)


_NAME = re.compile(r"[^\s{}<>:,\[\]]+")  # a function name as parse() reads it
_KEY = re.compile(r"[^:,{}\[\]<]+")  # an argument name as parse() reads it (bare)
_NUMBER = re.compile(r"-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")


class ParseError(Exception):
    pass


class Reader:
    """A small recursive-descent reader over Gemma 4's `{key:value,...}` syntax."""

    def __init__(self, text: str, pos: int = 0):
        self.text, self.pos = text, pos

    def expect(self, literal: str):
        if not self.text.startswith(literal, self.pos):
            found = self.text[self.pos:self.pos + 20] or "the end of the output"
            raise ParseError(f"expected {literal!r} at character {self.pos}, found {found!r}")
        self.pos += len(literal)

    def quoted(self) -> str:
        self.expect(QUOTE)
        end = self.text.find(QUOTE, self.pos)
        if end < 0:
            raise ParseError(f"unclosed {QUOTE} string at character {self.pos}")
        value, self.pos = self.text[self.pos:end], end + len(QUOTE)
        return value

    def bare(self, stop_chars: str) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in stop_chars:
            self.pos += 1
        if self.pos == start:
            raise ParseError(f"missing value at character {start}")
        return self.text[start:self.pos]

    def value(self):
        if self.text.startswith(QUOTE, self.pos):
            return self.quoted()
        if self.text.startswith("{", self.pos):
            return self.object()
        if self.text.startswith("[", self.pos):
            return self.array()
        text = self.bare(",}]<")
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if _NUMBER.fullmatch(text):
            return float(text) if any(c in text for c in ".eE") else int(text)
        return text  # lenient: a string the model forgot to quote is still read

    def object(self) -> dict:
        self.expect("{")
        result = {}
        while not self.text.startswith("}", self.pos):
            if result:
                self.expect(",")
            key = self.quoted() if self.text.startswith(QUOTE, self.pos) else self.bare(":,{}[]<")
            self.expect(":")
            result[key] = self.value()
        self.pos += 1
        return result

    def array(self) -> list:
        self.expect("[")
        result = []
        while not self.text.startswith("]", self.pos):
            if result:
                self.expect(",")
            result.append(self.value())
        self.pos += 1
        return result

    def call(self) -> dict:
        """`<|tool_call>call:NAME{ARGS}<tool_call|>` at pos."""
        self.expect(CALL + "call:")
        name = _NAME.match(self.text, self.pos)
        if not name:
            raise ParseError(f"missing function name at character {self.pos}")
        self.pos = name.end()
        arguments = self.object()
        self.expect(CALL_END)
        return tool_call(name.group(), arguments)
