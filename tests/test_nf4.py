"""NF4 (minifc/nf4.py, train.py --quantize nf4) against the QLoRA paper and bitsandbytes, the paper's own
code, as the oracle: the codebooks, codes, scales and dequantized weights agree bit for bit; the error
stays within the scheme's bound; a model with an NF4 base computes nearly the plain one's logits and
compiles without graph breaks; LoRA on it trains, resumes, exports and loads in peft."""

import json
import logging

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

import train
from benchmarks.live_tensors import LiveTensorBytes
from minifc import export
from minifc.adapters import load_adapter
from minifc.checkpoint import load_pretrained
from minifc.config import ModelConfig
from minifc.lora import apply_lora, lora_layers, lora_parameters, mark_only_lora_trainable
from minifc.model import Transformer
from minifc.nf4 import (DYNAMIC, HALF_GAP_DYNAMIC, HALF_GAP_NF4, NF4, NF4Linear, NF4Weight, nf4_weights,
                        quantize_model)
from test_train import args_for, base_dir, data, losses, one_thread  # noqa: F401 (fixtures)
from tiny_checkpoint import gemma_hf_config, random_model
from tiny_models import VOCAB, gemma_config, llama_config, max_diff, qwen_config, randomize_b

# The NF4 values as printed in the QLoRA paper (Dettmers et al. 2023, Appendix E).
PAPER_NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
             -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
             0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
             0.7229568362236023, 1.0]


@pytest.fixture(scope="module")
def bnb():
    """bitsandbytes.functional; its import logs that an optional CPU kernel package is missing (harmless)."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    import bitsandbytes.functional
    return bitsandbytes.functional


def test_codebooks_are_the_papers(bnb):
    """NF4 is the paper's list, and its construction (bitsandbytes' create_normal_map): quantiles of N(0, 1)
    at evenly spaced probabilities from 0.9677083 (bitsandbytes' outermost one; ~ 1 - (1/30 + 1/32) / 2) to
    1/2, 8 values for the negative half and 9 for the positive one, both ending at the shared, exact 0,
    normalised to [-1, 1]. The 8-bit table of the scales is bitsandbytes' dynamic map."""
    assert torch.equal(NF4, torch.tensor(PAPER_NF4))
    offset = 0.9677083
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9)[:-1].double())
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8)[:-1].double())
    built = torch.cat([negative, torch.zeros(1, dtype=torch.float64), positive]).float().sort().values
    assert torch.equal(built / built.max(), NF4)
    assert torch.equal(NF4, bnb.get_4bit_type("nf4", device="cpu"))
    assert torch.equal(DYNAMIC, bnb.create_dynamic_map())
    assert DYNAMIC.unique().numel() == 256
    assert (HALF_GAP_NF4, HALF_GAP_DYNAMIC) == pytest.approx((0.30380719900131226 / 2, 0.0140625 / 2), rel=1e-5)


def portable_quantize_blockwise(x, code, blocksize):
    """bitsandbytes' own pure-PyTorch kernel of quantize_blockwise (nearest code). Its CPU library kernel
    (what bnb.quantize_blockwise runs here) finds the code by an approximate binary search that picks a
    neighbour of the nearest code for ~0.1% of values; the test below shows where."""
    explicit = torch._C.DispatchKeySet(torch._C.DispatchKey.CompositeExplicitAutograd)
    return torch.ops.bitsandbytes.quantize_blockwise.default.redispatch(explicit, x, code, blocksize)


@pytest.mark.parametrize("shape, dtype", [((512, 384), torch.bfloat16), ((1024, 1024), torch.float32),
                                          ((100, 37), torch.float32)], ids=["bf16", "fp32", "partial-blocks"])
