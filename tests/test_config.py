"""ModelConfig.from_hf key names, the registry's numbers, and --model resolution."""

import json

import pytest
import torch

from minifc.config import MODELS, ModelConfig, resolve_model_name
from minifc.model import Transformer


def config_for(short_name: str) -> ModelConfig:
    """The full-size architecture of a registry entry, offline (no download)."""
    return ModelConfig.from_hf(MODELS[short_name].hf_config, source=f"registry entry {short_name!r}")

# Parameter counts the hub shows for these checkpoints (safetensors metadata on each model page):
# an independent check that the registry's architecture numbers are the real ones.
PUBLISHED_PARAMETERS = {
    "gemma-3-270m": 268_098_176,
    "functiongemma-270m": 268_098_176,
    "gemma-3-1b": 999_885_952,
    "llama-3.2-1b": 1_235_814_400,
    "llama-3.2-3b": 3_212_749_824,
    "llama-3.1-8b": 8_030_261_248,
    "qwen3-0.6b": 751_632_384,
    "qwen3-1.7b": 2_031_739_904,
    "qwen3-4b": 4_022_468_096,
    "qwen3-8b": 8_190_735_360,
    "qwen3-14b": 14_768_307_200,
    "qwen3-32b": 32_762_123_264,
    "qwen3-4b-2507": 4_022_468_096,
    "qwen2.5-0.5b": 494_032_768,
    "qwen2.5-1.5b": 1_543_714_304,
    "qwen2.5-3b": 3_085_938_688,
    "qwen2.5-7b": 7_615_616_512,
}
# Checkpoints whose files also store the tied lm_head (a copy of the embedding), counted twice by the hub.
STORED_TIED_HEAD = {"qwen3-0.6b", "qwen3-1.7b"}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_registry_sizes_match_the_published_checkpoints(name):
    with torch.device("meta"):  # no memory: shapes only
        model = Transformer(config_for(name))
    count = sum(p.numel() for p in model.parameters())
    if name in STORED_TIED_HEAD:
        assert model.config.tie_word_embeddings
        count += model.lm_head.weight.numel()
    assert count == PUBLISHED_PARAMETERS[name]


def test_registry_entries():
    formats = {name: info.chat_format for name, info in MODELS.items()}
    assert formats == {"functiongemma-270m": "functiongemma", "gemma-3-270m": "gemma3", "gemma-3-1b": "gemma3",
                       "gemma-3-4b": "gemma3", "gemma-3-12b": "gemma3", "gemma-3-27b": "gemma3",
                       "gemma-4-e2b": "gemma4", "gemma-4-e4b": "gemma4", "gemma-4-31b": "gemma4",
                       "llama-3.2-1b": "llama3.2", "llama-3.2-3b": "llama3.2", "llama-3.1-8b": "llama3.1",
                       **dict.fromkeys(["qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b",
                                        "qwen3-32b"], "qwen3"), "qwen3-4b-2507": "qwen3-2507",
                       **dict.fromkeys(["qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b"], "qwen2.5")}
    c = config_for("gemma-3-27b")  # the multimodal ones: nested text_config, linear x8 on global layers
    assert (c.head_dim, c.attention_scale, c.sliding_window, c.vocab_size) == (128, 168 ** -0.5, 1024, 262_208)
    assert c.rope_parameters["full_attention"] == {"rope_type": "linear", "rope_theta": 1e6, "factor": 8.0}
    assert c.rope_parameters["sliding_attention"] == {"rope_type": "default", "rope_theta": 1e4}
    assert c.layer_types.count("full_attention") == 10  # every 6th of 62
    assert not config_for("llama-3.1-8b").tie_word_embeddings and config_for("llama-3.2-3b").tie_word_embeddings
    ties = {name: config_for(name).tie_word_embeddings for name in MODELS if name.startswith("qwen")}
    assert {name for name, tied in ties.items() if not tied} == {"qwen3-8b", "qwen3-14b", "qwen3-32b", "qwen2.5-7b"}
    c = config_for("qwen3-0.6b")  # explicit head_dim: 16 heads x 128 = 2048, twice hidden_size
    assert (c.head_dim, c.hidden_size, c.qk_norm, c.qkv_bias, c.attention_bias, c.norm_plus_one) == (
        128, 1024, True, False, False, False)
    assert c.rope_parameters == {"full_attention": {"rope_type": "default", "rope_theta": 1e6}}
    assert config_for("qwen3-4b-2507").rope_parameters["full_attention"]["rope_theta"] == 5e6
    c = config_for("qwen2.5-0.5b")  # head_dim = 896 / 14; bias on q, k, v only
    assert (c.head_dim, c.qk_norm, c.qkv_bias, c.attention_bias, c.vocab_size) == (64, False, True, False, 151_936)
    assert config_for("qwen2.5-7b").vocab_size == 152_064


