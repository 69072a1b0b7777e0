"""torch.compile of the transformer blocks (train.py --compile) on CPU: same numbers as eager, no graph
breaks, and no recompilation storm. Compiling is slow on 2 cores, so most tests use backend="aot_eager"
(dynamo traces the block and AOTAutograd traces its forward and backward graphs, without generating
code); one slow test runs inductor (C++ code generated and built with gcc)."""

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.testing import CompileCounterWithBackend

import train
from minifc.config import ModelConfig
from minifc.lora import apply_lora, lora_parameters, mark_only_lora_trainable
from minifc.model import Transformer
from test_train import args_for, base_dir, data, losses, one_thread  # noqa: F401 (fixtures)
from tiny_models import VOCAB, gemma_config, llama_config, max_diff, randomize_b

# Eager vs compiled in fp32. aot_eager runs the same aten ops as eager, in the same order except where
# AOTAutograd decomposes one (measured: <= 1e-6 on logits, ~1e-7 on the LoRA gradients); inductor
# fuses and reorders float sums (measured ~1e-6 / ~1e-7). A real tracing error (a wrong mask, a lost
# branch, a missing gradient) is of the order of the values themselves (logits ~3, gradients ~0.1).
TOL = 1e-5

CONFIGS = {
    # two layers each: Gemma gets one sliding-window layer (window 4 < sequence lengths) and one global
    "llama": lambda: llama_config(num_hidden_layers=2),
    "gemma": lambda: gemma_config(num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"]),
}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Dynamo's caches and counters are per code object (Block.forward) and process-wide: each test
    starts from none, so one test's compiled variants neither help nor use up another's limit."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def lora_model(family: str, seed: int = 0) -> Transformer:
    """A tiny minifc model with random weights (std 0.2, norms too) and LoRA (B non-zero) on all targets."""
    config = ModelConfig.from_hf(CONFIGS[family]().to_dict())
    torch.manual_seed(seed)
    model = Transformer(config)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.2)
    apply_lora(model, r=4, alpha=8)
    mark_only_lora_trainable(model)
    randomize_b(model, seed)
    return model


def make_batch(batch: int, seqlen: int, packed: bool, seed: int = 0):
    """(input_ids, targets, cu_seqlens): packed rows hold two sequences each (cut at seqlen // 3 + row)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (batch, seqlen), generator=g)
    targets = torch.randint(0, VOCAB, (batch, seqlen), generator=g)
    if not packed:
        return ids, targets, None
    bounds = [0]
    for row in range(batch):
        bounds += [row * seqlen + seqlen // 3 + row, (row + 1) * seqlen]
    return ids, targets, torch.tensor(bounds, dtype=torch.int32)


def loss_and_grads(model, ids, targets, cu_seqlens):
    """(logits, LoRA gradients) of a cross-entropy over every position."""
    for p in lora_parameters(model):
        p.grad = None
    logits = model(ids, cu_seqlens=cu_seqlens)
    F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
    return logits.detach(), [p.grad.clone() for p in lora_parameters(model)]


compile_blocks = train.compile_blocks  # what train.py --compile does; the tests choose the backend


def assert_same_as_eager(family, packed, backend, shapes=((2, 24),)):
    model = lora_model(family)
    batches = [make_batch(b, t, packed, seed=i) for i, (b, t) in enumerate(shapes)]
    eager = [loss_and_grads(model, *batch) for batch in batches]
    # fullgraph=True: a graph break anywhere in a block (model.py, attention.py, lora.py) is an error
    compile_blocks(model, backend=backend, fullgraph=True)
    diffs = []
    for batch, (logits, grads) in zip(batches, eager):
        c_logits, c_grads = loss_and_grads(model, *batch)
        assert logits.abs().max() > 1.0 and max(g.abs().max() for g in grads) > 1e-2  # not trivially small
        diffs.append((max_diff(c_logits, logits), max(max_diff(a, b) for a, b in zip(c_grads, grads))))
    print(f"{family} packed={packed} {backend}: max |compiled - eager| (logits, LoRA grads) = {diffs}")
    assert max(d for pair in diffs for d in pair) <= TOL


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "plain"])
@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_compiled_blocks_match_eager(family, packed):
    """No graph break (fullgraph) and the same logits and LoRA gradients as eager; packed batches use
    SDPA with a block-diagonal mask on every layer, plain ones a mask on the sliding layer only."""
    assert_same_as_eager(family, packed, "aot_eager")


@pytest.mark.slow
def test_inductor_blocks_match_eager():
    """The default backend (what --compile uses): generated C++ kernels, packed batches of two shapes."""
    assert_same_as_eager("gemma", True, "inductor", shapes=((2, 24), (2, 40)))


def test_layers_share_variants_and_new_lengths_stop_recompiling():
    """A training loop over batches of changing length: the blocks compile once per variant -- layer
    type x whether the block's input needs a gradient (the first block's does not under LoRA: the
    embedding is frozen) -- however many layers share it; the first new length recompiles each variant
    once with dynamic shapes, and later lengths compile nothing."""
    config = ModelConfig.from_hf(gemma_config().to_dict())  # 7 layers: 5 sliding, 1 full, 1 sliding
    torch.manual_seed(0)
    model = Transformer(config)
    apply_lora(model, r=4, alpha=8)
    mark_only_lora_trainable(model)
    counter = CompileCounterWithBackend("eager")  # dynamo's graphs, run as they are: counting only
    compile_blocks(model, backend=counter)
    variants = 3  # (sliding, input without gradient: layer 0), (sliding, with), (full, with)
    compiled = []
    for step, seqlen in enumerate([24, 24, 32, 40, 17, 48]):
        loss_and_grads(model, *make_batch(2, seqlen, packed=True, seed=step))
        compiled.append(counter.frame_count)
    assert compiled == [variants] * 2 + [2 * variants] * 4



def test_train_compiles_only_training_steps(data, base_dir, tmp_path, monkeypatch):
    """train.py --compile on a 2-layer LoRA Gemma (sliding, full), one example per row so that every
    batch has another length, with the tool-call check (generation) and held-out loss: only the
    training steps compile -- 2 variants, each once more with dynamic shapes -- and the losses are
    those of the run without --compile."""
    counter = CompileCounterWithBackend("eager")
    monkeypatch.setattr(train, "compile_blocks", lambda model: compile_blocks(model, backend=counter))
    common = ["--model", base_dir, "--no-packing", "--batch-tokens", 512, "--max-steps", 4, "--lr", 1e-2,
              "--eval-interval", 2, "--check-examples", 1]
    train.main(args_for(data, tmp_path / "eager", *common))
    assert counter.frame_count == 0
    train.main(args_for(data, tmp_path / "compiled", *common, "--compile"))
    assert counter.frame_count == 2 * 2
    assert losses(tmp_path / "compiled") == losses(tmp_path / "eager")