def test_quantize_and_dequantize_equal_bitsandbytes(bnb, shape, dtype):
    """Against bnb.quantize_4bit(blocksize=64, quant_type="nf4", compress_statistics=True): the packed
    codes, the mean of the absmax, the second-level absmax; the 8-bit codes of the scales equal those of
    bitsandbytes' portable kernel; the dequantized weight equals bnb.dequantize_4bit's in fp32 and bf16.
    Heavy-tailed weights (normal times a log-normal), as trained weights have outliers; 100 x 37 is no
    whole number of blocks of 64 nor of 256 scales."""
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(shape, generator=g) * torch.randn(shape, generator=g).exp() * 0.02).to(dtype)
    ours = NF4Weight.quantize(w)
    packed, state = bnb.quantize_4bit(w, blocksize=64, compress_statistics=True, quant_type="nf4")
    blocks = state.absmax.numel()
    assert torch.equal(ours.codes[:packed.numel()], packed.flatten())
    assert torch.equal(ours.scale_mean, state.offset) and torch.equal(ours.scale_absmax, state.state2.absmax)
    _, plain = bnb.quantize_4bit(w, blocksize=64, compress_statistics=False, quant_type="nf4")
    portable, absmax2 = portable_quantize_blockwise(plain.absmax - state.offset, DYNAMIC, 256)
    assert torch.equal(ours.scale_codes[:blocks], portable) and torch.equal(absmax2, ours.scale_absmax)
    # where bnb's CPU library kernel chose other 8-bit codes, ours are strictly nearer (its search error)
    differ = ours.scale_codes[:blocks] != state.absmax
    normed = (plain.absmax - state.offset).view(-1)[differ] / ours.scale_absmax.repeat_interleave(256)[:blocks][differ]
    assert ((normed - DYNAMIC[ours.scale_codes[:blocks][differ].long()]).abs()
            < (normed - DYNAMIC[state.absmax[differ].long()]).abs()).all()
    print(f"{shape} {dtype}: bnb's CPU 8-bit search differs from nearest on {int(differ.sum())} of {blocks} scales")
    state.absmax = ours.scale_codes[:blocks].clone()  # dequantize our codes with bitsandbytes
    for out_dtype in (torch.float32, torch.bfloat16):
        state.dtype = out_dtype
        assert torch.equal(ours.dequantize(out_dtype), bnb.dequantize_4bit(packed, state))


