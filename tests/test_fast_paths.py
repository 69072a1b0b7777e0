"""Every fast path of the training step gives the results of the plain path it replaces (fp32, CPU).

- loss.FUSED_BACKWARD: with a frozen output projection, the gradient of the trained rows is computed
  chunk by chunk in forward instead of recomputing each chunk in backward.
- lora.FUSED_UPDATE: LoRALinear adds scale * B(A(x)) to the frozen output inside one addmm instead of
  separate matmul, scale and add passes.
- attention.PER_SEGMENT: packed rows on CPU attend per sequence instead of with a block-diagonal mask.
- model.LAST_BLOCK_ROWS: under the loss, the last block computes only the trained positions' outputs.
- mlp.LEAN_GATE: the MLP's act(gate) * up saves gate and up only and recomputes act(gate) in backward.
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minifc import loss as loss_module
from minifc.config import ModelConfig
from minifc.lora import apply_lora, lora_parameters, mark_only_lora_trainable
from minifc.loss import trained_token_loss
from minifc.masking import IGNORE_INDEX
from minifc.model import Transformer

D, V = 16, 97


class CountingHead(nn.Module):
    """A frozen lm_head (optionally soft-capped) that counts the rows it is given."""

    def __init__(self, softcap=None, dtype=torch.float32):
        super().__init__()
        self.lm_head = nn.Linear(D, V, bias=False, dtype=dtype).requires_grad_(False)
        self.softcap, self.rows_seen = softcap, 0

    def forward(self, h):
        self.rows_seen += h.shape[0]
        logits = self.lm_head(h)
        return logits if self.softcap is None else self.softcap * torch.tanh(logits / self.softcap)


def batch(seed, shape=(3, 20), frac_trained=0.4):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(*shape, D, generator=g)
    targets = torch.randint(0, V, shape, generator=g)
    targets[torch.rand(shape, generator=g) > frac_trained] = IGNORE_INDEX
    return hidden, targets


def loss_and_grad(hidden, targets, head, fused, monkeypatch, **kwargs):
    monkeypatch.setattr(loss_module, "FUSED_BACKWARD", fused)
    h = hidden.clone().requires_grad_()
    head.rows_seen = 0
    loss = trained_token_loss(h, targets, head, **kwargs)
    (loss * 3.0).backward()  # an upstream factor: backward must scale the stored gradient by it
    return loss.detach(), h.grad, head.rows_seen


@pytest.mark.parametrize("softcap", [None, 5.0])
@pytest.mark.parametrize("chunk_size", [1, 7, 1024])
def test_fused_loss_equals_checkpointed_and_full_logits(softcap, chunk_size, monkeypatch):
    torch.manual_seed(0)
    head = CountingHead(softcap)
    hidden, targets = batch(1)
    n = int((targets != IGNORE_INDEX).sum())
    fused = loss_and_grad(hidden, targets, head, True, monkeypatch, chunk_size=chunk_size)
    plain = loss_and_grad(hidden, targets, head, False, monkeypatch, chunk_size=chunk_size)

    h = hidden.clone().requires_grad_()  # the oracle: full logits, mean cross-entropy
    oracle = F.cross_entropy(head(h).reshape(-1, V), targets.reshape(-1), ignore_index=IGNORE_INDEX)
    (oracle * 3.0).backward()

    assert abs(fused[0].item() - oracle.item()) <= 1e-6 and abs(plain[0].item() - oracle.item()) <= 1e-6
    assert (fused[1] - h.grad).abs().max().item() <= 1e-6
    assert (fused[1] - plain[1]).abs().max().item() <= 1e-6
    assert h.grad.abs().max().item() > 1e-3  # the gradients compared are not trivially zero
    # the fast path runs each trained row through the output projection once, the plain path twice
    assert (fused[2], plain[2]) == (n, 2 * n)


def test_fused_loss_with_a_step_normalizer(monkeypatch):
    head = CountingHead()
    hidden, targets = batch(2)
    fused = loss_and_grad(hidden, targets, head, True, monkeypatch, chunk_size=5, normalizer=1000)
    plain = loss_and_grad(hidden, targets, head, False, monkeypatch, chunk_size=5, normalizer=1000)
    assert abs(fused[0].item() - plain[0].item()) <= 1e-7
    assert (fused[1] - plain[1]).abs().max().item() <= 1e-8


def test_a_trained_output_projection_takes_the_checkpointed_path(monkeypatch):
    head = CountingHead()
    head.lm_head.weight.requires_grad_(True)  # full fine-tuning: lm_head needs its own gradient
    hidden, targets = batch(3)
    n = int((targets != IGNORE_INDEX).sum())
    _, _, rows_seen = loss_and_grad(hidden, targets, head, True, monkeypatch)
    assert rows_seen == 2 * n
    assert head.lm_head.weight.grad is not None and head.lm_head.weight.grad.abs().max() > 0


def test_fused_loss_in_bf16_matches_the_checkpointed_path(monkeypatch):
    head = CountingHead(dtype=torch.bfloat16)
    hidden, targets = batch(4)
    fused = loss_and_grad(hidden.bfloat16(), targets, head, True, monkeypatch)
    plain = loss_and_grad(hidden.bfloat16(), targets, head, False, monkeypatch)
    assert fused[0].dtype == torch.float32 and fused[1].dtype == torch.bfloat16
    assert abs(fused[0].item() - plain[0].item()) <= 1e-6
    scale = plain[1].float().abs().max().item()
    assert (fused[1].float() - plain[1].float()).abs().max().item() <= 1e-2 * scale


def tiny_gemma() -> ModelConfig:
    return ModelConfig.from_hf(dict(
        model_type="gemma3_text", vocab_size=300, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=6, max_position_embeddings=128,
        layer_types=["sliding_attention", "full_attention"]))


def lora_model(config: ModelConfig, adapter_std: float | None = 0.1) -> Transformer:
    """A seeded random model with LoRA (r=4) on every block linear, only the adapters trainable; with
    adapter_std, the adapters drawn from N(0, adapter_std) (B != 0: every adapter is on the gradient's path)."""
    torch.manual_seed(0)
    model = Transformer(config)
    apply_lora(model, r=4, alpha=8)
    mark_only_lora_trainable(model)
    if adapter_std is not None:
        with torch.no_grad():
            for p in lora_parameters(model):
                p.normal_(0.0, adapter_std)
    return model


def lora_gemma_and_batch():
    """A tiny LoRA Gemma whose adapters all carry gradient, ids [2, 24] and targets trained on the last 8."""
    model = lora_model(tiny_gemma())
    ids = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(2))
    targets[:, :16] = IGNORE_INDEX
    return model, ids, targets


