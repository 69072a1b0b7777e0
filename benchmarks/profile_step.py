"""Profile minifc's LoRA training step: where the time goes, operator by operator.

    python benchmarks/profile_step.py                                   # CPU: gemma-3-1b cut to 2 layers
    python benchmarks/profile_step.py --device cuda --model llama-3.1-8b --examples-per-step 16

The same model, data and step as benchmarks/bench_train.py (random weights with the registry entry's
real sizes, the built-in examples packed into one row, LoRA r=16 on every block linear, loss on the
trained rows, AdamW). After warm-up steps, a few steps run under torch.profiler; the table lists
operators by their own time on the device that does the work (CUDA kernels on a GPU, CPU otherwise),
and the summary line gives the step time and the host's time in the CUDA calls that can make it wait
for the device (cudaStreamSynchronize, cudaMemcpy, cudaMemcpyAsync: a sync inside the step shows up
here; the one torch.cuda.synchronize that ends the profiled steps is not counted).
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).absolute().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from benchmarks.bench_train import (bench_hf_config, build_minifc, load_sequences, make_optimizer,  # noqa: E402
                                    minifc_batch, minifc_step, step_examples, synchronize, to_device)
from minifc.registry import MODELS  # noqa: E402
from minifc.lora import lora_parameters  # noqa: E402

SYNC_EVENTS = ("cudaStreamSynchronize", "cudaMemcpy", "cudaMemcpyAsync")  # not the final cudaDeviceSynchronize


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="gemma-3-1b", choices=sorted(MODELS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", type=int, help="keep this many layers (default: 2 on CPU, all on CUDA)")
    parser.add_argument("--examples-per-step", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--rows", type=int, default=30, help="operators in the table")
    parser.add_argument("--tokenizers", type=Path, help="as in bench_train.py (else a fallback is trained)")
    parser.add_argument("--out", type=Path, help="also write the table here")
    return parser


def main(argv=None) -> str:
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    layers = args.layers if args.layers is not None else (None if cuda else 2)
    dtype = torch.bfloat16 if cuda else torch.float32
    encoded, tokenizer, note = load_sequences(MODELS[args.model].chat_format, args.tokenizers)
    steps = step_examples(encoded, args.examples_per_step, args.warmup + args.steps)
    batches = [minifc_batch(examples, tokenizer.pad_id) for examples in steps]
    model = build_minifc(bench_hf_config(args.model, layers), device, dtype, r=16, alpha=32)
    model.gradient_checkpointing = args.grad_checkpointing
    optimizer = make_optimizer(lora_parameters(model), device)
    print(f"{args.model}, {model.config.num_hidden_layers} layers, {dtype}, {device}; {note}; "
          f"{batches[0].num_tokens} tokens per step ({batches[0].num_trained} trained)", flush=True)

    for batch in batches[:args.warmup]:
        minifc_step(model, optimizer, to_device(batch, device))
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        for batch in batches[args.warmup:]:
            minifc_step(model, optimizer, to_device(batch, device))
        synchronize(device)
    step_seconds = (time.perf_counter() - start) / args.steps

    events = prof.key_averages()
    sort_key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = events.table(sort_by=sort_key, row_limit=args.rows)
    waited = sum(e.cpu_time_total for e in events if e.key in SYNC_EVENTS) / 1e6 / args.steps
    summary = (f"step {step_seconds * 1e3:.1f} ms (under the profiler); host waiting in "
               f"{'/'.join(SYNC_EVENTS)}: {waited * 1e3:.1f} ms per step")
    report = f"{table}\n{summary}\n"
    print(report)
    if args.out:
        args.out.write_text(report)
    return report


if __name__ == "__main__":
    main()
