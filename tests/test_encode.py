"""The encoder: labels from the masking rule's spans, dataset encoding (drop / truncate), the inspector.

Uses a toy chat format defined here and a small byte-level BPE trained in the test, so it runs without
the real formats or tokenizers (tests/test_masking.py covers those). Expected trained ids are always
`tokenizer.encode(<text written by hand>)`, never read back from the code under test.
"""

import json

import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from minifc import encode
from minifc.chat import ChatFormat
from minifc.chat.kit import SpanWriter, control_pattern
from minifc.data import Example
from minifc.encode import SpanAlignmentError, encode_dataset, encode_example, inspect_example
from minifc.masking import CALLS, END, HEADER, IGNORE_INDEX, TEMPLATE, TEXT
from minifc.tokenizer import Tokenizer

CONTROL = ["<s>", "<pad>", "<|tools|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>", "<|call|>",
           "<|end|>"]


def toy_render(messages, tools=None, add_generation_prompt=False, end_kind=END):
    """<s>[<|tools|>JSON<|end|>] then <|role|>body<|end|> per message; an assistant body is its text
    then <|call|>{"name", "arguments"} per call. Labels: header, text, calls, end of each message."""
    out = SpanWriter(messages, tools, control_pattern(CONTROL))
    out.write("<s>")
    if tools:
        out.write("<|tools|>" + json.dumps(tools) + "<|end|>")
    for index, message in enumerate(messages):
        if message["role"] not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"toy format has no role {message['role']!r}")
        out.write(f"<|{message['role']}|>", HEADER, index)
        out.write(message.get("content") or "", TEXT, index)
        for call in message.get("tool_calls") or []:
            out.write("<|call|>" + json.dumps({"name": call["function"]["name"],
                                               "arguments": call["function"]["arguments"]}), CALLS, index)
        out.write("<|end|>", end_kind, index)
    if add_generation_prompt:
        out.write("<|assistant|>")
    return out.rendered()


TOY = ChatFormat("toy", toy_render, parse=lambda text: {}, stop_tokens=("<|end|>",), control_tokens=tuple(CONTROL))

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
CONVERSATION = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "tool_calls": [CALL]},
    {"role": "tool", "name": "get_weather", "content": "sunny, 21 C"},
    {"role": "assistant", "content": "It is sunny and 21 C in Paris."},
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    corpus = [toy_render(CONVERSATION, TOOLS).text, "Hello there! How are you? The weather is nice today."] * 20
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=CONTROL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    hf.train_from_iterator(corpus, trainer)
    return Tokenizer(hf, bos_token="<s>", eos_token="<|end|>", pad_token="<pad>")


def role_table(report: str) -> dict[str, list[str]]:
    """The inspector's "tokens by role" table: role -> [trained, untrained]."""
    table = report.split("tokens by role")[1].split("BOS tokens")[0]
    return {line.split()[0]: line.split()[1:] for line in table.splitlines()[1:] if line.strip()}


def trained_ids(ids, labels):
    return [i for i, label in zip(ids, labels) if label != IGNORE_INDEX]


# --- labels -----------------------------------------------------------------------------------------


def test_trained_ids_are_exactly_the_assistant_text_and_end_tokens(tok):
    ids, labels = encode_example(Example(CONVERSATION, TOOLS), tok, TOY)
    expected = tok.encode('<|call|>{"name": "get_weather", "arguments": {"city": "Paris"}}<|end|>') + \
        tok.encode("It is sunny and 21 C in Paris.<|end|>")
    assert trained_ids(ids, labels) == expected
    assert ids == tok.encode(toy_render(CONVERSATION, TOOLS).text)  # one tokenization, no BOS added
    assert ids.count(tok.bos_id) == 1 and labels[ids.index(tok.bos_id)] == IGNORE_INDEX
    assert [label for label in labels if label != IGNORE_INDEX] == expected  # labels == ids where trained
    assert len(labels) == len(ids)


def test_dict_example_is_the_same_as_an_example(tok):
    assert encode_example({"messages": CONVERSATION, "tools": TOOLS}, tok, TOY) == \
        encode_example(Example(CONVERSATION, TOOLS), tok, TOY)


