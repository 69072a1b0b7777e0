"""The BFCL reader and BFCL's scores, on small files written here in the real BFCL v3 shapes (JSON lines)."""

import json

import pytest

from minifc.bfcl import convert_schema, load_bfcl, read_bfcl
from minifc.bfclscore import bfcl_scores, format_bfcl, score_bfcl
from minifc.evaluate import check_calls, score_example

# Two rows in the shape of data/BFCL_v3_simple.json; the second uses every BFCL type name.
SIMPLE = [
    {"id": "simple_0",
     "question": [[{"role": "user", "content": "Find the area of a triangle with a base of 10 units and height of 5 units."}]],
     "function": [{"name": "calculate_triangle_area", "description": "Calculate the area of a triangle.",
                   "parameters": {"type": "dict", "properties": {
                       "base": {"type": "integer", "description": "The base."},
                       "height": {"type": "integer", "description": "The height."},
                       "unit": {"type": "string", "description": "Defaults to 'units'."}},
                       "required": ["base", "height"]}}]},
    {"id": "simple_1",
     "question": [[{"role": "system", "content": "Be brief."},
                   {"role": "user", "content": "Distance from (1, 2) to the origin, two decimals."}]],
     "function": [{"name": "geometry.distance", "description": "Distance of a point.",
                   "parameters": {"type": "dict", "properties": {
                       "point": {"type": "tuple", "items": {"type": "float"}, "description": "x, y"},
                       "options": {"type": "dict", "properties": {"precision": {"type": "integer"},
                                                                  "scale": {"type": "float"},
                                                                  "label": {"type": "any"}}},
                       "weights": {"type": "array", "items": {"type": "dict",
                                                              "properties": {"w": {"type": "float"}}}}},
                       "required": ["point"]}}]},
]
SIMPLE_ANSWERS = [
    {"id": "simple_0", "ground_truth": [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]},
    {"id": "simple_1", "ground_truth": [{"geometry.distance": {"point": [[1.0, 2.0]],
                                                               "options": [{"precision": [2], "label": ["", "d"]}, ""]}}]},
]
IRRELEVANCE = [
    {"id": "irrelevance_0",
     "question": [[{"role": "user", "content": "Who won the 2010 World Cup?"}]],
     "function": [{"name": "calculate_triangle_area", "description": "Area.",
                   "parameters": {"type": "dict", "properties": {"base": {"type": "integer"}}, "required": ["base"]}}]},
]


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def bfcl_dir(tmp_path):
    write_jsonl(tmp_path / "BFCL_v3_simple.json", SIMPLE)
    write_jsonl(tmp_path / "possible_answer" / "BFCL_v3_simple.json", SIMPLE_ANSWERS)
    write_jsonl(tmp_path / "BFCL_v3_irrelevance.json", IRRELEVANCE)
    return tmp_path


def test_simple_file_becomes_examples_and_gold(bfcl_dir):
    pairs = load_bfcl(bfcl_dir / "BFCL_v3_simple.json")
    assert len(pairs) == 2
    example, gold = pairs[0]
    assert example.category == "simple"
    assert example.location == f"{bfcl_dir / 'BFCL_v3_simple.json'}:1 (simple_0)"
    assert example.messages == [{"role": "user", "content": "Find the area of a triangle with a base of 10 units and height of 5 units."}]
    assert example.tools == [{"type": "function", "function": {  # described as BFCL shows it, with its note
        "name": "calculate_triangle_area",
        "description": "Calculate the area of a triangle. Note that the provided function is in Python 3 syntax.",
        "parameters": {"type": "object", "properties": {
            "base": {"type": "integer", "description": "The base."},
            "height": {"type": "integer", "description": "The height."},
            "unit": {"type": "string", "description": "Defaults to 'units'."}},
            "required": ["base", "height"]}}}]
    assert gold == [{"name": "calculate_triangle_area", "arguments": {"base": [10], "height": [5], "unit": ["units", ""]}}]


