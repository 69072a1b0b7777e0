"""Llama 3.1 / 3.2 Instruct chat format: `render()` and `parse()` side by side.

The text is byte-identical to Meta's official Hugging Face chat templates (llama-3.1/3.2-instruct)
for everything they accept; where they refuse or are ambiguous, minifc's choice is stated below.

Skeleton (one line per piece; there is no newline after `<|eot_id|>`):

    <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\n
    Environment: ipython\\n                          only when tools (or builtin_tools) are given
    Tools: brave_search, wolfram_alpha\\n\\n         3.1 builtin_tools only (code_interpreter not listed)
    Cutting Knowledge Date: December 2023\\n
    Today Date: {date_string}\\n\\n
    [tool instructions + declarations]             only when tools_in_user_message=False
    {first system message, trimmed}<|eot_id|>
    <|start_header_id|>{role}<|end_header_id|>\\n\\n{content, trimmed}<|eot_id|>      every other message
    <|start_header_id|>assistant<|end_header_id|>\\n\\n                              add_generation_prompt

- The system block is always written, even without a system message. Only the FIRST message is
  extracted into it when its role is "system"; a later system message, or a "developer" message, is
  rendered as an ordinary turn under its own role name (`<|start_header_id|>developer...`), as the
  template does. Other role names pass through the same way.
- Tools (`tools_in_user_message=True`, the official default): the first message after the system
  message (it must be a user message) becomes
  `Given the following functions, please respond with a JSON for a function call with its proper
  arguments that best answers the given prompt.\\n\\nRespond in the format {"name": function name,
  "parameters": dictionary of argument name and its value}.Do not use variables.\\n\\n` + for each tool
  `json.dumps(tool, indent=4, ensure_ascii=False) + "\\n\\n"` + the user's trimmed text. With
  `tools_in_user_message=False` the instructions (`You have access to the following functions. To call a
  function, please respond with JSON for a function call.Respond in the format ...Do not use
  variables.\\n\\n`) and declarations go into the system block before the system text. The whole tool
  object is dumped, `"type": "function"` wrapper and key order included. `tools=[]` means no tools.
- Date: `date_string` defaults to "26 Jul 2024" (the 3.1 template's fixed default, and 3.2's fallback)
  so renders are deterministic. The official 3.2 template uses today's date (`strftime_now("%d %b %Y")`);
  pass `date_string=datetime.now().strftime("%d %b %Y")` to get that.
- Tool call: `{"name": "NAME", "parameters": ` + json.dumps(arguments) + `}` then `<|eot_id|>`
  (Python json defaults: ", " and ": ", key order kept, non-ASCII kept; the name is written unescaped).
  If the assistant message also has content, the content is dropped, exactly as the template does.
  `arguments` must be a dict (the template would double-encode a string; minifc refuses it).
- Parallel calls (minifc convention; the official template refuses more than one call): the call
  objects are joined by "; " in one assistant turn, `{"name": "a", "parameters": {...}}; {"name": "b",
  "parameters": {...}}<|eot_id|>`. This is the separator vLLM's `llama3_json` tool parser splits on.
- Tool result: role "tool" (or "ipython") renders as `<|start_header_id|>ipython<|end_header_id|>\\n\\n`
  + BODY + `<|eot_id|>`, BODY untrimmed: json.dumps(content) for a dict, list OR STRING (so a string
  result appears in quotes: "21 C" -> `"21 C"`), str(content) otherwise (`21`, `0.5`, `True`);
  a missing (None) result is refused.
  No tool name or id is written.
- End of turn: always `<|eot_id|>`, except Llama 3.1 with `builtin_tools=[...]` (ipython mode), where
  every tool call ends with `<|eom_id|>` and a call to a built-in tool is written
  `<|python_tag|>brave_search.call(query="weather Paris")` (values written raw, must be strings).
- Stricter than the template (clear ValueError instead of odd text): non-string content, an assistant
  message with neither content nor calls, non-dict arguments, tool_calls on a non-assistant message, a
  non-user message where the tools must go, and (kit.SpanWriter) any Llama special-token string (`<|eot_id|>`,
  `<|reserved_special_token_7|>`, ...) inside data (text, arguments, results, declarations): the
  tokenizer would turn it into the real control token. An empty `tool_calls` list is treated as no
  calls (the template would raise).

Labels (minifc/masking.py decides what is trained from them): every `<|start_header_id|>ROLE
<|end_header_id|>\n\n` is the HEADER of its message (the system header: of the system message, if
any); a message's body is its TEXT (the user's own text without the tool declarations, the system
message's own text without the date lines, the rendered ipython body), an assistant's call text its
CALLS, and the `<|eot_id|>`/`<|eom_id|>` after it its END. BOS, the date lines, the tool preambles
and declarations are the template's.

parse(): cuts the text at the first stop token, strips an optional leading `<|python_tag|>`, then
reads one call, several calls separated by ";" and/or whitespace, or a JSON list of calls; "arguments"
is accepted for "parameters" (a JSON-encoded string of an object too). A 3.1 built-in call
`name.call(k="v", ...)` after `<|python_tag|>` is read as well. Anything else is a plain text answer;
text that starts like a call (`{` or `[{`) but is not a well-formed one gives `parse_error`.
"""

