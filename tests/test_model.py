"""The decoder against transformers (the oracle): logits, KV-cache decoding, packing, checkpointing.

Gemma 4 twice: the E models' decoder (KV sharing, double-wide MLPs, per-layer embeddings) and the 31B's
attention (global layers with fewer K/V heads and values from k_proj), small in the shared tests and at
the real widths (cut in depth and vocabulary) in the slow ones."""

import pytest
import torch

from minifc import attention
from minifc.checkpoint import load_pretrained
from safetensors.torch import load_file, save_file

from minifc.config import ModelConfig
from minifc.model import Transformer
from tiny_models import (QWEN_VOCAB, VOCAB, gemma4_31b_like_config, gemma4_config, gemma_config, hf_model,
                         llama_config, qwen_config, qwen_hub_config, save, write_hub_style_config)

TOL = 1e-4


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    ref = hf_model(gemma_config())
    return ref, load_pretrained(save(ref, tmp_path_factory.mktemp("gemma")))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    ref = hf_model(llama_config())
    return ref, load_pretrained(save(ref, tmp_path_factory.mktemp("llama")))


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):  # real widths of qwen3-0.6b (head_dim 128 != 1024 / 16), 2 layers, tied
    ref = hf_model(qwen_config("qwen3-0.6b"))
    return ref, load_pretrained(save(ref, tmp_path_factory.mktemp("qwen3")))


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory):  # real widths of qwen2.5-0.5b, 2 layers, tied
    ref = hf_model(qwen_config("qwen2.5-0.5b"))
    return ref, load_pretrained(save(ref, tmp_path_factory.mktemp("qwen2")))


@pytest.fixture(scope="module")
def gemma4(tmp_path_factory):
    ref = hf_model(gemma4_config())
    return ref, load_pretrained(save(ref, tmp_path_factory.mktemp("gemma4")))


@pytest.fixture(scope="module")
def gemma4_k_eq_v(tmp_path_factory):
    ref = hf_model(gemma4_31b_like_config())
    return ref, load_pretrained(save(ref, tmp_path_factory.mktemp("gemma4_k_eq_v")))


@pytest.fixture(params=["gemma", "llama", "qwen3", "qwen2.5", "gemma4", "gemma4_k_eq_v"])
def pair(request):
    return request.getfixturevalue({"qwen2.5": "qwen2"}.get(request.param, request.param))


def max_diff(a, b):
    return (a - b).abs().max().item()


@torch.no_grad()
def test_gemma_logits_match_transformers(gemma):
    ref, ours = gemma
    assert {"sliding_attention", "full_attention"} <= set(ours.config.layer_types)
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(1))  # 6x the window
    expected = ref(ids).logits
    assert expected.abs().max() > 1.0  # logits are not trivially small
    assert max_diff(ours(ids), expected) <= TOL


@pytest.mark.parametrize("which", ["gemma4", "gemma4_k_eq_v"])
@torch.no_grad()
def test_gemma4_logits_match_transformers(which, request):
    ref, ours = request.getfixturevalue(which)
    config = ours.config
    assert config.layer_types == ("sliding_attention", "full_attention", "sliding_attention",
                                  "sliding_attention", "full_attention")
    if which == "gemma4":  # the last two layers use the K/V of the last earlier layer of their type
        assert [config.kv_source(i) for i in range(5)] == [0, 1, 2, 2, 1]
        assert ours.model.layers[3].self_attn.k_proj is None and ours.model.layers[4].mlp.up_proj.out_features == 192
    else:  # global layers: 1 K/V head of 32 dims, no v_proj
        assert ours.model.layers[1].self_attn.v_proj is None
        assert ours.model.layers[1].self_attn.k_proj.out_features == 32
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(1))  # 6x the window
    got = ours(ids)
    # transformers' forward without a cache (training), with one (inference), and in train mode: same logits
    for expected in (ref(ids, use_cache=False).logits, ref(ids).logits, ref.train()(ids, use_cache=False).logits):
        assert expected.abs().max() > 1.0
        assert max_diff(got, expected) <= TOL
    ref.eval()


