"""FunctionGemma (google/functiongemma-270m-it): render() and parse() side by side.

render() writes exactly what the official chat template writes (FORMATS.md section 3), piece by piece,
and marks which pieces are trained. The layout, on one training sample:

    <bos><start_of_turn>developer\\n
    You are a model that can do function calling with the following functions<start_function_declaration>
    declaration:get_weather{description:<escape>...<escape>,parameters:{...}}<end_function_declaration><end_of_turn>\\n
    <start_of_turn>user\\nWhat's the weather in Paris?<end_of_turn>\\n
    <start_of_turn>model\\n[<start_function_call>call:get_weather{city:<escape>Paris<escape>}<end_function_call>
    <start_function_response>]response:get_weather{temperature:21}<end_function_response>[It is 21 degrees.<end_of_turn>]\\n

Brackets mark the text trained by default. Tool results are not turns: they sit inside the model turn,
right after the calls, and the model's answer continues that same turn. The `<start_function_response>`
that opens the first result is what the model emits to stop after its calls (a stop token), so it is
labelled as the caller's END (and as the start of the result's TEXT, which the template makes it); the
result block after it is the tool message's TEXT, `<end_function_response>` included (it closes the
block, not a turn). Headers are HEADER, message text TEXT, calls CALLS, `<end_of_turn>` END of its
message; the rest is the template's (minifc/masking.py decides what is trained from these labels).

Values are written with FunctionGemma's own syntax, not JSON: strings wrapped in `<escape>`, bare keys
sorted case-insensitively (Jinja's `dictsort`), numbers as Python prints them.
"""

import re

from minifc.chat import ChatFormat
from minifc.chat.kit import Rendered, SpanWriter, control_pattern, parse_result, tool_call
from minifc.masking import CALLS, END, HEADER, TEXT

BOS = "<bos>"
EOS = "<eos>"
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"
DECL_START, DECL_END = "<start_function_declaration>", "<end_function_declaration>"
CALL_START, CALL_END = "<start_function_call>", "<end_function_call>"
RESPONSE_START, RESPONSE_END = "<start_function_response>", "<end_function_response>"
ESCAPE = "<escape>"
_CONTROL = control_pattern((BOS, EOS, START_OF_TURN, END_OF_TURN, DECL_START, DECL_END, CALL_START, CALL_END,
                            RESPONSE_START, RESPONSE_END, ESCAPE))
DEFAULT_DEVELOPER_TEXT = "You are a model that can do function calling with the following functions"
# Keys of a JSON-Schema property that the template never renders as sub-properties.
_STANDARD_KEYS = ("description", "type", "properties", "required", "nullable")


# ---------------------------------------------------------------------------------------------------
# Values: the template's `format_argument` macro and the Jinja behaviour it relies on.

def _dictsort(mapping: dict) -> list:
    """Jinja's `dictsort`: by key, case-insensitively; ties keep their insertion order."""
    return sorted(mapping.items(), key=lambda item: item[0].lower() if isinstance(item[0], str) else item[0])


_MISSING = object()  # a key the template looks up but the data lacks (Jinja's "undefined")


def _jinja_str(value) -> str:
    """What `{{ value }}` prints: a missing value prints nothing, None prints `None` (template quirk)."""
    return "" if value is _MISSING else str(value)


def _get(mapping, key):
    """`mapping[key]` the Jinja way: missing keys and non-dict containers give an undefined value."""
    return mapping.get(key, _MISSING) if isinstance(mapping, dict) else _MISSING


def _upper(value) -> str:
    """Jinja's `upper` filter: str() then upper-case, so ["string", "null"] -> "['STRING', 'NULL']"."""
    return _jinja_str(value).upper()


