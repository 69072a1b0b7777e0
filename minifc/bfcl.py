"""Berkeley Function Calling Leaderboard (BFCL) files -> entries, and the cases eval.py runs on them.

    entries = load_bfcl_entries(["simple_python", "BFCL_v3_irrelevance.json"])  # names, groups or paths
    example, gold = entries[0].case()        # the prompt as BFCL shows it, gold calls for minifc's checker
    pairs = load_bfcl("BFCL_v4_multiple.json")   # [(Example, gold)] of one file (possible_answer/ beside it)

File shapes (BFCL v3 and v4 alike; JSON lines despite the .json suffix):
  question file  BFCL_v4_<category>.json, one object per line:
      {"id": "simple_python_0",
       "question": [[{"role": "user", "content": "..."}]],          # a list of turns, each a message list
       "function": [{"name": "calc_area", "description": "...",
                     "parameters": {"type": "dict", "properties": {"base": {"type": "integer", ...}},
                                    "required": ["base"]}}]}
  answer file    possible_answer/BFCL_v4_<category>.json, one object per line:
      {"id": "simple_python_0", "ground_truth": [{"calc_area": {"base": [10], "unit": ["units", ""]}}]}
The irrelevance and relevance categories have no answer file. Older (v1) files with a plain string
`question` and a single dict `function` are read too.

Every single-turn category is read: simple_python, simple_java, simple_javascript, multiple, parallel,
parallel_multiple, irrelevance and the live_ ones with live_relevance (v3 names: simple, java,
javascript). `--bfcl all` (or non_live, live, or a category name) reads them from BFCL's own data:
--bfcl-data DIR, else the data/ directory of an installed bfcl-eval package, found without importing it.

The prompt is what BFCL sends at inference: each function's description gets BFCL's language note, and
Java and JavaScript parameters are shown as strings with their real type in the description (the model
answers with source text). BFCL's type names (dict, float, tuple, any, the Java and JavaScript ones) are
mapped to JSON Schema for the chat template. The entry keeps BFCL's own function descriptions and
possible answers: minifc.bfclcheck judges answers on those, as BFCL does.
"""

import copy
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from minifc.bfcllang import language_of
from minifc.chat.kit import function_tool
from minifc.schema import Example

NON_LIVE = ("simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
            "irrelevance")
LIVE = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance",
        "live_relevance")
GROUPS = {"all": NON_LIVE + LIVE, "non_live": NON_LIVE, "live": LIVE}
_V3_NAMES = {"simple_python": "simple", "simple_java": "java", "simple_javascript": "javascript"}
_NO_ANSWER = ("irrelevance", "live_irrelevance", "live_relevance")
_HINTS = {"python": "Python 3 syntax", "java": "Java 8 SDK syntax", "javascript": "JavaScript syntax"}
_LANGUAGE_NAMES = {"java": "Java", "javascript": "JavaScript"}
# BFCL type names -> JSON Schema (BFCL's own table for tool APIs, plus JavaScript's Boolean).
_BFCL_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": "string", "bool": "boolean",
               "list": "array", "byte": "integer", "short": "integer", "long": "integer", "double": "number",
               "char": "string", "ArrayList": "array", "Array": "array", "HashMap": "object", "Hashtable": "object",
               "Queue": "array", "Stack": "array", "Any": "string", "String": "string", "Bigint": "integer",
               "Boolean": "boolean"}


def canonical_category(category: str) -> str:
    """The BFCL v4 name of a category (v3's simple, java, javascript are simple_python, ...)."""
    return {v3: v4 for v4, v3 in _V3_NAMES.items()}.get(category, category)


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


def prompt_function(function: dict, language: str) -> dict:
    """The function as BFCL shows it to the model: its description ends with BFCL's language note; for
    Java and JavaScript every parameter becomes a string whose description names the real type (and,
    for arrays and JavaScript objects, the item type or schema, which is dropped from the schema)."""
    function = copy.deepcopy(function)
    function["description"] = function.get("description", "") + f" Note that the provided function is in " \
                                                                 f"{_HINTS[language]}."
    if language == "python":
        return function
    name = _LANGUAGE_NAMES[language]
    for prop in ((function.get("parameters") or {}).get("properties") or {}).values():
        kind, note = prop.get("type"), prop.get("description", "")
        note += (f" This parameter can be of any type of {name} object in string representation." if kind == "any"
                 else f" This is {name} {kind} type parameter in string representation.")
        if kind in (("ArrayList", "Array") if language == "java" else ("array",)):
            note += (f" The list elements are of type {prop['items']['type']}; they are not in string "
                     f"representation.")
            del prop["items"]
        if language == "javascript" and kind == "dict" and "properties" in prop:
            note += (f" The dictionary entries have the following schema; they are not in string "
                     f"representation. {json.dumps(prop.pop('properties'))}")
        prop.update(type="string", description=note)
    return function


@dataclass
class BfclEntry:
    """One BFCL question with its possible answers, as BFCL's files give them."""
    id: str
    category: str             # as the file names it: "simple" (v3) or "simple_python" (v4)
    messages: list[dict]
    functions: list[dict]     # BFCL's function descriptions, with BFCL's type names
    ground_truth: list[dict]  # [{name: {param: [acceptable values]}}]; [] where there is no answer file
    location: str             # "file:line (id)"

    @property
    def kind(self) -> str:
        """The category's v4 name: what decides BFCL's rule and its aggregates."""
        return canonical_category(self.category)

    @property
    def language(self) -> str:
        return language_of(self.kind)

    def gold(self) -> list[dict]:
        """The ground truth in minifc.evaluate's form [{"name", "arguments"}]."""
        return [{"name": name, "arguments": arguments} for call in self.ground_truth
                for name, arguments in call.items()]

    def case(self) -> tuple[Example, list[dict]]:
        """(the prompt Example, with the functions as BFCL shows them; the gold calls)."""
        tools = [convert_function(prompt_function(function, self.language)) for function in self.functions]
        return Example(messages=self.messages, tools=tools, category=self.category, location=self.location), \
            self.gold()


