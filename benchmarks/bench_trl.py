"""Benchmark minifc's LoRA training step against TRL's SFTTrainer configured at its best.

    /work/trl-venv/bin/python benchmarks/bench_trl.py          # CPU: gemma-3-1b and llama-3.2-1b, 2 layers
    /work/trl-venv/bin/python benchmarks/bench_trl.py --impls trl-nofallback   # without TRL as shipped (slow)

TRL is a benchmark-only dependency (never imported by minifc/ or tests/); install it into a venv that
keeps the tested transformers and torch: `python -m venv --system-site-packages VENV;
VENV/bin/pip install --no-deps trl==1.16.0; VENV/bin/pip install datasets`.

The same model, LoRA, examples and step pairing as bench_train.py (its helpers are used), with two
implementations in place of its tutorial reference:

- trl: SFTTrainer (SFTConfig: packing=True, packing_strategy="bfd", padding_free=True,
  completion_only_loss=True, loss_type="nll", plain AdamW at minifc's lr and weight decay, constant
  schedule) around transformers' *ForCausalLM (sdpa) with peft LoRA (minifc's rank, alpha and seven
  targets). Its data is minifc's own: each example's token ids and a completion_mask that is 1 exactly
  where minifc trains, a pre-tokenized dataset. Each step's examples go through the trainer's own
  dataset preparation (labels from completion_mask, bfd packing with max_length = the longest step, so
  one step is one padding-free row) and its own collator (position_ids, cu_seq_lens, labels -100 at
  each sequence start). The step is the body of Trainer's loop: trainer.training_step (SFTTrainer's
  compute_loss: the fused LM head of trl.trainer.utils.add_fused_lm_head, whose chunked `nll` loss never
  builds the full logits; backward), optimizer.step, lr_scheduler.step, zero_grad. No gradient clipping
  (minifc's step in bench_train.py clips nothing either).
- trl-nofallback: the same, with TRL's CPU fallback removed. In `add_fused_lm_head` (trl/trainer/
  utils.py) the line `compact = _use_triton(hidden_states.device)` decides which positions go through
  the vocabulary projection: on CUDA/XPU with Triton only the positions with a label (the ~6% that are
  trained here), elsewhere every position (so that tile shapes do not change per batch on compiling
  backends such as Neuron). The chunked kernel's forward, its backward recompute and its gradient GEMM
  all run over those positions. This variant replaces the name `_use_triton` in trl.trainer.utils only
  (while its step runs) by a function returning True, so `compact` is True on CPU as on CUDA; the kernel
  module's own `_use_triton` is untouched, so the tiles are still folded by TRL's torch code, not
  Triton. Nothing else changes; the loss is the same (asserted per step in the output).

All three share the base weights (the transformers models hold minifc's tensors) and start from copies
of minifc's LoRA weights, so their losses agree step by step (printed, with the largest difference).
Memory: a fresh child process per implementation, as in bench_train.py (benchmarks/memory.py).
"""

import contextlib
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).absolute().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks import bench_train as bt  # noqa: E402
from benchmarks.memory import BENCH_SCRIPT, measure_memory, peak_memory  # noqa: E402
from benchmarks.report import describe_device, gib, spread  # noqa: E402
from minifc.masking import IGNORE_INDEX  # noqa: E402
from minifc.registry import MODELS  # noqa: E402

IMPLEMENTATIONS = ("minifc", "trl", "trl-nofallback")
warnings.filterwarnings("ignore", message=".*padding-free.*")


# ------------------------------------------------------------------------------------------- TRL

@contextlib.contextmanager
def fallback_removed(active: bool = True):
    """While active: TRL's fused LM head scores only the labelled positions on CPU too (see the docstring)."""
    import trl.trainer.utils as trl_utils
    original = trl_utils._use_triton
    if active:
        trl_utils._use_triton = lambda device: True
    try:
        yield
    finally:
        trl_utils._use_triton = original


def processing_class(tokenizer):
    """minifc's tokenizer as the transformers tokenizer SFTTrainer asks for (it reads only the pad token)."""
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer.tk, pad_token=tokenizer.pad_token)


def trl_rows(examples) -> list[dict]:
    """minifc's (ids, labels) as TRL's pre-tokenized rows: completion_mask is 1 where minifc trains."""
    return [{"input_ids": list(ids), "completion_mask": [int(label != IGNORE_INDEX) for label in labels]}
            for ids, labels in examples]


