"""Benchmark minifc's LoRA training step against transformers + peft, on the built-in function-calling data.

    python benchmarks/bench_train.py                          # CPU: gemma-3-1b and llama-3.2-1b, 2 layers
    python benchmarks/bench_train.py --device cuda            # GPU: the four full-size configurations
    python benchmarks/bench_train.py --device cuda --models llama-3.1-8b --peak-tflops 989

Both implementations train the same random-weight model (the real width and vocabulary of a registry
entry from minifc/registry.py; on CPU only `--layers` layers), with the same LoRA (rank, alpha, all seven
linear layers of every block), on the same examples (the built-in training data, rendered in the
model's chat format and tokenized with the real tokenizer), the same number of examples per optimiser
step, the same dtype and device, in one process, alternating step by step (A, B, A, B, ...):

- minifc: the step's examples packed into one row (no padding; attention never crosses examples:
  varlen flash attention on CUDA, a block-diagonal mask on CPU), hidden states -> the output projection
  and cross-entropy on the trained rows only (minifc.loss), AdamW over the LoRA parameters.
- reference: what most tutorials do: transformers' *ForCausalLM with attn_implementation="sdpa",
  peft's get_peft_model, one example per row, right padding, the model's own loss over full logits
  (`model(input_ids, attention_mask, labels).loss`), AdamW over the trainable (LoRA) parameters.

The base weights are shared (the transformers model holds minifc's very tensors) and the LoRA weights are
copied, so both start from identical parameters and compute the same loss (tests/test_bench_train.py).

Reported per implementation, over the timed steps after warm-up: trained tokens per second (positions
with a target), total tokens per second (real tokens, padding not counted), both as median and
min-max; peak memory; the ratios minifc / reference. Peak memory is measured in a fresh child process
per implementation (this script with --memory-child), because peak RSS on CPU only ever grows within a
process: CPU: peak RSS of the child (VmHWM in /proc/self/status, reset after the model is built),
CUDA: torch.cuda.max_memory_allocated; the table gives the absolute peak and the peak above the memory
held before the first step ("step") (benchmarks/memory.py). On CPU, RSS also holds what glibc's malloc
keeps of freed tensors, so the table adds "tensor GiB": the peak bytes of tensors made during the
child's last step and alive at once (benchmarks/live_tensors.py), what the step itself needs. On CUDA, model FLOPs utilisation = the step's matrix-multiply FLOPs
(benchmarks/flops.py: step_flops) / time / --peak-tflops. The tables: benchmarks/report.py.
"""

import argparse
import importlib
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).absolute().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.flops import step_flops  # noqa: E402
from benchmarks.live_tensors import LiveTensorBytes  # noqa: E402
from benchmarks.memory import measure_memory, peak_memory  # noqa: E402
from benchmarks.report import describe_device, fast_path_table, markdown_table  # noqa: E402
from minifc.chat import get_format  # noqa: E402
from minifc.collate import packed_batch, padded_batch  # noqa: E402
from minifc.encode import encode_dataset  # noqa: E402
from minifc.masking import IGNORE_INDEX  # noqa: E402
from minifc.config import ModelConfig  # noqa: E402
from minifc.registry import MODELS  # noqa: E402
from minifc.data import BUILTIN_TRAIN, load_examples  # noqa: E402
from minifc.lora import apply_lora, lora_layers, lora_parameters, mark_only_lora_trainable  # noqa: E402
from minifc.loss import batch_loss  # noqa: E402
from minifc.model import Transformer  # noqa: E402
from minifc.tokenizer import Tokenizer  # noqa: E402

warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft on transformers 5; harmless
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# chat format -> the reference tokenizer directory it is written for (Llama 3.1 and 3.2 share one)
TOKENIZER_DIRS = {"gemma3": "gemma-3", "functiongemma": "functiongemma", "llama3.2": "llama-3.2",
                  "llama3.1": "llama-3.2"}
DEFAULT_MODELS = {"cpu": ["gemma-3-1b", "llama-3.2-1b"],
                  "cuda": ["gemma-3-1b", "functiongemma-270m", "llama-3.2-1b", "llama-3.1-8b"]}
IMPLEMENTATIONS = ("minifc", "reference")


# ------------------------------------------------------------------------------------------ models

