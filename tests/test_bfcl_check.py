"""BFCL's verdict rules (minifc/bfclcheck.py, minifc/bfcllang.py), one by one on small entries written
here, each expectation taken from BFCL's ast_checker.py and its Java/JavaScript converters; then fuzzing:
no answer makes either checker raise."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minifc.bfcl import BfclEntry, convert_function
from minifc.bfclcheck import bfcl_verdict
from minifc.bfclscore import score_bfcl
from minifc.bfcllang import TYPES, convert
from minifc.evaluate import Verdict, check_calls, score_example


def function(name, properties, required=()):
    return {"name": name, "description": "", "parameters": {"type": "dict", "properties": properties,
                                                             "required": list(required)}}


WEATHER = function("get_weather", {"city": {"type": "string"}, "days": {"type": "integer"},
                                   "temps": {"type": "array", "items": {"type": "float"}},
                                   "scale": {"type": "float"}, "opts": {"type": "dict", "properties": {}},
                                   "rows": {"type": "array", "items": {"type": "dict"}}}, ["city"])
CONVERT = function("convert", {"amount": {"type": "float"}}, ["amount"])


def answer(*calls, parse_error=None):
    return {"role": "assistant", "content": None, "parse_error": parse_error,
            "tool_calls": [{"type": "function", "function": {"name": n, "arguments": a}} for n, a in calls]}


def check(calls, gold, category="simple_python", functions=(WEATHER,)):
    return bfcl_verdict(answer(*calls), list(functions), gold, category)


def weather(**gold):
    return [{"get_weather": gold}]


# ----------------------------------------------------------------------------- one call

def test_names_required_unexpected_and_missing():
    gold = weather(city=["Paris"], days=[3, ""])
    assert check([("get_weather", {"city": "paris"})], gold) == Verdict(True, "correct")
    assert not check([("get_wether", {"city": "Paris"})], gold).ok
    assert check([("get_weather", {"days": 3})], gold).reason == "missing required parameter 'city'"
    assert check([("get_weather", {"city": "Paris", "x": 1})], gold).reason == "unexpected parameter 'x'"
    # in the schema but not in the gold answer: unexpected too
    assert check([("get_weather", {"city": "Paris", "scale": 1.0})], gold).reason == "unexpected parameter 'scale'"
    assert check([("get_weather", {"city": "Paris"})], weather(city=["Paris"], days=[3])).reason == \
        "missing parameter 'days' (the gold answer does not list \"\")"


def test_types_bool_is_not_int_and_ints_become_floats_only_whole():
    assert not check([("get_weather", {"city": "Paris", "days": True})], weather(city=["Paris"], days=[1])).ok
    assert check([("get_weather", {"city": "Paris", "scale": 2})], weather(city=["Paris"], scale=[2.0])).ok
    assert check([("get_weather", {"city": "Paris", "temps": [1, 2]})], weather(city=["Paris"], temps=[[1.0, 2.0]])) \
        == Verdict(False, "type error for 'temps': expected array of float items, got [1, 2]")
    # an item of the gold list's own type is accepted (BFCL's gold writes these as ints)
    assert check([("get_weather", {"city": "Paris", "temps": [1, 2]})], weather(city=["Paris"], temps=[[1, 2]])).ok
    # a non-list acceptable value first ("") skips the item check; the lists then compare with ==
    either = weather(city=["Paris"], temps=["", [1.0, 2.0]])
    assert check([("get_weather", {"city": "Paris", "temps": [1, 2]})], either).ok
    assert check([("get_weather", {"city": "Paris", "temps": [True]})], weather(city=["Paris"], temps=["", [1]])).ok


def test_a_gold_type_other_than_the_schemas_is_compared_exactly():
    dontcare = weather(city=["Paris"], days=["dontcare"])  # schema integer, gold a string
    assert check([("get_weather", {"city": "Paris", "days": "dontcare"})], dontcare).ok
    assert not check([("get_weather", {"city": "Paris", "days": "DontCare"})], dontcare).ok  # no normalising
    assert not check([("get_weather", {"city": "Paris", "days": 5})], dontcare).ok
    assert check([("get_weather", {"city": "Paris", "days": None})], weather(city=["Paris"], days=["", None])).ok


def test_string_normalisation_where_bfcl_applies_it():
    assert check([("get_weather", {"city": " new-york_city."})], weather(city=["New York City"])).ok
    assert check([("get_weather", {"city": "It's"})], weather(city=['it"s'])).ok
    # "" listed: a string that normalises to "" passes as a value
    optional = weather(city=["Paris"], days=["", "dontcare"])
    assert check([("get_weather", {"city": "Paris", "days": "dontcare"})], optional).ok
    assert check([("get_weather", {"city": " -"})], weather(city=["", "Paris"])).ok
    # dicts: direct string values normalised, strings in a list under a key compared as they are
    gold = weather(city=["Paris"], opts=[{"mode": ["Fast Mode"], "tags": [["A b"]]}])
    assert check([("get_weather", {"city": "Paris", "opts": {"mode": "fast-mode", "tags": ["A b"]}})], gold).ok
    assert not check([("get_weather", {"city": "Paris", "opts": {"mode": "fast-mode", "tags": ["a-b"]}})], gold).ok
    assert not check([("get_weather", {"city": "Paris", "opts": {"mode": "x"}})], gold).ok  # tags may not be left out


def test_lists_and_lists_of_dicts():
    rows = weather(city=["Paris"], rows=[[{"a": [1], "b": ["x", ""]}]])
    assert check([("get_weather", {"city": "Paris", "rows": [{"a": 1}]})], rows).ok
    assert check([("get_weather", {"city": "Paris", "rows": [{"a": 1, "b": "X"}]})], rows).ok
    assert not check([("get_weather", {"city": "Paris", "rows": [{"a": 1}, {"a": 1}]})], rows).ok
    assert not check([("get_weather", {"city": "Paris", "rows": [5]})], rows).ok
    # "" among a list parameter's acceptable values reads as the empty list
    assert check([("get_weather", {"city": "Paris", "rows": []})], weather(city=["Paris"], rows=["", [{"a": [1]}]])).ok
    strings = function("tag", {"tags": {"type": "array", "items": {"type": "string"}}})
    assert bfcl_verdict(answer(("tag", {"tags": ["A-1", "b"]})), [strings], [{"tag": {"tags": [["a1", "B"]]}}],
                        "simple_python").ok
    assert bfcl_verdict(answer(("tag", {"tags": []})), [strings], [{"tag": {"tags": ["", ["a"]]}}], "simple_python").ok


def test_a_nested_dict_of_a_gold_dict_is_compared_as_it_is():
    """live_multiple_121-46-0 writes {"position": [{"lateral": 10.5, "longitudinal": 50}]} flat."""
    ego = function("get_headway", {"ego_info": {"type": "dict", "properties": {}}}, ["ego_info"])
    gold = [{"get_headway": {"ego_info": [{"position": [{"lateral": 10.5, "longitudinal": 50}], "orientation": [30]}]}}]
    right = {"ego_info": {"position": {"lateral": 10.5, "longitudinal": 50.0}, "orientation": 30}}
    assert bfcl_verdict(answer(("get_headway", right)), [ego], gold, "live_multiple").ok
    wrong = {"ego_info": {"position": {"lateral": "10.5", "longitudinal": 50}, "orientation": 30}}
    assert not bfcl_verdict(answer(("get_headway", wrong)), [ego], gold, "live_multiple").ok
    # minifc's own checker reads the flat dict as one acceptable value, and no longer raises on it
    tools = [convert_function(ego)]
    minifc_gold = [{"name": "get_headway", "arguments": gold[0]["get_headway"]}]
    assert check_calls(answer(("get_headway", right)), minifc_gold, tools).ok
    assert not check_calls(answer(("get_headway", wrong)), minifc_gold, tools).ok


# ----------------------------------------------------------------------------- categories

def test_parallel_pairs_greedily_in_the_models_order():
    """Gold call 1 takes the first call that passes it; a maximum matching (minifc's) would pair better."""
    gold = weather(city=["Paris", "London"]) + weather(city=["Paris"])
    paris_first = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "London"})]
    assert check(paris_first, gold, "parallel").reason.startswith("no call left that matches gold call 2")
    assert check(paris_first[::-1], gold, "parallel").ok
    minifc_gold = [{"name": "get_weather", "arguments": g["get_weather"]} for g in gold]
    assert check_calls(answer(*paris_first), minifc_gold, [convert_function(WEATHER)]).ok
    assert check(paris_first[:1], gold, "parallel").reason == "wrong number of calls: got 1, expected 2"


