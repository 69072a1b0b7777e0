"""Checking tool calls against gold answers (the BFCL AST checker's rules) and the evaluation metrics.

    gold = gold_from_message(example.messages[-1])        # the gold answer, possible-answer style
    verdict = check_calls(fmt.parse(text), gold, example.tools)   # Verdict(ok, reason)
    record = score_example(fmt.parse(text), gold, example.tools, example.category, stop_reason)
    metrics = compute_metrics(records)                     # {"overall": {...}, "by_category": {...}}
    print(format_table(metrics_after, compare=metrics_before))

Gold form (the Berkeley Function Calling Leaderboard's "possible answer", with names spelled out):
    [{"name": "get_weather", "arguments": {"city": ["Paris", "Paris, France"], "unit": ["celsius", ""]}}]
Each parameter lists its acceptable values; "" among them means the parameter may be left out. An
acceptable value is a scalar, a list (compared element-wise, in order) or a dict whose keys again list
acceptable values ({"min": [300], "max": [400, ""]}), exactly as in BFCL's possible_answer files.
An empty gold list means "no call" (a text reply); the example's category tells a clarifying question
("clarification") from an irrelevant request.

Rules of a call match (following BFCL's ast_checker.py):
  - a parse() result with parse_error set is invalid syntax and never matches;
  - the name is one of the tools ("unknown function" otherwise) and the gold's; every parameter the schema
    requires is present; none outside the schema, nor outside the gold answer (BFCL rejects an optional
    parameter that the gold answer does not list); a gold parameter the call leaves out must list "";
  - types follow the schema: an int is accepted where a number is declared, a bool is never a number,
    arrays are checked one level deep (each item against `items.type`); like BFCL, a value (or an array
    item) of the gold answer's own type is accepted too (BFCL writes variable names as strings);
  - strings are compared after BFCL's normalisation (normalize_string), also inside lists and dicts;
    numbers by value (5 == 5.0), a bool only to a bool;
  - several calls match in any order: same count, each gold call matched to a distinct predicted call
    (a maximum bipartite matching, so it never depends on the order the model chose).
"""

import re
from collections import Counter
from dataclasses import dataclass

from minifc.schema import fits_type, json_type, type_names


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str  # "correct" when ok, else what went wrong first


# ----------------------------------------------------------------------------- calls, tools, gold

def call_name_arguments(call: dict) -> tuple[str, object]:
    """(name, arguments) of a canonical {"type": "function", "function": {...}} or a flat {"name", "arguments"} call."""
    function = call.get("function", call)
    return function.get("name"), function.get("arguments", {})


def _tool_schemas(tools: list[dict]) -> dict[str, dict]:
    """Each tool's name -> its function dict ({name, description, parameters}); entries without a name are left out."""
    functions = (tool.get("function", tool) for tool in tools or [] if isinstance(tool, dict))
    return {f["name"]: f for f in functions if isinstance(f, dict) and isinstance(f.get("name"), str)}


def gold_from_message(message: dict) -> list[dict]:
    """The gold answer of a canonical assistant message: each argument value becomes the single acceptable
    value [value] (dict values become {key: [value]} all the way down). A text reply gives [] (no call)."""
    return [{"name": name, "arguments": {key: [_acceptable(value)] for key, value in arguments.items()}}
            for name, arguments in map(call_name_arguments, message.get("tool_calls") or [])]


def _acceptable(value):
    if isinstance(value, dict):
        return {key: [_acceptable(item)] for key, item in value.items()}
    if isinstance(value, list):
        return [_acceptable(item) for item in value]
    return value


def predicted_calls(predicted) -> tuple[list[dict], str | None]:
    """(calls, parse_error) from a parse() result dict or a plain list of calls."""
    if isinstance(predicted, dict):
        return list(predicted.get("tool_calls") or []), predicted.get("parse_error")
    return list(predicted), None


# ----------------------------------------------------------------------------- values and types

def normalize_string(text: str) -> str:
    """BFCL's string normalisation: drop spaces and , . / - _ * ^, lowercase, single quotes to double."""
    return re.sub(r"[ ,./\-_*^]", "", text).lower().replace("'", '"')


def _object(value) -> dict:
    """A schema part that should be an object, or {} when it is not (the tool's schema is malformed: data
    validation reports that; the checker must not crash on it)."""
    return value if isinstance(value, dict) else {}


