"""Measure tool-calling quality: python eval.py --model gemma-3-1b [--adapter OUT/final]

(Foundation stub: the flags below exist; evaluation lands with the evaluation issue.)
"""

import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Evaluate function calling of a model, with or without an adapter.")
    parser.add_argument("--model", default="gemma-3-1b", help="short name, hub id or local directory")
    parser.add_argument("--adapter", default=None, help="adapter directory written by train.py")
    parser.add_argument("--data", default=None, help="evaluation examples (default: built-in held-out split)")
    return parser.parse_args(argv)


def main(argv=None):
    parse_args(argv)
    sys.exit("eval.py: evaluation is not built yet")


if __name__ == "__main__":
    main()
