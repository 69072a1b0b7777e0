"""Qwen chat formats `qwen3`, `qwen3-2507` and `qwen2.5` (Hermes-style tools): `render()` and `parse()`.

The text is byte-identical to the official templates (FORMATS.md section 7): `qwen3` to the template the
Qwen3 checkpoints ship now (`qwen3-hf-current.jinja`; the first-release one renders string contents the
same), `qwen3-2507` to the Qwen3-*-Instruct-2507 template, `qwen2.5` to Qwen2.5-Instruct's. One turn is
`<|im_start|>ROLE\\n` + content (not trimmed) + `<|im_end|>\\n`; there is no BOS.

    <|im_start|>system\\n{system}\\n\\n# Tools\\n\\n...<tools>\\n{tool}\\n...</tools>\\n\\n...</tool_call><|im_end|>\\n
    <|im_start|>user\\n{text}<|im_end|>\\n
    <|im_start|>assistant\\n<think>\\n{reasoning}\\n</think>\\n\\n{text}\\n<tool_call>\\n{call}\\n</tool_call><|im_end|>\\n
    <|im_start|>user\\n<tool_response>\\n{result}\\n</tool_response>\\n<tool_response>...<|im_end|>\\n
    <|im_start|>assistant\\n                                       add_generation_prompt (+ an empty think
                                                                 block with qwen3's enable_thinking=False)

- System turn: with tools it is always written: `{system}\\n\\n` (the first message's text when it is a
  system message, else qwen2.5's "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
  else nothing), then TOOLS_PREAMBLE, "\\n" + json.dumps(tool) per tool (the whole object, key order kept,
  ", "/": " separators, non-ASCII kept) and TOOLS_POSTAMBLE. Without tools: qwen3 and qwen3-2507 write a
  system turn only for a system message, qwen2.5 always (with its default text). A
  system message that is not first is an ordinary turn. `tools=[]` means no tools.
- Calls: content, then per call `<tool_call>\\n{"name": "NAME", "arguments": ARGS}\\n</tool_call>`, with a
  "\\n" before the first call when the content is not empty and before every later one (parallel calls).
  ARGS is json.dumps(arguments) of a dict; a string is written as it is by the qwen3 templates (pass a
  JSON object's text) and refused for qwen2.5 (its template would double-encode it). The name is written
  unescaped.
- Tool results: a run of consecutive tool messages is ONE user turn, one `<tool_response>` block each. A
  string result is written as it is; any other result as json.dumps (the templates would write "" or a
  Python repr: an application serialises results to JSON first). No tool name or id is written.
- Reasoning (an assistant message's "reasoning", else its "reasoning_content", HF's name), qwen3 only:
  the last query is the last user message (tool results are user turns in the text but not queries; the
  template also skips user messages wrapped in <tool_response>, which minifc refuses as control tokens).
  An assistant message after it gets `<think>\\n` + reasoning.strip("\\n") + `\\n</think>\\n\\n` before
  its content (content.lstrip("\\n")) when it has reasoning or is the conversation's last message (then
  the block may be empty: `<think>\\n\\n</think>\\n\\n`). Every other assistant message is written without
  its reasoning: the template drops it, so it is not prefix-preserving across user queries. qwen3-2507
  and qwen2.5 have no place for reasoning and never write it.
- Refused with a ValueError naming the message: roles other than system, user, assistant and tool (the
  templates would drop a "developer" message silently), non-string system/user/assistant content or
  reasoning, an assistant message with neither content nor calls, a tool result without content,
  malformed calls, and (kit.SpanWriter) any added token of the Qwen tokenizers inside data
  (`<|im_end|>`, `<tool_call>`, `<think>`, ...): the tokenizer would read it as the control token.

Labels (minifc/masking.py decides what is trained): `<|im_start|>ROLE\\n` is the HEADER of its message (of
the first tool message for a tool-results turn); an assistant message's think block is its REASONING, its
content its TEXT, its calls (with the "\\n" before them) its CALLS, `<|im_end|>` its END; the "\\n" after
`<|im_end|>` is template glue (generation stops at `<|im_end|>`). A system, user or tool message's own
text is its TEXT, the turn's `<|im_end|>` the END of its last message. Qwen's tokenizer merges a newline
into trailing punctuation ("}\\n", ".\\n\\n" are one token), so the "\\n\\n" after the system text and the
"\\n" before `</tool_response>` belong to that message's TEXT, keeping `--train-on system/tool` on token
boundaries. Everything else (tool declarations, `<tool_response>` wrappers, the qwen2.5 default system
text) is the template's.
Known limit: assistant content starting with a newline right after `<|im_start|>assistant\\n` (no think
block) tokenizes as one "\\n\\n" token across the header; encode refuses it (SpanAlignmentError, counted).

parse(): cuts the text at `<|im_end|>` or `<|endoftext|>`; an optional leading reasoning block ends at the
first `</think>` (a leading `<think>` is optional, as when a prompt opened it) and is returned under
"reasoning" (stripped of newlines; absent when empty); the content is the text before the first
`<tool_call>`, stripped; then only `<tool_call>` JSON blocks separated by whitespace may follow, each
{"name": str, "arguments": object (or a JSON string of one)}. Malformed JSON, a missing name or
arguments, an unclosed block, text after the calls, or a `<think>` never closed give `parse_error`,
with the whole text as content and no calls. parse never raises.
"""