def _format_value(value, escape_keys: bool = True) -> str:
    """A value in FunctionGemma syntax (the template's `format_argument` macro)."""
    if isinstance(value, str):
        return ESCAPE + value + ESCAPE  # nothing inside is escaped: braces, quotes, newlines stay literal
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        pairs = ((ESCAPE + key + ESCAPE if escape_keys else key) + ":" + _format_value(item, escape_keys)
                 for key, item in _dictsort(value))
        return "{" + ",".join(pairs) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_format_value(item, escape_keys) for item in value) + "]"
    return str(value)  # numbers as Python prints them (21.0 stays 21.0); None prints `None` (quirk)


def _format_fields(mapping: dict) -> str:
    """`key:value` pairs with bare keys, sorted: the body of a call or of a dict tool result."""
    return ",".join(key + ":" + _format_value(value, escape_keys=False) for key, value in _dictsort(mapping))


# ---------------------------------------------------------------------------------------------------
# Declarations: the template's `format_function_declaration` and `format_parameters` macros.

def _escaped_list(items) -> str:
    return ",".join(ESCAPE + _jinja_str(item) + ESCAPE for item in items)


def _format_items(items: dict) -> str:
    """The `items:{...}` of an ARRAY property: its keys sorted, null values skipped."""
    parts = []
    for key, value in _dictsort(items):
        if value is None:
            continue
        if key == "properties":
            parts.append("properties:{" + (_format_properties(value) if isinstance(value, dict) else "") + "}")
        elif key == "required":
            parts.append("required:[" + _escaped_list(value) + "]")
        elif key == "type":
            upper = _upper(value) if isinstance(value, str) else [_upper(item) for item in value]
            parts.append("type:" + _format_value(upper))
        else:
            parts.append(key + ":" + _format_value(value))
    return "{" + ",".join(parts) + "}"


def _format_property(prop) -> str:
    """One property's `{description:...,type:...}`, with enum / nested properties / items by type."""
    text = "{description:" + ESCAPE + _jinja_str(_get(prop, "description")) + ESCAPE
    kind = _upper(_get(prop, "type"))
    if kind == "STRING":
        enum = _get(prop, "enum")
        if enum is not _MISSING and enum:
            text += ",enum:" + _format_value(enum)  # an enum on any other type is dropped (template)
    elif kind == "OBJECT":
        nested = _get(prop, "properties")
        # Quirk: an object without a `properties` dict has its own non-standard keys (additionalProperties,
        # title, ...) rendered as fake sub-properties. Reproduced; give objects explicit properties.
        text += ",properties:{" + _format_properties(nested if isinstance(nested, dict) else prop) + "}"
        required = _get(prop, "required")
        if required is not _MISSING and required:
            text += ",required:[" + _escaped_list(required) + "]"
    elif kind == "ARRAY":
        items = _get(prop, "items")
        if isinstance(items, dict) and items:
            text += ",items:" + _format_items(items)
    return text + ",type:" + ESCAPE + kind + ESCAPE + "}"


def _format_properties(properties: dict) -> str:
    # Quirk: a property *named* description/type/properties/required/nullable is silently skipped.
    return ",".join(key + ":" + _format_property(prop) for key, prop in _dictsort(properties)
                    if key not in _STANDARD_KEYS)


def _format_declaration(tool: dict) -> str:
    """`declaration:NAME{description:<escape>...<escape>,parameters:{...}}` for one tool."""
    function = tool["function"]
    name = function["name"]
    # `{{- x -}}` strips the template's whitespace around x, never x itself: names and descriptions stay as given.
    text = "declaration:" + _jinja_str(name) + "{description:" + ESCAPE
    text += _jinja_str(function.get("description", _MISSING)) + ESCAPE
    params = function.get("parameters")
    if params:
        if not params.get("type"):
            # The template would write `...required:[...],}` (its closing brace lives in the type branch).
            raise ValueError(f"tool {name!r}: parameters has no \"type\"; FunctionGemma's template renders a "
                             "malformed declaration without it. Add \"type\": \"object\" to its parameters.")
        text += ",parameters:{"
        if params.get("properties"):
            text += "properties:{" + _format_properties(params["properties"]) + "},"
        if params.get("required"):
            text += "required:[" + _escaped_list(params["required"]) + "],"
        text += "type:" + ESCAPE + _upper(params["type"]) + ESCAPE + "}"
    return text + "}"


