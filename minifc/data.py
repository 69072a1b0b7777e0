"""Loading examples from files or the Hub: read, convert (minifc/convert.py), validate (minifc/schema.py).

    load_examples(source, data_format=None, strict=False, train_on=DEFAULT) -> (list[Example], ValidationReport)
        source: a .jsonl / .json file, a directory of them, or "hf:OWNER/NAME[/FILE]" (a Hub dataset,
        JSON or JSONL files only). The record layout (canonical, glaive, hermes, xlam, simple; see
        minifc/convert.py) is detected from the first record; `data_format` forces it. Invalid examples
        are skipped and counted in the report; with strict=True the first one raises DataError.
        `train_on` (minifc/masking.py) decides which examples have nothing to train.
    ValidationReport.summary() -> str               what was read, kept and skipped, and why
    BUILTIN_TRAIN, BUILTIN_TEST                     the built-in data (data/generate.py writes it)
    demo_train_data() -> Path                       the offline demo's training data (written on each call)
"""

import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from minifc import masking
from minifc.convert import FORMATS, ConversionError, detect_format
from minifc.schema import DataError, Example, Problem, validate_example  # noqa: F401 (Example: re-exported)

_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUILTIN_TRAIN = _DATA_DIR / "train.jsonl"
BUILTIN_TEST = _DATA_DIR / "test.jsonl"
DEMO_TRAIN = _DATA_DIR / "demo.jsonl"  # not committed (3 MB): data/generate.py --demo writes it
_MAX_LOCATIONS = 3  # locations remembered per skip reason, for the summary
_JSON_SPACE = re.compile(r"[ \t\r\n]*")


def demo_train_data() -> Path:
    """data/demo.jsonl, (re)written by `data/generate.py --demo` (deterministic, ~2 s), so that it always
    matches the generator: the training data of `train.py --model tiny`."""
    done = subprocess.run([sys.executable, str(_DATA_DIR / "generate.py"), "--demo"], capture_output=True, text=True)
    if done.returncode != 0:
        raise DataError(f"data/generate.py --demo failed to write the demo's data:\n{done.stderr.strip()}")
    return DEMO_TRAIN


@dataclass
class ValidationReport:
    source: str = ""
    read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)       # reason -> count
    examples: dict = field(default_factory=dict)            # reason -> first few Problems

    def add(self, problem: Problem):
        self.skipped[problem.reason] += 1
        kept = self.examples.setdefault(problem.reason, [])
        if len(kept) < _MAX_LOCATIONS:
            kept.append(problem)

    def summary(self) -> str:
        lines = [f"data {self.source}: read {self.read}, kept {self.kept}, skipped {self.read - self.kept}"]
        for reason, count in self.skipped.most_common():
            lines.append(f"  skipped {count} x {reason}, e.g.")
            lines.extend(f"    {problem}" for problem in self.examples[reason])
        if self.read and not self.kept:
            lines.append("  every example was skipped: fix the first problem above (run with --strict to stop "
                         "at it), or pass --data-format if the layout was detected wrongly")
        return "\n".join(lines)


def load_examples(source, data_format: str | None = None, strict: bool = False,
                  train_on: masking.TrainOn = masking.DEFAULT):
    """Reads, converts and validates examples; returns (examples, report). See the module docstring."""
    if data_format is not None and data_format not in FORMATS:
        raise DataError(f"unknown --data-format {data_format!r}; known formats: {', '.join(FORMATS)}")
    report, examples = ValidationReport(source=str(source)), []
    for path in _resolve_source(source):
        for location, record, parse_error in _read_records(path):
            report.read += 1
            if parse_error is not None:
                problems = [Problem("invalid_json", location, "line", parse_error)]
            else:
                data_format = data_format or detect_format(record, location)
                try:
                    example = FORMATS[data_format](record, location)
                    problems = validate_example(example, train_on)
                except ConversionError as error:
                    problems = [Problem(f"unreadable_{data_format}", location, error.field, error.message)]
                except RecursionError:  # arguments nested deeper than a (recursive) schema can be followed
                    problems = [Problem("too_deep", location, "record", "nested too deeply to check; flatten it")]
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


def _resolve_source(source) -> list[Path]:
    """The JSON/JSONL files a source names: a file, a directory (sorted), or hf:OWNER/NAME[/FILE]."""
    text = str(source)
    if text.startswith("hf:"):
        return [_download_hub_file(text[3:])]
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


def _download_hub_file(spec: str) -> Path:
    """OWNER/NAME[/FILE] on the Hugging Face Hub (a dataset repo) -> local path of the downloaded file."""
    import huggingface_hub

    try:
        return _hub_file(huggingface_hub, spec)
    except DataError:
        raise
    except Exception as error:  # the hub's errors; the network's own differ between hub versions
        from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError
        if isinstance(error, (LocalEntryNotFoundError, OfflineModeIsEnabled)):  # offline, or HF_HUB_OFFLINE=1
            raise DataError(f"hf:{spec}: not in the local Hugging Face cache and the Hub cannot be reached "
                            "(offline, or HF_HUB_OFFLINE=1): download it once with network access, or pass a local "
                            "file") from None
        if isinstance(error, RepositoryNotFoundError):
            raise DataError(f"hf:{spec}: no such dataset on the Hugging Face Hub (or it is private: set HF_TOKEN to "
                            "a token that can read it)") from None
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise DataError(f"hf:{spec}: the Hugging Face Hub cannot be reached ({type(error).__name__}: {first_line}); "
                        "check the network, or download the file and pass its path") from None


def _hub_file(huggingface_hub, spec: str) -> Path:
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


def _read_records(path: Path):
    """Yields (location "path:line", record or None, parse error or None) for each record of a file.
    JSONL: one object per line (blank lines skipped). JSON: one object, or a list of objects; the line
    of each list item is found while decoding, so errors point at it."""
    data = path.read_bytes()
    if path.suffix == ".jsonl":  # lines end at "\n" only: U+2028 or U+0085 inside a JSON string is text
        for number, raw in enumerate(data.split(b"\n"), 1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                yield f"{path}:{number}", None, f"invalid UTF-8 at byte {error.start + 1} of the line; save it as UTF-8"
                continue
            if line.strip():
                yield _decode(line, f"{path}:{number}")
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(f"{path}:{line}: invalid UTF-8 (byte {error.start + 1} of the file); save the file as UTF-8")
    decoder, start = json.JSONDecoder(), _skip_space(text, 0)
    if text[start:start + 1] != "[":
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
    return _JSON_SPACE.match(text, position).end()


def _decode(text, location):
    try:
        return location, json.loads(text), None
    except json.JSONDecodeError as error:
        return location, None, f"invalid JSON ({error.msg} at column {error.colno}); each line must be one JSON object"
    except RecursionError:
        return location, None, "JSON nested too deeply to read; flatten the record"
