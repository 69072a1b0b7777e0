"""Fine-tune a model to call functions (tools), in plain PyTorch.

    python train.py --model gemma-3-1b            # LoRA on the built-in data -> out/gemma-3-1b/final
    python train.py --model tiny                  # offline demo: tiny random model, trained fully on CPU
    python train.py --resume out/gemma-3-1b       # continue a stopped run exactly where it stopped
    python train.py --model gemma-3-1b --export   # also write a merged HF model to OUT/merged
    python train.py --model llama-3.1-8b --quantize nf4   # QLoRA: the frozen base in 4 bits (minifc/nf4.py)
    torchrun --nproc-per-node 4 train.py --model gemma-3-27b --parallel fsdp   # several GPUs (minifc/distributed.py)

Read top to bottom: data, tokenizer and chat format, model, optimizer and schedule, the loop,
checkpoints; the settings (flags, defaults, refusals) are minifc/trainargs.py. The method lives in the
library: what is trained in minifc/masking.py, rendering in minifc/chat, batches in minifc/collate.py,
LoRA in minifc/lora.py, the loss in minifc/loss.py.
"""

import json
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from minifc.adapters import load_adapter
from minifc.chat import get_format
from minifc.cli import INTERRUPTED, run
from minifc.checkpoint import CheckpointError, load_pretrained
from minifc.collate import epoch_batches, epoch_rows, num_batches, step_batches
from minifc.registry import resolve_model_name
from minifc.data import BUILTIN_TEST, BUILTIN_TRAIN, DataError, demo_train_data, load_examples
from minifc import distributed
from minifc.distributed import all_sum, full_copy, full_value, main_only, step_normalizer
from minifc.encode import encode_dataset
from minifc.evalloop import cases_from_examples, run_eval
from minifc.evaluate import compute_metrics, format_table
from minifc.export import quantization_info, save_hf_model
from minifc.loader import LoadError, load
from minifc.lora import apply_lora, lora_parameters, mark_only_lora_trainable
from minifc.loss import batch_loss
from minifc.masking import TrainOn
from minifc.nf4 import nf4_weights
from minifc.tiny import save_tiny, tokenizer_for_examples
from minifc.trainlog import MetricsLog, plot_losses, step_line, step_record
from minifc.trainargs import build_parser, parse_args  # noqa: F401 (build_parser: train.build_parser for --help)
from minifc.trainstate import (ctrl_c_stops, last_good_checkpoint, prepare_run_dir, restore, rng_state, save_step,
                               weights_writer)


# --------------------------------------------------------------------------------------------- data