# ---------------------------------------------------------------------------------------------------
# render()

def _content_text(message: dict, where: str) -> str | None:
    """A message's text: a string, trimmed; a list of text parts, each trimmed, joined; None if absent."""
    content = message.get("content")
    if content is None:
        return None
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise ValueError(f"{where}: content part {part!r} is not a {{\"type\": \"text\"}} part; "
                                 "minifc renders text only")
            parts.append(part["text"].strip())
        return "".join(parts)
    raise ValueError(f"{where}: content must be a string or a list of text parts, got {type(content).__name__}")


def _format_call(call: dict, where: str) -> str:
    function = call["function"]
    arguments = function.get("arguments", {})
    if not isinstance(arguments, dict):
        # The template dumps a JSON string verbatim after 20 spaces of indentation: always wrong.
        raise ValueError(f"{where}: tool call {function.get('name')!r} has arguments of type "
                         f"{type(arguments).__name__}; pass a dict (json.loads a JSON string first)")
    _check_writable(function["name"], arguments, where)
    return CALL_START + "call:" + function["name"] + "{" + _format_fields(arguments) + "}" + CALL_END


def _check_writable(name, arguments, where: str):
    """Refuse a call that parse() could not read back: its name and (nested) argument keys are written bare."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{where}: function name {name!r} cannot be written in FunctionGemma's call syntax "
                         "(no spaces or any of {}<>:,[]); rename the tool")
    for key, value in arguments.items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"{where}: argument name {key!r} of {name!r} cannot be written in FunctionGemma's "
                             "call syntax (none of :,{}[]<); rename the argument")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                _check_writable(name, item, where)


def _format_tool_results(message: dict, where: str, name=_MISSING) -> list[str]:
    """The `response:NAME{...}<end_function_response>` blocks of a tool message, each without its leading
    `<start_function_response>` (the caller writes it, since the first one can belong to the model).
    `name` is the message's "name" (present-but-None prints `None`, like the template)."""
    content = message.get("content")
    if not content:
        return []  # the template renders an empty or missing result as nothing

    def block(block_name, body: str) -> str:
        return "response:" + _jinja_str(block_name).strip() + "{" + body + "}" + RESPONSE_END

    def dict_block(item: dict) -> str:
        if "name" in item and "response" in item:  # Google's style: {"name": N, "response": {...}}
            if not isinstance(item["response"], dict):
                raise ValueError(f"{where}: tool result {item['name']!r} has a non-dict \"response\"")
            return block(item["name"], _format_fields(item["response"]))
        if name is _MISSING:
            raise ValueError(f"{where}: a dict tool result needs a \"name\" on the tool message, or the form "
                             "{\"name\": ..., \"response\": {...}}")
        return block(name, _format_fields(item))

    if isinstance(content, dict):
        return [dict_block(content)]
    if isinstance(content, str):
        if name is _MISSING:
            raise ValueError(f"{where}: tool message has no \"name\"; FunctionGemma writes response:NAME{{...}}")
        return [block(name, "value:" + _format_value(content))]  # a string result becomes {value:...}
    if isinstance(content, list):
        if not all(isinstance(item, dict) for item in content):
            raise ValueError(f"{where}: a list tool result must hold only dicts")
        return [dict_block(item) for item in content]
    raise ValueError(f"{where}: tool content must be a dict, a list of dicts or a string, "
                     f"got {type(content).__name__}")


