"""The offline demo's tokenizer (minifc/tiny.py): a value the model must copy from the request into a call
is the same tokens in both places, for the held-out split's values too, which the tokenizer never saw."""

import pytest

from minifc import tiny
from minifc.chat import FORMATS, get_format
from minifc.data import BUILTIN_TEST, BUILTIN_TRAIN, load_examples
from minifc.encode import encode_dataset
from minifc.masking import TrainOn


def contains(ids, part):
    return any(ids[i:i + len(part)] == part for i in range(len(ids) - len(part) + 1))


@pytest.fixture(scope="module")
def train_examples():
    return load_examples(BUILTIN_TRAIN)[0][:120]


def value_tokens(tokenizer, text, start, value):
    """The ids of the tokens that lie within the first `value` in text[start:] (a value's closing
    punctuation may share a token with the quote after it: "trip." + '"' is one piece)."""
    begin = text.index(value, start)
    ids, offsets = tokenizer.encode_with_offsets(text)
    inside = [(i, (a, b)) for i, (a, b) in zip(ids, offsets) if begin <= a and b <= begin + len(value)]
    assert sum(b - a for _, (a, b) in inside) >= len(value) - 1, (value, text[begin:begin + len(value) + 3])
    return [i for i, _ in inside]


def test_string_arguments_are_the_same_tokens_in_the_request_and_in_the_call(train_examples):
    """Copying an argument needs its tokens in the call to be the tokens of the request. GPT-2's pieces glue
    the space before a word to it (" Montreal" in the request, "Montreal" after city="), which the model
    cannot map for a held-out word it never saw; the demo's pieces never do."""
    fmt = get_format("gemma3")
    tokenizer = tiny.tokenizer_for_examples(train_examples, fmt)
    checked = 0
    for example in load_examples(BUILTIN_TEST)[0]:
        prompt = fmt.render(example.messages[:-1], example.tools, add_generation_prompt=True).text
        text = fmt.render(example.messages, example.tools).text
        prompt_ids = tokenizer.encode(prompt)
        for call in example.messages[-1].get("tool_calls") or []:
            for value in call["function"]["arguments"].values():
                if isinstance(value, str):
                    in_call = value_tokens(tokenizer, text, len(prompt), value)
                    assert contains(prompt_ids, in_call), (example.location, value,
                                                           [tokenizer.decode([i]) for i in in_call])
                    checked += 1
    assert checked > 200


def test_frequent_pieces_are_whole_tokens_and_other_words_are_spelled(train_examples):
    """Words of the prompts ("weather", the tool names' parts) are one token each; a word the tokenizer
    never saw, a held-out city, is its characters, the tokens every copied value is made of."""
    fmt = get_format("gemma3")
    tokenizer = tiny.tokenizer_for_examples(train_examples, fmt)
    spelled = lambda word: [tokenizer.decode([i]) for i in tokenizer.encode(word)]
    assert tokenizer.vocab_size <= 1024  # fewer when the texts have fewer distinct pieces
    for word in ("weather", "description", "string", "Remind"):
        assert spelled(word) == [word]
    assert spelled("Reykjavik") == list("Reykjavik")  # held out: not in the 120 training conversations
    assert spelled("Zqxw 1983") == ["Z", "q", "x", "w", " ", "1", "9", "8", "3"]


@pytest.mark.parametrize("fmt_name", sorted(FORMATS))
def test_every_format_renders_the_builtin_data_into_whole_tokens(train_examples, fmt_name):
    """No piece of the tokenizer crosses the edge of a trained span (encode_dataset raises if one does),
    also when every role is trained."""
    fmt = get_format(fmt_name)
    tokenizer = tiny.tokenizer_for_examples(train_examples, fmt)
    train_on = TrainOn.parse("assistant,tool,user,system", False)
    _, report = encode_dataset(train_examples, tokenizer, fmt, max_len=4096, train_on=train_on)
    assert report.kept == len(train_examples) and not report.dropped and report.num_trained > 0
