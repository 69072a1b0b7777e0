"""Gemma 4's per-layer embeddings (PLE), the part of the E2B/E4B decoder the other families lack.

Besides the usual embedding, every token looks up a row of a second table, `model.embed_tokens_per_layer`
[vocab_size_per_layer_input, num_layers * P] (P = hidden_size_per_layer_input = 256): one P-wide
vector per layer. It is mixed with a projection of the token's embedding and fed into each layer as a
gated residual after its MLP:

    per_layer_inputs:   table[id] * sqrt(P)  and  norm(per_layer_model_projection(embedding) / sqrt(hidden)),
                        per layer, summed and scaled by 1/sqrt(2)             -> [B, T, num_layers, P]
    per_layer_residual: x + post_per_layer_input_norm(per_layer_projection(gelu(per_layer_input_gate(x))
                                                                           * per_layer_input[layer]))

Model.py creates the modules (under transformers' names); this file holds the computation, as
transformers' Gemma4TextModel does it. The table is the largest tensor of these models (E2B: 262144 x
35 x 256 = 2.35G values, 4.7 GB in bf16; E4B: 2.82G, 5.6 GB) but a lookup reads only the rows of the
batch's tokens; README's Gemma 4 section says where it lives and what a LoRA run needs.
"""

import torch
import torch.nn.functional as F


def per_layer_inputs(decoder, config, input_ids: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """[B, T, num_layers, P]: each layer's input from the per-layer table and the (scaled) embeddings."""
    shape = (*input_ids.shape, config.num_hidden_layers, config.hidden_size_per_layer_input)
    table = decoder.embed_tokens_per_layer(input_ids)
    # sqrt(P) rounded to the table's dtype first, as transformers' scaled embedding does
    table = (table * torch.tensor(config.hidden_size_per_layer_input ** 0.5).to(table.dtype)).view(shape)
    projected = decoder.per_layer_model_projection(embeddings) * config.hidden_size ** -0.5
    projected = decoder.per_layer_projection_norm(projected.view(shape))
    return (projected + table) * 2.0 ** -0.5


def per_layer_residual(block, x: torch.Tensor, per_layer_input: torch.Tensor) -> torch.Tensor:
    """The gated per-layer residual of one block; per_layer_input [B, T, P] is its slice of per_layer_inputs."""
    gate = F.gelu(block.per_layer_input_gate(x), approximate="tanh")
    return x + block.post_per_layer_input_norm(block.per_layer_projection(gate * per_layer_input))