def render(messages: list[dict], tools: list[dict] | None = None, add_generation_prompt: bool = False,
           **format_options) -> Rendered:
    """The official FunctionGemma template's text, labelled piece by piece (see module docstring)."""
    if format_options:
        raise TypeError(f"the functiongemma format takes no format options, got {sorted(format_options)}")
    if not messages:
        raise ValueError("render() needs at least one message")
    out = SpanWriter(messages, tools, _CONTROL)
    out.write(BOS)
    first = messages[0]
    has_system = first["role"] in ("system", "developer")
    if tools or has_system:
        out.write(START_OF_TURN + "developer\n", HEADER, 0 if has_system else None)
        if has_system:
            # A system text *replaces* the default sentence (Google's docs call the default essential).
            out.write(_content_text(first, "messages[0]") or "", TEXT, 0)
        else:
            out.write(DEFAULT_DEVELOPER_TEXT)
        for tool in tools or []:
            out.write(DECL_START + _format_declaration(tool) + DECL_END)
        out.write(END_OF_TURN, END, 0 if has_system else None)
        out.write("\n")

    previous = None  # what the last message ended with: None, "content", "tool_call" or "tool_response"
    caller = None  # the assistant whose calls wait for the `<start_function_response>` that ends its turn
    unanswered = []  # names of the last calls not yet answered by a tool message
    for index in range(1 if has_system else 0, len(messages)):
        message = messages[index]
        where = f"messages[{index}] ({message['role']})"
        if message["role"] == "tool":
            name = message.get("name", _MISSING)
            if name is _MISSING and unanswered:
                # The template refuses a result without "name" (OpenAI-style data has tool_call_id instead);
                # minifc names it after the call it answers, in order, as if the data had said so.
                name = unanswered[0]
            if name in unanswered:
                unanswered.remove(name)
            for result in _format_tool_results(message, where, name):
                # The first response opener after a call is the caller's stop token, and also the start
                # of this result's block: labelled as both.
                if caller is None:
                    out.write(RESPONSE_START, TEXT, index)
                else:
                    out.write(RESPONSE_START, END, caller, also=(TEXT, index))
                out.write(result, TEXT, index)
                caller = None
            previous = "tool_response"
            continue

        caller = None
        if previous != "tool_response":
            out.write(START_OF_TURN + ("model" if message["role"] == "assistant" else message["role"]) + "\n",
                      HEADER, index)
        # else: the message continues the model turn that holds the tool results. Quirk (reproduced): a
        # *user* message there is glued right after `<end_function_response>`, without a user header.
        previous = None
        text = _content_text(message, where)
        if text is not None:
            out.write(text, TEXT, index)
            previous = "content"
        calls = message.get("tool_calls") or []
        if calls:
            unanswered = [call["function"]["name"] for call in calls]
            for call in calls:
                out.write(_format_call(call, where), CALLS, index)
            if index == len(messages) - 1:
                out.write(RESPONSE_START, END, index)  # a sample that ends in calls ends with the stop token
            elif message["role"] == "assistant":
                caller = index  # the next tool message writes it (none next: the turn has no stop token)
            previous = "tool_call"
        else:
            out.write(END_OF_TURN, END, index)
            out.write("\n")  # glue the model never generates: it stops at <end_of_turn>
    if add_generation_prompt and previous != "tool_response":
        # Pitfall (reproduced): after a trailing call this gives `...<start_function_response><start_of_turn>model\n`.
        out.write(START_OF_TURN + "model\n")
    return out.rendered()


# ---------------------------------------------------------------------------------------------------
# parse(): the inverse for one generated model turn.
#   TEXT? (<start_function_call>call:NAME{ARGS}<end_function_call>)* (<start_function_response> | <end_of_turn> | <eos>)?

_STOPS = (RESPONSE_START, END_OF_TURN, EOS)
_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")


class _ParseError(Exception):
    pass


def _bare_value(text: str):
    """A value written without <escape>: true/false, None (how the template prints None), a number; any
    other bare text is kept as a string (lenient: a value the model forgot to <escape> is still read)."""
    if text in ("true", "false"):
        return text == "true"
    if text in ("None", "null"):
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