def test_gemma4_shared_layers_train_the_keys_they_reuse(gemma4):
    """Training semantics of KV sharing: the loss of a shared layer reaches the k/v projections of the
    layer it shares with, exactly as in transformers (same gradients, no detach, no copy)."""
    ref, ours = gemma4
    ids = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(9))
    grads = []
    for model, logits in ((ref, lambda: ref(ids, use_cache=False).logits), (ours, lambda: ours(ids))):
        model.zero_grad(set_to_none=True)
        logits().float().logsumexp(-1).mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        model.zero_grad(set_to_none=True)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        # transformers' embeddings have padding_idx=0: no gradient for the pad token's row (minifc's, as
        # for Gemma 3, have no such rule; only --full trains embeddings)
        rows = slice(1, None) if "embed_tokens" in name else slice(None)
        assert max_diff(grads[0][name][rows], grads[1][name][rows]) <= 1e-5, name
    # and part of layer 1's gradient comes through layer 4 (full), which attends with its keys and values:
    # with layer 4's attention output zeroed (Gemma 4's norms multiply by their weight) it changes
    norm = ours.model.layers[4].post_attention_layernorm.weight
    saved = norm.detach().clone()
    try:
        with torch.no_grad():
            norm.zero_()
        ours(ids).float().logsumexp(-1).mean().backward()
        changed = max_diff(ours.model.layers[1].self_attn.k_proj.weight.grad,
                           grads[1]["model.layers.1.self_attn.k_proj.weight"])
        assert changed > 1e-3 * grads[1]["model.layers.1.self_attn.k_proj.weight"].abs().max()
    finally:
        with torch.no_grad():
            norm.copy_(saved)
        ours.zero_grad(set_to_none=True)


@torch.no_grad()
def test_gemma4_cached_decoding_matches_transformers_cache(gemma4):
    """Decoding with the KV cache, step by step, against transformers' own cache (its shared layers read
    the K/V their source layer returns from the cache, past the sliding window of 4 too)."""
    ref, ours = gemma4
    ids = torch.randint(0, VOCAB, (2, 20), generator=torch.Generator().manual_seed(10))
    out = ref(ids[:, :6], use_cache=True)
    expected = [out.logits]
    for t in range(6, 20):
        out = ref(ids[:, t:t + 1], cache=out.cache, use_cache=True)
        expected.append(out.logits)
    cache = ours.new_kv_cache(2, 20)
    got = [ours(ids[:, :6], kv_cache=cache)] + [ours(ids[:, t:t + 1], kv_cache=cache) for t in range(6, 20)]
    assert max_diff(torch.cat(got, dim=1), torch.cat(expected, dim=1)) <= TOL


# The real widths of Gemma 4 E2B (hidden, heads, head sizes 256/512, intermediate 6144 and 12288 on shared
# layers, per-layer embeddings 256) and of 31B's attention (hidden 5376, 32 heads, 16 K/V heads on sliding
# layers, 4 on global ones, values from k_proj), vocabulary cut to 4096, depth to 5 (E2B) / 2 layers (31B).
REAL_E2B = dict(vocab_size=4096, vocab_size_per_layer_input=4096, hidden_size=1536, intermediate_size=6144,
                num_attention_heads=8, num_key_value_heads=1, head_dim=256, global_head_dim=512,
                hidden_size_per_layer_input=256, sliding_window=16)
REAL_31B_ATTENTION = dict(vocab_size=4096, hidden_size=5376, intermediate_size=64, num_attention_heads=32,
                          num_key_value_heads=16, num_global_key_value_heads=4, head_dim=256, global_head_dim=512,
                          num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"],
                          sliding_window=16)


@pytest.mark.slow
@pytest.mark.parametrize("config", [gemma4_config(**REAL_E2B), gemma4_31b_like_config(**REAL_31B_ATTENTION)],
                         ids=["e2b", "31b_attention"])
@torch.no_grad()
def test_gemma4_logits_match_transformers_at_real_widths(config):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # runs beside other jobs; ~1 GB of weights, shared by both models
    try:
        ref = hf_model(config, skip_init=True)
        with torch.device("meta"):
            ours = Transformer(ModelConfig.from_hf(ref.config.to_dict()))
        ours.load_state_dict(ref.state_dict(), assign=True)  # the same tensors: no second copy
        ours.tie_weights()
        ids = torch.randint(0, 4096, (2, 40), generator=torch.Generator().manual_seed(1))  # past the window
        expected = ref(ids, use_cache=False).logits
        assert expected.abs().max() > 1.0
        assert max_diff(ours.eval()(ids), expected) <= TOL
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("tied", [True, False])
@torch.no_grad()
def test_llama_logits_match_transformers(tmp_path, tied):
    ref = hf_model(llama_config(tie_word_embeddings=tied))
    ours = load_pretrained(save(ref, tmp_path))
    assert (ours.lm_head.weight is ours.model.embed_tokens.weight) == tied
    ids = torch.randint(0, VOCAB, (2, 80), generator=torch.Generator().manual_seed(2))  # past 64
    expected = ref(ids).logits
    assert expected.abs().max() > 1.0
    assert max_diff(ours(ids), expected) <= TOL