def build_trl(hf, device, dtype, args, tokenizer, max_length: int, share_from=None):
    """SFTTrainer around the transformers + peft model of bench_train.build_reference."""
    from datasets import Dataset, disable_progress_bars
    from trl import SFTConfig, SFTTrainer

    disable_progress_bars()

    model = bt.build_reference(hf, device, dtype, args.lora_r, args.lora_alpha, share_from)
    config = SFTConfig(output_dir=tempfile.mkdtemp(prefix="bench_trl_"), report_to="none",
                       use_cpu=torch.device(device).type == "cpu", bf16=dtype == torch.bfloat16,
                       packing=True, packing_strategy="bfd", padding_free=True, max_length=max_length,
                       completion_only_loss=True, loss_type="nll", shuffle_dataset=False,
                       per_device_train_batch_size=1, learning_rate=1e-4, weight_decay=0.01,
                       lr_scheduler_type="constant", optim="adamw_torch", max_grad_norm=0.0,
                       dataset_num_proc=None, logging_strategy="no", save_strategy="no")
    placeholder = Dataset.from_list(trl_rows([([1, 2], [IGNORE_INDEX, 2])]))
    trainer = SFTTrainer(model=model, args=config, train_dataset=placeholder,
                         processing_class=processing_class(tokenizer))
    trainer.create_optimizer_and_scheduler(num_training_steps=args.warmup + args.steps)
    trainer.current_gradient_accumulation_steps = 1  # what Trainer's loop sets before each step
    return trainer


def trl_batch(trainer, examples) -> dict:
    """One step's examples through SFTTrainer's own preparation (bfd packing) and collator: one row."""
    from datasets import Dataset
    packed = trainer._prepare_dataset(Dataset.from_list(trl_rows(examples)), trainer.processing_class,
                                      trainer.args, True, None, "bench")
    if len(packed) != 1:
        raise RuntimeError(f"bfd packed a step into {len(packed)} rows; max_length is too small")
    return trainer.data_collator(list(packed))


def trl_step(trainer, batch: dict) -> torch.Tensor:
    """The body of Trainer's inner loop (no clipping: max_grad_norm=0)."""
    loss = trainer.training_step(trainer.model, dict(batch))
    trainer.optimizer.step()
    trainer.lr_scheduler.step()
    trainer.model.zero_grad(set_to_none=True)
    return loss.detach()


# ------------------------------------------------------------------------------------------- run

def setup(args, name: str, impls, share: bool = True):
    """{impl: (make_batch(examples), step(batch))}, the steps' examples and the tokenizer note."""
    device, dtype = torch.device(args.device), bt.dtype_of(args)
    hf = bt.bench_hf_config(name, args.layers)
    encoded, tokenizer, note = bt.load_sequences(MODELS[name].chat_format, args.tokenizers)
    steps = bt.step_examples(encoded, args.examples_per_step, args.warmup + args.steps, args.seed)
    max_length = max(sum(len(ids) for ids, _ in s) for s in steps)
    ours = None  # a TRL memory child builds no minifc model
    if "minifc" in impls or share:
        ours = bt.configure_minifc(bt.build_minifc(hf, device, dtype, args.lora_r, args.lora_alpha, args.seed), args)
    runners = {}
    if "minifc" in impls:
        optimizer = bt.make_optimizer(bt.trainable(ours), device)
        runners["minifc"] = (lambda s: bt.to_device(bt.minifc_batch(s, tokenizer.pad_id), device),
                             lambda b: bt.minifc_step(ours, optimizer, b, args.loss_chunk))
    for impl in ("trl", "trl-nofallback"):
        if impl in impls:
            trainer = build_trl(hf, device, dtype, args, tokenizer, max_length, ours if share else None)

            def step(batch, trainer=trainer, impl=impl):
                with fallback_removed(impl == "trl-nofallback"):
                    return trl_step(trainer, batch)
            runners[impl] = (lambda s, trainer=trainer: trl_batch(trainer, s), step)
    return runners, steps, note


def memory_child(args, impl: str) -> dict:
    """One implementation alone: warm-up + 2 steps, peak memory (benchmarks/memory.py)."""
    args.steps = 2
    runners, steps, _ = setup(args, args.model_name, (impl,), share=False)
    make_batch, step = runners[impl]
    batches = [make_batch(s) for s in steps]
    return peak_memory(args.device, [lambda b=b: step(b) for b in batches])


