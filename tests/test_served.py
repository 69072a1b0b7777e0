"""Train what serving shows: the sequences an example trains as (encode.served_renders).

A toy format here drops reasoning the way Qwen3's template does (shown only after the last user
message; the final assistant turn always opens with a think block, empty without reasoning), so the
splitting is checked on texts written by hand. Then, for every real format whose official template is
at hand, the trained text of each assistant turn is compared with what the official template adds
between render(messages[:i], add_generation_prompt=True) and render(messages[:i+1]), cut at the stop.
"""

import json

import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from minifc.chat import FORMATS, ChatFormat, get_format
from minifc.chat.kit import SpanWriter, control_pattern, until_stop
from minifc.data import DataError, Example
from minifc.encode import (encode_dataset, encode_example, encode_sequences, inspect_example, served_renders,
                           served_spans)
from minifc.masking import CALLS, DEFAULT, END, HEADER, IGNORE_INDEX, REASONING, TEXT, TrainOn
from minifc.tokenizer import Tokenizer
from tests.jinja_oracle import render_template

CONTROL = ["<s>", "<pad>", "<|user|>", "<|assistant|>", "<|tool|>", "<|call|>", "<|think|>", "<|/think|>", "<|end|>"]


def think_render(messages, tools=None, add_generation_prompt=False, thinking=True):
    """<s> then <|role|>body<|end|> per message. An assistant turn after the last user message shows
    <|think|>reasoning<|/think|> before its text when it has reasoning or is the last message; earlier
    turns lose their reasoning (as Qwen3's template does)."""
    out = SpanWriter(messages, tools, control_pattern(CONTROL))
    out.write("<s>")
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    for index, message in enumerate(messages):
        out.write(f"<|{message['role']}|>", HEADER, index)
        reasoning = message.get("reasoning") or ""
        shown = message["role"] == "assistant" and index > last_user and (reasoning or index == len(messages) - 1)
        if thinking and shown:
            out.write(f"<|think|>{reasoning}<|/think|>", REASONING, index)
        out.write(message.get("content") or "", TEXT, index)
        for call in message.get("tool_calls") or []:
            out.write("<|call|>" + json.dumps(call["function"]), CALLS, index)
        out.write("<|end|>", END, index)
    if add_generation_prompt:
        out.write("<|assistant|>")
    return out.rendered()


def plain_render(messages, tools=None, add_generation_prompt=False):
    """The same without any think block: a prefix-preserving format with no place for reasoning."""
    return think_render(messages, tools, add_generation_prompt, thinking=False)