import json
from dataclasses import dataclass

from minifc.chat import ChatFormat
from minifc.chat.kit import Rendered, SpanWriter, control_pattern, parse_result, read_call, until_stop
from minifc.masking import CALLS, END, HEADER, REASONING, TEMPLATE, TEXT

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
EMPTY_THINK = f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\n"
STOP_TOKENS = (IM_END, END_OF_TEXT)

QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
TOOLS_PREAMBLE = ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                  "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
TOOLS_POSTAMBLE = ("\n</tools>\n\nFor each function call, return a json object with function name and arguments "
                   "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
                   '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')

# Every added token of the Qwen2.5 and Qwen3 tokenizers: each string becomes its control id wherever it
# appears, so data holding one could forge a turn, a call or a tool response. Data may not contain them.
ADDED_TOKENS = (END_OF_TEXT, IM_START, IM_END, "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
                "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", CALL_OPEN, CALL_CLOSE, "<|fim_prefix|>",
                "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
                RESPONSE_OPEN, RESPONSE_CLOSE, THINK_OPEN, THINK_CLOSE)
CONTROL = control_pattern(ADDED_TOKENS)


@dataclass(frozen=True)
class Variant:
    thinking: bool                  # qwen3: think blocks after the last query; enable_thinking
    default_system: str | None      # qwen2.5: the system text when there is no system message
    string_arguments: bool          # the qwen3 templates write a string `arguments` as is


QWEN3 = Variant(thinking=True, default_system=None, string_arguments=True)
QWEN3_2507 = Variant(thinking=False, default_system=None, string_arguments=True)
QWEN25 = Variant(thinking=False, default_system=QWEN25_SYSTEM, string_arguments=False)


# ----------------------------------------------------------------------------------------------- render

def _string(message: dict, key: str, index: int) -> str:
    value = message.get(key)
    if not isinstance(value, str):
        raise ValueError(f"messages[{index}].{key} (role {message.get('role')!r}) must be a string, got "
                         f"{type(value).__name__}; write the text as a string")
    return value


def _check_roles(messages: list[dict]):
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"messages[{index}]: role {role!r} is not one the Qwen templates write (they would "
                             "drop the message); use system, user, assistant or tool")
        if message.get("tool_calls") and role != "assistant":
            raise ValueError(f"messages[{index}]: only assistant messages may have tool_calls, not {role!r}")


def _write_system(out: SpanWriter, messages: list[dict], tools, variant: Variant):
    """The system turn: the system message's text (or qwen2.5's default), then the tool declarations."""
    system = 0 if messages and messages[0]["role"] == "system" else None
    text = _string(messages[0], "content", 0) if system is not None else variant.default_system
    if text is None and not tools:
        return
    out.write(f"{IM_START}system\n", HEADER, system)
    if text is not None:
        # the tokenizer merges the glue into trailing punctuation: label it with the text (if there is any)
        glue = "\n\n" if tools else ""
        out.write(text + glue, TEXT if system is not None and text else TEMPLATE, system)
    if tools:
        out.write(TOOLS_PREAMBLE + "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)
                  + TOOLS_POSTAMBLE)
    out.write(IM_END, END, system)
    out.write("\n")


