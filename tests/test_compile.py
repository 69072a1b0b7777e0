"""torch.compile of the transformer blocks (train.py --compile) on CPU: same numbers as eager, no graph
breaks, and no recompilation storm. Compiling is slow on 2 cores, so most tests use backend="aot_eager"
(dynamo traces the block and AOTAutograd traces its forward and backward graphs, without generating
code); one slow test runs inductor (C++ code generated and built with gcc)."""

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.testing import CompileCounterWithBackend

import train
from minifc import attention
from minifc.config import ModelConfig
from minifc.lora import apply_lora, lora_parameters, mark_only_lora_trainable
from minifc.model import Transformer, rope_cos_sin, rope_inv_freq
from test_train import args_for, base_dir, data, losses, one_thread  # noqa: F401 (fixtures)
from tiny_models import VOCAB, gemma4_config, gemma_config, llama_config, max_diff, randomize_b

# Eager vs compiled in fp32. aot_eager runs the very aten ops eager runs (measured: bitwise equal);
# inductor fuses them into generated kernels that sum in another order (measured: 2.1e-6 on logits
# of size ~3, 8.6e-8 on LoRA gradients of size ~0.1). A tracing error (a wrong mask, a lost branch, a
# missing gradient) shows at the size of the values themselves.
TOL = 1e-5

CONFIGS = {
    # two layers each: Gemma gets one sliding-window layer (window 4 < sequence lengths) and one global
    "llama": lambda: llama_config(num_hidden_layers=2),
    "gemma": lambda: gemma_config(num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"]),
    # one block, one compiled variant: inductor takes ~30 s of CPU time per variant (forward + backward)
    "gemma-1": lambda: gemma_config(num_hidden_layers=1, layer_types=["sliding_attention"]),
    # Gemma 4: 5 layers, the last two (sliding, full) reusing the K/V of layers 2 and 1, per-layer inputs
    "gemma4": gemma4_config,
}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Dynamo's caches and counters are per code object (Block.forward) and process-wide: each test
    starts from none, so one test's compiled variants neither help nor use up another's limit."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def lora_model(family: str, seed: int = 0, device="cpu", dtype=torch.float32) -> Transformer:
    """A tiny minifc model with random weights (std 0.2, norms too) in `dtype` and fp32 LoRA (B
    non-zero) on all targets, as train.py builds it."""
    config = ModelConfig.from_hf(CONFIGS[family]().to_dict())
    torch.manual_seed(seed)
    model = Transformer(config)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.2)
    model.to(device, dtype)
    apply_lora(model, r=4, alpha=8)
    mark_only_lora_trainable(model)
    randomize_b(model, seed)
    return model


def make_batch(batch: int, seqlen: int, packed: bool, seed: int = 0):
    """(input_ids, targets, cu_seqlens): packed rows hold two sequences each, cut at seqlen // 3 + row
    + seed (so that batches of different seeds have different longest sequences)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (batch, seqlen), generator=g)
    targets = torch.randint(0, VOCAB, (batch, seqlen), generator=g)
    if not packed:
        return ids, targets, None
    bounds = [0]
    for row in range(batch):
        bounds += [row * seqlen + seqlen // 3 + row + seed, (row + 1) * seqlen]
    return ids, targets, torch.tensor(bounds, dtype=torch.int32)


def loss_and_grads(model, ids, targets, cu_seqlens):
    """(logits, LoRA gradients) of a cross-entropy over every position."""
    for p in lora_parameters(model):
        p.grad = None
    device = model.lm_head.weight.device
    logits = model(ids.to(device), cu_seqlens=None if cu_seqlens is None else cu_seqlens.to(device))
    F.cross_entropy(logits.flatten(0, 1).float(), targets.to(device).flatten()).backward()
    return logits.detach(), [p.grad.clone() for p in lora_parameters(model)]


def compile_blocks(model, **options):  # what train.py --compile does; the tests choose the backend
    model.compile_blocks(**options)


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


@pytest.mark.parametrize("family, packed", [("llama", True), ("gemma", True), ("gemma", False),
                                            pytest.param("gemma4", True, marks=pytest.mark.slow)],
                         ids=["llama-packed", "gemma-packed", "gemma-plain", "gemma4-packed"])
def test_compiled_blocks_match_eager(family, packed):
    """No graph break (fullgraph) and the same logits and LoRA gradients as eager. Packed batches use
    SDPA with a block-diagonal mask on every layer; a plain batch a window mask on Gemma's sliding layer
    and SDPA's is_causal without a mask on its global layer (as on a plain Llama batch)."""
    assert_same_as_eager(family, packed, "aot_eager")


