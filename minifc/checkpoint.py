"""Find a checkpoint (short name, hub id or local directory) and load its safetensors into a Transformer.

    model = load_pretrained("gemma-3-1b", device="cuda", dtype=torch.bfloat16)

Resolution: a short name from config.MODELS or a hub id goes through huggingface_hub.snapshot_download,
limited to the files minifc needs (config, weights, tokenizer); a local directory is used as is, and
the network is never touched for it (nor with HF_HUB_OFFLINE=1 and a filled cache).

Loading: the model is built on the meta device (no memory), then each tensor is read from its
safetensors file straight into a fresh tensor (our own reader: no mmap, so the page cache never
counts towards the process's memory) and installed as the parameter. A tensor that needs another dtype
or device is read in slices of at most 256 MB, each converted into its place in the result, so no
second copy of a whole tensor is ever held (Gemma 4 E2B's per-layer table is 4.7 GB in bf16): peak
memory is the model's size plus one slice.
With quantize="nf4" (train.py --quantize nf4) each linear weight of the blocks is quantized as soon as it
is read and its layer replaced by an nf4.NF4Linear, so no full-precision copy of those weights is ever
held: peak memory is the quantized model plus the scratch of quantizing one tensor (at most 16 bytes per
weight of the largest; nf4.py has the rule and the format).
Tensor names are HF's (model.py mirrors them); multimodal Gemma 3 / Gemma 4 checkpoints prefix the
decoder with `language_model.model.` (Gemma 3's hub files) or `model.language_model.` (newer
transformers), and their vision / audio towers and projectors are skipped by design (with a warning that
counts them). So are k/v weights that a checkpoint holds for Gemma 4's KV-shared layers (transformers
ignores them too: those layers use another layer's keys and values).
"""

import json
import re
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn

from .config import ModelConfig, resolve_model_name
from .model import Transformer
from .nf4 import quantizes, replace_linear

# what snapshot_download fetches: nothing else from the repo (no original/*.pth, no onnx, no gguf)
_ALLOW_PATTERNS = ["config.json", "generation_config.json", "model.safetensors", "model-*.safetensors",
                  "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "chat_template.jinja"]

_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}

# (prefix in the file, prefix in minifc) for the decoder of multimodal Gemma 3 checkpoints
_RENAMES = (("model.language_model.", "model."), ("language_model.model.", "model."),
            ("language_model.lm_head.", "lm_head."))
# tensors of a multimodal checkpoint that are not part of the text decoder
_NOT_TEXT = ("vision_tower.", "model.vision_tower.", "multi_modal_projector.", "model.multi_modal_projector.",
             "model.audio_tower.", "model.embed_vision.", "model.embed_audio.")
_CHUNK_BYTES = 256 << 20  # the slice in which a tensor that needs converting is read


class CheckpointError(RuntimeError):
    """A checkpoint cannot be found, downloaded or loaded; the message says what to do."""


def resolve_checkpoint_dir(name_or_path: str, allow_patterns=_ALLOW_PATTERNS) -> Path:
    """Short name, hub id or local directory -> local directory holding config.json and weights
    (or only the files `allow_patterns` names: the mask inspector fetches just the tokenizer)."""
    target, _ = resolve_model_name(name_or_path)
    if Path(target).is_dir():
        return Path(target)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError)
    gated = (f"{target} is a gated repository: accept its license on https://huggingface.co/{target} "
             "(logged in with the same account), then create a read token at "
             "https://huggingface.co/settings/tokens and set HF_TOKEN=<token> (or run `hf auth login`).")
    try:
        return Path(snapshot_download(target, allow_patterns=allow_patterns))
    except GatedRepoError as error:
        raise CheckpointError(gated) from error
    except RepositoryNotFoundError as error:
        raise CheckpointError(f"{target} was not found on the Hugging Face hub (or it is private: set HF_TOKEN "
                              "to a token that can read it).") from error
    except LocalEntryNotFoundError as error:
        raise CheckpointError(f"cannot download {target}: offline? It is not in the local Hugging Face cache and "
                              "cannot be downloaded (offline, or HF_HUB_OFFLINE=1): download it once with network "
                              "access, or pass a local directory holding config.json, the safetensors and "
                              "tokenizer.json.") from error
    except HfHubHTTPError as error:
        if getattr(getattr(error, "response", None), "status_code", None) in (401, 403):
            raise CheckpointError(gated) from error
        raise CheckpointError(f"cannot download {target}: {error}") from error


