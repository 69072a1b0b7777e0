"""train.py's settings: its flags, their defaults (the offline demo's own), their ranges, and the
refusals of settings that cannot work, all before anything runs.

    args = parse_args(argv)    # the flags given now (over a resumed run's saved ones), then the defaults

Every refusal is a one-line sys.exit naming the flag and the fix.
"""

import argparse
import sys
from pathlib import Path

import torch

from . import distributed
from .cli import HelpFormatter, device_error
from .registry import resolve_model_name
from .trainstate import resume_changes, saved_flags

# The offline demo learns from scratch: full fine-tuning, a higher learning rate, shorter rows.
TINY_DEFAULTS = dict(full=True, lr=3e-3, max_len=1024, batch_tokens=4096, epochs=3, eval_interval=100,
                     save_interval=200, format="gemma3", warmup_steps=10, eval_examples=64)
DEFAULTS = dict(full=False, lr=2e-4, max_len=2048, batch_tokens=16384, epochs=3, eval_interval=50,
                save_interval=100, format=None, warmup_steps=None, eval_examples=256)


# The range of every numeric flag: a value outside it is refused before anything runs.
RANGES = {">= 1": lambda v: v >= 1, ">= 0": lambda v: v >= 0, "> 0": lambda v: v > 0,
          "in [0, 1)": lambda v: 0 <= v < 1, "in [0, 1]": lambda v: 0 <= v <= 1}
