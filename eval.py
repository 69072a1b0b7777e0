"""Measure tool-calling quality: python eval.py --model gemma-3-1b [--adapter OUT/final] [--compare]

The loop (prompt, greedy generation, parse) is minifc/evalloop.py and the check minifc/evaluate.py.
Prints the metrics table and writes into --out (default eval_out/<model>[-<adapter>]-<timestamp>/):

    report.json               settings and, per run ("base", "adapter"), the metrics of compute_metrics()
    table.txt                 the printed table
    predictions_<run>.jsonl   one line per example: prompt, output, parsed calls, gold, verdict, reason
    categories.png            with --compare or --bfcl: accuracy per category, per run (needs matplotlib)

--compare evaluates the base model, then the same model with --adapter loaded, and shows them side by
side with the change of every metric.
"""

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

from minifc.adapters import load_adapter
from minifc.bfcl import load_bfcl_entries
from minifc.bfclscore import bfcl_scores, format_bfcl, score_bfcl
from minifc.chat import FORMATS
from minifc.cli import device_error, run
from minifc.data import BUILTIN_TEST, load_examples
from minifc.evalchart import plot_categories
from minifc.evalloop import cases_from_examples, run_eval
from minifc.evaluate import compute_metrics, format_table
from minifc.loader import LoadError, load

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Evaluate function calling of a model, with or without an adapter.")
    parser.add_argument("--model", default="gemma-3-1b", help="short name, hub id or local directory")
    parser.add_argument("--adapter", help="adapter directory written by train.py (PEFT layout)")
    parser.add_argument("--compare", action="store_true", help="evaluate the base model and the adapter, side by side")
    parser.add_argument("--data", help="evaluation examples (default: built-in held-out split)")
    parser.add_argument("--data-format", help="layout of --data records (default: detected)")
    parser.add_argument("--bfcl", nargs="+", metavar="FILE|CATEGORY",
                        help="BFCL question files (BFCL_v3/v4_<category>.json), or categories (simple_python, "
                             "live_multiple, ..., all, non_live, live) from --bfcl-data or installed bfcl-eval")
    parser.add_argument("--bfcl-data", metavar="DIR",
                        help="BFCL's data directory (bfcl_eval/data of the bfcl-eval wheel) for --bfcl CATEGORY")
    parser.add_argument("--bfcl-answers", metavar="DIR",
                        help="directory of BFCL possible-answer files (default: possible_answer/ beside each file)")
    parser.add_argument("--format", choices=sorted(FORMATS),
                        help="chat format (default: the model registry's; required for unregistered models)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N examples")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--max-prompt-len", type=int, default=8192,
                        help="skip (and count as wrong) prompts longer than this many tokens, or than the model's "
                             "max_position_embeddings (default 8192: a longer prompt's memory is rarely intended)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling (unused when greedy)")
    parser.add_argument("--device", default="auto", help="cuda, cpu, ... (default: cuda if available)")
    parser.add_argument("--dtype", default="auto", choices=["auto", *DTYPES],
                        help="default: bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--out", help="report directory (default: eval_out/<model>-<timestamp>)")
    args = parser.parse_args(argv)
    if args.compare and not args.adapter:
        parser.error("--compare needs --adapter (it compares the base model with the adapter)")
    if args.bfcl and args.data:
        parser.error("give either --data or --bfcl, not both")
    if args.limit is not None and args.limit < 1 or min(args.batch_size, args.max_new_tokens, args.max_prompt_len) < 1:
        parser.error("--limit, --batch-size, --max-new-tokens and --max-prompt-len must be at least 1")
    return args