def bench_model(args, name: str) -> dict:
    """Time the implementations (args.impls) alternately (rotating who goes first); memory from child processes."""
    memory, args.model_name, impls = {}, name, args.impls
    if not args.no_memory:
        memory = {impl: measure_memory(args, impl, BENCH_SCRIPT if impl == "minifc" else Path(__file__))
                  for impl in impls}
    runners, steps, note = setup(args, name, impls)
    times, losses, trained = {i: [] for i in impls}, {i: [] for i in impls}, []
    for s, examples in enumerate(steps):
        batches = {impl: make_batch(examples) for impl, (make_batch, _) in runners.items()}  # not timed
        if s >= args.warmup:
            trained.append(batches["minifc"].num_trained)
        for impl in impls[s % len(impls):] + impls[:s % len(impls)]:  # rotate who goes first
            start = time.perf_counter()
            loss = float(runners[impl][1](batches[impl]))
            if s >= args.warmup:
                times[impl].append(time.perf_counter() - start)
            losses[impl].append(loss)
        print(f"  step {s + 1}/{len(steps)}{' (warm-up)' if s < args.warmup else ''}: " + ", ".join(
            f"{impl} {times[impl][-1] if s >= args.warmup else float('nan'):.2f}s loss {losses[impl][-1]:.7f}"
            for impl in impls), flush=True)
    gap = max(abs(losses[i][k] - losses["minifc"][k]) for i in impls for k in range(len(steps)))
    return {"model": name, "layers": args.layers or "all", "impls": impls, "tokenizer": note, "memory": memory,
            "losses": losses,
            "max_loss_gap": gap, "trained_per_step": statistics.mean(trained),
            "trained_per_s": {i: [n / t for n, t in zip(trained, times[i])] for i in impls}}


def table(results: list[dict]) -> str:
    """Trained tokens/s and step memory per implementation, and minifc's ratio to each."""
    lines = ["| model (layers) | implementation | trained tok/s | peak GiB | step GiB | tensor GiB |",
             "|---|---|---|---|---|---|"]
    for r in results:
        rate, mem = r["trained_per_s"], r["memory"]
        step = {i: mem[i]["peak_bytes"] - mem[i]["baseline_bytes"] for i in mem if "peak_bytes" in mem[i]}
        for impl in r["impls"]:
            m = mem.get(impl, {})
            cells = ([gib(m["peak_bytes"]), gib(step[impl]), gib(m["tensor_peak_bytes"])] if impl in step
                     else ["", "", ""])
            lines.append(f"| {r['model']} ({r['layers']}) | {impl} | {spread(rate[impl])} | " + " | ".join(cells) + " |")
        for impl in r["impls"][1:]:
            speed = [a / b for a, b in zip(rate["minifc"], rate[impl])]
            cells = [f"**{spread(speed, digits=2)}x**", "", "", ""]
            if impl in step and "minifc" in step:
                cells[2] = f"{step['minifc'] / step[impl]:.2f}x"
                cells[3] = f"{mem['minifc']['tensor_peak_bytes'] / mem[impl]['tensor_peak_bytes']:.2f}x"
            lines.append(f"| {r['model']} ({r['layers']}) | **minifc / {impl}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = bt.build_parser(__doc__, IMPLEMENTATIONS)
    parser.add_argument("--impls", nargs="+", choices=IMPLEMENTATIONS[1:], default=list(IMPLEMENTATIONS[1:]),
                        help="the TRL variants to time against minifc (trl as shipped takes ~8x minifc's time on CPU)")
    args = bt.resolve_defaults(parser.parse_args(argv))
    args.impls = ("minifc", *dict.fromkeys(args.impls))
    if args.memory_child:
        args.model_name = args.models[0]
        print(__import__("json").dumps(memory_child(args, args.memory_child)))
        return
    import peft
    import transformers
    import trl
    print(f"minifc vs TRL {trl.__version__} SFTTrainer (transformers {transformers.__version__}, peft "
          f"{peft.__version__}) | torch {torch.__version__} | {describe_device(args.device)} | {args.dtype} | "
          f"{args.examples_per_step} examples/step, {args.warmup} warm-up + {args.steps} timed steps, "
          f"LoRA r={args.lora_r} alpha={args.lora_alpha:g}", flush=True)
    results = []
    for name in args.models:
        print(f"{name}:", flush=True)
        results.append(bench_model(args, name))
        r = results[-1]
        print(f"  {r['tokenizer']}; {r['trained_per_step']:.0f} trained tokens per step; largest loss difference "
              f"from minifc {r['max_loss_gap']:.2e}; memory {r['memory']}", flush=True)
    print()
    print(table(results))
    if args.json:
        args.json.write_text(__import__("json").dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                        "results": results}, indent=1))


if __name__ == "__main__":
    main()
