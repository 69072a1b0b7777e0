"""Shared test fixtures.

The reference material (official chat templates, real tokenizer files, FORMATS.md examples) lives
outside the repository: wherever the environment variable MINIFC_REFERENCE points, else in
`../shared/reference/` next to the checkout, else in the directory `python tests/fetch_reference.py` fills
by default (~/.cache/minifc/reference). Tests that need it take the `reference` fixture, which skips cleanly
(with the reason) when the material is absent. A fetched directory lacks the files no package carries
(its fetched.json lists them): a test that reads one of those skips, naming the file.

BFCL's own data files come from the bfcl-eval wheel (`bfcl_data` fixture): $MINIFC_BFCL_DATA if set, else
the wheel is fetched once with `pip download --no-deps` and its data/ unpacked into a cache directory
($MINIFC_CACHE, default ~/.cache/minifc). bfcl-eval itself is never installed nor imported.
"""

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run: a CI run must not pass or fail by chance.
# (Lone surrogates and other text that cannot be UTF-8 encoded are excluded by the strategies themselves.)
settings.register_profile("minifc", derandomize=True, deadline=None)
settings.load_profile("minifc")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `import minifc` and `import train` work without installing anything

import fetch_reference  # noqa: E402 (tests/ is on sys.path: pytest's rootdir-relative import)


def find_reference() -> Path | None:
    """The reference directory, or None: $MINIFC_REFERENCE first, then ../shared/reference/, then the
    directory tests/fetch_reference.py writes by default."""
    candidates = []
    if os.environ.get("MINIFC_REFERENCE"):
        candidates.append(Path(os.environ["MINIFC_REFERENCE"]))
    candidates += [REPO.parent / "shared" / "reference", fetch_reference.default_directory()]
    for path in candidates:
        if (path / "FORMATS.md").is_file() or (path / fetch_reference.MARKER).is_file():
            return path
    return None


def _not_fetched(error: FileNotFoundError) -> str | None:
    """The reference file (relative name) that `error` is about, if the fetch script recorded it as missing."""
    reference = find_reference()
    if reference is None or error.filename is None or not (reference / fetch_reference.MARKER).is_file():
        return None
    try:
        name = Path(error.filename).resolve().relative_to(reference.resolve()).as_posix()
    except ValueError:
        return None
    missing = json.loads((reference / fetch_reference.MARKER).read_text(encoding="utf-8"))["missing"]
    return name if name in missing else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _skip_if_not_fetched())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _skip_if_not_fetched())


def _skip_if_not_fetched():
    try:
        return (yield)
    except FileNotFoundError as error:
        name = _not_fetched(error)
        if name is None:
            raise
        pytest.skip(f"reference file {name} is not in the fetched reference directory (no public package "
                    "carries it; see its fetched.json)")


@pytest.fixture(scope="session")
def reference() -> Path:
    """Path to the reference directory; skips the test when it is not there."""
    path = find_reference()
    if path is None:
        pytest.skip("reference material not found: set MINIFC_REFERENCE or put it at ../shared/reference/")
    return path


@pytest.fixture(scope="session")
def reference_tokenizer_dir(reference):
    """reference_tokenizer_dir("gemma-3") -> directory with the real tokenizer.json; skips if missing."""

    def get(name: str) -> Path:
        path = reference / "tokenizers" / name
        if not (path / "tokenizer.json").is_file():
            pytest.skip(f"reference tokenizer {name!r} not found under {reference}/tokenizers/")
        return path

    return get


BFCL_EVAL = "bfcl-eval==2026.3.23"  # the version whose data the BFCL tests' expectations were derived from


@pytest.fixture(scope="session")
def bfcl_data() -> Path:
    """BFCL's data directory (BFCL_v4_*.json and possible_answer/); skips when it cannot be had."""
    if os.environ.get("MINIFC_BFCL_DATA"):
        return Path(os.environ["MINIFC_BFCL_DATA"])
    cache = Path(os.environ.get("MINIFC_CACHE") or Path.home() / ".cache" / "minifc") / BFCL_EVAL.replace("==", "-")
    data = cache / "bfcl_eval" / "data"
    if not data.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            try:
                done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                                       "--disable-pip-version-check", BFCL_EVAL, "-d", tmp],
                                      capture_output=True, text=True, timeout=300)
            except (OSError, subprocess.TimeoutExpired) as error:
                pytest.skip(f"BFCL data not available: pip download {BFCL_EVAL} failed ({error})")
            wheels = list(Path(tmp).glob("*.whl"))
            if done.returncode or not wheels:
                pytest.skip(f"BFCL data not available: pip download {BFCL_EVAL} failed: "
                            f"{done.stderr.strip()[-300:]} (or set MINIFC_BFCL_DATA to a bfcl_eval/data directory)")
            cache.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache.parent) as partial, zipfile.ZipFile(wheels[0]) as wheel:
                wheel.extractall(partial, [name for name in wheel.namelist() if name.startswith("bfcl_eval/data/")])
                if not data.is_dir():  # complete or absent: a run stopped half-way leaves nothing behind
                    Path(partial).rename(cache)
                    Path(partial).mkdir()  # for TemporaryDirectory's clean-up
    return data


@pytest.fixture(scope="session")
def bfcl_entries(bfcl_data) -> list:
    """Every single-turn BFCL entry (minifc.bfcl.BfclEntry) of bfcl_data."""
    from minifc.bfcl import load_bfcl_entries
    return load_bfcl_entries(["all"], bfcl_data)
