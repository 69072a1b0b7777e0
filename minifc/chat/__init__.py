"""Chat formats: one module per prompt format, each with `render()` and `parse()` side by side.

    fmt = get_format("llama3.2")
    fmt.render(messages, tools=None, add_generation_prompt=False) -> Rendered(text, pieces, messages)
    fmt.parse(generated_text) -> {"role": "assistant", "content": str | None, "tool_calls": [...],
                                  "parse_error": str | None, "reasoning": str | None}

A renderer writes the exact text of the format through `kit.SpanWriter`, labelling every piece with
what it is (role header, a message's text, its calls, the token that ends its turn, the template's own
text) and which message it came from. It never decides what is trained: minifc/masking.py does, from
the labels (`rendered.spans` under the default rule, `rendered.trained_spans(train_on)` otherwise).
`parse` never raises on malformed model output: it returns `parse_error` set to a message, which
evaluation counts as invalid syntax. What formats share (the writer, the refusal of control tokens
inside data, the canonical tool-call dict, the parse result) is in `kit.py`.
"""

import importlib
from dataclasses import dataclass
from typing import Callable

from minifc.chat.kit import Rendered  # noqa: F401 (what render() returns; re-exported)


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
    "gemma4": ("gemma4", "FORMAT"),
    "gemma4-31b": ("gemma4", "FORMAT_31B"),
    "llama3.1": ("llama3", "LLAMA31"),
    "llama3.2": ("llama3", "LLAMA32"),
    "llama3": ("llama3", "LLAMA32"),
    "qwen3": ("qwen", "FORMAT_QWEN3"),
    "qwen3-2507": ("qwen", "FORMAT_QWEN3_2507"),
    "qwen2.5": ("qwen", "FORMAT_QWEN25"),
}


def get_format(name: str) -> ChatFormat:
    if name not in FORMATS:
        raise ValueError(f"unknown chat format {name!r}; known formats: {', '.join(FORMATS)}")
    module_name, attribute = FORMATS[name]
    module = importlib.import_module(f"minifc.chat.{module_name}")
    return getattr(module, attribute)
