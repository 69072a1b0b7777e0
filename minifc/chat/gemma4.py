"""Gemma 4 IT (E2B, E4B, 31B): render() and parse() side by side, FunctionGemma's successor.

render() writes what Google's current template writes (FORMATS.md section 8; `gemma-4-E2B-E4B-it.jinja` for
`gemma4`, `gemma-4-31B-26B-A4B-it.jinja` for `gemma4-31b`), piece by piece, and labels every piece. A
training sample with thinking on:

    <bos><|turn>system\\n<|think|>\\nYou are helpful.<|tool>declaration:get_weather{...}<tool|><turn|>\\n
    <|turn>user\\nWeather in Paris?<turn|>\\n
    <|turn>model\\n[<|channel>thought\\nI should call it.\\n<channel|><|tool_call>call:get_weather{city:<|"|>Paris<|"|>}
    <tool_call|><|tool_response>]response:get_weather{temperature:21}<tool_response|>[Sunny, 21 °C.<turn|>]\\n

Brackets mark what is trained by default. Tool results are not turns: they sit inside the model turn,
right after the calls, and the model's answer continues that same turn. The model stops after its calls
by emitting `<|tool_response>` (a stop id of the checkpoint's generation config, [1, 106, 50] = `<eos>`,
`<turn|>`, `<|tool_response>`), so the first `<|tool_response>` after calls is the caller's END; the
result `response:NAME{...}` is the tool message's TEXT and its wrappers (`<tool_response|>`, further
`<|tool_response>` openers) the template's, so the default rule never trains a tool result. Headers are
HEADER, message text TEXT, the thought channel (`<|channel>thought\\n` + reasoning + `\\n<channel|>`)
REASONING, calls CALLS, `<turn|>` the END of the message whose text it closes (the `\\n` after it is glue).

Thinking (`enable_thinking=True`) puts `<|think|>\\n` at the top of the system turn. An assistant message's
`reasoning` (or `reasoning_content`) is written only where the template writes it: for messages after the
last user message (or, with `preserve_thinking=True`, for any message with calls); elsewhere it is dropped,
as in the template. So a conversation is not always a prefix of its continuation: render() is exact for
every prefix, and encode.py decides which turns a render shows as served. After tool results with thinking
on, the template's generation prompt ends with the thought opener `<|channel>thought\n`; in a training
render that opener is part of the next message's REASONING (trained: it is the opener the model writes
itself at the start of a turn), and parse() reads a thought whose opener the prompt wrote. The two
variants differ only in the generation prompt: with thinking off, `gemma4-31b` appends an empty thought channel
`<|channel>thought\\n<channel|>` after `<|turn>model\\n`. The template's render of that model turn has no
such channel, so its prompt would not be how its render of the turn begins and the turn would have no served
form (encode.py refuses it): `gemma4-31b` therefore also writes the empty channel (template text, untrained)
at the start of the LAST message when that is a model turn of its own, thinking off, no reasoning shown and
no generation prompt asked (a training render): exactly the prompt that served it. Earlier turns render as the template renders them (encode.py trains
each turn in its own prefix, as for reasoning). This is the one place `gemma4-31b` differs from its template.

The template's pitfalls, decided here:
- Results are named by matching the call's `id` to the tool message's `tool_call_id`. Without ids the
  template matches None == None, naming every result after the LAST call of the turn. minifc names such a
  result after the tool message's `name`, else after the first call it has not yet answered, in order:
  what the template renders once calls and results carry matching ids.
- A dict result (minifc's data stores results as objects) makes the template raise in OpenAI style; minifc
  writes it as `response:NAME{key:value,...}`, what the template writes for Google's own form
  (`tool_responses` on the assistant message, as in Google's notebook). A string result is
  `response:NAME{value:<|"|>...<|"|>}` as in the template.
- Text on a message that also has calls: the template writes it after the calls and after their results
  (`<tool_call|><|tool_response>...<tool_response|>Let me check.<turn|>`), Google's notebook convention,
  where such content is the answer to the results. In OpenAI-style data it is what the model said before
  calling, so minifc writes it before the calls, exactly as the template writes the text and the calls as
  two consecutive assistant messages (`<|turn>model\nLet me check.<|tool_call>...`). In the template's
  place it would also break the turn as served (the text would move past results the model had not seen,
  and the generation prompt after them would open no model turn). parse() reads text before or after calls.
- Refused with a clear error (the template would render something broken or nothing): control tokens in
  the data (including a thought channel inside content: put it in `reasoning`), non-text content parts,
  arguments that are not an object, parameters without a "type", a tool message that answers no call,
  `tool_responses` on an assistant message (Google's notebook form: write them as tool messages, which
  render identically).
"""

