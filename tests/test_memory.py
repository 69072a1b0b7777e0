"""What minifc keeps in memory, counted tensor by tensor (benchmarks/live_tensors.py): building a model
allocates its parameters and nothing else, and a checkpointed LoRA step holds each block's input, not
each block's activations."""


import pytest
import torch

from minifc.collate import packed_batch
from minifc.config import ModelConfig
from minifc.lora import apply_lora, lora_parameters, mark_only_lora_trainable
from minifc.loss import batch_loss, trained_token_loss
from minifc.model import Transformer

@pytest.fixture(scope="module")
def LiveTensorBytes():
    from benchmarks.live_tensors import LiveTensorBytes
    return LiveTensorBytes


def config(layers: int, tied: bool = True, hidden: int = 64, inner: int = 512, vocab: int = 3000) -> ModelConfig:
    """Gemma 3 shaped (sandwich norms, q/k norms, GeGLU), sliding layers then one global layer;
    the MLP 8x wider than the residual stream, as in the real models (Gemma 3 1B: 6x)."""
    hf = {"model_type": "gemma3_text", "vocab_size": vocab, "hidden_size": hidden, "intermediate_size": inner,
          "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16,
          "sliding_window": 64, "query_pre_attn_scalar": 16, "tie_word_embeddings": tied,
          "layer_types": ["sliding_attention"] * (layers - 1) + ["full_attention"], "max_position_embeddings": 512}
    return ModelConfig.from_hf(hf, source="test config")


def parameter_bytes(model) -> int:
    unique = {p.data_ptr(): p for p in model.parameters()}  # a tied weight counts once
    return sum(p.numel() * p.element_size() for p in unique.values())


@pytest.mark.parametrize("tied", [True, False])
def test_building_a_model_allocates_its_parameters_only(LiveTensorBytes, tied):
    # A tied lm_head used to get its own [vocab, hidden] weight first, dropped by tie_weights: for
    # Gemma 3 1B 1.1 GiB that set the peak memory of building the model.
    with LiveTensorBytes() as live:
        model = Transformer(config(layers=2, tied=tied))
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    assert live.allocated == parameter_bytes(model)
    assert live.current == parameter_bytes(model)  # all of it is the parameters, still alive


def lora_step_peak(LiveTensorBytes, layers: int, checkpointing: bool):
    """Peak bytes of tensors made during one LoRA step (forward, backward, AdamW) of a model with
    `layers` blocks on a packed row of two sequences, and the sizes that bound it."""
    torch.manual_seed(0)
    model = Transformer(config(layers))
    apply_lora(model, r=4, alpha=8)
    mark_only_lora_trainable(model)
    model.gradient_checkpointing = checkpointing
    optimizer = torch.optim.AdamW(lora_parameters(model), lr=1e-3)
    examples = []
    for length in (136, 120):  # the last 16 tokens of each are trained
        ids = torch.randint(0, model.config.vocab_size, (length,)).tolist()
        examples.append((ids, [-100] * (length - 16) + ids[-16:]))
    batch = packed_batch([examples], 256, pad_id=0)
    with LiveTensorBytes() as live:
        batch_loss(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return live.peak, batch


def test_checkpointed_step_keeps_block_inputs_not_activations(LiveTensorBytes):
    layers, c = 6, config(6)
    peak, batch = lora_step_peak(LiveTensorBytes, layers, checkpointing=True)
    tokens, trained, f32 = batch.num_tokens, batch.num_trained, 4
    residual = tokens * c.hidden_size * f32  # one [T, hidden] activation
    # Per token, one block's forward saves under 4 [T, inner] tensors (gate, gelu(gate), up, their
    # product) and under 16 [T, hidden]-sized ones (norms, q/k/v, attention output, residuals): a
    # block's activations are below 4 * inner + 16 * hidden floats per token. Recompute and backward
    # of one block hold those and their gradients: at most twice that at once.
    block = tokens * (4 * c.intermediate_size + 16 * c.hidden_size) * f32
    loss = 3 * trained * c.vocab_size * f32  # logits, log-softmax and its gradient of the trained rows
    masks = 2 * tokens * tokens  # one bool [T, T] attention mask per layer type
    bound = layers * residual + 2 * block + loss + masks
    assert peak <= bound
    # Without checkpointing every block's activations stay until backward: over the bound, so the
    # bound tells the two apart.
    plain, _ = lora_step_peak(LiveTensorBytes, layers, checkpointing=False)
    assert plain > bound > peak


def test_fused_loss_holds_one_vocabulary_sized_tensor_per_chunk(LiveTensorBytes):
    # The logits, turned in place into their gradient (softmax minus one-hot). Before: the logits and
    # the log-probabilities (two); autograd's own log-softmax backward held a third at once.
    torch.manual_seed(0)
    rows, hidden, vocab = 40, 64, 3000
    head = torch.nn.Linear(hidden, vocab, bias=False).requires_grad_(False)
    states = torch.randn(1, rows, hidden, requires_grad=True)
    targets = torch.randint(0, vocab, (1, rows))
    with LiveTensorBytes() as live:
        trained_token_loss(states, targets, head).backward()
    vocab_sized = rows * vocab * 4
    assert vocab_sized <= live.peak <= vocab_sized + 4 * rows * hidden * 4  # + row gradients
