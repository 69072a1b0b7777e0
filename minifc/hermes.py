"""The hermes reader: a ShareGPT-style record with Hermes tool tags -> a canonical Example.

    convert_hermes(record, location) -> Example    (raises ConversionError, as every converter)
    looks_like_hermes(turns) -> bool                whether a "messages" list is hermes rather than canonical

Layouts read (README, "Data"): the turns are under "conversations" or "messages", each {"from", "value"}
(NousResearch/hermes-function-calling-v1) or {"role", "content"} (Jofthomas/hermes-function-calling-thinking-V1,
the Hugging Face agents course's data), with roles system, human / user, gpt / model / assistant and tool.

    system  a prompt with <tools>[...]</tools> declares the tools (JSON or a Python literal; a list, or one
            tool per block) and is dropped, since each chat format renders the tools itself; a record's
            "tools" field (a JSON string) wins over it. Other system prompts are kept.
    model   an opening <think>...</think> is the reasoning (minifc/convertkit.py, as for canonical
            messages); each <tool_call>{"name": ..., "arguments": {...}}</tool_call> (JSON or a Python
            literal) is a call, several are parallel calls; the text around them is the content.
    tool    one tool result per <tool_response>{"name": ..., "content": ...}</tool_response>; a response
            that is not such a dict is the result's text, named after the call it answers.
"""

import json
import re

from minifc.convertkit import (ConversionError, given_reasoning, normalise_call, normalise_tools, parse_literal,
                               require_object, take_reasoning)
from minifc.schema import Example

_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "model": "assistant",
          "assistant": "assistant", "tool": "tool"}
_SHAREGPT_ROLES = ("human", "gpt", "model")  # roles the canonical layout does not have
_TAGS = ("<tools>", "<tool_call>", "<tool_response>")
_TOOLS = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)
_TURN_SHAPE = '{"from": ..., "value": "..."} or {"role": ..., "content": "..."}'


def looks_like_hermes(turns) -> bool:
    """The detection rule for a "messages" list: hermes when a turn is written {from, value}, uses a
    ShareGPT role (human, gpt, model) or holds a Hermes tag (<tools>, <tool_call>, <tool_response>) in its
    text, unless a message has structured "tool_calls" (then it is canonical). <think> alone decides
    nothing: canonical messages may open with it too."""
    turns = [turn for turn in turns if isinstance(turn, dict)] if isinstance(turns, list) else []
    if any(turn.get("tool_calls") for turn in turns):
        return False
    return any("from" in turn or turn.get("role") in _SHAREGPT_ROLES
               or isinstance(turn.get("content"), str) and any(tag in turn["content"] for tag in _TAGS)
               for turn in turns)


def convert_hermes(record, location) -> Example:
    require_object(record)
    key = "conversations" if "conversations" in record else "messages"
    turns = record.get(key)
    if not isinstance(turns, list):
        raise ConversionError(key, f"missing or not a list of turns ({_TURN_SHAPE}); a hermes record has "
                                   "\"conversations\" or \"messages\"")
    tools = normalise_tools(parse_literal(record["tools"], "tools")) if record.get("tools") else []
    messages, calls = [], []
    for i, turn in enumerate(turns):
        where = f"{key}[{i}]"
        speaker, text, field = _read_turn(turn, where)
        role = _ROLES.get(speaker, speaker)
        if role == "system" and "<tools>" in text:
            tools = tools or _declared_tools(text, field)
        elif role == "assistant":
            message = _model_turn(text, given_reasoning(turn, where), field)
            calls = message.get("tool_calls", [])
            messages.append(message)
        elif role == "tool":
            messages.extend(_tool_results(text, calls, field))
        else:
            messages.append({"role": role, "content": text})  # unknown roles are reported by validation
    return Example(messages=messages, tools=tools, category=record.get("category"), location=location)


def _read_turn(turn, where) -> tuple[str, str, str]:
    """(speaker, text, the text's field) of a {from, value} or {role, content} turn."""
    if isinstance(turn, dict) and turn.get("tool_calls"):
        raise ConversionError(f"{where}.tool_calls", "hermes turns hold their calls as <tool_call> tags in the "
                                                     "text; for structured tool_calls use the canonical layout "
                                                     "(\"messages\", --data-format canonical)")
    if isinstance(turn, dict):
        for speaker_key, text_key in (("from", "value"), ("role", "content")):
            if isinstance(turn.get(speaker_key), str) and isinstance(turn.get(text_key), str):
                return turn[speaker_key], turn[text_key], f"{where}.{text_key}"
    raise ConversionError(where, f"must be {_TURN_SHAPE}")


def _declared_tools(text, field) -> list[dict]:
    # the prompt's own prose says "within <tools></tools> XML tags": skip empty matches
    found = [block for block in _TOOLS.findall(text) if block.strip()]
    parsed = [parse_literal(block, f"{field} <tools>") for block in found]  # each a tool or a list of them
    return normalise_tools([tool for item in parsed for tool in (item if isinstance(item, list) else [item])])


def _model_turn(text, reasoning, field) -> dict:
    reasoning, text = take_reasoning(text, reasoning, field)
    calls = [_call(block, f"{field} <tool_call>") for block in _CALL.findall(text)]
    content = _CALL.sub("", text).strip()
    if "<tool_call>" in content:
        raise ConversionError(field, "a <tool_call> is never closed; add </tool_call> after the call")
    message = {"role": "assistant", "content": content or None}
    if reasoning is not None:
        message["reasoning"] = reasoning
    if calls:
        message["tool_calls"] = calls
    return message


def _call(text, field):
    call = parse_literal(text, field)
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise ConversionError(field, f"expected {{\"name\": ..., \"arguments\": {{...}}}}, got {text.strip()[:80]!r}")
    return normalise_call(call)


def _tool_results(text, calls, field) -> list[dict]:
    """One tool message per <tool_response> block (the whole text when there is none)."""
    blocks = _RESPONSE.findall(text)
    if not blocks and "<tool_response>" in text:
        raise ConversionError(field, "a <tool_response> is never closed; add </tool_response> after the result")
    results = []
    for k, block in enumerate(blocks or [text]):
        try:
            response = parse_literal(block, field)
        except ConversionError:
            response = None
        if isinstance(response, dict) and "name" in response:
            content = response.get("content", {key: v for key, v in response.items() if key != "name"})
            name = response["name"]
        else:
            content, name = block.strip(), None
        if name is None and k < len(calls):
            name = calls[k]["function"]["name"]
        results.append({"role": "tool", "name": name,
                        "content": content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)})
    return results