def _type_error(param: str, value, schema: dict, alternatives: list) -> str | None:
    if not fits_type(value, schema):  # schema.fits_type: an absent or unknown type passes
        # BFCL: when the gold answer's values have another type than the schema (variables written as
        # strings), a value of the gold's type is accepted and compared as such.
        if json_type(value) not in {json_type(a) for a in alternatives if a != ""}:
            return f"type mismatch for '{param}': expected {' or '.join(type_names(schema))}, got {json_type(value)}"
    elif schema.get("type") == "array":  # the items too, one level deep, as BFCL (again also of the gold's type)
        items = _object(schema.get("items"))
        gold_items = {json_type(x) for a in alternatives if isinstance(a, list) for x in a}
        for i, item in enumerate(value):
            if not fits_type(item, items) and json_type(item) not in gold_items:
                return (f"type mismatch for '{param}' item {i}: expected {' or '.join(type_names(items))}, "
                        f"got {json_type(item)}")
    return None


def _listed(alternatives) -> list:
    """A dict key's acceptable values. BFCL writes some dicts nested in a gold value flat ({"x": 10.5}
    rather than {"x": [10.5]}): a value that is not a list is then the one acceptable value."""
    return alternatives if isinstance(alternatives, list) else [alternatives]


def _value_matches(value, acceptable) -> bool:
    """Does `value` equal one acceptable value (strings normalised, lists in order, dicts key by key)?"""
    if isinstance(acceptable, dict):  # every key of `value` matches; every key it leaves out lists ""
        return (isinstance(value, dict)
                and all(key in acceptable and any(_value_matches(item, a) for a in _listed(acceptable[key]))
                        for key, item in value.items())
                and all("" in _listed(alternatives) for key, alternatives in acceptable.items() if key not in value))
    if isinstance(acceptable, (list, tuple)):
        return (isinstance(value, (list, tuple)) and len(value) == len(acceptable)
                and all(_value_matches(v, a) for v, a in zip(value, acceptable)))
    if isinstance(acceptable, str):
        return isinstance(value, str) and normalize_string(value) == normalize_string(acceptable)
    if isinstance(acceptable, bool) or isinstance(value, bool):
        return type(value) is type(acceptable) and value == acceptable  # True is not 1
    if isinstance(acceptable, (int, float)):
        return isinstance(value, (int, float)) and value == acceptable  # 5 == 5.0
    return value == acceptable


# ----------------------------------------------------------------------------- checking calls

def _check_call(call: dict, gold_call: dict, schemas: dict[str, dict]) -> Verdict:
    """Check one predicted call against one gold call ({"name", "arguments": {param: [acceptable]}})."""
    name, arguments = call_name_arguments(call)
    if name not in schemas:
        return Verdict(False, f"unknown function {name!r} (not among the tools)")
    if name != gold_call["name"]:
        return Verdict(False, f"wrong function name: got {name!r}, expected {gold_call['name']!r}")
    if not isinstance(arguments, dict):
        return Verdict(False, f"arguments of {name!r} are not an object: {arguments!r}")
    parameters = _object(schemas[name].get("parameters"))
    properties = _object(parameters.get("properties"))
    gold_arguments = gold_call["arguments"]
    required = parameters.get("required")
    for param in required if isinstance(required, list) else []:
        if isinstance(param, str) and param not in arguments:
            return Verdict(False, f"missing required parameter '{param}'")
    for param, value in arguments.items():
        if param not in properties:
            return Verdict(False, f"unexpected parameter '{param}' (not in the schema of {name!r})")
        if param not in gold_arguments:
            return Verdict(False, f"unexpected parameter '{param}' (the gold answer leaves it out)")
        alternatives = gold_arguments[param]
        if error := _type_error(param, value, _object(properties[param]), alternatives):
            return Verdict(False, error)
        if not any(_value_matches(value, a) for a in alternatives):
            return Verdict(False, f"value mismatch for '{param}': got {value!r}, allowed {alternatives!r}")
    for param, alternatives in gold_arguments.items():
        if param not in arguments and "" not in alternatives:
            return Verdict(False, f"missing parameter '{param}' (the gold answer requires it)")
    return Verdict(True, "correct")