def test_train_overrides(tok):
    messages = [dict(m) for m in CONVERSATION]
    messages[2]["train"] = False  # do not train on the call
    messages[1]["train"] = True   # do train on the user text (not its header or end)
    ids, labels = encode_example(Example(messages, TOOLS), tok, TOY)
    assert trained_ids(ids, labels) == tok.encode("Weather in Paris?") + tok.encode("It is sunny and 21 C in Paris.<|end|>")


def test_token_straddling_a_span_edge_raises(tok):
    def bad_render(messages, tools=None, add_generation_prompt=False):
        out = SpanWriter(messages, tools, control_pattern(CONTROL))
        out.write("<s><|assistant|>H")
        if messages:
            out.write("ello there<|end|>", TEXT, 0)  # starts inside the token "Hello"
        return out.rendered()

    assert len(tok.encode("Hello")) == 1  # the premise: "Hello" is one token
    fmt = ChatFormat("bad", bad_render, lambda t: {}, ("<|end|>",), ())
    with pytest.raises(SpanAlignmentError, match=r"here:1: token 2 'Hello'.*straddles"):
        encode_example({"messages": [{"role": "assistant", "content": "Hello there"}], "location": "here:1"}, tok, fmt)


def test_span_ending_inside_a_token_raises():
    ids, offsets = [7, 8], [(0, 4), (4, 9)]
    with pytest.raises(SpanAlignmentError):
        encode.label_tokens(ids, offsets, [(0, 6)])
    assert encode.label_tokens(ids, offsets, [(0, 4)]) == [7, IGNORE_INDEX]
    assert encode.label_tokens(ids, offsets, [(4, 9)]) == [IGNORE_INDEX, 8]
    assert encode.label_tokens([5, 6, 7], [(0, 2), (2, 2), (2, 4)], [(0, 4)]) == [5, IGNORE_INDEX, 7]  # empty token
    assert encode.label_tokens(ids, offsets, [(6, 9), (0, 3), (3, 6)]) == [7, 8]  # touching spans are one
    with pytest.raises(SpanAlignmentError):
        encode.label_tokens(ids, offsets, [(0, 3), (3, 5), (7, 9)])


# --- encode_dataset ---------------------------------------------------------------------------------


def two_turns(location):
    return Example([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there!"},
                    {"role": "user", "content": "How are you?"}, {"role": "assistant", "content": "The weather is nice today."}],
                   location=location)


def test_long_examples_are_dropped_and_counted(tok):
    full, _ = encode_example(two_turns("a:1"), tok, TOY)
    encoded, report = encode_dataset([two_turns("a:1"), Example(CONVERSATION[:1] + CONVERSATION[4:], location="a:2")],
                                     tok, TOY, max_len=len(full) - 1)
    assert len(encoded) == 1 and report.kept == 1 and report.truncated == 0
    assert report.dropped == {f"longer than max_len={len(full) - 1}": 1}
    assert f"a:1 ({len(full)} tokens)" in str(report)


def test_a_huge_record_is_dropped_by_its_length_in_characters_before_tokenizing(tok, monkeypatch):
    """More characters than max_len * the longest token's: too long, known without tokenizing it (a 50 MB
    record must not cost gigabytes); counted with the other too-long examples, its size in characters."""
    huge = Example([{"role": "user", "content": "x" * 1_000_000}, {"role": "assistant", "content": "ok"}], location="h:1")
    max_len = 64
    assert tok.max_token_chars == max(len(t) for t in tok.tk.get_vocab(with_added_tokens=True)) < 1_000_000 // max_len
    tokenized = []
    encode_with_offsets = tok.encode_with_offsets
    monkeypatch.setattr(tok, "encode_with_offsets", lambda text: tokenized.append(len(text)) or encode_with_offsets(text))
    encoded, report = encode_dataset([huge, two_turns("h:2")], tok, TOY, max_len=max_len)
    assert len(encoded) == 1 and len(tokenized) == 1 and tokenized[0] < 1000
    length = len(TOY.render(huge.messages).text)
    assert report.dropped == {f"longer than max_len={max_len}": 1}
    assert f"dropped 1 (longer than max_len={max_len}): first at h:1 ({length} characters)" in str(report)