def load_data(args, train_on):
    """(training examples, held-out examples), validated; the validation summary is printed. Without
    --data: the built-in training split, or for the demo (--model tiny) its own data (data/generate.py)."""
    try:
        source = args.data or (demo_train_data() if args.model == "tiny" else BUILTIN_TRAIN)
        examples, report = load_examples(source, args.data_format, args.strict, train_on=train_on)
        print(report.summary())
        if args.eval_data or not args.data:
            heldout, heldout_report = load_examples(args.eval_data or BUILTIN_TEST, args.data_format, args.strict,
                                                    train_on=train_on)
            print(heldout_report.summary())
        else:  # hold out a seeded 5% of the user's data
            order = np.random.default_rng(args.seed).permutation(len(examples))
            cut = len(examples) - max(1, len(examples) // 20) if len(examples) > 1 else len(examples)
            examples, heldout = [examples[i] for i in order[:cut]], [examples[i] for i in order[cut:]]
            print(f"held out {len(heldout)} of {len(order)} examples of {args.data} for evaluation")
    except DataError as error:
        sys.exit(f"data: {error}")
    if not examples:
        sys.exit(f"data: no usable training examples in {source} (see the summary above)")
    return examples, heldout[:args.eval_examples]


def tokenizer_and_format(args, examples, setup=distributed.ONE):
    """(the model's name or directory, Tokenizer, ChatFormat) by minifc/loader.py, no weights loaded yet.
    The offline demo (--model tiny) is OUT/init: a tiny random model and a tokenizer trained on the
    rendered examples, written here once (a resumed run reuses it)."""
    name = args.model
    if name == "tiny":
        name, fmt = str(Path(args.out) / "init"), get_format(args.format)
        main_only(setup, lambda: Path(name).is_dir() or save_tiny(name, tokenizer_for_examples(examples, fmt), fmt,
                                                                   seed=args.seed))
    try:
        _, tokenizer, fmt = load(name, args.format, weights=False)
    except LoadError as error:
        sys.exit(f"model: {error}")
    return name, tokenizer, fmt


def plan_steps(args, train_set, rows_per_batch: int) -> int:
    """Micro-batches of whole rows (--batch-tokens / --max-len of them); a step is --grad-accum of them."""
    rows = len(epoch_rows(train_set, None if args.no_packing else args.max_len))
    total = args.max_steps or math.ceil(args.epochs * num_batches(rows, rows_per_batch) / args.grad_accum)
    print(f"{len(train_set)} examples in {rows} rows, {rows_per_batch} rows of {args.max_len} tokens per "
          f"micro-batch, {args.grad_accum} micro-batch(es) per step: {total} steps")
    return total


# -------------------------------------------------------------------------------------------- model

def build_model(args, name, resume_dir, setup=distributed.ONE):
    """The model and the parameters to train. LoRA: frozen base in --dtype, fp32 adapters.
    --full: fp32 weights (the optimizer needs fp32 to accumulate small updates), bf16 via autocast.
    --parallel fsdp: built sharded, each rank reading its part of the files (distributed.load_sharded)."""
    device = torch.device(args.device)
    add_lora = None if args.full else lambda model: (apply_lora(
        model, args.lora_r, args.lora_alpha, args.lora_dropout, args.lora_targets.split(","), args.rslora),
        mark_only_lora_trainable(model))
    try:  # --full continues from its checkpoint's weights; LoRA loads the base, its adapter comes below
        if setup.mode == "fsdp":
            model = distributed.load_sharded(str(resume_dir or name) if args.full else str(name), device,
                                             torch.float32 if args.full else getattr(torch, args.dtype),
                                             add_lora, None if args.full else resume_dir)
        else:
            model = (load_pretrained(str(resume_dir or name), device, torch.float32) if args.full else
                     load_pretrained(str(name), device, getattr(torch, args.dtype), quantize=args.quantize))
    except CheckpointError as error:
        sys.exit(f"model: {error}")
    if args.full:
        params = list(model.parameters())
        for p in params:
            p.requires_grad_(True)
    else:
        if setup.mode != "fsdp":
            add_lora(model)
            if resume_dir:
                load_adapter(model, resume_dir)
        params = lora_parameters(model)
    model.gradient_checkpointing = args.grad_checkpointing
    if args.compile:
        model.compile_blocks()
    quantized = nf4_weights(model).values()
    n_nf4 = sum(w.shape.numel() for w in quantized)
    n_train, n_all = sum(p.numel() for p in params), sum(p.numel() for p in model.parameters()) + n_nf4
    nf4_gib = sum(w.nbytes() for w in quantized) / 2**30
    nf4_note = f", {n_nf4 / 1e6:.1f}M of them in NF4 ({nf4_gib:.2f} GiB)" if n_nf4 else ""
    print(f"model: {n_all / 1e6:.1f}M parameters{nf4_note}, training {n_train / 1e6:.2f}M "
          f"({'full' if args.full else 'LoRA'})")
    return model.train(), params


def uncompiled(args):
    """A context in which compiled blocks run eagerly. Only training steps run compiled: held-out loss
    and the tool-call check have other shapes and modes (no gradients; a KV cache, one token at a
    time, a guard per layer index) that would use up dynamo's 8 variants per code before the first
    training step (see Transformer.compile_blocks). Only with --compile: torch.compiler imports
    torch._dynamo, which takes seconds."""
    return torch.compiler.set_stance("force_eager") if args.compile else nullcontext()


def make_optimizer(args, params):
    """AdamW; weight decay on matrices only (never on norms or biases); fused kernel on CUDA."""
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=args.lr, betas=(0.9, 0.999),
                             fused=args.device.startswith("cuda"))


