"""Encoded examples -> batches: packing and padding into rows, and each epoch's seeded order.

Batches (`Batch`: input_ids, targets, position_ids, cu_seqlens, attention_mask, num_tokens, num_trained,
padding_fraction). Targets are shifted inside each example: targets[t] = labels[t + 1] of the same
example and -100 at its last token, so a packed row never asks one example to predict the next one's
first token. The (ids, labels) pairs come from minifc/encode.py.

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
    for position, batches in step_batches(encoded, 8, pad_id, 4096, grad_accum=2): ...
        # the micro-batches of each optimizer step, epoch after epoch, with the data position after them
"""

import bisect
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from minifc.masking import IGNORE_INDEX


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


def _shift_labels(labels: list[int]) -> list[int]:
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
            row_targets += _shift_labels(labels)
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
        targets.append(_shift_labels(labels) + [IGNORE_INDEX] * padding)
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
                  seed: int = 0, epoch: int = 0, start: int = 0, rows=None, part=(0, 1)) -> Iterator[Batch]:
    """The batches of one epoch in a seeded shuffled order, from batch index `start` on.

    tokens_per_row set: packed rows (best-fit decreasing, computed once; pass `rows` to reuse them
    across epochs), shuffled per epoch. tokens_per_row None: one example per row, padded per batch.
    The order depends only on (seed, epoch), so resuming at `start` gives exactly the batches an
    uninterrupted run would have seen. The last batch may hold fewer rows; nothing is dropped.
    part=(rank, world): only this rank's rows of each batch, every world-th from the rank-th (training on
    several processes, distributed.py); a rank left without a row gets one row of padding, nothing trained."""
    rows = epoch_rows(encoded, tokens_per_row) if rows is None else rows
    order = np.random.default_rng([seed, epoch]).permutation(len(rows))
    rank, world = part
    for b in range(start, num_batches(len(rows), rows_per_batch)):
        chosen = [rows[r] for r in order[b * rows_per_batch:(b + 1) * rows_per_batch]][rank::world]
        if not chosen:  # every rank must run the step's forward and backward (collective operations)
            yield padded_batch([([pad_id], [IGNORE_INDEX])], pad_id, pad_to=tokens_per_row)
        elif tokens_per_row is None:
            yield padded_batch([encoded[row[0]] for row in chosen], pad_id)
        else:
            yield packed_batch([[encoded[i] for i in row] for row in chosen], tokens_per_row, pad_id)


def step_batches(encoded, rows_per_batch: int, pad_id: int, tokens_per_row: int | None, grad_accum: int,
                 seed: int = 0, epoch: int = 0, start: int = 0,
                 part=(0, 1)) -> Iterator[tuple[tuple[int, int], list[Batch]]]:
    """((epoch, batches done in it), the grad_accum micro-batches of one optimizer step), forever: one
    epoch after another, each in its seeded order, from the data position (epoch, start) on. Rows are
    packed once; epochs only reshuffle them. part=(rank, world): this rank's rows (epoch_batches)."""
    rows, batches = epoch_rows(encoded, tokens_per_row), []
    while True:
        for i, batch in enumerate(epoch_batches(encoded, rows_per_batch, pad_id, tokens_per_row, seed, epoch,
                                                start, rows, part), start):
            batches.append(batch)
            if len(batches) == grad_accum:
                yield (epoch, i + 1), batches
                batches = []
        epoch, start = epoch + 1, 0
