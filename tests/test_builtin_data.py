"""The built-in data: reproducible, valid, balanced, held out, and its gold calls derivable from the user's text."""

import importlib.util
import json
import sys
from collections import Counter

import pytest

from conftest import REPO
sys.path.insert(0, str(REPO / "data"))
from builtin_catalog import ENTITIES  # noqa: E402
from minifc.data import BUILTIN_TEST, BUILTIN_TRAIN, load_examples

CATEGORIES = {"single_call", "tool_choice", "policy_choice", "parallel", "multi_turn", "answer_from_result",
              "clarification", "no_tool"}
ENDS_WITH_TEXT = {"answer_from_result", "clarification", "no_tool"}


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("builtin_generate", REPO / "data" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def splits():
    return {name: load_examples(path, strict=True) for name, path in (("train", BUILTIN_TRAIN), ("test", BUILTIN_TEST))}


def user_texts(example):
    return [m["content"] for m in example.messages if m["role"] == "user"]


def test_generator_reproduces_the_committed_files(generator):
    train, test = generator.build()
    assert generator.to_jsonl(train) == BUILTIN_TRAIN.read_text(encoding="utf-8")
    assert generator.to_jsonl(test) == BUILTIN_TEST.read_text(encoding="utf-8")


def test_every_example_is_valid_and_the_sizes_are_right(splits):
    for name, (examples, report) in splits.items():  # strict=True above: one invalid example would have raised
        assert report.read == report.kept == len(examples)
    assert len(splits["train"][0]) >= 600 and len(splits["test"][0]) >= 200
    assert BUILTIN_TRAIN.stat().st_size + BUILTIN_TEST.stat().st_size < 4_000_000


def test_categories_are_balanced(splits):
    for name, (examples, _) in splits.items():
        counts = Counter(e.category for e in examples)
        assert set(counts) == CATEGORIES
        assert len(set(counts.values())) == 1, counts


def test_test_split_shares_no_user_text_with_training(splits):
    train = {t for e in splits["train"][0] for t in user_texts(e)}
    test = {t for e in splits["test"][0] for t in user_texts(e)}
    assert train.isdisjoint(test)


def test_gold_answer_matches_the_category(splits):
    for examples, _ in splits.values():
        for e in examples:
            gold = e.messages[-1]
            assert gold["role"] == "assistant"
            if e.category in ENDS_WITH_TEXT:
                assert gold.get("content") and not gold.get("tool_calls"), e.location
            else:
                assert gold["tool_calls"] and not gold.get("content"), e.location
            if e.category == "parallel":
                assert len(gold["tool_calls"]) >= 2, e.location
            if e.category == "multi_turn":
                assert len(user_texts(e)) == 2, e.location
            if e.category == "answer_from_result":
                assert e.messages[-2]["role"] == "tool", e.location
            if e.category in ("clarification", "no_tool"):
                assert not any(m.get("tool_calls") for m in e.messages), e.location


def leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    else:
        yield value


def test_gold_argument_values_are_written_in_the_user_text(splits):
    """A checker compares argument strings: each gold value (booleans aside) must appear verbatim."""
    checked = 0
    for examples, _ in splits.values():
        for e in examples:
            text = "\n".join(user_texts(e))
            for call in e.messages[-1].get("tool_calls") or []:
                for value in leaves(call["function"]["arguments"]):
                    if not isinstance(value, bool):
                        assert str(value) in text, (e.location, value)
                        checked += 1
    assert checked > 1000


def test_policy_choice_is_decided_by_wording_between_both_search_tools(splits):
    examples = [e for e in splits["train"][0] if e.category == "policy_choice"]
    chosen = Counter()
    for e in examples:
        names = {t["function"]["name"] for t in e.tools}
        assert {"search_knowledge_base", "search_web"} <= names
        chosen[e.messages[-1]["tool_calls"][0]["function"]["name"]] += 1
    assert min(chosen.values()) >= 0.3 * len(examples), chosen


def test_tools_are_shuffled_with_distractors_and_schemas_are_rich(splits):
    examples = splits["train"][0]
    positions, with_distractors, tools = Counter(), 0, {}
    for e in examples:
        names = [t["function"]["name"] for t in e.tools]
        called = {c["function"]["name"] for m in e.messages for c in m.get("tool_calls") or []}
        positions.update(names.index(n) for n in called)
        with_distractors += bool(set(names) - called)
        tools.update({t["function"]["name"]: t for t in e.tools})
    assert len(positions) >= 4                               # the called tool is not always first
    assert with_distractors >= 0.9 * len(examples)
    assert 10 <= len(tools) <= 20
    types, enums, optional = set(), 0, 0
    for t in tools.values():
        parameters = t["function"]["parameters"]
        assert set(parameters["required"]) <= set(parameters["properties"])
        types.update(p["type"] for p in parameters["properties"].values())
        enums += any("enum" in p for p in parameters["properties"].values())
        optional += len(parameters["properties"]) > len(parameters["required"])
    assert types == {"string", "integer", "number", "boolean", "array"}
    assert enums >= 4 and optional >= 8


@pytest.fixture(scope="module")
def demo(generator):
    return generator.build_demo()


def test_demo_data_is_valid_and_keeps_the_test_split_unseen(demo, generator, splits, tmp_path):
    """The demo's training data (train.py --model tiny): every example valid, no user message of the test
    split, no held-out entity as an argument value, and about half of its values invented."""
    path = tmp_path / "demo.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in demo), encoding="utf-8")
    examples, _ = load_examples(path, strict=True)
    counts = Counter(e.category for e in examples)
    assert counts == {**{c: generator.DEMO["per_category"] for c in CATEGORIES}, "echo": generator.DEMO["echo"]}
    test_texts = {t for e in splits["test"][0] for t in user_texts(e)}
    assert not test_texts & {t for e in examples for t in user_texts(e)}
    held_out = {x for kind, items in ENTITIES.items() for i, x in enumerate(items) if i % 4 == 3} - \
        {x for kind, items in ENTITIES.items() for i, x in enumerate(items) if i % 4 != 3}
    listed = {x for items in ENTITIES.values() for x in items}
    values = [v for e in examples for call in e.messages[-1].get("tool_calls") or []
              for v in leaves(call["function"]["arguments"]) if isinstance(v, str)]
    assert not held_out & set(values)
    entity_values = [v for v in values if v[:1].isalpha() and "@" not in v]
    invented = sum(v not in listed for v in entity_values) / len(entity_values)
    assert 0.3 < invented < 0.7, invented


def test_demo_echo_drills_copy_the_request(demo):
    echoes = [r["messages"] for r in demo if r["category"] == "echo"]
    assert all(reply["content"] in request["content"] for request, reply in echoes)
    assert len({reply["content"] for _, reply in echoes}) > 0.95 * len(echoes)  # short ones repeat (07:00)
