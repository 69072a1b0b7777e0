"""Batched KV-cache decoding (minifc/generate.py) against plain full-sequence forward passes."""

import pytest
import torch

from minifc.generate import Generation, generate, left_pad, next_tokens
from minifc.tokenizer import Tokenizer
from tiny_checkpoint import gemma_hf_config, random_model, train_tokenizer

TEXTS = ["The weather in Paris is sunny today.", "Book a table for two at eight pm, please.",
         "Convert 100 EUR to USD and set a reminder for Monday.", "What is the capital of Norway?"] * 5


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(train_tokenizer(TEXTS, ["<bos>", "<eos>"], vocab_size=300), bos_token="<bos>",
                     eos_token="<eos>", pad_token="<pad>")


@pytest.fixture(scope="module")
def model(tokenizer):
    return random_model(gemma_hf_config(tokenizer.vocab_size), seed=0)


@pytest.fixture(scope="module")
def prompts(tokenizer):
    # lengths 3, 14 and 9: longer than the sliding window (4), different, and not sorted
    ids = [tokenizer.bos_id] + tokenizer.encode(" ".join(TEXTS[:4]))
    return [ids[:3], ids[:14], ids[5:14]]


def uncached_greedy(model, prompt: list[int], steps: int) -> list[int]:
    """The oracle: recompute the whole sequence every step, one prompt at a time, no padding, no cache."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt):]


@pytest.fixture(scope="module")
def reference(model, prompts):
    return [uncached_greedy(model, p, 12) for p in prompts]


def test_cached_batched_greedy_equals_uncached(model, tokenizer, prompts, reference):
    generations = generate(model, tokenizer, prompts, stop_ids=[], max_new_tokens=12)
    assert [g.ids for g in generations] == reference
    assert [g.stop_reason for g in generations] == ["length"] * 3
    assert len(set(map(tuple, reference))) == 3  # the rows really differ (a padding bug would show)


def test_batched_equals_one_by_one(model, tokenizer, prompts):
    batched = generate(model, tokenizer, prompts, stop_ids=[], max_new_tokens=10)
    alone = [generate(model, tokenizer, [p], stop_ids=[], max_new_tokens=10)[0] for p in prompts]
    assert batched == alone


def test_stop_tokens_end_each_row_and_are_kept(model, tokenizer, prompts, reference):
    stop = reference[1][4]                          # a token row 1 produces at step 5
    expected = []
    for ref in reference:
        if stop in ref:
            expected.append((ref[:ref.index(stop) + 1], "stop"))
        else:
            expected.append((ref, "length"))
    generations = generate(model, tokenizer, prompts, stop_ids=[stop], max_new_tokens=12)
    assert [(g.ids, g.stop_reason) for g in generations] == expected
    assert expected[1][1] == "stop"
    for g in generations:  # text keeps special tokens, stop token included
        assert g.text == tokenizer.tk.decode(g.ids, skip_special_tokens=False)


def test_stops_early_when_every_row_has_stopped(model, tokenizer, prompts, reference, monkeypatch):
    stops = [ref[2] for ref in reference]           # every row stops at step 3 or earlier
    calls = []
    original = model.hidden_states
    monkeypatch.setattr(model, "hidden_states", lambda *a, **k: calls.append(1) or original(*a, **k))
    generations = generate(model, tokenizer, prompts, stop_ids=stops, max_new_tokens=12)
    assert all(g.stop_reason == "stop" and len(g.ids) <= 3 for g in generations)
    last = max(len(g.ids) for g in generations)
    assert len(calls) == last                       # prefill + one call per step before the last token


def test_max_new_tokens_honoured(model, tokenizer, prompts, reference):
    generations = generate(model, tokenizer, prompts, stop_ids=[tokenizer.eos_id], max_new_tokens=5)
    for g, ref in zip(generations, reference):
        if tokenizer.eos_id not in ref[:5]:
            assert (g.ids, g.stop_reason) == (ref[:5], "length")
    assert generate(model, tokenizer, prompts[:1], stop_ids=[], max_new_tokens=1)[0].ids == reference[0][:1]


def test_sampling_is_reproducible_with_a_seed(model, tokenizer, prompts, reference):
    sample = lambda seed: [g.ids for g in generate(model, tokenizer, prompts, [], 12, temperature=1.0,
                                                   seed=seed)]
    assert sample(1) == sample(1)
    assert sample(1) != sample(2)
    # a nucleus holding only the most likely token is greedy decoding
    nucleus = generate(model, tokenizer, prompts, [], 12, temperature=1.0, top_p=1e-6, seed=3)
    assert [g.ids for g in nucleus] == reference


def test_next_tokens_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    logits = probs.log().repeat(4000, 1)
    generator = torch.Generator().manual_seed(0)
    drawn = next_tokens(logits, temperature=1.0, top_p=0.7, generator=generator)
    counts = torch.bincount(drawn, minlength=4) / 4000
    assert counts[0] == counts[2] == 0              # 0.5 + 0.3 >= 0.7: only tokens 1 and 3 stay
    assert abs(counts[1] - 0.625) < 0.03            # renormalised: 0.5 / 0.8
    free = torch.bincount(next_tokens(logits, 1.0, 1.0, generator), minlength=4) / 4000
    assert torch.allclose(free, probs, atol=0.03)   # top_p = 1: the softmax itself
    hot = torch.bincount(next_tokens(logits, 0.5, 1.0, generator), minlength=4) / 4000
    sharpened = probs ** 2 / (probs ** 2).sum()     # temperature 0.5 squares the probabilities
    assert torch.allclose(hot, sharpened, atol=0.03)
    assert next_tokens(logits[:2], 0.0).tolist() == [1, 1]


def test_left_pad():
    ids, mask = left_pad([[5, 6], [7, 8, 9]], pad_id=0, device="cpu")
    assert ids.tolist() == [[0, 5, 6], [7, 8, 9]]
    assert mask.tolist() == [[False, True, True], [True, True, True]]


def test_bad_arguments(model, tokenizer):
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        generate(model, tokenizer, [[1, 2], []], [])
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, tokenizer, [[1, 2]], [], max_new_tokens=0)
    assert isinstance(generate(model, tokenizer, [[1, 2]], [], max_new_tokens=1)[0], Generation)


def test_never_decodes_past_max_position_embeddings(model, tokenizer, prompts, reference, monkeypatch):
    """Decoding stops ("length") where the longest prompt plus the new tokens reach the model's
    max_position_embeddings, whatever max_new_tokens says; a prompt at the limit is refused."""
    monkeypatch.setattr(model.config, "max_position_embeddings", 14 + 4)   # the longest prompt has 14 tokens
    generations = generate(model, tokenizer, prompts, stop_ids=[], max_new_tokens=12)
    assert [(g.ids, g.stop_reason) for g in generations] == [(ref[:4], "length") for ref in reference]
    with pytest.raises(ValueError, match=r"^generate: a prompt of 14 tokens leaves no room under the model's "
                                         r"max_position_embeddings \(14\); shorten it$"):
        monkeypatch.setattr(model.config, "max_position_embeddings", 14)
        generate(model, tokenizer, prompts, stop_ids=[], max_new_tokens=1)
