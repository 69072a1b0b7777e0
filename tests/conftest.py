"""Shared test fixtures.

The reference material (official chat templates, real tokenizer files, FORMATS.md examples) lives
outside the repository, in `../shared/reference/` next to the checkout, or wherever the environment
variable MINIFC_REFERENCE points. Tests that need it take the `reference` fixture, which skips cleanly
(with the reason) when the material is absent.
"""

import os
import sys
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
