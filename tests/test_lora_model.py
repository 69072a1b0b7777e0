"""LoRA and the loss on minifc's own Transformer, with peft + transformers as the oracles (fp32, CPU).

A tiny random Hugging Face model is saved with save_pretrained and loaded by minifc's load_pretrained,
so both sides hold the same weights; adapters then travel in both directions through the PEFT files.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

import tiny_models  # noqa: E402
from tiny_models import max_diff, randomize_b  # noqa: E402
from minifc.checkpoint import load_pretrained  # noqa: E402
from minifc.adapters import load_adapter, save_adapter  # noqa: E402
from minifc.lora import apply_lora, lora_layers, mark_only_lora_trainable  # noqa: E402
from minifc.loss import trained_token_loss  # noqa: E402

TOL = 1e-5
VOCAB = tiny_models.VOCAB


CONFIGS = {"llama": tiny_models.llama_config, "gemma3": tiny_models.gemma_config,
           # real widths, 2 layers; qwen2.5's q/k/v biases stay in the base layer under LoRA
           "qwen3": lambda: tiny_models.qwen_config("qwen3-0.6b"),
           "qwen2.5": lambda: tiny_models.qwen_config("qwen2.5-0.5b", tie_word_embeddings=False),
           "gemma4": tiny_models.gemma4_config, "gemma4_k_eq_v": tiny_models.gemma4_31b_like_config}


@pytest.fixture(params=list(CONFIGS), scope="module")
def pair(request, tmp_path_factory):
    """(HF model with every weight random, directory it was saved to); see tests/tiny_models.py."""
    hf = tiny_models.hf_model(CONFIGS[request.param]())
    return hf, tiny_models.save(hf, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def input_ids():
    return torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(1))


def hf_logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def our_logits(model, ids):
    with torch.no_grad():
        return model(ids)


def test_base_models_agree(pair, input_ids):
    hf, directory = pair
    assert max_diff(our_logits(load_pretrained(directory), input_ids), hf_logits(hf, input_ids)) <= TOL


def test_all_targets_are_peft_all_linear(pair):
    """--lora-targets all wraps the layers peft's "all-linear" selects on the transformers model (on
    Gemma 4's E models: also the per-layer-embedding projections; on shared layers: no k/v)."""
    hf, directory = pair
    peft_model = peft.get_peft_model(copy.deepcopy(hf), peft.LoraConfig(r=4, target_modules="all-linear"))
    expected = sorted(name.removeprefix("base_model.model.") for name, module in peft_model.named_modules()
                      if isinstance(module, peft.tuners.lora.LoraLayer))
    assert sorted(apply_lora(load_pretrained(directory), r=4, alpha=8, targets=("all",))) == expected


def test_peft_adapter_loads_into_minifc_model(pair, input_ids, tmp_path):
    hf, directory = pair
    torch.manual_seed(3)
    peft_model = peft.get_peft_model(copy.deepcopy(hf), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules="all-linear", use_rslora=True, task_type="CAUSAL_LM",
        init_lora_weights=False)).eval()  # random A and B
    peft_model.save_pretrained(tmp_path / "peft")

    model = load_pretrained(directory)
    load_adapter(model, tmp_path / "peft")
    # minifc's default targets are peft's "all-linear": q, k, v, o, gate, up, down of every block (and on
    # Gemma 4 fewer on KV-shared layers, more for per-layer embeddings: test_all_targets_are_peft_all_linear)
    assert set(apply_lora(load_pretrained(directory), r=4, alpha=8)) == set(lora_layers(model))
    if hf.config.model_type != "gemma4_text":
        assert len(lora_layers(model)) == 7 * len(hf.model.layers)
    expected = hf_logits(peft_model, input_ids)
    assert max_diff(expected, hf_logits(hf, input_ids)) > 1e-2  # the adapter does something
    assert max_diff(our_logits(model, input_ids), expected) <= TOL


def test_minifc_adapter_loads_into_peft(pair, input_ids, tmp_path):
    hf, directory = pair
    model = load_pretrained(directory)
    apply_lora(model, r=4, alpha=16, targets=("q", "k", "v", "o", "down"))
    randomize_b(model)
    save_adapter(model, tmp_path / "ours", str(directory))

    peft_model = peft.PeftModel.from_pretrained(copy.deepcopy(hf), tmp_path / "ours").eval()
    ours = our_logits(model, input_ids)
    assert max_diff(ours, hf_logits(hf, input_ids)) > 1e-2
    assert max_diff(ours, hf_logits(peft_model, input_ids)) <= TOL


def test_trained_token_loss_on_the_model_matches_full_logits(pair, input_ids):
    """Through model.hidden_states + model.output (tied lm_head on Gemma): loss and LoRA grads."""
    _, directory = pair
    model = load_pretrained(directory).train()
    apply_lora(model, r=4, alpha=8)
    randomize_b(model)  # so that A gets a gradient too
    mark_only_lora_trainable(model)
    targets = input_ids.roll(-1, dims=1)
    targets[:, :4] = -100
    targets[:, -1] = -100

    loss = trained_token_loss(model.hidden_states(input_ids), targets, model.output, chunk_size=3)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    ref = F.cross_entropy(model(input_ids).flatten(0, 1), targets.flatten(), ignore_index=-100)
    ref.backward()
    assert abs(loss.item() - ref.item()) <= TOL
    assert max(max_diff(g, p.grad) for g, p in zip(grads, (p for p in model.parameters() if p.requires_grad))) <= TOL