from functools import partial

from minifc.chat import ChatFormat
from minifc.chat.gemma4_syntax import (CALL, CALL_END, QUOTE, ParseError, Reader, fields, format_call,
                                       format_declaration, format_value)
from minifc.chat.kit import Rendered, SpanWriter, control_pattern, parse_result, until_stop
from minifc.masking import CALLS, END, HEADER, REASONING, TEXT

BOS, EOS = "<bos>", "<eos>"
TURN, TURN_END = "<|turn>", "<turn|>"
TOOL, TOOL_END = "<|tool>", "<tool|>"
RESPONSE, RESPONSE_END = "<|tool_response>", "<tool_response|>"
THINK = "<|think|>"
CHANNEL, CHANNEL_END = "<|channel>", "<channel|>"
CONTROL_TOKENS = (BOS, TURN, TURN_END, TOOL, TOOL_END, CALL, CALL_END, RESPONSE, RESPONSE_END, QUOTE, THINK,
                  CHANNEL, CHANNEL_END)
STOP_TOKENS = (TURN_END, RESPONSE, EOS)
# Refused inside data: every special token of the tokenizer (media placeholders included: text only here).
_CONTROL = control_pattern(CONTROL_TOKENS + (EOS, "<pad>", "<unk>", "<mask>", "<|image>", "<image|>", "<|audio>",
                                            "<audio|>", "<|image|>", "<|audio|>", "<|video|>"))
_EMPTY_THOUGHT = CHANNEL + "thought\n" + CHANNEL_END  # the 31B generation prompt with thinking off

# ---------------------------------------------------------------------------------------------------
# render()

def _content_text(message: dict, where: str, trim: bool = True, part_end: str = "") -> str:
    """A message's text as the template writes it: a string (trimmed), or its text parts, each (trimmed and)
    followed by `part_end` (the system turn's " "); nothing when there is no content."""
    content = message.get("content")
    if isinstance(content, str):
        return content.strip() if trim else content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise ValueError(f"{where}: content part {part!r} is not a {{\"type\": \"text\", \"text\": ...}} "
                                 "part; minifc renders text only")
            parts.append((part["text"].strip() if trim else part["text"]) + part_end)
        return "".join(parts)
    if content is not None:
        raise ValueError(f"{where}: content must be a string or a list of text parts, got {type(content).__name__}")
    return ""


def _tool_result(message: dict, name: str, where: str) -> str:
    """`response:NAME{...}` for one tool message (the template's format_tool_response_block, without its
    wrappers): a dict as its fields, text as {value:<|"|>...<|"|>}, anything else as {value:...}."""
    content = message.get("content")
    if isinstance(content, dict):
        return "response:" + name + "{" + fields(content) + "}"  # Google's tool_responses form (see docstring)
    if isinstance(content, list):
        content = _content_text(message, where, trim=False)  # text parts joined untrimmed, as the template does
    elif not isinstance(content, (str, int, float, type(None))):
        raise ValueError(f"{where}: tool content must be a string, an object or a list of text parts, "
                         f"got {type(content).__name__}")
    return "response:" + name + "{value:" + format_value(content, escape_keys=False) + "}"


