"""Peak memory of one implementation, measured in a fresh child process.

Peak RSS on CPU only ever grows within a process, so bench_train.py starts itself again per
implementation (`--memory-child minifc|reference`, with the parent's settings: child_flags); the child
builds that implementation alone, runs warm-up + 2 steps through peak_memory and prints the result as
one JSON line. CPU: peak RSS (VmHWM in /proc/self/status, reset after the model is built) and the
peak bytes of live tensors in the last step; CUDA: torch.cuda.max_memory_allocated. The baseline is
what is held before the first step (weights, data, interpreter).
"""

import json
import subprocess
import sys
from pathlib import Path

import torch

from benchmarks.live_tensors import LiveTensorBytes

BENCH_SCRIPT = Path(__file__).absolute().with_name("bench_train.py")  # what the child runs


def rss_bytes(field: str = "VmRSS") -> int:
    """This process's resident memory now (VmRSS) or at its peak (VmHWM), from /proc/self/status.
    Not getrusage's ru_maxrss: Linux carries that across fork + exec, so a child started by a big
    parent would report the parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status (peak RSS is measured on Linux only)")


def peak_memory(device, steps) -> dict:
    """Run `steps` (callables taking no argument; the model, optimiser and batches they use already
    built) and report the peak memory and the memory held just before the first step. On CPU also
    the peak bytes of tensors alive at once during the last step (live_tensors.py): peak RSS also
    holds what glibc's malloc keeps of freed tensors, which the step itself does not need."""
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        reset_peak_rss()  # building the model may have peaked higher than training does
        baseline = rss_bytes("VmRSS")
    result = {}
    for i, step in enumerate(steps):
        if not cuda and i == len(steps) - 1:  # CPU has no allocator statistics: count the tensors
            with LiveTensorBytes() as live:
                step()
            result["tensor_peak_bytes"] = live.peak
        else:
            step()
    if cuda:
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() if cuda else rss_bytes("VmHWM")
    return {"peak_bytes": peak, "baseline_bytes": baseline, **result}


def reset_peak_rss():
    """Restart VmHWM from the current RSS (Linux: writing 5 to /proc/self/clear_refs), so the peak
    measured afterwards is that of what runs afterwards."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure_memory(args, impl: str, script: Path = BENCH_SCRIPT) -> dict:
    """Run `script`'s child for `impl` on args.model_name; its result, or {"error": [last line of its output]}."""
    command = [sys.executable, str(script), "--memory-child", impl, "--models", args.model_name,
               *child_flags(args)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_flags(args) -> list[str]:
    """bench_train.py's flags that make the child measure what the parent times."""
    flags = ["--device", args.device, "--dtype", args.dtype, "--examples-per-step", str(args.examples_per_step),
             "--warmup", str(args.warmup), "--lora-r", str(args.lora_r), "--lora-alpha", str(args.lora_alpha),
             "--loss-chunk", str(args.loss_chunk), "--seed", str(args.seed)]
    flags += ["--layers", str(args.layers or 0)]  # 0: all layers
    if args.tokenizers:
        flags += ["--tokenizers", str(args.tokenizers)]
    if args.grad_checkpointing:
        flags.append("--grad-checkpointing")
    if args.compile:
        flags.append("--compile")
    return flags