def load_config(directory) -> ModelConfig:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path} not found: a model directory needs config.json and model.safetensors "
                              "(or model.safetensors.index.json with its shards)")
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} line {error.lineno}: invalid JSON ({error.msg})") from error
    except UnicodeDecodeError as error:
        raise CheckpointError(f"{path}: not UTF-8 text ({error.reason}); download it again") from error
    if not isinstance(hf, dict):
        raise CheckpointError(f"{path}: must be a JSON object of the model's settings, got {type(hf).__name__}")
    try:
        return ModelConfig.from_hf(hf, source=str(path))
    except ValueError as error:  # its message names the file and the field
        raise CheckpointError(str(error)) from error
    except (TypeError, KeyError, AttributeError, ZeroDivisionError) as error:  # a number that is not, a missing key
        raise CheckpointError(f"{path}: cannot be read as a {hf.get('model_type')} config ({type(error).__name__}: "
                              f"{error}); compare it with the model's config.json on the hub") from error


def _safetensors_files(directory) -> list[Path]:
    """The weight files: the shards listed by model.safetensors.index.json, or model.safetensors."""
    directory = Path(directory)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [directory / name for name in sorted(set(weight_map.values()))]
    if (directory / "model.safetensors").is_file():
        return [directory / "model.safetensors"]
    raise CheckpointError(f"{directory} has neither model.safetensors nor model.safetensors.index.json")


def _read_header(f, path) -> tuple[int, dict]:
    """(size, entries) of a safetensors header: its size (8 bytes), then JSON {name: {dtype, shape,
    data_offsets}}; anything else is a damaged file, named."""
    size = int.from_bytes(f.read(8), "little")
    try:
        if not 2 <= size <= 100_000_000:  # the format's own limit
            raise ValueError(f"a header of {size} bytes")
        header = json.loads(f.read(size))
        header.pop("__metadata__", None)
        for name, entry in header.items():
            begin, end = entry["data_offsets"]
            shape_ok = all(isinstance(n, int) and n >= 0 for n in entry["shape"])
            if entry["dtype"] not in _DTYPES or not 0 <= begin <= end or not shape_ok:
                raise ValueError(f"tensor {name!r}: {entry}")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path}: not a safetensors file minifc can read ({type(error).__name__}: {error}); "
                              "download it again") from None
    return size, header


def _read_tensor(f, entry: dict, data_start: int, device="cpu", dtype: torch.dtype | None = None) -> torch.Tensor:
    """Read one tensor from an open safetensors file into a new tensor of `dtype` (default: the file's) on
    `device`: straight into it when nothing changes, else slice by slice (no second whole copy)."""
    file_dtype, shape = _DTYPES[entry["dtype"]], entry["shape"]
    dtype = dtype or file_dtype
    begin, end = entry["data_offsets"]
    if end - begin != file_dtype.itemsize * torch.Size(shape).numel():
        raise CheckpointError(f"{f.name}: tensor of shape {shape} in {end - begin} bytes: the file is damaged "
                              "(download it again)")
    f.seek(data_start + begin)
    if torch.device(device).type == "cpu" and dtype == file_dtype:
        return _read_bytes(f, end - begin).view(file_dtype).reshape(shape)
    out = torch.empty(shape, dtype=dtype, device=device)
    flat, step = out.view(-1), _CHUNK_BYTES // file_dtype.itemsize
    for first in range(0, flat.numel(), step):
        count = min(step, flat.numel() - first)
        flat[first:first + count].copy_(_read_bytes(f, count * file_dtype.itemsize).view(file_dtype))
    return out


def _read_bytes(f, size: int) -> torch.Tensor:
    raw = torch.empty(size, dtype=torch.uint8)
    if f.readinto(raw.numpy()) != size:
        raise CheckpointError(f"{f.name}: file is truncated (download it again)")
    return raw