def _result_names(calls: list[dict], results: list[dict]) -> list[str]:
    """The name each result is written under: the call whose `id` is its `tool_call_id` (the template's
    rule), else its own `name`, else the first call not answered yet (see the module docstring)."""
    by_id = {call.get("id"): call["function"]["name"] for call in calls if call.get("id") is not None}
    pending = [call["function"]["name"] for call in calls]
    names = []
    for result in results:
        name = by_id.get(result.get("tool_call_id")) or result.get("name") or (pending[0] if pending else "unknown")
        if name in pending:
            pending.remove(name)
        names.append(name)
    return names


def _write_results(out: SpanWriter, messages: list[dict], caller: int, calls: list[dict]) -> int:
    """Write the tool messages right after messages[caller] inside its model turn; returns how many."""
    end = caller + 1
    while end < len(messages) and messages[end]["role"] == "tool":
        end += 1
    indices = range(caller + 1, end)
    for index, name in zip(indices, _result_names(calls, [messages[i] for i in indices])):
        if index == caller + 1:
            out.write(RESPONSE, END, caller)  # the first opener is the caller's stop token
        else:
            out.write(RESPONSE)
        out.write(_tool_result(messages[index], name, f"messages[{index}] (tool)"), TEXT, index)
        out.write(RESPONSE_END)
    return len(indices)


def render(messages: list[dict], tools: list[dict] | None = None, add_generation_prompt: bool = False,
           enable_thinking: bool = False, preserve_thinking: bool = False, large: bool = False) -> Rendered:
    """The official Gemma 4 template's text, labelled piece by piece (see the module docstring).
    large: the 31B/26B-A4B template (its generation prompt adds an empty thought channel, thinking off)."""
    out = SpanWriter(messages, tools, _CONTROL)
    out.write(BOS)
    system = 0 if messages and messages[0]["role"] in ("system", "developer") else None
    previous = None  # what the last message ended with: None, "tool_call" or "tool_response"
    if enable_thinking or tools or system is not None:
        out.write(TURN + "system\n", HEADER, system)
        if enable_thinking:
            out.write(THINK + "\n")
        if system is not None:
            out.write(_content_text(messages[0], "messages[0]", part_end=" "), TEXT, 0)
        for tool in tools or []:
            out.write(TOOL + format_declaration(tool["function"]) + TOOL_END)
        out.write(TURN_END, END, system)
        out.write("\n")
    first = 1 if system is not None else 0
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user" and i >= first), default=-1)
    answered = set()  # tool messages written after the calls they answer
    previous_role = None  # role of the last non-tool message
    for index in range(first, len(messages)):
        message, where = messages[index], f"messages[{index}] ({messages[index]['role']})"
        if message["role"] == "tool":
            if index not in answered:
                raise ValueError(f"{where}: a tool message must follow an assistant message with tool_calls "
                                 "(the template drops it silently); fix the order of the messages")
            continue
        if "tool_responses" in message:
            raise ValueError(f"{where}: \"tool_responses\" (Google's notebook form) is not read; write each result "
                             "{\"name\": N, \"response\": R} as a message {\"role\": \"tool\", \"name\": N, "
                             "\"content\": R} after this one, which renders identically")
        role = "model" if message["role"] == "assistant" else message["role"]
        opens_turn = not (role == "model" and previous_role == "assistant")  # else: it continues the model turn
        if opens_turn:
            out.write(TURN + role + "\n", HEADER, index)
        reasoning = message.get("reasoning") or message.get("reasoning_content")
        calls = message.get("tool_calls") or []
        if reasoning and (index > last_user or (preserve_thinking and calls)):
            if not isinstance(reasoning, str):
                raise ValueError(f"{where}: reasoning must be a string, got {type(reasoning).__name__}")
            out.write(CHANNEL + "thought\n" + reasoning + "\n" + CHANNEL_END, REASONING, index)
        elif (large and not enable_thinking and not add_generation_prompt and opens_turn and role == "model"
              and index == len(messages) - 1):
            out.write(_EMPTY_THOUGHT)  # the 31B prompt that served this last turn (module docstring)
        # Text before the calls, where the data (OpenAI order) and the model put it; the template would put
        # it after the results (module docstring).
        out.write(_content_text(message, where), TEXT, index)
        for call in calls:
            out.write(format_call(call, where), CALLS, index)
        results = _write_results(out, messages, index, calls) if calls else 0
        answered.update(range(index + 1, index + 1 + results))
        previous = "tool_response" if results else "tool_call" if calls else None
        next_role = next((m["role"] for m in messages[index + 1:] if m["role"] != "tool"), None)
        if calls and not results:
            out.write(RESPONSE, END, index)  # the model's stop token after calls that got no result (yet)
        elif role == "model" and next_role == "assistant":
            pass  # the next assistant message continues this model turn
        elif results:
            if next_role is not None:
                out.write(TURN_END + "\n")  # the template closes the turn before the next user turn
        else:
            out.write(TURN_END, END, index)
            out.write("\n")  # glue the model never generates: it stops at <turn|>
        previous_role = message["role"]
    if add_generation_prompt:
        if previous is None:
            out.write(TURN + "model\n")
            if large and not enable_thinking:
                out.write(_EMPTY_THOUGHT)
        elif previous == "tool_response" and enable_thinking:
            out.write(CHANNEL + "thought\n")  # the template's thought cue after tool results
    return out.rendered()


