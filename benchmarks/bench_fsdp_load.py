"""Host memory of loading a model: each FSDP2 rank (distributed.load_sharded) against one process loading
it whole (checkpoint.load_pretrained).

    python benchmarks/bench_fsdp_load.py [--ranks 2] [--layers 8]      # writes a random llama to a temp dir

A random Llama (hidden 1024, MLP 4096, vocab 32000, untied head; 8 layers: 185M parameters, 0.35 GiB in
bf16) is saved as safetensors; then, each in a fresh process so that peaks do not mix: one process
loads it whole in bf16 on CPU, and `torchrun --nproc-per-node N` ranks (gloo) load it with FSDP2.
Reported per process: the peak resident memory (ru_maxrss) above what the process held before loading
(torch imported, model code loaded), after reading the weights, and after the first forward, in which
FSDP2 gathers the root group (embeddings, final norm, lm_head: whole on every rank while it runs) and
one block at a time.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).absolute().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from minifc.config import ModelConfig  # noqa: E402
from minifc.model import Transformer  # noqa: E402


def hf_config(layers: int) -> dict:
    return dict(model_type="llama", vocab_size=32000, hidden_size=1024, intermediate_size=4096,
                num_hidden_layers=layers, num_attention_heads=16, num_key_value_heads=4, rms_norm_eps=1e-5,
                rope_theta=500000.0, tie_word_embeddings=False, max_position_embeddings=4096)


def write_model(directory: Path, layers: int) -> int:
    from safetensors.torch import save_file
    config = hf_config(layers)
    model = Transformer(ModelConfig.from_hf(config)).to(torch.bfloat16)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(config))
    return sum(v.nbytes for v in state.values())


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(mode: str, directory: str):
    """One measurement, printed as a JSON line: before (RSS), peak after reading, peak after a forward."""
    from minifc import distributed
    from minifc.checkpoint import load_pretrained
    import torch.distributed as dist
    before = rss_mib()
    if mode == "whole":
        model = load_pretrained(directory, "cpu", torch.bfloat16)
        read = peak_mib()
        with torch.no_grad():
            model(torch.zeros(1, 1, dtype=torch.long))
        rank = 0
    else:
        dist.init_process_group("gloo")
        rank = dist.get_rank()
        original = distributed._read_shards
        marks = {}

        def read_and_mark(*args):  # the peak right after this rank has read its shards, before any forward
            original(*args)
            marks["read"] = peak_mib()
        distributed._read_shards = read_and_mark
        distributed.load_sharded(directory, torch.device("cpu"), torch.bfloat16)
        read = marks["read"]
    forward = peak_mib() - before
    import ctypes
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # what the process still holds, without the allocator's free pages
    print(json.dumps({"mode": mode, "rank": rank, "before": before, "read": read - before,
                      "forward": forward, "held": rss_mib() - before}), flush=True)
    if mode != "whole":
        dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        size = write_model(Path(tmp), args.layers)
        print(f"model: {args.layers} layers, {size / 2**20:.0f} MiB of bf16 weights (safetensors)")
        runs = [[sys.executable, __file__, "--child", "whole", tmp],
                [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.ranks}",
                 __file__, "--child", "fsdp", tmp]]
        rows = []
        for command in runs:
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            rows += [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    print("| process | held before loading (MiB) | peak after reading the weights (MiB) | "
          "peak after a forward (MiB) | share of the weights |")
    print("|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["mode"], r["rank"])):
        name = "one process, whole model" if r["mode"] == "whole" else f"FSDP2 rank {r['rank']} of {args.ranks}"
        share = size / (1 if r["mode"] == "whole" else args.ranks) / 2**20
        print(f"| {name} | {r['before']:.0f} | +{r['read']:.0f} | +{r['forward']:.0f} | {share:.0f} |")


if __name__ == "__main__":
    main()
