"""Examples -> token ids and labels -> batches; and the mask inspector.

One example, one render, one tokenization:

    ids, labels = encode_example(example, tokenizer, fmt)
        # example: an Example or a dict {"messages": [...], "tools": [...]}
        # renders once with fmt.render(messages, tools=tools or None), tokenizes the text once with
        # offsets (no automatic BOS: the format writes it) and labels each token from the spans:
        # labels[i] == ids[i] where token i is trained on, else -100 (HF convention, aligned with ids).

The labelling rule: a token is trained when all of its characters lie inside one trained span of the
rendered text (spans that touch count as one). A token whose characters are partly inside and partly outside a span cannot be labelled
honestly (the model would learn half a token), so it raises `SpanAlignmentError`; well-formed spans
start and end at control tokens or at piece boundaries and never produce one. A token with no
characters (an empty offset range) is not trained.

A dataset:

    encoded, report = encode_dataset(examples, tokenizer, fmt, max_len=2048, truncate=False)
        # encoded: list of (ids, labels). Examples longer than max_len are dropped and counted; with
        # truncate=True they are cut at the end of the last trained span that fits (the end of an
        # assistant turn, never inside a trained span) and kept only if something trained remains.
        # Examples with nothing trained, or that the format cannot render (ValueError), are dropped
        # and counted too. `print(report)` gives the counts by reason and the first locations.

Batches (`Batch`: input_ids, targets, position_ids, cu_seqlens, attention_mask, num_tokens, num_trained,
padding_fraction). Targets are shifted inside each example: targets[t] = labels[t + 1] of the same
example and -100 at its last token, so a packed row never asks one example to predict the next one's
first token.

    rows = pack_rows([len(ids) for ids, _ in encoded], tokens_per_row)   # best-fit decreasing
    batch = packed_batch([[encoded[i] for i in row] for row in rows[:8]], tokens_per_row, pad_id)
        # every row is tokens_per_row long; position ids restart at 0 for each example; cu_seqlens
        # (int32) delimits every example and every row's padding tail over the flattened B*T tokens.
    batch = padded_batch(encoded[:8], pad_id)   # reference path: one example per row, right padding,
        # cu_seqlens None, attention_mask marks the real tokens
    for batch in epoch_batches(encoded, rows_per_batch=8, pad_id=pad_id, tokens_per_row=4096,
                               seed=0, epoch=3, start=120): ...
        # one epoch in a seeded shuffled order (deterministic from seed and epoch), resumed at batch
        # `start`: the training loop checkpoints (epoch, batches done) as its data position. Packed
        # rows are computed once (pass rows=pack_rows(...) to reuse them); each epoch shuffles the rows.
        # num_batches(len(rows), rows_per_batch) says how many batches an epoch has.

The inspector prints rendered examples with the trained tokens highlighted and per-role counts:

    python -m minifc.collate --model llama-3.2-1b --data data/train.jsonl --n 2 [--format llama3.2]

--model is a local directory with tokenizer.json (then --format is required), a short name of
minifc.config.MODELS or a hub id (only the tokenizer files are downloaded).
"""

import argparse
import bisect
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

IGNORE_INDEX = -100  # label / target of a position that is not trained on (PyTorch's cross-entropy default)


class SpanAlignmentError(ValueError):
    """A token straddles the edge of a trained span: the renderer's spans and the tokenizer disagree."""


# ---------------------------------------------------------------------------------------------------
# One example -> (input_ids, labels)


def example_fields(example) -> tuple[list[dict], list[dict], str]:
    """(messages, tools, location) of an Example or of a dict with "messages" and optional "tools"."""
    if isinstance(example, dict):
        if "messages" not in example:
            raise ValueError(f"example {example.get('location', '')}: a dict example needs a 'messages' list")
        return example["messages"], example.get("tools") or [], example.get("location", "")
    return example.messages, example.tools or [], getattr(example, "location", "")


def render_example(example, fmt, **format_options):
    messages, tools, _ = example_fields(example)
    return fmt.render(messages, tools=tools or None, **format_options)