def test_bfcl_type_names_are_mapped_everywhere(bfcl_dir):
    example, gold = load_bfcl(bfcl_dir / "BFCL_v3_simple.json")[1]
    assert example.messages[0] == {"role": "system", "content": "Be brief."}
    assert example.tools[0]["function"]["parameters"] == {"type": "object", "properties": {
        "point": {"type": "array", "items": {"type": "number"}, "description": "x, y"},
        "options": {"type": "object", "properties": {"precision": {"type": "integer"},
                                                     "scale": {"type": "number"},
                                                     "label": {"type": "string"}}},
        "weights": {"type": "array", "items": {"type": "object", "properties": {"w": {"type": "number"}}}}},
        "required": ["point"]}
    assert gold == [{"name": "geometry.distance", "arguments": {
        "point": [[1.0, 2.0]], "options": [{"precision": [2], "label": ["", "d"]}, ""]}}]
    # a property *named* "type" is a name, not a type: it must not be mapped
    assert convert_schema({"type": "dict", "properties": {"type": {"type": "float"}}}) == {
        "type": "object", "properties": {"type": {"type": "number"}}}


def test_checking_bfcl_gold(bfcl_dir):
    (area, area_gold), (distance, distance_gold) = load_bfcl(bfcl_dir / "BFCL_v3_simple.json")

    def verdict(tools, gold, **arguments):
        return check_calls([{"name": tools[0]["function"]["name"], "arguments": arguments}], gold, tools)

    assert verdict(area.tools, area_gold, base=10, height=5).ok
    assert verdict(area.tools, area_gold, base=10, height=5, unit="Units").ok
    assert verdict(area.tools, area_gold, base=10.0, height=5).reason == \
        "type mismatch for 'base': expected integer, got number"
    # tuple of floats: ints are accepted for floats; the dict parameter is optional ("" listed)
    assert verdict(distance.tools, distance_gold, point=[1, 2]).ok
    assert verdict(distance.tools, distance_gold, point=[1, 2], options={"precision": 2}).ok
    assert verdict(distance.tools, distance_gold, point=[1, 2], options={"precision": 2, "label": "D"}).ok
    assert not verdict(distance.tools, distance_gold, point=[1, 2], options={"precision": 3}).ok
    assert verdict(distance.tools, distance_gold, point=[2, 1]).reason == \
        "value mismatch for 'point': got [2, 1], allowed [[1.0, 2.0]]"


def test_irrelevance_needs_no_answer_file_and_expects_no_call(bfcl_dir):
    (example, gold), = load_bfcl(bfcl_dir / "BFCL_v3_irrelevance.json")
    assert example.category == "irrelevance" and gold == []
    assert example.tools[0]["function"]["parameters"]["type"] == "object"


def test_answer_path_and_category_can_be_given(tmp_path):
    questions = write_jsonl(tmp_path / "mine.jsonl", [dict(SIMPLE[0], id="parallel_multiple_7")])
    answers = write_jsonl(tmp_path / "answers.jsonl", [dict(SIMPLE_ANSWERS[0], id="parallel_multiple_7")])
    (example, gold), = load_bfcl(questions, answers)
    assert example.category == "parallel_multiple"  # from the id when the file name does not say
    (example, gold), = load_bfcl(questions, answers, category="live_simple")
    assert example.category == "live_simple"


def test_v1_shapes_are_read(tmp_path):
    row = {"id": "simple_3", "question": "Area of a triangle, base 3, height 4?", "function": SIMPLE[0]["function"][0]}
    questions = write_jsonl(tmp_path / "BFCL_v1_simple.json", [row])
    write_jsonl(tmp_path / "possible_answer" / "BFCL_v1_simple.json", [dict(SIMPLE_ANSWERS[0], id="simple_3")])
    (example, gold), = load_bfcl(questions)
    assert example.messages == [{"role": "user", "content": "Area of a triangle, base 3, height 4?"}]
    assert [t["function"]["name"] for t in example.tools] == ["calculate_triangle_area"]