def _verdicts(calls: list[dict], gold: list[dict], schemas: dict) -> list[list[Verdict]]:
    """verdicts[g][p]: predicted call p checked against gold call g."""
    return [[_check_call(call, gold_call, schemas) for call in calls] for gold_call in gold]


def _max_matching(verdicts: list[list[Verdict]]) -> dict[int, int]:
    """Maximum bipartite matching (Kuhn's augmenting paths) of gold calls g to predicted calls p where
    verdicts[g][p].ok. Returns {predicted index: gold index}."""
    owner: dict[int, int] = {}

    def augment(g: int, seen: set) -> bool:
        for p, verdict in enumerate(verdicts[g]):
            if verdict.ok and p not in seen:
                seen.add(p)
                if p not in owner or augment(owner[p], seen):
                    owner[p] = g
                    return True
        return False

    for g in range(len(verdicts)):
        augment(g, set())
    return owner


def check_calls(predicted, gold: list[dict], tools: list[dict]) -> Verdict:
    """Check a model's answer: `predicted` is a parse() result (or a list of calls), `gold` the gold calls
    (possible-answer style; [] = no call expected), `tools` the example's tools."""
    calls, parse_error = predicted_calls(predicted)
    schemas = _tool_schemas(tools)
    for gold_call in gold:
        if gold_call["name"] not in schemas:
            raise ValueError(f"gold answer calls {gold_call['name']!r}, which is not among the tools "
                             f"({', '.join(schemas) or 'none'}): fix the example's tools or its answer")
    if parse_error is not None:
        return Verdict(False, f"invalid syntax: {parse_error}")
    names = [call_name_arguments(call)[0] for call in calls]
    if not gold and calls:
        return Verdict(False, f"expected no call, got {len(calls)} call(s): {', '.join(map(str, names))}")
    if len(calls) != len(gold):
        return Verdict(False, f"wrong number of calls: got {len(calls)}, expected {len(gold)}")
    if len(gold) == 1:
        return _check_call(calls[0], gold[0], schemas)
    verdicts = _verdicts(calls, gold, schemas)
    matched = _max_matching(verdicts).values()
    unmatched = [g for g in range(len(gold)) if g not in matched]
    if not unmatched:  # also when no call was due and none was made
        return Verdict(True, "correct")
    g = unmatched[0]
    name = gold[g]["name"]
    why = verdicts[g][names.index(name)].reason if name in names else f"no call to {name!r}"
    return Verdict(False, f"no predicted call matches gold call {g + 1} ({name}): {why}")


# ----------------------------------------------------------------------------- metrics

def score_example(parsed, gold: list[dict], tools: list[dict], category: str | None = None,
                  stop_reason: str | None = None) -> dict:
    """Everything the metrics need about one example, as a JSON-ready record.

    `parsed`: the format's parse() result; `gold`: gold calls ([] = text reply); `stop_reason`: "stop"
    (generation ended on an end token), "length" (hit the token limit) or None (unknown)."""
    calls, parse_error = predicted_calls(parsed)
    valid = parse_error is None
    schemas = _tool_schemas(tools)
    verdict = check_calls(parsed, gold, tools)
    names = [call_name_arguments(call)[0] for call in calls] if valid else []
    gold_names = [g["name"] for g in gold]
    predicted_count, gold_count = Counter(names), Counter(gold_names)
    return {
        "category": category,
        "valid_syntax": valid,
        "parse_error": parse_error,
        # A broken call (invalid syntax) still counts as a decision to call.
        "called": bool(calls) or not valid,
        "gold_calls": len(gold),
        "predicted_calls": len(names),
        "gold_names": gold_names,
        "predicted_names": names,
        "tool_selection_ok": valid and predicted_count == gold_count,
        "argument_pairs": sum(min(n, predicted_count[name]) for name, n in gold_count.items()),
        "arguments_correct": len(_max_matching(_verdicts(calls, gold, schemas))) if valid else 0,
        "hallucinated_calls": sum(name not in schemas for name in names),
        "exact": verdict.ok,
        "reason": verdict.reason,
        "stop_reason": stop_reason,
    }


