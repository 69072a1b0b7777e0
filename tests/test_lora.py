"""minifc LoRA against peft + transformers (the oracles), fp32 on CPU, tiny random models.

minifc's model mirrors the Hugging Face module names, so apply_lora / save_adapter / load_adapter are
tested here directly on transformers' LlamaForCausalLM and Gemma3ForCausalLM; tests on minifc's own
Transformer are in test_lora_model.py.
"""

import copy
import json
import math

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from tiny_models import max_diff, randomize_b  # noqa: E402
from minifc.adapters import load_adapter, save_adapter  # noqa: E402
from minifc.lora import (  # noqa: E402
    LoRALinear, apply_lora, lora_layers, lora_parameters, lora_state_dict, mark_only_lora_trainable,
)

TOL = 1e-5
VOCAB = 64


def tiny_llama():
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2)
    return transformers.LlamaForCausalLM(cfg).eval()


def tiny_gemma3():
    cfg = transformers.Gemma3TextConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        head_dim=8, sliding_window=4,
                                        layer_types=["sliding_attention", "full_attention"])
    return transformers.Gemma3ForCausalLM(cfg).eval()


MODELS = {"llama": tiny_llama, "gemma3": tiny_gemma3}


@pytest.fixture(params=list(MODELS), scope="module")
def base(request):
    torch.manual_seed(0)
    return MODELS[request.param]()


@pytest.fixture(scope="module")
def input_ids():
    return torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(1))


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


# --------------------------------------------------------------------------- the layer

def test_initial_output_is_the_base_output(base, input_ids):
    model = copy.deepcopy(base)
    apply_lora(model, r=4, alpha=8)
    assert torch.equal(logits(model, input_ids), logits(base, input_ids))  # B = 0: exactly the base


def test_a_is_kaiming_uniform_and_b_is_zero():
    layer = LoRALinear(nn.Linear(1024, 512), r=64, alpha=16)
    a = layer.lora_A.weight
    bound = 1 / math.sqrt(1024)  # kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert a.abs().max().item() <= bound
    assert abs(a.std().item() - bound / math.sqrt(3)) < 0.02 * bound / math.sqrt(3)  # std of U(-b, b)
    assert abs(a.mean().item()) < 0.02 * bound
    assert torch.count_nonzero(layer.lora_B.weight) == 0
    assert a.dtype == layer.lora_B.weight.dtype == torch.float32


def test_forward_is_base_plus_scaled_low_rank_update():
    torch.manual_seed(0)
    linear = nn.Linear(12, 10)
    x = torch.randn(3, 12)
    expected_base = linear(x)
    layer = LoRALinear(linear, r=4, alpha=8)
    nn.init.normal_(layer.lora_B.weight)
    delta = x @ layer.lora_A.weight.T @ layer.lora_B.weight.T
    assert max_diff(layer(x), expected_base + 2.0 * delta) <= TOL  # scale = alpha / r = 8 / 4
    assert layer.weight is linear.weight and not layer.weight.requires_grad