# ----------------------------------------------------------------------------- reading files

def _category_of(path: Path, row_id: str) -> str:
    """The BFCL category from the file name (BFCL_v4_<category>.json), else from the id ("simple_12",
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


def _ground_truth(ground_truth, tool_names: set, where: str) -> list[dict]:
    """BFCL ground truth [{func_name: {param: [acceptable values]}}], checked."""
    if not isinstance(ground_truth, list) or not ground_truth:
        raise ValueError(f"{where}: field \"ground_truth\" must be a non-empty list of {{function: arguments}}")
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
    return ground_truth


def read_bfcl(question_path, answer_path=None, category: str | None = None) -> list[BfclEntry]:
    """Read a BFCL question file (and its possible-answer file) into entries.

    `answer_path` defaults to possible_answer/<same file name> next to the question file (BFCL's layout);
    irrelevance and relevance need none. `category` overrides the one named by the file."""
    question_path = Path(question_path)
    rows = _read_jsonl(question_path)
    categories = [category or _category_of(question_path, row["id"]) for _, row in rows]
    unsupported = sorted({c for c in categories if canonical_category(c) not in GROUPS["all"]})
    if unsupported:
        raise ValueError(f"{question_path}: BFCL category {', '.join(unsupported)} is not supported; "
                         f"supported (the single-turn ones): {', '.join(GROUPS['all'])} (v3: simple, java, "
                         f"javascript)")
    answers = {}
    if any(canonical_category(c) not in _NO_ANSWER for c in categories):
        answer_path = Path(answer_path or question_path.parent / "possible_answer" / question_path.name)
        if not answer_path.is_file():
            raise ValueError(f"{question_path}: possible-answer file {answer_path} not found; pass "
                             f"answer_path (BFCL keeps it in data/possible_answer/)")
        answers = {row["id"]: (lineno, row) for lineno, row in _read_jsonl(answer_path)}
    entries = []
    for (lineno, row), row_category in zip(rows, categories):
        where = f"{question_path}:{lineno} ({row['id']})"
        for field in ("question", "function"):
            if field not in row:
                raise ValueError(f"{where}: missing field \"{field}\"")
        messages = _messages(row["question"], where)
        functions = _functions(row["function"], where)
        ground_truth = []
        if canonical_category(row_category) not in _NO_ANSWER:
            if row["id"] not in answers:
                raise ValueError(f"{where}: no ground truth with this id in {answer_path}")
            answer_line, answer = answers[row["id"]]
            ground_truth = _ground_truth(answer.get("ground_truth"), {f["name"] for f in functions},
                                         f"{answer_path}:{answer_line} ({row['id']})")
        entries.append(BfclEntry(row["id"], row_category, messages, functions, ground_truth, where))
    return entries


def load_bfcl(question_path, answer_path=None, category: str | None = None) -> list[tuple[Example, list]]:
    """[(prompt Example, gold calls)] of one BFCL file: read_bfcl() entries as cases."""
    return [entry.case() for entry in read_bfcl(question_path, answer_path, category)]


# ----------------------------------------------------------------------------- BFCL's own data

def bfcl_data_dir(data_dir=None) -> Path:
    """BFCL's data directory: `data_dir`, else data/ of an installed bfcl-eval package (not imported)."""
    if data_dir is not None:
        return Path(data_dir)
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("BFCL categories are read from the data of the bfcl-eval package, which is not "
                         "installed. Its dependencies pin numpy 1.x, so rather than installing it, fetch its "
                         "files: pip download --no-deps bfcl-eval -d bfcl && unzip -q bfcl/*.whl -d bfcl, then "
                         "pass --bfcl-data bfcl/bfcl_eval/data (or give the question files by path)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def bfcl_files(specs: list[str], data_dir=None) -> list[Path]:
    """Question files for --bfcl: a path as given; a category (v4 or v3 name) or group (all, non_live,
    live) from BFCL's data directory."""
    files = []
    for spec in specs:
        names = GROUPS.get(spec) or ([spec] if canonical_category(spec) in GROUPS["all"] else None)
        if names is None:
            files.append(Path(spec))
            continue
        directory = bfcl_data_dir(data_dir)
        for name in map(canonical_category, names):
            candidates = [directory / f"BFCL_v4_{name}.json", directory / f"BFCL_v3_{_V3_NAMES.get(name, name)}.json"]
            found = next((path for path in candidates if path.is_file()), None)
            if found is None:
                raise ValueError(f"BFCL category {name}: none of {', '.join(map(str, candidates))} exists")
            files.append(found)
    return files


def load_bfcl_entries(specs: list[str], data_dir=None, answers_dir=None) -> list[BfclEntry]:
    """Entries of every file `specs` names (see bfcl_files); answers from `answers_dir` when given."""
    return [entry for path in bfcl_files(specs, data_dir)
            for entry in read_bfcl(path, Path(answers_dir) / path.name if answers_dir else None)]
