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
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_registry_sizes_match_the_published_checkpoints(name):
    with torch.device("meta"):  # no memory: shapes only
        model = Transformer(config_for(name))
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMETERS[name]


def test_registry_entries():
    formats = {name: info.chat_format for name, info in MODELS.items()}
    assert formats == {"functiongemma-270m": "functiongemma", "gemma-3-270m": "gemma3", "gemma-3-1b": "gemma3",
                       "gemma-3-4b": "gemma3", "gemma-3-12b": "gemma3", "gemma-3-27b": "gemma3",
                       "gemma-4-e2b": "gemma4", "gemma-4-e4b": "gemma4", "gemma-4-31b": "gemma4",
                       "llama-3.2-1b": "llama3.2", "llama-3.2-3b": "llama3.2", "llama-3.1-8b": "llama3.1"}
    c = config_for("gemma-3-27b")  # the multimodal ones: nested text_config, linear x8 on global layers
    assert (c.head_dim, c.attention_scale, c.sliding_window, c.vocab_size) == (128, 168 ** -0.5, 1024, 262_208)
    assert c.rope_parameters["full_attention"] == {"rope_type": "linear", "rope_theta": 1e6, "factor": 8.0}
    assert c.rope_parameters["sliding_attention"] == {"rope_type": "default", "rope_theta": 1e4}
    assert c.layer_types.count("full_attention") == 10  # every 6th of 62
    assert not config_for("llama-3.1-8b").tie_word_embeddings and config_for("llama-3.2-3b").tie_word_embeddings


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


def test_unsupported_rope_type_error():
    hf = dict(MODELS["llama-3.2-1b"].hf_config, rope_scaling={"rope_type": "yarn", "factor": 4.0})
    with pytest.raises(ValueError, match=r"x.json: rope_type 'yarn' is not supported \(supported: default, "
                                         r"linear, llama3, proportional\)"):
        ModelConfig.from_hf(hf, source="x.json")


def test_resolve_model_name(tmp_path):
    assert resolve_model_name("functiongemma-270m") == ("google/functiongemma-270m-it", "functiongemma")
    assert resolve_model_name("llama-3.1-8b") == ("meta-llama/Llama-3.1-8B-Instruct", "llama3.1")
    assert resolve_model_name("google/gemma-3-1b-it") == ("google/gemma-3-1b-it", "gemma3")
    assert resolve_model_name("someone/their-model") == ("someone/their-model", None)
    assert resolve_model_name(str(tmp_path)) == (str(tmp_path), None)
    with pytest.raises(ValueError) as error:
        resolve_model_name("gemma3-1b")
    assert str(error.value) == (
        "--model 'gemma3-1b' is neither a known short name, an existing directory, nor a hub id like "
        "'org/name'. Known short names: functiongemma-270m, gemma-3-270m, gemma-3-1b, gemma-3-4b, "
        "gemma-3-12b, gemma-3-27b, gemma-4-e2b, gemma-4-e4b, gemma-4-31b, llama-3.2-1b, llama-3.2-3b, "
        "llama-3.1-8b")