def test_truncation_cuts_after_the_last_whole_assistant_turn(tok):
    full_ids, full_labels = encode_example(two_turns("a:1"), tok, TOY)
    first_turn = tok.encode("<s><|user|>Hi<|end|><|assistant|>Hello there!<|end|>")
    encoded, report = encode_dataset([two_turns("a:1")], tok, TOY, max_len=len(full_ids) - 1, truncate=True)
    assert report.truncated == 1 and report.first_locations["truncated"] == ["a:1"]
    (ids, labels), = encoded
    assert ids == first_turn and labels == full_labels[:len(first_turn)]
    assert trained_ids(ids, labels) == tok.encode("Hello there!<|end|>")
    # a budget that no whole trained turn fits in: dropped, counted
    encoded, report = encode_dataset([two_turns("a:1")], tok, TOY, max_len=len(first_turn) - 1, truncate=True)
    assert encoded == [] and sum(report.dropped.values()) == 1
    assert "no trained turn" in next(iter(report.dropped))


def test_nothing_trained_and_unrenderable_examples_are_counted(tok):
    untrained = Example([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello", "train": False}],
                        location="b:3")
    bogus = {"messages": [{"role": "bogus", "content": "?"}], "location": "b:4"}
    encoded, report = encode_dataset([untrained, bogus, two_turns("b:5")], tok, TOY)
    assert len(encoded) == 1
    assert report.dropped == {"nothing trained": 1, "cannot render": 1}
    assert report.first_locations["nothing trained"] == ["b:3"]
    assert report.first_locations["cannot render"] == ["b:4: toy format has no role 'bogus'"]
    assert report.num_tokens == len(encoded[0][0])

# --- inspector --------------------------------------------------------------------------------------


def test_inspector_report(tok):
    report = inspect_example(Example(CONVERSATION, TOOLS, location="c:1"), tok, TOY, colour=False)
    assert '⟦<|call|>{"name": "get_weather", "arguments": {"city": "Paris"}}<|end|>⟧' in report
    assert "⟦It is sunny and 21 C in Paris.<|end|>⟧<" not in report  # last turn: nothing after it
    assert report.count("⟦") == 2
    assert "BOS tokens: 1" in report
    assert "every assistant turn's end token trained: yes (2/2" in report
    rows = role_table(report)
    answer = tok.encode("<|assistant|>It is sunny and 21 C in Paris.<|end|>")
    call = tok.encode('<|assistant|><|call|>{"name": "get_weather", "arguments": {"city": "Paris"}}<|end|>')
    assert rows["assistant"] == [str(len(answer) + len(call) - 2), "2"]  # the two headers are untrained
    assert rows["user"] == ["0", str(len(tok.encode("<|user|>Weather in Paris?<|end|>")))]
    assert rows["(format)"] == ["0", str(len(tok.encode("<s><|tools|>" + json.dumps(TOOLS) + "<|end|>")))]


def test_inspector_flags_an_untrained_end_token(tok):
    def no_end_render(messages, tools=None, add_generation_prompt=False):
        return toy_render(messages, tools, end_kind=TEMPLATE)  # the end token labelled as template text

    fmt = ChatFormat("no-end", no_end_render, lambda t: {}, ("<|end|>",), ())
    report = inspect_example(Example(CONVERSATION), tok, fmt)
    assert "every assistant turn's end token trained: NO (0/2" in report


def test_inspector_command_line(tok, tmp_path, monkeypatch, capsys):
    import inspect_masks

    tok.tk.save(str(tmp_path / "tokenizer.json"))
    monkeypatch.setattr("minifc.chat.lookup.get_format", lambda name: TOY)
    monkeypatch.setattr(inspect_masks, "load_examples", lambda path, data_format, train_on: (
        [two_turns("x:1"), two_turns("x:2"), two_turns("x:3")], None))
    inspect_masks.main(["--model", str(tmp_path), "--format", "toy", "--data", "unused.jsonl", "--n", "2"])
    out = capsys.readouterr().out
    assert out.count("--- x:") == 2 and "⟦Hello there!<|end|>⟧" in out
    with pytest.raises(SystemExit, match="--format"):
        inspect_masks.main(["--model", str(tmp_path), "--data", "unused.jsonl"])