def bench_hf_config(name: str, layers: int | None = None) -> dict:
    """The registry entry's config.json dict, cut to `layers` layers (None: all). A cut Gemma keeps one
    global layer last and slides in the others, so both attention kinds are measured."""
    hf = dict(MODELS[name].hf_config)
    if hf["model_type"] == "gemma3":  # multimodal entry: the text decoder is what trains
        hf = dict(hf["text_config"])
    full = ModelConfig.from_hf(hf)
    n = layers or full.num_hidden_layers
    hf["num_hidden_layers"] = n
    if full.model_type == "gemma3_text":
        hf["layer_types"] = (list(full.layer_types) if n == full.num_hidden_layers
                             else ["sliding_attention"] * (n - 1) + ["full_attention"])
    return hf


def build_minifc(hf: dict, device, dtype, r: int, alpha: float, seed: int = 0) -> Transformer:
    """Random-weight minifc model in `dtype` on `device` with fp32 LoRA on every block linear."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = Transformer(ModelConfig.from_hf(hf, source="benchmark config"))
    model.to(dtype)
    apply_lora(model, r, alpha, 0.0, ("all",))
    mark_only_lora_trainable(model)
    return model.train()


def build_reference(hf: dict, device, dtype, r: int, alpha: float, share_from: Transformer | None = None,
                    seed: int = 0):
    """transformers *ForCausalLM (sdpa) + peft LoRA, the tutorial way. With share_from, its base weights
    are minifc's very tensors and its LoRA weights copies of minifc's (identical parameters)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = {k: v for k, v in hf.items() if k != "model_type"}
    config = AutoConfig.for_model(hf["model_type"], **fields)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype)
    if share_from is not None:
        base = {name: tensor for name, tensor in share_from.state_dict().items() if ".lora_" not in name}
        missing, unexpected = model.load_state_dict(base, strict=False, assign=True)
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise RuntimeError(f"weights do not line up with transformers: missing {missing}, unexpected {unexpected}")
        model.tie_weights()
    peft_config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(LORA_TARGETS),
                             task_type="CAUSAL_LM")
    model = get_peft_model(model, peft_config)
    if share_from is not None:
        with torch.no_grad():
            for name, layer in lora_layers(share_from).items():
                theirs = model.base_model.model.get_submodule(name)
                theirs.lora_A["default"].weight.copy_(layer.lora_A.weight)
                theirs.lora_B["default"].weight.copy_(layer.lora_B.weight)
    return model.train()


def make_optimizer(params, device, lr: float = 1e-4):
    """AdamW over the given (LoRA) parameters; the fused kernel on CUDA, as train.py does."""
    return torch.optim.AdamW(params, lr=lr, fused=torch.device(device).type == "cuda")


def trainable(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]


# -------------------------------------------------------------------------------------------- data

def fallback_tokenizer(examples, fmt) -> Tokenizer:
    """A small BPE tokenizer trained here on the rendered examples (when the real one is not on disk)."""
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, trainers

    from minifc.encode import render_example
    tk = HFTokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2048, special_tokens=["<pad>", *fmt.control_tokens],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator([render_example(e, fmt).text for e in examples], trainer)
    return Tokenizer(tk, pad_token="<pad>")


def load_sequences(chat_format: str, tokenizer_root: Path | None, max_len: int = 4096, limit: int | None = None):
    """(encoded built-in training examples (the first `limit`), tokenizer, a note saying which tokenizer)."""
    fmt = get_format(chat_format)
    loaded = load_examples(BUILTIN_TRAIN)
    examples = (loaded[0] if isinstance(loaded, tuple) else loaded)[:limit]
    directory = tokenizer_root / TOKENIZER_DIRS[chat_format] if tokenizer_root else None
    if directory is not None and (directory / "tokenizer.json").is_file():
        tokenizer, note = Tokenizer.from_dir(directory), f"real tokenizer {directory}"
    else:
        tokenizer = fallback_tokenizer(examples, fmt)
        note = (f"FALLBACK: no {directory or '--tokenizers directory'}/tokenizer.json, so a {tokenizer.vocab_size}-entry BPE tokenizer "
                "trained here on the data (sequence lengths differ from the real tokenizer's)")
    encoded, report = encode_dataset(examples, tokenizer, fmt, max_len=max_len)
    if not encoded:
        raise SystemExit(f"no usable examples: {report}")
    return encoded, tokenizer, note


def step_examples(encoded, examples_per_step: int, steps: int, seed: int = 0):
    """The examples of each optimiser step: consecutive slices of one seeded shuffle of the data."""
    order = np.random.default_rng(seed).permutation(len(encoded))
    needed = examples_per_step * steps
    order = np.resize(order, needed)  # wraps around if the data is shorter than the run
    return [[encoded[i] for i in order[s * examples_per_step:(s + 1) * examples_per_step]] for s in range(steps)]