import json
import re
from functools import partial

from minifc.chat import ChatFormat
from minifc.chat.kit import (Rendered, SpanWriter, parse_result, read_call, refuse_control_tokens, tool_call,
                             until_stop)
from minifc.masking import CALLS, END, HEADER, TEXT

BOS = "<|begin_of_text|>"
START_HEADER, END_HEADER = "<|start_header_id|>", "<|end_header_id|>"
EOT, EOM, END_OF_TEXT = "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"
PYTHON_TAG = "<|python_tag|>"

DEFAULT_DATE = "26 Jul 2024"
PARALLEL_SEPARATOR = "; "
# Every special token of the Llama 3 tokenizer. The tokenizer turns these strings into control ids wherever
# they appear, so a user text holding "<|eot_id|>" would end the turn for the model: data may not contain them.
_SPECIAL_TOKEN = re.compile(r"<\|(?:begin_of_text|end_of_text|finetune_right_pad_id|start_header_id|end_header_id"
                            r"|eom_id|eot_id|python_tag|reserved_special_token_\d+)\|>")

CALL_FORMAT = 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.'
TOOLS_IN_USER_PREAMBLE = ("Given the following functions, please respond with a JSON for a function call "
                          "with its proper arguments that best answers the given prompt.\n\n"
                          + CALL_FORMAT + "Do not use variables.\n\n")
TOOLS_IN_SYSTEM_PREAMBLE = ("You have access to the following functions. To call a function, please respond "
                            "with JSON for a function call." + CALL_FORMAT + "Do not use variables.\n\n")


def _header(role: str) -> str:
    return f"{START_HEADER}{role}{END_HEADER}\n\n"


def _declarations(tools: list[dict]) -> str:
    return "".join(json.dumps(tool, indent=4, ensure_ascii=False) + "\n\n" for tool in tools)


def _text(message: dict, index: int) -> str:
    content = message.get("content")
    if not isinstance(content, str):
        raise ValueError(f"messages[{index}] (role {message.get('role')!r}): content must be a string, got "
                         f"{type(content).__name__}; write the text as a string")
    return content.strip()


def _call_text(call: dict, where: str, builtin_tools) -> str:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        raise ValueError(f'{where} must be {{"type": "function", "function": {{"name": ..., "arguments": {{...}}}}}}')
    name, arguments = function.get("name"), function.get("arguments")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}.function.name must be a non-empty string")
    if not isinstance(arguments, dict):
        raise ValueError(f"{where}.function.arguments must be a dict, got {type(arguments).__name__}; "
                         "decode a JSON string with json.loads first")
    if builtin_tools is not None and name in builtin_tools:
        for key, value in arguments.items():
            if not isinstance(value, str):
                raise ValueError(f"{where}: built-in tool {name!r} argument {key!r} must be a string")
        pairs = ", ".join(f'{key}="{value}"' for key, value in arguments.items())
        return f"{PYTHON_TAG}{name}.call({pairs})"
    return '{"name": "' + name + '", "parameters": ' + json.dumps(arguments, ensure_ascii=False) + "}"