GEMMA4 = {"gemma-4-e2b": "gemma-4-E2B-it", "gemma-4-e4b": "gemma-4-E4B-it", "gemma-4-31b": "gemma-4-31B-it"}


@pytest.mark.parametrize("name", sorted(GEMMA4))
def test_gemma4_registry_equals_the_published_configs(name, reference):
    published = json.loads((reference / "configs" / GEMMA4[name] / "config.json").read_text())
    assert MODELS[name].hub_id == f"google/{GEMMA4[name]}"
    assert config_for(name) == ModelConfig.from_hf(published)


@pytest.mark.parametrize("name", sorted(GEMMA4))
def test_gemma4_full_size_shapes_equal_transformers(name):
    """Every tensor name and shape of the full-size decoder equals transformers' Gemma4ForCausalLM built
    from the registry's config (both on the meta device: no memory)."""
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig
    hf_config = {k: v for k, v in MODELS[name].hf_config["text_config"].items() if k != "model_type"}
    with torch.device("meta"):
        ref = Gemma4ForCausalLM(Gemma4TextConfig(**hf_config))
        ours = Transformer(config_for(name))
    shapes = lambda model: {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes(ours) == shapes(ref)
    c = config_for(name)
    shared = [i for i in range(c.num_hidden_layers) if c.kv_source(i) != i]
    assert len(shared) == {"gemma-4-e2b": 20, "gemma-4-e4b": 18, "gemma-4-31b": 0}[name]


def test_gemma4_moe_is_refused():
    hf = {"model_type": "gemma4", "text_config": {"model_type": "gemma4_text", "enable_moe_block": True,
                                                  "num_experts": 128, "top_k_experts": 8}}
    with pytest.raises(ValueError) as error:
        ModelConfig.from_hf(hf, source="x.json")
    assert str(error.value) == (
        "x.json: Gemma 4 with mixture-of-experts blocks (enable_moe_block, num_experts=128: gemma-4-26B-A4B) is "
        "not supported yet; the dense Gemma 4 models are (gemma-4-e2b, gemma-4-e4b, gemma-4-31b)")


def test_gemma4_kv_sharing_needs_a_layer_of_each_type_to_share():
    hf = dict(MODELS["gemma-4-e2b"].hf_config["text_config"], num_hidden_layers=5,
              layer_types=["full_attention", "sliding_attention", "sliding_attention", "sliding_attention",
                           "full_attention"], num_kv_shared_layers=4)
    with pytest.raises(ValueError, match=r"x.json: num_kv_shared_layers=4: each of the last 4 layers needs an "
                                         r"earlier layer of its type"):
        ModelConfig.from_hf(hf, source="x.json")


def test_from_hf_reads_newer_transformers_key_names():
    from transformers import Gemma3TextConfig
    hf = Gemma3TextConfig(num_hidden_layers=4, layer_types=["full_attention", "sliding_attention"] * 2,
                          rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0,
                                                              "rope_theta": 5e5},
                                           "sliding_attention": {"rope_type": "default", "rope_theta": 7e3}})
    config = ModelConfig.from_hf(hf.to_dict())
    assert config.layer_types == ("full_attention", "sliding_attention") * 2
    assert config.rope_parameters == {"full_attention": {"rope_type": "linear", "rope_theta": 5e5, "factor": 4.0},
                                      "sliding_attention": {"rope_type": "default", "rope_theta": 7e3}}