@pytest.mark.parametrize("rslora", [False, True])
def test_scale_matches_peft(rslora):
    model = tiny_llama()
    peft_model = peft.get_peft_model(copy.deepcopy(model), peft.LoraConfig(
        r=4, lora_alpha=8, use_rslora=rslora, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    expected = peft_model.base_model.model.model.layers[0].self_attn.q_proj.scaling["default"]
    apply_lora(model, r=4, alpha=8, targets=("q",), rslora=rslora)
    assert model.model.layers[0].self_attn.q_proj.scale == expected == (4.0 if rslora else 2.0)


def test_dropout_acts_only_on_the_low_rank_path():
    torch.manual_seed(0)
    linear = nn.Linear(12, 10)
    x = torch.randn(5, 12)
    layer = LoRALinear(linear, r=4, alpha=4, dropout=0.5).train()
    assert torch.equal(layer(x), linear(x))  # B = 0: the frozen path is never dropped
    nn.init.normal_(layer.lora_B.weight)
    torch.manual_seed(7)
    out = layer(x)
    torch.manual_seed(7)
    dropped = nn.functional.dropout(x, 0.5, training=True)
    expected = linear(x) + layer.lora_B(layer.lora_A(dropped)) * layer.scale
    assert max_diff(out, expected) <= TOL
    layer.eval()
    assert max_diff(layer(x), linear(x) + layer.lora_B(layer.lora_A(x)) * layer.scale) <= TOL


def test_wrapped_layers_keep_the_model_train_or_eval_mode():
    model = tiny_llama().eval()
    apply_lora(model, dropout=0.5)
    assert not any(layer.training for layer in lora_layers(model).values())
    model.train()
    assert all(layer.training and layer.dropout.training for layer in lora_layers(model).values())


def test_bf16_base_keeps_fp32_lora_weights_and_gradients():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(16, 8).bfloat16(), r=4, alpha=8)
    nn.init.normal_(layer.lora_B.weight)
    out = layer(torch.randn(3, 16, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    for p in (layer.lora_A.weight, layer.lora_B.weight):
        assert p.dtype == p.grad.dtype == torch.float32
    assert layer.weight.grad is None


# --------------------------------------------------------------------------- targets, trainability

@pytest.mark.parametrize("targets, peft_targets", [
    (("all",), "all-linear"),
    (("q", "v"), ["q_proj", "v_proj"]),
    (("gate", "up", "down"), ["gate_proj", "up_proj", "down_proj"]),
])
def test_targets_select_the_modules_peft_selects(base, targets, peft_targets):
    model = copy.deepcopy(base)
    names = apply_lora(model, r=4, alpha=8, targets=targets)
    peft_model = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=peft_targets, task_type="CAUSAL_LM"))
    peft_names = [n.removeprefix("base_model.model.") for n, m in peft_model.named_modules()
                  if isinstance(m, peft.tuners.lora.LoraLayer)]
    assert names == peft_names
    mark_only_lora_trainable(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == peft_model.get_nb_trainable_parameters()[0]
    assert trainable == sum(p.numel() for p in lora_parameters(model))


def test_unknown_target_lists_the_valid_ones():
    valid = "valid targets are q, k, v, o, gate, up, down or all"
    with pytest.raises(ValueError, match=rf"unknown LoRA target 'qkv': {valid}"):
        apply_lora(tiny_llama(), targets=("qkv",))


def test_applying_twice_is_an_error():
    model = tiny_llama()
    apply_lora(model, targets=("q",))
    with pytest.raises(ValueError, match="match no nn.Linear"):
        apply_lora(model, targets=("q",))


def test_mark_only_lora_trainable_freezes_everything_else():
    model = tiny_llama()
    apply_lora(model, r=2, alpha=2, targets=("q", "down"))
    mark_only_lora_trainable(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == list(lora_state_dict(model))
    assert all(".lora_A." in n or ".lora_B." in n for n in trainable) and len(trainable) == 2 * 2 * 2


# --------------------------------------------------------------------------- PEFT files, both ways

@pytest.mark.parametrize("targets, rslora", [(("all",), False), (("q", "v", "down"), True)])
def test_minifc_adapter_loads_in_peft_with_the_same_logits(base, input_ids, tmp_path, targets, rslora):
    model = copy.deepcopy(base)
    apply_lora(model, r=4, alpha=8, targets=targets, rslora=rslora, dropout=0.1)
    randomize_b(model)
    model.eval()
    save_adapter(model, tmp_path / "adapter", "tiny-test-model")

    peft_model = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "adapter").eval()
    ours, theirs = logits(model, input_ids), logits(peft_model, input_ids)
    assert max_diff(ours, logits(base, input_ids)) > 1e-2
    assert max_diff(ours, theirs) <= TOL
    assert peft_model.peft_config["default"].base_model_name_or_path == "tiny-test-model"
    assert peft_model.peft_config["default"].lora_dropout == 0.1


def test_file_layout_is_what_peft_save_pretrained_writes(tmp_path):
    base = tiny_llama()
    peft_model = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    peft_model.save_pretrained(tmp_path / "peft")
    apply_lora(base, r=4, alpha=8, targets=("q", "v"))
    save_adapter(base, tmp_path / "ours")

    theirs = load_file(tmp_path / "peft/adapter_model.safetensors")
    ours = load_file(tmp_path / "ours/adapter_model.safetensors")
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in ours
    theirs_cfg = json.loads((tmp_path / "peft/adapter_config.json").read_text())
    ours_cfg = json.loads((tmp_path / "ours/adapter_config.json").read_text())
    for field, value in ours_cfg.items():
        expected = theirs_cfg[field]
        if field == "target_modules":
            value, expected = sorted(value), sorted(expected)
        assert value == expected, field


@pytest.mark.parametrize("options", [
    dict(target_modules="all-linear"),
    dict(target_modules=["k_proj", "o_proj", "up_proj"], use_rslora=True, lora_dropout=0.05),
    dict(target_modules=["q_proj", "v_proj"], layers_to_transform=[1]),
])
def test_peft_adapter_loads_in_minifc_with_the_same_logits(base, input_ids, tmp_path, options):
    torch.manual_seed(3)
    peft_model = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(
        r=4, lora_alpha=8, task_type="CAUSAL_LM", init_lora_weights=False, **options)).eval()  # random B
    peft_model.save_pretrained(tmp_path / "peft")

    model = copy.deepcopy(base)
    names = load_adapter(model, tmp_path / "peft")
    assert max_diff(logits(peft_model, input_ids), logits(base, input_ids)) > 1e-2
    assert max_diff(logits(model, input_ids), logits(peft_model, input_ids)) <= TOL
    assert len(names) == len(load_file(tmp_path / "peft/adapter_model.safetensors")) // 2

    # and back: what minifc saves from it loads in peft again (full names when layers are a subset)
    save_adapter(model, tmp_path / "again")
    again = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "again").eval()
    assert max_diff(logits(again, input_ids), logits(peft_model, input_ids)) <= TOL