def _tool_result_text(content) -> str:
    # The template's `content is mapping or content is iterable` is true for dicts, lists AND strings.
    if isinstance(content, (dict, list, str)):
        return json.dumps(content, ensure_ascii=False)
    return str(content)


def render(messages: list[dict], tools: list[dict] | None = None, add_generation_prompt: bool = False, *,
           variant: str = "3.2", date_string: str = DEFAULT_DATE, tools_in_user_message: bool = True,
           builtin_tools: list[str] | None = None) -> Rendered:
    """Render a conversation in the Llama 3.x format (see the module docstring for every rule)."""
    if builtin_tools is not None and variant != "3.1":
        raise ValueError("builtin_tools exists only in the Llama 3.1 format; use llama3.1 or drop builtin_tools")
    refuse_control_tokens([date_string, builtin_tools], "date_string, builtin_tools", _SPECIAL_TOKEN)
    tools = tools or None
    out = SpanWriter(messages, tools, _SPECIAL_TOKEN)
    rest = list(enumerate(messages))  # keep original indices for labels and error messages
    system = rest.pop(0)[0] if rest and rest[0][1].get("role") == "system" else None

    out.write(BOS)
    out.write(_header("system"), HEADER, system)
    if builtin_tools is not None or tools is not None:
        out.write("Environment: ipython\n")
    if builtin_tools is not None:
        out.write("Tools: " + ", ".join(t for t in builtin_tools if t != "code_interpreter") + "\n\n")
    out.write(f"Cutting Knowledge Date: December 2023\nToday Date: {date_string}\n\n")
    if tools is not None and not tools_in_user_message:
        out.write(TOOLS_IN_SYSTEM_PREAMBLE + _declarations(tools))
    out.write(_text(messages[system], system) if system is not None else "", TEXT, system)
    out.write(EOT, END, system)

    if tools is not None and tools_in_user_message:
        if not rest:
            raise ValueError("tools go into the first user message (tools_in_user_message=True), but the "
                             "conversation has no message after the system message; add the user's request")
        index, message = rest.pop(0)
        if message.get("role") != "user":
            raise ValueError(f"messages[{index}]: tools go into the first message after the system message, "
                             f"which must be a user message, not {message.get('role')!r}; "
                             "put the user's request first or pass tools_in_user_message=False")
        out.write(_header("user"), HEADER, index)
        out.write(TOOLS_IN_USER_PREAMBLE + _declarations(tools))
        out.write(_text(message, index), TEXT, index)
        out.write(EOT, END, index)

    end_of_call = EOM if builtin_tools is not None else EOT
    for index, message in rest:
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise ValueError(f"messages[{index}]: role must be a non-empty string, got {role!r}")
        if role in ("tool", "ipython"):
            if message.get("content") is None:  # the template would print "None" (transformers fails on it)
                raise ValueError(f"messages[{index}]: tool result has no content; write the result as a string, "
                                 "number, dict or list")
            out.write(_header("ipython"), HEADER, index)
            out.write(_tool_result_text(message.get("content")), TEXT, index)
            out.write(EOT, END, index)
        elif message.get("tool_calls"):
            if role != "assistant":
                raise ValueError(f"messages[{index}]: only assistant messages may have tool_calls, not {role!r}")
            calls = [_call_text(call, f"messages[{index}].tool_calls[{i}]", builtin_tools)
                     for i, call in enumerate(message["tool_calls"])]
            out.write(_header("assistant"), HEADER, index)  # content, if any, is dropped as in the official template
            out.write(PARALLEL_SEPARATOR.join(calls), CALLS, index)
            out.write(end_of_call, END, index)
        else:
            if role == "assistant" and message.get("content") is None:
                raise ValueError(f"messages[{index}]: assistant message has neither content nor tool_calls")
            out.write(_header(role), HEADER, index)
            out.write(_text(message, index), TEXT, index)
            out.write(EOT, END, index)

    if add_generation_prompt:
        out.write(_header("assistant"))
    return out.rendered()


