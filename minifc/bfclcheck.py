"""BFCL's verdict: would the Berkeley Function Calling Leaderboard's own checker pass this answer?

    verdict = bfcl_verdict(fmt.parse(text), functions, ground_truth, "simple_python")   # Verdict(ok, reason)

`functions` and `ground_truth` are a BFCL entry's own "function" and "ground_truth" fields (BFCL type
names, possible answers [{name: {param: [acceptable values]}}]); the category decides the rule. These
are the rules of BFCL's ast_checker.py and eval_runner.py (bfcl-eval 2026.3.23), re-derived from its
source, quirks included; minifc.evaluate keeps minifc's own rules (order-free, every call checked) beside these.

The answer: a parse() result that failed (parse_error) did not decode; otherwise its calls are BFCL's
decoded output, one {name: arguments} per call, well formed when every name is a string and every
arguments value an object.
  - irrelevance, live_irrelevance: pass when there is no well-formed call (text, a parse error, or
    malformed calls all count as no call); live_relevance: pass when there is one, whatever it calls.
  - simple_* and live_simple: exactly one call, checked against the first function and the gold call.
  - multiple, live_multiple: as many calls as gold calls; only the first call is checked, against the
    function the first gold call names.
  - parallel*, live_parallel*: as many calls as gold calls; gold calls are taken in order, each paired
    with the first call (in the model's order) not yet paired that passes it. This greedy pairing can
    fail where another pairing exists.
One call against one gold call: the name must be the function's; every parameter the schema requires
present; every parameter given must be in the schema and in the gold answer; every gold parameter left
out must list "" (optional). Each value given:
  - Python: an int becomes a float where the schema says float (the whole value only, not array items);
    Java and JavaScript: the value must be a string of source text, converted by minifc.bfcllang.
  - Its type must be the schema's (bool is not int) or the gold answer's own: the type of the first
    acceptable value other than "" (BFCL writes variable names as strings). Arrays check their items one
    level deep, each item of the schema's item type or of the gold list's own item type; a gold answer
    whose first acceptable value is not a list (such as "") skips the item check.
  - When the gold's type differs from the schema's, the value must equal an acceptable value exactly.
    Otherwise strings compare after normalize_string (spaces and , . / - _ * ^ dropped, lowercase,
    ' -> "); lists element by element, normalising only strings directly in the list; dicts key by key,
    normalising only string values directly under a key (strings in a list under a key compare exactly);
    lists of dicts dict by dict; anything else by Python's == (so 1 == 1.0 == True inside lists).
  - A string that normalises to "" (" ", "-") matches an acceptable "": BFCL's checker reads "" both as
    "may be left out" and as a value.
Where BFCL's checker would raise (a float too big for a float, a Java Set, an unknown type name, a
gold answer shaped unlike BFCL's data), the answer counts wrong. This module never raises on any answer.
"""

from minifc.bfcllang import NESTED, TYPES, convert, language_of
from minifc.evaluate import Verdict, call_name_arguments, normalize_string, predicted_calls


def bfcl_verdict(parsed, functions: list[dict], ground_truth: list[dict], category: str) -> Verdict:
    """BFCL's verdict on one answer. `parsed`: a parse() result or a list of calls; `functions`, the
    entry's BFCL function descriptions; `ground_truth`, its possible answers ([] for (ir)relevance)."""
    decoded = _decoded(parsed)
    if "irrelevance" in category:
        return Verdict(not _has_call(decoded), "correct" if not _has_call(decoded) else "a call where none is due")
    if "relevance" in category:
        return Verdict(_has_call(decoded), "correct" if _has_call(decoded) else "no well-formed call")
    gold = [call for answer in ground_truth for call in answer.items()]  # [(name, {param: [acceptable]})]
    names = {function["name"] for function in functions}
    if not gold or any(name not in names for name, _ in gold):
        raise ValueError(f"a {category} entry needs gold calls to its functions ({', '.join(names)}), got "
                         f"{ground_truth!r}: fix the entry's ground truth")
    if decoded is None:
        return Verdict(False, f"invalid syntax: {predicted_calls(parsed)[1]}")
    if not _well_formed(decoded):
        return Verdict(False, "a call whose name is not a string or whose arguments are not an object")
    language = language_of(category)
    if len(decoded) != len(gold):
        return Verdict(False, f"wrong number of calls: got {len(decoded)}, expected {len(gold)}")
    if "parallel" in category:
        return _pair_greedily(decoded, gold, functions, language)
    function = _function(functions, gold[0][0]) if "multiple" in category else functions[0]
    return _check_call(decoded[0], gold[0], function, language)


def _decoded(parsed) -> list[tuple] | None:
    """[(name, arguments)] of the answer's calls; None when it did not decode (a parse error)."""
    calls, parse_error = predicted_calls(parsed)
    if parse_error is not None:
        return None
    return [call_name_arguments(call) if isinstance(call, dict) else (None, None) for call in calls]


def _well_formed(decoded: list[tuple]) -> bool:
    return all(isinstance(name, str) and isinstance(arguments, dict) for name, arguments in decoded)


def _has_call(decoded) -> bool:
    """BFCL's test for a function call: decoded, not empty, and well formed."""
    return bool(decoded) and _well_formed(decoded)


def _function(functions: list[dict], name: str) -> dict:
    return next(function for function in functions if function["name"] == name)