def minifc_batch(examples, pad_id: int):
    """All of a step's examples end to end in one row: no padding at all (minifc's packed path)."""
    return packed_batch([examples], sum(len(ids) for ids, _ in examples), pad_id)


def reference_batch(examples, pad_id: int) -> dict:
    """One example per row, right-padded; HF labels (unshifted, -100 on prompt and padding)."""
    batch = padded_batch(examples, pad_id)
    labels = torch.full_like(batch.targets, IGNORE_INDEX)
    labels[:, 1:] = batch.targets[:, :-1]  # targets[t] is the label of token t + 1
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask.long(), "labels": labels,
            "num_tokens": batch.num_tokens, "num_trained": batch.num_trained}


# -------------------------------------------------------------------------------------------- steps

def minifc_step(model, optimizer, batch, loss_chunk: int = 1024) -> torch.Tensor:
    """One optimiser step as train.py takes it, without gradient clipping (the reference step clips
    nothing either); returns the loss as a device tensor (no host sync)."""
    loss = batch_loss(model, batch, loss_chunk)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def reference_step(model, optimizer, batch: dict) -> torch.Tensor:
    """One optimiser step the tutorial way: the model's own loss over full logits."""
    loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 labels=batch["labels"]).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def to_device(batch, device):
    if isinstance(batch, dict):
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return batch.to(device)


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------ memory

def memory_child(args, impl: str) -> dict:
    """Build one implementation alone, run warm-up + 2 steps, and report its peak memory (memory.py)."""
    device = torch.device(args.device)
    hf, dtype = bench_hf_config(args.model_name, args.layers), dtype_of(args)
    encoded, tokenizer, _ = load_sequences(MODELS[args.model_name].chat_format, args.tokenizers)
    steps = step_examples(encoded, args.examples_per_step, args.warmup + 2, args.seed)
    if impl == "minifc":
        model = configure_minifc(build_minifc(hf, device, dtype, args.lora_r, args.lora_alpha), args)
        batches = [minifc_batch(s, tokenizer.pad_id) for s in steps]
        run = lambda opt, b: minifc_step(model, opt, to_device(b, device), args.loss_chunk)
    else:
        model = build_reference(hf, device, dtype, args.lora_r, args.lora_alpha)
        batches = [reference_batch(s, tokenizer.pad_id) for s in steps]
        run = lambda opt, b: reference_step(model, opt, to_device(b, device))
    optimizer = make_optimizer(trainable(model), device)
    return peak_memory(device, [lambda b=b: run(optimizer, b) for b in batches])


# ------------------------------------------------------------------------------------------ the run

def dtype_of(args) -> torch.dtype:
    return getattr(torch, args.dtype)


def configure_minifc(model, args):
    """minifc's optional fast paths: activation checkpointing, torch.compile of each block."""
    model.gradient_checkpointing = args.grad_checkpointing
    if args.compile:
        model.compile_blocks()
    return model


