"""LoRA adapter files in the PEFT layout: what peft's save_pretrained writes and PeftModel loads.

    save_adapter(model, "out/adapter", "google/gemma-3-1b-it")   # after apply_lora + training
    load_adapter(model, "out/adapter")                           # also loads adapters saved by peft

    adapter_model.safetensors   {"base_model.model.<module>.lora_A.weight": [r, in], ...lora_B...: [out, r]}
    adapter_config.json         r, lora_alpha, lora_dropout, use_rslora, target_modules, base_model_name_or_path...
    minifc.json                 (train.py) the chat format, the base model and its architecture numbers

An adapter is refused, naming what differs, on a model whose architecture is not the one its minifc.json
records, or whose layers and shapes are not the ones its weights have (peft's adapters record no architecture).

PEFT's keys are minifc's module names (lora.py) with `base_model.model.` in front: PeftModel wraps the
*ForCausalLM as .base_model.model.
"""

import json
import warnings
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from .chat.lookup import read_record
from .checkpoint import atomic_directory, minifc_name
from .lora import LINEAR, LoRALinear, lora_layers, lora_state_dict, wrap_layers

_WEIGHTS = "adapter_model.safetensors"
_CONFIG = "adapter_config.json"
_PEFT_PREFIX = "base_model.model."


def _adapter_config(model: nn.Module, base_model_name_or_path: str | None = None) -> dict:
    """The adapter_config.json peft writes for this model's adapters (the fields peft reads)."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA layers: call apply_lora(model, ...) first")
    settings = {(m.r, m.alpha, m.dropout_p, m.rslora) for m in layers.values()}
    if len(settings) > 1:
        raise ValueError(f"LoRA layers differ in (r, alpha, dropout, rslora) = {sorted(settings)}: "
                         "a PEFT adapter file holds one setting for all layers")
    r, alpha, dropout, rslora = settings.pop()
    # peft matches a list entry against the end of each module name. Short leaf names are the readable
    # form; if they would select more modules than are wrapped here, list the full names instead.
    leaves = sorted({name.rsplit(".", 1)[-1] for name in layers})
    selected = [n for n, m in model.named_modules()
                if n.rsplit(".", 1)[-1] in leaves and isinstance(m, (*LINEAR, LoRALinear))]
    target_modules = leaves if len(selected) == len(layers) else list(layers)
    return {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model_name_or_path,
        "r": r, "lora_alpha": alpha, "lora_dropout": dropout, "use_rslora": rslora,
        "target_modules": target_modules, "bias": "none", "fan_in_fan_out": False,
        "init_lora_weights": True, "use_dora": False, "lora_bias": False, "modules_to_save": None,
        "layers_to_transform": None, "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {},
        "inference_mode": True,
    }


def save_adapter(model: nn.Module, directory, base_model_name_or_path: str | None = None) -> Path:
    """Write `adapter_model.safetensors` + `adapter_config.json` as peft's save_pretrained does.

    r, alpha, dropout, rslora and the targets are read from the wrapped layers, so the file cannot
    disagree with the model. `directory` appears only once complete (checkpoint.atomic_directory).
    """
    directory = Path(directory)
    config = _adapter_config(model, base_model_name_or_path)
    tensors = {_PEFT_PREFIX + k: v.detach().to("cpu", torch.float32).contiguous()
               for k, v in lora_state_dict(model).items()}
    with atomic_directory(directory) as tmp:
        save_file(tensors, tmp / _WEIGHTS, metadata={"format": "pt"})
        (tmp / _CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return directory


_number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
_FIELD_TYPES = {  # field: (check, what it must be)
    "r": (lambda v: type(v) is int and v >= 1, "a positive integer, e.g. 16"),
    "lora_alpha": (lambda v: _number(v) and v > 0, "a positive number, e.g. 32"),
    "lora_dropout": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1), e.g. 0.05"),
    "use_rslora": (lambda v: isinstance(v, bool), "true or false"),
    "target_modules": (lambda v: v is None or isinstance(v, str) or isinstance(v, list) and all(
        isinstance(m, str) for m in v), 'a list of module names, e.g. ["q_proj", "v_proj"]'),
}


def _check_base(model: nn.Module, directory: Path):
    """Refuses an adapter whose minifc.json records a base of another architecture than `model`'s."""
    record = read_record(directory)
    trained_on, config = record.get("architecture"), getattr(model, "config", None)
    if not isinstance(trained_on, dict) or config is None:
        return  # peft's adapters record none: the weights' names and shapes are checked instead
    now = config.architecture()
    differ = [f"{key} {value!r} (this model: {now.get(key)!r})" for key, value in trained_on.items()
              if now.get(key) != value]
    if differ:
        base = record.get("base_model") or "another model"
        raise ValueError(f"{directory}: this adapter was trained on {base}, whose {', '.join(differ)} differ from the "
                         f"model it is being loaded on: load it on {base} (--model)")


