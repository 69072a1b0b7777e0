"""The collator: labels from spans, dataset encoding (drop / truncate), packing, batches, the inspector.

Uses a toy chat format defined here and a small byte-level BPE trained in the test, so it runs without
the real formats or tokenizers (tests/test_masking.py covers those). Expected trained ids are always
`tokenizer.encode(<text written by hand>)`, never read back from the code under test.
"""

import json
from collections import Counter

import pytest
import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from minifc import collate
from minifc.chat import ChatFormat, Rendered
from minifc.collate import (IGNORE_INDEX, SpanAlignmentError, encode_dataset, encode_example, epoch_batches,
                            inspect_example, pack_rows, packed_batch, padded_batch)
from minifc.data import Example
from minifc.tokenizer import Tokenizer

CONTROL = ["<s>", "<pad>", "<|tools|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>", "<|call|>",
           "<|end|>"]


def toy_render(messages, tools=None, add_generation_prompt=False):
    """<s>[<|tools|>JSON<|end|>] then <|role|>body<|end|> per message; an assistant body is its text
    then <|call|>{"name", "arguments"} per call. Spans: assistant body + <|end|>, overrides as the contract."""
    text, spans = "<s>", []
    if tools:
        text += "<|tools|>" + json.dumps(tools) + "<|end|>"
    for message in messages:
        if message["role"] not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"toy format has no role {message['role']!r}")
        text += f"<|{message['role']}|>"
        body = message.get("content") or ""
        for call in message.get("tool_calls") or []:
            body += "<|call|>" + json.dumps({"name": call["function"]["name"], "arguments": call["function"]["arguments"]})
        start = len(text)
        text += body + "<|end|>"
        if message["role"] == "assistant" and message.get("train", True):
            spans.append((start, len(text)))
        elif message["role"] != "assistant" and message.get("train", False):
            spans.append((start, start + len(body)))
    if add_generation_prompt:
        text += "<|assistant|>"
    return Rendered(text, spans)


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
        text = "<s><|assistant|>Hello there<|end|>"
        return Rendered(text, [(text.index("ello"), len(text))])  # starts inside the token "Hello"

    assert len(tok.encode("Hello")) == 1  # the premise: "Hello" is one token
    fmt = ChatFormat("bad", bad_render, lambda t: {}, ("<|end|>",), ())
    with pytest.raises(SpanAlignmentError, match=r"here:1: token 2 'Hello'.*straddles"):
        encode_example({"messages": [], "location": "here:1"}, tok, fmt)


def test_span_ending_inside_a_token_raises():
    ids, offsets = [7, 8], [(0, 4), (4, 9)]
    with pytest.raises(SpanAlignmentError):
        collate.label_tokens(ids, offsets, [(0, 6)])
    assert collate.label_tokens(ids, offsets, [(0, 4)]) == [7, IGNORE_INDEX]
    assert collate.label_tokens(ids, offsets, [(4, 9)]) == [IGNORE_INDEX, 8]
    assert collate.label_tokens([5, 6, 7], [(0, 2), (2, 2), (2, 4)], [(0, 4)]) == [5, IGNORE_INDEX, 7]  # empty token
    assert collate.label_tokens(ids, offsets, [(6, 9), (0, 3), (3, 6)]) == [7, 8]  # touching spans are one
    with pytest.raises(SpanAlignmentError):
        collate.label_tokens(ids, offsets, [(0, 3), (3, 5), (7, 9)])


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


# --- packing and batches ----------------------------------------------------------------------------


def test_pack_rows_best_fit_decreasing_by_hand():
    # 5 -> row0 (room 3); 4 -> new row1 (room 4); 3 -> row0 (tightest, room 0); 3 -> row1 (room 1);
    # 2 -> new row2 (room 6); 1 -> row1 (room 1 is tighter than 6)
    assert pack_rows([5, 4, 3, 3, 2, 1], 8) == [[0, 2], [1, 3, 5], [4]]
    with pytest.raises(ValueError, match="longer than tokens_per_row=8"):
        pack_rows([9], 8)