THINK = ChatFormat("think", think_render, parse=lambda text: {}, stop_tokens=("<|end|>",), control_tokens=tuple(CONTROL))
PLAIN = ChatFormat("plain", plain_render, parse=lambda text: {}, stop_tokens=("<|end|>",), control_tokens=tuple(CONTROL))
CALL = {"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
CALL_TEXT = '<|call|>{"name": "f", "arguments": {"x": 1}}'


def conversation(first_reasoning="r1"):
    return [{"role": "user", "content": "q1"},
            {"role": "assistant", "reasoning": first_reasoning, "tool_calls": [CALL]},
            {"role": "tool", "content": "7"},
            {"role": "assistant", "reasoning": "r2", "content": "a1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "reasoning": "r3", "content": "a2"}]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    corpus = [think_render(conversation()).text, "the quick brown fox q1 q2 a1 a2 r1 r2 r3 7"] * 20
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=CONTROL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    hf.train_from_iterator(corpus, trainer)
    return Tokenizer(hf, bos_token="<s>", eos_token="<|end|>", pad_token="<pad>")


def trained_texts(rendered, starts, train_on=DEFAULT):
    return [rendered.text[start:end] for start, end in sorted(served_spans(rendered, train_on, starts))]


def test_the_full_render_then_the_prefix_that_shows_the_earlier_turns_with_their_reasoning():
    (full, full_turns), (prefix, prefix_turns) = served_renders(Example(conversation()), THINK)
    assert full.text == ("<s><|user|>q1<|end|><|assistant|><|call|>{\"name\": \"f\", \"arguments\": {\"x\": 1}}<|end|>"
                         "<|tool|>7<|end|><|assistant|>a1<|end|><|user|>q2<|end|>"
                         "<|assistant|><|think|>r3<|/think|>a2<|end|>")
    assert set(full_turns) == {5} and trained_texts(full, full_turns) == ["<|think|>r3<|/think|>a2<|end|>"]
    # turns 1 and 3 come after the only user message of messages[:4]: both show their reasoning there
    assert prefix.text == ("<s><|user|>q1<|end|><|assistant|><|think|>r1<|/think|>" + CALL_TEXT + "<|end|>"
                           "<|tool|>7<|end|><|assistant|><|think|>r2<|/think|>a1<|end|>")
    assert set(prefix_turns) == {1, 3}
    assert trained_texts(prefix, prefix_turns) == ["<|think|>r1<|/think|>" + CALL_TEXT + "<|end|>",
                                                   "<|think|>r2<|/think|>a1<|end|>"]


def test_a_turn_without_reasoning_is_served_with_an_empty_think_block_so_it_needs_its_own_sequence():
    renders = served_renders(Example(conversation(first_reasoning="")), THINK)
    assert [sorted(only) for _, only in renders] == [[5], [3], [1]]
    rendered, only = renders[2]
    assert rendered.text == "<s><|user|>q1<|end|><|assistant|><|think|><|/think|>" + CALL_TEXT + "<|end|>"
    assert trained_texts(rendered, only) == ["<|think|><|/think|>" + CALL_TEXT + "<|end|>"]


def test_a_prefix_preserving_format_is_one_sequence_as_before(tok):
    renders = served_renders(Example(conversation()), PLAIN)
    assert len(renders) == 1 and set(renders[0][1]) == {1, 3, 5}
    assert encode_example(Example(conversation()), tok, PLAIN) == encode_sequences(Example(conversation()), tok, PLAIN)[0]


def test_encode_example_refuses_an_example_that_is_several_sequences(tok):
    with pytest.raises(ValueError, match="trains this example as 2 sequences: use encode_sequences"):
        encode_example(Example(conversation()), tok, THINK)


def test_every_turn_is_trained_exactly_once_with_its_tokens(tok):
    sequences = encode_sequences(Example(conversation()), tok, THINK)
    trained = [[i for i, label in zip(ids, labels) if label != IGNORE_INDEX] for ids, labels in sequences]
    assert trained == [tok.encode("<|think|>r3<|/think|>a2<|end|>"),
                       tok.encode("<|think|>r1<|/think|>" + CALL_TEXT + "<|end|>") +
                       tok.encode("<|think|>r2<|/think|>a1<|end|>")]


def test_last_turn_only_and_train_flags_choose_the_turns_before_splitting(tok):
    assert [set(only) for _, only in served_renders(Example(conversation()), THINK, TrainOn(last_turn_only=True))] == [{5}]
    messages = conversation()
    messages[5]["train"] = False
    renders = served_renders(Example(messages), THINK)
    assert [set(only) for _, only in renders] == [set(), {1, 3}]  # the full render trains nothing, and is dropped
    encoded, report = encode_dataset([Example(messages, location="x.jsonl:1")], tok, THINK)
    assert len(encoded) == 1 and report.kept == 1 and report.sequences == 1
    assert report.dropped == {"nothing trained": 1}


def test_other_roles_are_trained_in_the_full_render_only():
    renders = served_renders(Example(conversation()), THINK, TrainOn(("assistant", "tool")))
    assert [set(only) for _, only in renders] == [{2, 5}, {1, 3}]
    assert trained_texts(*renders[0], TrainOn(("assistant", "tool"))) == \
        ["7<|end|>", "<|think|>r3<|/think|>a2<|end|>"]


def test_reasoning_can_be_left_as_untrained_context():
    no_reasoning = TrainOn(reasoning=False)
    (full, only), _ = served_renders(Example(conversation()), THINK, no_reasoning)
    assert trained_texts(full, only, no_reasoning) == ["a2<|end|>"]
    assert TrainOn.parse("assistant", reasoning=False) == no_reasoning


def test_the_report_counts_the_extra_sequences_and_their_tokens(tok):
    examples = [Example(conversation(), location="d.jsonl:1"), Example(conversation(""), location="d.jsonl:2")]
    encoded, report = encode_dataset(examples, tok, THINK)
    assert (report.kept, report.sequences, len(encoded)) == (2, 5, 5)
    assert report.extra_tokens == sum(len(ids) for ids, _ in encoded[1:2] + encoded[3:5])
    assert report.num_tokens == sum(len(ids) for ids, _ in encoded)
    assert "3 extra sequences (" in str(report) and "d.jsonl:1 (2 sequences), d.jsonl:2 (3 sequences)" in str(report)


def test_reasoning_a_format_cannot_show_is_counted_or_refused_with_strict(tok):
    example = Example(conversation(), location="d.jsonl:4")
    encoded, report = encode_dataset([example], tok, PLAIN)
    assert len(encoded) == 1 and report.unrendered_reasoning == 3
    assert "3 assistant turns carry reasoning this format has no place for: trained without it (first at d.jsonl:4)" \
        in str(report)
    with pytest.raises(DataError, match="d.jsonl:4: an assistant message has reasoning, which the plain format"):
        encode_dataset([example], tok, PLAIN, strict=True)
    assert "reasoning not shown: 3 assistant turns" in inspect_example(example, tok, PLAIN)


def test_a_sequence_too_long_is_dropped_and_counted_with_its_place(tok):
    lengths = [len(ids) for ids, _ in encode_sequences(Example(conversation()), tok, THINK)]
    encoded, report = encode_dataset([Example(conversation(), location="d.jsonl:1")], tok, THINK,
                                     max_len=min(lengths))
    assert len(encoded) == 1 and report.kept == 1
    longest = "d.jsonl:1 (sequence %d of 2)" % (lengths.index(max(lengths)) + 1)
    assert report.first_locations[f"longer than max_len={min(lengths)}"] == [f"{longest} ({max(lengths)} tokens)"]


def test_the_inspector_shows_every_sequence(tok):
    report = inspect_example(Example(conversation(), location="d.jsonl:1"), tok, THINK)
    assert "d.jsonl:1: sequence 1 of 2 (a served prefix)" in report and "sequence 2 of 2" in report
    assert "every assistant turn's end token trained: yes (3/3 turns" in report


# --- against the official templates ----------------------------------------------------------------

# format -> (template file, what the template is given beside messages/tools)
OFFICIAL = {"qwen3": ("qwen3-hf-current.jinja", {}), "qwen3-2507": ("qwen3-instruct-2507.jinja", {}),
            "qwen2.5": ("qwen2.5-instruct.jinja", {}), "functiongemma": ("functiongemma-270m-it.jinja", {"bos_token": "<bos>"}),
            "gemma4": ("gemma-4-E2B-E4B-it.jinja", {"bos_token": "<bos>"}),
            "gemma4-31b": ("gemma-4-31B-26B-A4B-it.jinja", {"bos_token": "<bos>"})}
# The 31B template's generation prompt (thinking off) ends with an empty thought channel that its render of
# the same turn leaves out (where it opens a model turn): serving generates after the prompt, so that is
# the context trained.
PROMPT_ONLY = {"gemma4-31b": "<|channel>thought\n<channel|>"}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
SERVED_CASES = {
    "calls then answer, no reasoning": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [WEATHER]},
        {"role": "tool", "name": "get_weather", "content": "{\"sky\": \"sunny\"}"},
        {"role": "assistant", "content": "Sunny."}],
    "reasoning over two user turns": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "reasoning": "Call the tool.", "content": "", "tool_calls": [WEATHER]},
        {"role": "tool", "name": "get_weather", "content": "{\"sky\": \"sunny\"}"},
        {"role": "assistant", "reasoning": "It answered.", "content": "Sunny."},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "reasoning": "Be polite.", "content": "You are welcome."}],
}