def test_multiple_checks_the_first_call_only_and_simple_the_first_function():
    gold = [{"convert": {"amount": [5.0]}}]
    both = (WEATHER, CONVERT)
    assert check([("convert", {"amount": 5})], gold, "multiple", both).ok
    assert not check([("get_weather", {"city": "Paris"})], gold, "multiple", both).ok
    assert check([("convert", {"amount": 5})], gold + weather(city=["x"]), "live_multiple", both).reason == \
        "wrong number of calls: got 1, expected 2"
    assert check([("convert", {"amount": 5}), ("get_weather", {"city": "anything"})],
                 gold + weather(city=["x"]), "live_multiple", both).ok  # the second call is never looked at
    # simple: the call is checked against the first function, whatever the gold calls
    assert not check([("convert", {"amount": 5})], gold, "simple_python", both).ok


def test_no_call_and_any_call():
    broken = answer(parse_error="no closing bracket")
    for category in ("irrelevance", "live_irrelevance"):
        assert bfcl_verdict(broken, [WEATHER], [], category).ok  # undecodable output: no call
        assert bfcl_verdict(answer(), [WEATHER], [], category).ok
        assert bfcl_verdict(answer(("get_weather", "city=Paris")), [WEATHER], [], category).ok  # malformed
        assert bfcl_verdict(answer(("made_up", {})), [WEATHER], [], category) == \
            Verdict(False, "a call where none is due")
    assert bfcl_verdict(answer(("made_up", {"any": 1})), [WEATHER], [], "live_relevance").ok  # any call
    assert not bfcl_verdict(answer(), [WEATHER], [], "live_relevance").ok
    assert not bfcl_verdict(broken, [WEATHER], [], "live_relevance").ok
    assert check([], weather(city=["Paris"])).reason == "wrong number of calls: got 0, expected 1"
    assert bfcl_verdict(broken, [WEATHER], weather(city=["Paris"]), "simple").reason == \
        "invalid syntax: no closing bracket"