def lr_at(step: int, total: int, args) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup (--warmup-steps, default 5% of
    the steps), then the chosen decay."""
    warmup = max(1, total // 20) if args.warmup_steps is None else args.warmup_steps
    if step < warmup:
        return args.lr * (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    decay = {"constant": 1.0, "linear": 1.0 - progress, "cosine": 0.5 * (1.0 + math.cos(math.pi * progress))}
    return args.lr * (args.min_lr_ratio + (1.0 - args.min_lr_ratio) * decay[args.schedule])


# ------------------------------------------------------------------------------------------ the loop

def train_step(model, params, batches, args, autocast, normalizer=None,
               loss_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward over the micro-batches of one optimizer step (this rank's rows of them);
    returns (loss, grad norm) as device tensors, so nothing here waits for the GPU. normalizer: the
    step's trained tokens (default: these batches'; distributed.step_normalizer over all ranks);
    loss_fn(batch, chunk, normalizer, sync): distributed.wrap's (default: batch_loss on `model`)."""
    normalizer = sum(b.num_trained for b in batches) if normalizer is None else normalizer
    loss_fn = loss_fn or (lambda batch, chunk, normalizer, sync: batch_loss(model, batch, chunk, normalizer))
    total = torch.zeros((), device=args.device)
    for i, batch in enumerate(batches):
        batch = batch.to(args.device)
        with autocast:
            # Each micro-batch's summed loss divided by the step's total: the gradients add up to
            # those of one big batch, whatever the split (loss.py explains).
            loss = loss_fn(batch, args.loss_chunk, normalizer, i == len(batches) - 1)
        loss.backward()
        total += loss.detach()
    if args.grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    return total, full_value(norm)  # FSDP: the norm over every rank's shards


@torch.no_grad()
def heldout_loss(model, batches, args, autocast, log, step, setup=distributed.ONE):
    """Mean cross-entropy over every trained token of the held-out batches, logged and printed. Several
    processes: each takes its rows of every batch, and the sums are added up."""
    model.eval()
    total, count = torch.zeros((), device=args.device), 0
    for batch in batches:
        batch = batch.to(args.device)
        with autocast, uncompiled(args):
            total += batch_loss(model, batch, args.loss_chunk, normalizer=1)
        count += batch.num_trained
    model.train()
    total, count = (total.item(), count) if setup.mode == "none" else all_sum([total.item(), count], args.device)
    loss = total / max(count, 1)
    if setup.rank == 0:
        log.write({"step": step, "heldout_loss": loss})
    print(f"step {step} | held-out loss {loss:.4f}")


def tool_call_check(model, tokenizer, fmt, examples, args) -> dict | None:
    """Tool-calling metrics on a few held-out examples: generate, parse, check, as eval.py does."""
    cases = cases_from_examples([e for e in examples if e.messages[-1]["role"] == "assistant"])
    if not cases:
        return None
    with uncompiled(args):
        records, _ = run_eval(model, tokenizer, fmt, cases, batch_size=8, max_new_tokens=192)
    return {"overall": compute_metrics(records)["overall"], "by_category": {}}  # eval.py has the details


