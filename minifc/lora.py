"""LoRA: low-rank adapters on the linear layers of a model, saved and loaded in the PEFT layout.

LoRA (Hu et al. 2021, https://arxiv.org/abs/2106.09685) freezes a pretrained weight W and learns a
low-rank update:  y = x W^T + b + scale * B(A(dropout(x))),  A: [r, in], B: [out, r], r << in, out.

    apply_lora(model, r=16, alpha=32, targets=("all",))   # wrap q/k/v/o/gate/up/down in LoRALinear
    mark_only_lora_trainable(model)                       # everything else frozen
    ... train ...
    save_adapter(model, "out/adapter", "google/gemma-3-1b-it")   # PEFT layout: peft can load it
    load_adapter(model, "out/adapter")                    # also loads adapters saved by peft
    merge_lora(model) / unmerge_lora(model)               # fold the update into W and back, in place
    unwrap_lora(model)                                    # merge and put plain nn.Linear back (export)

Module names follow Hugging Face (`model.layers.0.self_attn.q_proj`), and a LoRALinear keeps the
frozen weight under the same name (`...q_proj.weight`) with the adapter beside it
(`...q_proj.lora_A.weight`, `...q_proj.lora_B.weight`), so the same code works on minifc's Transformer
and on transformers' *ForCausalLM, and PEFT's file keys are ours with `base_model.model.` in front.
"""

import json
import math
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .checkpoint import atomic_directory, minifc_name

# Short target names -> the Hugging Face module names they select (in every layer).
TARGETS = {
    "q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj",
    "gate": "gate_proj", "up": "up_proj", "down": "down_proj",
}
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
PEFT_PREFIX = "base_model.model."  # PeftModel wraps the *ForCausalLM as .base_model.model
FUSED_UPDATE = True  # LoRALinear.forward's addmm fast path; tests and benchmarks flip it to compare


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update, following torchtune's LoRALinear.

    Initialisation (as in the LoRA paper's reference code, loralib, and peft): A is Kaiming-uniform
    with a=sqrt(5) -- the default init of nn.Linear, i.e. U(-1/sqrt(in), 1/sqrt(in)) -- and B is
    zero. B = 0 makes the update exactly zero, so the wrapped model starts out computing exactly
    what the base model computes; A != 0 lets B receive a gradient at the first step (were both zero,
    neither would ever move). The update is scaled by alpha / r, or alpha / sqrt(r) with rsLoRA
    (Kalajdzievski 2023), so that changing r does not force re-tuning the learning rate.
    Dropout acts on the input of the low-rank path only; the frozen path is never dropped.

    Precision: A and B are fp32 parameters whatever the base dtype, so their gradients and the
    optimizer state are fp32. In forward they are cast to the input's dtype (what torch.autocast
    does): on a bf16 model the low-rank path reads the same bf16 input the frozen layer already keeps
    for backward, instead of storing an extra fp32 copy of every adapted layer's input, and its
    result is added to a bf16 output anyway, where fp32 compute would be rounded away. The cast is
    differentiable, so the gradients arrive in fp32. On an fp32 model the cast is a no-op.
    """

    def __init__(self, linear: nn.Linear, r: int, alpha: float, dropout: float = 0.0, rslora: bool = False):
        super().__init__()
        if r <= 0:
            raise ValueError(f"LoRA rank r must be a positive integer, got r={r}")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # The very same Parameter objects: no copy, and the state-dict names stay `weight` / `bias`.
        self.weight = linear.weight
        self.register_parameter("bias", linear.bias)
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.r, self.alpha, self.dropout_p, self.rslora = r, alpha, dropout, rslora
        self.scale = self.scale_of(alpha, r, rslora)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        device = linear.weight.device
        self.lora_A = nn.Linear(self.in_features, r, bias=False, device=device, dtype=torch.float32)
        self.lora_B = nn.Linear(r, self.out_features, bias=False, device=device, dtype=torch.float32)
        self.merged = False
        self.reset_lora_parameters()

    @staticmethod
    def scale_of(alpha: float, r: int, rslora: bool) -> float:
        return alpha / math.sqrt(r) if rslora else alpha / r

    def reset_lora_parameters(self):
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        if self.merged:  # the update is already inside self.weight
            return out
        # The scale rides on B ([out, r], tiny) and the matmul adds the low-rank product to the frozen
        # layer's output itself (addmm): no separate scale and add passes over the [tokens, out] result,
        # forward or backward. Same value as out + B(A(x)) * scale (tests/test_fast_paths.py).
        if not FUSED_UPDATE:
            a, b = self.lora_A.weight.to(x.dtype), self.lora_B.weight.to(x.dtype)
            return out + F.linear(F.linear(self.dropout(x), a), b) * self.scale
        a = self.lora_A.weight.to(x.dtype)
        b = (self.lora_B.weight * self.scale).to(x.dtype)
        low = F.linear(self.dropout(x), a)
        return torch.addmm(out.reshape(-1, self.out_features), low.reshape(-1, self.r), b.t()).view(out.shape)

    @torch.no_grad()
    def delta_weight(self) -> torch.Tensor:
        """scale * B @ A in fp32, the update that merging adds to the frozen weight."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scale

    @torch.no_grad()
    def merge(self):
        """W += scale * B A, in place. In bf16 the sum is rounded, so unmerge is exact only in fp32."""
        if not self.merged:
            self.weight.copy_((self.weight.float() + self.delta_weight()).to(self.weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self):
        if self.merged:
            self.weight.copy_((self.weight.float() - self.delta_weight()).to(self.weight.dtype))
            self.merged = False

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
                f"alpha={self.alpha}, scale={self.scale:g}, dropout={self.dropout_p}, merged={self.merged}")