def test_load_into_model_that_already_has_lora(tmp_path, input_ids):
    source = tiny_llama()
    target = copy.deepcopy(source)
    apply_lora(source, r=4, alpha=8, targets=("q", "v"))
    randomize_b(source)
    save_adapter(source, tmp_path / "a")
    apply_lora(target, r=4, alpha=8, targets=("q", "v"))
    load_adapter(target, tmp_path / "a")
    assert torch.equal(logits(target, input_ids), logits(source, input_ids))

    other = tiny_llama()
    apply_lora(other, r=2, alpha=8, targets=("q", "v"))
    with pytest.raises(ValueError, match="already has LoRA with r=2"):
        load_adapter(other, tmp_path / "a")


def test_save_replaces_an_existing_adapter_atomically(tmp_path):
    model = tiny_llama()
    apply_lora(model, r=4, alpha=8, targets=("q",))
    save_adapter(model, tmp_path / "adapter")
    randomize_b(model)
    save_adapter(model, tmp_path / "adapter")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # no temporary left behind
    saved = load_file(tmp_path / "adapter/adapter_model.safetensors")
    assert torch.equal(saved["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"],
                       model.model.layers[0].self_attn.q_proj.lora_B.weight)


# --------------------------------------------------------------------------- load errors

@pytest.fixture
def saved(tmp_path):
    model = tiny_llama()
    apply_lora(model, r=4, alpha=8, targets=("q", "v"))
    return save_adapter(model, tmp_path / "adapter")


def edit_weights(directory, edit):
    path = directory / "adapter_model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


def test_missing_key_is_named(saved):
    key = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"
    edit_weights(saved, lambda t: t.pop(key))
    with pytest.raises(ValueError, match=r"missing 1 adapter weights the model has: \['" + key.replace(".", r"\.")):
        load_adapter(tiny_llama(), saved)


def test_shape_mismatch_is_named(saved):
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    edit_weights(saved, lambda t: t.__setitem__(key, torch.zeros(3, 32)))
    with pytest.raises(ValueError, match=r"shape mismatch \(r=4 in adapter_config.json\): " + key.replace(".", r"\.")
                       + r": file \(3, 32\), model \(4, 32\)"):
        load_adapter(tiny_llama(), saved)


def test_unknown_module_is_named(saved):
    edit_weights(saved, lambda t: t.__setitem__("base_model.model.model.layers.9.mlp.up_proj.lora_A.weight",
                                                torch.zeros(4, 32)))
    with pytest.raises(ValueError, match=r"no linear layer named \['model\.layers\.9\.mlp\.up_proj'\]"):
        load_adapter(tiny_llama(), saved)


def test_unsupported_config_is_named(saved):
    path = saved / "adapter_config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(ValueError, match=r"adapter_config.json: field 'use_dora' = True \(DoRA\) is not supported"):
        load_adapter(tiny_llama(), saved)
    path.write_text("{\n  \"r\": 4,\n  oops\n}")
    with pytest.raises(ValueError, match=r"adapter_config.json: line 3: invalid JSON"):
        load_adapter(tiny_llama(), saved)


def test_adapter_of_a_multimodal_gemma3_loads_into_its_text_decoder(tmp_path):
    """peft on Gemma3ForConditionalGeneration (Gemma 3 4B+): the decoder's adapters sit under
    model.language_model.*, and target names like q_proj also catch the vision tower's layers. The
    text decoder minifc loads from the same checkpoint gives peft's text-only logits with the adapter."""
    from minifc.checkpoint import load_pretrained
    from tiny_models import gemma_config
    vision = transformers.SiglipVisionConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                             num_attention_heads=2, image_size=28, patch_size=14)
    config = transformers.Gemma3Config(text_config=gemma_config().to_dict(), vision_config=vision.to_dict(),
                                       mm_tokens_per_image=4)
    torch.manual_seed(0)
    hf = transformers.Gemma3ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, 0.2)
    hf.save_pretrained(tmp_path / "base")
    peft_model = peft.get_peft_model(hf, peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)).eval()
    peft_model.save_pretrained(tmp_path / "adapter")
    keys = load_file(tmp_path / "adapter/adapter_model.safetensors")
    vision_keys = [k for k in keys if "vision_tower" in k]
    assert vision_keys and any(".language_model." in k for k in keys)

    model = load_pretrained(tmp_path / "base")
    with pytest.warns(UserWarning, match=f"{len(vision_keys)} adapter weights of the vision tower"):
        names = load_adapter(model, tmp_path / "adapter")
    assert len(names) == 3 * config.text_config.num_hidden_layers
    ids = torch.randint(1, 100, (2, 24), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
        assert max_diff(model(ids), expected) <= TOL
        assert max_diff(load_pretrained(tmp_path / "base")(ids), expected) > 1e-2  # the adapter matters
