"""The repository's ground: the command-line programs answer --help, the reference fixture works."""

import subprocess
import sys

import pytest

from conftest import REPO, find_reference


@pytest.mark.parametrize("script", ["train.py", "eval.py"])
def test_help_prints_usage(script):
    result = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")
    assert "--model" in result.stdout


def test_runtime_package_imports_no_test_oracles():
    """minifc/ must never import transformers, peft or jinja2 (they are test-only oracles)."""
    offenders = []
    for path in (REPO / "minifc").rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "from") and words[1].split(".")[0] in (
                    "transformers", "peft", "jinja2"):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []


def test_reference_fixture_finds_material(reference):
    assert (reference / "FORMATS.md").is_file() or (reference / "fetched.json").is_file()
    assert find_reference() == reference


def test_reference_env_var_points_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIFC_REFERENCE", str(tmp_path))
    (tmp_path / "FORMATS.md").write_text("x")
    assert find_reference() == tmp_path