LIMITS = dict(grad_accum=">= 1", max_len=">= 1", batch_tokens=">= 1", lora_r=">= 1", eval_interval=">= 1",
              save_interval=">= 1", keep_checkpoints=">= 1", max_steps=">= 1", loss_chunk=">= 1", seed=">= 0",
              check_examples=">= 0", eval_examples=">= 0", warmup_steps=">= 0", weight_decay=">= 0", grad_clip=">= 0",
              epochs="> 0", lr="> 0", lora_alpha="> 0", lora_dropout="in [0, 1)", min_lr_ratio="in [0, 1]")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Fine-tune Gemma 3 / FunctionGemma / Llama 3.x for function calling.",
                                formatter_class=HelpFormatter)
    add = p.add_argument
    add("--model", default="gemma-3-1b", help="short name (see minifc/registry.py), hub id, local directory, "
        "or 'tiny' (the offline demo)")
    add("--format", help="chat format (default: the model's): functiongemma, gemma3, llama3.1, llama3.2, qwen3, "
        "qwen3-2507, qwen2.5")
    add("--data", help="training data: JSONL/JSON file, directory or hf:OWNER/NAME[/FILE] (default: built-in; "
        "tiny: data/demo.jsonl, written by data/generate.py --demo)")
    add("--data-format", help="record layout of --data (default: detected): canonical, glaive, hermes, xlam, simple")
    add("--strict", action="store_true", help="stop at the first invalid example instead of skipping it")
    add("--eval-data", help="held-out data (default: the built-in test split, or 5%% of --data)")
    add("--train-on", default="assistant", metavar="ROLES",
        help="comma list of the messages trained: assistant (default), tool, user, system")
    add("--last-turn-only", action="store_true", help="train only the last assistant turn (the others are context)")
    add("--no-train-reasoning", action="store_true", help="leave reasoning traces untrained (context the model reads)")
    add("--out", help="output directory (default: out/<model name>)")
    add("--resume", metavar="OUT", help="continue the run in OUT from its latest checkpoint")
    add("--overwrite", action="store_true", help="delete OUT's previous checkpoints and start over")
    add("--epochs", type=float, help="passes over the data (default 3; tiny: 3)")
    add("--max-steps", type=int, help="optimizer steps (overrides --epochs; default: from --epochs)")
    add("--lr", type=float, help="peak learning rate (default 2e-4; tiny: 3e-3)")
    add("--schedule", default="cosine", choices=["cosine", "linear", "constant"], help="decay after warmup")
    add("--warmup-steps", type=int, help="linear warmup steps (default 5%% of the steps)")
    add("--min-lr-ratio", type=float, default=0.1, help="final learning rate as a fraction of --lr")
    add("--weight-decay", type=float, default=0.0, help="AdamW weight decay (matrices only)")
    add("--grad-clip", type=float, default=1.0, help="clip the gradient norm to this (0: off)")
    add("--batch-tokens", type=int, help="tokens per micro-batch: rows of --max-len tokens (default 16384)")
    add("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    add("--max-len", type=int, help="longest example in tokens, also the packed row length (default 2048)")
    add("--truncate", action="store_true", help="cut longer examples at a turn boundary instead of dropping them")
    add("--no-packing", action="store_true", help="one example per row, padded (slower; the reference path)")
    add("--lora-r", type=int, default=16, help="LoRA rank")
    add("--lora-alpha", type=float, default=32, help="LoRA scale numerator: alpha / r")
    add("--lora-dropout", type=float, default=0.0, help="dropout on the LoRA input")
    add("--lora-targets", default="all", help="comma-separated: q,k,v,o,gate,up,down or all")
    add("--rslora", action="store_true", help="scale by alpha/sqrt(r) instead of alpha/r")
    add("--full", action="store_true", default=None, help="full fine-tune instead of LoRA (small models; default: "
        "off, on for tiny)")
    add("--quantize", choices=["nf4"], help="QLoRA: store the frozen linear weights of the blocks in 4-bit NF4 "
        "(LoRA runs only)")
    add("--seed", type=int, default=0, help="seed of initialisation, data order and sampling")
    add("--eval-interval", type=int, help="held-out loss every N steps (default 50)")
    add("--eval-examples", type=int, help="at most this many held-out examples (default 256; tiny: 64)")
    add("--check-examples", type=int, default=8, help="held-out examples for the before/after tool-call check")
    add("--save-interval", type=int, help="checkpoint every N steps (default 100)")
    add("--keep-checkpoints", type=int, default=3, help="keep the latest N step-* checkpoints")
    add("--grad-checkpointing", action="store_true", help="recompute activations in backward (less memory)")
    add("--compile", action="store_true", help="torch.compile each transformer block")
    add("--loss-chunk", type=int, default=1024, help="trained rows per lm_head chunk in the loss")
    add("--device", help="cuda or cpu (default: cuda if available)")
    # float16 is not offered: Gemma 3's activations exceed its range (65504) and overflow to inf/NaN
    add("--dtype", choices=["bfloat16", "float32"], help="default: bfloat16 on CUDA, float32 on CPU")
    add("--export", action="store_true", help="also write a merged Hugging Face model to OUT/merged")
    add("--parallel", default="auto", choices=["auto", "ddp", "fsdp"], help="under torchrun: ddp (the default) "
        "replicates the model on each rank; fsdp shards it (FSDP2) for models that do not fit one GPU")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """The settings, fixed here once: the flags given now (over a resumed run's saved ones), then the defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume:  # parse again into the saved settings: argparse sets a default only where nothing is
        try:
            saved = saved_flags(args.resume)
        except (OSError, ValueError) as error:
            sys.exit(str(error))
        args = parser.parse_args(argv, argparse.Namespace(**saved))
        if changed := resume_changes(saved, vars(args)):
            sys.exit(f"--resume {args.resume} continues the run as it was set up; these flags would change it: "
                     f"{'; '.join(changed)}. Drop them, or start a new run with another --out (or --overwrite).")
        args.out = args.resume
    for key, value in (TINY_DEFAULTS if args.model == "tiny" else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.out = args.out or str(Path("out") / Path(args.model.rstrip("/")).name)
    args.device = distributed.local_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if error := device_error(args.device):
        sys.exit(error)
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    if args.quantize and args.full:  # a trained weight cannot live in 4 bits
        sys.exit(f"--quantize {args.quantize} is for LoRA runs (a frozen base in 4 bits); " + (
            "--model tiny trains the whole model (--full). For QLoRA on the demo, train LoRA on its result: "
            f"python train.py --model {Path(args.out) / 'final'} --quantize {args.quantize}" if args.model == "tiny"
            else "--full trains every weight, which stays in --dtype: drop one of the two flags"))
    if args.quantize and args.parallel == "fsdp":
        sys.exit(f"--quantize {args.quantize} cannot be sharded by --parallel fsdp (its 4-bit weights are not "
                 "parameters FSDP2 can split): use --parallel ddp, or drop --quantize")
    for name, limit in LIMITS.items():
        if getattr(args, name) is not None and not RANGES[limit](getattr(args, name)):
            sys.exit(f"--{name.replace('_', '-')} must be {limit}, got {getattr(args, name)}")
    if args.batch_tokens < args.max_len:
        sys.exit(f"--batch-tokens ({args.batch_tokens}) must be at least --max-len ({args.max_len}): a micro-batch "
                 "holds whole rows of --max-len tokens")
    try:
        distributed.parallel_mode(args.parallel)
        distributed.check_divisible(args.batch_tokens, args.max_len)
    except ValueError as error:
        sys.exit(str(error))
    if args.model != "tiny":
        try:
            resolve_model_name(args.model)  # an unknown name lists the known ones
        except ValueError as error:
            sys.exit(f"{error}, or tiny (the offline demo)")
    return args