@pytest.mark.slow
def test_inductor_blocks_match_eager():
    """The default backend (what --compile uses): generated C++ kernels for a Gemma block (QK-norm,
    sandwich norms, GeGLU, sliding window and packed sequences in the mask, LoRA on every linear)."""
    assert_same_as_eager("gemma-1", True, "inductor")


def test_layers_share_variants_and_new_lengths_stop_recompiling():
    """A training loop over batches of changing length: the blocks compile once per variant -- here
    whether the block's input needs a gradient (not the first block's under LoRA: the embedding is
    frozen) -- however many layers share it; the first new length recompiles each variant once with
    dynamic shapes, and later lengths compile nothing."""
    config = ModelConfig.from_hf(llama_config(num_hidden_layers=4).to_dict())
    torch.manual_seed(0)
    model = Transformer(config)
    apply_lora(model, r=4, alpha=8)
    mark_only_lora_trainable(model)
    counter = CompileCounterWithBackend("eager")  # dynamo's graphs, run as they are: counting only
    compile_blocks(model, backend=counter)
    variants = 2  # layer 0; layers 1-3
    compiled = []
    for step, seqlen in enumerate([24, 24, 32, 40, 17, 48]):
        loss_and_grads(model, *make_batch(2, seqlen, packed=True, seed=step))
        compiled.append(counter.frame_count)
    assert compiled == [variants] * 2 + [2 * variants] * 4


@pytest.mark.slow
def test_gemma4_variants_all_compile():
    """Gemma 4 E2B's 35 blocks are 5 variants (the first block; sliding and full layers with their own K/V;
    the KV-shared ones of each type), each once more with dynamic shapes: 10, beyond dynamo's default
    limit of 8, which compile_blocks raises, so no block falls back to eager."""
    from minifc.config import MODELS
    hf = dict(MODELS["gemma-4-e2b"].hf_config["text_config"], hidden_size=32, intermediate_size=32,
              num_attention_heads=2, num_key_value_heads=1, head_dim=8, global_head_dim=16,
              hidden_size_per_layer_input=4, vocab_size=VOCAB, vocab_size_per_layer_input=VOCAB)
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_hf(hf))
    apply_lora(model, r=2, alpha=4)
    mark_only_lora_trainable(model)
    counter = CompileCounterWithBackend("eager")
    compile_blocks(model, backend=counter)
    for step, seqlen in enumerate([24, 32, 40]):
        loss_and_grads(model, *make_batch(1, seqlen, packed=True, seed=step))
    assert counter.frame_count == 10


def test_train_compiles_only_training_steps(data, base_dir, tmp_path, monkeypatch):
    """train.py --compile on a 2-layer LoRA Gemma (sliding, full), one example per row so that every
    batch has another length, with the tool-call check (generation) and held-out loss: only the
    training steps compile -- 2 variants, each once more with dynamic shapes -- and the losses are
    those of the run without --compile."""
    counter = CompileCounterWithBackend("eager")
    real = Transformer.compile_blocks
    monkeypatch.setattr(Transformer, "compile_blocks", lambda model: real(model, backend=counter))
    common = ["--model", base_dir, "--no-packing", "--batch-tokens", 512, "--max-steps", 4, "--lr", 1e-2,
              "--eval-interval", 2, "--check-examples", 1]
    train.main(args_for(data, tmp_path / "eager", *common))
    assert counter.frame_count == 0
    train.main(args_for(data, tmp_path / "compiled", *common, "--compile"))
    assert counter.frame_count == 2 * 2
    assert losses(tmp_path / "compiled") == losses(tmp_path / "eager")


