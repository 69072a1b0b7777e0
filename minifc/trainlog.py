"""What a training run reports: one line per step, `metrics.jsonl`, and a loss-curve PNG at the end.

    log = MetricsLog(out / "metrics.jsonl", resume_step=120)   # drops lines past a resumed checkpoint
    log.write(step_record(step, total, loss, lr, grad_norm, tokens, trained, elapsed, steps_done, device))
    print(step_line(record, total_steps))
    plot_losses(out / "metrics.jsonl", out / "loss.png")       # only if matplotlib is installed
"""

import json
import math
import resource
from pathlib import Path

import torch


class MetricsLog:
    """Append-only JSON lines. On resume, lines of steps after the checkpoint (logged by the run that
    stopped, then lost with it) are dropped, so the file reads like one uninterrupted run."""

    def __init__(self, path, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is not None and self.path.is_file():
            kept = [record for record in self.read() if record.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(record) + "\n" for record in kept))

    def write(self, record: dict):
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        """The records; a line that is not a JSON object (the last one, cut by a kill mid-write) is left out."""
        records = []
        for line in self.path.read_text().splitlines() if self.path.is_file() else []:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return [record for record in records if isinstance(record, dict)]


def peak_memory_gb(device: torch.device) -> float:
    """Peak GPU memory allocated by tensors on CUDA; the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def step_record(step, total, loss, lr, grad_norm, tokens, trained, elapsed, steps_done, device) -> dict:
    """One line of metrics.jsonl. tokens / trained: counted since this process started, over
    `steps_done` steps and `elapsed` seconds (so rates and ETA are this run's, resumed or not)."""
    return {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tokens / elapsed,
            "trained_tokens_per_s": trained / elapsed, "elapsed_s": elapsed,
            "eta_s": elapsed / steps_done * (total - step), "peak_memory_gb": peak_memory_gb(device)}


def step_line(r: dict, total_steps: int) -> str:
    """step 12/300 | loss 2.3456 | lr 1.20e-04 | grad 0.84 | 12.3k tok/s (1.1k trained/s) | ETA ... | mem ..."""
    return (f"step {r['step']}/{total_steps} | loss {r['loss']:.4f} | lr {r['lr']:.2e} | grad {r['grad_norm']:.3f}"
            f" | {r['tokens_per_s'] / 1e3:.1f}k tok/s ({r['trained_tokens_per_s'] / 1e3:.2f}k trained/s)"
            f" | ETA {duration(r['eta_s'])} | mem {r['peak_memory_gb']:.2f} GB")


def plot_losses(metrics_path, png_path) -> Path | None:
    """Training and held-out loss against the step, if matplotlib is installed (an optional dependency)."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no loss plot (pip install matplotlib)")
        return None
    records = MetricsLog(metrics_path).read()
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label, marker in (("loss", "training loss", None), ("heldout_loss", "held-out loss", "o")):
        points = [(r["step"], r[key]) for r in records if key in r]
        if points:
            ax.plot(*zip(*points), label=label, marker=marker)
    ax.set(xlabel="optimizer step", ylabel="cross-entropy on trained tokens")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return Path(png_path)
