"""Loading checkpoints: layouts (sharded, hub-style config, multimodal Gemma 3), errors, hub resolution."""

import json
import importlib

import pytest
import torch
from safetensors.torch import load_file, save_file

from minifc import checkpoint
from minifc.checkpoint import CheckpointError, load_pretrained
from tiny_models import VOCAB, gemma_config, hf_model, llama_config, save

TOL = 1e-4


@pytest.fixture(scope="module")
def gemma_ref():
    return hf_model(gemma_config(), seed=11)


@pytest.fixture(scope="module")
def gemma_dir(gemma_ref, tmp_path_factory):
    return save(gemma_ref, tmp_path_factory.mktemp("gemma"))


@torch.no_grad()
def assert_same_logits(ours, ref, length=24):
    ids = torch.randint(0, VOCAB, (2, length), generator=torch.Generator().manual_seed(0))
    assert (ours(ids) - ref(ids).logits).abs().max().item() <= TOL


def edit_config(directory, edit):
    path = directory / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps(edit(config)))


def test_sharded_checkpoint_loads(gemma_ref, tmp_path):
    save(gemma_ref, tmp_path, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 2
    assert_same_logits(load_pretrained(tmp_path), gemma_ref)


def test_gemma_config_with_hub_key_names(gemma_ref, tmp_path):
    # the hub's config.json files predate rope_parameters/layer_types
    save(gemma_ref, tmp_path)

    def hub_style(config):
        del config["rope_parameters"], config["layer_types"], config["_sliding_window_pattern"]
        return {**config, "rope_theta": 1_000_000.0, "rope_local_base_freq": 10_000.0,
                "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "sliding_window_pattern": 6}
    edit_config(tmp_path, hub_style)
    ours = load_pretrained(tmp_path)
    assert list(ours.config.layer_types) == gemma_ref.config.layer_types == ["sliding_attention"] * 5 + [
        "full_attention", "sliding_attention"]
    assert_same_logits(ours, gemma_ref)
    # the rewritten file means the same model to transformers as well
    from transformers import AutoModelForCausalLM
    assert_same_logits(ours, AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager"))


def test_llama_config_with_hub_key_names(tmp_path):
    ref = hf_model(llama_config(tie_word_embeddings=False))
    save(ref, tmp_path)

    def hub_style(config):
        rope = config.pop("rope_parameters")
        return {**config, "rope_theta": rope.pop("rope_theta"), "rope_scaling": rope}
    edit_config(tmp_path, hub_style)
    assert_same_logits(load_pretrained(tmp_path), ref, length=80)


@pytest.mark.parametrize("prefix", ["language_model.model.", "model.language_model."])
def test_multimodal_gemma_checkpoint_loads_its_text_decoder(gemma_ref, gemma_dir, tmp_path, prefix):
    # Gemma 3 4B/12B/27B: config nested in text_config, decoder tensors prefixed, plus a vision tower
    text_config = json.loads((gemma_dir / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "text_config": text_config, "vision_config": {"model_type": "siglip_vision_model"}}))
    tensors = {prefix + name.removeprefix("model."): t
               for name, t in load_file(gemma_dir / "model.safetensors").items()}
    tower = "vision_tower." if prefix.startswith("language_model") else "model.vision_tower."
    tensors[tower + "vision_model.embeddings.patch_embedding.weight"] = torch.ones(4, 3, 2, 2)
    tensors["multi_modal_projector.mm_input_projection_weight"] = torch.ones(4, 64)
    save_file(tensors, tmp_path / "model.safetensors")
    assert_same_logits(load_pretrained(tmp_path), gemma_ref)


def test_multimodal_gemma4_checkpoint_loads_its_text_decoder(tmp_path):
    # Gemma 4 as on the hub: Gemma4ForConditionalGeneration's config and tensors (decoder under
    # model.language_model., vision and audio towers and their embedders beside it), and k/v weights for
    # KV-shared layers, which transformers ignores as well
    from tiny_models import gemma4_config
    ref = hf_model(gemma4_config(), seed=12)
    text_dir = save(ref, tmp_path / "text")
    text_config = json.loads((text_dir / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["Gemma4ForConditionalGeneration"], "model_type": "gemma4", "text_config": text_config,
        "vision_config": {"model_type": "gemma4_vision"}, "audio_config": {"model_type": "gemma4_audio"}}))
    tensors = {"model.language_model." + name.removeprefix("model."): t
               for name, t in load_file(text_dir / "model.safetensors").items()}
    extra = ["model.vision_tower.encoder.layers.0.mlp.gate_proj.linear.weight", "model.audio_tower.conv.weight",
             "model.embed_vision.embedding_projection.weight", "model.embed_audio.embedding_projection.weight",
             "model.language_model.layers.3.self_attn.k_proj.weight",   # layer 3 reuses layer 2's K/V
             "model.language_model.layers.4.self_attn.v_norm.weight"]
    tensors.update({name: torch.ones(4, 4) for name in extra})
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.warns(UserWarning, match=r"6 tensors not loaded: vision / audio towers and projectors"):
        ours = load_pretrained(tmp_path)
    assert_same_logits(ours, ref)
    assert ours.config.model_type == "gemma4_text" and ours.model.layers[3].self_attn.k_proj is None


def test_load_in_bfloat16(gemma_dir):
    model = load_pretrained(gemma_dir, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert model.checkpoint_dir == gemma_dir


def rewrite_tensors(src, dst, edit):
    dst.mkdir(exist_ok=True)
    (dst / "config.json").write_text((src / "config.json").read_text())
    tensors = load_file(src / "model.safetensors")
    edit(tensors)
    save_file(tensors, dst / "model.safetensors")
    return dst


def test_missing_tensor_error(gemma_dir, tmp_path):
    directory = rewrite_tensors(gemma_dir, tmp_path / "m", lambda t: t.pop("model.layers.3.mlp.up_proj.weight"))
    with pytest.raises(CheckpointError) as error:
        load_pretrained(directory)
    assert str(error.value) == (
        f"{directory}: tensor 'model.layers.3.mlp.up_proj.weight' (shape (96, 64)) is missing from the "
        "safetensors files: config.json and the weights do not match")


def test_wrong_shape_error(gemma_dir, tmp_path):
    def shrink(tensors):
        tensors["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(16, 64)
    directory = rewrite_tensors(gemma_dir, tmp_path / "s", shrink)
    with pytest.raises(CheckpointError) as error:
        load_pretrained(directory)
    assert str(error.value) == (
        f"{directory / 'model.safetensors'}: tensor 'model.layers.0.self_attn.k_proj.weight' has shape "
        "(16, 64) but config.json implies (32, 64): config.json and the weights do not match")


def test_unexpected_tensor_error(gemma_dir, tmp_path):
    def add(tensors):
        tensors["model.layers.0.mlp.extra_proj.weight"] = torch.zeros(2, 2)
    directory = rewrite_tensors(gemma_dir, tmp_path / "u", add)
    with pytest.raises(CheckpointError, match="unexpected tensor 'model.layers.0.mlp.extra_proj.weight'"):
        load_pretrained(directory)


def test_unknown_architecture_error(gemma_dir, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mistral",
                                                       "architectures": ["MistralForCausalLM"]}))
    with pytest.raises(CheckpointError) as error:  # train.py turns a CheckpointError into one line
        load_pretrained(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / 'config.json'}: unsupported architecture model_type='mistral' (architectures="
        "['MistralForCausalLM']). minifc supports: llama (Llama 3.x), gemma3_text (Gemma 3 1B/270M, "
        "FunctionGemma), gemma3 (Gemma 3 4B/12B/27B, text part only), gemma4_text / gemma4 (Gemma 4 "
        "E2B/E4B/31B, text part only), qwen3 (Qwen3 dense), qwen2 (Qwen2.5).")


def test_local_directory_never_touches_the_hub(gemma_dir, monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("snapshot_download called for a local directory")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    load_pretrained(str(gemma_dir))


def test_short_name_downloads_only_what_is_needed(gemma_dir, monkeypatch):
    import huggingface_hub
    calls = []

    def fake_download(repo_id, allow_patterns=None, **kwargs):
        calls.append((repo_id, allow_patterns))
        return str(gemma_dir)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    assert checkpoint.resolve_checkpoint_dir("gemma-3-1b") == gemma_dir
    repo_id, patterns = calls[0]
    assert repo_id == "google/gemma-3-1b-it"
    assert {"config.json", "model.safetensors", "model-*.safetensors", "model.safetensors.index.json",
            "tokenizer.json"} <= set(patterns)
    assert not any(p.startswith("*") or "original" in p for p in patterns)


def http_response(status):
    for name in ("httpx2", "httpx"):  # whichever HTTP client this huggingface_hub is built on
        try:
            httpx = importlib.import_module(name)
            return httpx.Response(status, request=httpx.Request("GET", "https://huggingface.co/api/x"))
        except ImportError:
            continue
    pytest.skip("no httpx to build a fake hub response")


@pytest.mark.parametrize("kind", ["gated", "http401"])
def test_gated_repository_error_explains_license_and_token(monkeypatch, kind):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    def refuse(*args, **kwargs):
        if kind == "gated":
            raise GatedRepoError("Access to model is restricted", response=http_response(403))
        raise HfHubHTTPError("401 Client Error", response=http_response(401))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    with pytest.raises(CheckpointError) as error:
        load_pretrained("llama-3.2-1b")
    assert str(error.value) == (
        "meta-llama/Llama-3.2-1B-Instruct is a gated repository: accept its license on "
        "https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct (logged in with the same account), then "
        "create a read token at https://huggingface.co/settings/tokens and set HF_TOKEN=<token> "
        "(or run `hf auth login`).")


def test_offline_without_cache_error(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("offline")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache"):
        load_pretrained("google/some-model")


CHILD = """
import re, sys
import torch
from minifc.checkpoint import Transformer, load_config, load_pretrained

def resident(field):  # bytes, from /proc/self/status: VmRSS now, VmHWM the peak since the last reset
    with open("/proc/self/status") as f:
        return int(re.search(field + r":\\s+(\\d+) kB", f.read()).group(1)) * 1024

# pay torch's one-time lazy imports first (building modules on the meta device imports torch._dynamo):
# the test measures loading, not importing
with torch.device("meta"):
    Transformer(load_config(sys.argv[1]))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current resident size
before = resident("VmRSS")
model = load_pretrained(sys.argv[1])
print(before, resident("VmHWM"), sum(p.numel() for p in model.parameters()))
"""


@pytest.mark.slow
@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads the peak resident size from /proc (Linux)")
def test_peak_memory_while_loading_stays_near_checkpoint_size(tmp_path):
    import subprocess
    import sys
    # ~234 MB fp32, tied; the embedding is 56% of it, so "allocate the model, then copy each tensor in"
    # (~1.56x) or reading through a memory map (up to 2x) would fail the 1.3x bound.
    hf = llama_config(vocab_size=32_000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=8)
    from minifc.config import ModelConfig
    with torch.device("meta"):
        shapes = {n: p.shape for n, p in checkpoint.Transformer(ModelConfig.from_hf(hf.to_dict())).named_parameters()}
    save_file({n: torch.zeros(s) for n, s in shapes.items()}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(hf.to_dict()))
    size = (tmp_path / "model.safetensors").stat().st_size
    assert size > 200e6

    repo = __import__("pathlib").Path(checkpoint.__file__).parent.parent
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], cwd=repo, capture_output=True,
                         text=True, check=True).stdout.split()
    before, peak, numel = map(int, out)
    assert numel * 4 == pytest.approx(size, rel=1e-3)
    assert peak - before <= 1.3 * size, f"loading {size / 1e6:.0f} MB took {(peak - before) / 1e6:.0f} MB"


CONVERT_CHILD = """
import re, sys
import torch
from minifc import checkpoint

def resident(field):
    with open("/proc/self/status") as f:
        return int(re.search(field + r":\\s+(\\d+) kB", f.read()).group(1)) * 1024

with open(sys.argv[1], "rb") as f:
    header_size = int.from_bytes(f.read(8), "little")
    entry = __import__("json").loads(f.read(header_size))["table"]
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = resident("VmRSS")
    tensor = checkpoint._read_tensor(f, entry, 8 + header_size, "cpu", torch.float32)
    print(before, resident("VmHWM"), tensor.numel(), float(tensor[-1, -1]))
"""


@pytest.mark.slow
@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads the peak resident size from /proc (Linux)")
def test_converting_a_large_tensor_holds_no_second_copy(tmp_path):
    # A bf16 table read into fp32 (Gemma 4 E2B's per-layer table is 4.7 GB in bf16): read whole, then
    # converted, its bf16 copy would sit beside the result (1.5x the result); in slices, 1.16x measured.
    import subprocess
    import sys
    table = torch.full((24_000, 8_192), 1.5, dtype=torch.bfloat16)  # 786 MB as fp32, 3 slices of 256 MB
    save_file({"table": table}, tmp_path / "t.safetensors")
    repo = __import__("pathlib").Path(checkpoint.__file__).parent.parent
    out = subprocess.run([sys.executable, "-c", CONVERT_CHILD, str(tmp_path / "t.safetensors")], cwd=repo,
                         capture_output=True, text=True, check=True).stdout.split()
    before, peak, numel, last = int(out[0]), int(out[1]), int(out[2]), float(out[3])
    assert (numel, last) == (table.numel(), 1.5)
    assert peak - before <= 1.3 * numel * 4, f"reading {numel * 4e-6:.0f} MB took {(peak - before) / 1e6:.0f} MB"


def test_conversion_in_slices_equals_converting_whole_tensors(gemma_dir, tmp_path, monkeypatch):
    # bf16 file, fp32 model, slices of 40 bytes (tensors of 64 to 8192 values): every value in place
    rewrite_tensors(gemma_dir, tmp_path, lambda t: t.update({k: v.bfloat16() for k, v in t.items()}))
    whole = {k: v.float() for k, v in load_file(tmp_path / "model.safetensors").items()}
    monkeypatch.setattr(checkpoint, "_CHUNK_BYTES", 40)
    model = load_pretrained(tmp_path)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in whole.items())
