"""minifc.tokenizer against the real Gemma 3, FunctionGemma and Llama 3.2 tokenizer files.

Expected ids are those FORMATS.md (sections 3.1 and 6) lists, and the stop ids are checked against the
FunctionGemma generation_config.json; the raw `tokenizers` library is the oracle for what the files'
post-processors add (a BOS) and what minifc must not.
"""

import json

import numpy
import pytest

from minifc.chat import ChatFormat
from minifc.tokenizer import Tokenizer

# Every control string each format writes, with the id FORMATS.md lists for it.
CONTROL_IDS = {
    "gemma-3": {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<start_of_turn>": 105, "<end_of_turn>": 106, "\n": 107},
    "functiongemma": {
        "<pad>": 0, "<eos>": 1, "<bos>": 2, "<start_of_turn>": 105, "<end_of_turn>": 106, "\n": 107,
        "<start_function_declaration>": 46, "<end_function_declaration>": 47, "<start_function_call>": 48,
        "<end_function_call>": 49, "<start_function_response>": 50, "<end_function_response>": 51,
        "<escape>": 52},
    "llama-3.2": {
        "<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|finetune_right_pad_id|>": 128004,
        "<|start_header_id|>": 128006, "<|end_header_id|>": 128007, "<|eom_id|>": 128008,
        "<|eot_id|>": 128009, "<|python_tag|>": 128010},
}
# (vocab incl. added tokens, bos id, eos id of tokenizer_config, pad id): FORMATS.md section 6.
SPECIAL_IDS = {"gemma-3": (262145, 2, 106, 0), "functiongemma": (262146, 2, 1, 0),
               "llama-3.2": (128256, 128000, 128009, 128004)}
# Text with what tends to break tokenizers: accents, emoji, a rare character (byte fallback in Gemma),
# JSON, runs of spaces and newlines, a tab, control strings glued to text.
TRICKY = ('Hé said: "{\\"a\\": [1, 2.5e-3]}"  \n\n\tok 😀 𒀀 — 東京 <end_of_turn>\n<start_of_turn>model\n'
          '<start_function_call>call:f{q:<escape>x, y<escape>}<end_function_call>  trailing ')


@pytest.fixture(scope="module", params=["gemma-3", "functiongemma", "llama-3.2"])
def named_tokenizer(request, reference_tokenizer_dir):
    """(name, directory, minifc Tokenizer); each 17-33 MB file is loaded once per module."""
    directory = reference_tokenizer_dir(request.param)
    return request.param, directory, Tokenizer.from_dir(directory)


def test_control_strings_encode_to_their_single_id(named_tokenizer):
    name, _, tok = named_tokenizer
    for text, expected in CONTROL_IDS[name].items():
        assert tok.encode(text) == [expected], text
        assert tok.token_id(text) == expected, text
        assert tok.decode([expected]) == text
    if name == "gemma-3":  # <escape> exists only in FunctionGemma's vocabulary
        assert tok.decode(tok.encode("<escape>")) == "<escape>" and len(tok.encode("<escape>")) == 3


def test_special_ids_and_vocab_size(named_tokenizer):
    name, _, tok = named_tokenizer
    vocab, bos, eos, pad = SPECIAL_IDS[name]
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id) == (vocab, bos, eos, pad)


def test_encode_never_adds_bos_that_the_file_post_processor_adds(named_tokenizer):
    _, _, tok = named_tokenizer
    raw = tok.tk  # the wrapped tokenizers.Tokenizer, used directly with its defaults
    text = "Hello world"
    assert raw.encode(text).ids == [tok.bos_id] + tok.encode(text)  # the file adds BOS by default
    assert tok.encode(text) == raw.encode(text, add_special_tokens=False).ids
    # BOS written as text (as the renderers do) is one BOS, not two.
    bos_text = tok.decode([tok.bos_id])
    assert tok.encode(bos_text + text) == [tok.bos_id] + tok.encode(text)


