"""QLoRA (train.py --quantize nf4) against plain LoRA in minifc: weight memory, step time, peak memory.

    python benchmarks/bench_nf4.py --table                 # weights-only memory of four models, from their configs
    python benchmarks/bench_nf4.py                         # CPU: llama-3.2-1b widths, 2 layers, fp32
    python benchmarks/bench_nf4.py --device cuda --models llama-3.1-8b [--compile]   # GPU: full depth, bf16

--table: the weights of gemma-3-1b, llama-3.2-3b, llama-3.1-8b and gemma-3-12b (text decoder), computed
from the registry's config numbers (minifc/registry.py): the model is built on the meta device (shapes
only), each block linear weight counted at NF4's bytes (nf4_bytes, the buffers NF4Weight.quantize makes)
and every other tensor at 2 bytes (bf16). Nothing is downloaded or allocated.

The run: two models with the same random weights (a registry entry's widths; on CPU only --layers
layers) and the same LoRA (r=16, alpha=32 on q,k,v,o,gate,up,down), one with its block linears in NF4,
trained alternately step by step on the same built-in examples (bench_train.py's data, batches and
step). Reported: the measured bytes of the NF4 weights against the same weights in bf16; per model
the step time (median, min-max) and trained tokens per second; peak memory in a fresh child process
per model (benchmarks/memory.py: CPU peak RSS and the live-tensor peak of a step, CUDA
max_memory_allocated), with "held" = what is in memory before the first step (mostly the weights).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).absolute().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.bench_train import (bench_hf_config, load_sequences, make_optimizer, minifc_batch,  # noqa: E402
                                    minifc_step, step_examples, synchronize, to_device)
from benchmarks.memory import peak_memory  # noqa: E402
from benchmarks.report import describe_device, gib, spread  # noqa: E402
from minifc.config import ModelConfig  # noqa: E402
from minifc.registry import MODELS  # noqa: E402
from minifc.lora import apply_lora, lora_parameters, mark_only_lora_trainable  # noqa: E402
from minifc.model import Transformer  # noqa: E402
from minifc.nf4 import BLOCK, SCALE_BLOCK, nf4_weights, quantize_model, quantizes  # noqa: E402

TABLE_MODELS = ["gemma-3-1b", "llama-3.2-3b", "llama-3.1-8b", "gemma-3-12b"]
KINDS = ("plain", "nf4")


def nf4_bytes(numel: int) -> int:
    """Bytes of one weight in NF4 (NF4Weight's buffers): codes, 8-bit scales, fp32 second-level scales, mean."""
    blocks = -(-numel // BLOCK)
    scale_blocks = -(-blocks // SCALE_BLOCK)
    return blocks * BLOCK // 2 + scale_blocks * SCALE_BLOCK + 4 * scale_blocks + 4


def weights_table() -> str:
    """Weights-only memory of TABLE_MODELS in bf16 and with --quantize nf4, from their config numbers."""
    lines = ["| model | parameters | of them block linears | bf16 GiB | --quantize nf4 GiB | ratio "
             "| block linears: bf16 -> NF4 GiB |", "|---|---|---|---|---|---|---|"]
    for name in TABLE_MODELS:
        with torch.device("meta"):
            model = Transformer(ModelConfig.from_hf(bench_hf_config(name)))
        linear, rest, quantized = 0, 0, 0
        for module_name, module in model.named_modules():
            if quantizes(module_name, module):
                linear += module.weight.numel()
                quantized += nf4_bytes(module.weight.numel())
        rest = sum(p.numel() for p in model.parameters()) - linear  # a tied lm_head is counted once
        bf16, nf4 = 2 * (linear + rest), quantized + 2 * rest
        lines.append(f"| {name} | {(linear + rest) / 1e9:.2f}B | {linear / 1e9:.2f}B | {gib(bf16)} | {gib(nf4)} | "
                     f"{nf4 / bf16:.2f}x | {gib(2 * linear)} -> {gib(quantized)} |")
    return "\n".join(lines)


def build(hf: dict, kind: str, args) -> Transformer:
    """The benchmark model: random weights (seeded, so both kinds have the same), cast to --dtype, the
    block linears quantized for "nf4" (after the cast: NF4's fp32 scales must not be cast), then LoRA."""
    torch.manual_seed(args.seed)
    with torch.device(args.device):
        model = Transformer(ModelConfig.from_hf(hf, source="benchmark config"))
    model.to(getattr(torch, args.dtype))
    if kind == "nf4":
        quantize_model(model)
    apply_lora(model, args.lora_r, args.lora_alpha, 0.0, ("all",))
    mark_only_lora_trainable(model)
    if args.compile:
        model.compile_blocks()
    return model.train()


def weight_bytes(model) -> dict:
    """Measured: bytes of the NF4 weights' buffers, and of the same weights in bf16."""
    weights = nf4_weights(model).values()
    return {"nf4": sum(w.nbytes() for w in weights), "bf16": sum(2 * w.shape.numel() for w in weights)}


def memory_child(args) -> dict:
    """(child process) Build one kind alone, run warm-up + 2 steps; its peak memory (memory.py)."""
    hf = bench_hf_config(args.models[0], args.layers)
    encoded, tokenizer, _ = load_sequences(MODELS[args.models[0]].chat_format, args.tokenizers)
    model = build(hf, args.memory_child, args)
    optimizer = make_optimizer(lora_parameters(model), args.device)
    batches = [minifc_batch(s, tokenizer.pad_id) for s in step_examples(encoded, args.examples_per_step,
                                                                          args.warmup + 2, args.seed)]
    step = lambda b: minifc_step(model, optimizer, to_device(b, args.device), args.loss_chunk)
    release_freed_memory()
    return peak_memory(args.device, [lambda b=b: step(b) for b in batches])


def release_freed_memory():
    """Give the memory freed while building (the NF4 model's plain weights before quantizing) back to
    the OS (glibc's malloc_trim), so that RSS before the first step is what the model holds."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_memory(args, name: str, kind: str) -> dict:
    import subprocess
    flags = ["--memory-child", kind, "--models", name, "--device", args.device, "--dtype", args.dtype,
             "--layers", str(args.layers or 0), "--examples-per-step", str(args.examples_per_step),
             "--warmup", str(args.warmup), "--seed", str(args.seed), "--tokenizers", str(args.tokenizers)]
    done = subprocess.run([sys.executable, __file__, *flags, *(["--compile"] if args.compile else [])],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_model(args, name: str) -> dict:
    """Both kinds, alternating step by step on the same examples; memory from child processes."""
    memory = {kind: measure_memory(args, name, kind) for kind in KINDS} if not args.no_memory else {}
    hf = bench_hf_config(name, args.layers)
    encoded, tokenizer, note = load_sequences(MODELS[name].chat_format, args.tokenizers)
    models = {kind: build(hf, kind, args) for kind in KINDS}
    optimizers = {kind: make_optimizer(lora_parameters(m), args.device) for kind, m in models.items()}
    times, losses, trained = {kind: [] for kind in KINDS}, {kind: [] for kind in KINDS}, []
    for s, examples in enumerate(step_examples(encoded, args.examples_per_step, args.warmup + args.steps, args.seed)):
        batch = to_device(minifc_batch(examples, tokenizer.pad_id), args.device)
        for kind in KINDS if s % 2 == 0 else KINDS[::-1]:
            synchronize(args.device)
            start = time.perf_counter()
            loss = minifc_step(models[kind], optimizers[kind], batch, args.loss_chunk)
            synchronize(args.device)
            if s >= args.warmup:
                times[kind].append(time.perf_counter() - start)
            losses[kind].append(float(loss))
        if s >= args.warmup:
            trained.append(batch.num_trained)
        print(f"  step {s + 1}: " + ", ".join(f"{k} {times[k][-1] if s >= args.warmup else float('nan'):.2f}s "
                                              f"loss {losses[k][-1]:.4f}" for k in KINDS), flush=True)
    return {"model": name, "layers": models["plain"].config.num_hidden_layers, "tokenizer": note,
            "bytes": weight_bytes(models["nf4"]), "memory": memory, "seconds": times, "losses": losses,
            "trained": trained}


def step_table(results: list[dict]) -> str:
    lines = ["| model (layers) | base | s/step | trained tok/s | peak GiB | held GiB | step GiB | tensor GiB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for kind in KINDS:
            mem = r["memory"].get(kind, {})
            if "peak_bytes" in mem:
                step = mem["peak_bytes"] - mem["baseline_bytes"]
                cells = [gib(mem["peak_bytes"]), gib(mem["baseline_bytes"]), gib(step),
                         gib(mem["tensor_peak_bytes"]) if "tensor_peak_bytes" in mem else "-"]
            else:
                cells = [str(mem.get("error", "-"))] + ["-"] * 3
            rate = [n / t for n, t in zip(r["trained"], r["seconds"][kind])]
            lines.append(f"| {r['model']} ({r['layers']}) | {kind} | {spread(r['seconds'][kind], digits=2)} | "
                         f"{spread(rate)} | " + " | ".join(cells) + " |")
        paired = [q / p for p, q in zip(r["seconds"]["plain"], r["seconds"]["nf4"])]
        mem = r["memory"]
        peak = (f"{mem['nf4']['peak_bytes'] / mem['plain']['peak_bytes']:.2f}x"
                if all("peak_bytes" in mem.get(k, {}) for k in KINDS) else "-")
        lines.append(f"| {r['model']} ({r['layers']}) | **nf4 / plain** | {spread(paired, digits=2)}x | | {peak} "
                     "| | | |")
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--table", action="store_true", help="only print the weights-only memory table (computed)")
    add("--device", default="cpu")
    add("--models", nargs="+", default=["llama-3.2-1b"])
    add("--layers", type=int, help="keep this many layers, 0 for all (default: 2 on CPU, all on CUDA)")
    add("--dtype", help="float32 (CPU default) or bfloat16 (CUDA default)")
    add("--examples-per-step", type=int, help="default: 2 on CPU, 8 on CUDA")
    add("--warmup", type=int, help="untimed steps first (default: 1 on CPU, 3 on CUDA)")
    add("--steps", type=int, help="timed steps (default: 5 on CPU, 10 on CUDA)")
    add("--lora-r", type=int, default=16)
    add("--lora-alpha", type=float, default=32)
    add("--loss-chunk", type=int, default=1024)
    add("--compile", action="store_true", help="torch.compile each block of both models")
    add("--tokenizers", type=Path, default=ROOT.parent / "shared" / "reference" / "tokenizers")
    add("--seed", type=int, default=0)
    add("--no-memory", action="store_true", help="skip the peak-memory child processes")
    add("--json", type=Path, help="also write the raw numbers here")
    add("--memory-child", choices=KINDS, help=argparse.SUPPRESS)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.table:
        print(weights_table())
        return
    cuda = torch.device(args.device).type == "cuda"
    args.dtype = args.dtype or ("bfloat16" if cuda else "float32")
    args.layers = (args.layers if args.layers is not None else (0 if cuda else 2)) or None
    args.examples_per_step = args.examples_per_step or (8 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    args.steps = args.steps if args.steps is not None else (10 if cuda else 5)
    if args.memory_child:
        print(json.dumps(memory_child(args)))
        return
    print(f"minifc LoRA, plain vs --quantize nf4 | torch {torch.__version__} | {describe_device(args.device)} | "
          f"{args.dtype} | {args.examples_per_step} examples/step, {args.warmup} warm-up + {args.steps} timed steps"
          f"{' | --compile' if args.compile else ''}", flush=True)
    results = []
    for name in args.models:
        print(f"{name}:", flush=True)
        r = bench_model(args, name)
        results.append(r)
        nf4, bf16 = r["bytes"]["nf4"], r["bytes"]["bf16"]
        print(f"  {r['tokenizer']}; {statistics.mean(r['trained']):.0f} trained tokens per step; NF4 weights "
              f"{nf4} B vs {bf16} B in bf16: {nf4 / bf16:.4f}x", flush=True)
    print()
    print(step_table(results))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                        indent=1))


if __name__ == "__main__":
    main()