def lora_grads(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in lora_parameters(model)]


def test_fused_loss_gives_the_same_lora_gradients_on_the_model(monkeypatch):
    model, ids, targets = lora_gemma_and_batch()
    grads = {}
    for fused in (True, False):
        monkeypatch.setattr(loss_module, "FUSED_BACKWARD", fused)
        grads[fused] = lora_grads(model, lambda: trained_token_loss(model.hidden_states(ids), targets, model.output,
                                                                    chunk_size=5))[1]
    assert model.lm_head.weight.grad is None  # the tied embedding stays frozen either way
    for fast, plain in zip(grads[True], grads[False]):
        assert (fast - plain).abs().max().item() <= 1e-6 * max(1.0, plain.abs().max().item())
    assert max(g.abs().max().item() for g in grads[False]) > 1e-4


def label_smoothed(logits, labels):
    return F.cross_entropy(logits.float(), labels, reduction="none", label_smoothing=0.1)


def focal(logits, labels):
    ce = F.cross_entropy(logits.float(), labels, reduction="none")
    return (1 - torch.exp(-ce)) ** 2 * ce


@pytest.mark.parametrize("replacement", [label_smoothed, focal])
def test_lora_gradients_follow_a_replaced_token_loss(replacement, monkeypatch):
    """loss.token_loss is the one definition: replaced, every path follows it (the fast path steps aside for
    autograd through it, still per chunk); the default keeps the hand-written cross-entropy gradient."""
    model, ids, targets = lora_gemma_and_batch()
    trained = targets != IGNORE_INDEX
    assert loss_module._is_cross_entropy(loss_module.token_loss) and not loss_module._is_cross_entropy(replacement)
    by_hand = []  # chunks whose gradient the hand-written cross-entropy made
    real = loss_module._cross_entropy_and_grad
    monkeypatch.setattr(loss_module, "_cross_entropy_and_grad", lambda *a: by_hand.append(1) or real(*a))

    def ours():
        return trained_token_loss(model.hidden_states(ids), targets, model.output, chunk_size=5)

    default = lora_grads(model, ours)
    assert len(by_hand) == 4  # 16 trained rows in chunks of 5: the fast path, as before

    def oracle():  # plain autograd through full logits of the trained rows
        logits = model.output(model.hidden_states(ids)[trained])
        return replacement(logits, targets[trained]).mean()

    monkeypatch.setattr(loss_module, "token_loss", replacement)
    expected = lora_grads(model, oracle)
    for fused in (True, False):
        monkeypatch.setattr(loss_module, "FUSED_BACKWARD", fused)
        loss, grads = lora_grads(model, ours)
        assert abs(loss.item() - expected[0].item()) <= 1e-6
        for got, want in zip(grads, expected[1]):
            assert (got - want).abs().max().item() <= 1e-6 * max(1.0, want.abs().max().item())
    assert len(by_hand) == 4  # the replaced loss never took the hand-written gradient
    assert max((d - e).abs().max().item() for d, e in zip(default[1], expected[1])) > 1e-4  # it is another loss


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_lora_linear_update_equals_the_plain_formula(bias, fused, monkeypatch):
    """LoRALinear (the addmm fast path and the plain path) against y = W x + b + scale * B(A(x))."""
    from minifc import lora

    monkeypatch.setattr(lora, "FUSED_UPDATE", fused)
    torch.manual_seed(0)
    layer = lora.LoRALinear(nn.Linear(12, 20, bias=bias), r=3, alpha=7.0)
    nn.init.normal_(layer.lora_B.weight)  # B = 0 at init would hide the update
    x = torch.randn(2, 5, 12, requires_grad=True)
    out = layer(x)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    got = (out.detach(), x.grad.clone(), layer.lora_A.weight.grad.clone(), layer.lora_B.weight.grad.clone())

    x.grad = None
    layer.zero_grad()
    a, b = layer.lora_A.weight, layer.lora_B.weight
    oracle = x @ layer.weight.T + (0 if layer.bias is None else layer.bias) + (x @ a.T @ b.T) * (7.0 / 3)
    oracle.backward(grad_out)
    assert out.shape == (2, 5, 20)
    for mine, want in zip(got, (oracle.detach(), x.grad, a.grad, b.grad)):
        assert (mine - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())