def test_where_bfcls_checker_raises_the_answer_is_wrong():
    assert "OverflowError" in check([("get_weather", {"city": "Paris", "scale": 10 ** 400})],
                                    weather(city=["Paris"], scale=[1.0])).reason
    odd = function("odd", {"x": {"type": "number"}})  # a type name BFCL's Python table lacks
    assert "KeyError" in bfcl_verdict(answer(("odd", {"x": 1})), [odd], [{"odd": {"x": [1]}}], "simple_python").reason
    with pytest.raises(ValueError, match="needs gold calls to its functions"):
        check([], [{"missing_function": {}}])


# ----------------------------------------------------------------------------- Java and JavaScript

def test_java_values_are_read_from_source_text():
    assert convert("42L", "long", None, "java") == 42 and convert("42", "long", None, "java") == "42"
    assert convert("1.5f", "float", None, "java") == 1.5 and convert("1.5", "float", None, "java") == "1.5"
    assert convert("true", "boolean", None, "java") is True and convert("True", "boolean", None, "java") == "True"
    assert convert('new String[]{"a", b}', "Array", "String", "java") == ['"a"', "b"]  # Array keeps quotes
    assert convert('new ArrayList<>(Arrays.asList("a", "b"))', "ArrayList", "String", "java") == ["a", "b"]
    assert convert("new ArrayList<Long>() {{ add(1L); add(2L); }}", "ArrayList", "long", "java") == [1, 2]
    assert convert("new ArrayList<>(Arrays.asList(42, true))", "ArrayList", "any", "java") == ["42", "true"]
    assert convert('new HashMap<String, Object>() {{ put("k", 5); put("s", "v"); }}', "HashMap", None, "java") == \
        {"k": 5, "s": "v"}
    assert convert("'c'", "char", None, "java") == "'c'"
    with pytest.raises(NotImplementedError):
        convert("x", "Set", None, "java")


