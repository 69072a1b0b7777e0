"""Shared test fixtures.

The reference material (official chat templates, real tokenizer files, FORMATS.md examples) lives
outside the repository, in `../shared/reference/` next to the checkout, or wherever the environment
variable MINIFC_REFERENCE points. Tests that need it take the `reference` fixture, which skips cleanly
(with the reason) when the material is absent.

BFCL's own data files come from the bfcl-eval wheel (`bfcl_data` fixture): $MINIFC_BFCL_DATA if set, else
the wheel is fetched once with `pip download --no-deps` and its data/ unpacked into a cache directory
($MINIFC_CACHE, default ~/.cache/minifc). bfcl-eval itself is never installed nor imported.
"""

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


def find_reference() -> Path | None:
    """The reference directory, or None: $MINIFC_REFERENCE first, then ../shared/reference/."""
    candidates = []
    if os.environ.get("MINIFC_REFERENCE"):
        candidates.append(Path(os.environ["MINIFC_REFERENCE"]))
    candidates.append(REPO.parent / "shared" / "reference")
    for path in candidates:
        if (path / "FORMATS.md").is_file():
            return path
    return None


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