# ----------------------------------------------------------------- attention.PER_SEGMENT (packed rows)

def tiny_llama() -> ModelConfig:
    return ModelConfig.from_hf(dict(
        model_type="llama", vocab_size=300, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=True))


# Three rows of 20 with different layouts: length-1 sequences and sequences longer than the window (6)
# in row 0, one sequence filling row 1, and in row 2 two sequences then 8 tokens after the last bound
# (a padding tail, one more sequence, also longer than the window).
ROW_LAYOUTS = [[1, 8, 1, 10], [20], [3, 9]]
SEGMENTS = [1, 8, 1, 10, 20, 3, 9, 8]


def packed_cu_seqlens(layouts, seqlen):
    bounds = [0]
    for row, lengths in enumerate(layouts):
        for n in lengths:
            bounds.append(bounds[-1] + n)
        if row < len(layouts) - 1:
            assert bounds[-1] == (row + 1) * seqlen
    return torch.tensor(bounds, dtype=torch.int32)


def logits_and_grads(model, ids, cu, per_segment, monkeypatch):
    from minifc import attention
    monkeypatch.setattr(attention, "PER_SEGMENT", per_segment)
    plan = attention.plan_attention(*ids.shape, ids.device, torch.float32, model.config, cu)
    assert (plan.segments is not None) == per_segment  # the path under test is the one taken
    model.zero_grad(set_to_none=True)
    logits = model(ids, cu_seqlens=cu)
    logits.logsumexp(-1).mean().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("config", [tiny_gemma, tiny_llama])