@pytest.mark.parametrize("name", ["qwen3-0.6b", "qwen2.5-0.5b"])
def test_qwen_from_hf_reads_hub_and_newer_key_names_alike(name):
    # the hub's config.json (rope_theta, rope_scaling null, use_sliding_window false, sliding_window and
    # max_window_layers present but unused) and what transformers writes from it (rope_parameters, layer_types)
    from transformers import AutoConfig
    hub = dict(MODELS[name].hf_config, sliding_window=32768, max_window_layers=21)
    newer = AutoConfig.for_model(**hub).to_dict()
    assert "rope_parameters" in newer and "layer_types" in newer
    assert ModelConfig.from_hf(newer) == ModelConfig.from_hf(hub)
    # keys a qwen2 config may carry that Qwen2Attention / Qwen2MLP never read
    if name.startswith("qwen2"):
        ignored = ModelConfig.from_hf(dict(hub, attention_bias=True, mlp_bias=True))
        assert (ignored.attention_bias, ignored.mlp_bias, ignored.qkv_bias) == (False, False, True)


@pytest.mark.parametrize("model_type", ["qwen3", "qwen2"])
def test_qwen_defaults_follow_transformers(model_type):
    # a config.json that leaves keys out gets transformers' Qwen3Config / Qwen2Config defaults
    from transformers import AutoConfig
    sparse = dict(model_type=model_type, hidden_size=512, num_hidden_layers=2)
    hf = AutoConfig.for_model(**sparse)
    config = ModelConfig.from_hf(sparse)
    assert config.head_dim == getattr(hf, "head_dim", hf.hidden_size // hf.num_attention_heads)
    assert config.head_dim == (128 if model_type == "qwen3" else 16)
    assert (config.vocab_size, config.intermediate_size, config.num_key_value_heads, config.rms_norm_eps,
            config.max_position_embeddings, config.tie_word_embeddings) == (
        hf.vocab_size, hf.intermediate_size, hf.num_key_value_heads, hf.rms_norm_eps,
        hf.max_position_embeddings, hf.tie_word_embeddings)
    assert config.rope_parameters["full_attention"]["rope_theta"] == hf.rope_parameters["rope_theta"]


@pytest.mark.parametrize("keys", [dict(use_sliding_window=True),
                                  dict(layer_types=["full_attention", "sliding_attention"] * 14)])
def test_qwen_sliding_window_is_refused(keys):
    hf = dict(MODELS["qwen3-0.6b"].hf_config, **keys)
    with pytest.raises(ValueError) as error:
        ModelConfig.from_hf(hf, source="x/config.json")
    assert str(error.value) == (
        "x/config.json: sliding-window attention (use_sliding_window=true or 'sliding_attention' in layer_types) "
        "is not supported for qwen3; released Qwen checkpoints have use_sliding_window=false: set it to false "
        "and layer_types to full_attention for all 28 layers")


def test_unsupported_rope_type_error():
    hf = dict(MODELS["llama-3.2-1b"].hf_config, rope_scaling={"rope_type": "yarn", "factor": 4.0})
    with pytest.raises(ValueError, match=r"x.json: rope_type 'yarn' is not supported \(supported: default, "
                                         r"linear, llama3, proportional\)"):
        ModelConfig.from_hf(hf, source="x.json")


def test_resolve_model_name(tmp_path):
    assert resolve_model_name("functiongemma-270m") == ("google/functiongemma-270m-it", "functiongemma")
    assert resolve_model_name("llama-3.1-8b") == ("meta-llama/Llama-3.1-8B-Instruct", "llama3.1")
    assert resolve_model_name("google/gemma-3-1b-it") == ("google/gemma-3-1b-it", "gemma3")
    assert resolve_model_name("qwen3-4b-2507") == ("Qwen/Qwen3-4B-Instruct-2507", "qwen3-2507")
    assert resolve_model_name("Qwen/Qwen2.5-7B-Instruct") == ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5")
    assert resolve_model_name("someone/their-model") == ("someone/their-model", None)
    assert resolve_model_name(str(tmp_path)) == (str(tmp_path), None)
    with pytest.raises(ValueError) as error:
        resolve_model_name("gemma3-1b")
    assert str(error.value) == (
        "--model 'gemma3-1b' is neither a known short name, an existing directory, nor a hub id like "
        "'org/name'. Known short names: functiongemma-270m, gemma-3-270m, gemma-3-1b, gemma-3-4b, "
        "gemma-3-12b, gemma-3-27b, gemma-4-e2b, gemma-4-e4b, gemma-4-31b, llama-3.2-1b, llama-3.2-3b, "
        "llama-3.1-8b, qwen3-0.6b, qwen3-1.7b, qwen3-4b, qwen3-8b, qwen3-14b, qwen3-32b, qwen3-4b-2507, "
        "qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-3b, qwen2.5-7b")