# ---------------------------------------------------------------------------------------------- parse

_BUILTIN_CALL = re.compile(r"(\w+)\.call\((.*)\)", re.DOTALL)
_BUILTIN_ARG = re.compile(r'\s*(\w+)="(.*?)"\s*(?:,(?=\s*\w+=")|$)', re.DOTALL)


def _call_from_json(obj, number: int) -> dict:
    """One decoded call object -> canonical tool call; ValueError says what is wrong with it."""
    if not isinstance(obj, dict):
        raise ValueError(f"call {number} is a JSON {type(obj).__name__}, not an object")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f'call {number} has no "name" string')
    if "parameters" in obj and "arguments" in obj:
        raise ValueError(f'call {number} has both "parameters" and "arguments"')
    if "parameters" not in obj and "arguments" not in obj:
        raise ValueError(f'call {number} ({name}) has no "parameters"')
    arguments = obj["parameters"] if "parameters" in obj else obj["arguments"]
    return read_call(name, arguments, number, "parameters")


def _json_calls(body: str) -> list[dict]:
    """A JSON list of calls, or call objects separated by ';' and/or whitespace."""
    if body.startswith("["):
        objects = json.loads(body)
    else:
        decoder, objects, position = json.JSONDecoder(), [], 0
        while position < len(body):
            obj, position = decoder.raw_decode(body, position)
            objects.append(obj)
            rest = body[position:].lstrip()
            if rest.startswith(";"):
                rest = rest[1:].lstrip()
            elif rest and not rest.startswith("{"):
                raise ValueError(f"unexpected text after call {len(objects)}: {rest[:40]!r}")
            position = len(body) - len(rest)
    if not objects:
        raise ValueError("empty list of calls")
    return [_call_from_json(obj, number) for number, obj in enumerate(objects, 1)]


def _builtin_call(body: str) -> list[dict]:
    match = _BUILTIN_CALL.fullmatch(body)
    if match is None:
        raise ValueError(f"after {PYTHON_TAG} expected a JSON call or name.call(...), got {body[:40]!r}")
    arguments, position, text = {}, 0, match.group(2)
    while text[position:].strip():
        arg = _BUILTIN_ARG.match(text, position)
        if arg is None:
            raise ValueError(f"cannot read the arguments of {match.group(1)}.call: {text[position:][:40]!r}")
        arguments[arg.group(1)] = arg.group(2)
        position = arg.end()
    return [tool_call(match.group(1), arguments)]


def parse(generated_text: str) -> dict:
    """What the model generated after the assistant header -> {"role", "content", "tool_calls",
    "parse_error"}. Never raises on malformed output."""
    text = until_stop(generated_text, (EOT, EOM, END_OF_TEXT)).strip()
    tagged = text.startswith(PYTHON_TAG)
    body = text[len(PYTHON_TAG):].strip() if tagged else text
    looks_like_json = body.startswith("{") or re.match(r"\[\s*\{", body) is not None
    if not looks_like_json and not tagged:
        return parse_result(text or None, [], None)
    try:
        calls = _json_calls(body) if looks_like_json else _builtin_call(body)
    except (ValueError, RecursionError) as error:  # json.JSONDecodeError is a ValueError
        return parse_result(text or None, [], f"malformed tool call: {error}")
    return parse_result(None, calls, None)


def _format(variant: str) -> ChatFormat:
    return ChatFormat(name=f"llama{variant}", render=partial(render, variant=variant), parse=parse,
                      stop_tokens=(EOT, EOM, END_OF_TEXT),
                      control_tokens=(BOS, START_HEADER, END_HEADER, EOT, EOM, PYTHON_TAG),
                      template="llama3.jinja")  # minifc's own: a fixed date, parallel calls


LLAMA31 = _format("3.1")
LLAMA32 = _format("3.2")