def bench_model(args, name: str) -> dict:
    """Time both implementations alternately on one model; memory from child processes."""
    args.model_name = name
    device, dtype = torch.device(args.device), dtype_of(args)
    memory = {impl: measure_memory(args, impl) for impl in IMPLEMENTATIONS} if not args.no_memory else {}

    hf = bench_hf_config(name, args.layers)
    encoded, tokenizer, note = load_sequences(MODELS[name].chat_format, args.tokenizers)
    steps = step_examples(encoded, args.examples_per_step, args.warmup + args.steps, args.seed)
    ours = configure_minifc(build_minifc(hf, device, dtype, args.lora_r, args.lora_alpha, args.seed), args)
    theirs = build_reference(hf, device, dtype, args.lora_r, args.lora_alpha, share_from=ours)
    optimizers = {"minifc": make_optimizer(lora_parameters(ours), device),
                  "reference": make_optimizer(trainable(theirs), device)}
    times = {impl: [] for impl in IMPLEMENTATIONS}
    losses = {impl: [] for impl in IMPLEMENTATIONS}
    counts, out_of_memory = [], set()
    for s, examples in enumerate(steps):
        ours_batch, theirs_batch = minifc_batch(examples, tokenizer.pad_id), reference_batch(examples, tokenizer.pad_id)
        counts.append((ours_batch.num_tokens, ours_batch.num_trained, theirs_batch["input_ids"].numel(),
                       [len(ids) for ids, _ in examples]))
        for impl in IMPLEMENTATIONS if s % 2 == 0 else IMPLEMENTATIONS[::-1]:  # alternate who goes first
            if impl in out_of_memory:
                continue
            batch = to_device(ours_batch if impl == "minifc" else theirs_batch, device)
            synchronize(device)
            start = time.perf_counter()
            try:
                loss = (minifc_step(ours, optimizers[impl], batch, args.loss_chunk) if impl == "minifc"
                        else reference_step(theirs, optimizers[impl], batch))
                synchronize(device)
            except torch.OutOfMemoryError:  # reported as such; the other implementation goes on
                out_of_memory.add(impl)
                optimizers[impl].zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                continue
            if s >= args.warmup:
                times[impl].append(time.perf_counter() - start)
            losses[impl].append(float(loss))
        print(f"  step {s + 1}/{len(steps)}{' (warm-up)' if s < args.warmup else ''}: " + ", ".join(
            "{} {}".format(impl, "out of memory" if impl in out_of_memory else
                           f"{times[impl][-1] if s >= args.warmup else float('nan'):.2f}s loss {losses[impl][-1]:.4f}")
            for impl in IMPLEMENTATIONS), flush=True)
    if len(out_of_memory) == len(IMPLEMENTATIONS):
        raise SystemExit(f"{name}: both implementations ran out of memory; pass fewer --examples-per-step")

    timed = counts[args.warmup:]
    config = ours.config
    result = {"model": name, "layers": config.num_hidden_layers, "tokenizer": note, "memory": memory,
              "losses": losses, "examples_per_step": args.examples_per_step,
              "tokens_per_step": statistics.mean(c[0] for c in timed),
              "trained_per_step": statistics.mean(c[1] for c in timed),
              "padded_slots_per_step": statistics.mean(c[2] for c in timed)}
    for impl in IMPLEMENTATIONS:
        if impl in out_of_memory:
            result[impl] = None
            continue
        trained_rate = [c[1] / t for c, t in zip(timed, times[impl])]
        total_rate = [c[0] / t for c, t in zip(timed, times[impl])]
        result[impl] = {"seconds": times[impl], "trained_per_s": trained_rate, "tokens_per_s": total_rate}
        if device.type == "cuda":
            flops = [step_flops(config, c[3], c[1], args.lora_r) for c in timed]
            result[impl]["mfu"] = [f / t / (args.peak_tflops * 1e12) for f, t in zip(flops, times[impl])]
    del ours, theirs, optimizers
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def bench_fast_path(args, name: str, flag: str) -> str:
    """Before/after of one minifc fast path: alternate minifc steps with `flag` (a module-level switch
    such as loss.FUSED_BACKWARD) on and off, on the same model and examples; on CPU also the peak of live
    tensors of one more step with each setting."""
    module_name, attribute = flag.rsplit(".", 1)
    module = importlib.import_module(f"minifc.{module_name}")
    device, dtype = torch.device(args.device), dtype_of(args)
    encoded, tokenizer, note = load_sequences(MODELS[name].chat_format, args.tokenizers)
    steps = step_examples(encoded, args.examples_per_step, args.warmup + args.steps, args.seed)
    model = configure_minifc(build_minifc(bench_hf_config(name, args.layers), device, dtype, args.lora_r,
                                          args.lora_alpha, args.seed), args)
    optimizer = make_optimizer(lora_parameters(model), device)
    original, times, trained = getattr(module, attribute), {True: [], False: []}, []
    try:
        for s, examples in enumerate(steps):
            batch = to_device(minifc_batch(examples, tokenizer.pad_id), device)
            if s >= args.warmup:
                trained.append(batch.num_trained)
            for value in (True, False) if s % 2 == 0 else (False, True):
                setattr(module, attribute, value)
                synchronize(device)
                start = time.perf_counter()
                minifc_step(model, optimizer, batch, args.loss_chunk)
                synchronize(device)
                if s >= args.warmup:
                    times[value].append(time.perf_counter() - start)
        peaks = None
        if device.type == "cpu":  # the peak of live tensors of one more step per setting (live_tensors.py)
            peaks = {}
            for value in (False, True):
                setattr(module, attribute, value)
                with LiveTensorBytes() as live:
                    minifc_step(model, optimizer, batch, args.loss_chunk)
                peaks[value] = live.peak
    finally:
        setattr(module, attribute, original)
    return fast_path_table(f"{name} ({model.config.num_hidden_layers})", flag, times, trained, note, peaks)


