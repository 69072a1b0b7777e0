"""Batches: best-fit packing, packed and padded rows, each epoch's seeded order (minifc/collate.py).

Expected layouts are written by hand; the pairs a batch holds are compared with the examples one by one.
"""

from collections import Counter

import pytest
import torch

from minifc.collate import epoch_batches, pack_rows, packed_batch, padded_batch
from minifc.masking import IGNORE_INDEX


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
