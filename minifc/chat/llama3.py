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
  non-user message where the tools must go, and any Llama special-token string (`<|eot_id|>`,
  `<|reserved_special_token_7|>`, ...) inside data (text, arguments, results, declarations): the
  tokenizer would turn it into the real control token. An empty `tool_calls` list is treated as no
  calls (the template would raise).

Trained spans (the masking rule): each assistant message's trimmed content, or its call text, through
the `<|eot_id|>`/`<|eom_id|>` that ends the turn; never the assistant header. `"train": false` on an
assistant message removes its span; `"train": true` on any other message adds a span over its body
text only (the user's own text, without the tool declarations; the system message's own text, without
the date lines; the rendered ipython body), never its header or end token.

parse(): cuts the text at the first stop token, strips an optional leading `<|python_tag|>`, then
reads one call, several calls separated by ";" and/or whitespace, or a JSON list of calls; "arguments"
is accepted for "parameters" (a JSON-encoded string of an object too). A 3.1 built-in call
`name.call(k="v", ...)` after `<|python_tag|>` is read as well. Anything else is a plain text answer;
text that starts like a call (`{` or `[{`) but is not a well-formed one gives `parse_error`.
"""

import json
import re
from functools import partial

from minifc.chat import ChatFormat, Rendered, SpanWriter

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


def _data(text: str, where: str) -> str:
    """`text` from the data (not template glue), refused if it holds a control token."""
    if match := _SPECIAL_TOKEN.search(text):
        raise ValueError(f"{where} contains the control token {match.group()!r}, which the tokenizer would read as "
                         "a real control token (ending the turn, say); remove it from the data")
    return text


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
        return f"{PYTHON_TAG}{_data(name, where)}.call({_data(pairs, where)})"
    arguments_json = _data(json.dumps(arguments, ensure_ascii=False), f"{where}.function.arguments")
    return '{"name": "' + _data(name, f"{where}.function.name") + '", "parameters": ' + arguments_json + "}"


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
    tools = tools or None
    out = SpanWriter()
    emit = out.write

    messages = list(enumerate(messages))  # keep original indices for error messages
    system_text, system_train = "", False
    if messages and messages[0][1].get("role") == "system":
        index, message = messages.pop(0)
        system_text = _data(_text(message, index), f"messages[{index}].content")
        system_train = message.get("train") is True

    emit(BOS + _header("system"))
    if builtin_tools is not None or tools is not None:
        emit("Environment: ipython\n")
    if builtin_tools is not None:
        emit("Tools: " + _data(", ".join(t for t in builtin_tools if t != "code_interpreter"), "builtin_tools") + "\n\n")
    emit(f"Cutting Knowledge Date: December 2023\nToday Date: {_data(date_string, 'date_string')}\n\n")
    if tools is not None and not tools_in_user_message:
        emit(TOOLS_IN_SYSTEM_PREAMBLE + _data(_declarations(tools), "tools"))
    emit(system_text, trained=system_train)
    emit(EOT)

    if tools is not None and tools_in_user_message:
        if not messages:
            raise ValueError("tools go into the first user message (tools_in_user_message=True), but the "
                             "conversation has no message after the system message; add the user's request")
        index, message = messages.pop(0)
        if message.get("role") != "user":
            raise ValueError(f"messages[{index}]: tools go into the first message after the system message, "
                             f"which must be a user message, not {message.get('role')!r}; "
                             "put the user's request first or pass tools_in_user_message=False")
        emit(_header("user") + TOOLS_IN_USER_PREAMBLE + _data(_declarations(tools), "tools"))
        emit(_data(_text(message, index), f"messages[{index}].content"), trained=message.get("train") is True)
        emit(EOT)

    end_of_call = EOM if builtin_tools is not None else EOT
    for index, message in messages:
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise ValueError(f"messages[{index}]: role must be a non-empty string, got {role!r}")
        if role in ("tool", "ipython"):
            if message.get("content") is None:  # the template would print "None" (transformers fails on it)
                raise ValueError(f"messages[{index}]: tool result has no content; write the result as a string, "
                                 "number, dict or list")
            emit(_header("ipython"))
            emit(_data(_tool_result_text(message.get("content")), f"messages[{index}].content"),
                 trained=message.get("train") is True)
            emit(EOT)
        elif message.get("tool_calls"):
            if role != "assistant":
                raise ValueError(f"messages[{index}]: only assistant messages may have tool_calls, not {role!r}")
            calls = [_call_text(call, f"messages[{index}].tool_calls[{i}]", builtin_tools)
                     for i, call in enumerate(message["tool_calls"])]
            emit(_header("assistant"))  # content, if any, is dropped as in the official template
            emit(PARALLEL_SEPARATOR.join(calls) + end_of_call, trained=message.get("train") is not False)
        elif role == "assistant":
            if message.get("content") is None:
                raise ValueError(f"messages[{index}]: assistant message has neither content nor tool_calls")
            emit(_header("assistant"))
            emit(_data(_text(message, index), f"messages[{index}].content") + EOT,
                 trained=message.get("train") is not False)
        else:
            emit(_header(_data(role, f"messages[{index}].role")))
            emit(_data(_text(message, index), f"messages[{index}].content"), trained=message.get("train") is True)
            emit(EOT)

    if add_generation_prompt:
        emit(_header("assistant"))
    return out.rendered()


# ---------------------------------------------------------------------------------------------- parse

_BUILTIN_CALL = re.compile(r"(\w+)\.call\((.*)\)", re.DOTALL)
_BUILTIN_ARG = re.compile(r'\s*(\w+)="(.*?)"\s*(?:,(?=\s*\w+=")|$)', re.DOTALL)


def _result(content, calls, error) -> dict:
    return {"role": "assistant", "content": content, "tool_calls": calls, "parse_error": error}


def _tool_call(name: str, arguments: dict) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


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
    if isinstance(arguments, str):  # some fine-tunes JSON-encode the arguments a second time
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    if not isinstance(arguments, dict):
        raise ValueError(f'call {number} ({name}): "parameters" must be a JSON object')
    return _tool_call(name, arguments)


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
    return [_tool_call(match.group(1), arguments)]


def parse(generated_text: str) -> dict:
    """What the model generated after the assistant header -> {"role", "content", "tool_calls",
    "parse_error"}. Never raises on malformed output."""
    text = generated_text
    for stop in (EOT, EOM, END_OF_TEXT):  # the turn ends at the first stop token
        text = text.split(stop, 1)[0]
    text = text.strip()
    tagged = text.startswith(PYTHON_TAG)
    body = text[len(PYTHON_TAG):].strip() if tagged else text
    looks_like_json = body.startswith("{") or re.match(r"\[\s*\{", body) is not None
    if not looks_like_json and not tagged:
        return _result(text or None, [], None)
    try:
        calls = _json_calls(body) if looks_like_json else _builtin_call(body)
    except (ValueError, RecursionError) as error:  # json.JSONDecodeError is a ValueError
        return _result(text or None, [], f"malformed tool call: {error}")
    return _result(None, calls, None)


def _format(variant: str) -> ChatFormat:
    return ChatFormat(name=f"llama{variant}", render=partial(render, variant=variant), parse=parse,
                      stop_tokens=(EOT, EOM, END_OF_TEXT),
                      control_tokens=(BOS, START_HEADER, END_HEADER, EOT, EOM, PYTHON_TAG))


LLAMA31 = _format("3.1")
LLAMA32 = _format("3.2")
