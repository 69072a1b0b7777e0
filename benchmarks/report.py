"""The benchmark's markdown tables (as pasted into benchmarks/RESULTS.md) and the device line."""

import platform
import statistics
import subprocess

import torch


def spread(values, scale=1.0, digits=0) -> str:
    """'median (min-max)' of the values times `scale`."""
    values = [v * scale for v in values]
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def gib(n) -> str:
    return f"{n / 2 ** 30:.2f}"


def markdown_table(results: list[dict], device: str) -> str:
    """One row per implementation and model (bench_model's results), then the row minifc / reference."""
    implementations = ("minifc", "reference")
    header = ["model (layers)", "impl", "trained tok/s", "total tok/s", "s/step", "peak GiB", "step GiB"]
    if device == "cuda":
        header.append("MFU %")
    else:  # peak RSS includes what glibc's malloc keeps after tensors are freed; this is the tensors alone
        header.append("tensor GiB")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        for impl in implementations:
            m, mem = r[impl], r["memory"].get(impl, {})
            if m is None:
                lines.append(f"| {r['model']} ({r['layers']}) | {impl} | out of memory |" + " |" * (len(header) - 3))
                continue
            peak = gib(mem["peak_bytes"]) if "peak_bytes" in mem else "-"
            step = gib(mem["peak_bytes"] - mem["baseline_bytes"]) if "peak_bytes" in mem else "-"
            row = [f"{r['model']} ({r['layers']})", impl, spread(m["trained_per_s"]), spread(m["tokens_per_s"]),
                   spread(m["seconds"], digits=2), peak, step]
            if device == "cuda":
                row.append(spread(m["mfu"], 100, 1))
            else:
                row.append(gib(mem["tensor_peak_bytes"]) if "tensor_peak_bytes" in mem else "-")
            lines.append("| " + " | ".join(row) + " |")
        ours, theirs = r["minifc"], r["reference"]
        if ours is None or theirs is None:
            continue
        # Both run the same examples at each step, so per step the ratio of trained (or total) tokens
        # per second is the inverse ratio of the step times: the median of those paired ratios.
        speedup = [t / o for o, t in zip(ours["seconds"], theirs["seconds"])]
        mem = r["memory"]
        mem_ratio = step_ratio = "-"
        if all("peak_bytes" in mem.get(i, {}) for i in implementations):
            used = {i: mem[i]["peak_bytes"] - mem[i]["baseline_bytes"] for i in implementations}
            mem_ratio = f"{mem['minifc']['peak_bytes'] / mem['reference']['peak_bytes']:.2f}x"
            step_ratio = f"{used['minifc'] / max(1, used['reference']):.2f}x"
        row = [f"{r['model']} ({r['layers']})", "**minifc / reference**", f"**{spread(speedup, digits=2)}x**",
               f"{spread(speedup, digits=2)}x", f"{spread([1 / x for x in speedup], digits=2)}x", mem_ratio, step_ratio]
        if device == "cuda":
            row.append("")
        else:
            tensors = [mem.get(i, {}).get("tensor_peak_bytes") for i in implementations]
            row.append(f"{tensors[0] / tensors[1]:.2f}x" if all(tensors) else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def fast_path_table(title: str, flag: str, times: dict, trained: list[int], note: str, peaks: dict | None = None) -> str:
    """Step times with the switch off and on (times[False], times[True], paired step by step on the same
    examples, each with `trained` tokens), and the per-step speed-up; with `peaks` (CPU), the peak bytes of
    live tensors of one step with each setting."""
    peak = lambda value: f" {gib(peaks[value])} |" if peaks else ""
    lines = [f"| {title} | {flag} | s/step | trained tok/s |" + (" tensor GiB |" if peaks else ""),
             "|---|---|---|---|" + ("---|" if peaks else "")]
    for value in (False, True):
        lines.append(f"| | {'on' if value else 'off'} | {spread(times[value], digits=2)} | "
                     f"{spread([n / t for n, t in zip(trained, times[value])])} |" + peak(value))
    paired = [off / on for off, on in zip(times[False], times[True])]  # same examples, same step
    ratio = f" {peaks[True] / peaks[False]:.2f}x on/off |" if peaks else ""
    return "\n".join(lines + [f"| | speed-up, time off / on per step | {spread(paired, digits=2)}x | |" + ratio, "", note])


def describe_device(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    name = platform.processor() or "cpu"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{name}, {torch.get_num_threads()} threads"