def device_and_dtype(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if error := device_error(device):
        sys.exit(f"eval.py: {error}")
    device = torch.device(device)
    return device, DTYPES.get(dtype, torch.bfloat16 if device.type == "cuda" else torch.float32)  # auto: bf16 on CUDA


def load_model(name: str, device, dtype, format_name: str | None = None, adapter: str | None = None):
    """(base model, tokenizer, chat format) by minifc/loader.py; the adapter's minifc.json may name the
    format, its weights are loaded after the base model's run (main)."""
    try:
        return load(name, format_name, adapter, device=device, dtype=dtype)
    except LoadError as error:
        sys.exit(f"eval.py: {error}")


def load_cases(args) -> tuple[list, str, list | None]:
    """[(prompt Example, gold)], a description of where they came from, and the BFCL entries (--bfcl)."""
    entries = None
    if args.bfcl:
        entries = load_bfcl_entries(args.bfcl, args.bfcl_data, args.bfcl_answers)[:args.limit]
        cases = [entry.case() for entry in entries]
        source = ", ".join(args.bfcl)
    else:
        source = args.data or str(BUILTIN_TEST)
        examples, report = load_examples(source, data_format=args.data_format)
        print(report.summary(), file=sys.stderr)
        cases = cases_from_examples(examples)
    return cases[:args.limit] if args.limit else cases, source, entries


def default_out_dir(args) -> Path:
    name = Path(args.model).name if Path(args.model).is_dir() else args.model.replace("/", "_")
    if args.adapter:
        name += "-" + Path(args.adapter).resolve().name
    return Path("eval_out") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"


def evaluate_run(label, model, tokenizer, fmt, cases, args, out: Path, entries=None) -> dict:
    """Run the loop once, write predictions_<label>.jsonl, return this run's part of the report."""
    start = time.time()

    def progress(done: int, total: int):  # one line per batch on stderr, with the elapsed time and an ETA
        elapsed = time.time() - start
        eta = elapsed / done * (total - done)
        print(f"[{label}] {done}/{total} examples, {elapsed:.0f} s, ETA {eta:.0f} s", file=sys.stderr, flush=True)
    records, predictions = run_eval(model, tokenizer, fmt, cases, args.batch_size, args.max_new_tokens,
                                    args.temperature, args.top_p, args.seed, progress, args.max_prompt_len)
    if entries:  # BFCL's verdicts beside minifc's (see minifc/bfclscore.py)
        records = score_bfcl(entries, predictions)
    path = out / f"predictions_{label}.jsonl"
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions), encoding="utf-8")
    metrics = compute_metrics(records)
    run = {"predictions": path.name, "seconds": round(time.time() - start, 1), "metrics": metrics}
    if skipped := [p for p in predictions if p["stop_reason"] == "skipped"]:  # counted as wrong answers
        run["skipped"] = {"count": len(skipped), "reason": skipped[0]["parsed"]["parse_error"],
                          "first": [p["location"] for p in skipped[:3]]}
        print(f"[{label}] skipped {len(skipped)} of {len(predictions)} examples, counted as wrong: "
              f"{run['skipped']['reason']} (--max-prompt-len), e.g. {', '.join(run['skipped']['first'])}",
              file=sys.stderr)
    if entries:
        run["bfcl"] = bfcl_scores(predictions)
    return run


def tables(runs: dict, bfcl: bool) -> str:
    """The metrics table (side by side with the change when there are two runs), then BFCL's view."""
    metrics = [run["metrics"] for run in runs.values()]
    if len(runs) == 2:
        text = format_table(metrics[1], compare=metrics[0], labels=tuple(runs))
    else:
        text = format_table(metrics[0])
    if bfcl:
        text += "\n" + format_bfcl({label: run["bfcl"] for label, run in runs.items()})
    return text


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    cases, source, entries = load_cases(args)
    device, dtype = device_and_dtype(args.device, args.dtype)
    model, tokenizer, fmt = load_model(args.model, device, dtype, args.format, args.adapter)
    out = Path(args.out) if args.out else default_out_dir(args)
    if out.exists() and not out.is_dir():
        sys.exit(f"eval.py: --out {out} is a file, not a directory: choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    print(f"evaluating {args.model}{' + ' + args.adapter if args.adapter else ''} ({fmt.name} format) on "
          f"{len(cases)} examples from {source}", file=sys.stderr)

    runs = {}
    if args.compare or not args.adapter:
        runs["base"] = evaluate_run("base", model, tokenizer, fmt, cases, args, out, entries)
    if args.adapter:
        load_adapter(model, args.adapter)  # wraps the adapted layers in place; the base weights stay as they are
        runs["adapter"] = evaluate_run("adapter", model, tokenizer, fmt, cases, args, out, entries)

    settings = ("limit", "batch_size", "max_new_tokens", "max_prompt_len", "temperature", "top_p", "seed")
    report = {"model": args.model, "adapter": args.adapter, "format": fmt.name, "data": source,
              "examples": len(cases), "device": str(device), "dtype": str(dtype).removeprefix("torch."),
              "settings": {k: getattr(args, k) for k in settings}, "runs": runs}
    (out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    text = tables(runs, bool(args.bfcl))
    (out / "table.txt").write_text(text, encoding="utf-8")
    print(text)
    if args.compare or entries:
        plot_categories(runs, out / "categories.png")
    predictions = ", ".join(str(out / run["predictions"]) for run in runs.values())
    print(f"report: {out / 'report.json'}; predictions: {predictions}", file=sys.stderr)
    return report


if __name__ == "__main__":
    run(main, "eval.py")