# Each Qwen model tied and untied, single-file and sharded, read from the keys transformers writes now
# (rope_parameters, layer_types) and from the hub's (rope_theta, rope_scaling null, use_sliding_window false).
QWEN_CHECKPOINTS = [("qwen3-0.6b", True, "single", "hub"), ("qwen3-0.6b", False, "sharded", "newer"),
                    ("qwen2.5-0.5b", True, "sharded", "newer"), ("qwen2.5-0.5b", False, "single", "hub")]


@pytest.mark.parametrize("name,tied,files,keys", QWEN_CHECKPOINTS)
@torch.no_grad()
def test_qwen_logits_match_transformers(tmp_path, name, tied, files, keys):
    ref = hf_model(qwen_config(name, tie_word_embeddings=tied))
    save(ref, tmp_path, max_shard_size="20MB" if files == "sharded" else "10GB")
    assert (tmp_path / "model.safetensors.index.json").is_file() == (files == "sharded")
    if keys == "hub":
        write_hub_style_config(tmp_path, qwen_hub_config(name, tie_word_embeddings=tied))
    if tied and files == "single":
        # Qwen3-0.6B/1.7B files also store the tied lm_head.weight (a copy of the embedding): read once
        state = load_file(tmp_path / "model.safetensors")
        save_file({**state, "lm_head.weight": state["model.embed_tokens.weight"].clone()},
                  tmp_path / "model.safetensors", metadata={"format": "pt"})
    ours = load_pretrained(str(tmp_path))
    assert (ours.lm_head.weight is ours.model.embed_tokens.weight) == tied
    assert ours.config.rope_parameters == {"full_attention": {"rope_type": "default", "rope_theta": 1e6}}
    ids = torch.randint(0, QWEN_VOCAB, (2, 40), generator=torch.Generator().manual_seed(2))
    expected = ref(ids).logits
    assert expected.abs().max() > 1.0
    assert max_diff(ours(ids), expected) <= TOL


@torch.no_grad()
def test_softcapping_fields_are_honoured(tmp_path):
    # Gemma 3 checkpoints leave both null; a config that sets them must still match transformers
    # (which applies the final-logit cap and, for Gemma 3, ignores the attention one).
    ref = hf_model(gemma_config(final_logit_softcapping=3.0, attn_logit_softcapping=2.0))
    ours = load_pretrained(save(ref, tmp_path))
    ids = torch.randint(0, VOCAB, (1, 16), generator=torch.Generator().manual_seed(3))
    expected = ref(ids).logits
    assert expected.abs().max() <= 3.0
    assert max_diff(ours(ids), expected) <= TOL


def test_state_dict_keys_equal_transformers(pair):
    ref, ours = pair
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    for name, tensor in ref.state_dict().items():
        assert ours.state_dict()[name].shape == tensor.shape, name


@torch.no_grad()
def test_kv_cache_decoding_matches_full_forward(pair):
    _, ours = pair
    ids = torch.randint(0, VOCAB, (2, 20), generator=torch.Generator().manual_seed(4))
    full = ours(ids)
    cache = ours.new_kv_cache(batch_size=2, max_len=24)
    steps = [ours(ids[:, :6], kv_cache=cache)]  # prefill
    for t in range(6, 20):  # then one token at a time (past the sliding window of 4)
        steps.append(ours(ids[:, t:t + 1], kv_cache=cache))
    assert cache.length == 20
    assert max_diff(torch.cat(steps, dim=1), full) <= TOL
    # KV-shared layers (Gemma 4) keep no keys or values of their own: they read their source's slots
    config = ours.config
    assert [k is None for k in cache.k] == [config.kv_source(i) != i for i in range(config.num_hidden_layers)]


@torch.no_grad()
def test_left_padded_batch_decoding_matches_each_prompt_alone(pair):
    _, ours = pair
    gen = torch.Generator().manual_seed(5)
    long, short = torch.randint(0, VOCAB, (14,), generator=gen), torch.randint(0, VOCAB, (9,), generator=gen)
    pad = 5
    prompts = torch.stack([long, torch.cat([torch.zeros(pad, dtype=torch.long), short])])
    mask = torch.ones(2, 14, dtype=torch.bool)
    mask[1, :pad] = False
    cont = torch.randint(0, VOCAB, (2, 6), generator=gen)  # tokens fed during decoding

    cache = ours.new_kv_cache(2, 20)
    outs = [ours(prompts, attention_mask=mask, kv_cache=cache)[:, -1:]]
    for t in range(6):
        outs.append(ours(cont[:, t:t + 1], kv_cache=cache))
    got = torch.cat(outs, dim=1)  # logits after the prompt and after each decoded token

    for row, prompt in enumerate([long, short]):
        alone = ours(torch.cat([prompt, cont[row]])[None])[0, len(prompt) - 1:]
        assert max_diff(got[row], alone) <= TOL, row