def build_parser(description: str = __doc__, implementations=IMPLEMENTATIONS):
    p = argparse.ArgumentParser(description=description.split("\n\n")[0])
    add = p.add_argument
    add("--device", default="cpu", help="cpu or cuda")
    add("--models", nargs="+", help="registry names (default: gemma-3-1b llama-3.2-1b on CPU; on CUDA also "
        "functiongemma-270m and llama-3.1-8b)")
    add("--layers", type=int, help="keep only this many layers, 0 for all (default: 2 on CPU, all on CUDA)")
    add("--dtype", help="float32 (CPU default) or bfloat16 (CUDA default)")
    add("--examples-per-step", type=int, help="examples per optimiser step (default: 2 on CPU, 8 on CUDA)")
    add("--warmup", type=int, default=None, help="untimed steps first (default: 1 on CPU, 3 on CUDA)")
    add("--steps", type=int, default=None, help="timed steps (default: 5 on CPU, 10 on CUDA)")
    add("--lora-r", type=int, default=16)
    add("--lora-alpha", type=float, default=32)
    add("--loss-chunk", type=int, default=1024, help="minifc: trained rows per output-projection chunk")
    add("--grad-checkpointing", action="store_true", help="minifc: recompute each block in backward")
    add("--compile", action="store_true", help="minifc: torch.compile each block")
    add("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU for MFU (H100/H200 SXM: 989)")
    add("--tokenizers", type=Path, default=Path(os.environ.get("MINIFC_REFERENCE", ROOT.parent / "shared" / "reference"))
        / "tokenizers",
        help="directory with gemma-3/, functiongemma/, llama-3.2/ tokenizer.json (else a fallback is trained)")
    add("--seed", type=int, default=0)
    add("--no-memory", action="store_true", help="skip the peak-memory child processes")
    add("--json", type=Path, help="also write the raw numbers here")
    add("--fast-path", metavar="MODULE.FLAG", help="instead: time minifc alone with this switch on and off, "
        "alternating (e.g. loss.FUSED_BACKWARD)")
    add("--memory-child", choices=implementations, help=argparse.SUPPRESS)
    return p


def resolve_defaults(args):
    """Fill in the defaults that depend on the device (see build_parser's help)."""
    cuda = torch.device(args.device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch")
    args.dtype = args.dtype or ("bfloat16" if cuda else "float32")
    args.layers = args.layers if args.layers is not None else (None if cuda else 2)
    args.layers = args.layers or None
    args.examples_per_step = args.examples_per_step or (8 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    args.steps = args.steps if args.steps is not None else (10 if cuda else 5)
    args.models = args.models or DEFAULT_MODELS["cuda" if cuda else "cpu"]
    return args


def main(argv=None):
    args = resolve_defaults(build_parser().parse_args(argv))
    cuda = torch.device(args.device).type == "cuda"
    if args.memory_child:
        args.model_name = args.models[0]
        print(json.dumps(memory_child(args, args.memory_child)))
        return
    if args.fast_path:
        print(f"torch {torch.__version__} | {describe_device(args.device)} | {args.dtype} | "
              f"{args.examples_per_step} examples/step, {args.warmup} warm-up + {args.steps} timed steps per setting")
        for name in args.models:
            print(bench_fast_path(args, name, args.fast_path), flush=True)
        return
    print(f"minifc vs transformers {__import__('transformers').__version__} + peft {__import__('peft').__version__}"
          f" | torch {torch.__version__} | {describe_device(args.device)} | {args.dtype} | "
          f"{args.examples_per_step} examples/step, {args.warmup} warm-up + {args.steps} timed steps, "
          f"LoRA r={args.lora_r} alpha={args.lora_alpha:g} on {','.join(LORA_TARGETS)}", flush=True)
    results = []
    for name in args.models:
        print(f"{name}:", flush=True)
        results.append(bench_model(args, name))
        r = results[-1]
        print(f"  {r['tokenizer']}; per step {r['tokens_per_step']:.0f} tokens, {r['trained_per_step']:.0f} "
              f"trained, reference pads to {r['padded_slots_per_step']:.0f} slots; memory {r['memory']}", flush=True)
    print()
    print(markdown_table(results, "cuda" if cuda else "cpu"))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                        indent=1))


if __name__ == "__main__":
    main()
