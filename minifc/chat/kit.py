"""The renderer kit: what every chat format shares, so that a format is its render() and parse() only.

    out = SpanWriter(messages, tools, control)   refuses data holding one of the format's control tokens
    out.write(text, kind, message_index)         one labelled piece (kinds: minifc/masking.py)
    out.rendered() -> Rendered                   text + labelled pieces; .spans: the trained ranges
    tool_call(name, arguments)                   the canonical call {"type": "function", "function": {...}}
    function_tool(function)                      the canonical tool {"type": "function", "function": {...}}
    parse_result(content, calls, error, reasoning=None)   what every parse() returns
    until_stop(text, stops)                      generated text cut at the first stop string

A renderer labels each piece with what it is and which message it came from; it never decides what
is trained. minifc/masking.py does, from the labels (`Rendered.trained_spans(train_on)`).
"""

import json
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from minifc.masking import DEFAULT, TEMPLATE, TrainOn, trained_spans


class Piece(NamedTuple):
    start: int
    end: int
    kind: str                          # masking.TEMPLATE, HEADER, TEXT, REASONING, CALLS or END
    message: int | None                # index of the message it belongs to (None: the template's own text)
    also: tuple[str, int] | None = None  # a second label of the same text (FunctionGemma's shared stop token)


@dataclass
class Rendered:
    text: str
    pieces: list[Piece]
    # the messages rendered: the masking rule reads their roles and "train" flags (not part of equality)
    messages: list[dict] = field(compare=False, repr=False)

    def trained_spans(self, train_on: TrainOn = DEFAULT, only: set[int] | None = None) -> list[tuple[int, int]]:
        """The character ranges [start, end) of `text` trained under `train_on`, for the messages in
        `only` (None: all)."""
        return trained_spans(self.pieces, self.messages, train_on, only)

    @property
    def spans(self) -> list[tuple[int, int]]:
        """The trained ranges under the default rule (what the assistant says, and its end token)."""
        return self.trained_spans()


def control_pattern(tokens) -> re.Pattern:
    """A regex matching any of the control strings `tokens` (longest first)."""
    return re.compile("|".join(re.escape(token) for token in sorted(set(tokens), key=len, reverse=True)))


def refuse_control_tokens(value, where: str, control: re.Pattern):
    """Raise ValueError if a string anywhere in `value` (keys included) holds a control token: the
    tokenizer would read it as the real token, and a data row could forge a turn and get it trained."""
    if isinstance(value, str):
        if match := control.search(value):
            raise ValueError(f"{where} contains the control token {match.group()!r}, which the tokenizer would "
                             "read as a real control token (ending the turn, say); remove it from the data")
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_control_tokens(key, f"{where} key", control)
            refuse_control_tokens(item, f"{where}.{key}", control)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            refuse_control_tokens(item, f"{where}[{i}]", control)


class SpanWriter:
    """Builds a Rendered piece by piece, so that text and labels cannot drift apart. It first refuses
    any control token inside the data (messages and tools): every format gets that check here."""

    def __init__(self, messages: list[dict], tools: list[dict] | None, control: re.Pattern):
        refuse_control_tokens(messages, "messages", control)
        refuse_control_tokens(tools or [], "tools", control)
        self.messages = messages
        self.parts: list[str] = []
        self.pieces: list[Piece] = []
        self.length = 0

    def write(self, text: str, kind: str = TEMPLATE, message: int | None = None, also=None):
        self.pieces.append(Piece(self.length, self.length + len(text), kind, message, also))
        self.parts.append(text)
        self.length += len(text)

    def rendered(self) -> Rendered:
        return Rendered("".join(self.parts), self.pieces, self.messages)


def tool_call(name, arguments) -> dict:
    """The canonical tool call, as data, converters, parsers and the checker all write it."""
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def read_call(name: str, arguments, number: int, field: str = "arguments") -> dict:
    """The canonical call of a call read back from JSON output; arguments may be JSON-encoded a second time
    (some fine-tunes do). ValueError when they are not a JSON object (`field` names them as the format does)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    if not isinstance(arguments, dict):
        raise ValueError(f'call {number} ({name}): "{field}" must be a JSON object')
    return tool_call(name, arguments)


def function_tool(function: dict) -> dict:
    """The canonical tool: a {name, description, parameters} function in its {"type": "function"} wrapper."""
    return {"type": "function", "function": function}


def parse_result(content: str | None, calls: list[dict], error: str | None, reasoning: str | None = None) -> dict:
    """What parse() returns: the assistant message it read (with its reasoning, None where the format has
    none or the model gave none), and a parse error (None when well formed)."""
    return {"role": "assistant", "content": content, "tool_calls": calls, "parse_error": error,
            "reasoning": reasoning}


def until_stop(text: str, stops) -> str:
    """`text` up to the first of the stop strings (the end of a generated turn)."""
    return text[:min((i for i in (text.find(stop) for stop in stops) if i >= 0), default=len(text))]
