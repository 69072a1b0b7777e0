"""The evaluation loop: prompts -> generate -> parse -> check, for eval.py and for quick checks in training.

    cases = cases_from_examples(examples)          # [(prompt Example, gold calls)]; or bfcl.load_bfcl(...)
    records, predictions = run_eval(model, tokenizer, fmt, cases, batch_size=8, max_new_tokens=256)
    print(format_table(compute_metrics(records)))

A case is an Example whose messages are the prompt, with its gold answer in the form of
minifc.evaluate (gold_from_message / BFCL possible answers). For a conversation from the data files
the gold is its last message, which must be the assistant's: the prompt is every message before it,
rendered with add_generation_prompt=True, exactly what the model sees at inference.

A prompt longer than `max_prompt_len` tokens (or than the model's max_position_embeddings allows) is not
generated: its prediction has verdict "skipped" and an empty output, and it counts as a wrong answer
(parse_error "not generated: ..."), so both runs of a comparison and BFCL's scores see the same cases.
A prompt is measured in characters first: one far too long is never tokenized in full.

Each prediction is one JSON-ready dict per case, in the order of `cases`: where it came from, the
rendered prompt, the generated text, what parse() read, the verdict and its reason, and the record
that compute_metrics() takes (so metrics can be recomputed from a predictions file alone).
"""

from dataclasses import replace

from .evaluate import gold_from_message, score_example
from .generate import Generation, generate


def split_gold(example) -> tuple:
    """(the example with its last assistant message removed, the gold answer from that message)."""
    if not example.messages or example.messages[-1].get("role") != "assistant":
        role = example.messages[-1].get("role") if example.messages else "none (no messages)"
        raise ValueError(f"{example.location or 'example'}: the last message must be the assistant's answer, "
                         f"which evaluation uses as the gold; got role {role!r}. Evaluate only examples that "
                         f"end with an assistant turn")
    return replace(example, messages=example.messages[:-1]), gold_from_message(example.messages[-1])


def cases_from_examples(examples) -> list[tuple]:
    return [split_gold(example) for example in examples]


def _prediction(example, gold, prompt, generation, parsed, record) -> dict:
    return {"location": example.location, "category": example.category, "prompt": prompt,
            "output": generation.text, "parsed": parsed, "gold": gold,
            "verdict": "correct" if record["exact"] else "wrong", "reason": record["reason"],
            "stop_reason": generation.stop_reason, "new_tokens": len(generation.ids), "record": record}


def _skipped(example, gold, prompt, reason) -> dict:
    """The prediction of a case that was not generated: a wrong answer whose reason says why."""
    parsed = {"content": None, "tool_calls": [], "parse_error": f"not generated: {reason}"}
    record = score_example(parsed, gold, example.tools, example.category)
    record["reason"] = f"skipped: {reason}"
    prediction = _prediction(example, gold, prompt, Generation([], "", "skipped"), parsed, record)
    return {**prediction, "verdict": "skipped"}


def _prompt_ids(tokenizer, text: str, limit: int) -> list[int] | None:
    """The prompt's ids, or None when it has more than `limit` tokens (told by its length in characters
    when that is enough, so a huge prompt is never tokenized)."""
    if len(text) > limit * tokenizer.max_token_chars:
        return None
    ids = tokenizer.encode(text)
    return ids if len(ids) <= limit else None


def run_eval(model, tokenizer, fmt, cases, batch_size: int = 8, max_new_tokens: int = 256,
             temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
             progress=None, max_prompt_len: int | None = None) -> tuple[list[dict], list[dict]]:
    """Generate an answer for every case and score it. Returns (records, predictions), both in the
    order of `cases`. `progress(done, total)` is called after each batch. The model is put in eval
    mode for the loop and given back in the mode it came in (so a training loop can call this).
    Prompts longer than `max_prompt_len` tokens (and than max_position_embeddings - 1) are skipped."""
    prompts = [fmt.render(example.messages, tools=example.tools or None, add_generation_prompt=True).text
               for example, _ in cases]
    limit = model.config.max_position_embeddings - 1  # room for one new token at least
    limit = min(limit, max_prompt_len) if max_prompt_len else limit
    prompt_ids = [_prompt_ids(tokenizer, text, limit) for text in prompts]
    too_long = f"the prompt is longer than {limit} tokens"
    predictions = [None if ids is not None else _skipped(*cases[i], prompts[i], too_long)
                   for i, ids in enumerate(prompt_ids)]
    # Batches of similar prompt length, longest first: less padding, and an out-of-memory error shows up
    # in the first batch rather than the last.
    order = sorted((i for i, ids in enumerate(prompt_ids) if ids is not None), key=lambda i: -len(prompt_ids[i]))
    stop_ids = tokenizer.stop_ids(fmt)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            generations = generate(model, tokenizer, [prompt_ids[i] for i in batch], stop_ids,
                                   max_new_tokens, temperature, top_p,
                                   None if seed is None else seed + batch[0])  # per batch, reproducible
            for i, generation in zip(batch, generations):
                example, gold = cases[i]
                parsed = fmt.parse(generation.text)
                record = score_example(parsed, gold, example.tools, example.category, generation.stop_reason)
                predictions[i] = _prediction(example, gold, prompts[i], generation, parsed, record)
            if progress is not None:
                progress(start + len(batch), len(order))
    finally:
        model.train(was_training)
    return [p["record"] for p in predictions], predictions
