"""Write a model (with its LoRA adapters merged in) as a Hugging Face checkpoint directory.

    save_hf_model(model, "out/gemma-3-1b/merged", hf_config, tokenizer, fmt, tokenizer_dir=base_dir)
    python -m minifc.export --model gemma-3-1b --adapter out/gemma-3-1b/final --out out/gemma-3-1b/merged

What `transformers.AutoModelForCausalLM.from_pretrained` and minifc's `load_pretrained` read:

    config.json             the base's (a multimodal Gemma 3's becomes its text config), with the saved dtype
    model.safetensors       HF tensor names; a tied lm_head is not written (HF stores the embedding once)
    generation_config.json  eos_token_id lists the chat format's end-of-turn tokens, so that `generate()`
                            stops where the fine-tuned model ends its turn
    tokenizer.json, tokenizer_config.json (+ special_tokens_map.json, chat_template.jinja if the base has them)
    minifc.json             {"chat_format": ...}: the prompt format the model was trained with (chat/lookup.py)

Merging does not touch the model: each adapted weight is computed as W + scale * B A in fp32 and
rounded once to W's dtype. A base stored in NF4 (train.py --quantize nf4, or --quantize nf4 here) is
first dequantized to the model's dtype: the export is the plain model the NF4 one computes, adapter
merged, whose weights differ from the original base's by the quantization error. The directory appears
only once complete (checkpoint.atomic_directory).
"""

import argparse
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from .chat.lookup import write_chat_format
from .cli import run
from .checkpoint import atomic_directory
from .config import text_config
from .lora import lora_layers
from .nf4 import dequantized_state_dict, nf4_weights

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def _merged_state_dict(model) -> dict[str, torch.Tensor]:
    """The model's weights under HF names, NF4 weights dequantized to the model's dtype, each LoRA update
    folded into its base weight (model untouched)."""
    layers = lora_layers(model)
    state = {}
    for name, tensor in dequantized_state_dict(model, model.model.embed_tokens.weight.dtype).items():
        module, _, leaf = name.rpartition(".")
        if module in layers and leaf == "weight":
            tensor = (tensor.float() + layers[module].delta_weight().to(tensor.device)).to(tensor.dtype)
        if ".lora_A." not in name and ".lora_B." not in name:
            state[name] = tensor
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # tied: HF stores the embedding once and ties on load
    return {name: t.detach().to("cpu").contiguous() for name, t in state.items()}


def _generation_config(tokenizer, fmt, tokenizer_dir) -> dict:
    """The base's generation_config.json (if any) with the format's stop tokens added to eos_token_id."""
    base = Path(tokenizer_dir) / "generation_config.json" if tokenizer_dir is not None else None
    config = json.loads(base.read_text()) if base is not None and base.is_file() else {}
    eos = config.get("eos_token_id")
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    stops = tokenizer.stop_ids(fmt) + ([tokenizer.eos_id] if tokenizer.eos_id is not None else [])
    config["eos_token_id"] = eos + [token_id for token_id in dict.fromkeys(stops) if token_id not in eos]
    if tokenizer.bos_id is not None:
        config.setdefault("bos_token_id", tokenizer.bos_id)
    config.setdefault("pad_token_id", tokenizer.pad_id)
    return config


def save_hf_model(model, directory, hf_config: dict, tokenizer, fmt, tokenizer_dir=None,
                  extra_info: dict | None = None) -> Path:
    """Write `model` (adapters merged) as an HF checkpoint directory; see the module docstring.
    hf_config: the base model's config.json as a dict. tokenizer_dir: copy the base's tokenizer files
    from there (keeps its chat template); without it, `tokenizer` is written (the tiny demo's)."""
    directory = Path(directory)
    state = _merged_state_dict(model)
    dtype = next(iter(state.values())).dtype
    config = {**text_config(hf_config), "torch_dtype": str(dtype).removeprefix("torch.")}
    with atomic_directory(directory) as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        _write_json(tmp / "config.json", config)
        _write_json(tmp / "generation_config.json", _generation_config(tokenizer, fmt, tokenizer_dir))
        _write_tokenizer(tmp, tokenizer, tokenizer_dir)
        write_chat_format(tmp, fmt, **(extra_info or {}))
    return directory


def _write_tokenizer(directory: Path, tokenizer, tokenizer_dir):
    """Copy the base's tokenizer files, or write `tokenizer` (tokenizer.json + its special tokens)."""
    if tokenizer_dir is not None and (Path(tokenizer_dir) / "tokenizer.json").is_file():
        for name in _TOKENIZER_FILES:
            if (Path(tokenizer_dir) / name).is_file():
                shutil.copyfile(Path(tokenizer_dir) / name, directory / name)
        return
    tokenizer.tk.save(str(directory / "tokenizer.json"))
    _write_json(directory / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": tokenizer.bos_token,
        "eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token})


def _write_json(path: Path, value: dict):
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def main(argv=None):
    from .adapters import load_adapter
    from .loader import LoadError, load

    parser = argparse.ArgumentParser(description="Merge a LoRA adapter into its base model, in HF layout.")
    parser.add_argument("--model", required=True, help="base model: short name, hub id or local directory")
    parser.add_argument("--adapter", required=True, help="adapter directory written by train.py")
    parser.add_argument("--out", required=True, help="directory to write")
    parser.add_argument("--format", default=None, help="chat format (default: the model's)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--quantize", choices=["nf4"], help="merge into the base as an NF4 run trained on it "
                        "(quantized, then dequantized to --dtype) instead of the original weights")
    args = parser.parse_args(argv)
    try:
        model, tokenizer, fmt = load(args.model, args.format, args.adapter, dtype=getattr(torch, args.dtype),
                                     quantize=args.quantize)
        load_adapter(model, args.adapter)
    except (LoadError, ValueError, OSError) as error:  # bad input: the message says what to fix
        parser.exit(1, f"minifc.export: {error}\n")
    hf_config = json.loads((model.checkpoint_dir / "config.json").read_text())
    info = {"base_model": args.model, "adapter": str(args.adapter)}
    if args.quantize:
        info.update(quantization_info(model))
    save_hf_model(model, args.out, hf_config, tokenizer, fmt, tokenizer_dir=model.checkpoint_dir, extra_info=info)
    print(f"wrote {args.out}" + (f" ({info['base_quantization']})" if args.quantize else ""))


def quantization_info(model) -> dict:
    """For minifc.json of an export: what the base of a model with NF4 weights became ({} for a plain one)."""
    if not nf4_weights(model):
        return {}
    dtype = str(model.model.embed_tokens.weight.dtype).removeprefix("torch.")
    return {"base_quantization": f"NF4 base dequantized to {dtype}, adapter merged: the weights differ from the "
                                 "original base's by the NF4 quantization error"}


if __name__ == "__main__":
    run(main, "minifc.export")