def _arguments_text(arguments, where: str, variant: Variant) -> str:
    if isinstance(arguments, dict):
        return json.dumps(arguments, ensure_ascii=False)
    if isinstance(arguments, str) and variant.string_arguments:
        return arguments  # the template writes a string as it is: the JSON text of the arguments object
    raise ValueError(f"{where}.function.arguments must be a dict, got {type(arguments).__name__}; "
                     "decode a JSON string with json.loads first")


def _calls_text(message: dict, index: int, content: str, variant: Variant) -> str:
    blocks = []
    for i, call in enumerate(message.get("tool_calls") or []):
        where = f"messages[{index}].tool_calls[{i}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise ValueError(f'{where} must be {{"type": "function", "function": {{"name": ..., '
                             '"arguments": {...}}}')
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}.function.name must be a non-empty string")
        arguments = _arguments_text(function.get("arguments"), where, variant)
        separator = "\n" if (i == 0 and content) or i > 0 else ""
        blocks.append(f'{separator}{CALL_OPEN}\n{{"name": "{name}", "arguments": {arguments}}}\n{CALL_CLOSE}')
    return "".join(blocks)


def _write_assistant(out: SpanWriter, message: dict, index: int, think: bool, variant: Variant):
    """One assistant turn; `think`: write the think block (qwen3, after the last query, see the docstring)."""
    content = message.get("content")
    if content is None and not message.get("tool_calls"):
        raise ValueError(f"messages[{index}]: assistant message has neither content nor tool_calls")
    content = "" if content is None else _string(message, "content", index)
    calls = _calls_text(message, index, content, variant)
    out.write(f"{IM_START}assistant\n", HEADER, index)
    if think:
        reasoning = _reasoning(message, index).strip("\n")
        out.write(f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n", REASONING, index)
        out.write(content.lstrip("\n"), TEXT, index)
    else:
        out.write(content, TEXT, index)
    out.write(calls, CALLS, index)
    out.write(IM_END, END, index)
    out.write("\n")


def _reasoning(message: dict, index: int) -> str:
    """The message's "reasoning", else its "reasoning_content" (the name HF templates and vLLM use)."""
    key = "reasoning" if message.get("reasoning") is not None else "reasoning_content"
    return "" if message.get(key) is None else _string(message, key, index)


def _write_tool_result(out: SpanWriter, messages: list[dict], index: int):
    """One `<tool_response>` block; consecutive results share one user turn."""
    content = messages[index].get("content")
    if content is None:
        raise ValueError(f"messages[{index}]: tool result has no content; write the result as a string or JSON value")
    body = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    if index == 0 or messages[index - 1]["role"] != "tool":
        out.write(f"{IM_START}user", HEADER, index)
    out.write(f"\n{RESPONSE_OPEN}\n")
    out.write(body + "\n", TEXT, index)  # with the newline the tokenizer merges into "}" (one token "}\n")
    out.write(RESPONSE_CLOSE)
    if index + 1 == len(messages) or messages[index + 1]["role"] != "tool":
        out.write(IM_END, END, index)
        out.write("\n")


def _render(messages: list[dict], tools, add_generation_prompt: bool, variant: Variant,
            enable_thinking: bool = True) -> Rendered:
    out = SpanWriter(messages, tools, CONTROL)
    _check_roles(messages)
    tools = tools or None
    _write_system(out, messages, tools, variant)
    # qwen3: the last user message (without one, the template's default: the last message)
    last_query = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=len(messages) - 1)
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "system" and index == 0:
            continue  # written in the system turn
        if role in ("system", "user"):
            out.write(f"{IM_START}{role}\n", HEADER, index)
            out.write(_string(message, "content", index), TEXT, index)
            out.write(IM_END, END, index)
            out.write("\n")
        elif role == "assistant":
            think = variant.thinking and index > last_query and (
                index == len(messages) - 1 or bool(_reasoning(message, index)))
            _write_assistant(out, message, index, think, variant)
        else:
            _write_tool_result(out, messages, index)
    if add_generation_prompt:
        out.write(f"{IM_START}assistant\n")
        if variant.thinking and enable_thinking is False:
            out.write(EMPTY_THINK)
    return out.rendered()


def render_qwen3(messages: list[dict], tools: list[dict] | None = None, add_generation_prompt: bool = False,
                 enable_thinking: bool = True) -> Rendered:
    """qwen3 (see the module docstring); enable_thinking=False opens the generation with an empty think block."""
    return _render(messages, tools, add_generation_prompt, QWEN3, enable_thinking)


