"""Gemma 3 IT chat format with function calling: `render()` and `parse()` side by side.

This is minifc's **`gemma3` format v1**. Keep it stable: an adapter trained on it expects exactly
these strings, so any change (even whitespace) needs a new format name.

Gemma 3's official chat template has no tool support; a conversation without tools renders
byte-identical to it:

    <bos><start_of_turn>user\\n{system}\\n\\n{first user text, trimmed}<end_of_turn>\\n
    <start_of_turn>model\\n{assistant text, trimmed}<end_of_turn>\\n
    <start_of_turn>user\\n{user text, trimmed}<end_of_turn>\\n
    <start_of_turn>model\\n                                           add_generation_prompt

The system text (first message only) is taken untrimmed and put in front of the first user text,
followed by "\\n\\n"; there is no system turn. "assistant" is written as "model".

Tools follow Google's documented Gemma 3 function-calling convention (ai.google.dev/gemma/docs/
capabilities/function-calling, Python style; results in a ```tool_output``` fence as in Google's
meme-generator guide). Blocks inside one turn are separated by a blank line ("\\n\\n"):

- First user turn, when `tools` is non-empty:
  `{system}\\n\\n` (if any) + INSTRUCTION + "\\n" + DECLARATIONS + "\\n\\n" + `{user text, trimmed}`, where
  INSTRUCTION is Google's two sentences on two lines (see `INSTRUCTION` below) and DECLARATIONS is
  `json.dumps([tool["function"] for tool in tools], ensure_ascii=False)`: one line, a JSON list of
  {name, description, parameters} objects, keys in the order given, separators ", " and ": ",
  non-ASCII kept. `tools=None` and `tools=[]` both mean no tools.
- Tool calls (the assistant's turn): a Python-style list, `[name(arg=value, ...), name2(...)]`, calls
  joined by ", ", arguments joined by ", ", `=` without spaces, arguments in the order given; parallel
  calls are several items of the list. Values are Python literals written like JSON: strings in double
  quotes with JSON's escapes (json.dumps(s, ensure_ascii=False): `\\"`, `\\\\`, `\\n`, `\\t`, `\\uXXXX`
  for other control characters; non-ASCII kept), which Python reads back to the same string; numbers as
  Python's repr; `True`, `False`, `None` (Python, not JSON's true/false/null); lists `[a, b]`; dicts
  `{"key": value}` with ", " and ": ". NaN and infinities are refused (not JSON). Function and argument
  names must match `[^\\W\\d][\\w.\\-]*` (identifier characters, dots and hyphens) and are written
  unquoted. Example: `[get_weather(city="Paris", days=3), get_time(tz="Europe/Paris")]`.
- An assistant message with content and tool_calls: `{content, trimmed}` + "\\n\\n" + call list.
- Tool results: every "tool" message becomes a user-side block
  "```tool_output\\n" + RESULT + "\\n```", RESULT = the content trimmed when it is a string, else
  json.dumps(content, ensure_ascii=False) (so a dict and its JSON text look the same). The tool name is
  not written; results are matched to calls by order.
- Gemma strictly alternates user/model, so all consecutive non-assistant messages (tool results, user
  messages) merge into ONE user turn, their blocks joined by "\\n\\n" in message order: several results
  of parallel calls, and a user message following results, share one turn. (Two user messages in a
  row merge the same way; the official template refuses them.)

    <start_of_turn>model\\n[get_weather(city="Paris")]<end_of_turn>\\n
    <start_of_turn>user\\n```tool_output\\n{"temp": 21}\\n```\\n\\nAnd in Rome?<end_of_turn>\\n

Refused with a ValueError naming the message (the official template refuses most of these too): no
user message, a first non-system message that is not from the user, two assistant messages in a row,
a system message after the first, unknown roles, non-string content, an assistant message with neither
content nor calls, non-dict arguments, names the call syntax cannot carry.

Labels (minifc/masking.py decides what is trained from them): each turn's `<start_of_turn>ROLE\n` is
the HEADER of its first message; an assistant message's text (with the blank line before its calls)
is its TEXT, the call list its CALLS, its `<end_of_turn>` its END; the "\n" after `<end_of_turn>` is
template glue (generation stops at `<end_of_turn>`, the prompt supplies the "\n"). In a user turn,
the system text, the user's trimmed text and a tool result's RESULT (without the fence) are TEXT of
their messages; BOS, the instruction, the declarations, the fences and block separators are the
template's; the turn's `<end_of_turn>` is the END of its last message. Data holding one of the
format's control tokens is refused (kit.SpanWriter).

parse(): cuts the text at the first `<end_of_turn>` or `<eos>` and removes one ```tool_code / ```python
fence around the whole answer when it holds a call list (Google's other documented variant). A call
list starts at the start of the text or of a line with `[name(`; it must run to the end of the text,
and any text before it is the content (so a text answer must not start a line with `[name(`). Values are read with `ast.parse` and a literal-only converter (never eval); JSON's
true/false/null are accepted as well as True/False/None, tuples are read as lists. Text with no call
list is a plain answer (content, no error). A malformed call list (unbalanced brackets, positional
arguments, non-literal values, text after the list...) gives `parse_error`, with the whole text as
content and no calls. parse never raises.
"""

