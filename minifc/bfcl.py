"""Berkeley Function Calling Leaderboard (BFCL) files -> canonical Examples with gold answers.

    pairs = load_bfcl("BFCL_v3_simple.json")   # finds possible_answer/BFCL_v3_simple.json beside it
    for example, gold in pairs: ... score_example(parsed, gold, example.tools, example.category, ...)
    print(format_bfcl(compute_metrics(records)))

File shapes (BFCL v3; JSON lines despite the .json suffix):
  question file  BFCL_v3_<category>.json, one object per line:
      {"id": "simple_0",
       "question": [[{"role": "user", "content": "..."}]],          # a list of turns, each a message list
       "function": [{"name": "calc_area", "description": "...",
                     "parameters": {"type": "dict", "properties": {"base": {"type": "integer", ...}},
                                    "required": ["base"]}}]}
  answer file    possible_answer/BFCL_v3_<category>.json, one object per line:
      {"id": "simple_0", "ground_truth": [{"calc_area": {"base": [10], "unit": ["units", ""]}}]}
The irrelevance categories have no answer file: their gold is "no call". Older (v1) files with a plain
string `question` and a single dict `function` are read too.

BFCL's Python-flavoured schema type names (dict, float, tuple, any) become JSON Schema ones everywhere
in the schema. Only the single-turn AST categories are supported (simple, multiple, parallel,
parallel_multiple, irrelevance and their live_ versions); the others (multi_turn, java, javascript,
exec, rest, sql, live_relevance, ...) need other checkers and are refused with an error.

Accuracy per category is the exact-answer rate of minifc.evaluate (BFCL's AST accuracy). One knowingly
stricter rule: BFCL passes an irrelevance case when the output cannot be decoded into calls at all,
while minifc counts a broken call (parse_error) as a failure; a plain text reply passes in both.
"""

import json
import re
from pathlib import Path

from minifc.chat.kit import function_tool
from minifc.schema import Example

_BFCL_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": "string"}
_NO_CALL_CATEGORIES = ("irrelevance", "live_irrelevance")
_SUPPORTED_CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple", "live_simple", "live_multiple",
                         "live_parallel", "live_parallel_multiple") + _NO_CALL_CATEGORIES


def convert_schema(schema):
    """A copy of a BFCL schema with the type names mapped (recursively: properties, items, ...)."""
    if isinstance(schema, list):
        return [convert_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            converted[key] = _BFCL_TYPES.get(value, value)
        elif key == "properties" and isinstance(value, dict):
            converted[key] = {name: convert_schema(prop) for name, prop in value.items()}
        else:
            converted[key] = convert_schema(value)
    return converted


def convert_function(function: dict) -> dict:
    """A BFCL function description -> a canonical tool {"type": "function", "function": {...}}."""
    parameters = function.get("parameters") or {"type": "dict", "properties": {}}
    return function_tool({"name": function["name"], "description": function.get("description", ""),
                          "parameters": convert_schema(parameters)})


def _category_of(path: Path, row_id: str) -> str:
    """The BFCL category from the file name (BFCL_v3_<category>.json), else from the id ("simple_12",
    "live_multiple_3-1-0")."""
    match = re.fullmatch(r"BFCL_v\d+_(.+?)\.jsonl?", path.name)
    if match:
        return match.group(1)
    match = re.fullmatch(r"(.+?)_\d+(-\d+)*", row_id)
    return match.group(1) if match else row_id


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    rows = []
    with open(path, encoding="utf-8") as file:
        for lineno, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({error}); BFCL files hold one JSON "
                                 f"object per line") from None
            if not isinstance(row, dict) or "id" not in row:
                raise ValueError(f"{path}:{lineno}: expected a JSON object with an \"id\" field")
            rows.append((lineno, row))
    return rows


def _messages(question, where: str) -> list[dict]:
    if isinstance(question, str):  # BFCL v1
        return [{"role": "user", "content": question}]
    if not (isinstance(question, list) and len(question) == 1 and isinstance(question[0], list)):
        raise ValueError(f"{where}: field \"question\" must be a list holding one turn (a list of "
                         f"messages); multi-turn BFCL categories are not supported")
    for message in question[0]:
        if not (isinstance(message, dict) and "role" in message and "content" in message):
            raise ValueError(f"{where}: each message in \"question\" needs \"role\" and \"content\"")
    return [dict(message) for message in question[0]]


def _functions(function, where: str) -> list[dict]:
    functions = [function] if isinstance(function, dict) else function  # v1: a single dict
    if not isinstance(functions, list) or not all(isinstance(f, dict) and "name" in f for f in functions):
        raise ValueError(f"{where}: field \"function\" must be a list of function descriptions with names")
    return functions