def test_pack_rows_places_everything_within_budget():
    lengths = [int(x) for x in torch.randint(1, 50, (300,), generator=torch.Generator().manual_seed(0))]
    rows = pack_rows(lengths, 64)
    assert sorted(i for row in rows for i in row) == list(range(300))
    assert all(sum(lengths[i] for i in row) <= 64 for row in rows)
    assert len(rows) <= -(-sum(lengths) // 64) * 1.1  # within 10% of the lower bound


def random_examples(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(n):
        length = int(torch.randint(2, 12, (1,), generator=g))
        ids = [int(x) for x in torch.randint(3, 100, (length,), generator=g)]
        trained = torch.rand(length, generator=g) < 0.5
        examples.append((ids, [i if t else IGNORE_INDEX for i, t in zip(ids, trained)]))
    return examples


def pairs_one_by_one(examples):
    return Counter((tuple(ids[:t + 1]), labels[t + 1]) for ids, labels in examples
                   for t in range(len(ids) - 1) if labels[t + 1] != IGNORE_INDEX)


def pairs_of_batch(batch):
    pairs = Counter()
    for b in range(batch.input_ids.shape[0]):
        row, positions, targets = batch.input_ids[b].tolist(), batch.position_ids[b].tolist(), batch.targets[b].tolist()
        for t, target in enumerate(targets):
            if target != IGNORE_INDEX:
                pairs[(tuple(row[t - positions[t]:t + 1]), target)] += 1  # context: from the example's start
    return pairs


def test_packed_batch_layout_by_hand():
    a = ([1, 2, 3], [IGNORE_INDEX, 2, 3])
    b = ([4, 5], [IGNORE_INDEX, 5])
    batch = packed_batch([[a, b], [b]], tokens_per_row=6, pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5, 0], [4, 5, 0, 0, 0, 0]]
    assert batch.targets.tolist() == [[2, 3, -100, 5, -100, -100], [5, -100, -100, -100, -100, -100]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 0, 1, 2, 3]]
    assert batch.cu_seqlens.dtype == torch.int32 and batch.cu_seqlens.tolist() == [0, 3, 5, 6, 8, 12]
    assert batch.attention_mask.tolist() == [[True] * 5 + [False], [True] * 2 + [False] * 4]
    assert (batch.num_tokens, batch.num_trained, batch.max_seqlen) == (7, 4, 4)
    assert batch.padding_fraction == pytest.approx(5 / 12)
    moved = batch.to("cpu")
    assert torch.equal(moved.cu_seqlens, batch.cu_seqlens) and moved.num_trained == batch.num_trained


def test_packed_batch_gives_the_same_pairs_as_examples_one_by_one():
    examples = random_examples(40)
    rows = pack_rows([len(ids) for ids, _ in examples], 24)
    batch = packed_batch([[examples[i] for i in row] for row in rows], 24, pad_id=0)
    assert pairs_of_batch(batch) == pairs_one_by_one(examples)
    # no target crosses an example boundary: the last token of every segment has no target
    flat_targets = batch.targets.flatten()
    assert all(flat_targets[end - 1] == IGNORE_INDEX for end in batch.cu_seqlens[1:].tolist())
    # positions restart at 0 at every cu_seqlens boundary and count up inside a segment
    flat_positions = batch.position_ids.flatten().tolist()
    bounds = batch.cu_seqlens.tolist()
    for start, end in zip(bounds, bounds[1:]):
        assert flat_positions[start:end] == list(range(end - start))


def test_padded_batch():
    a = ([1, 2, 3], [IGNORE_INDEX, 2, 3])
    b = ([4, 5], [IGNORE_INDEX, 5])
    batch = padded_batch([a, b], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3], [4, 5, 0]]
    assert batch.targets.tolist() == [[2, 3, -100], [5, -100, -100]]
    assert batch.position_ids.tolist() == [[0, 1, 2], [0, 1, 2]]
    assert batch.attention_mask.tolist() == [[True, True, True], [True, True, False]]
    assert batch.cu_seqlens is None and (batch.num_tokens, batch.num_trained) == (5, 3)
    examples = random_examples(10, seed=1)
    assert pairs_of_batch(padded_batch(examples, pad_id=0)) == pairs_one_by_one(examples)