def _pair_greedily(decoded, gold, functions, language) -> Verdict:
    paired = set()
    for g, gold_call in enumerate(gold):
        function = _function(functions, gold_call[0])
        reasons = []
        for p, call in enumerate(decoded):
            if p in paired:
                continue
            verdict = _check_call(call, gold_call, function, language)
            if verdict.ok:
                paired.add(p)
                break
            reasons.append(f"call {p + 1}: {verdict.reason}")
        else:
            return Verdict(False, f"no call left that matches gold call {g + 1} ({gold_call[0]}): "
                                  + "; ".join(reasons))
    return Verdict(True, "correct")


# ----------------------------------------------------------------------------- one call

def _check_call(call: tuple, gold_call: tuple, function: dict, language: str) -> Verdict:
    (name, arguments), (_, gold_arguments) = call, gold_call
    parameters = function.get("parameters") or {}
    properties = parameters.get("properties") or {}
    if name != function["name"]:
        return Verdict(False, f"wrong function name: got {name!r}, expected {function['name']!r}")
    for param in parameters.get("required") or []:
        if param not in arguments:
            return Verdict(False, f"missing required parameter {param!r}")
    for param, value in arguments.items():
        if param not in properties or param not in gold_arguments:
            return Verdict(False, f"unexpected parameter {param!r}")
        if error := _check_value(param, value, properties[param], gold_arguments[param], language):
            return Verdict(False, error)
    for param, alternatives in gold_arguments.items():
        if param not in arguments and "" not in alternatives:
            return Verdict(False, f"missing parameter {param!r} (the gold answer does not list \"\")")
    return Verdict(True, "correct")


def _check_value(param: str, value, schema: dict, alternatives: list, language: str) -> str | None:
    """What is wrong with one parameter's value, or None."""
    if language != "python" and type(value) is not str:
        return f"type error for {param!r}: a {language} value must be source text (a string), got {value!r}"
    try:
        value, expected, item_type = _read_value(value, schema, language)
    except (KeyError, TypeError, ValueError, OverflowError, NotImplementedError) as error:
        return f"BFCL's checker fails on {param!r} ({type(error).__name__}: {error}): counted wrong"
    type_ok, variable = _type_check(value, alternatives, expected, item_type)
    if not type_ok:
        what = f"{schema['type']} of {schema['items']['type']} items" if type(value) is expected else schema["type"]
        return f"type error for {param!r}: expected {what}, got {value!r}"
    if variable:
        matched = value in alternatives
    elif expected is dict:
        matched = any(_dict_matches(value, a) for a in alternatives if a != "")
    elif expected is list and item_type is dict:
        matched = any(_dicts_match(value, a) for a in alternatives)
    elif expected is str:
        matched = normalize_string(value) in [normalize_string(a) for a in alternatives if type(a) is str]
    elif expected is list:
        matched = _normalized(value) in [_normalized(a) for a in alternatives if type(a) in (list, str)]
    else:
        matched = value in alternatives
    return None if matched else f"value mismatch for {param!r}: got {value!r}, allowed {alternatives!r}"


def _read_value(value, schema: dict, language: str) -> tuple:
    """(the value as BFCL compares it, the Python type it must have, the item type or None)."""
    type_name = schema["type"]
    expected = TYPES[language][type_name]
    item_name = schema["items"]["type"] if type_name in NESTED[language] else None
    item_type = TYPES[language][item_name] if item_name is not None else None
    if language == "python":
        return (float(value) if type_name == "float" and type(value) is int else value), expected, item_type
    return convert(value, type_name, item_name, language), expected, item_type


def _gold_type(alternatives: list):
    """The type of the first acceptable value other than "" (None when there is none)."""
    return next((type(a) for a in alternatives if a != ""), None)


def _type_check(value, alternatives: list, expected: type, item_type: type | None) -> tuple[bool, bool]:
    """(type ok, compared as a variable): BFCL's type_checker."""
    gold_type = _gold_type(alternatives)
    variable = gold_type is not None and gold_type is not expected
    if type(value) is expected:
        if item_type is None:
            return True, variable
        items_ok = any(type(a) is not list or all(_type_check(item, a, item_type, None)[0] for item in value)
                       for a in alternatives)
        return items_ok, variable
    return gold_type is not None and type(value) is gold_type, True


def _normalized(sequence) -> list:
    """A list with the strings directly in it normalised; a string is read as its characters, as BFCL
    does when an acceptable value of a list parameter is a string ("" becomes [])."""
    return [normalize_string(item) if type(item) is str else item for item in sequence]


def _dict_matches(value: dict, acceptable) -> bool:
    """BFCL's dict_checker for one acceptable dict {key: [acceptable values]}. A key written flat with a
    string ({"format": "epoch_millis"}) is read as its characters, and may be left out ("" is in any
    string)."""
    if not isinstance(acceptable, dict) or not all(type(v) in (list, str) for v in acceptable.values()):
        return False  # BFCL's checker would raise
    for key, item in value.items():
        if key not in acceptable:
            return False
        if (normalize_string(item) if type(item) is str else item) not in _normalized(acceptable[key]):
            return False
    return all(key in value or "" in allowed for key, allowed in acceptable.items())


def _dicts_match(value: list, acceptable) -> bool:
    """BFCL's list_dict_checker for one acceptable list of dicts ("" stands for the empty list)."""
    acceptable = [] if acceptable == "" else acceptable
    if not isinstance(acceptable, list) or len(value) != len(acceptable):
        return False
    return all(isinstance(v, dict) and _dict_matches(v, a) for v, a in zip(value, acceptable))