def test_bad_files_give_clear_errors(tmp_path, bfcl_dir):
    with pytest.raises(ValueError, match="BFCL category multi_turn_base is not supported"):
        load_bfcl(write_jsonl(tmp_path / "BFCL_v3_multi_turn_base.json", [dict(SIMPLE[0], id="multi_turn_base_0")]))
    lonely = write_jsonl(tmp_path / "elsewhere" / "BFCL_v3_multiple.json", [dict(SIMPLE[0], id="multiple_0")])
    with pytest.raises(ValueError, match="possible-answer file .*possible_answer/BFCL_v3_multiple.json not found"):
        load_bfcl(lonely)
    broken = tmp_path / "BFCL_v3_parallel.json"
    broken.write_text(json.dumps(dict(SIMPLE[0], id="parallel_0")) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"BFCL_v3_parallel.json:2: not valid JSON"):
        load_bfcl(broken)
    wrong_gold = write_jsonl(tmp_path / "gold.jsonl", [{"id": "simple_0", "ground_truth": [{"other_fn": {"x": [1]}}]}])
    with pytest.raises(ValueError, match=r"gold.jsonl:1 \(simple_0\): ground truth calls 'other_fn'"):
        load_bfcl(bfcl_dir / "BFCL_v3_simple.json", wrong_gold)
    missing = write_jsonl(tmp_path / "short.jsonl", [SIMPLE_ANSWERS[0]])
    with pytest.raises(ValueError, match=r"BFCL_v3_simple.json:2 \(simple_1\): no ground truth with this id"):
        load_bfcl(bfcl_dir / "BFCL_v3_simple.json", missing)
    two_turns = write_jsonl(tmp_path / "BFCL_v3_live_simple.json",
                            [dict(SIMPLE[0], id="live_simple_0-0-0", question=SIMPLE[0]["question"] * 2)])
    with pytest.raises(ValueError, match="must be a list holding one turn"):
        load_bfcl(two_turns, bfcl_dir / "possible_answer" / "BFCL_v3_simple.json")


def test_bfcl_scores_per_category_and_table(bfcl_dir):
    entries = read_bfcl(bfcl_dir / "BFCL_v3_simple.json") + read_bfcl(bfcl_dir / "BFCL_v3_irrelevance.json")
    outputs = [  # simple_0 right, simple_1 wrong point, irrelevance answered in text
        [{"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5}}],
        [{"name": "geometry.distance", "arguments": {"point": [0, 0]}}],
        [],
    ]
    predictions = []
    for entry, calls in zip(entries, outputs):
        example, gold = entry.case()
        parsed = {"role": "assistant", "content": None if calls else "Spain.", "tool_calls": calls, "parse_error": None}
        predictions.append({"parsed": parsed, "category": example.category, "stop_reason": "stop",
                            "record": score_example(parsed, gold, example.tools, example.category, "stop")})
    records = score_bfcl(entries, predictions)
    assert records == [p["record"] for p in predictions]  # Python entries: minifc's records unchanged
    assert [p["bfcl"] for p in predictions] == [
        {"category": "simple", "ok": True, "reason": "correct"},
        # BFCL converts an int to a float for a whole value only: ints inside a tuple of floats fail
        {"category": "simple", "ok": False,
         "reason": "type error for 'point': expected tuple of float items, got [0, 0]"},
        {"category": "irrelevance", "ok": True, "reason": "correct"}]
    scores = bfcl_scores(predictions)
    assert scores == {"categories": {"simple": {"correct": 1, "total": 2, "accuracy": 0.5},
                                     "irrelevance": {"correct": 1, "total": 1, "accuracy": 1.0}},
                      "aggregates": {"non_live_simple_ast": None, "non_live_ast": None, "live_ast": None,
                                     "irrelevance": None, "relevance": None}}
    assert format_bfcl({"base": scores}) == (
        "BFCL category                correct  accuracy\n"
        "simple                        1/2       50.00%\n"
        "irrelevance                   1/1      100.00%\n"
        "non-live simple (3 langs)                  n/a\n"
        "non-live AST summary                       n/a\n"
        "live AST summary                           n/a\n"
        "irrelevance detection                      n/a\n"
        "relevance detection                        n/a\n"
        "(the leaderboard's aggregates; n/a until all their categories are run: --bfcl all)\n")
