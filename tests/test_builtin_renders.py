"""The built-in data's token ids and labels in every format, against a record made before the redesign.

The hashes below are the sha256 of json.dumps([[ids, labels], ...]) over all 960 built-in examples
(train then test split) encoded with the real tokenizers by the renderers and masking of commit b0ba7c8,
which the official-template tests had checked (gemma4: recorded when it was added, with tests/test_chat_gemma4.py
passing, whose built-in data test checks every render against Google's template). Renderer, masking or encoder changes that alter a single
id or label of the built-in data fail here; a deliberate format change must say so and record anew.
"""

import hashlib
import json

import pytest

from minifc.chat import get_format
from minifc.data import BUILTIN_TEST, BUILTIN_TRAIN, load_examples
from minifc.encode import encode_example
from minifc.tokenizer import Tokenizer

RECORDED = {  # format: (tokenizer directory, sha256, tokens, trained tokens)
    "functiongemma": ("functiongemma", "7d1ed9c10358fff57fa58a4d22c9e7bfa37b3c87c18ca50fc14d28e13bf37b75", 409817, 32976),
    "gemma3": ("gemma-3", "f952d0781f12480eea9e4e89eb5ec3667e1277895415eac45329ccf3886f932b", 466004, 27104),
    "gemma4": ("gemma-4", "821428dad93fa8cc61819a74f782cd7ac927507d37789360b5b2dfdbcc46a46e", 397337, 32976),
    "llama3.2": ("llama-3.2", "070270fa7a241309ef55b09ac2053786fb3a8fa9c0ad9673299144e61766137c", 615127, 32841),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RECORDED))
def test_builtin_data_encodes_as_recorded(name, reference_tokenizer_dir):
    directory, sha256, tokens, trained = RECORDED[name]
    tokenizer, fmt = Tokenizer.from_dir(reference_tokenizer_dir(directory)), get_format(name)
    examples = load_examples(BUILTIN_TRAIN)[0] + load_examples(BUILTIN_TEST)[0]
    assert len(examples) == 960
    encoded = [encode_example(example, tokenizer, fmt) for example in examples]
    assert sum(len(ids) for ids, _ in encoded) == tokens
    assert sum(label != -100 for _, labels in encoded for label in labels) == trained
    assert hashlib.sha256(json.dumps(encoded).encode()).hexdigest() == sha256
