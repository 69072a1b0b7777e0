"""Batched decoding with a preallocated KV cache: greedy by default, temperature / top-p sampling optional.

    fmt = get_format("gemma3")
    prompt = tokenizer.encode(fmt.render(messages, tools, add_generation_prompt=True).text)
    [gen] = generate(model, tokenizer, [prompt], tokenizer.stop_ids(fmt), max_new_tokens=256)
    fmt.parse(gen.text)                     # gen.ids, gen.text, gen.stop_reason ("stop" / "length")

How it works (model.py documents the cache API):
  1. Prompts are left-padded to a common length T, so that every row's next token is at the same column;
     the mask hides the padding and positions count real tokens only, so padding changes nothing.
  2. Prefill: one forward pass over [B, T] fills a cache sized for T + max_new_tokens; only the last
     position goes through lm_head (a 262k vocabulary times B x T positions would not fit in memory).
  3. Decode: pick every row's next token from its last logits, feed the [B, 1] tokens, repeat. A row
     ends at its first stop token (kept: the formats' parse() expect it) or after max_new_tokens; a
     finished row is fed padding, its output ignored; the loop ends when every row has finished.
  4. Never past the model's max_position_embeddings: a prompt that reaches it is refused (ValueError),
     and decoding stops there ("length") even when max_new_tokens would allow more.

Sampling (temperature > 0): the logits are divided by the temperature, cut to the smallest set of tokens
whose probability reaches top_p (nucleus sampling), and drawn from with a torch.Generator seeded by
`seed`: a seeded run is reproducible, and the global RNG is left alone.
"""

from dataclasses import dataclass

import torch


@dataclass
class Generation:
    ids: list[int]     # generated token ids, the stop token included when there was one
    text: str          # ids decoded with special tokens kept: what the chat format's parse() reads
    stop_reason: str   # "stop" (ended on a stop token) or "length" (max_new_tokens reached)


def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> (ids [B, T] long, mask [B, T] bool), padded on the left to the longest prompt."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt):] = True
    return ids.to(device), mask.to(device)


def next_tokens(logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per row from logits [B, V]: argmax when temperature is 0, else nucleus sampling."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # drop a token when the tokens ranked above it already reach top_p (the first one always stays)
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # multinomial renormalises


@torch.inference_mode()
def generate(model, tokenizer, prompts: list[list[int]], stop_ids, max_new_tokens: int = 256,
             temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None) -> list[Generation]:
    """Continue each prompt (token ids, BOS included if the format writes one) until one of `stop_ids`
    or `max_new_tokens` new tokens; returns one Generation per prompt, in order."""
    if not prompts:
        raise ValueError("generate: no prompts")
    for i, prompt in enumerate(prompts):
        if len(prompt) == 0:
            raise ValueError(f"generate: prompt {i} is empty; a prompt needs at least one token")
    if max_new_tokens < 1:
        raise ValueError(f"generate: max_new_tokens must be at least 1, got {max_new_tokens}")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"generate: need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    limit = model.config.max_position_embeddings  # positions count real tokens: the longest prompt decides
    longest = max(len(p) for p in prompts)
    if longest >= limit:
        raise ValueError(f"generate: a prompt of {longest} tokens leaves no room under the model's "
                         f"max_position_embeddings ({limit}); shorten it")
    max_new_tokens = min(max_new_tokens, limit - longest)
    device = next(model.parameters()).device
    generator = None
    if temperature > 0:
        generator = torch.Generator(device=device)
        if seed is None:
            generator.seed()        # a fresh random seed
        else:
            generator.manual_seed(seed)
    pad_id = tokenizer.pad_id
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=device)

    ids, mask = left_pad(prompts, pad_id, device)
    batch = ids.shape[0]
    cache = model.new_kv_cache(batch, ids.shape[1] + max_new_tokens)
    hidden = model.hidden_states(ids, attention_mask=mask, kv_cache=cache)
    logits = model.output(hidden[:, -1])                           # [B, V]: the last prompt token only

    out = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)     # ended on a stop token
    lengths = torch.full((batch,), max_new_tokens, dtype=torch.long, device=device)
    for step in range(max_new_tokens):
        token = next_tokens(logits, temperature, top_p, generator)
        token = token.masked_fill(done, pad_id)
        out[:, step] = token
        hit = ~done & torch.isin(token, stops)
        lengths = torch.where(hit, step + 1, lengths)
        done |= hit
        if step + 1 == max_new_tokens or bool(done.all()):         # one host sync per step
            break
        logits = model.output(model.hidden_states(token[:, None], kv_cache=cache)[:, -1])

    rows = [row[:length] for row, length in zip(out.tolist(), lengths.tolist())]
    return [Generation(row, tokenizer.decode(row), "stop" if hit else "length")
            for row, hit in zip(rows, done.tolist())]
