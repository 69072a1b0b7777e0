"""Examples: the canonical schema, loading from files or the Hub, and validation with clear errors.

The canonical example is one conversation in the OpenAI / Hugging Face chat layout (DESIGN.md):

    {"tools": [{"type": "function", "function": {"name": "get_weather", "description": "...",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]}}}],
     "messages": [{"role": "user", "content": "Weather in Oslo?"},
                  {"role": "assistant", "tool_calls": [{"type": "function", "function":
                      {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}],
     "category": "single_call"}                                   # optional

A message may carry "train": true/false to override the masking rule (DESIGN.md).

Public API:

    load_examples(source, data_format=None, strict=False) -> (list[Example], ValidationReport)
        source: a .jsonl / .json file, a directory of them, or "hf:OWNER/NAME[/FILE]" (a Hub dataset,
        JSON or JSONL files only). The record layout (canonical, glaive, hermes, xlam, simple; see
        minifc/convert.py) is detected from the first record; `data_format` forces it. Invalid examples
        are skipped and counted in the report; with strict=True the first one raises DataError.
    validate_example(example) -> list[Problem]      every problem names file:line, field and the fix
    ValidationReport.summary() -> str               what was read, kept and skipped, and why
    BUILTIN_TRAIN, BUILTIN_TEST                     the built-in data (data/generate.py writes it)
"""

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUILTIN_TRAIN = DATA_DIR / "train.jsonl"
BUILTIN_TEST = DATA_DIR / "test.jsonl"

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_LOCATIONS = 3  # locations remembered per skip reason, for the summary


@dataclass
class Example:
    """One conversation. `tools` are normalised to {"type": "function", "function": {name, description,
    parameters}}; assistant tool-call `arguments` are dicts. A message may carry "train": true/false to
    override the default masking rule. `location` ("file:line") is where the example came from."""
    messages: list[dict]
    tools: list[dict] = field(default_factory=list)
    category: str | None = None
    location: str = ""


class DataError(ValueError):
    """Bad input data: the message names the file, line, field and the fix."""


@dataclass
class Problem:
    reason: str    # short key used for counting, e.g. "undeclared_function"
    location: str  # "path:line"
    field: str     # e.g. "messages[2].tool_calls[0].function.arguments.city"
    message: str   # what is wrong and how to fix it

    def __str__(self):
        return f"{self.location}: {self.field}: {self.message}"


@dataclass
class ValidationReport:
    source: str = ""
    read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)       # reason -> count
    examples: dict = field(default_factory=dict)            # reason -> first few Problems

    def add(self, problem: Problem):
        self.skipped[problem.reason] += 1
        self.examples.setdefault(problem.reason, [])
        if len(self.examples[problem.reason]) < MAX_LOCATIONS:
            self.examples[problem.reason].append(problem)

    def summary(self) -> str:
        lines = [f"data {self.source}: read {self.read}, kept {self.kept}, skipped {self.read - self.kept}"]
        for reason, count in self.skipped.most_common():
            lines.append(f"  skipped {count} x {reason}, e.g.")
            lines.extend(f"    {problem}" for problem in self.examples[reason])
        if self.read and not self.kept:
            lines.append("  every example was skipped: fix the first problem above (run with --strict to stop "
                         "at it), or pass --data-format if the layout was detected wrongly")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Validation