def test_decode_inverts_encode(named_tokenizer):
    _, _, tok = named_tokenizer
    ids = tok.encode(TRICKY)
    assert tok.decode(ids) == TRICKY


def test_decode_accepts_an_array(named_tokenizer):
    _, _, tok = named_tokenizer
    ids = tok.encode("Hello world")
    assert tok.decode(numpy.array(ids)) == "Hello world"  # a tensor row works the same way (int() per id)


def test_offsets_are_character_ranges_that_tile_the_text(named_tokenizer):
    _, _, tok = named_tokenizer
    ids, offsets = tok.encode_with_offsets(TRICKY)
    assert ids == tok.encode(TRICKY) and len(offsets) == len(ids)
    # Tokens cover the text in order with no gap. They overlap only inside one multi-byte character, split
    # into byte pieces (Gemma's byte fallback repeats the character's range; Llama's byte-level BPE may
    # give ' 𒀀' then '𒀀'), so a trained span that starts and ends on ASCII control text is token-aligned.
    assert offsets[0][0] == 0 and offsets[-1][1] == len(TRICKY)
    for (start, end), (next_start, next_end) in zip(offsets, offsets[1:]):
        assert start <= next_start <= end <= next_end
        overlap = TRICKY[next_start:end]
        assert overlap == "" or (len(overlap) == 1 and not overlap.isascii())
    # A token whose range no neighbour shares decodes to exactly that text.
    for i, (token_id, (start, end)) in enumerate(zip(ids, offsets)):
        shared = (i > 0 and offsets[i - 1][1] > start) or (i + 1 < len(ids) and offsets[i + 1][0] < end)
        if not shared:
            assert tok.decode([token_id]) == TRICKY[start:end], (i, token_id)


def test_offsets_of_control_strings_are_exact(named_tokenizer):
    name, _, tok = named_tokenizer
    controls = [text for text in CONTROL_IDS[name] if text != "\n"]
    text = "x".join(controls) + "tail"
    ids, offsets = tok.encode_with_offsets(text)
    for control in controls:
        start = text.index(control)
        position = offsets.index((start, start + len(control)))
        assert ids[position] == CONTROL_IDS[name][control]


def test_stop_ids_of_a_format(named_tokenizer, reference_tokenizer_dir):
    name, _, tok = named_tokenizer
    stops = {"gemma-3": ("<end_of_turn>", "<eos>"),
             "functiongemma": ("<end_of_turn>", "<start_function_response>", "<eos>"),
             "llama-3.2": ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>")}[name]
    fmt = ChatFormat(name, render=None, parse=None, stop_tokens=stops, control_tokens=stops)
    expected = {"gemma-3": [106, 1], "functiongemma": [106, 50, 1], "llama-3.2": [128009, 128008, 128001]}
    assert tok.stop_ids(fmt) == expected[name]
    if name == "functiongemma":  # the checkpoint's own generation_config stop list
        config = json.loads((reference_tokenizer_dir(name) / "generation_config.json").read_text())
        assert sorted(tok.stop_ids(fmt)) == sorted(config["eos_token_id"])


def test_unknown_token_raises_keyerror_naming_it(named_tokenizer):
    _, _, tok = named_tokenizer
    with pytest.raises(KeyError, match="not-a-token"):
        tok.token_id("<not-a-token>")


def test_missing_tokenizer_json_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        Tokenizer.from_dir(tmp_path)


def test_without_special_tokens_pad_falls_back_to_a_known_pad(named_tokenizer):
    """What from_dir gives for a directory without tokenizer_config.json."""
    name, _, tok = named_tokenizer
    bare = Tokenizer(tok.tk)
    assert (bare.bos_token, bare.bos_id, bare.eos_id) == (None, None, None)
    assert bare.pad_id == SPECIAL_IDS[name][3]  # <pad>, or Llama's reserved <|finetune_right_pad_id|>