def label_tokens(ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]],
                 text: str = "", location: str = "") -> list[int]:
    """labels[i] = ids[i] when token i's characters all lie inside one span, else -100 (module doc)."""
    spans = _merge_touching(spans)
    labels = [IGNORE_INDEX] * len(ids)
    span_index = 0
    for i, (start, end) in enumerate(offsets):
        if start >= end:
            continue  # a token with no characters is in no span
        while span_index < len(spans) and spans[span_index][1] <= start:
            span_index += 1  # spans that end before this token can no longer contain anything
        if span_index == len(spans):
            break
        span_start, span_end = spans[span_index]
        if span_start <= start and end <= span_end:
            labels[i] = ids[i]
        elif start < span_end and end > span_start:
            raise SpanAlignmentError(
                f"{location or 'example'}: token {i} {text[start:end]!r} (characters {start}-{end}) straddles "
                f"the edge of trained span {span_start}-{span_end} {text[span_start:span_end][:60]!r}; the "
                "chat format's spans must start and end where tokens do (at a control token or a piece "
                "boundary): fix the renderer's spans, or use the tokenizer the format was written for")
    return labels


def _merge_touching(spans) -> list[tuple[int, int]]:
    """Sorted spans with touching or overlapping ones merged: a token across (a, b) + (b, c) is inside."""
    merged = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif start < end:
            merged.append((start, end))
    return merged


def encode_rendered(rendered, tokenizer, location: str = "") -> tuple[list[int], list[int]]:
    """Tokenize a Rendered once (no BOS added) and label its tokens from its spans."""
    ids, offsets = tokenizer.encode_with_offsets(rendered.text)
    return list(ids), label_tokens(ids, offsets, rendered.spans, rendered.text, location)