def validate_example(example: Example) -> list[Problem]:
    """Everything wrong with one (normalised) example; an empty list means it is fine to train on."""
    problems = []

    def problem(reason, where, message):
        problems.append(Problem(reason, example.location, where, message))

    schemas = _check_tools(example.tools, problem)
    if not isinstance(example.messages, list) or not example.messages:
        problem("bad_structure", "messages", "must be a non-empty list of {role, content} objects")
        return problems
    seen_user, trained, pending = False, False, []  # pending: names of calls not answered yet
    for i, message in enumerate(example.messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            problem("bad_structure", where, "must be an object with 'role' and 'content'")
            continue
        role = message.get("role")
        if role not in ROLES:
            problem("unknown_role", f"{where}.role", f"unknown role {role!r}; use one of {', '.join(ROLES)}")
            continue
        if "train" in message and not isinstance(message["train"], bool):
            problem("bad_structure", f"{where}.train", "must be true or false")
        if message.get("train") is True or (role == "assistant" and message.get("train") is not False):
            trained = True
        if pending and role in ("user", "assistant", "system", "developer"):
            problem("role_order", where, f"the call(s) to {', '.join(pending)} before it have no tool result; "
                                         "add a 'tool' message answering each call first")
            pending = []
        if role in ("system", "developer"):
            if any(m.get("role") not in ("system", "developer") for m in example.messages[:i] if isinstance(m, dict)):
                problem("role_order", f"{where}.role", f"a {role} message may only open the conversation; "
                                                       "move it to the start or make it a user message")
            _check_text(message, where, problem)
        elif role == "user":
            seen_user = True
            _check_text(message, where, problem)
        elif role == "assistant":
            if not seen_user:
                problem("role_order", where, "an assistant message comes before any user message; "
                                             "start the conversation with a user message")
            pending = _check_assistant(message, where, schemas, problem)
        else:  # tool
            _check_tool_result(message, where, pending, problem)
    if not trained:
        problem("nothing_to_train", "messages", "no assistant message to train on (none, or all \"train\": false); "
                                                "add an assistant reply or remove \"train\": false")
    return problems


def _check_tools(tools, problem) -> dict:
    """Checks the tool list; returns {function name: parameters schema}."""
    schemas = {}
    if not isinstance(tools, list):
        problem("bad_structure", "tools", "must be a list of {\"type\": \"function\", \"function\": {...}}")
        return schemas
    for j, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            problem("bad_structure", f"tools[{j}]", "must be {\"type\": \"function\", \"function\": "
                                                    "{\"name\": ..., \"description\": ..., \"parameters\": {...}}}")
            continue
        parameters = function.get("parameters", {})
        if parameters is not None and not isinstance(parameters, dict):
            problem("bad_structure", f"tools[{j}].function.parameters", "must be a JSON Schema object")
            parameters = {}
        schemas[function["name"]] = parameters or {}
    return schemas


def _check_text(message, where, problem):
    if not isinstance(message.get("content"), str):
        problem("bad_structure", f"{where}.content", "must be a string")


def _check_assistant(message, where, schemas, problem) -> list[str]:
    """Checks an assistant message; returns the names of the functions it calls."""
    content, calls = message.get("content"), message.get("tool_calls") or []
    if content is not None and not isinstance(content, str):
        problem("bad_structure", f"{where}.content", "must be a string or null")
    if not isinstance(calls, list):
        problem("bad_structure", f"{where}.tool_calls", "must be a list of {\"type\": \"function\", \"function\": "
                                                        "{\"name\": ..., \"arguments\": {...}}}")
        return []
    if not calls and not (isinstance(content, str) and content.strip()):
        problem("bad_structure", where, "an assistant message needs non-empty content or tool_calls")
    names = []
    for k, call in enumerate(calls):
        call_where = f"{where}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            problem("bad_structure", call_where, "must be {\"type\": \"function\", \"function\": "
                                                 "{\"name\": ..., \"arguments\": {...}}}")
            continue
        name, arguments = function["name"], function.get("arguments", {})
        names.append(name)
        if name not in schemas:
            declared = ", ".join(schemas) or "none"
            problem("undeclared_function", f"{call_where}.function.name",
                    f"calls {name!r}, which is not in the example's tools (declared: {declared}); "
                    "declare it in \"tools\" or fix the name")
        elif not isinstance(arguments, dict):
            problem("bad_arguments", f"{call_where}.function.arguments",
                    f"must be a JSON object of argument names to values, got {type(arguments).__name__}")
        else:
            for path, error in schema_errors(arguments, schemas[name]):
                problem("schema_violation", f"{call_where}.function.arguments{path}",
                        f"{error} (function {name!r}); fix the value or the tool's parameters schema")
    return names


def _check_tool_result(message, where, pending, problem):
    name = message.get("name")
    if not pending:
        problem("orphan_tool_result", where, "a tool result with no unanswered call before it; put it after the "
                                             "assistant message whose tool call it answers")
    elif name is not None and name not in pending:
        problem("orphan_tool_result", f"{where}.name", f"answers {name!r}, but the pending call(s) are to "
                                                       f"{', '.join(pending)}; fix the name or the order")
    else:
        pending.remove(name if name is not None else pending[0])
    if not isinstance(message.get("content"), (str, dict, list)):
        problem("bad_structure", f"{where}.content", "a tool result must be a string (or a JSON object/list)")


# JSON Schema types -> the Python types that satisfy them (bool is not a number, although it is an int)
_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
          "array": (list,), "object": (dict,), "null": (type(None),)}


def schema_errors(value, schema: dict, path: str = "") -> list[tuple[str, str]]:
    """(path, message) for each way `value` breaks `schema`: type (an integer passes as a number), enum,
    required / unexpected object keys, and array items; nested objects and arrays are checked recursively."""
    if not isinstance(schema, dict):
        return []
    errors = []
    types = schema.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    known = [t for t in types if t in _TYPES]
    if known and not any(_has_type(value, t) for t in known):
        return [(path, f"{json.dumps(value)} is not of type {' or '.join(known)}")]
    if "enum" in schema and value not in schema["enum"]:
        errors.append((path, f"{json.dumps(value)} is not one of {json.dumps(schema['enum'])}"))
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key in schema.get("required") or []:
            if key not in value:
                errors.append((f"{path}.{key}", "required argument is missing"))
        for key, item in value.items():
            if key in properties:
                errors.extend(schema_errors(item, properties[key], f"{path}.{key}"))
            elif properties and not schema.get("additionalProperties", False):
                errors.append((f"{path}.{key}", f"unexpected argument; known: {', '.join(properties)}"))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors.extend(schema_errors(item, schema["items"], f"{path}[{i}]"))
    return errors


def _has_type(value, type_name):
    if isinstance(value, bool) and type_name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[type_name])


