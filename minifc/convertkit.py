"""What the readers of minifc/convert.py and minifc/hermes.py share: their error, JSON / Python-literal
parsing, and the normalisation every reader applies (tools, tool calls, reasoning).

    ConversionError(field, message)              a record a reader cannot turn into an Example
    normalise_tools(tools), normalise_call(call) {"type": "function", "function": ...} shapes, arguments as dicts
    given_reasoning(message, where)              "reasoning", or its alias "reasoning_content"
    take_reasoning(content, reasoning, field)    a leading <think>...</think> of an assistant text -> reasoning

Reasoning (README, "Data"): an assistant message's reasoning is kept as "reasoning". Readers accept it as
"reasoning", as "reasoning_content" (the name Hugging Face templates and vLLM use) or as a <think>...</think>
block that opens the message's text (the agents-course data). Two sources in one message are refused, never
guessed between.
"""

import ast
import json

from minifc.chat.kit import function_tool, tool_call

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


class ConversionError(Exception):
    """A record that a converter cannot turn into an Example; load_examples counts it as skipped."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def require_object(record):
    if not isinstance(record, dict):
        raise ConversionError("record", f"must be a JSON object, got {type(record).__name__}")


def parse_json(text, field):
    """JSON text parsed; anything else (already parsed) as it is."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConversionError(field, f"not valid JSON ({error.msg}): {text.strip()[:80]!r}") from None
    except RecursionError:
        raise ConversionError(field, "JSON nested too deeply to read; flatten it") from None


def parse_literal(text, field):
    """JSON, or failing that a Python literal of JSON values ({'a': True}), as hermes writes some of its dicts."""
    try:
        return parse_json(text, field)
    except ConversionError:
        try:
            value = ast.literal_eval(text.strip())
            json.dumps(value)  # a set, bytes or complex number has no JSON form
            return value
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ConversionError(field, "neither JSON nor a Python literal of JSON values (dicts, lists, strings, "
                                         f"numbers, True, False, None): {text.strip()[:80]!r}") from None


def normalise_tools(tools):
    """Wraps bare {name, description, parameters} tools as {"type": "function", "function": {...}}."""
    tools = parse_json(tools, "tools")
    if not isinstance(tools, list):
        return tools  # validation reports it
    return [function_tool(tool) if isinstance(tool, dict) and "function" not in tool and "name" in tool else tool
            for tool in tools]


def normalise_call(call):
    function = call.get("function", call) if isinstance(call, dict) else None  # a bare {name, arguments} too
    if not isinstance(function, dict):
        return call
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):  # OpenAI API style: arguments as a JSON string
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            pass  # left as a string; validation reports "arguments are not an object"
    return tool_call(function.get("name"), arguments)


def given_reasoning(message: dict, where: str):
    """The message's "reasoning", else its "reasoning_content"; None when neither is given (null counts as
    not given). Both, with different values, are refused."""
    reasoning, alias = message.get("reasoning"), message.get("reasoning_content")
    if reasoning is not None and alias is not None and reasoning != alias:
        raise ConversionError(f"{where}.reasoning_content", "differs from the message's \"reasoning\"; keep one "
                                                            "of the two")
    return reasoning if reasoning is not None else alias


def take_reasoning(content, reasoning, field: str):
    """(reasoning, content) of an assistant message whose text may open with <think>...</think>: the block's
    text, stripped, becomes the reasoning (an empty block gives None) and the content keeps what follows
    without its leading whitespace. A text without a leading block comes back unchanged. A block next to
    `reasoning` already given, or a <think> never closed, is a ConversionError naming `field`."""
    if not isinstance(content, str) or not content.lstrip().startswith(THINK_OPEN):
        return reasoning, content
    if reasoning is not None:
        raise ConversionError(field, "opens with a <think> block, but the message also has \"reasoning\" (or "
                                     "\"reasoning_content\"); keep one of the two")
    inside, closed, after = content.lstrip()[len(THINK_OPEN):].partition(THINK_CLOSE)
    if not closed:
        raise ConversionError(field, f"opens {THINK_OPEN} but never closes it; add {THINK_CLOSE} after the "
                                     "reasoning")
    return inside.strip() or None, after.lstrip()