def _oracle_messages(messages):
    """What transformers passes the template: `reasoning` copied to `reasoning_content`, tool names kept."""
    return [dict(m, reasoning_content=m["reasoning"]) if m.get("reasoning") else m for m in messages]


@pytest.mark.parametrize("case", SERVED_CASES)
@pytest.mark.parametrize("name", OFFICIAL)
def test_each_turn_trains_what_the_official_template_serves(name, case, reference):
    if name not in FORMATS:
        pytest.skip(f"format {name} not in this checkout")
    fmt, (template, extra) = get_format(name), OFFICIAL[name]
    path, messages = reference / "templates" / template, SERVED_CASES[case]
    if name == "functiongemma":  # FunctionGemma has no place for reasoning
        messages = [{k: v for k, v in m.items() if k != "reasoning"} for m in messages]
    renders = served_renders(Example(messages, TOOLS), fmt)
    if any(m.get("reasoning") for m in messages):  # reasoning is served with thinking on
        extra = dict(extra, enable_thinking=True)
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    assert sorted(i for _, only in renders for i in only) == turns  # every turn trained exactly once
    for rendered, only in renders:
        for i in only:
            prompt = render_template(path, _oracle_messages(messages[:i]), TOOLS, True, **extra)
            served = render_template(path, _oracle_messages(messages[:i + 1]), TOOLS, False, **extra)
            only_in_prompt = PROMPT_ONLY.get(name, "") if prompt.endswith(PROMPT_ONLY.get(name, "")) else ""
            assert served.startswith(prompt[:len(prompt) - len(only_in_prompt)])
            completion = served[len(prompt) - len(only_in_prompt):]
            stop = next(s for s in sorted(fmt.stop_tokens, key=completion.find) if s in completion)
            assert "".join(trained_texts(rendered, {i: only[i]})) == until_stop(completion, [stop]) + stop
            assert rendered.text.startswith(prompt + until_stop(completion, [stop]) + stop)


def test_a_turn_trains_only_what_follows_its_generation_prompt():
    """Qwen3 with thinking off: the prompt ends with the empty think block, so the block is context."""
    messages = SERVED_CASES["calls then answer, no reasoning"]
    renders = served_renders(Example(messages, TOOLS), get_format("qwen3"), enable_thinking=False)
    trained = [text for rendered, starts in renders for text in trained_texts(rendered, starts)]
    assert trained == ["Sunny.<|im_end|>",
                       '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>']
    thinking = [text for rendered, starts in served_renders(Example(messages, TOOLS), get_format("qwen3"))
                for text in trained_texts(rendered, starts)]
    assert thinking == ["<think>\n\n</think>\n\nSunny.<|im_end|>", "<think>\n\n</think>\n\n" + trained[1]]


def test_reasoning_of_untrained_context_turns_is_not_counted_as_unshowable(tok):
    """--last-turn-only: earlier turns are context, and the template may drop their reasoning as served."""
    _, report = encode_dataset([Example(conversation(), location="d.jsonl:1")], tok, THINK, train_on=TrainOn(
        last_turn_only=True), strict=True)
    assert report.unrendered_reasoning == 0 and report.sequences == 1
