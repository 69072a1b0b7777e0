"""The gated MLP of every block: down(act(gate(x)) * up(x)), SiLU for Llama and Qwen (SwiGLU), tanh-GELU
for Gemma (GeGLU), with the activation's backward written out so that it saves less (GatedActivation)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig

LEAN_GATE = True  # act(gate) * up saves its inputs only (GatedActivation); tests and benchmarks flip it to compare


class MLP(nn.Module):
    """Gated MLP: down(act(gate(x)) * up(x)); SiLU for Llama (SwiGLU), tanh-GELU for Gemma (GeGLU)."""

    def __init__(self, config: ModelConfig, inner: int):
        super().__init__()
        hidden, bias = config.hidden_size, config.mlp_bias
        self.gate_proj = nn.Linear(hidden, inner, bias=bias)
        self.up_proj = nn.Linear(hidden, inner, bias=bias)
        self.down_proj = nn.Linear(inner, hidden, bias=bias)
        self.gelu = config.hidden_act == "gelu_pytorch_tanh"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_proj(x), self.up_proj(x)
        # compiled blocks: inductor chooses what to save and recompute itself
        if (LEAN_GATE and torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad)
                and not torch.compiler.is_compiling()):
            return self.down_proj(GatedActivation.apply(gate, up, self.gelu))
        return self.down_proj(_activation(gate, self.gelu) * up)


class GatedActivation(torch.autograd.Function):
    """act(gate) * up that saves gate and up only, recomputing act(gate) in backward: autograd would
    also keep act(gate), a third [tokens, intermediate] tensor per layer (the MLP's widest). Same
    values and gradients as autograd's, bit for bit (the same kernels: tests/test_fast_paths.py)."""

    @staticmethod
    def forward(ctx, gate, up, gelu: bool):
        ctx.save_for_backward(gate, up)
        ctx.gelu = gelu
        return _activation(gate, gelu) * up

    @staticmethod
    def backward(ctx, grad):
        gate, up = ctx.saved_tensors
        grad_gate = grad_up = None
        if ctx.needs_input_grad[0]:
            grad_gate = grad * up
            grad_gate = (torch.ops.aten.gelu_backward(grad_gate, gate, approximate="tanh") if ctx.gelu
                         else torch.ops.aten.silu_backward(grad_gate, gate))
        if ctx.needs_input_grad[1]:
            grad_up = grad * _activation(gate, ctx.gelu)
        return grad_gate, grad_up, None


def _activation(x: torch.Tensor, gelu: bool) -> torch.Tensor:
    """Gemma's tanh-GELU or Llama's SiLU."""
    return F.gelu(x, approximate="tanh") if gelu else F.silu(x)
