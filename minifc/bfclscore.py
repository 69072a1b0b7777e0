"""BFCL scores of an evaluation run: BFCL's verdict per answer, accuracy per category, the leaderboard's
aggregates, and their table.

    records = score_bfcl(entries, predictions)   # adds prediction["bfcl"]; records for compute_metrics()
    scores = bfcl_scores(predictions)            # {"categories": {...}, "aggregates": {...}}
    print(format_bfcl({"base": scores}))

Accuracy per category is the share of entries BFCL's checker passes (minifc.bfclcheck). The aggregates
are the leaderboard's, computed as its eval_runner_helper.py does:
  non-live simple AST   unweighted mean of simple_python, simple_java, simple_javascript
  non-live AST          unweighted mean of that, multiple, parallel, parallel_multiple
  live AST              live_simple, live_multiple, live_parallel, live_parallel_multiple weighted by
                        their entries (correct answers over entries)
  irrelevance           unweighted mean of irrelevance and live_irrelevance
  relevance             live_relevance
An aggregate is None (n/a) unless all its categories were run, as the leaderboard shows N/A; with
--limit, a category's entries are those evaluated.

minifc's own metrics stay beside these: on Java and JavaScript entries they check the values BFCL reads
from the source text, against the functions' own types; live_relevance, which has no gold answer (any
well-formed call passes), is left out of them.
"""

from minifc.bfcl import BfclEntry, canonical_category, convert_function
from minifc.bfclcheck import bfcl_verdict
from minifc.bfcllang import NESTED, convert
from minifc.chat.kit import tool_call
from minifc.evaluate import call_name_arguments, predicted_calls, score_example

AGGREGATES = {"non_live_simple_ast": "non-live simple (3 langs)", "non_live_ast": "non-live AST summary",
              "live_ast": "live AST summary", "irrelevance": "irrelevance detection",
              "relevance": "relevance detection"}  # key -> label in the table


def score_bfcl(entries: list[BfclEntry], predictions: list[dict]) -> list[dict]:
    """Add BFCL's verdict to each prediction of run_eval() (in the order of `entries`) as
    prediction["bfcl"] = {"category", "ok", "reason"}, and return the records of minifc's own metrics
    (Java and JavaScript ones checked again on the values BFCL reads; live_relevance left out)."""
    if len(entries) != len(predictions):
        raise ValueError(f"{len(entries)} BFCL entries but {len(predictions)} predictions")
    records = []
    for entry, prediction in zip(entries, predictions):
        verdict = bfcl_verdict(prediction["parsed"], entry.functions, entry.ground_truth, entry.kind)
        prediction["bfcl"] = {"category": entry.category, "ok": verdict.ok, "reason": verdict.reason}
        if entry.kind == "live_relevance":
            prediction.update(verdict=None, reason="no gold answer: BFCL's verdict only", record=None)
            continue
        if entry.language != "python":
            record = score_example(source_values(prediction["parsed"], entry), entry.gold(),
                                   [convert_function(function) for function in entry.functions],
                                   prediction["category"], prediction["stop_reason"])
            prediction.update(verdict="correct" if record["exact"] else "wrong", reason=record["reason"],
                              record=record)
        records.append(prediction["record"])
    return records


def source_values(parsed, entry: BfclEntry):
    """A parse() result with each string argument of a Java or JavaScript call read as BFCL reads it
    (left as it is where BFCL's converter fails)."""
    calls, parse_error = predicted_calls(parsed)
    if parse_error is not None:
        return parsed
    functions = {function["name"]: function for function in entry.functions}
    read = []
    for call in calls:
        name, arguments = call_name_arguments(call) if isinstance(call, dict) else (None, None)
        function = functions.get(name) if isinstance(name, str) else None
        properties = ((function or {}).get("parameters") or {}).get("properties") or {}
        if isinstance(arguments, dict):
            arguments = {param: _read(value, properties.get(param), entry.language)
                         for param, value in arguments.items()}
        read.append(tool_call(name, arguments))
    return {**parsed, "tool_calls": read} if isinstance(parsed, dict) else read