def test_javascript_values_are_read_from_source_text():
    assert convert("'abc'", "String", None, "javascript") == "abc"
    assert convert("4", "float", None, "javascript") == 4.0 and convert("4f", "float", None, "javascript") == "4f"
    assert convert("12n", "Bigint", None, "javascript") == 12
    assert convert("[1, 'a, b']", "array", None, "javascript") == [1, "'a", "b'"]  # split on every comma
    assert convert("new Array(1.5, 2)", "array", "float", "javascript") == [1.5, 2.0]
    assert convert("[[1, 2], [3]]", "array", "array", "javascript") == [[1, 2], [3]]
    assert convert("{a: 'x', b: [1, 2], c: true}", "dict", None, "javascript") == {"a": "x", "b": [1, 2], "c": True}
    assert convert("{a: {b: 1}, c: 2}", "dict", None, "javascript") == {"a": "{b: 1"}  # up to the first }


def test_java_and_javascript_answers_must_be_strings():
    java = function("f", {"n": {"type": "long"}, "ids": {"type": "ArrayList", "items": {"type": "integer"}}}, ["n"])
    gold = [{"f": {"n": [42], "ids": [[1, 2], ""]}}]
    assert bfcl_verdict(answer(("f", {"n": "42L"})), [java], gold, "simple_java").ok
    assert not bfcl_verdict(answer(("f", {"n": "42"})), [java], gold, "simple_java").ok
    assert bfcl_verdict(answer(("f", {"n": 42})), [java], gold, "simple_java").reason == \
        "type error for 'n': a java value must be source text (a string), got 42"
    assert bfcl_verdict(answer(("f", {"n": "42L", "ids": "new ArrayList<>(Arrays.asList(1, 2))"})), [java], gold,
                        "java").ok  # the v3 name of the category
    js = function("g", {"on": {"type": "Boolean"}})
    assert bfcl_verdict(answer(("g", {"on": "true"})), [js], [{"g": {"on": [True]}}], "simple_javascript").ok


# ----------------------------------------------------------------------------- never raises

def json_containers(inner):
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8), json_containers,
                    max_leaves=12)
SOURCE = st.lists(st.sampled_from(["1", "-2", "3L", "1.5f", "2.5", "true", '"s"', "'c'", "x", " ", ",", "{", "}",
                                   "[", "]", "(", ")", "{{", "}}", "new int[]", "new ArrayList<>", "Arrays.asList",
                                   "new HashMap<String, Object>", "add(", 'put("k", ', "new Array(", ":", ";", "\n",
                                   "9n", "nan", "a: ", "9" * 4400]), max_size=10).map("".join)
ALL_TYPES = {language: [function("f", {f"p{i}": {"type": name, "items": {"type": list(names)[(3 * i + 1) % len(names)]}}
                                       for i, name in enumerate(names)})]  # every type, items of another one
             for language, names in TYPES.items()}


def never_raises(functions, ground_truth, category, calls, tools=None):
    parsed = answer(*calls)
    assert isinstance(bfcl_verdict(parsed, functions, ground_truth, category), Verdict)
    if "java" in category:  # BFCL's verdict and minifc's on the values read from the source text
        prediction = {"parsed": parsed, "category": category, "stop_reason": "stop", "record": None}
        score_bfcl([BfclEntry("fuzz", category, [], functions, ground_truth, "fuzz")], [prediction])
        assert prediction["record"]["reason"]
    if "relevance" not in category:  # minifc's own checker (score_example runs check_calls)
        gold = [{"name": n, "arguments": a} for call in ground_truth for n, a in call.items()]
        tools = tools or [convert_function(f) for f in functions]
        assert score_example(parsed, gold, tools, category, "stop")["reason"]


