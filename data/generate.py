"""Writes the built-in function-calling data: python data/generate.py -> data/train.jsonl, data/test.jsonl.

Deterministic (fixed seeds, stdlib only, no network): hand-written tools, phrasings and entity lists.
Eight categories, balanced: single_call, tool_choice, policy_choice, parallel, multi_turn,
answer_from_result, clarification, no_tool. The last assistant message of each example is its gold
answer (a call, calls, or a text reply); every argument value of a gold call is written in the user's
text exactly as it appears in the call, so a checker can compare strings. Entities are split between
train and test (every fourth goes to test) and no test example shares a user message with training.
Edit the lists and rerun to grow the data; tests/test_builtin_data.py checks that the committed
files are exactly what this script writes.
The tools, entities and results live in data/builtin_catalog.py, the phrasings in data/builtin_requests.py.
"""

import json
import os
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT))  # the sibling modules below, also when this file is imported by path

from builtin_catalog import CURRENCIES, LANGUAGES, SEARCH_TOOLS, TOOLS, Draw, result_for, split_entities  # noqa: E402
from demo_entities import DemoDraw, echo  # noqa: E402
from builtin_requests import (ASK, CLARIFY, ask_kb, ask_web, no_tool_request, parallel_request,  # noqa: E402
                              flight_number)

SEED = 1234
PER_CATEGORY = {"train": 90, "test": 30}

# ---------------------------------------------------------------------------------------------------------
# Examples, by category

def user(text):
    return {"role": "user", "content": text}


def calls(pairs):
    return {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": n, "arguments": a}}
                                                 for n, a in pairs]}


def reply(text):
    return {"role": "assistant", "content": text}


def results(d, pairs):
    """Tool messages answering `pairs`, and the answers to write from them."""
    messages, answers = [], []
    for name, arguments in pairs:
        result, answer = result_for(d, name, arguments)
        # The result is stored as a JSON object, not a JSON string: every format then writes it the way its
        # model was trained to read results (FunctionGemma's response:NAME{key:value}, Llama's JSON), where
        # a string would be written quoted (Llama) or wrapped as {value:<escape>...<escape>} (FunctionGemma).
        messages.append({"role": "tool", "name": name, "content": result})
        answers.append(answer)
    return messages, " ".join(answers)


def toolset(d, needed, low=1, high=3, exclude=()):
    """The needed tools, plus low..high distractors (never the search tools), in random order."""
    others = [n for n in TOOLS if n not in needed and n not in SEARCH_TOOLS and n not in exclude]
    names = list(dict.fromkeys(needed)) + d.rng.sample(others, d.rng.randint(low, high))
    d.rng.shuffle(names)
    return names


PLAIN_TOOLS = [n for n in TOOLS if n not in SEARCH_TOOLS]
CHOICE_GROUPS = [["send_email", "create_calendar_event", "set_reminder", "add_todo"],
                 ["get_weather", "get_flight_status", "get_stock_price", "get_order_status"],
                 ["convert_currency", "get_stock_price", "calculate_loan_payment"],
                 ["book_restaurant", "create_calendar_event", "set_reminder"],
                 ["set_thermostat", "play_music", "get_weather"],
                 ["translate_text", "send_email", "create_support_ticket"]]


def single_call(d):
    text, name, arguments = ASK[d.pick(PLAIN_TOOLS)](d)
    return [user(text), calls([(name, arguments)])], toolset(d, [name], 0, 2)


def tool_choice(d):
    group = d.pick(CHOICE_GROUPS)
    text, name, arguments = ASK[d.pick(group)](d)
    return [user(text), calls([(name, arguments)])], toolset(d, group, 0, 2)


def policy_choice(d):
    text, name, arguments = (ask_kb if d.chance(0.5) else ask_web)(d)
    return [user(text), calls([(name, arguments)])], toolset(d, sorted(SEARCH_TOOLS), 0, 3)


def parallel(d):
    text, pairs = parallel_request(d)
    return [user(text), calls(pairs)], toolset(d, [n for n, _ in pairs], 0, 2)


def answer_from_result(d):
    if d.chance(0.25):
        text, pairs = parallel_request(d)
    else:
        text, name, arguments = ASK[d.pick(list(TOOLS))](d)
        pairs = [(name, arguments)]
    tool_messages, answer = results(d, pairs)
    needed = [n for n, _ in pairs]
    low = 0 if set(needed) & SEARCH_TOOLS else 1
    return [user(text), calls(pairs), *tool_messages, reply(answer)], toolset(d, needed, low, 3)


def clarification(d):
    text, name, question, _ = d.pick(CLARIFY)(d)
    return [user(text), reply(question)], toolset(d, [name], 1, 3)


def no_tool(d):
    text, answer = no_tool_request(d)
    return [user(text), reply(answer)], toolset(d, [], 2, 5, exclude={"translate_text"})