# metric key -> label in tables; the order of the table rows.
_METRICS = {
    "valid_syntax": "valid syntax",
    "call_decision": "call decision",
    "call_precision": "calling precision",
    "call_recall": "calling recall",
    "tool_selection": "tool selection",
    "arguments": "argument accuracy",
    "exact": "exact answer",
    "hallucinated_tool": "hallucinated tool (lower is better)",
    "clarification": "clarification",
    "stop": "stop rate",
}


def _metric_counts(record: dict) -> dict[str, tuple[int, int]]:
    """(numerator, denominator) each metric takes from one record; a metric's rate is the sum of
    numerators over the sum of denominators. See README "Metrics" for the definitions in words."""
    should_call = record["gold_calls"] > 0
    called = record["called"]
    asks = record["category"] == "clarification"  # the gold answer is a clarifying question
    stopped = record["stop_reason"] is not None
    # Each numerator counts only what its denominator counts.
    return {
        "valid_syntax": (record["valid_syntax"], 1),                      # all examples
        "call_decision": (called == should_call, 1),                      # all examples
        "call_precision": (called and should_call, called),               # examples where the model called
        "call_recall": (called and should_call, should_call),             # examples whose gold calls
        "tool_selection": (should_call and record["tool_selection_ok"], should_call),
        "arguments": (record["arguments_correct"], record["argument_pairs"]),  # gold calls named right
        "exact": (record["exact"], 1),                                     # all examples
        "hallucinated_tool": (record["hallucinated_calls"], record["predicted_calls"]),  # parsed calls
        "clarification": (asks and not called, asks),                      # clarification examples
        "stop": (stopped and record["stop_reason"] == "stop", stopped),    # examples with a stop reason
    }


def _summarize(records: list[dict]) -> dict:
    sums = {key: [0, 0] for key in _METRICS}
    for record in records:
        for key, (count, total) in _metric_counts(record).items():
            assert count <= total, (key, record)
            sums[key][0] += int(count)
            sums[key][1] += int(total)
    return {key: {"count": c, "total": t, "rate": c / t if t else None} for key, (c, t) in sums.items()}


def compute_metrics(records: list[dict]) -> dict:
    """{"overall": {metric: {"count", "total", "rate"}}, "by_category": {category: {...}}}; rate is None
    where the denominator is 0. Records without a category are grouped under "none"."""
    categories = sorted({r["category"] or "none" for r in records})
    return {"overall": _summarize(records),
            "by_category": {c: _summarize([r for r in records if (r["category"] or "none") == c])
                            for c in categories}}


# ----------------------------------------------------------------------------- the report table

def _cell(metric: dict | None) -> str:
    return f"{metric['count']}/{metric['total']} ({metric['rate']:.1%})" if metric and metric["total"] else "n/a"


def _change(before: dict | None, after: dict | None) -> str:
    if not before or not after or before["rate"] is None or after["rate"] is None:
        return ""
    return f"{(after['rate'] - before['rate']) * 100:+.1f} pts"


def format_table(metrics: dict, compare: dict | None = None,
                 labels: tuple[str, str] = ("before", "after")) -> str:
    """A readable table of compute_metrics() output, overall then per category. With `compare` (the
    metrics of the earlier run), shows both side by side — `compare` under labels[0], `metrics` under
    labels[1] — with the change of each rate in percentage points."""
    categories = sorted(set(metrics["by_category"]) | set((compare or {}).get("by_category", {})))
    lines = []
    for name, title in [("overall", "overall")] + [(c, f"category {c}") for c in categories]:
        after = metrics["overall"] if name == "overall" else metrics["by_category"].get(name)
        before = None
        if compare is not None:
            before = compare["overall"] if name == "overall" else compare["by_category"].get(name, {})
        examples = (after or before)["exact"]["total"]
        lines.append(f"{title} ({examples} example{'' if examples == 1 else 's'})")
        if before is not None:
            lines.append(f"  {'metric':<36} {labels[0]:<18} {labels[1]:<18} change")
        for key, label in _METRICS.items():
            new, old = (after or {}).get(key), (before or {}).get(key)
            if not (new and new["total"]) and not (old and old["total"]):
                continue  # a metric that does not apply to this section (e.g. clarification in "simple")
            if before is None:
                lines.append(f"  {label:<36} {_cell(new)}")
            else:
                lines.append(f"  {label:<36} {_cell(old):<18} {_cell(new):<18} {_change(old, new)}".rstrip())
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
