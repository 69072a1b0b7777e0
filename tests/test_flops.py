"""benchmarks/flops.py's step_flops (the numerator of MFU) against torch's FlopCounterMode on one real
minifc training step (benchmarks/bench_train.py's minifc_step: packed row, LoRA, loss on trained rows).

Where the two differ by construction, the difference is named and asserted exactly:
- attention: SDPA's math path computes every (query, key) pair of the packed row and lets the mask
  zero most of them; step_flops counts only the pairs the mask allows (what varlen flash attention
  computes). Per allowed pair both count the same (12 * heads * head_dim per layer).
- the checkpointed loss (loss.FUSED_BACKWARD off) recomputes the trained rows' logits in backward: one
  output projection more than the fused default, and more than the useful work step_flops counts.
"""

import random

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import bench_train as bench
from benchmarks.flops import step_flops, step_flops_by_part
from minifc import attention, loss
from minifc.attention import plan_attention
from minifc.config import ModelConfig
from minifc.lora import apply_lora, lora_parameters, mark_only_lora_trainable
from minifc.model import Transformer

R = 2
LENGTHS = [7, 12, 4]  # three packed sequences; Gemma's window (4) is shorter than two of them


class _NoModuleTracking:
    """Stands in for FlopCounterMode's module tracker: only the per-op totals are needed here, and the
    tracker hooks every module input for backward, which the fused loss's torch.autograd.grad inside
    forward trips over ("A leaf node was passed to _will_engine_execute_node")."""
    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def tiny_config(name: str) -> dict:
    """A registry entry shrunk, with every width different so no two terms can stand in for each other.
    gemma-3-1b cut to 3 layers: sliding, sliding, full; llama-3.1-8b: untied lm_head."""
    hf = bench.bench_hf_config(name, layers=3)
    hf.update(vocab_size=60, hidden_size=24, intermediate_size=40, num_attention_heads=4, num_key_value_heads=2,
              head_dim=6)
    if hf["model_type"] == "gemma3_text":
        hf.update(sliding_window=4, query_pre_attn_scalar=6)
    return hf


def tiny_model(hf: dict, dropout: float) -> Transformer:
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_hf(hf, source="test"))
    apply_lora(model, R, 2 * R, dropout, ("all",))
    mark_only_lora_trainable(model)
    return model.train()


def packed_examples(vocab: int):
    """(input_ids, labels) per sequence; the last few tokens of each trained."""
    rng = random.Random(0)
    examples = []
    for length, trained in zip(LENGTHS, [3, 5, 2]):
        ids = [rng.randrange(vocab) for _ in range(length)]
        examples.append((ids, [-100] * (length - trained) + ids[length - trained:]))
    return examples


def counted_step(model, batch) -> dict[str, int]:
    """{aten op: FLOPs} of one optimiser step. Attention runs on SDPA's math backend: CPU's default
    kernel (_scaled_dot_product_flash_attention_for_cpu) has no formula in FlopCounterMode and would
    count as zero; the math backend runs QK^T and PV as aten.bmm, which it counts."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModuleTracking()
    optimizer = bench.make_optimizer(lora_parameters(model), "cpu")
    with sdpa_kernel(SDPBackend.MATH), counter:
        bench.minifc_step(model, optimizer, batch)
    return {str(op).removeprefix("aten."): flops for op, flops in counter.get_flop_counts()["Global"].items()}


@pytest.mark.parametrize("name, dropout, fused_loss", [("gemma-3-1b", 0.0, True), ("gemma-3-1b", 0.0, False),
                                                     ("llama-3.1-8b", 0.0, True), ("gemma-3-1b", 0.1, True)])
def test_step_flops_match_flop_counter(name, dropout, fused_loss, monkeypatch):
    monkeypatch.setattr(loss, "FUSED_BACKWARD", fused_loss)
    monkeypatch.setattr(attention, "PER_SEGMENT", False)  # one masked SDPA over the row (see the docstring)
    hf = tiny_config(name)
    model = tiny_model(hf, dropout)
    config = model.config
    batch = bench.minifc_batch(packed_examples(config.vocab_size), pad_id=0)
    assert batch.num_trained == 10 and batch.input_ids.shape == (1, sum(LENGTHS))
    counts = counted_step(model, batch)
    parts = step_flops_by_part(config, LENGTHS, batch.num_trained, R)
    assert set(counts) == {"mm", "addmm", "bmm"}

    # Linear layers, LoRA and the output projection: every matmul of the step outside attention. The
    # frozen weights get no gradient and the first block's q, k, v no input gradient (step_flops leaves
    # both out); LoRA dropout adds no matmul.
    recomputed_logits = 0 if fused_loss else parts["output"] // 2
    assert counts["mm"] + counts["addmm"] == parts["linear"] + parts["lora"] + parts["output"] + recomputed_logits

    # Attention: the same FLOPs per (query, key) pair; the counter's pairs are all of the packed row's,
    # step_flops's those the model's own mask allows (causal, windowed, within each sequence).
    tokens = sum(LENGTHS)
    plan = plan_attention(1, tokens, torch.device("cpu"), torch.float32, config, batch.cu_seqlens)
    allowed = sum(int(plan.masks[layer_type].sum()) for layer_type in config.layer_types)
    computed = config.num_hidden_layers * tokens * tokens
    assert counts["bmm"] * allowed == parts["attention"] * computed
    assert counts["bmm"] == 12 * config.num_attention_heads * config.head_dim * computed

    assert step_flops(config, LENGTHS, batch.num_trained, R) == sum(parts.values())


def test_the_first_blocks_missing_input_gradient_is_real():
    """What step_flops leaves out, shown by the counter: with the embedding trained, its output needs a
    gradient, and the first block's q, k, v compute it through their frozen weights and their LoRA A
    (the embedding's own gradient is a scatter, no matmul). llama-3.1-8b: lm_head is not tied to it."""
    hf = tiny_config("llama-3.1-8b")
    counts = {}
    for trained_embedding in (False, True):
        model = tiny_model(hf, 0.0)
        model.model.embed_tokens.weight.requires_grad_(trained_embedding)
        batch = bench.minifc_batch(packed_examples(model.config.vocab_size), pad_id=0)
        step = counted_step(model, batch)
        counts[trained_embedding] = step["mm"] + step["addmm"]
    config, n = model.config, sum(LENGTHS)
    d, q, kv = config.hidden_size, config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
    assert counts[True] - counts[False] == 2 * n * d * (q + 2 * kv) + 2 * n * R * 3 * d