# --------------------------------------------------------------------------- applying and merging

def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """{module name: LoRALinear} for every wrapped layer, in model order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def resolve_targets(targets) -> list[str]:
    """Short names ("q", "v", ... or "all") -> leaf module names ("q_proj", "v_proj", ...)."""
    if isinstance(targets, str):
        targets = (targets,)
    leaves = []
    for t in targets:
        if t == "all":
            leaves += TARGETS.values()
        elif t in TARGETS:
            leaves.append(TARGETS[t])
        else:
            raise ValueError(f"unknown LoRA target {t!r}: valid targets are {', '.join(TARGETS)} or all")
    return list(dict.fromkeys(leaves))  # dedupe, keep order


def apply_lora(model: nn.Module, r: int = 16, alpha: float = 32, dropout: float = 0.0,
               targets=("all",), rslora: bool = False) -> list[str]:
    """Wrap every nn.Linear whose name ends in a target (e.g. `.q_proj`) in a LoRALinear, in place.

    Matches names the way peft does with a list of target_modules (lm_head is never a target).
    Returns the names of the wrapped modules.
    """
    leaves = resolve_targets(targets)
    names = [name for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] in leaves]
    missing = [leaf for leaf in leaves if not any(n.rsplit(".", 1)[-1] == leaf for n in names)]
    if missing or not names:
        raise ValueError(f"LoRA targets {missing or leaves} match no nn.Linear in the model "
                         f"(already wrapped layers are not wrapped twice)")
    _wrap(model, names, r, alpha, dropout, rslora)
    return names


def _wrap(model: nn.Module, names: list[str], r: int, alpha: float, dropout: float, rslora: bool):
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        linear = getattr(parent, child)
        # A new module starts in train mode; keep the model's mode (else an eval model gets dropout).
        setattr(parent, child, LoRALinear(linear, r, alpha, dropout, rslora).train(linear.training))


def merge_lora(model: nn.Module):
    """Fold every adapter into its frozen weight (faster inference); forward then skips the low-rank path."""
    for layer in lora_layers(model).values():
        layer.merge()


def unmerge_lora(model: nn.Module):
    """Take the adapters back out of the frozen weights (to keep training after merge_lora)."""
    for layer in lora_layers(model).values():
        layer.unmerge()


def unwrap_lora(model: nn.Module) -> nn.Module:
    """Merge and replace every LoRALinear by a plain nn.Linear: state_dict keys are the base model's again."""
    for name, layer in lora_layers(model).items():
        layer.merge()
        linear = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta")
        linear.weight, linear.bias = layer.weight, layer.bias
        linear.train(layer.training)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, linear)
    return model


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable LoRA parameters (A and B of every wrapped layer), e.g. for the optimizer."""
    return [p for layer in lora_layers(model).values() for p in (layer.lora_A.weight, layer.lora_B.weight)]


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """{`<module>.lora_A.weight` / `<module>.lora_B.weight`: tensor} -- only the adapter, not the base."""
    state = {}
    for name, layer in lora_layers(model).items():
        state[f"{name}.lora_A.weight"] = layer.lora_A.weight
        state[f"{name}.lora_B.weight"] = layer.lora_B.weight
    return state


def mark_only_lora_trainable(model: nn.Module):
    """requires_grad=True on the LoRA parameters, False on everything else."""
    trainable = {id(p) for p in lora_parameters(model)}
    if not trainable:
        raise ValueError("the model has no LoRA layers: call apply_lora(model, ...) first")
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)


# --------------------------------------------------------------------------- PEFT adapter files

def adapter_config(model: nn.Module, base_model_name_or_path: str | None = None) -> dict:
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
                if n.rsplit(".", 1)[-1] in leaves and isinstance(m, (nn.Linear, LoRALinear))]
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
    disagree with the model. Written into a temporary directory that is renamed into place, so an
    interrupted save never leaves a half-written adapter under `directory`.
    """
    directory = Path(directory)
    config = adapter_config(model, base_model_name_or_path)
    tensors = {PEFT_PREFIX + k: v.detach().to("cpu", torch.float32).contiguous()
               for k, v in lora_state_dict(model).items()}
    with atomic_directory(directory) as tmp:
        save_file(tensors, tmp / ADAPTER_WEIGHTS, metadata={"format": "pt"})
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return directory


