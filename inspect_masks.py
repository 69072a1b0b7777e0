"""Show exactly what is trained: rendered examples with the trained tokens highlighted.

    python inspect_masks.py --model llama-3.2-1b --data data/train.jsonl --n 2
    python inspect_masks.py --model path/to/tokenizer_dir --format gemma3 --data my.jsonl --train-on assistant,tool

--model is a short name of minifc/config.py, a hub id (only the tokenizer files are downloaded) or a local
directory with tokenizer.json (its minifc.json, if any, names the format; else pass --format). Each
example is printed with its trained tokens green on a terminal (⟦…⟧ otherwise), its tokens counted by
the role of the message they came from, and whether every trained assistant turn ends with a trained
stop token. --train-on and --last-turn-only are train.py's flags: the same rule decides.
"""

import argparse
import sys

from minifc.cli import run
from minifc.data import load_examples
from minifc.encode import inspect_example
from minifc.loader import LoadError, load
from minifc.masking import TrainOn


def main(argv=None):
    parser = argparse.ArgumentParser(description="Show which tokens of rendered examples are trained on.")
    parser.add_argument("--model", required=True, help="short name, hub id or local directory with tokenizer.json")
    parser.add_argument("--data", required=True, help="examples: JSONL/JSON file, directory or hf:OWNER/NAME[/FILE]")
    parser.add_argument("--data-format", default=None, help="record layout of --data (default: detected)")
    parser.add_argument("--n", type=int, default=2, help="how many examples to show")
    parser.add_argument("--format", default=None, help="chat format, overriding the model's")
    parser.add_argument("--train-on", default="assistant", help="roles trained: assistant,tool,user,system")
    parser.add_argument("--last-turn-only", action="store_true", help="train only the last assistant message")
    parser.add_argument("--no-train-reasoning", action="store_true", help="leave reasoning traces untrained")
    args = parser.parse_args(argv)
    try:
        train_on = TrainOn.parse(args.train_on, args.last_turn_only, not args.no_train_reasoning)
        _, tokenizer, fmt = load(args.model, args.format, weights=False)
        examples, report = load_examples(args.data, args.data_format, train_on=train_on)
    except (ValueError, OSError, LoadError) as error:  # DataError is a ValueError; each message names the fix
        sys.exit(f"error: {error}")
    if not examples:
        sys.exit(f"error: no usable example in {args.data}\n{report.summary()}")
    colour = sys.stdout.isatty()
    for example in examples[:args.n]:
        print(inspect_example(example, tokenizer, fmt, colour=colour, train_on=train_on))
        print()


if __name__ == "__main__":
    run(main, "inspect_masks.py")
