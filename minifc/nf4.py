"""QLoRA's 4-bit NormalFloat (NF4) storage for the frozen linear weights (train.py --quantize nf4).

QLoRA (Dettmers et al. 2023, https://arxiv.org/abs/2305.14314) keeps the frozen base of a LoRA run in
4 bits and trains the adapters in higher precision on top. Each weight is stored as bitsandbytes (the
paper's own code) stores it with quantize_4bit(blocksize=64, quant_type="nf4", compress_statistics=True):

    blocks of 64 consecutive weights of the flattened W:  a = max |w| over the block (fp32)
                                                          q = the NF4 value nearest to w / a (4 bits)
    double quantization of the a of all blocks of W:      m = mean(a), c = a - m, in blocks of 256:
                                                          A = max |c| (fp32)
                                                          s = the DYNAMIC value nearest to c / A (8 bits)
    dequantized:                                          w ~ NF4[q] * (DYNAMIC[s] * A + m)

    layer = NF4Linear.from_linear(linear)        # or load_pretrained(..., quantize="nf4"), tensor by tensor
    y = layer(x)                                 # x @ W^T with W dequantized to x's dtype
    W = layer.weight.dequantize(torch.bfloat16)  # what the layer computes with

Storage per weight: 4 bits of code + 8/64 bits of scale + 32/(64*256) bits of second-level scale = 4.127
bits, 0.258x of bf16 (without the second level: 4.5 bits, 0.281x). Error of one weight, at most (the
test checks it): HALF_GAP_NF4 * a + HALF_GAP_DYNAMIC * A, i.e. half the widest gap between neighbouring
NF4 values (0.152, between -1 and -0.696) times the block's absmax, plus the error of the scale.

Forward dequantizes the whole weight to the compute dtype and multiplies (plain PyTorch ops that
torch.compile fuses into one kernel before the matmul); backward dequantizes again and sends the
gradient to the input only: the codes are frozen, and autograd never keeps a 16-bit copy of a weight.
Which layers are stored so is one rule, `quantizes()`: every linear layer of the transformer blocks;
embeddings, norms and lm_head stay in the model's dtype.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

BLOCK = 64           # weights per absmax scale
SCALE_BLOCK = 256    # scales per second-level (fp32) scale

# The NF4 data type: the paper's Appendix E, bitsandbytes' get_4bit_type("nf4"). Quantiles of N(0, 1)
# normalised to [-1, 1]: 7 below zero, 8 above, and an exact 0 (tests/test_nf4.py rebuilds them from that
# construction).
NF4 = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0])


def dynamic_codebook() -> torch.Tensor:
    """The signed 8-bit "dynamic" data type the paper quantizes the scales to ("8-bit Floats"; Dettmers
    2016, https://arxiv.org/abs/1511.04561; bitsandbytes' create_dynamic_map()): 0, 1, and for each
    decade 10^-6 ... 10^0, 2^k evenly spaced values (k = 0 ... 6) with both signs: the larger the value,
    the more of the 8 bits go to its fraction."""
    values = [0.0, 1.0]
    for k in range(7):
        edges = torch.linspace(0.1, 1, 2 ** k + 1)
        fractions = (edges[:-1] + edges[1:]) / 2
        for sign in (1, -1):
            values += (sign * 10.0 ** (k - 6) * fractions).tolist()
    return torch.tensor(sorted(values))


DYNAMIC = dynamic_codebook()


def half_gap(codebook: torch.Tensor) -> float:
    """The largest distance from a value in [-1, 1] to its nearest code: the rounding error bound."""
    ends = torch.stack([codebook[0] + 1, 1 - codebook[-1]])
    return max(torch.diff(codebook).max().item() / 2, ends.max().item())


HALF_GAP_NF4, HALF_GAP_DYNAMIC = half_gap(NF4), half_gap(DYNAMIC)  # 0.1519, 0.0070


# ------------------------------------------------------------------------------------------ quantize

def quantize_blocks(x: torch.Tensor, codebook: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 index of the nearest code to each x / its block's absmax, the fp32 absmax of each block).
    x: fp32, numel a multiple of `block`. Rounded as bitsandbytes does (times the reciprocal of the
    absmax; a value exactly half-way between two codes takes the lower one), so the codes are its codes."""
    blocks = x.view(-1, block)
    absmax = blocks.abs().amax(dim=1)
    normed = blocks * (1 / absmax.clamp(min=1e-38))[:, None]  # an all-zero block stays 0
    midpoints = (codebook[:-1] + codebook[1:]) / 2
    codes = torch.bucketize(normed, midpoints.to(x.device), out_int32=True)
    return codes.to(torch.uint8).flatten(), absmax


def _pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """x (1-d) with zeros appended up to a multiple of `multiple` (zeros change no absmax)."""
    missing = -x.numel() % multiple
    return F.pad(x, (0, missing)) if missing else x


# byte -> the two NF4 values it holds (high nibble first): one gather dequantizes two weights
_BYTE_VALUES = torch.stack([NF4[torch.arange(256) >> 4], NF4[torch.arange(256) & 15]], dim=1)


class NF4Weight(nn.Module):
    """A frozen weight stored in NF4 with double-quantized scales. Buffers, so that .to(device) moves them
    and the state dict holds them (.to(dtype) after quantizing would round the fp32 scales: refused):

        codes         uint8 [blocks * 32]    two NF4 indices per byte, the first in the high nibble
        scale_codes   uint8 [scale blocks * 256]   one DYNAMIC index per block of 64 weights
        scale_absmax  fp32  [scale blocks]   A of each block of 256 scales
        scale_mean    fp32  []               m, the mean of all blocks' absmax
        byte_values, scale_values            the lookup tables (_BYTE_VALUES, DYNAMIC; 3 KB, not saved):
                                             on the weight's device, and not made inside a compiled region

    A weight whose size is not a multiple of 64 is padded with zeros to whole blocks (and the scales to
    whole blocks of 256); dequantize() cuts the padding off again.
    """

    def __init__(self, codes, scale_codes, scale_absmax, scale_mean, shape):
        super().__init__()
        self.shape = torch.Size(shape)
        self.register_buffer("codes", codes)
        self.register_buffer("scale_codes", scale_codes)
        self.register_buffer("scale_absmax", scale_absmax)
        self.register_buffer("scale_mean", scale_mean)
        self.register_buffer("byte_values", _BYTE_VALUES.to(codes.device), persistent=False)
        self.register_buffer("scale_values", DYNAMIC.to(codes.device), persistent=False)

    @classmethod
    @torch.no_grad()
    def quantize(cls, weight: torch.Tensor) -> "NF4Weight":
        """Quantize `weight` (any float dtype; computed in fp32) on its own device."""
        w = _pad(weight.detach().float().flatten(), BLOCK)
        q, absmax = quantize_blocks(w, NF4, BLOCK)
        if not torch.isfinite(absmax).all():
            raise ValueError(f"cannot quantize a weight of shape {tuple(weight.shape)} to NF4: it holds inf or NaN")
        mean = absmax.mean()
        scale_codes, scale_absmax = quantize_blocks(_pad(absmax - mean, SCALE_BLOCK), DYNAMIC, SCALE_BLOCK)
        return cls((q[0::2] << 4) | q[1::2], scale_codes, scale_absmax, mean, weight.shape)

    @property
    def device(self) -> torch.device:
        return self.codes.device

    def parts(self) -> tuple[torch.Tensor, ...]:
        """What dequantize() reads, in its order."""
        return (self.codes, self.scale_codes, self.scale_absmax, self.scale_mean, self.byte_values,
                self.scale_values)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weight this stands for, in `dtype` (computed in fp32, rounded once)."""
        return dequantize(self.parts(), self.shape, dtype)

    def nbytes(self) -> int:
        """Bytes of the stored weight (the saved buffers; the 3 KB of tables are not counted)."""
        return sum(t.numel() * t.element_size() for t in self.state_dict().values())

    def extra_repr(self) -> str:
        return f"shape={tuple(self.shape)}, NF4 (4.127 bits per weight)"


# ---------------------------------------------------------------------------------------- dequantize

def dequantize(parts, shape, dtype) -> torch.Tensor:
    """NF4[q] * (DYNAMIC[s] * A + m) in fp32, as bitsandbytes computes it, then rounded to `dtype`
    (parts: NF4Weight.parts()). Only gathers from two small tables and multiplies, which torch.compile
    fuses into one kernel."""
    codes, scale_codes, scale_absmax, scale_mean, byte_values, scale_values = parts
    if scale_absmax.dtype != torch.float32:
        raise TypeError(f"NF4 scales are {scale_absmax.dtype}, not float32: the model was cast with .to(dtype) "
                        "after quantizing; cast first, then quantize")
    numel = math.prod(shape)
    blocks = -(-numel // BLOCK)
    scales = (scale_values[scale_codes.int()].view(-1, SCALE_BLOCK) * scale_absmax[:, None]).flatten()[:blocks]
    scales = scales + scale_mean
    weight = byte_values[codes.int()].view(blocks, BLOCK) * scales[:, None]
    return weight.flatten()[:numel].view(shape).to(dtype)


class _DequantizedMatmul(torch.autograd.Function):
    """x @ W^T, W dequantized to x's dtype in forward and again in backward. Autograd saves only the
    codes and scales (buffers that exist anyway), never the 16-bit W of each layer, which would put a
    full-precision copy of the model in memory during every step; the gradient goes to x only."""

    @staticmethod
    def forward(ctx, x, shape, *parts):
        ctx.save_for_backward(*parts)
        ctx.shape = shape
        return F.linear(x, dequantize(parts, shape, x.dtype))

    @staticmethod
    def backward(ctx, grad):
        parts = ctx.saved_tensors  # read once: under activation checkpointing a second read is an error
        return grad @ dequantize(parts, ctx.shape, grad.dtype), None, *[None] * len(parts)


def _dequantize_and_multiply(x, shape, *parts):
    return F.linear(x, dequantize(parts, shape, x.dtype))


def nf4_linear(x: torch.Tensor, weight: NF4Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x W^T + b with W stored in NF4 (the frozen layer of a LoRALinear, or an NF4Linear). Eager: the
    autograd Function above. Compiled: the same ops as an activation-checkpoint region, which tells the
    compiler to recompute W in backward; traced as a Function, its backward's dequantization would be
    merged with the forward's and W kept for backward after all (tests/test_nf4.py checks both)."""
    if torch.compiler.is_compiling():
        out = checkpoint(_dequantize_and_multiply, x, weight.shape, *weight.parts(), use_reentrant=False)
    else:
        out = _DequantizedMatmul.apply(x, weight.shape, *weight.parts())
    return out if bias is None else out + bias.to(out.dtype)


class NF4Linear(nn.Module):
    """A frozen nn.Linear whose weight is an NF4Weight: state-dict names `<layer>.weight.codes`, ...,
    `<layer>.bias`. LoRA wraps it as it wraps an nn.Linear (lora.py)."""

    def __init__(self, weight: NF4Weight, bias: nn.Parameter | None = None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.weight = weight
        self.register_parameter("bias", bias.requires_grad_(False) if bias is not None else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "NF4Linear":
        return cls(NF4Weight.quantize(linear.weight), linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nf4_linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, NF4"


# ------------------------------------------------------------------------------------ whole models

def quantizes(module_name: str, module: nn.Module) -> bool:
    """The rule of --quantize nf4: every linear layer of the transformer blocks (q, k, v, o, gate, up and
    down of `model.layers.N`) is stored in NF4; embeddings, norms and lm_head are not."""
    return module_name.startswith("model.layers.") and isinstance(module, nn.Linear)


def replace_linear(model: nn.Module, name: str, weight: torch.Tensor):
    """Put an NF4Linear holding `weight`, quantized, in place of the linear layer `name` (its bias kept).
    load_pretrained calls it for each weight as it is read; quantize_model for a model already built."""
    parent, _, child = name.rpartition(".")
    old = model.get_submodule(name)
    setattr(model.get_submodule(parent), child, NF4Linear(NF4Weight.quantize(weight), old.bias).train(old.training))


def quantize_model(model: nn.Module) -> nn.Module:
    """Quantize, in place, every layer `quantizes` selects of a model already in memory (tests,
    benchmarks); after any .to(dtype), which would round the fp32 scales."""
    for name, module in list(model.named_modules()):
        if quantizes(name, module):
            replace_linear(model, name, module.weight)
    return model


def nf4_weights(model: nn.Module) -> dict[str, NF4Weight]:
    """{state-dict name of the weight (`model.layers.0.self_attn.q_proj.weight`): NF4Weight}."""
    return {name: m for name, m in model.named_modules() if isinstance(m, NF4Weight)}


def dequantized_state_dict(model: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """model.state_dict() with each NF4 weight's codes and scales replaced by the weight itself in
    `dtype`: the state dict of the plain model the NF4 one computes (export.py merges adapters into it)."""
    state = model.state_dict()
    for name, weight in nf4_weights(model).items():
        for key in weight.state_dict():
            del state[f"{name}.{key}"]
        state[name] = weight.dequantize(dtype)
    return state