def render_qwen3_2507(messages: list[dict], tools: list[dict] | None = None,
                      add_generation_prompt: bool = False) -> Rendered:
    """qwen3-2507: qwen3 without reasoning (the Instruct-2507 template)."""
    return _render(messages, tools, add_generation_prompt, QWEN3_2507)


def render_qwen25(messages: list[dict], tools: list[dict] | None = None,
                  add_generation_prompt: bool = False) -> Rendered:
    """qwen2.5: qwen3-2507 with a default system prompt; string arguments refused."""
    return _render(messages, tools, add_generation_prompt, QWEN25)


# ------------------------------------------------------------------------------------------------ parse

def _call_from_json(body: str, number: int) -> dict:
    """One `<tool_call>` body -> canonical tool call; ValueError says what is wrong with it."""
    obj = json.loads(body)
    if not isinstance(obj, dict):
        raise ValueError(f"call {number} is a JSON {type(obj).__name__}, not an object")
    name, arguments = obj.get("name"), obj.get("arguments")
    if not isinstance(name, str) or not name:
        raise ValueError(f'call {number} has no "name" string')
    return read_call(name, arguments, number)


def _calls(text: str) -> list[dict]:
    """`<tool_call>` blocks separated by whitespace, from the start of `text` to its end."""
    calls, position = [], 0
    while position < len(text):
        if not text.startswith(CALL_OPEN, position):
            raise ValueError(f"text after the tool calls: {text[position:][:40]!r}")
        end = text.find(CALL_CLOSE, position)
        if end < 0:
            raise ValueError(f"{CALL_OPEN} of call {len(calls) + 1} is never closed by {CALL_CLOSE}")
        calls.append(_call_from_json(text[position + len(CALL_OPEN):end], len(calls) + 1))
        position = len(text) - len(text[end + len(CALL_CLOSE):].lstrip())
    return calls


def parse(generated_text: str) -> dict:
    """What the model generated after `<|im_start|>assistant\\n` -> {"role", "content", "tool_calls",
    "parse_error"} (+ "reasoning" when there is some). Never raises on malformed output."""
    text, reasoning = until_stop(generated_text, STOP_TOKENS), None
    if THINK_CLOSE in text:
        thought, _, text = text.partition(THINK_CLOSE)
        thought = thought.lstrip()
        reasoning = thought.removeprefix(THINK_OPEN).strip("\n") or None
        text = text.lstrip("\n")
    elif THINK_OPEN in text:
        return parse_result(text.strip() or None, [], f"malformed reasoning: {THINK_OPEN} is never closed by "
                                                      f"{THINK_CLOSE}")
    start = text.find(CALL_OPEN)
    if start < 0:
        error = f"malformed tool call: {CALL_CLOSE} without {CALL_OPEN}" if CALL_CLOSE in text else None
        return parse_result(text.strip() or None, [], error, reasoning)
    try:
        calls = _calls(text[start:])
    except (ValueError, RecursionError) as error:  # json.JSONDecodeError is a ValueError
        return parse_result(text.strip() or None, [], f"malformed tool call: {error}", reasoning)
    return parse_result(text[:start].strip() or None, calls, None, reasoning)


QWEN_CONTROL = (IM_START, IM_END, CALL_OPEN, CALL_CLOSE)
FORMAT_QWEN3 = ChatFormat(name="qwen3", render=render_qwen3, parse=parse, stop_tokens=STOP_TOKENS,
                          control_tokens=QWEN_CONTROL + (RESPONSE_OPEN, RESPONSE_CLOSE, THINK_OPEN, THINK_CLOSE),
                          template="qwen3.jinja")  # minifc's own: non-string results as JSON (as are the next two)
FORMAT_QWEN3_2507 = ChatFormat(name="qwen3-2507", render=render_qwen3_2507, parse=parse, stop_tokens=STOP_TOKENS,
                               control_tokens=QWEN_CONTROL + (RESPONSE_OPEN, RESPONSE_CLOSE),
                               template="qwen3-2507.jinja")
# Qwen2.5's tokenizer has no <tool_response> token: the template's wrappers are ordinary text there
FORMAT_QWEN25 = ChatFormat(name="qwen2.5", render=render_qwen25, parse=parse, stop_tokens=STOP_TOKENS,
                           control_tokens=QWEN_CONTROL, template="qwen2.5.jinja")