def read_adapter_config(path: Path) -> dict:
    """adapter_config.json, checked for the options minifc's LoRALinear implements."""
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no adapter config (expected the output of save_adapter or "
                                "peft's save_pretrained)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: line {e.lineno}: invalid JSON: {e.msg}") from None
    for field in ("r", "lora_alpha"):
        if field not in config:
            raise ValueError(f"{path}: field {field!r} is missing")
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


def _rename_multimodal(tensors: dict, modules: dict) -> tuple[dict, list[str]]:
    """Keys of an adapter peft trained on a multimodal Gemma 3 (Gemma3ForConditionalGeneration: the
    decoder under `model.language_model.` or `language_model.model.`) renamed to the text model's
    names, as checkpoint.minifc_name does for weights; returns the renamed tensors and the keys of the
    vision tower / projector, which are left out. Keys that name a module of `model` stay as they are."""
    renamed, not_text = {}, []
    for key, tensor in tensors.items():
        module, dot, tail = key.removeprefix(PEFT_PREFIX).rpartition(".lora_")
        if not key.startswith(PEFT_PREFIX) or not dot or module in modules:
            renamed[key] = tensor
        elif (text_name := minifc_name(module)) is None:
            not_text.append(key)
        else:
            renamed[f"{PEFT_PREFIX}{text_name}.lora_{tail}"] = tensor
    return renamed, not_text


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
    config = read_adapter_config(directory / ADAPTER_CONFIG)
    weights_path = directory / ADAPTER_WEIGHTS
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path}: no adapter weights next to {ADAPTER_CONFIG}")
    tensors = load_file(weights_path)
    r, alpha = config["r"], config["lora_alpha"]
    dropout, rslora = config.get("lora_dropout", 0.0), config.get("use_rslora", False)

    modules = dict(model.named_modules())
    tensors, not_text = _rename_multimodal(tensors, modules)
    if not_text:
        warnings.warn(f"{weights_path}: {len(not_text)} adapter weights of the vision tower / projector of a "
                      f"multimodal Gemma 3 are not loaded (minifc runs the text decoder only), e.g. {not_text[0]}")
    names, bad_keys = [], []
    for key in tensors:
        module, dot, tail = key.removeprefix(PEFT_PREFIX).rpartition(".lora_")
        if not key.startswith(PEFT_PREFIX) or tail not in ("A.weight", "B.weight"):
            bad_keys.append(key)
        elif module not in names:
            names.append(module)
    if bad_keys:
        raise ValueError(f"{weights_path}: keys not of the form {PEFT_PREFIX}<module>.lora_A|B.weight "
                         f"(unsupported adapter parts): {bad_keys[:5]}")

    unknown = [n for n in names if not isinstance(modules.get(n), (nn.Linear, LoRALinear))]
    if unknown:
        raise ValueError(f"{weights_path}: the model has no linear layer named {unknown[:5]} "
                         "(is the adapter for another architecture?)")
    for name in names:
        layer = modules[name]
        if isinstance(layer, LoRALinear) and layer.merged:
            raise ValueError(f"{name} has its adapter merged into the weight: unmerge_lora(model) before load_adapter")
        if isinstance(layer, LoRALinear) and (layer.r, layer.scale) != (r, LoRALinear.scale_of(alpha, r, rslora)):
            raise ValueError(f"{weights_path}: {name} already has LoRA with r={layer.r}, "
                             f"scale={layer.scale:g}, but the adapter has r={r}, lora_alpha={alpha}, "
                             f"use_rslora={rslora}")
    _wrap(model, [n for n in names if isinstance(modules[n], nn.Linear)], r, alpha, dropout, rslora)

    expected = {PEFT_PREFIX + k: v for k, v in lora_state_dict(model).items()}
    missing = sorted(expected.keys() - tensors.keys())
    if missing:
        raise ValueError(f"{weights_path}: missing {len(missing)} adapter weights the model has: {missing[:5]}")
    wrong = [f"{k}: file {tuple(tensors[k].shape)}, model {tuple(v.shape)}"
             for k, v in expected.items() if tensors[k].shape != v.shape]
    if wrong:
        raise ValueError(f"{weights_path}: shape mismatch (r={r} in {ADAPTER_CONFIG}): " + "; ".join(wrong[:5]))
    with torch.no_grad():
        for k, v in expected.items():
            v.copy_(tensors[k])
    return names