class _ArgumentParser:
    """A small recursive-descent parser over `{key:value,...}` in FunctionGemma syntax."""

    def __init__(self, text: str, pos: int):
        self.text, self.pos = text, pos

    def expect(self, literal: str):
        if not self.text.startswith(literal, self.pos):
            found = self.text[self.pos:self.pos + 20] or "the end of the output"
            raise _ParseError(f"expected {literal!r} at character {self.pos}, found {found!r}")
        self.pos += len(literal)

    def escaped(self) -> str:
        self.expect(ESCAPE)
        end = self.text.find(ESCAPE, self.pos)
        if end < 0:
            raise _ParseError(f"unclosed {ESCAPE} string at character {self.pos}")
        value, self.pos = self.text[self.pos:end], end + len(ESCAPE)
        return value

    def bare(self, stop_chars: str) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in stop_chars:
            self.pos += 1
        if self.pos == start:
            raise _ParseError(f"missing value at character {start}")
        return self.text[start:self.pos]

    def value(self):
        if self.text.startswith(ESCAPE, self.pos):
            return self.escaped()
        if self.text.startswith("{", self.pos):
            return self.object()
        if self.text.startswith("[", self.pos):
            return self.array()
        return _bare_value(self.bare(",}]<"))

    def object(self) -> dict:
        self.expect("{")
        result = {}
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return result
        while True:
            key = self.escaped() if self.text.startswith(ESCAPE, self.pos) else self.bare(":,{}[]<")
            self.expect(":")
            result[key] = self.value()
            if self.text.startswith("}", self.pos):
                self.pos += 1
                return result
            self.expect(",")

    def array(self) -> list:
        self.expect("[")
        result = []
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return result
        while True:
            result.append(self.value())
            if self.text.startswith("]", self.pos):
                self.pos += 1
                return result
            self.expect(",")


_NAME = re.compile(r"[^\s{}<>:,\[\]]+")  # a function name as parse() reads it
_KEY = re.compile(r"[^:,{}\[\]<]+")  # an argument name as parse() reads it (ArgumentParser.bare)


def _parse_call(text: str, pos: int) -> tuple[dict, int]:
    """One `call:NAME{ARGS}<end_function_call>` starting at `pos` (just after <start_function_call>)."""
    parser = _ArgumentParser(text, pos)
    parser.expect("call:")
    name = _NAME.match(text, parser.pos)
    if not name:
        raise _ParseError(f"missing function name at character {parser.pos}")
    parser.pos = name.end()
    arguments = parser.object()
    parser.expect(CALL_END)
    return tool_call(name.group(), arguments), parser.pos


def parse(generated_text: str) -> dict:
    """A generated model turn -> {"role": "assistant", "content", "tool_calls", "parse_error"}.
    Never raises on malformed output: parse_error says what is wrong (and tool_calls is then empty)."""
    markers = [i for i in (generated_text.find(m) for m in (CALL_START,) + _STOPS) if i >= 0]
    text_end = min(markers, default=len(generated_text))
    content = generated_text[:text_end].strip() or None
    pos, calls = text_end, []
    try:
        while generated_text.startswith(CALL_START, pos):
            call, pos = _parse_call(generated_text, pos + len(CALL_START))
            calls.append(call)
        rest = generated_text[pos:]
        if rest.strip() and not rest.startswith(_STOPS):
            raise _ParseError(f"unexpected text after the function calls: {rest[:40]!r}")
    except _ParseError as error:
        return parse_result(content, [], str(error))
    return parse_result(content, calls, None)


FORMAT = ChatFormat(
    name="functiongemma",
    render=render,
    parse=parse,
    stop_tokens=(END_OF_TURN, RESPONSE_START, EOS),
    control_tokens=(BOS, START_OF_TURN, END_OF_TURN, DECL_START, DECL_END, CALL_START, CALL_END,
                    RESPONSE_START, RESPONSE_END, ESCAPE),
    template="official",  # render() is Google's template: the base model's own file is right
)