def test_per_segment_attention_equals_the_block_diagonal_mask(config, monkeypatch):
    """Logits and every weight gradient of path (a') equal path (a) in fp32 (measured: logits up to 5.3
    differ by <= 1.6e-6, gradients up to 0.1 by <= 3e-8)."""
    torch.manual_seed(0)
    model = Transformer(config())
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)  # sharp attention (and norm weights != 0): a leaked key changes the logits
    ids = torch.randint(0, 300, (3, 20), generator=torch.Generator().manual_seed(1))
    cu = packed_cu_seqlens(ROW_LAYOUTS, 20)
    fast_logits, fast = logits_and_grads(model, ids, cu, True, monkeypatch)
    plain_logits, plain = logits_and_grads(model, ids, cu, False, monkeypatch)
    assert plain_logits.abs().max() > 1.0
    assert (fast_logits - plain_logits).abs().max().item() <= 1e-5
    assert fast.keys() == plain.keys()
    for name in plain:
        assert (fast[name] - plain[name]).abs().max().item() <= 1e-6, name
    assert max(g.abs().max().item() for g in plain.values()) > 1e-3


def test_per_segment_plan_partitions_rows_like_the_mask(monkeypatch):
    from minifc import attention
    monkeypatch.setattr(attention, "PER_SEGMENT", True)
    config = tiny_gemma()  # window 6
    plan = attention.plan_attention(3, 20, torch.device("cpu"), torch.float32, config,
                                    packed_cu_seqlens(ROW_LAYOUTS, 20))
    assert plan.segments == SEGMENTS
    assert sorted(plan.window_masks) == [8, 9, 10, 20]  # only sequences longer than the window
    assert torch.equal(plan.window_masks[8], attention.build_mask(8, 0, "cpu", 6))
    with pytest.raises(ValueError, match="continues from one row into the next"):
        attention.plan_attention(2, 6, torch.device("cpu"), torch.float32, config,
                                 torch.tensor([0, 4, 12], dtype=torch.int32))
    # a KV cache or an attention_mask keeps the masked path
    mask = torch.ones(3, 20, dtype=torch.bool)
    assert attention.plan_attention(3, 20, torch.device("cpu"), torch.float32, config, None, mask).segments is None


# ----------------------------------------------------------------- model.LAST_BLOCK_ROWS (the loss's rows)

def trained_rows_batch(vocab=300):
    """Two packed rows of 24 as ROW-like layouts: sequences longer than the window (6), one of length 1,
    one with nothing trained (its keys still matter to nobody), a padding tail; targets on about half."""
    from minifc.collate import packed_batch
    g = torch.Generator().manual_seed(3)
    examples = []
    for n, trained in ((1, True), (9, True), (4, False), (10, True), (12, True)):
        ids = torch.randint(0, vocab, (n,), generator=g).tolist()
        keep = torch.rand(n, generator=g) < 0.5 if trained else torch.zeros(n, dtype=torch.bool)
        examples.append((ids, [t if k else IGNORE_INDEX for t, k in zip(ids, keep.tolist())]))
    return packed_batch([examples[:3], examples[3:]], 24, 0)


def tiny_gemma4() -> ModelConfig:
    """Gemma 4 E-model features: the last layer reuses layer 1's keys and values, per-layer inputs."""
    from tiny_models import gemma4_config
    return ModelConfig.from_hf({**gemma4_config().to_dict(), "vocab_size": 300, "vocab_size_per_layer_input": 300})


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("config", [tiny_gemma, tiny_llama, tiny_gemma4])
def test_last_block_on_the_trained_rows_equals_the_full_last_block(config, checkpointing, monkeypatch):
    """batch_loss with the last block computed at the trained positions only: the same hidden states,
    loss and every LoRA gradient as the full last block (fp32; measured: identical hidden states and loss,
    gradients up to 0.26 within 6e-8)."""
    from minifc import model as model_module
    from minifc.loss import batch_loss
    model = lora_model(config(), adapter_std=None)
    model.gradient_checkpointing = checkpointing
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)  # B != 0 and sharp attention: a leaked or missing key shows
    batch = trained_rows_batch()
    rows_in_last_mlp = []
    model.model.layers[-1].mlp.register_forward_hook(lambda m, args, out: rows_in_last_mlp.append(out.shape[:2].numel()))
    results = {}
    for fast in (True, False):
        monkeypatch.setattr(model_module, "LAST_BLOCK_ROWS", fast)
        with torch.no_grad():
            states = model.hidden_states(batch.input_ids, cu_seqlens=batch.cu_seqlens, positions=batch.trained_positions)
        results[fast] = (states,) + lora_grads(model, lambda: batch_loss(model, batch, chunk_size=5))
    assert rows_in_last_mlp[0] == rows_in_last_mlp[1] == batch.num_trained < 48  # the fast path ran
    assert rows_in_last_mlp[-1] == 48  # the plain path: every position
    with torch.no_grad():
        full = model.hidden_states(batch.input_ids, cu_seqlens=batch.cu_seqlens).flatten(0, 1)[batch.trained_positions]
    assert (results[True][0] - full).abs().max().item() <= 1e-5 and torch.equal(results[False][0], full)
    assert abs(results[True][1].item() - results[False][1].item()) <= 1e-6
    for fast, plain in zip(results[True][2], results[False][2]):
        assert (fast - plain).abs().max().item() <= 1e-6 * max(1.0, plain.abs().max().item())
    assert max(g.abs().max().item() for g in results[False][2]) > 1e-3