def _read_adapter_config(path: Path) -> dict:
    """adapter_config.json, checked for the options minifc's LoRALinear implements."""
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no adapter config (expected the output of save_adapter or "
                                "peft's save_pretrained)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: must be a JSON object like peft's adapter_config.json, got {type(config).__name__}")
    for field in ("r", "lora_alpha"):
        if field not in config:
            raise ValueError(f"{path}: field {field!r} is missing")
    for field, (fits, what) in _FIELD_TYPES.items():
        if field in config and not fits(config[field]):
            raise ValueError(f"{path}: field {field!r} must be {what}, got {json.dumps(config[field])}")
    unsupported = {  # field: (value minifc implements, what it is)
        "peft_type": ("LORA", "adapter type"), "bias": ("none", "trained biases"),
        "fan_in_fan_out": (False, "transposed (Conv1D) weights"), "use_dora": (False, "DoRA"),
        "lora_bias": (False, "a bias on lora_B"), "modules_to_save": (None, "fully trained extra modules"),
    }
    for field, (supported, what) in unsupported.items():
        if config.get(field, supported) != supported:
            raise ValueError(f"{path}: field {field!r} = {config[field]!r} ({what}) is not supported by "
                             f"minifc's LoRA; only {supported!r} is")
    for field in ("rank_pattern", "alpha_pattern"):
        if config.get(field):
            raise ValueError(f"{path}: field {field!r} = {config[field]!r}: per-layer ranks/alphas are not "
                             "supported; only one r and lora_alpha for all layers")
    return config


def load_adapter(model: nn.Module, directory) -> list[str]:
    """Load an adapter saved by save_adapter or by peft's save_pretrained into `model`, in place.

    The layers to adapt are read from the file's keys (so any peft target_modules selection works);
    those not wrapped yet are wrapped with the saved r / lora_alpha / lora_dropout / use_rslora.
    Every key must name a linear layer of the model, every adapted layer of the model must be in the
    file, and every shape must match -- otherwise a ValueError lists what differs. Adapters of a
    multimodal Gemma 3 load into its text decoder (vision-tower parts are left out, with a warning).
    Returns the names of the adapted modules.
    """
    directory = Path(directory)
    config = _read_adapter_config(directory / _CONFIG)
    _check_base(model, directory)
    weights_path = directory / _WEIGHTS
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path}: no adapter weights next to {_CONFIG}")
    r, alpha = config["r"], config["lora_alpha"]
    dropout, rslora = config.get("lora_dropout", 0.0), config.get("use_rslora", False)

    modules = dict(model.named_modules())
    tensors, names, bad_keys, not_text = {}, [], [], []
    for key, tensor in load_file(weights_path).items():
        module, dot, tail = key.removeprefix(_PEFT_PREFIX).rpartition(".lora_")
        if key.startswith(_PEFT_PREFIX) and dot and module not in modules:
            # peft on a multimodal Gemma 3 (Gemma3ForConditionalGeneration) has the decoder under
            # `model.language_model.` or `language_model.model.`: renamed as for weights, vision parts left out
            module = minifc_name(module)
            if module is None:
                not_text.append(key)
                continue
            key = f"{_PEFT_PREFIX}{module}.lora_{tail}"
        tensors[key] = tensor
        if not key.startswith(_PEFT_PREFIX) or tail not in ("A.weight", "B.weight"):
            bad_keys.append(key)
        elif module not in names:
            names.append(module)
    if not_text:
        warnings.warn(f"{weights_path}: {len(not_text)} adapter weights of the vision tower / projector of a "
                      f"multimodal Gemma 3 are not loaded (minifc runs the text decoder only), e.g. {not_text[0]}")
    if bad_keys:
        raise ValueError(f"{weights_path}: keys not of the form {_PEFT_PREFIX}<module>.lora_A|B.weight "
                         f"(unsupported adapter parts): {bad_keys[:5]}")

    unknown = [n for n in names if not isinstance(modules.get(n), (*LINEAR, LoRALinear))]
    if unknown:
        raise ValueError(f"{weights_path}: the model has no linear layer named {unknown[:5]} "
                         "(is the adapter for another architecture?)")
    for name in names:
        layer = modules[name]
        if isinstance(layer, LoRALinear) and (layer.r, layer.scale) != (r, LoRALinear.scale_of(alpha, r, rslora)):
            raise ValueError(f"{weights_path}: {name} already has LoRA with r={layer.r}, "
                             f"scale={layer.scale:g}, but the adapter has r={r}, lora_alpha={alpha}, "
                             f"use_rslora={rslora}")
    wrap_layers(model, [n for n in names if isinstance(modules[n], LINEAR)], r, alpha, dropout, rslora)

    expected = {_PEFT_PREFIX + k: v for k, v in lora_state_dict(model).items()}
    missing = sorted(expected.keys() - tensors.keys())
    if missing:
        raise ValueError(f"{weights_path}: missing {len(missing)} adapter weights the model has: {missing[:5]}")
    wrong = [f"{k}: file {tuple(tensors[k].shape)}, model {tuple(v.shape)}"
             for k, v in expected.items() if tensors[k].shape != v.shape]
    if wrong:
        raise ValueError(f"{weights_path}: shape mismatch (r={r} in {_CONFIG}): " + "; ".join(wrong[:5]))
    with torch.no_grad():
        for k, v in expected.items():
            v.copy_(tensors[k])
    return names
