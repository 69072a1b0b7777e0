"""The matrix-multiply FLOPs of one minifc LoRA training step: the numerator of model FLOPs utilisation.

Counted is the useful work of a step on the real tokens, the same for every implementation: what
activation checkpointing recomputes, attention to masked-out pairs and padding are not counted.
tests/test_flops.py checks every part against torch.utils.flop_counter.FlopCounterMode on a real step.
"""

from minifc.config import ModelConfig


def linear_shapes(config: ModelConfig) -> list[tuple[int, int]]:
    """(in, out) of the seven LoRA-wrapped linear layers of a block: q, k, v, o, gate, up, down."""
    d, inner, hd = config.hidden_size, config.intermediate_size, config.head_dim
    q, kv = config.num_attention_heads * hd, config.num_key_value_heads * hd
    return [(d, q), (d, kv), (d, kv), (q, d), (d, inner), (d, inner), (inner, d)]


def attention_pairs(length: int, window: int | None) -> int:
    """(query, key) pairs one sequence attends to: causal, and within the window (a query sees itself
    and the window-1 tokens before it) on a sliding layer."""
    return sum(min(i + 1, window or length) for i in range(length))


def step_flops_by_part(config: ModelConfig, segment_lengths: list[int], num_trained: int, r: int) -> dict:
    """FLOPs of one LoRA step (frozen base weights and lm_head, LoRA on all seven linear layers of every
    block), by part; `segment_lengths` are the lengths of the packed sequences, `num_trained` the rows
    with a target.

    linear: frozen layers, forward and backward through activations (2 x 2*N*in*out; no weight
      gradient). Not the input gradient of the first block's q, k, v: their input, the normed
      embedding, needs none (the embedding is frozen), so autograd never computes it.
    lora: forward (A then B), backward through activations and the weight gradients of A and B
      (3 x 2*N*r*(in+out)); again no input gradient of the first block's q, k, v.
    attention: QK^T and PV over the causal (and windowed) pairs of each sequence, forward 4*pairs*H*hd,
      backward twice that (dQ, dK, dV, dP).
    output: the output projection on the trained rows only, logits and the rows' gradient (2 x 2*Nt*D*V).
    """
    d = config.hidden_size
    shapes = linear_shapes(config)
    tokens = sum(segment_lengths)
    first_qkv_in = 3 * d  # q, k and v read the normed embedding, which needs no gradient
    first_qkv_out = sum(out for _, out in shapes[:3])
    layers = config.num_hidden_layers
    linear = layers * 2 * 2 * tokens * sum(i * o for i, o in shapes) - 2 * tokens * d * first_qkv_out
    lora = layers * 3 * 2 * tokens * r * sum(i + o for i, o in shapes) - 2 * tokens * r * first_qkv_in
    heads_width = config.num_attention_heads * config.head_dim
    attention = 0
    for layer_type in config.layer_types:
        window = config.sliding_window if layer_type == "sliding_attention" else None
        attention += 3 * 4 * heads_width * sum(attention_pairs(length, window) for length in segment_lengths)
    output = 2 * 2 * num_trained * d * config.vocab_size
    return {"linear": linear, "lora": lora, "attention": attention, "output": output}


def step_flops(config: ModelConfig, segment_lengths: list[int], num_trained: int, r: int) -> float:
    """Matrix-multiply FLOPs of one LoRA step on the real tokens (the sum of step_flops_by_part)."""
    return float(sum(step_flops_by_part(config, segment_lengths, num_trained, r).values()))
