"""Fine-tune a model for function calling: python train.py --model gemma-3-1b

(Foundation stub: the flags below exist; the training loop lands with the training issue.)
"""

import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Fine-tune Gemma 3 / FunctionGemma / Llama 3.x for function calling.")
    parser.add_argument("--model", default="gemma-3-1b", help="short name, hub id or local directory")
    parser.add_argument("--data", default=None, help="JSONL/JSON file, directory, or hf:OWNER/NAME[/FILE]")
    parser.add_argument("--out", default="out", help="output directory")
    return parser.parse_args(argv)


def main(argv=None):
    parse_args(argv)
    sys.exit("train.py: the training loop is not built yet")


if __name__ == "__main__":
    main()
