"""Try a model on your own prompts: python chat.py --model DIR [--adapter A] --tools tools.json [--prompt "..."]

The conversation is rendered in the model's chat format (the prompt it was trained on), the reply is
printed as it is generated, then read by the format's parse(): each tool call is shown, and in the
interactive mode you type each call's result (JSON or plain text) and the model continues. An empty
line or Ctrl-D ends the session. With --prompt: one user message, one reply, and the program ends.

    you> What's the weather in Oslo?
    assistant> [get_weather(city="Oslo")]
    tool call: get_weather({"city": "Oslo"})
    result of get_weather> {"temperature": 3}
    assistant> It's 3°C in Oslo.

--tools is a JSON file holding a list of tools, each {"type": "function", "function": {name, description,
parameters}} or the bare {name, description, parameters}.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from minifc.adapters import load_adapter
from minifc.chat import FORMATS
from minifc.chat.kit import function_tool
from minifc.cli import HelpFormatter, run
from minifc.generate import generate
from minifc.loader import LoadError, load

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Chat with a model in its own prompt format, tool calls shown.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--model", required=True, help="short name, hub id or local directory")
    parser.add_argument("--adapter", help="adapter directory written by train.py (PEFT layout)")
    parser.add_argument("--tools", help="JSON file: a list of tools the model may call")
    parser.add_argument("--prompt", help="one user message: print the reply and exit (no interaction)")
    parser.add_argument("--system", help="system message")
    parser.add_argument("--format", choices=sorted(FORMATS), help="chat format (default: the model's)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="longest reply")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (with --temperature)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="default: bfloat16 on CUDA, float32 on CPU")
    return parser.parse_args(argv)


def read_tools(path) -> list[dict]:
    """The tools of --tools; a clear error naming the file when it is not a JSON list of tools."""
    if path is None:
        return []
    try:
        tools = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"--tools {path}: line {error.lineno}: invalid JSON: {error.msg}") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) and ("function" in t or "name" in t) for t in tools):
        raise ValueError(f"--tools {path}: expected a JSON list of tools, each {{\"type\": \"function\", "
                         "\"function\": {\"name\", \"description\", \"parameters\"}} or the bare function")
    return [tool if "function" in tool else function_tool(tool) for tool in tools]


class Printer:
    """Prints a reply token by token, as text: the stop token is left out, and a token that ends inside a
    multi-byte character waits for the next one."""

    def __init__(self, tokenizer, stop_ids, out):
        self.tokenizer, self.stop_ids, self.out = tokenizer, set(stop_ids), out
        self.ids, self.shown = [], 0

    def __call__(self, tokens: list[int], last: bool = False):
        if tokens and tokens[0] not in self.stop_ids:
            self.ids.append(tokens[0])
        text = self.tokenizer.decode(self.ids)
        if last or not text.endswith("\ufffd"):
            self.out.write(text[self.shown:])
            self.out.flush()
            self.shown = len(text)


def reply(model, tokenizer, fmt, messages, tools, args, out=None) -> dict:
    """Generate the assistant's next turn, printing it as it comes; returns the message parse() read."""
    out = out or sys.stdout
    prompt = tokenizer.encode(fmt.render(messages, tools or None, add_generation_prompt=True).text)
    out.write("assistant> ")
    printer = Printer(tokenizer, tokenizer.stop_ids(fmt), out)
    [generation] = generate(model, tokenizer, [prompt], tokenizer.stop_ids(fmt), args.max_new_tokens,
                            args.temperature, args.top_p, args.seed, stream=printer)
    printer([], last=True)  # what an unfinished character held back
    stopped = "" if generation.stop_reason == "stop" else f"(stopped after --max-new-tokens {args.max_new_tokens})\n"
    out.write("\n" + stopped)
    parsed = fmt.parse(generation.text)
    if parsed["parse_error"]:
        out.write(f"parse error: {parsed['parse_error']}\n")
    for call in parsed["tool_calls"]:
        function = call["function"]
        out.write(f"tool call: {function['name']}({json.dumps(function['arguments'], ensure_ascii=False)})\n")
    return {"role": "assistant", "content": parsed["content"], "tool_calls": parsed["tool_calls"]}


def tool_result(name: str, typed: str) -> dict:
    """The tool message for a result typed by the user: JSON when it parses, else the text as it is."""
    try:
        content = json.loads(typed)
    except json.JSONDecodeError:
        content = typed
    return {"role": "tool", "name": name, "content": content}


def session(model, tokenizer, fmt, tools, args, ask=input, out=None):
    """The interactive loop: user turns, replies, and a typed result for every tool call."""
    out = out or sys.stdout
    messages = [{"role": "system", "content": args.system}] if args.system else []
    while True:
        try:
            text = ask("you> ")
        except EOFError:
            return
        if not text.strip():
            return
        messages.append({"role": "user", "content": text})
        try:
            message = reply(model, tokenizer, fmt, messages, tools, args, out)
        except ValueError as error:  # the format cannot render the text (a control token in it, say)
            out.write(f"error: {error}\n")
            messages.pop()
            continue
        while message["tool_calls"]:  # the model waits for the results before it answers
            messages.append(message)
            for call in message["tool_calls"]:
                name = call["function"]["name"]
                try:
                    messages.append(tool_result(name, ask(f"result of {name}> ")))
                except EOFError:
                    return
            message = reply(model, tokenizer, fmt, messages, tools, args, out)
        messages.append({"role": "assistant", "content": message["content"] or ""})


def main(argv=None):
    args = parse_args(argv)
    dtype = DTYPES[args.dtype] if args.dtype else torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    try:
        tools = read_tools(args.tools)
        model, tokenizer, fmt = load(args.model, args.format, args.adapter, device=args.device, dtype=dtype)
        if args.adapter:
            load_adapter(model, args.adapter)
    except (LoadError, ValueError, OSError) as error:  # bad input: the message says what to fix
        sys.exit(f"chat.py: {error}")
    model.eval()
    if args.prompt is not None:
        messages = [{"role": "system", "content": args.system}] if args.system else []
        reply(model, tokenizer, fmt, messages + [{"role": "user", "content": args.prompt}], tools, args)
    else:
        print(f"{args.model}{' + ' + args.adapter if args.adapter else ''} ({fmt.name} format, {len(tools)} tools); "
              "an empty line ends the session", file=sys.stderr)
        session(model, tokenizer, fmt, tools, args)


if __name__ == "__main__":
    run(main, "chat.py")
