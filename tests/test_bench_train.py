"""benchmarks/bench_train.py compares equal work: minifc's step and the transformers + peft reference
step, on the same weights and the same examples, compute the same loss and take the same update."""

import importlib.util
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_train.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny(bench, name: str) -> dict:
    """The registry entry cut to 2 layers (Gemma: sliding then global) with small widths; window 16,
    so the built-in examples (well over 100 tokens) are longer than Gemma's sliding window."""
    hf = bench.bench_hf_config(name, layers=2)
    hf.update(vocab_size=2100, hidden_size=32, intermediate_size=48, num_attention_heads=4,
              num_key_value_heads=2, head_dim=8)
    if hf["model_type"] == "gemma3_text":
        hf.update(sliding_window=16, query_pre_attn_scalar=8)
    return hf


@pytest.mark.parametrize("name", ["gemma-3-1b", "llama-3.2-1b"])
def test_minifc_and_reference_steps_compute_the_same_loss(bench, name):
    from minifc.registry import MODELS

    # The small fallback tokenizer (trained on 40 examples) keeps the reference's full logits small.
    encoded, tokenizer, note = bench.load_sequences(MODELS[name].chat_format, None, limit=40)
    assert note.startswith("FALLBACK") and tokenizer.vocab_size <= 2100
    examples = bench.step_examples(encoded, 3, 1)[0]
    lengths = [len(ids) for ids, _ in examples]
    assert len(set(lengths)) > 1  # the reference pads; minifc packs into one row
    hf = tiny(bench, name)
    ours = bench.build_minifc(hf, "cpu", torch.float32, r=4, alpha=8)
    theirs = bench.build_reference(hf, "cpu", torch.float32, r=4, alpha=8, share_from=ours)
    opt_ours = bench.make_optimizer(bench.lora_parameters(ours), "cpu", lr=1e-2)
    opt_theirs = bench.make_optimizer(bench.trainable(theirs), "cpu", lr=1e-2)
    packed, padded = bench.minifc_batch(examples, tokenizer.pad_id), bench.reference_batch(examples, tokenizer.pad_id)
    assert packed.input_ids.shape == (1, sum(lengths)) and padded["input_ids"].shape == (3, max(lengths))
    assert packed.num_trained == padded["num_trained"] > 0

    losses = []
    for _ in range(2):  # the second step sees the updated (now nonzero) LoRA B matrices
        losses.append((bench.minifc_step(ours, opt_ours, packed).item(),
                       bench.reference_step(theirs, opt_theirs, padded).item()))
    for ours_loss, theirs_loss in losses:
        assert abs(ours_loss - theirs_loss) <= 1e-5 * abs(theirs_loss)
    assert abs(losses[1][0] - losses[0][0]) > 1e-3  # the update changed the loss, identically


def test_step_flops_counts_by_hand():
    from benchmarks.flops import step_flops
    from minifc.config import ModelConfig

    config = ModelConfig.from_hf(dict(
        model_type="gemma3_text", vocab_size=10, hidden_size=4, intermediate_size=6, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=2, sliding_window=2, max_position_embeddings=16,
        layer_types=["sliding_attention", "full_attention"]))
    # per token and layer: linear in*out = 4*4 + 4*2 + 4*2 + 4*4 + 4*6 + 4*6 + 6*4 = 120; r*(in+out) with r=1:
    # 8 + 6 + 6 + 8 + 10 + 10 + 10 = 58. Not computed: the first layer's q, k, v input gradient (their
    # input, the normed frozen embedding, needs none): 2*3*4*(4+2+2) frozen, 2*3*1*(4+4+4) LoRA A.
    # One sequence of 3 tokens: causal pairs 1+2+3 = 6 (full layer), windowed pairs 1+2+2 = 5 (sliding
    # layer); H*hd = 4. Output: 2 trained rows x 4 x 10.
    expected = (2 * (4 * 3 * 120 + 6 * 3 * 58) - 2 * 3 * 4 * 8 - 2 * 3 * 12) + 12 * (6 + 5) * 4 + 4 * 2 * 4 * 10
    assert step_flops(config, [3], num_trained=2, r=1) == expected
