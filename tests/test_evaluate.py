"""The tool-call checker (BFCL rules) and the metrics, against hand-computed expectations."""

import pytest

from minifc.evaluate import (Verdict, check_calls, compute_metrics, format_table, gold_from_message,
                             normalize_string, score_example)


def tool(name, properties, required):
    return {"type": "function", "function": {"name": name, "description": "",
                                             "parameters": {"type": "object", "properties": properties,
                                                            "required": required}}}


TOOLS = [
    tool("get_weather", {"city": {"type": "string"}, "unit": {"type": "string"}, "days": {"type": "integer"}},
         ["city"]),
    tool("convert", {"amount": {"type": "number"}, "currency": {"type": "string"}}, ["amount"]),
    tool("search", {"query": {"type": "string"},
                    "filters": {"type": "object", "properties": {"min": {"type": "integer"},
                                                                 "max": {"type": "integer"}}},
                    "tags": {"type": "array", "items": {"type": "string"}}}, ["query"]),
]


def call(name, **arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def parsed(*calls, content=None, parse_error=None):
    return {"role": "assistant", "content": content, "tool_calls": list(calls), "parse_error": parse_error}


def gold(name, **arguments):
    return {"name": name, "arguments": arguments}


def check(predicted_calls, gold_calls):
    return check_calls(parsed(*predicted_calls), gold_calls, TOOLS)


PARIS = [gold("get_weather", city=["Paris"])]


# ----------------------------------------------------------------------------- checker rules

def test_normalize_string_is_bfcls():
    assert normalize_string("April 1, 2024") == "april12024"
    assert normalize_string("New-York_City/NY.*^") == "newyorkcityny"
    assert normalize_string("It's") == 'it"s'


def test_strings_compare_after_normalisation():
    city = [gold("get_weather", city=["New York, NY"])]
    assert check([call("get_weather", city="new york ny")], city) == Verdict(True, "correct")
    assert check([call("get_weather", city="NEW-YORK,NY")], city).ok
    assert check([call("get_weather", city="Boston")], city) == Verdict(
        False, "value mismatch for 'city': got 'Boston', allowed ['New York, NY']")


def test_empty_string_among_acceptable_values_makes_a_parameter_optional():
    optional = [gold("get_weather", city=["Paris"], unit=["celsius", ""])]
    assert check([call("get_weather", city="Paris")], optional).ok
    assert check([call("get_weather", city="Paris", unit="Celsius")], optional).ok
    assert check([call("get_weather", city="Paris", unit="kelvin")], optional) == Verdict(
        False, "value mismatch for 'unit': got 'kelvin', allowed ['celsius', '']")
    needed = [gold("get_weather", city=["Paris"], unit=["celsius"])]
    assert check([call("get_weather", city="Paris")], needed) == Verdict(
        False, "missing parameter 'unit' (the gold answer requires it)")


def test_int_is_accepted_for_number_but_not_float_for_integer():
    amount = [gold("convert", amount=[10.0])]
    assert check([call("convert", amount=10)], amount).ok
    assert check([call("convert", amount=10.0)], amount).ok
    assert check([call("convert", amount=10.5)], amount) == Verdict(
        False, "value mismatch for 'amount': got 10.5, allowed [10.0]")
    days = [gold("get_weather", city=["Paris"], days=[3])]
    assert check([call("get_weather", city="Paris", days=3)], days).ok
    assert check([call("get_weather", city="Paris", days=3.0)], days) == Verdict(
        False, "type mismatch for 'days': expected integer, got number")
    assert check([call("get_weather", city="Paris", days=True)], days) == Verdict(
        False, "type mismatch for 'days': expected integer, got boolean")


def test_punctuation_outside_bfcls_list_still_counts():
    assert check([call("get_weather", city="Paris!")], PARIS) == Verdict(
        False, "value mismatch for 'city': got 'Paris!', allowed ['Paris']")


def test_a_value_of_the_gold_answers_own_type_is_accepted_like_bfcl():
    # BFCL writes variables as strings: schema integer, gold "n_items" -> the string passes the type check
    variable = [gold("get_weather", city=["Paris"], days=["n_days"])]
    assert check([call("get_weather", city="Paris", days="n_days")], variable).ok
    assert check([call("get_weather", city="Paris", days="k")], variable) == Verdict(
        False, "value mismatch for 'days': got 'k', allowed ['n_days']")
    assert check([call("get_weather", city="Paris", days=[1])], variable) == Verdict(
        False, "type mismatch for 'days': expected integer, got array")


def test_string_versus_integer_is_a_type_mismatch():
    days = [gold("get_weather", city=["Paris"], days=[3])]
    assert check([call("get_weather", city="Paris", days="3")], days) == Verdict(
        False, "type mismatch for 'days': expected integer, got string")
    assert check([call("get_weather", city=5)], PARIS) == Verdict(
        False, "type mismatch for 'city': expected string, got integer")


def test_array_items_are_type_checked_one_level_deep():
    tags = [gold("search", query=["x"], tags=[["a", "b"]])]
    assert check([call("search", query="x", tags=[1, "b"])], tags) == Verdict(
        False, "type mismatch for 'tags' item 0: expected string, got integer")


def test_array_items_of_the_gold_answers_own_type_are_accepted_like_bfcl():
    # BFCL's parallel_multiple_94: items typed integer, gold items strings; the gold answer must pass
    fruit = [gold("search", query=["x"], tags=[[1, 2]])]  # tags are typed string items
    assert check([call("search", query="x", tags=[1, 2])], fruit).ok
    assert check([call("search", query="x", tags=[1.5])], fruit) == Verdict(
        False, "type mismatch for 'tags' item 0: expected string, got number")


def test_lists_compare_element_wise_in_order():
    tags = [gold("search", query=["x"], tags=[["a b", "c"]])]
    assert check([call("search", query="x", tags=["A-B", "C"])], tags).ok  # strings normalised inside
    assert check([call("search", query="x", tags=["c", "a b"])], tags) == Verdict(
        False, "value mismatch for 'tags': got ['c', 'a b'], allowed [['a b', 'c']]")
    assert not check([call("search", query="x", tags=["a b"])], tags).ok  # shorter list
    either_order = [gold("search", query=["x"], tags=[["a", "c"], ["c", "a"]])]
    assert check([call("search", query="x", tags=["c", "a"])], either_order).ok


def test_dicts_compare_key_by_key():
    filters = [gold("search", query=["x"], filters=[{"min": [1], "max": [10, ""]}])]
    assert check([call("search", query="x", filters={"min": 1, "max": 10})], filters).ok
    assert check([call("search", query="x", filters={"min": 1})], filters).ok      # max may be omitted
    assert not check([call("search", query="x", filters={"max": 10})], filters).ok  # min may not
    assert not check([call("search", query="x", filters={"min": 2})], filters).ok
    assert check([call("search", query="x", filters={"min": 1, "step": 3})], filters) == Verdict(
        False, "value mismatch for 'filters': got {'min': 1, 'step': 3}, allowed [{'min': [1], 'max': [10, '']}]")


def test_required_and_unexpected_parameters():
    search = [gold("search", query=["cats"])]
    assert check([call("search", tags=["a"])], search) == Verdict(False, "missing required parameter 'query'")
    assert check([call("search", query="cats", lang="en")], search) == Verdict(
        False, "unexpected parameter 'lang' (not in the schema of 'search')")
    assert check([call("search", query="cats", tags=["a"])], search) == Verdict(
        False, "unexpected parameter 'tags' (the gold answer leaves it out)")


def test_function_names_unknown_and_wrong():
    assert check([call("get_wether", city="Paris")], PARIS) == Verdict(
        False, "unknown function 'get_wether' (not among the tools)")
    assert check([call("convert", amount=1)], PARIS) == Verdict(
        False, "wrong function name: got 'convert', expected 'get_weather'")


def test_parallel_calls_match_in_any_order():
    two = [gold("get_weather", city=["Paris"]), gold("get_weather", city=["London"])]
    assert check([call("get_weather", city="London"), call("get_weather", city="Paris")], two).ok
    assert check([call("get_weather", city="Paris"), call("get_weather", city="Paris")], two) == Verdict(
        False, "no predicted call matches gold call 2 (get_weather): "
               "value mismatch for 'city': got 'Paris', allowed ['London']")
    mixed = [gold("convert", amount=[5]), gold("get_weather", city=["Paris"])]
    assert check([call("get_weather", city="Paris"), call("convert", amount=5)], mixed).ok
    assert check([call("get_weather", city="Paris"), call("get_weather", city="Rome")], mixed) == Verdict(
        False, "no predicted call matches gold call 1 (convert): no call to 'convert'")


def test_parallel_matching_is_a_true_matching_not_greedy():
    # Gold 1 accepts Paris or London, gold 2 only Paris. A greedy pass would pair gold 1 with the first
    # predicted call (Paris) and leave gold 2 with London; a matching pairs gold 1 with London.
    golds = [gold("get_weather", city=["Paris", "London"]), gold("get_weather", city=["Paris"])]
    assert check([call("get_weather", city="Paris"), call("get_weather", city="London")], golds).ok


def test_wrong_number_of_calls():
    two = [gold("get_weather", city=["Paris"]), gold("get_weather", city=["London"])]
    assert check([call("get_weather", city="Paris")], two) == Verdict(
        False, "wrong number of calls: got 1, expected 2")
    assert check([call("get_weather", city="Paris")] * 2, PARIS) == Verdict(
        False, "wrong number of calls: got 2, expected 1")


def test_invalid_syntax_is_a_failure_not_a_crash():
    broken = parsed(parse_error="unterminated JSON object")
    assert check_calls(broken, PARIS, TOOLS) == Verdict(False, "invalid syntax: unterminated JSON object")
    assert check_calls(broken, [], TOOLS) == Verdict(False, "invalid syntax: unterminated JSON object")


def test_no_call_cases_pass_only_without_a_call():
    assert check_calls(parsed(content="Which city?"), [], TOOLS) == Verdict(True, "correct")
    assert check_calls(parsed(call("get_weather", city="Paris")), [], TOOLS) == Verdict(
        False, "expected no call, got 1 call(s): get_weather")
    assert check_calls(parsed(content="It is sunny."), PARIS, TOOLS) == Verdict(
        False, "wrong number of calls: got 0, expected 1")


def test_flat_call_shape_and_plain_call_list_are_accepted():
    assert check_calls([{"name": "get_weather", "arguments": {"city": "Paris"}}], PARIS, TOOLS).ok


def test_gold_naming_a_function_outside_the_tools_is_a_data_error():
    with pytest.raises(ValueError, match="gold answer calls 'book_flight', which is not among the tools"):
        check_calls(parsed(), [gold("book_flight", to=["Oslo"])], TOOLS)
    with pytest.raises(ValueError, match="gold answer calls 'book_flight'"):  # even when syntax is broken
        check_calls(parsed(parse_error="x"), [gold("book_flight", to=["Oslo"])], TOOLS)


def test_gold_from_message_wraps_each_value():
    message = {"role": "assistant", "tool_calls": [
        call("search", query="cats", filters={"min": 1, "max": 2}, tags=["a", "b"]),
        call("convert", amount=2.5)]}
    assert gold_from_message(message) == [
        {"name": "search", "arguments": {"query": ["cats"], "filters": [{"min": [1], "max": [2]}],
                                         "tags": [["a", "b"]]}},
        {"name": "convert", "arguments": {"amount": [2.5]}}]
    assert gold_from_message({"role": "assistant", "content": "Which city?"}) == []
    # the canonical answer always passes its own gold
    assert check_calls(parsed(*message["tool_calls"]), gold_from_message(message), TOOLS).ok


# ----------------------------------------------------------------------------- metrics

def hand_made_records():
    """Eight predictions whose metrics are counted by hand in test_metrics_overall/by_category."""
    weather = call("get_weather", city="Paris")
    return [
        # r1 right call
        score_example(parsed(weather), PARIS, TOOLS, "single", "stop"),
        # r2 right function, wrong argument
        score_example(parsed(call("get_weather", city="Rome")), PARIS, TOOLS, "single", "stop"),
        # r3 one of two parallel calls, cut by the length limit
        score_example(parsed(call("get_weather", city="London")),
                      [gold("get_weather", city=["Paris"]), gold("get_weather", city=["London"])],
                      TOOLS, "parallel", "length"),
        # r4 no tool needed, model answers in text
        score_example(parsed(content="Hello!"), [], TOOLS, "no_tool", "stop"),
        # r5 should ask a question, calls instead
        score_example(parsed(weather), [], TOOLS, "clarification", "stop"),
        # r6 asks the question; stop reason unknown
        score_example(parsed(content="Which city?"), [], TOOLS, "clarification", None),
        # r7 broken call syntax
        score_example(parsed(parse_error="bad JSON"), PARIS, TOOLS, "single", "length"),
        # r8 calls a tool that does not exist
        score_example(parsed(call("get_wether", city="Paris")), PARIS, TOOLS, "single", "stop"),
    ]


def counts(section):
    return {key: (m["count"], m["total"]) for key, m in section.items()}


def test_score_example_record():
    record = hand_made_records()[2]
    assert record == {
        "category": "parallel", "valid_syntax": True, "parse_error": None, "called": True,
        "gold_calls": 2, "predicted_calls": 1, "gold_names": ["get_weather", "get_weather"],
        "predicted_names": ["get_weather"], "tool_selection_ok": False, "argument_pairs": 1,
        "arguments_correct": 1, "hallucinated_calls": 0, "exact": False,
        "reason": "wrong number of calls: got 1, expected 2", "stop_reason": "length"}


def test_metrics_overall():
    overall = compute_metrics(hand_made_records())["overall"]
    assert counts(overall) == {
        "valid_syntax": (7, 8),       # r7 broken
        "call_decision": (7, 8),      # r5 called when it should not (r7's broken call counts as calling)
        "call_precision": (5, 6),     # called: r1 r2 r3 r5 r7 r8; rightly: all but r5
        "call_recall": (5, 5),        # gold calls in r1 r2 r3 r7 r8, all called
        "tool_selection": (2, 5),     # r1 r2 right; r3 one call short, r7 broken, r8 unknown name
        "arguments": (2, 3),          # gold calls with the function called: r1 r2 r3 -> r1, r3 right
        "exact": (3, 8),              # r1 r4 r6
        "hallucinated_tool": (1, 5),  # parsed calls in r1 r2 r3 r5 r8; r8's is unknown
        "clarification": (1, 2),      # r5 calls, r6 asks
        "stop": (5, 7),               # r6 unknown; r3 r7 hit the length limit
    }
    assert overall["exact"]["rate"] == 3 / 8


def test_metrics_by_category():
    by_category = compute_metrics(hand_made_records())["by_category"]
    assert list(by_category) == ["clarification", "no_tool", "parallel", "single"]
    single = by_category["single"]  # r1 r2 r7 r8
    assert counts(single) == {
        "valid_syntax": (3, 4), "call_decision": (4, 4), "call_precision": (4, 4), "call_recall": (4, 4),
        "tool_selection": (2, 4), "arguments": (1, 2), "exact": (1, 4), "hallucinated_tool": (1, 3),
        "clarification": (0, 0), "stop": (3, 4)}
    assert single["clarification"]["rate"] is None
    clarification = by_category["clarification"]  # r5 r6
    assert counts(clarification)["clarification"] == (1, 2)
    assert counts(clarification)["call_precision"] == (0, 1)
    assert counts(clarification)["call_recall"] == (0, 0)
    assert counts(by_category["parallel"])["arguments"] == (1, 1)
    assert counts(by_category["no_tool"])["exact"] == (1, 1)


def test_format_table_single_run():
    records = [score_example(parsed(call("get_weather", city="Paris")), PARIS, TOOLS, "single", "stop"),
               score_example(parsed(content="Hi"), [], TOOLS, "no_tool", "length")]
    table = format_table(compute_metrics(records))
    lines = table.splitlines()
    assert lines[0] == "overall (2 examples)"
    assert "  exact answer                         2/2 (100.0%)" in lines
    assert "  stop rate                            1/2 (50.0%)" in lines
    assert "category no_tool (1 example)" in lines
    assert "clarification" not in table  # no clarification example: the row is left out


def test_format_table_compare_shows_both_runs_and_the_change():
    after = compute_metrics(hand_made_records())
    before_records = [score_example(parsed(content="no idea"), r["gold_names"] and PARIS or [], TOOLS,
                                    r["category"], "length") for r in hand_made_records()]
    before = compute_metrics(before_records)
    # before: text everywhere -> exact only where no call is expected (r4 r5 r6): 3/8
    lines = format_table(after, compare=before).splitlines()
    assert lines[1] == f"  {'metric':<36} {'before':<18} {'after':<18} change"
    assert "  exact answer                         3/8 (37.5%)        3/8 (37.5%)        +0.0 pts" in lines
    assert "  call decision                        3/8 (37.5%)        7/8 (87.5%)        +50.0 pts" in lines
    assert "  stop rate                            0/8 (0.0%)         5/7 (71.4%)        +71.4 pts" in lines