def test_rows_plan_counts_positions_per_sequence(monkeypatch):
    from minifc import attention
    monkeypatch.setattr(attention, "PER_SEGMENT", True)
    plan = attention.plan_attention(3, 20, torch.device("cpu"), torch.float32, tiny_gemma(),
                                    packed_cu_seqlens(ROW_LAYOUTS, 20))
    positions = torch.tensor([0, 1, 8, 9, 19, 20, 39, 45, 59])  # SEGMENTS: 1, 8, 1, 10, 20, 3, 9, 8
    assert attention.plan_rows(plan, positions)
    counts, offsets = plan.rows
    assert counts == [1, 2, 1, 1, 2, 0, 1, 1]
    assert offsets.tolist() == [0, 0, 7, 0, 9, 0, 19, 2, 7]
    with pytest.raises(ValueError, match="ascending"):  # the counts would put rows in the wrong sequences
        attention.plan_rows(plan, positions.flip(0))
    monkeypatch.setattr(attention, "PER_SEGMENT", False)  # another path: the caller selects at the end
    plan = attention.plan_attention(3, 20, torch.device("cpu"), torch.float32, tiny_gemma(),
                                    packed_cu_seqlens(ROW_LAYOUTS, 20))
    assert not attention.plan_rows(plan, positions) and plan.rows is None


# ----------------------------------------------------------------- mlp.LEAN_GATE (the MLP's activation)

@pytest.mark.parametrize("gelu", [True, False])
@pytest.mark.parametrize("needs", [(True, True), (True, False), (False, True)])
def test_gated_activation_equals_autograd_bit_for_bit(gelu, needs):
    """GatedActivation (saves gate and up, recomputes act(gate) in backward) against autograd through
    act(gate) * up: the same kernels, so values and gradients are identical, not merely close."""
    from minifc.mlp import GatedActivation, _activation
    g = torch.Generator().manual_seed(5)
    gate, up, grad = (torch.randn(7, 33, generator=g) for _ in range(3))
    results = []
    for lean in (True, False):
        a, b = gate.clone().requires_grad_(needs[0]), up.clone().requires_grad_(needs[1])
        out = GatedActivation.apply(a, b, gelu) if lean else _activation(a, gelu) * b
        out.backward(grad)
        results.append((out.detach(), a.grad, b.grad))
    for lean, plain in zip(*results):
        assert (lean is None and plain is None) or torch.equal(lean, plain)
    assert sum(t is not None for t in results[0]) == 1 + sum(needs)


@pytest.mark.parametrize("config", [tiny_gemma, tiny_llama])
def test_lean_gate_gives_the_same_lora_gradients_on_the_model(config, monkeypatch):
    from minifc import mlp
    from minifc.loss import batch_loss
    model = lora_model(config())
    batch = trained_rows_batch()
    results = {}
    for lean in (True, False):
        monkeypatch.setattr(mlp, "LEAN_GATE", lean)
        results[lean] = lora_grads(model, lambda: batch_loss(model, batch, chunk_size=5))
    assert torch.equal(results[True][0], results[False][0])
    assert all(torch.equal(a, b) for a, b in zip(results[True][1], results[False][1]))
    assert max(g.abs().max().item() for g in results[False][1]) > 1e-4
