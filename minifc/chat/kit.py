"""The renderer kit: what every chat format shares, so that a format is its render() and parse() only.

    tool_call(name, arguments)          the canonical call {"type": "function", "function": {...}}
    function_tool(function)             the canonical tool {"type": "function", "function": {...}}
    parse_result(content, calls, error) what every parse() returns
"""


def tool_call(name, arguments) -> dict:
    """The canonical tool call, as data, converters, parsers and the checker all write it."""
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def function_tool(function: dict) -> dict:
    """The canonical tool: a {name, description, parameters} function in its {"type": "function"} wrapper."""
    return {"type": "function", "function": function}


def parse_result(content: str | None, calls: list[dict], error: str | None) -> dict:
    """What parse() returns: the assistant message it read, and a parse error (None when well formed)."""
    return {"role": "assistant", "content": content, "tool_calls": calls, "parse_error": error}