def test_dequantization_error_within_the_bound():
    """|w - w~| <= HALF_GAP_NF4 * a + HALF_GAP_DYNAMIC * A for every weight (a: its block's absmax, A: the
    absmax of its block of 256 centred scales), and the largest error comes close to it."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(768, 512, generator=g) * torch.randn(768, 512, generator=g).exp() * 0.02
    ours = NF4Weight.quantize(w)
    error = (ours.dequantize() - w).abs().view(-1, 64)
    a = w.view(-1, 64).abs().amax(dim=1)
    big_a = (a - a.mean()).view(-1, 256).abs().amax(dim=1).repeat_interleave(256)
    bound = HALF_GAP_NF4 * a + HALF_GAP_DYNAMIC * big_a
    ratio = (error / bound[:, None]).max().item()
    relative = (error.norm() / w.norm()).item()
    print(f"max error / bound {ratio:.4f}; relative RMS error {relative:.4f}; mean |error| / mean |w| "
          f"{(error.mean() / w.abs().mean()).item():.4f}")
    assert ratio <= 1 + 1e-5
    assert ratio > 0.9  # the bound is the scheme's, not a loose one
    assert ours.nbytes() / (w.numel() * 2) == pytest.approx((4 + 8 / 64 + 32 / 64 / 256) / 16, rel=1e-3)


def saved_by_autograd(fn):
    """(result of fn(), [(shape, dtype) of every tensor autograd saved for backward meanwhile])."""
    saved = []

    def pack(t):
        saved.append((tuple(t.shape), t.dtype))
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        return fn(), saved


def test_nf4_linear_forward_backward_through_the_dequantized_weight():
    """Forward = F.linear with the dequantized weight (and the bias); the gradient reaches the input
    as through that weight; autograd keeps the codes, never a dequantized [out, in] weight."""
    torch.manual_seed(0)
    linear = nn.Linear(96, 64)
    layer = NF4Linear.from_linear(linear)
    x = torch.randn(3, 5, 96, requires_grad=True)
    reference = x.detach().clone().requires_grad_(True)
    out, saved = saved_by_autograd(lambda: layer(x))
    expected = F.linear(reference, layer.weight.dequantize(), linear.bias.detach())
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x.grad, reference.grad, rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in layer.parameters())
    assert not [s for s in saved if s[1].is_floating_point and torch.Size(s[0]).numel() >= 64 * 96]
    assert torch.equal(layer.weight.dequantize(torch.bfloat16), layer.weight.dequantize().bfloat16())


def nf4_lora_model(hf_config, seed=0, std=0.02):
    """A tiny minifc model, random weights N(0, std), the block linears in NF4, LoRA with B non-zero."""
    torch.manual_seed(seed)
    model = Transformer(ModelConfig.from_hf(hf_config.to_dict()))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    quantize_model(model)
    apply_lora(model, r=4, alpha=8)
    mark_only_lora_trainable(model)
    randomize_b(model, seed)
    return model


def lora_step(model, ids):
    """One forward and backward of an NF4 + LoRA model: (logits, LoRA gradients, the [out, in] float
    weights autograd kept between them, which should be none)."""
    shapes = {tuple(w.shape) for w in nf4_weights(model).values()}
    for p in lora_parameters(model):
        p.grad = None
    logits, saved = saved_by_autograd(lambda: model(ids))
    F.cross_entropy(logits.flatten(0, 1).float(), ids.flatten()).backward()
    weights_saved = [s for s in saved if s[0] in shapes and s[1].is_floating_point]
    return logits.detach(), [p.grad.clone() for p in lora_parameters(model)], weights_saved


@pytest.mark.parametrize("family", ["llama", "gemma"])
def test_compiled_nf4_blocks_match_eager_and_keep_no_weights(family):
    """torch.compile of NF4 + LoRA blocks: no graph break (fullgraph), the logits and LoRA gradients of
    eager, and -- since the compiled path recomputes the dequantized weight in backward rather than
    saving it -- no [out, in] float weight among what autograd keeps."""
    config = (llama_config(num_hidden_layers=2) if family == "llama" else
              gemma_config(num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"]))
    model = nf4_lora_model(config, std=0.2)
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(0))
    step = lambda: lora_step(model, ids)
    torch._dynamo.reset()
    logits, grads, eager_saved = step()
    model.compile_blocks(backend="aot_eager", fullgraph=True)
    try:
        c_logits, c_grads, compiled_saved = step()
    finally:
        torch._dynamo.reset()
    assert max_diff(c_logits, logits) <= 1e-5 and max(max_diff(a, b) for a, b in zip(c_grads, grads)) <= 1e-5
    assert eager_saved == [] and compiled_saved == []


@pytest.mark.parametrize("kind", ["llama", "gemma"])
def test_nf4_training_step_has_no_host_sync(kind, monkeypatch):
    """train.py's step with NF4 blocks, on the CUDA path's varlen plan (as tests/test_host_sync.py runs
    it on CPU): dequantizing reads nothing back to the host."""
    from test_host_sync import fake_varlen_attn, packed, recording_host_syncs, step, tiny
    from minifc import attention
    torch.manual_seed(0)
    model = quantize_model(Transformer(tiny(kind)))
    apply_lora(model, r=4, alpha=8)
    mark_only_lora_trainable(model)
    randomize_b(model)
    calls = []
    monkeypatch.setattr(attention, "varlen_usable", lambda *args: True)
    monkeypatch.setattr(attention, "varlen_attn", lambda: fake_varlen_attn(calls))
    batch = packed()  # the collator's work is on the host anyway
    with recording_host_syncs(monkeypatch) as syncs:
        _, _, grads = step(model.train(), batch)
    assert syncs == [] and calls and all(g.abs().max() > 0 for g in grads)


@pytest.mark.slow
def test_inductor_fuses_the_dequantization():
    """torch.compile (inductor) of an NF4Linear, compiled on its first call: forward and backward are each
    one fused kernel (the gathers, the scale arithmetic, the cast) and one matmul."""
    from torch._inductor.utils import run_and_get_code
    torch._dynamo.reset()
    layer = NF4Linear.from_linear(nn.Linear(256, 512, bias=False))
    x = torch.randn(4, 256, requires_grad=True)
    compiled = torch.compile(layer, fullgraph=True)
    try:
        _, codes = run_and_get_code(lambda: compiled(x).sum().backward())
    finally:
        torch._dynamo.reset()
    assert len(codes) == 2  # forward, backward
    for code in codes:
        assert code.count("async_compile.cpp_pybinding(") == 1 and code.count("extern_kernels.mm(") == 1
    torch.testing.assert_close(x.grad, torch.ones(4, 512) @ layer.weight.dequantize(), rtol=0, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the GPU checklist runs it)")
def test_cuda_nf4_quantizes_as_on_cpu_and_compiles():
    """On CUDA: quantizing gives the CPU's codes and scales bit for bit; an eager NF4 + LoRA step in bf16
    makes no host sync; its blocks compiled by inductor (fullgraph) match eager to bf16 roundings (as in
    test_compile.py) and keep no weight."""
    w = torch.randn(4096, 1024, generator=torch.Generator().manual_seed(0)) * 0.02
    on_cpu, on_cuda = NF4Weight.quantize(w), NF4Weight.quantize(w.cuda())
    assert all(torch.equal(a, b.cpu()) for a, b in zip(on_cpu.buffers(), on_cuda.buffers()))
    config = gemma_config(num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"])
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_hf(config.to_dict())).cuda().to(torch.bfloat16)
    quantize_model(model)
    apply_lora(model, r=4, alpha=8)
    mark_only_lora_trainable(model)
    randomize_b(model)
    ids = torch.randint(0, VOCAB, (2, 64), generator=torch.Generator().manual_seed(0)).cuda()

    def step():
        logits, grads, weights_saved = lora_step(model, ids)
        assert not weights_saved
        return logits.float(), grads
    torch._dynamo.reset()
    logits, grads = step()
    torch.cuda.set_sync_debug_mode("error")  # an eager NF4 step makes no host sync
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    model.compile_blocks(fullgraph=True)
    try:
        c_logits, c_grads = step()
    finally:
        torch._dynamo.reset()
    logit_diff = max_diff(c_logits, logits) / logits.abs().max().item()
    grad_diff = max(max_diff(a, b) / b.abs().max().item() for a, b in zip(c_grads, grads))
    print(f"CUDA bf16 NF4 inductor: relative max |compiled - eager| logits {logit_diff:.2e}, grads {grad_diff:.2e}")
    assert logit_diff <= 0.05 and grad_diff <= 0.05


def test_nf4_with_gradient_checkpointing_eager_and_compiled():
    """--grad-checkpointing recomputes each NF4 block in backward (eager, and around compiled blocks):
    the LoRA gradients of the run without it."""
    model = nf4_lora_model(llama_config(num_hidden_layers=2), std=0.2)
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(0))

    def grads():
        for p in lora_parameters(model):
            p.grad = None
        F.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
        return [p.grad.clone() for p in lora_parameters(model)]
    plain = grads()
    model.gradient_checkpointing = True
    recomputed = grads()
    torch._dynamo.reset()
    model.compile_blocks(backend="aot_eager", fullgraph=True)
    try:
        compiled = grads()
    finally:
        torch._dynamo.reset()
    assert max(max_diff(a, b) for a, b in zip(recomputed + compiled, plain + plain)) <= 1e-6


@pytest.mark.parametrize("family", ["llama", "gemma", "qwen2.5"])  # qwen2.5: q, k, v biases kept unquantized
def test_nf4_model_logits_close_to_plain(family):
    """The same random model (weights N(0, 0.02), as models are initialised) with its block linears in NF4:
    embeddings, norms and lm_head unchanged, and logits as close to the plain model's as those of a model
    whose block weights get random noise of the same size as the quantization error (errors printed).
    A wrong scale, block or layout would be far larger than noise."""
    hf_config = {"llama": lambda: llama_config(num_hidden_layers=3), "gemma": gemma_config,
                 "qwen2.5": lambda: qwen_config("qwen2.5-0.5b", hidden_size=128, intermediate_size=384,
                                                num_attention_heads=4, vocab_size=VOCAB)}[family]()
    config = ModelConfig.from_hf(hf_config.to_dict())
    torch.manual_seed(0)
    plain = Transformer(config).eval()
    torch.manual_seed(0)
    quantized = quantize_model(Transformer(config)).eval()  # the same initial weights, then quantized
    assert len(nf4_weights(quantized)) == 7 * config.num_hidden_layers
    kept = dict(quantized.named_parameters())
    assert set(kept) == {name for name, _ in plain.named_parameters() if not name.endswith("_proj.weight")}
    assert all(torch.equal(p, kept[name]) for name, p in plain.named_parameters() if name in kept)
    torch.manual_seed(0)
    noisy = Transformer(config).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, weight in nf4_weights(quantized).items():
            p = noisy.get_parameter(name)
            p += torch.randn(p.shape, generator=g) * (weight.dequantize() - p).pow(2).mean().sqrt()
    ids = torch.randint(0, VOCAB, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got, noise = plain(ids), quantized(ids), noisy(ids)
    relative = ((got - expected).norm() / expected.norm()).item()
    noise_relative = ((noise - expected).norm() / expected.norm()).item()
    print(f"{family}: NF4 vs plain logits: max |diff| {max_diff(got, expected):.2e} (largest logit "
          f"{expected.abs().max().item():.2f}), relative RMS {relative:.4f}; equal-size noise: {noise_relative:.4f}")
    assert 0 < relative < 1.5 * noise_relative


def test_loading_quantizes_tensor_by_tensor(tmp_path):
    """load_pretrained(quantize="nf4") of an 8-layer checkpoint: the NF4 weights of quantizing the loaded
    plain model, and while loading, the tensors alive at once exceed the loaded model by about one
    weight's quantization scratch (16 bytes per weight), far from the plain block weights (all 8 layers)."""
    hf_config = {**gemma_hf_config(VOCAB), "num_hidden_layers": 8}
    (tmp_path / "config.json").write_text(json.dumps(hf_config))
    save_file({k: v.contiguous() for k, v in random_model(hf_config).state_dict().items()},
              str(tmp_path / "model.safetensors"))
    plain = load_pretrained(str(tmp_path))
    with LiveTensorBytes() as live:
        loaded = load_pretrained(str(tmp_path), quantize="nf4")
    expected = nf4_weights(quantize_model(plain))
    assert set(nf4_weights(loaded)) == set(expected) and len(expected) == 7 * 8
    for name, weight in nf4_weights(loaded).items():
        assert all(torch.equal(a, b) for a, b in zip(weight.buffers(), expected[name].buffers())), name
    held = sum(p.numel() * 4 for p in loaded.parameters()) + sum(w.nbytes() for w in expected.values())
    block_weights = sum(w.shape.numel() * 4 for w in expected.values())
    largest = max(w.shape.numel() for w in expected.values())
    print(f"loading: peak of live tensors {live.peak} B = the loaded model {held} B + {live.peak - held} B; "
          f"the plain block weights are {block_weights} B, the largest {largest * 4} B")
    assert live.peak - held <= 16 * largest < block_weights / 4