import ast
import json
import math
import re

from minifc.chat import ChatFormat
from minifc.chat.kit import Rendered, SpanWriter, control_pattern, parse_result, tool_call, until_stop
from minifc.masking import CALLS, END, HEADER, TEXT

BOS, START, END_OF_TURN, EOS = "<bos>", "<start_of_turn>", "<end_of_turn>", "<eos>"
CONTROL = control_pattern((BOS, START, END_OF_TURN, EOS))
BLOCK_SEPARATOR = "\n\n"

# Google's Python-style instruction, verbatim; the doc's code block wraps its first sentence over
# several lines, which minifc writes as one line.
INSTRUCTION = ("You have access to functions. If you decide to invoke any of the function(s), you MUST put it in "
               "the format of [func_name1(params_name1=params_value1, params_name2=params_value2...), "
               "func_name2(params)]\n"
               "You SHOULD NOT include any other text in the response if you call a function")

NAME = re.compile(r"[^\W\d][\w.\-]*")  # function and argument names: identifier characters, dots, hyphens
CALL_LIST_START = re.compile(r"(?:^|\n)[ \t]*(\[\s*[^\W\d][\w.\-]*\s*\()")
CODE_FENCE = re.compile(r"\A\s*```(?:tool_code|python)[ \t]*\n(.*?)\n?```\s*\Z", re.DOTALL)


# ----------------------------------------------------------------------------------------------- render

def python_literal(value, where: str = "value") -> str:
    """A JSON value written as a Python literal that `ast.literal_eval` reads back to the same value."""
    if value is None or isinstance(value, bool):
        return repr(value)  # None, True, False
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a JSON number; tool-call arguments must be JSON values")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are all valid Python escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(python_literal(item, f"{where}[{i}]") for i, item in enumerate(value)) + "]"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"{where}: dict key {key!r} is not a string; JSON objects have string keys")
        return "{" + ", ".join(json.dumps(key, ensure_ascii=False) + ": " + python_literal(item, f"{where}[{key!r}]")
                               for key, item in value.items()) + "}"
    raise ValueError(f"{where}: {type(value).__name__} is not a JSON value; use str, number, bool, None, list or dict")


def _check_name(name, where: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"{where}: name {name!r} cannot be written in the gemma3 call syntax; use letters, digits, "
                         "'_', '.' and '-', not starting with a digit")
    return name


