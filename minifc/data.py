"""Examples: the canonical schema (OpenAI / Hugging Face chat layout), loading, validation, converters.

(Foundation: the Example type only; loading, validation, converters and built-in data land with the
data issue.)
"""

from dataclasses import dataclass, field
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUILTIN_TRAIN = DATA_DIR / "train.jsonl"
BUILTIN_TEST = DATA_DIR / "test.jsonl"


@dataclass
class Example:
    """One conversation. `tools` are normalised to {"type": "function", "function": {name, description,
    parameters}}; assistant tool-call `arguments` are dicts. A message may carry "train": true/false to
    override the default masking rule. `location` ("file:line") is where the example came from."""
    messages: list[dict]
    tools: list[dict] = field(default_factory=list)
    category: str | None = None
    location: str = ""