# ---------------------------------------------------------------------------------------------------
# parse(): the inverse for one generated model turn.
#   (<|channel>thought\n REASONING \n<channel|>)? TEXT? (<|tool_call>call:NAME{ARGS}<tool_call|>)* TEXT?
#   (<|tool_response> | <turn|> | <eos>)?
# Text after the calls (the template's place for it) is read too, and joined to any text before them.

def _split_thought(turn: str) -> tuple[str | None, str]:
    """(reasoning, the rest) of a turn. The thought channel's opener may be missing: after tool results
    with thinking on, the prompt ends with `<|channel>thought\\n` and the model continues it."""
    if CHANNEL_END not in turn:
        if turn.startswith(CHANNEL):  # cut off (max_new_tokens) inside the thought
            return turn[len(CHANNEL):].removeprefix("thought\n") or None, ""
        return None, turn
    thought, rest = turn.split(CHANNEL_END, 1)
    if CHANNEL in thought and not thought.startswith(CHANNEL):
        raise ParseError(f"text before the thought channel: {thought[:40]!r}")
    thought = thought.removeprefix(CHANNEL).removeprefix("thought\n").removesuffix("\n")
    return thought or None, rest


def parse(generated_text: str) -> dict:
    """A generated model turn -> {"role": "assistant", "content", "tool_calls", "parse_error", "reasoning"}.
    Never raises on malformed output: parse_error says what is wrong (and tool_calls is then empty)."""
    turn = until_stop(generated_text, STOP_TOKENS)
    reasoning, content = None, None
    try:
        reasoning, rest = _split_thought(turn)
        reader, calls = Reader(rest, rest.find(CALL) if CALL in rest else len(rest)), []
        before = rest[:reader.pos]
        while rest.startswith(CALL, reader.pos):
            calls.append(reader.call())
        after = rest[reader.pos:]
        content = " ".join(part.strip() for part in (before, after) if part.strip()) or None
        for marker in (CALL, CALL_END, CHANNEL, CHANNEL_END):
            if marker in after or marker in before:
                raise ParseError(f"unexpected {marker!r} in the text around the calls: {rest[:60]!r}")
    except (ParseError, ValueError) as error:  # ValueError: a number too long for int()
        return parse_result(content, [], str(error), reasoning)
    return parse_result(content, calls, None, reasoning)


def _format(name: str, large: bool) -> ChatFormat:
    return ChatFormat(name=name, render=partial(render, large=large) if large else render, parse=parse,
                      stop_tokens=STOP_TOKENS, control_tokens=CONTROL_TOKENS,
                      template=name + ".jinja")  # minifc's own: see "The template's pitfalls" above


FORMAT = _format("gemma4", large=False)        # E2B, E4B
FORMAT_31B = _format("gemma4-31b", large=True)  # 31B (and 26B-A4B, whose MoE minifc does not load yet)
