"""LoRA: low-rank adapters on the linear layers of a model (their files: adapters.py).

LoRA (Hu et al. 2021, https://arxiv.org/abs/2106.09685) freezes a pretrained weight W and learns a
low-rank update:  y = x W^T + b + scale * B(A(dropout(x))),  A: [r, in], B: [out, r], r << in, out.

    apply_lora(model, r=16, alpha=32, targets=("all",))   # wrap every linear layer but lm_head in LoRALinear
    mark_only_lora_trainable(model)                       # everything else frozen
    optimizer = AdamW(lora_parameters(model))

Module names follow Hugging Face (`model.layers.0.self_attn.q_proj`), and a LoRALinear keeps the
frozen weight under the same name (`...q_proj.weight`) with the adapter beside it
(`...q_proj.lora_A.weight`, `...q_proj.lora_B.weight`), so the same code works on minifc's Transformer
and on transformers' *ForCausalLM, and PEFT's file keys are ours with `base_model.model.` in front.
A layer whose frozen weight is stored in 4 bits (nf4.NF4Linear, train.py --quantize nf4) is wrapped the
same way: its `weight` is then an nf4.NF4Weight, dequantized in each forward; the adapter is unchanged.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .nf4 import NF4Linear, NF4Weight, nf4_linear

# Short target names -> the Hugging Face module names they select (in every layer).
_TARGETS = {
    "q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj",
    "gate": "gate_proj", "up": "up_proj", "down": "down_proj",
}
LINEAR = (nn.Linear, NF4Linear)  # the frozen layers LoRA wraps: plain, or with the weight stored in NF4
FUSED_UPDATE = True  # LoRALinear.forward's addmm fast path; tests and benchmarks flip it to compare


class LoRAFactor(nn.Linear):
    """A (down) or B (up) of an adapter: an fp32 weight applied in the input's dtype. LoRALinear calls it as a
    module, never reads its weight directly, so that FSDP2 (distributed.py), which shards a block's
    adapters as a group of their own, gathers them when they run. add_to: add_to + scale * x W^T in one
    matmul (addmm), the fused path of LoRALinear.forward."""

    def forward(self, x: torch.Tensor, add_to: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
        if add_to is None:
            return F.linear(x, self.weight.to(x.dtype))
        w = (self.weight * scale).to(x.dtype)
        product = torch.addmm(add_to.reshape(-1, self.out_features), x.reshape(-1, self.in_features), w.t())
        return product.view(add_to.shape)


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update, following torchtune's LoRALinear.

    Initialisation (as in the LoRA paper's reference code, loralib, and peft): A is Kaiming-uniform
    with a=sqrt(5) -- nn.Linear's default, U(-1/sqrt(in), 1/sqrt(in)) -- and B is zero, so the wrapped
    model starts out computing exactly what the base model computes, and B receives a gradient at the
    first step (were both zero, neither would ever move). The update is scaled by alpha / r, or
    alpha / sqrt(r) with rsLoRA (Kalajdzievski 2023), so that changing r does not force re-tuning the
    learning rate. Dropout acts on the input of the low-rank path only.

    Precision: A and B are fp32 parameters (so are their gradients and optimizer state) whatever the base
    dtype. In forward they are cast to the input's dtype, as torch.autocast does: on a bf16 model the
    low-rank path reads the bf16 input the frozen layer keeps for backward anyway, instead of storing an
    fp32 copy of every adapted layer's input, and its result is added to a bf16 output, where fp32 compute
    would be rounded away. The cast is differentiable: the gradients arrive in fp32.
    """

    def __init__(self, linear: nn.Linear | NF4Linear, r: int, alpha: float, dropout: float = 0.0,
                 rslora: bool = False):
        super().__init__()
        if r <= 0:
            raise ValueError(f"LoRA rank r must be a positive integer, got r={r}")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # The very same Parameter objects (or NF4Weight): no copy, and the state-dict names stay `weight` / `bias`.
        self.weight = linear.weight.requires_grad_(False)
        self.register_parameter("bias", linear.bias)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.r, self.alpha, self.dropout_p, self.rslora = r, alpha, dropout, rslora
        self.scale = self.scale_of(alpha, r, rslora)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = LoRAFactor(self.in_features, r, bias=False, device=self.weight.device, dtype=torch.float32)
        self.lora_B = LoRAFactor(r, self.out_features, bias=False, device=self.weight.device, dtype=torch.float32)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    @staticmethod
    def scale_of(alpha: float, r: int, rslora: bool) -> float:
        return alpha / math.sqrt(r) if rslora else alpha / r

    def frozen(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen layer: x W^T + b, with W dequantized on the fly if it is stored in NF4 (nf4.py)."""
        if isinstance(self.weight, NF4Weight):
            return nf4_linear(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.frozen(x)
        low = self.lora_A(self.dropout(x))
        if not FUSED_UPDATE:
            return out + self.lora_B(low) * self.scale
        # The scale rides on B ([out, r], tiny) and the matmul adds the low-rank product to the frozen
        # layer's output itself (addmm): no separate scale and add passes over the [tokens, out] result,
        # forward or backward. Same value as the path above (tests/test_fast_paths.py).
        return self.lora_B(low, add_to=out, scale=self.scale)

    @torch.no_grad()
    def delta_weight(self) -> torch.Tensor:
        """scale * B @ A in fp32, the update that merging adds to the frozen weight."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scale

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
                f"alpha={self.alpha}, scale={self.scale:g}, dropout={self.dropout_p}")


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """{module name: LoRALinear} for every wrapped layer, in model order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def apply_lora(model: nn.Module, r: int = 16, alpha: float = 32, dropout: float = 0.0,
               targets=("all",), rslora: bool = False) -> list[str]:
    """Wrap every linear layer (LINEAR) whose name ends in a target (e.g. `.q_proj`) in a LoRALinear, in place.

    Matches names the way peft does with a list of target_modules (lm_head is never a target); "all" is
    peft's "all-linear": every linear layer but lm_head (q/k/v/o/gate/up/down, and on Gemma 4's E models
    its per-layer-embedding projections too). Returns the names of the wrapped modules.
    """
    targets = (targets,) if isinstance(targets, str) else targets
    unknown = [t for t in targets if t != "all" and t not in _TARGETS]
    if unknown:
        raise ValueError(f"unknown LoRA target {unknown[0]!r}: valid targets are {', '.join(_TARGETS)} or all")
    wrapped = lora_layers(model)  # their lora_A / lora_B are linear layers too, never targets
    linear = [name for name, m in model.named_modules()
              if isinstance(m, LINEAR) and name != "lm_head" and name.rpartition(".")[0] not in wrapped]
    leaves = list(dict.fromkeys(_TARGETS[t] for t in targets if t != "all"))  # dedupe, keep order
    names = linear if "all" in targets else [name for name in linear if name.rsplit(".", 1)[-1] in leaves]
    missing = [leaf for leaf in leaves if not any(n.rsplit(".", 1)[-1] == leaf for n in names)]
    if missing or not names:
        raise ValueError(f"LoRA targets {missing or leaves or ['all']} match no nn.Linear in the model "
                         f"(already wrapped layers are not wrapped twice)")
    wrap_layers(model, names, r, alpha, dropout, rslora)
    return names


def wrap_layers(model: nn.Module, names: list[str], r: int, alpha: float, dropout: float, rslora: bool):
    """Replace each linear layer named in `names` by a LoRALinear around it, in place."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        linear = getattr(parent, child)
        # A new module starts in train mode; keep the model's mode (else an eval model gets dropout).
        setattr(parent, child, LoRALinear(linear, r, alpha, dropout, rslora).train(linear.training))


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """{`<module>.lora_A.weight` / `<module>.lora_B.weight`: tensor} -- only the adapter, not the base."""
    return {f"{name}.{part}.weight": getattr(layer, part).weight
            for name, layer in lora_layers(model).items() for part in ("lora_A", "lora_B")}


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable LoRA parameters (A and B of every wrapped layer), e.g. for the optimizer."""
    return list(lora_state_dict(model).values())


def mark_only_lora_trainable(model: nn.Module):
    """requires_grad=True on the LoRA parameters, False on everything else."""
    trainable = {id(p) for p in lora_parameters(model)}
    if not trainable:
        raise ValueError("the model has no LoRA layers: call apply_lora(model, ...) first")
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