def _gold(ground_truth, tool_names: set, where: str) -> list[dict]:
    """BFCL ground truth [{func_name: {param: [acceptable values]}}] -> [{"name", "arguments"}]."""
    if not isinstance(ground_truth, list):
        raise ValueError(f"{where}: field \"ground_truth\" must be a list of {{function: arguments}}")
    gold = []
    for entry in ground_truth:
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise ValueError(f"{where}: each ground_truth entry must be {{function name: arguments}}, "
                             f"got {entry!r}")
        (name, arguments), = entry.items()
        if not isinstance(arguments, dict) or not all(isinstance(v, list) for v in arguments.values()):
            raise ValueError(f"{where}: arguments of {name!r} must map each parameter to a list of "
                             f"acceptable values, got {arguments!r}")
        if name not in tool_names:
            raise ValueError(f"{where}: ground truth calls {name!r}, which the question's functions do "
                             f"not define ({', '.join(sorted(tool_names))})")
        gold.append({"name": name, "arguments": arguments})
    return gold


def load_bfcl(question_path, answer_path=None, category: str | None = None) -> list[tuple[Example, list]]:
    """Read a BFCL question file (and its possible-answer file) into [(Example, gold calls)].

    `answer_path` defaults to possible_answer/<same file name> next to the question file (BFCL's layout);
    irrelevance categories need none. `category` overrides the one named by the file. Each Example has
    the messages of the single turn, the functions as canonical tools, the category, and location
    "file:line (id)"."""
    question_path = Path(question_path)
    rows = _read_jsonl(question_path)
    categories = [category or _category_of(question_path, row["id"]) for _, row in rows]
    unsupported = sorted(set(categories) - set(_SUPPORTED_CATEGORIES))
    if unsupported:
        raise ValueError(f"{question_path}: BFCL category {', '.join(unsupported)} is not supported; "
                         f"supported: {', '.join(_SUPPORTED_CATEGORIES)}")
    answers = {}
    if set(categories) - set(_NO_CALL_CATEGORIES):
        answer_path = Path(answer_path or question_path.parent / "possible_answer" / question_path.name)
        if not answer_path.is_file():
            raise ValueError(f"{question_path}: possible-answer file {answer_path} not found; pass "
                             f"answer_path (BFCL keeps it in data/possible_answer/)")
        answers = {row["id"]: (lineno, row) for lineno, row in _read_jsonl(answer_path)}
    pairs = []
    for (lineno, row), row_category in zip(rows, categories):
        where = f"{question_path}:{lineno} ({row['id']})"
        for field in ("question", "function"):
            if field not in row:
                raise ValueError(f"{where}: missing field \"{field}\"")
        messages = _messages(row["question"], where)
        functions = _functions(row["function"], where)
        gold = []
        if row_category not in _NO_CALL_CATEGORIES:
            if row["id"] not in answers:
                raise ValueError(f"{where}: no ground truth with this id in {answer_path}")
            answer_line, answer = answers[row["id"]]
            gold = _gold(answer.get("ground_truth"), {f["name"] for f in functions},
                         f"{answer_path}:{answer_line} ({row['id']})")
        tools = [convert_function(f) for f in functions]
        pairs.append((Example(messages=messages, tools=tools, category=row_category, location=where), gold))
    return pairs


def bfcl_accuracy(metrics: dict) -> dict[str, float]:
    """Accuracy per BFCL category (the exact-answer rate) from compute_metrics() output, plus "summary":
    the unweighted mean over the categories present, as BFCL averages its categories."""
    accuracy = {category: section["exact"]["rate"] for category, section in metrics["by_category"].items()
                if section["exact"]["total"]}
    if accuracy:
        accuracy["summary"] = sum(accuracy.values()) / len(accuracy)
    return accuracy


def format_bfcl(metrics: dict) -> str:
    """BFCL-style accuracy table: one line per category with counts, then the unweighted summary."""
    lines = [f"{'BFCL category':<26} {'correct':>9} {'accuracy':>9}"]
    for category, section in metrics["by_category"].items():
        exact = section["exact"]
        if exact["total"]:
            lines.append(f"{category:<26} {exact['count']:>4}/{exact['total']:<4} {exact['rate']:>9.2%}")
    accuracy = bfcl_accuracy(metrics)
    if accuracy:
        lines.append(f"{'summary (unweighted mean)':<26} {'':>9} {accuracy['summary']:>9.2%}")
    return "\n".join(lines) + "\n"