def main(argv=None):
    # 1. Settings, data, tokenizer: every input problem stops the run before a model is loaded.
    args = parse_args(argv)
    try:
        train_on = TrainOn.parse(args.train_on, args.last_turn_only, reasoning=not args.no_train_reasoning)
    except ValueError as error:
        sys.exit(f"--train-on: {error}")
    setup = distributed.init(args.parallel, args.device)  # one process unless started by torchrun
    try:
        model = run_training(args, train_on, setup)
        distributed.barrier(setup)  # every rank done before the group goes (gloo aborted at exit without it)
        return model
    finally:
        distributed.finish(setup)


def run_training(args, train_on, setup):
    torch.manual_seed(args.seed)
    examples, heldout = load_data(args, train_on)
    try:  # the settings as used, without the one-off choices; --resume reuses them
        settings = {k: v for k, v in vars(args).items() if k not in ("resume", "overwrite", "parallel")}
        resume_dir = main_only(setup, prepare_run_dir, args.out, settings, args.resume, args.overwrite)
    except ValueError as error:
        sys.exit(str(error))
    name, tokenizer, fmt = tokenizer_and_format(args, examples, setup)
    try:  # --strict refuses reasoning the format cannot show; otherwise it is counted in the report
        train_set, report = encode_dataset(examples, tokenizer, fmt, args.max_len, args.truncate, train_on, args.strict)
        print(f"training data: {report}")
        if report.num_trained == 0:
            sys.exit("training data: no trained tokens left after encoding (see above): raise --max-len, pass "
                     "--truncate, or check that the examples have assistant turns")
        heldout_set, held_report = encode_dataset(heldout, tokenizer, fmt, args.max_len, args.truncate, train_on,
                                                  args.strict)
        print(f"held-out data: {held_report}")
    except DataError as error:
        sys.exit(f"error: {error}")
    rows_per_batch = args.batch_tokens // args.max_len  # >= 1: parse_args refuses fewer tokens than a row
    total = plan_steps(args, train_set, rows_per_batch)

    # 2. Model, optimizer, and the state of a resumed run.
    model, params = build_model(args, name, resume_dir, setup)
    if setup.world > 1:  # the same adapters everywhere (drawn above), then each rank its own dropout draws
        torch.manual_seed(args.seed + setup.rank)
    loss_fn = distributed.wrap(setup, model)  # the loss through DDP or FSDP under torchrun (None: one process)
    optimizer = make_optimizer(args, params)
    # --full keeps fp32 weights and computes in bf16 under autocast (on CPU too, where bf16 is slower
    # than fp32 but --dtype bfloat16 is not silently ignored); LoRA's base weights are bf16 already.
    use_autocast = args.full and args.dtype == "bfloat16"
    autocast = torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16) if use_autocast else nullcontext()
    load_optimizer = lambda state: distributed.load_optimizer_state(optimizer, state)
    step, position = restore(resume_dir, load_optimizer, *setup.part) if resume_dir else (0, (0, 0))
    hf_config = json.loads((tokenizer.directory / "config.json").read_text())
    base_name = resolve_model_name(name)[0]

    def save(step, position):  # every rank gathers what it holds; rank 0 writes OUT/step-N
        state, copy = distributed.optimizer_state(setup, optimizer), full_copy(setup, model, base=args.full)
        rng_ranks = distributed.rng_states(setup, rng_state())
        if setup.rank == 0:
            write = weights_writer(copy, args.full, base_name, hf_config, tokenizer, fmt, tokenizer.directory)
            trained = params if copy is model else list(copy.parameters()) if args.full else lora_parameters(copy)
            save_step(args.out, step, position, optimizer, write, args.keep_checkpoints, optimizer_state=state,
                      trained=trained, rng_ranks=rng_ranks)

    # 3. Before training: held-out loss and the tool-call check (every rank runs both, rank 0 reports).
    log = MetricsLog(Path(args.out) / "metrics.jsonl", resume_step=step if resume_dir else None) if setup.rank == 0 \
        else None
    heldout_batches = list(epoch_batches(heldout_set, rows_per_batch, tokenizer.pad_id,
                                         None if args.no_packing else args.max_len, part=setup.part))
    check = step == 0 and args.check_examples > 0  # not for a resumed run: "before" was long ago
    check_before = tool_call_check(model, tokenizer, fmt, heldout[:args.check_examples], args) if check else None
    if check_before is not None:  # printed now; the end of the run shows it again beside "after"
        print(f"tool-call check on {len(heldout[:args.check_examples])} held-out examples, before training:")
        print(format_table(check_before))
    if heldout_batches and step == 0:
        heldout_loss(model, heldout_batches, args, autocast, log, step, setup)

    # 4. The loop.
    data = step_batches(train_set, rows_per_batch, tokenizer.pad_id, None if args.no_packing else args.max_len,
                        args.grad_accum, args.seed, *position, part=setup.part)
    start_time, start_step, tokens, trained = time.time(), step, 0, 0
    saved_step, stopping = step if resume_dir else None, False
    with ctrl_c_stops() as stop:
        while step < total and not stopping:
            next_position, batches = next(data)
            lr = lr_at(step, total, args)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, norm = train_step(model, params, batches, args, autocast,
                                    step_normalizer(setup, batches, args.device), loss_fn)
            loss, norm, counts, stopping = distributed.step_stats(setup, loss, norm, batches, stop, args.device)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                sys.exit(f"step {step + 1}: the loss is {loss} (grad norm {norm}): training diverged and was "
                         f"stopped before the update. The last good checkpoint is {last_good_checkpoint(args.out)}; "
                         f"lower --lr (now {args.lr}) or raise --warmup-steps.")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step, position = step + 1, next_position
            tokens, trained = tokens + counts[0], trained + counts[1]
            record = step_record(step, total, loss, lr, norm, tokens, trained, time.time() - start_time,
                                 step - start_step, torch.device(args.device))
            if log is not None:
                log.write(record)
            print(step_line(record, total), flush=True)
            if heldout_batches and (step % args.eval_interval == 0 or step == total):
                heldout_loss(model, heldout_batches, args, autocast, log, step, setup)
            if step % args.save_interval == 0 or step == total or stopping:
                save(step, position)
                saved_step = step
    if stopping:
        if saved_step != step:
            save(step, position)
        again = "torchrun --nproc-per-node N" if setup.mode != "none" else "python"
        print(f"stopped at step {step}: continue with  {again} train.py --resume {args.out}", file=sys.stderr)
        sys.exit(INTERRUPTED)

    # 5. The result: OUT/final (+ OUT/merged with --export), the check again, the loss plot.
    final = Path(args.out) / "final"
    copy = full_copy(setup, model, base=args.full or args.export)
    if setup.rank == 0:
        weights_writer(copy, args.full, base_name, hf_config, tokenizer, fmt, tokenizer.directory)(final)
    print(f"final {'model' if args.full else 'adapter'}: {final}")
    if args.export and not args.full:
        info = {"base_model": base_name, **quantization_info(model)}
        if setup.rank == 0:
            save_hf_model(copy, Path(args.out) / "merged", hf_config, tokenizer, fmt, tokenizer.directory,
                          extra_info=info)
        print(f"merged Hugging Face model: {Path(args.out) / 'merged'}"
              + (f" ({info['base_quantization']})" if "base_quantization" in info else ""))
    elif args.export:
        print(f"--export: with --full, {final} is already a Hugging Face model directory")
    if check_before is not None:
        check_after = tool_call_check(model, tokenizer, fmt, heldout[:args.check_examples], args)
        print(f"tool-call check on {len(heldout[:args.check_examples])} held-out examples, before and after training:")
        print(format_table(check_after, compare=check_before, labels=("before", "after")))
    if setup.rank == 0:
        plot_losses(Path(args.out) / "metrics.jsonl", Path(args.out) / "loss.png")
    return model


if __name__ == "__main__":
    with distributed.rank_errors():  # under torchrun: a failing rank names itself
        run(main, "train.py")