def test_cuda_varlen_path_traces_without_graph_breaks():
    """The CUDA path (b) of attention.py -- torch's varlen flash-attention op -- cannot run here, but it
    can be traced: on the meta device (shapes only, the op's fake kernel) a LoRA Gemma in bf16 compiles
    forward and backward with fullgraph=True, and the batch's longest sequence (an int that changes with
    every packed batch) becomes dynamic after its first change instead of recompiling every step."""
    config = ModelConfig.from_hf(CONFIGS["gemma"]().to_dict())
    with torch.device("meta"):
        model = Transformer(config)
    apply_lora(model, r=4, alpha=8)
    mark_only_lora_trainable(model)
    model.to(torch.bfloat16)  # the frozen base; LoRA stays fp32 (LoRALinear casts in forward)
    counter = CompileCounterWithBackend("aot_eager")
    compile_blocks(model, backend=counter, fullgraph=True)
    compiled = []
    for longest in (15, 19, 21):
        x = torch.randn(2, 24, config.hidden_size, device="meta", dtype=torch.bfloat16, requires_grad=True)
        cu_seqlens = torch.tensor([0, 24 - longest, 24, 48 - longest, 48], dtype=torch.int32, device="meta")
        plan = attention.AttentionPlan(varlen=True, cu_seqlens=cu_seqlens, max_seqlen=longest,
                                       window=config.sliding_window, masks={t: None for t in config.layer_types},
                                       kernel=attention.varlen_attn())
        positions = torch.zeros(2, 24, dtype=torch.long, device="meta")
        for block in model.model.layers:
            inv_freq = rope_inv_freq(config.head_dim, config.rope_parameters[block.layer_type])
            x, _ = block(x, rope_cos_sin(positions, inv_freq, torch.bfloat16), plan)  # (x, its k and v)
        x.sum().backward()
        compiled.append(counter.frame_count)
    assert compiled == [2, 4, 4]  # (sliding, full) x (max_seqlen static, dynamic)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the GPU checklist runs it)")
def test_cuda_inductor_blocks_match_eager_bf16():
    """On CUDA in bf16 (LoRA: bf16 base, fp32 adapters, as train.py trains): inductor-compiled blocks on
    the varlen flash-attention path, fullgraph, against eager. Inductor fuses what eager rounds to bf16
    op by op, so they differ by bf16 roundings; 5% of the largest value is far above that and far below
    what a tracing error gives (the values themselves)."""
    model = lora_model("gemma", device="cuda", dtype=torch.bfloat16)
    batches = [make_batch(4, 64, True, seed=i) for i in range(3)]  # three lengths of longest sequence
    eager = [loss_and_grads(model, *batch) for batch in batches]
    compile_blocks(model, fullgraph=True)
    for batch, (logits, grads) in zip(batches, eager):
        c_logits, c_grads = loss_and_grads(model, *batch)
        logit_diff = max_diff(c_logits.float(), logits.float()) / logits.float().abs().max().item()
        grad_diff = max(max_diff(a, b) / b.abs().max().item() for a, b in zip(c_grads, grads))
        print(f"CUDA bf16 inductor: relative max |compiled - eager| logits {logit_diff:.2e}, grads {grad_diff:.2e}")
        assert logit_diff <= 0.05 and grad_diff <= 0.05


def test_compiled_blocks_attend_with_the_mask_not_per_sequence(monkeypatch):
    """On CPU, eager packed rows attend per sequence (attention.py path (a')); compiled blocks take the
    block-diagonal mask instead, since a loop over each batch's own sequence lengths would be a new
    compiled variant for every batch."""
    model = Transformer(ModelConfig.from_hf(llama_config(num_hidden_layers=1).to_dict()))
    plans = []
    real = attention.plan_attention
    monkeypatch.setattr("minifc.model.plan_attention", lambda *a, **k: plans.append(real(*a, **k)) or plans[-1])
    ids = torch.randint(0, VOCAB, (1, 16))
    cu = torch.tensor([0, 7, 16], dtype=torch.int32)
    with torch.no_grad():
        model(ids, cu_seqlens=cu)
        model.compile_blocks(backend="eager")
        model(ids, cu_seqlens=cu)
    assert plans[0].segments == [7, 9] and plans[1].segments is None and plans[1].masks
