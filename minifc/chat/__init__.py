"""Chat formats: one module per prompt format, each with `render()` and `parse()` side by side.

    fmt = get_format("llama3.2")
    fmt.render(messages, tools=None, add_generation_prompt=False) -> Rendered(text, spans)
    fmt.parse(generated_text) -> {"role": "assistant", "content": str | None, "tool_calls": [...],
                                  "parse_error": str | None}

`spans` are the character ranges of `text` that are trained on: what the assistant produces, and the
token(s) that end its turn (the masking rule in DESIGN.md). `parse` never raises on malformed model
output: it returns `parse_error` set to a message, which evaluation counts as invalid syntax.
"""

import importlib
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Rendered:
    text: str
    spans: list[tuple[int, int]] = field(default_factory=list)  # trained character ranges [start, end)


class SpanWriter:
    """Builds a Rendered piece by piece: each piece of text is trained or not, and adjacent trained
    pieces make one span. Every renderer writes through one of these, so text and spans cannot drift."""

    def __init__(self):
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[tuple[int, int]] = []

    def write(self, text: str, trained: bool = False):
        if trained and text:
            if self.spans and self.spans[-1][1] == self.length:  # extend a span that ends right here
                self.spans[-1] = (self.spans[-1][0], self.length + len(text))
            else:
                self.spans.append((self.length, self.length + len(text)))
        self.parts.append(text)
        self.length += len(text)

    def rendered(self) -> Rendered:
        return Rendered("".join(self.parts), self.spans)


@dataclass(frozen=True)
class ChatFormat:
    name: str
    render: Callable[..., Rendered]
    parse: Callable[[str], dict]
    stop_tokens: tuple[str, ...]     # control strings that end a generated assistant turn
    control_tokens: tuple[str, ...]  # every control string the format writes (each must be one token)


# format name -> (module in minifc.chat, attribute holding its ChatFormat)
FORMATS = {
    "functiongemma": ("functiongemma", "FORMAT"),
    "gemma3": ("gemma3", "FORMAT"),
    "llama3.1": ("llama3", "LLAMA31"),
    "llama3.2": ("llama3", "LLAMA32"),
    "llama3": ("llama3", "LLAMA32"),
}


def get_format(name: str) -> ChatFormat:
    if name not in FORMATS:
        raise ValueError(f"unknown chat format {name!r}; known formats: {', '.join(FORMATS)}")
    module_name, attribute = FORMATS[name]
    module = importlib.import_module(f"minifc.chat.{module_name}")
    return getattr(module, attribute)