def _unused_kv_weight(config: ModelConfig, name: str) -> bool:
    """A k/v projection or norm of a Gemma 4 KV-shared layer: such a layer has none (checkpoint may)."""
    match = re.fullmatch(r"model\.layers\.(\d+)\.self_attn\.[kv]_(proj|norm)\.\w+", name)
    return match is not None and int(match[1]) < config.num_hidden_layers and \
        config.kv_source(int(match[1])) != int(match[1])


def minifc_name(hf_name: str) -> str | None:
    """HF tensor name -> parameter name in Transformer, or None for tensors that are not the decoder's."""
    for old, new in _RENAMES:
        if hf_name.startswith(old):
            return new + hf_name[len(old):]
    if hf_name.startswith(_NOT_TEXT) or hf_name.endswith("rotary_emb.inv_freq"):
        return None
    return hf_name


def load_pretrained(name_or_path: str, device="cpu", dtype: torch.dtype = torch.float32,
                    quantize: str | None = None) -> Transformer:
    """Load a checkpoint into a Transformer (eval mode) in `dtype` on `device`.

    `name_or_path`: a short name (config.MODELS), a hub id, or a local directory with config.json and
    model.safetensors / model.safetensors.index.json. quantize="nf4": the linear layers of the blocks in
    NF4 (computing in `dtype`). The returned model has `.checkpoint_dir` (the resolved directory, which
    also holds tokenizer.json).
    """
    if quantize not in (None, "nf4"):
        raise ValueError(f"quantize={quantize!r}: the one quantization minifc has is 'nf4'")
    directory = resolve_checkpoint_dir(name_or_path)
    config = load_config(directory)
    with torch.device("meta"):
        model = Transformer(config)
    # parameters and saved buffers (Gemma 4's layer_scalar); a tied lm_head is the embedding
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()
                if not (name == "lm_head.weight" and config.tie_word_embeddings)}
    loaded, skipped = set(), 0
    for path in _safetensors_files(directory):
        with open(path, "rb") as f:
            header_size, header = _read_header(f, path)
            for hf_name, entry in header.items():
                name = minifc_name(hf_name)
                if name is None or _unused_kv_weight(config, name):
                    skipped += 1  # vision / audio tower, projector; k/v weights of a KV-shared layer
                    continue
                if name == "lm_head.weight" and config.tie_word_embeddings:
                    continue  # a copy of the tied embedding
                if name not in expected:
                    raise CheckpointError(f"{path}: unexpected tensor {hf_name!r}: it is not part of a "
                                          f"{config.model_type} model as described by config.json")
                if tuple(entry["shape"]) != expected[name]:
                    raise CheckpointError(
                        f"{path}: tensor {hf_name!r} has shape {tuple(entry['shape'])} but config.json "
                        f"implies {expected[name]}: config.json and the weights do not match")
                module_name, _, leaf = name.rpartition(".")
                module = model.get_submodule(module_name)
                if quantize and leaf == "weight" and quantizes(module_name, module):
                    try:  # quantized from the file's dtype
                        replace_linear(model, module_name, _read_tensor(f, entry, 8 + header_size, device))
                    except ValueError as error:  # inf or NaN in the weight
                        raise CheckpointError(f"{path}: tensor {hf_name!r}: {error}") from None
                else:
                    tensor = _read_tensor(f, entry, 8 + header_size, device, dtype)
                    setattr(module, leaf, tensor if leaf in module._buffers else nn.Parameter(tensor))
                loaded.add(name)
    missing = [name for name in expected if name not in loaded]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{directory}: tensor {missing[0]!r} (shape {expected[missing[0]]}) is missing "
                              f"from the safetensors files{more}: config.json and the weights do not match")
    if skipped:
        warnings.warn(f"{directory}: {skipped} tensors not loaded: vision / audio towers and projectors (minifc "
                      "runs the text decoder only) or k/v weights of KV-shared layers (they use another layer's)")
    model.tie_weights()
    model.checkpoint_dir = directory
    return model.eval()


@contextmanager
def atomic_directory(directory):
    """Write a directory all at once: `with atomic_directory(d) as tmp:` fill `tmp`, a hidden sibling;
    it takes the place of `d` only when the block ends without error (an existing `d` stays whole until
    that swap). On an error it is removed, so a crash never leaves a half-written checkpoint."""
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if directory.exists():
        old = directory.with_name(f".{directory.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old)
    else:
        tmp.rename(directory)