def encode_example(example, tokenizer, fmt, **format_options) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one example: labels[i] == input_ids[i] where trained, else -100.
    format_options go to fmt.render (say, Llama's date_string)."""
    location = example_fields(example)[2]
    return encode_rendered(render_example(example, fmt, **format_options), tokenizer, location)


def truncate_at_span_end(ids: list[int], labels: list[int], max_len: int):
    """Cut after the last trained run that ends within max_len tokens, or None if no trained run fits.

    A trained run ends with the token that ends an assistant turn, so the cut lands on a turn
    boundary and never inside a trained span."""
    cut = 0
    for i in range(min(max_len, len(ids))):
        run_ends_here = labels[i] != IGNORE_INDEX and (i + 1 == len(ids) or labels[i + 1] == IGNORE_INDEX)
        if run_ends_here:
            cut = i + 1
    return (ids[:cut], labels[:cut]) if cut else None


@dataclass
class EncodeReport:
    """What encode_dataset kept, dropped (by reason) and truncated, with the first locations of each."""
    kept: int = 0
    truncated: int = 0
    dropped: Counter = field(default_factory=Counter)
    first_locations: dict[str, list[str]] = field(default_factory=dict)
    num_tokens: int = 0
    num_trained: int = 0

    def note(self, reason: str, location: str, keep: int = 5):
        self.first_locations.setdefault(reason, [])
        if len(self.first_locations[reason]) < keep:
            self.first_locations[reason].append(location or "?")

    def __str__(self) -> str:
        lines = [f"encoded {self.kept} examples ({self.num_tokens} tokens, {self.num_trained} trained); "
                 f"truncated {self.truncated}; dropped {sum(self.dropped.values())}"]
        if self.truncated:
            lines.append(f"  truncated at a turn boundary: first at {', '.join(self.first_locations['truncated'])}")
        for reason, count in sorted(self.dropped.items()):
            lines.append(f"  dropped {count} ({reason}): first at {'; '.join(self.first_locations[reason])}")
        return "\n".join(lines)


def encode_dataset(examples, tokenizer, fmt, max_len: int | None = None, truncate: bool = False,
                   **format_options):
    """Encode every example; returns (list of (ids, labels), EncodeReport). Nothing is dropped uncounted."""
    encoded, report = [], EncodeReport()
    for n, example in enumerate(examples):
        location = example_fields(example)[2] or f"example {n}"
        try:
            rendered = render_example(example, fmt, **format_options)
        except ValueError as error:  # the format cannot express this conversation (Gemma's strict turns, say)
            report.dropped["cannot render"] += 1
            report.note("cannot render", f"{location}: {error}")
            continue
        ids, labels = encode_rendered(rendered, tokenizer, location)
        if max_len is not None and len(ids) > max_len:
            cut = truncate_at_span_end(ids, labels, max_len) if truncate else None
            if cut is None:
                reason = f"longer than max_len={max_len}" + (" with no trained turn within it" if truncate else "")
                report.dropped[reason] += 1
                report.note(reason, f"{location} ({len(ids)} tokens)")
                continue
            ids, labels = cut
            report.truncated += 1
            report.note("truncated", location)
        num_trained = sum(label != IGNORE_INDEX for label in labels[1:])  # the first token has no context
        if num_trained == 0:
            report.dropped["nothing trained"] += 1
            report.note("nothing trained", location)
            continue
        encoded.append((ids, labels))
        report.kept += 1
        report.num_tokens += len(ids)
        report.num_trained += num_trained
    return encoded, report


# ---------------------------------------------------------------------------------------------------
# Batches


@dataclass
class Batch:
    input_ids: torch.Tensor        # [B, T] long
    targets: torch.Tensor          # [B, T] long: token to predict after input_ids[b, t], or -100
    position_ids: torch.Tensor     # [B, T] long, restarting at 0 for every example
    cu_seqlens: torch.Tensor | None  # int32 [num_segments + 1] over the flattened B*T tokens; None if padded
    attention_mask: torch.Tensor   # [B, T] bool: True for real tokens, False for padding
    max_seqlen: int                # longest segment (what varlen attention kernels want up front)
    num_tokens: int                # real (non-padding) tokens
    num_trained: int               # positions with a target (what the loss averages over)
    trained_positions: torch.Tensor  # [num_trained] long: flat indices (into B*T) of those positions

    @property
    def padding_fraction(self) -> float:
        return 1.0 - self.num_tokens / self.input_ids.numel()

    def to(self, device) -> "Batch":
        """The batch on `device`. To a GPU through pinned memory, so the copies are queued without the
        host waiting for the GPU (a copy from ordinary host memory waits for the work queued before it)."""
        device = torch.device(device)
        pin = device.type == "cuda"
        moved = {name: (value.pin_memory() if pin else value).to(device, non_blocking=True)
                 if isinstance(value, torch.Tensor) else value for name, value in vars(self).items()}
        return Batch(**moved)


def shift_labels(labels: list[int]) -> list[int]:
    """Targets of one example: targets[t] = labels[t + 1], and -100 at the last token."""
    return list(labels[1:]) + [IGNORE_INDEX]


def pack_rows(lengths: list[int], tokens_per_row: int) -> list[list[int]]:
    """Best-fit decreasing: example indices per row, each row's lengths summing to <= tokens_per_row.

    Longest first, each into the open row with the least room that still fits it (a new row if none)."""
    too_long = [i for i, length in enumerate(lengths) if length > tokens_per_row]
    if too_long:
        raise ValueError(f"{len(too_long)} examples are longer than tokens_per_row={tokens_per_row} (first: "
                         f"index {too_long[0]}, {lengths[too_long[0]]} tokens): encode with "
                         f"encode_dataset(..., max_len={tokens_per_row}) first")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    room = []  # sorted (room left, row index) of every row, to find the best fit by bisection
    for i in order:
        best = bisect.bisect_left(room, (lengths[i], -1))  # the first row with room >= this length
        if best < len(room):
            left, r = room.pop(best)
            rows[r].append(i)
        else:
            left, r = tokens_per_row, len(rows)
            rows.append([i])
        bisect.insort(room, (left - lengths[i], r))
    return rows


def packed_batch(rows: list[list[tuple[list[int], list[int]]]], tokens_per_row: int, pad_id: int) -> Batch:
    """Rows of several examples each, laid end to end and right-padded to tokens_per_row."""
    input_ids, targets, positions, valid, segment_lengths = [], [], [], [], []
    for row in rows:
        row_ids, row_targets, row_positions = [], [], []
        for ids, labels in row:
            row_ids += ids
            row_targets += shift_labels(labels)
            row_positions += range(len(ids))
            segment_lengths.append(len(ids))
        padding = tokens_per_row - len(row_ids)
        if padding < 0:
            raise ValueError(f"a row holds {len(row_ids)} tokens, more than tokens_per_row={tokens_per_row}")
        if padding:
            segment_lengths.append(padding)  # the padding tail attends only to itself
        valid.append([True] * len(row_ids) + [False] * padding)
        input_ids.append(row_ids + [pad_id] * padding)
        targets.append(row_targets + [IGNORE_INDEX] * padding)
        positions.append(row_positions + list(range(padding)))
    cu_seqlens = torch.tensor([0] + segment_lengths, dtype=torch.int32).cumsum(0, dtype=torch.int32)
    return _make_batch(input_ids, targets, positions, valid, cu_seqlens, max(segment_lengths))


def padded_batch(examples: list[tuple[list[int], list[int]]], pad_id: int, pad_to: int | None = None) -> Batch:
    """One example per row, right-padded to the longest (or to pad_to); the reference (SDPA) path."""
    width = max(len(ids) for ids, _ in examples) if pad_to is None else pad_to
    input_ids, targets, positions, valid = [], [], [], []
    for ids, labels in examples:
        padding = width - len(ids)
        if padding < 0:
            raise ValueError(f"an example has {len(ids)} tokens, more than pad_to={pad_to}")
        input_ids.append(list(ids) + [pad_id] * padding)
        targets.append(shift_labels(labels) + [IGNORE_INDEX] * padding)
        positions.append(list(range(width)))
        valid.append([True] * len(ids) + [False] * padding)
    return _make_batch(input_ids, targets, positions, valid, None, width)


def _make_batch(input_ids, targets, positions, valid, cu_seqlens, max_seqlen) -> Batch:
    targets = torch.tensor(targets, dtype=torch.long)
    valid = torch.tensor(valid, dtype=torch.bool)
    trained_positions = (targets.view(-1) != IGNORE_INDEX).nonzero().squeeze(1)  # here, on the host, once
    return Batch(input_ids=torch.tensor(input_ids, dtype=torch.long), targets=targets,
                 position_ids=torch.tensor(positions, dtype=torch.long), cu_seqlens=cu_seqlens,
                 attention_mask=valid, max_seqlen=int(max_seqlen), num_tokens=int(valid.sum()),
                 num_trained=len(trained_positions), trained_positions=trained_positions)


def epoch_rows(encoded, tokens_per_row: int | None) -> list[list[int]]:
    """Example indices per row: best-fit-decreasing packing, or one example per row when not packing."""
    if tokens_per_row is None:
        return [[i] for i in range(len(encoded))]
    return pack_rows([len(ids) for ids, _ in encoded], tokens_per_row)


def num_batches(num_rows: int, rows_per_batch: int) -> int:
    return -(-num_rows // rows_per_batch)


def epoch_batches(encoded, rows_per_batch: int, pad_id: int, tokens_per_row: int | None = None,
                  seed: int = 0, epoch: int = 0, start: int = 0, rows=None) -> Iterator[Batch]:
    """The batches of one epoch in a seeded shuffled order, from batch index `start` on.

    tokens_per_row set: packed rows (best-fit decreasing, computed once; pass `rows` to reuse them
    across epochs), shuffled per epoch. tokens_per_row None: one example per row, padded per batch.
    The order depends only on (seed, epoch), so resuming at `start` gives exactly the batches an
    uninterrupted run would have seen. The last batch may hold fewer rows; nothing is dropped."""
    rows = epoch_rows(encoded, tokens_per_row) if rows is None else rows
    order = np.random.default_rng([seed, epoch]).permutation(len(rows))
    for b in range(start, num_batches(len(rows), rows_per_batch)):
        chosen = [rows[r] for r in order[b * rows_per_batch:(b + 1) * rows_per_batch]]
        if tokens_per_row is None:
            yield padded_batch([encoded[row[0]] for row in chosen], pad_id)
        else:
            yield packed_batch([[encoded[i] for i in row] for row in chosen], tokens_per_row, pad_id)


# ---------------------------------------------------------------------------------------------------
# The mask inspector: python -m minifc.collate --model NAME_OR_DIR --data FILE --n 2


def message_regions(messages, tools, fmt, text: str) -> list[tuple[int, int, list[int]]]:
    """(start, end, message indices) regions of `text`: which message each character came from.

    For inspection only. Renders every prefix messages[:k] and takes where it stops agreeing with the
    full text as the end of message k-1, so a turn's header, body and end token all count for that
    message. Text before the first message (BOS, the tool declarations of some formats) has no message
    (index -1). Where a prefix cannot be rendered on its own, or adds nothing, its messages share a region."""
    regions, start, pending = [], 0, [-1]
    for k in range(len(messages) + 1):
        if k:
            pending.append(k - 1)
        if k == len(messages):
            end = len(text)
        else:
            try:
                end = _common_prefix_length(fmt.render(messages[:k], tools=tools or None).text, text)
            except Exception:  # formats may refuse some prefixes (a system message alone, say): merge
                continue
        if end <= start:
            continue
        regions.append((start, end, pending))
        start, pending = end, []
    return regions


def _common_prefix_length(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def highlight(text: str, offsets, labels, colour: bool) -> str:
    """The text with the trained tokens' characters marked: green on a terminal, ⟦...⟧ otherwise."""
    on, off = ("\033[42;30m", "\033[0m") if colour else ("⟦", "⟧")
    pieces, cursor, i = [], 0, 0
    while i < len(labels):
        if labels[i] == IGNORE_INDEX:
            i += 1
            continue
        j = i
        while j + 1 < len(labels) and labels[j + 1] != IGNORE_INDEX:
            j += 1
        start, end = offsets[i][0], offsets[j][1]
        pieces += [text[cursor:start], on, text[start:end], off]
        cursor, i = end, j + 1
    pieces.append(text[cursor:])
    return "".join(pieces)


def inspect_example(example, tokenizer, fmt, colour: bool = False) -> str:
    """A report on one example: the text with trained tokens highlighted, trained/untrained tokens by
    the role of the message they came from, the BOS count, and whether every trained assistant turn
    has its end token (one of the format's stop tokens) trained."""
    messages, tools, location = example_fields(example)
    rendered = render_example(example, fmt)
    ids, offsets = tokenizer.encode_with_offsets(rendered.text)
    labels = label_tokens(ids, offsets, rendered.spans, rendered.text, location)
    stop_ids = set(tokenizer.stop_ids(fmt))
    counts: dict[str, Counter] = {}
    turns, turns_ending_trained = 0, 0
    for start, end, indices in message_regions(messages, tools, fmt, rendered.text):
        role = "+".join(messages[i]["role"] if i >= 0 else "(format)" for i in indices)
        tokens = [t for t, (s, _) in enumerate(offsets) if start <= s < end]
        trained = [t for t in tokens if labels[t] != IGNORE_INDEX]
        counts.setdefault(role, Counter()).update(trained=len(trained), untrained=len(tokens) - len(trained))
        assistants = sum(i >= 0 and messages[i]["role"] == "assistant" and messages[i].get("train", True)
                         for i in indices)
        turns += assistants
        turns_ending_trained += min(assistants, sum(ids[t] in stop_ids for t in trained))
    lines = [f"--- {location or 'example'}: {len(ids)} tokens, {sum(l != IGNORE_INDEX for l in labels)} trained",
             highlight(rendered.text, offsets, labels, colour), "",
             f"{'tokens by role':<20}{'trained':>8}{'untrained':>11}"]
    lines += [f"  {role:<18}{c['trained']:>8}{c['untrained']:>11}" for role, c in counts.items()]
    lines.append(f"BOS tokens: {sum(i == tokenizer.bos_id for i in ids)} (should be 1)")
    verdict = "yes" if turns_ending_trained == turns else "NO"
    lines.append(f"every assistant turn's end token trained: {verdict} ({turns_ending_trained}/{turns} turns "
                 f"have a trained stop token {sorted(stop_ids)})")
    return "\n".join(lines)


def resolve_model(name_or_dir: str, format_name: str | None):
    """(Tokenizer, ChatFormat) for a local directory with tokenizer.json, a short name of
    minifc.config.MODELS or a hub id; only the tokenizer files are downloaded. The format is
    --format, else the registry's, else the one train.py recorded in the directory (minifc.json)."""
    from minifc.checkpoint import CheckpointError, resolve_checkpoint_dir
    from minifc.chat.lookup import resolve_chat_format
    from minifc.tokenizer import Tokenizer

    try:
        path = resolve_checkpoint_dir(name_or_dir, allow_patterns=["tokenizer*", "*.json"])
        fmt = resolve_chat_format(name_or_dir, format_name, [path])
    except (ValueError, CheckpointError) as error:
        sys.exit(f"error: {error}")
    return Tokenizer.from_dir(path), fmt


def main(argv=None):
    parser = argparse.ArgumentParser(description="Show which tokens of rendered examples are trained on.")
    parser.add_argument("--model", required=True, help="short name (see minifc.config.MODELS) or a local "
                        "directory with tokenizer.json")
    parser.add_argument("--data", required=True, help="JSONL file of examples")
    parser.add_argument("--n", type=int, default=2, help="how many examples to show")
    parser.add_argument("--format", default=None, help="chat format, overriding the model's")
    args = parser.parse_args(argv)
    from minifc.data import load_examples

    tokenizer, fmt = resolve_model(args.model, args.format)
    colour = sys.stdout.isatty()
    try:
        examples, _ = load_examples(args.data)
    except (ValueError, OSError) as error:  # data.DataError is a ValueError: its message names the fix
        sys.exit(f"error: {error}")
    for example in examples[:args.n]:
        print(inspect_example(example, tokenizer, fmt, colour=colour))
        print()


if __name__ == "__main__":
    main()