@torch.no_grad()
def test_left_padded_full_forward_matches_transformers(pair):
    ref, ours = pair
    ids = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(6))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[0, :3] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    expected = ref(ids, attention_mask=mask, position_ids=positions).logits
    got = ours(ids, attention_mask=mask.bool())
    assert max_diff(got[0, 3:], expected[0, 3:]) <= TOL and max_diff(got[1], expected[1]) <= TOL


def packed_inputs(lengths, rows=2):
    """`rows` packed rows, each holding sequences of `lengths`; returns pieces to compare against."""
    gen = torch.Generator().manual_seed(7)
    seqs = [[torch.randint(0, VOCAB, (n,), generator=gen) for n in lengths] for _ in range(rows)]
    ids = torch.stack([torch.cat(row) for row in seqs])
    positions = torch.stack([torch.cat([torch.arange(n) for n in lengths])] * rows)
    bounds = torch.tensor([0] + lengths).cumsum(0)
    total = sum(lengths)
    cu = torch.cat([bounds[:-1] + r * total for r in range(rows)] + [torch.tensor([rows * total])])
    return ids, positions, cu.to(torch.int32), seqs


def check_packed(model, device, dtype, tol):
    lengths = [5, 11, 8]  # 11 > window, and the sliding window must not leak across sequences
    ids, positions, cu, seqs = packed_inputs(lengths)
    ids, positions, cu = ids.to(device), positions.to(device), cu.to(device)
    packed = model(ids, position_ids=positions, cu_seqlens=cu)
    assert max_diff(model(ids, cu_seqlens=cu), packed) == 0  # default positions restart per sequence
    for row, row_seqs in enumerate(seqs):
        start = 0
        for seq in row_seqs:
            alone = model(seq[None].to(device))[0]
            assert max_diff(packed[row, start:start + len(seq)].float(), alone.float()) <= tol
            start += len(seq)


@pytest.mark.parametrize("per_segment", [True, False])  # SDPA per sequence, or one block-diagonal mask
@torch.no_grad()
def test_packed_batch_matches_each_example_alone(pair, per_segment, monkeypatch):
    _, ours = pair
    monkeypatch.setattr(attention, "PER_SEGMENT", per_segment)
    check_packed(ours, "cpu", torch.float32, TOL)


@pytest.mark.parametrize("per_segment", [True, False])
def test_packing_rejects_a_sequence_spanning_two_rows(gemma, per_segment, monkeypatch):
    _, ours = gemma
    monkeypatch.setattr(attention, "PER_SEGMENT", per_segment)
    ids = torch.zeros(2, 6, dtype=torch.long)
    with pytest.raises(ValueError, match="continues from one row into the next"):
        ours(ids, cu_seqlens=torch.tensor([0, 4, 12], dtype=torch.int32))


def test_gradient_checkpointing_gives_the_same_gradients(pair):
    _, ours = pair
    ids = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(8))
    grads = []
    for flag in (False, True):
        ours.zero_grad(set_to_none=True)
        ours.gradient_checkpointing = flag
        ours(ids).float().logsumexp(-1).mean().backward()
        grads.append({n: p.grad.clone() for n, p in ours.named_parameters()})
    ours.gradient_checkpointing = False
    ours.zero_grad(set_to_none=True)
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5), name


@pytest.mark.skipif(not torch.cuda.is_available() or attention.varlen_attn() is None,
                    reason="varlen flash attention needs CUDA")
def test_varlen_flash_matches_sdpa_on_cuda(pair, monkeypatch):
    _, ours = pair
    model = ours.to("cuda", torch.bfloat16)
    try:
        with torch.no_grad():
            ids, positions, cu, _ = packed_inputs([5, 11, 8])
            ids, positions, cu = ids.cuda(), positions.cuda(), cu.cuda()
            assert attention.plan_attention(2, 24, ids.device, torch.bfloat16, model.config, cu).varlen
            flash = model(ids, position_ids=positions, cu_seqlens=cu).float()
            check_packed(model, "cuda", torch.bfloat16, 0.25)  # bf16 rounding; a wrong mask is off by >1
            monkeypatch.setattr(attention, "FLASH_VARLEN", False)
            sdpa = model(ids, position_ids=positions, cu_seqlens=cu).float()
        assert max_diff(flash, sdpa) <= 0.25
        # and the backward pass runs through the flash kernel (GQA, sliding window)
        monkeypatch.setattr(attention, "FLASH_VARLEN", True)
        model(ids, position_ids=positions, cu_seqlens=cu).float().mean().backward()
        assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())
    finally:
        model.zero_grad(set_to_none=True)
        model.to("cpu", torch.float32)