def format_calls(tool_calls: list[dict], where: str = "tool_calls") -> str:
    """`[name(arg=value, ...), ...]` for canonical tool calls ({"type": "function", "function": {...}})."""
    calls = []
    for i, call in enumerate(tool_calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise ValueError(f"{where}[{i}]: expected {{\"type\": \"function\", \"function\": {{\"name\": ..., "
                             "\"arguments\": {...}}}}")
        name = _check_name(function.get("name"), f"{where}[{i}].function.name")
        arguments = function.get("arguments", {})
        if not isinstance(arguments, dict):
            raise ValueError(f"{where}[{i}].function.arguments must be a dict, got {type(arguments).__name__}; "
                             "decode a JSON string with json.loads first")
        pairs = [_check_name(key, f"{where}[{i}].function.arguments") + "="
                 + python_literal(value, f"{where}[{i}].function.arguments[{key!r}]")
                 for key, value in arguments.items()]
        calls.append(f"{name}({', '.join(pairs)})")
    return "[" + ", ".join(calls) + "]"


def _text(message: dict, index: int) -> str:
    content = message.get("content")
    if not isinstance(content, str):
        raise ValueError(f"messages[{index}] (role {message.get('role')!r}): content must be a string, got "
                         f"{type(content).__name__}; write the text as a string")
    return content


def _tool_result(message: dict, index: int) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content.strip()
    try:
        return json.dumps(content, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"messages[{index}] (role 'tool'): content must be a string or a JSON value ({error})")


def _assistant_text(message: dict, index: int) -> tuple[str, str]:
    """(text, call list) of an assistant message; the text ends with the block separator when calls follow."""
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise ValueError(f"messages[{index}] (role 'assistant'): content must be a string or null, "
                         f"got {type(content).__name__}")
    text = (content or "").strip()
    if message.get("tool_calls"):
        calls = format_calls(message["tool_calls"], f"messages[{index}].tool_calls")
        return (text + BLOCK_SEPARATOR if text else ""), calls
    if content is None:
        raise ValueError(f"messages[{index}]: assistant message has neither content nor tool_calls")
    return text, ""


def _turns(messages: list[dict]) -> tuple[tuple[int, dict] | None, list[tuple[str, list[tuple[int, dict]]]]]:
    """Split off the system message and group the rest into alternating ("user" | "model", messages) turns;
    consecutive user and tool messages share one user turn."""
    indexed = list(enumerate(messages))
    system = indexed.pop(0) if indexed and indexed[0][1].get("role") == "system" else None
    turns: list[tuple[str, list[tuple[int, dict]]]] = []
    for index, message in indexed:
        role = message.get("role")
        if role == "assistant":
            if not turns or turns[-1][0] == "model":
                what = "comes first" if not turns else f"follows the assistant message messages[{turns[-1][1][0][0]}]"
                raise ValueError(f"messages[{index}]: this assistant message {what}; Gemma alternates user and "
                                 "model turns: start with a user message and merge consecutive assistant "
                                 "messages into one (content + tool_calls)")
            turns.append(("model", [(index, message)]))
        elif role in ("user", "tool"):
            if not turns and role == "tool":
                raise ValueError(f"messages[{index}]: a tool result cannot come before any assistant call")
            if turns and turns[-1][0] == "user":
                turns[-1][1].append((index, message))
            else:
                turns.append(("user", [(index, message)]))
        elif role == "system":
            raise ValueError(f"messages[{index}]: a system message is only allowed as the first message")
        else:
            raise ValueError(f"messages[{index}]: unknown role {role!r}; use system, user, assistant or tool")
    if not turns:
        raise ValueError("the conversation has no user message; Gemma 3 needs one (the system text and tools "
                         "are written into the first user turn)")
    return system, turns


def render(messages: list[dict], tools: list[dict] | None = None, add_generation_prompt: bool = False,
           **format_options) -> Rendered:
    """Render a conversation in the gemma3 v1 format (every rule is in the module docstring)."""
    if format_options:
        raise TypeError(f"the gemma3 format takes no options, got {', '.join(format_options)}")
    out = SpanWriter(messages, tools, CONTROL)
    system, turns = _turns(messages)
    out.write(BOS)
    for turn_index, (role, turn_messages) in enumerate(turns):
        out.write(f"{START}{role}\n", HEADER, turn_messages[0][0])
        if role == "model":
            index, message = turn_messages[0]
            text, calls = _assistant_text(message, index)
            out.write(text, TEXT, index)
            out.write(calls, CALLS, index)
            # The "\n" after <end_of_turn> is template glue: generation stops at <end_of_turn>, so the
            # model never produces it, and the prompt supplies it before the next turn.
            out.write(END_OF_TURN, END, index)
            out.write("\n")
            continue
        if turn_index == 0:
            if system is not None:
                out.write(_text(system[1], system[0]), TEXT, system[0])  # untrimmed, as official
                out.write(BLOCK_SEPARATOR)
            if tools:
                out.write(INSTRUCTION + "\n" + _declarations(tools) + BLOCK_SEPARATOR)
        for position, (index, message) in enumerate(turn_messages):
            if position:
                out.write(BLOCK_SEPARATOR)
            if message["role"] == "tool":
                out.write("```tool_output\n")
                out.write(_tool_result(message, index), TEXT, index)
                out.write("\n```")
            else:
                out.write(_text(message, index).strip(), TEXT, index)
        out.write(END_OF_TURN, END, turn_messages[-1][0])  # the turn's end belongs to its last message
        out.write("\n")
    if add_generation_prompt:
        out.write(f"{START}model\n")
    return out.rendered()


def _declarations(tools: list[dict]) -> str:
    functions = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or "name" not in function:
            raise ValueError(f"tools[{i}]: expected {{\"type\": \"function\", \"function\": {{\"name\", "
                             "\"description\", \"parameters\"}}}")
        functions.append(function)
    return json.dumps(functions, ensure_ascii=False)


# ------------------------------------------------------------------------------------------------ parse

class _ParseError(Exception):
    pass


def parse(generated_text: str) -> dict:
    """Read the model's answer: content and/or a call list (see the module docstring). Never raises."""
    text = until_stop(generated_text, (END_OF_TURN, EOS))
    fenced = CODE_FENCE.match(text)
    if fenced and CALL_LIST_START.match(fenced.group(1).strip()):  # a fenced code answer stays content as it is
        text = fenced.group(1)
    match = CALL_LIST_START.search(text)
    if match is None:
        return parse_result(text.strip() or None, [], None)
    start = match.start(1)
    try:
        calls, end = _call_list(text, start)
        if text[end:].strip():
            raise _ParseError(f"text after the call list (at character {end}): {text[end:].strip()[:40]!r}")
    except _ParseError as error:
        return parse_result(text.strip() or None, [], f"malformed call list: {error}")
    except (RecursionError, MemoryError):
        return parse_result(text.strip() or None, [], "malformed call list: nested too deeply")
    return parse_result(text[:start].strip() or None, calls, None)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _expect(text: str, i: int, char: str, what: str) -> int:
    i = _skip_space(text, i)
    if i >= len(text) or text[i] != char:
        found = repr(text[i]) if i < len(text) else "the end of the text"
        raise _ParseError(f"expected {char!r} {what} at character {i}, found {found}")
    return i + 1


def _call_list(text: str, i: int) -> tuple[list[dict], int]:
    """Parse `[name(k=v, ...), ...]` starting at text[i] == "["; return the calls and the index after "]"."""
    i = _expect(text, i, "[", "to open the call list")
    calls = []
    while True:
        i = _skip_space(text, i)
        name = NAME.match(text, i)
        if name is None:
            raise _ParseError(f"expected a function name at character {i}")
        arguments, i = _arguments(text, _expect(text, name.end(), "(", f"after {name.group()!r}"), name.group())
        calls.append(tool_call(name.group(), arguments))
        i = _skip_space(text, i)
        if i < len(text) and text[i] == ",":
            i += 1
        elif i < len(text) and text[i] == "]":
            return calls, i + 1
        elif i >= len(text):
            raise _ParseError("unbalanced brackets: the text ends before ']' closes the call list")
        else:
            raise _ParseError(f"expected ',' or ']' after the call to {name.group()!r} at character {i}")


def _arguments(text: str, i: int, function: str) -> tuple[dict, int]:
    """Parse `k=v, ...)` (just after the "("); return the arguments and the index after ")"."""
    arguments = {}
    while True:
        i = _skip_space(text, i)
        if i < len(text) and text[i] == ")":
            return arguments, i + 1
        name = NAME.match(text, i)
        after = _skip_space(text, name.end()) if name else i
        if name is None or after >= len(text) or text[after] != "=":
            raise _ParseError(f"positional or malformed argument in the call to {function!r} at character {i}; "
                              "arguments must be written name=value")
        if name.group() in arguments:
            raise _ParseError(f"argument {name.group()!r} given twice in the call to {function!r}")
        end = _value_end(text, after + 1)
        arguments[name.group()] = _literal(text[after + 1:end].strip(), function, name.group())
        i = end + 1 if text[end] == "," else end


def _value_end(text: str, i: int) -> int:
    """Index of the "," or ")" that ends the value starting at text[i], skipping strings and brackets."""
    depth = 0
    while i < len(text):
        char = text[i]
        if char in "\"'":
            i = _string_end(text, i)
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                if char == ")":
                    return i
                raise _ParseError(f"unbalanced {char!r} at character {i}")
            depth -= 1
        elif char == "," and depth == 0:
            return i
        i += 1
    raise _ParseError("unbalanced brackets: the text ends inside a call")


def _string_end(text: str, i: int) -> int:
    """Index just after the string literal opening at text[i] (single, double or triple quotes)."""
    quote = text[i] * 3 if text.startswith(text[i] * 3, i) else text[i]
    j = i + len(quote)
    while j < len(text):
        if text[j] == "\\":
            j += 2
        elif text.startswith(quote, j):
            return j + len(quote)
        else:
            j += 1
    raise _ParseError(f"unterminated string starting at character {i}")


JSON_NAMES = {"true": True, "false": False, "null": None}


def _literal(source: str, function: str, argument: str):
    """The JSON value of a Python literal, by walking its syntax tree (never eval)."""
    where = f"argument {argument!r} of {function!r}"
    if not source:
        raise _ParseError(f"{where} has no value")
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError) as error:
        raise _ParseError(f"{where} is not a Python literal: {source[:40]!r} ({error.__class__.__name__})")
    return _json_value(tree.body, where)


def _json_value(node, where: str):
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, bool, int, float))):
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise _ParseError(f"{where}: {node.value!r} is not a JSON number")
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float)):
        return -_json_value(node.operand, where) if isinstance(node.op, ast.USub) else _json_value(node.operand, where)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_json_value(item, where) for item in node.elts]
    if isinstance(node, ast.Dict):
        result = {}
        for key, value in zip(node.keys, node.values):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise _ParseError(f"{where}: dict keys must be strings")
            result[key.value] = _json_value(value, where)
        return result
    if isinstance(node, ast.Name) and node.id in JSON_NAMES:
        return JSON_NAMES[node.id]
    raise _ParseError(f"{where}: {ast.unparse(node)[:40]!r} is not a literal value")


FORMAT = ChatFormat(
    name="gemma3",
    render=render,
    parse=parse,
    stop_tokens=(END_OF_TURN, EOS),
    control_tokens=(BOS, START, END_OF_TURN, EOS),
    template="gemma3.jinja",  # minifc's own: Gemma 3's official template has no tools
)