@pytest.mark.parametrize("tokens_per_row", [32, None])
def test_epoch_batches_are_seeded_complete_and_resumable(tokens_per_row):
    examples = random_examples(50, seed=2)
    run = lambda **kw: list(epoch_batches(examples, rows_per_batch=3, pad_id=0, tokens_per_row=tokens_per_row, **kw))
    first = run(seed=7, epoch=0)
    assert pairs_one_by_one(examples) == sum((pairs_of_batch(b) for b in first), Counter())  # each example once
    assert sum(b.num_tokens for b in first) == sum(len(ids) for ids, _ in examples)
    assert [b.input_ids.tolist() for b in run(seed=7, epoch=0)] == [b.input_ids.tolist() for b in first]
    assert [b.input_ids.tolist() for b in run(seed=7, epoch=1)] != [b.input_ids.tolist() for b in first]
    resumed = run(seed=7, epoch=0, start=4)
    assert [b.targets.tolist() for b in resumed] == [b.targets.tolist() for b in first[4:]]


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
        rendered = toy_render(messages, tools)
        return Rendered(rendered.text, [(s, e - len("<|end|>")) for s, e in rendered.spans])

    fmt = ChatFormat("no-end", no_end_render, lambda t: {}, ("<|end|>",), ())
    report = inspect_example(Example(CONVERSATION), tok, fmt)
    assert "every assistant turn's end token trained: NO (0/2" in report


def test_inspector_command_line(tok, tmp_path, monkeypatch, capsys):
    tok.tk.save(str(tmp_path / "tokenizer.json"))
    monkeypatch.setattr("minifc.chat.lookup.get_format", lambda name: TOY)
    monkeypatch.setattr("minifc.data.load_examples", lambda path: ([two_turns("x:1"), two_turns("x:2"),
                                                                    two_turns("x:3")], None), raising=False)
    collate.main(["--model", str(tmp_path), "--format", "toy", "--data", "unused.jsonl", "--n", "2"])
    out = capsys.readouterr().out
    assert out.count("--- x:") == 2 and "⟦Hello there!<|end|>⟧" in out
    with pytest.raises(SystemExit, match="--format"):
        collate.main(["--model", str(tmp_path), "--data", "unused.jsonl"])


def test_inspector_merges_messages_whose_prefix_cannot_be_rendered(tok):
    def strict_render(messages, tools=None, add_generation_prompt=False):
        if len(messages) < 2:
            raise ValueError("needs a user message after the system message")
        return toy_render(messages, tools)

    fmt = ChatFormat("strict", strict_render, lambda t: {}, ("<|end|>",), ())
    report = inspect_example(Example(CONVERSATION, TOOLS), tok, fmt)
    rows = role_table(report)
    preamble = "<s><|tools|>" + json.dumps(TOOLS) + "<|end|><|system|>You are helpful.<|end|><|user|>Weather in Paris?<|end|>"
    assert rows["(format)+system+user"] == ["0", str(len(tok.encode(preamble)))]


def test_inspector_resolves_a_short_name_through_the_registry(tok, tmp_path, monkeypatch):
    import huggingface_hub

    from minifc.chat import get_format

    tok.tk.save(str(tmp_path / "tokenizer.json"))
    downloads = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, allow_patterns: downloads.append((repo, allow_patterns)) or str(tmp_path))
    tokenizer, fmt = collate.resolve_model("gemma-3-1b", None)
    assert fmt is get_format("gemma3") and tokenizer.encode("Hello there!") == tok.encode("Hello there!")
    assert downloads == [("google/gemma-3-1b-it", ["tokenizer*", "*.json"])]  # the tokenizer files only


def test_inspector_reads_the_format_recorded_by_train(tok, tmp_path):
    from minifc.chat import get_format

    tok.tk.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "minifc.json").write_text(json.dumps({"chat_format": "llama3.2"}))
    assert collate.resolve_model(str(tmp_path), None)[1] is get_format("llama3.2")
