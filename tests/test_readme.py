"""The README's commands as written: the set-up block is what CI runs; every `python ...` command line of
its bash blocks is accepted by that program's own argument parser (flags, choices, values); its JSON
examples load as data. tests/walk_readme.sh runs the commands that need no download, on the tiny model."""

import argparse
import importlib.util
import json
import re
import shlex

import pytest

from conftest import REPO
from minifc.data import load_examples

README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, re.DOTALL)


def bash_lines() -> list[str]:
    lines = []
    for kind, body in BLOCKS:
        if kind == "bash":
            lines += [line.split("  #")[0].strip() for line in body.splitlines() if line.strip()]
    return lines


def test_setup_block_is_what_ci_runs():
    setup = README[README.index("## Set up"):README.index("## Train")]
    block = re.search(r"```bash\n(.*?)```", setup, re.DOTALL).group(1).splitlines()
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line and not line.startswith(("#", "set ", "cd "))]
    assert block == ci
    assert block[0].startswith("pip install torch==") and "# CPU only; on a CUDA machine: pip install torch" in block[0]
    assert block[1:] == ['pip install -e ".[dev]"', "python -m pytest -q"]


class Parsed(Exception):
    pass


def parser_of(program: str, monkeypatch) -> argparse.ArgumentParser:
    """The ArgumentParser a program builds, caught as it parses (nothing runs)."""
    def catch(self, *args, **kwargs):
        raise Parsed(self)
    if program.endswith(".py"):
        spec = importlib.util.spec_from_file_location(f"readme_{program[:-3]}", REPO / program)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(program)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    entry = getattr(module, "parse_args", None) or getattr(module, "main")
    with pytest.raises(Parsed) as caught:
        entry([])
    monkeypatch.undo()
    return caught.value.args[0]


PROGRAMS = {"train.py": "train.py", "eval.py": "eval.py", "chat.py": "chat.py", "inspect_masks.py": "inspect_masks.py",
            "-m minifc.export": "minifc.export", "tests/fetch_reference.py": None}


def test_every_python_command_parses(monkeypatch):
    checked = 0
    for line in bash_lines():
        if not line.startswith("python ") or "..." in line:
            continue  # "..." stands for the user's own paths
        words = shlex.split(line)[1:]
        program = " ".join(words[:2]) if words[0] == "-m" else words[0]
        argv = words[2:] if words[0] == "-m" else words[1:]
        if program == "-m pytest" or program.startswith("benchmarks/") or PROGRAMS.get(program, 1) is None:
            continue
        assert program in PROGRAMS, f"README runs {program}, which this test does not know: {line}"
        parser = parser_of(PROGRAMS[program], monkeypatch)
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"README command does not parse: {line}")
        checked += 1
    assert checked >= 16  # every train, eval, chat, inspector and export command of the README


def test_json_examples_load(tmp_path):
    examples = [body for kind, body in BLOCKS if kind == "json"]
    one_line, spread = examples[0], examples[1]
    assert len(one_line.strip().splitlines()) == 1  # "one conversation per line"
    (tmp_path / "my.jsonl").write_text(one_line)
    (tmp_path / "my.json").write_text(spread)
    loaded, report = load_examples(tmp_path / "my.jsonl")
    assert len(loaded) == 1 and not report.skipped and loaded[0].messages[-1]["content"] == "It's 3°C in Oslo."
    loaded, report = load_examples(tmp_path / "my.json")
    assert len(loaded) == 1 and not report.skipped and loaded[0].tools[0]["function"]["name"] == "get_time"
    row = re.search(r"For example `(\{\"user_content\".*?\})`", README, re.DOTALL).group(1).replace("\n", " ")
    (tmp_path / "simple.jsonl").write_text(json.dumps(json.loads(row)) + "\n")
    loaded, report = load_examples(tmp_path / "simple.jsonl", "simple")
    assert not report.skipped
    assert [t["function"]["name"] for t in loaded[0].tools] == ["search_knowledge_base", "search_google"]
    assert loaded[0].messages[1]["tool_calls"][0]["function"] == {"name": "search_google",
                                                                  "arguments": {"query": "2022 World Cup winner"}}