@given(st.sampled_from(sorted(ALL_TYPES)), st.data())
def test_no_value_of_any_type_makes_the_checkers_raise(language, data):
    functions = ALL_TYPES[language]
    properties = functions[0]["parameters"]["properties"]
    values = SOURCE if language != "python" else JSON
    gold = [{"f": {p: data.draw(st.lists(JSON | st.just(""), min_size=0, max_size=3)) for p in properties}}]
    arguments = data.draw(st.dictionaries(st.sampled_from(sorted(properties) + ["zz"]), values | JSON, max_size=6))
    never_raises(functions, gold, {"python": "simple_python", "java": "simple_java",
                                   "javascript": "simple_javascript"}[language], [("f", arguments)])


def like(value):
    """Arbitrary JSON, or values shaped like `value` (its keys, its nesting) with arbitrary leaves."""
    if isinstance(value, dict) and value:
        return st.dictionaries(st.sampled_from(sorted(value)), st.one_of([like(v) for v in value.values()]),
                               max_size=len(value)) | JSON
    if isinstance(value, list) and value:
        shapes = st.one_of([like(v) for v in value[:3]])
        return st.lists(shapes, max_size=4) | shapes | JSON
    return JSON


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_answer_to_a_bfcl_entry_makes_the_checkers_raise(bfcl_entries, data):
    """Arbitrary JSON (for Java and JavaScript, also source-like text), or values shaped like the gold's,
    for every parameter of a BFCL entry's function and gold calls."""
    entry = data.draw(st.sampled_from(bfcl_entries))
    calls = []
    for call in entry.ground_truth or [{entry.functions[0]["name"]: {}}] if entry.functions else []:
        for name, gold in call.items():
            properties = next(f for f in entry.functions if f["name"] == name)["parameters"]["properties"]
            extra = SOURCE if entry.language != "python" else st.nothing()
            calls.append((name, {p: data.draw(like(gold.get(p)) | extra) for p in list(properties) + list(gold)}))
    never_raises(entry.functions, entry.ground_truth, entry.kind, calls)


def leaves(value, leaf):
    """A value shaped like an acceptable value of a gold answer (a dict's keys take their first
    acceptable value), with every leaf replaced by `leaf`."""
    if isinstance(value, dict):
        return {key: leaves(item[0] if isinstance(item, list) and item else item, leaf) for key, item in value.items()}
    if isinstance(value, list):
        return [leaves(item, leaf) for item in value]
    return leaf


def test_every_parameter_of_every_bfcl_entry_takes_odd_values(bfcl_entries):
    """Each parameter of each entry's gold calls, in turn, set to values of every JSON shape."""
    odd = [None, True, -1, 10 ** 400, 1e308, float("nan"), "", " ", "9" * 4400, [], [None], [[1]], [{}],
           [{"a": [1]}], {}, {"a": None}, {"a": [[]]}, "new ArrayList<>(Arrays.asList(1, 2))", "{a: [1, {b}]}"]
    checked = 0
    for entry in bfcl_entries:
        tools = [convert_function(f) for f in entry.functions]
        for index, call in enumerate(entry.ground_truth):
            for name, gold in call.items():
                function_ = next(f for f in entry.functions if f["name"] == name)
                for k, param in enumerate(list(function_["parameters"]["properties"]) + list(gold)):
                    shaped = [leaves(a, leaf) for a in gold.get(param, [])[:1] for leaf in (None, {"a": 1})]
                    for value in odd[k % 10::10] + shaped:  # two odd shapes per parameter, and the gold's own
                        calls = [(n, {**{p: 1 for p in g}, param: value})
                                 for c in entry.ground_truth for n, g in c.items()]
                        never_raises(entry.functions, entry.ground_truth, entry.kind, calls, tools)
                        checked += 1
    assert checked > 20000