FOLLOW_UPS = {  # tool -> (argument that changes, new value, phrasings of the follow-up)
    "get_weather": lambda d, a: ("city", d.city, ["What about {v}?", "And in {v}?", "How about {v}?"]),
    "get_stock_price": lambda d, a: ("symbol", d.symbol, ["And {v}?", "What about {v}?", "Now check {v}."]),
    "convert_currency": lambda d, a: ("to_currency", d.pick([c for c in CURRENCIES if c not in (
        a["from_currency"], a["to_currency"])]), ["And in {v}?", "What would that be in {v}?"]),
    "get_flight_status": lambda d, a: ("flight_number", flight_number(d), ["Now check {v}.", "And flight {v}?"]),
    "get_order_status": lambda d, a: ("order_id", f"C{d.rng.randint(100000, 999999)}",
                                      ["What about order {v}?", "And order {v}?"]),
    "translate_text": lambda d, a: ("target_language", d.pick([x for x in LANGUAGES if x != a["target_language"]]),
                                    ["Now into {v}.", "And in {v}?"]),
}


def multi_turn(d):
    """A call that depends on earlier turns: a clarified request, or a follow-up that changes one argument."""
    if d.chance(0.5):
        text, name, question, fill = d.pick(CLARIFY)(d)
        answer_text, arguments = fill()
        return [user(text), reply(question), user(answer_text), calls([(name, arguments)])], toolset(d, [name], 1, 3)
    text, name, arguments = ASK[d.pick(list(FOLLOW_UPS))](d)
    tool_messages, answer = results(d, [(name, arguments)])
    key, value, phrasings = FOLLOW_UPS[name](d, arguments)
    second = dict(arguments, **{key: value})
    return ([user(text), calls([(name, arguments)]), *tool_messages, reply(answer),
             user(d.pick(phrasings).format(v=value)), calls([(name, second)])], toolset(d, [name], 1, 3))


CATEGORIES = {"single_call": single_call, "tool_choice": tool_choice, "policy_choice": policy_choice,
              "parallel": parallel, "multi_turn": multi_turn, "answer_from_result": answer_from_result,
              "clarification": clarification, "no_tool": no_tool}


# ---------------------------------------------------------------------------------------------------------
# Splits

def user_texts(record):
    return [m["content"] for m in record["messages"] if m["role"] == "user"]


def build_split(split, forbidden=frozenset(), per_category=None, draw=Draw):
    """`per_category` (default PER_CATEGORY[split]) examples of each category, in a shuffled order; an example
    is redrawn when one of its user messages appears in `forbidden` (the other split's texts) or it repeats
    one of this split. `draw` chooses the entities (DemoDraw: partly invented ones)."""
    per_category = per_category or PER_CATEGORY[split]
    records, seen = [], set()
    for category, make in CATEGORIES.items():
        rng = random.Random(f"{SEED}:{split}:{category}")
        d = draw(rng, split_entities("test" if split == "test" else "train"))
        made, attempts = 0, 0
        while made < per_category:
            attempts += 1
            if attempts > 100 * per_category:
                raise RuntimeError(f"{split}/{category}: too few distinct examples; add phrasings or entities")
            messages, names = make(d)
            record = {"category": category, "messages": messages, "tools": [TOOLS[n] for n in names]}
            key = tuple(user_texts(record))
            if key in seen or forbidden.intersection(key):
                continue
            seen.add(key)
            records.append(record)
            made += 1
    random.Random(f"{SEED}:{split}:order").shuffle(records)
    return records


def build():
    train = build_split("train")
    test = build_split("test", frozenset(t for r in train for t in user_texts(r)))
    return train, test


DEMO = {"per_category": 200, "invented": 0.5, "echo": 6400}  # the offline demo's training data (README)


def build_demo():
    """The offline demo's training data (train.py --model tiny): DEMO["per_category"] examples of each
    category whose entities are partly invented (demo_entities.py) and DEMO["echo"] copying drills,
    shuffled; no user message is one of the test split's."""
    _, test = build()
    draw = lambda rng, entities: DemoDraw(rng, entities, DEMO["invented"])
    records = build_split("demo", frozenset(t for r in test for t in user_texts(r)), DEMO["per_category"], draw)
    d = DemoDraw(random.Random(f"{SEED}:demo:echo"), split_entities("train"), DEMO["invented"])
    records += [{"category": "echo", "messages": echo(d), "tools": []} for _ in range(DEMO["echo"])]
    random.Random(f"{SEED}:demo:order").shuffle(records)
    return records


def to_jsonl(records) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main():
    if sys.argv[1:] == ["--demo"]:  # the offline demo's data: too large to commit, written on first use
        records, partial = build_demo(), OUT / f"demo.jsonl.{os.getpid()}"
        partial.write_text(to_jsonl(records), encoding="utf-8")
        os.replace(partial, OUT / "demo.jsonl")  # whole: torchrun's ranks may write it at the same time
        print(f"wrote {len(records)} examples to {OUT / 'demo.jsonl'}")
        return
    train, test = build()
    for name, records in (("train", train), ("test", test)):
        path = OUT / f"{name}.jsonl"
        path.write_text(to_jsonl(records), encoding="utf-8")
        print(f"wrote {len(records)} examples to {path}")


if __name__ == "__main__":
    main()