def test_quantize_refused_with_full():
    with pytest.raises(SystemExit, match="--quantize nf4 is for LoRA runs.*--full trains every weight"):
        train.parse_args(["--model", "gemma-3-1b", "--full", "--quantize", "nf4"])
    with pytest.raises(SystemExit, match="--model tiny trains the whole model.*--quantize nf4"):
        train.parse_args(["--model", "tiny", "--quantize", "nf4"])


@pytest.fixture(scope="module")
def qlora_run(data, base_dir, tmp_path_factory):
    """A QLoRA run of 6 steps on the small base (LoRA dropout on, checkpoint at step 3, --export), and the
    same run crashing after its step-3 checkpoint and then resumed."""
    out = tmp_path_factory.mktemp("qlora")
    common = ["--model", base_dir, "--quantize", "nf4", "--max-steps", 6, "--lr", 1e-2, "--lora-dropout", 0.1,
              "--save-interval", 3]
    model = train.main(args_for(data, out / "whole", *common, "--export"))
    real = train.lr_at

    def crash_at_step_4(step, total, args):
        if step == 3:
            raise RuntimeError("power cut")
        return real(step, total, args)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "lr_at", crash_at_step_4)
        with pytest.raises(RuntimeError, match="power cut"):
            train.main(args_for(data, out / "split", *common))
    resumed = train.main(["--resume", str(out / "split")])
    return out, model.eval(), resumed.eval()