def _read(value, schema, language: str):
    if not isinstance(value, str) or not isinstance(schema, dict):
        return value
    try:
        item_type = schema["items"]["type"] if schema.get("type") in NESTED[language] else None
        return convert(value, schema["type"], item_type, language)
    except (KeyError, TypeError, ValueError, NotImplementedError):
        return value


def bfcl_scores(predictions: list[dict]) -> dict:
    """{"categories": {category: {"correct", "total", "accuracy"}}, "aggregates": {key: accuracy or None}}
    from predictions annotated by score_bfcl(); categories as their files name them, in the order run."""
    categories = {}
    for prediction in predictions:
        counts = categories.setdefault(prediction["bfcl"]["category"], {"correct": 0, "total": 0})
        counts["correct"] += prediction["bfcl"]["ok"]
        counts["total"] += 1
    for counts in categories.values():
        counts["accuracy"] = counts["correct"] / counts["total"]
    return {"categories": categories, "aggregates": aggregates(categories)}


def aggregates(categories: dict) -> dict:
    """The leaderboard's aggregates (see the module's docstring) of per-category counts; None where a
    category they need is missing. Categories are read by their v4 names (v3's simple is simple_python)."""
    merged = {}
    for name, counts in categories.items():
        total = merged.setdefault(canonical_category(name), {"correct": 0, "total": 0})
        total["correct"] += counts["correct"]
        total["total"] += counts["total"]
    categories = merged
    accuracy = {name: counts["correct"] / counts["total"] for name, counts in categories.items()}

    def mean(names):
        return None if any(accuracy.get(n) is None for n in names) else sum(accuracy[n] for n in names) / len(names)

    def weighted(names):  # correct answers over entries
        if any(n not in categories for n in names):
            return None
        return sum(categories[n]["correct"] for n in names) / sum(categories[n]["total"] for n in names)

    accuracy["non_live_simple_ast"] = mean(("simple_python", "simple_java", "simple_javascript"))
    return {"non_live_simple_ast": accuracy["non_live_simple_ast"],
            "non_live_ast": mean(("non_live_simple_ast", "multiple", "parallel", "parallel_multiple")),
            "live_ast": weighted(("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")),
            "irrelevance": mean(("irrelevance", "live_irrelevance")),
            "relevance": accuracy.get("live_relevance")}


def format_bfcl(runs: dict[str, dict]) -> str:
    """The BFCL table of one or more runs ({label: bfcl_scores()}): correct/total and accuracy per
    category, then the leaderboard's aggregates; with two runs, the change in points."""
    labels = list(runs)
    if len(labels) == 1:
        header = f"{'BFCL category':<26} {'correct':>9} {'accuracy':>9}"
    else:
        header = f"{'BFCL category':<26}" + "".join(f" {label:>19}" for label in labels) + " change"
    lines = [header]
    for category in dict.fromkeys(c for label in labels for c in runs[label]["categories"]):
        cells = [runs[label]["categories"].get(category) for label in labels]
        lines.append(f"{category:<26}" + "".join(f" {c['correct']:>4}/{c['total']:<4} {c['accuracy']:>9.2%}"
                                                 if c else f" {'n/a':>19}" for c in cells)
                     + _change([c and c["accuracy"] for c in cells]))
    for key, label in AGGREGATES.items():
        values = [runs[run]["aggregates"][key] for run in labels]
        lines.append(f"{label:<26}" + "".join(f" {_percent(v):>19}" for v in values) + _change(values))
    lines.append("(the leaderboard's aggregates; n/a until all their categories are run: --bfcl all)")
    return "\n".join(lines) + "\n"


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _change(values: list) -> str:
    if len(values) != 2 or None in values:
        return ""
    return f" {(values[1] - values[0]) * 100:+.1f} pts"