# ---------------------------------------------------------------------------------------------------------
# Loading


def load_examples(source, data_format: str | None = None, strict: bool = False):
    """Reads, converts and validates examples; returns (examples, report). See the module docstring."""
    from minifc.convert import FORMATS, detect_format  # convert imports Example from here

    if data_format is not None and data_format not in FORMATS:
        raise DataError(f"unknown --data-format {data_format!r}; known formats: {', '.join(FORMATS)}")
    paths = resolve_source(source)
    report, examples = ValidationReport(source=str(source)), []
    for path in paths:
        for location, record, parse_error in read_records(path):
            report.read += 1
            problems = []
            if parse_error is not None:
                problems = [Problem("invalid_json", location, "line", parse_error)]
            else:
                if data_format is None:
                    data_format = detect_format(record, location)
                try:
                    example = FORMATS[data_format](record, location)
                    problems = validate_example(example)
                except ConversionError as error:
                    problems = [Problem(f"unreadable_{data_format}", location, error.field, error.message)]
            if problems:
                if strict:
                    raise DataError(str(problems[0]))
                report.add(problems[0])  # one reason per skipped example, so the counts add up
            else:
                examples.append(example)
                report.kept += 1
    if report.read == 0:
        raise DataError(f"{source}: no examples found (empty file or directory); give a .jsonl file with one "
                        "JSON object per line, a .json list of objects, or a directory of them")
    return examples, report


class ConversionError(Exception):
    """A record that a converter cannot turn into an Example; load_examples counts it as skipped."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def resolve_source(source) -> list[Path]:
    """The JSON/JSONL files a source names: a file, a directory (sorted), or hf:OWNER/NAME[/FILE]."""
    text = str(source)
    if text.startswith("hf:"):
        return [download_hub_file(text[3:])]
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".json"))
        if not files:
            raise DataError(f"{path}: directory has no .jsonl or .json files")
        return files
    if not path.is_file():
        raise DataError(f"{path}: no such file or directory; give a .jsonl/.json file, a directory, "
                        "or hf:OWNER/NAME[/FILE] for a Hugging Face dataset")
    _check_suffix(path.name, text)
    return [path]


def _check_suffix(name: str, source: str):
    if name.endswith(".parquet"):
        raise DataError(f"{source}: parquet is not supported (minifc reads JSON and JSONL only); convert it, e.g. "
                        "python -c \"import pandas as pd; pd.read_parquet('in.parquet').to_json('out.jsonl', "
                        "orient='records', lines=True)\", or pick a .json/.jsonl file of the dataset")
    if not name.endswith((".jsonl", ".json")):
        raise DataError(f"{source}: expected a .jsonl or .json file")


def download_hub_file(spec: str) -> Path:
    """OWNER/NAME[/FILE] on the Hugging Face Hub (a dataset repo) -> local path of the downloaded file."""
    import huggingface_hub

    parts = spec.split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise DataError(f"hf:{spec}: expected hf:OWNER/NAME or hf:OWNER/NAME/FILE")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    if not filename:
        files = huggingface_hub.list_repo_files(repo_id, repo_type="dataset")
        usable = [f for f in files if f.endswith((".jsonl", ".json"))]
        if len(usable) != 1:
            listing = ", ".join(f for f in files if not f.startswith(".")) or "no files"
            raise DataError(f"hf:{spec}: {'no' if not usable else 'several'} JSON/JSONL files in the dataset "
                            f"(files: {listing}); name one as hf:{repo_id}/FILE"
                            + ("; parquet is not supported" if any(f.endswith('.parquet') for f in files) else ""))
        filename = usable[0]
    _check_suffix(filename, f"hf:{spec}")
    return Path(huggingface_hub.hf_hub_download(repo_id, filename, repo_type="dataset"))


def read_records(path: Path):
    """Yields (location "path:line", record or None, parse error or None) for each record of a file.
    JSONL: one object per line (blank lines skipped). JSON: one object, or a list of objects; the line
    of each list item is found while decoding, so errors point at it."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                yield _decode(line, f"{path}:{number}")
        return
    decoder, start = json.JSONDecoder(), _skip_space(text, 0)
    if not text[start:start + 1] == "[":
        yield _decode(text, f"{path}:{text.count(chr(10), 0, start) + 1}")
        return
    position = _skip_space(text, start + 1)
    while position < len(text) and text[position] != "]":
        location = f"{path}:{text.count(chr(10), 0, position) + 1}"
        try:
            record, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            yield location, None, f"invalid JSON ({error.msg} at line {error.lineno} column {error.colno}); " \
                                  "fix the file (the rest of it was not read)"
            return
        yield location, record, None
        position = _skip_space(text, position)
        if text[position:position + 1] == ",":
            position = _skip_space(text, position + 1)


def _skip_space(text, position):
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _decode(text, location):
    try:
        return location, json.loads(text), None
    except json.JSONDecodeError as error:
        return location, None, f"invalid JSON ({error.msg} at column {error.colno}); each line must be one JSON object"