def test_qlora_trains_and_resumes(qlora_run):
    """LoRA on the NF4 base lowers the loss on the built-in data; --resume reuses --quantize nf4 and gives
    the losses and adapter of the uninterrupted run."""
    out, model, resumed = qlora_run
    whole, split = losses(out / "whole"), losses(out / "split")
    print(f"QLoRA losses: {[round(x, 4) for x in whole]}")
    assert len(whole) == len(split) == 6 and whole[-1] < whole[0] - 0.05
    assert max(abs(x - y) for x, y in zip(whole, split)) <= 1e-6
    assert len(nf4_weights(resumed)) == len(nf4_weights(model)) > 0
    for (name, p), q in zip(model.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), name


def test_qlora_export_is_the_dequantized_model(qlora_run, base_dir, tmp_path, capsys):
    """--export of an NF4 run and `python -m minifc.export --quantize nf4` both write the model the run
    computed: the NF4 base dequantized, adapter merged. Without --quantize the export merges into the
    original weights: base + adapter, as eval.py --adapter and peft load it."""
    out, model, _ = qlora_run
    export.main(["--model", str(base_dir), "--adapter", str(out / "whole" / "final"), "--out",
                 str(tmp_path / "nf4"), "--dtype", "float32", "--quantize", "nf4"])
    assert "NF4 base dequantized to float32" in capsys.readouterr().out
    export.main(["--model", str(base_dir), "--adapter", str(out / "whole" / "final"), "--out",
                 str(tmp_path / "plain"), "--dtype", "float32"])
    base = load_pretrained(str(base_dir))
    load_adapter(base, out / "whole" / "final")
    ids = torch.arange(40)[None]
    with torch.no_grad():
        trained, original = model(ids), base(ids)
        for directory in (out / "whole" / "merged", tmp_path / "nf4"):
            torch.testing.assert_close(load_pretrained(str(directory))(ids), trained, rtol=0, atol=1e-5)
        torch.testing.assert_close(load_pretrained(str(tmp_path / "plain"))(ids), original, rtol=0, atol=1e-5)
    print(f"NF4 run vs the same adapter on the original base: max |logit diff| {max_diff(trained, original):.3e}")
    assert max_diff(trained, original) > 1e-3  # the quantization error is really there


def test_qlora_adapter_loads_in_peft(qlora_run, base_dir):
    """The adapter trained on NF4 is a plain PEFT adapter: peft on transformers' model of the original
    base computes what minifc's plain base with it computes."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    out, _, _ = qlora_run
    base = load_pretrained(str(base_dir))
    load_adapter(base, out / "whole" / "final")
    assert len(lora_layers(base)) == 7 * base.config.num_hidden_layers
    hf = AutoModelForCausalLM.from_pretrained(base_dir, attn_implementation="eager", dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(hf, out / "whole" / "final").eval()
    ids = torch.arange(40)[None]
    with torch.no_grad():
        torch.testing.assert_close(peft_model(ids).logits, base(ids), rtol=0, atol=1e-5)
