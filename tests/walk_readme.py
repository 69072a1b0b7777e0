"""Run the README's commands as written, those that need no model download: the offline demo's (train,
eval, chat on `--model tiny` and what it writes to out/tiny) and the reference fetch. The others name a hub
model (gemma-3-1b, ...) and are checked by tests/test_readme.py through their argument parsers only.

    python tests/walk_readme.py            # from the checkout; ~5 minutes on 2 CPU cores, writes out/tiny
"""

import shlex
import subprocess
import sys
import time

from test_readme import REPO, bash_lines

OFFLINE_MODELS = ("tiny", "out/tiny/final")


def runnable(line: str) -> bool:
    words = shlex.split(line)
    if words[:2] == ["python", "tests/fetch_reference.py"]:
        return True
    if not words or words[0] != "python" or "--model" not in words:
        return False
    return words[words.index("--model") + 1] in OFFLINE_MODELS and "--adapter" not in words


def main() -> int:
    failed = 0
    for line in bash_lines():
        if not line.startswith("python ") or line.startswith("python -m pytest"):
            continue
        if not runnable(line):
            print(f"not run (a hub model to download, or a benchmark): {line}")
            continue
        print(f"=== {line}", flush=True)
        start = time.time()
        done = subprocess.run(line, shell=True, cwd=REPO)
        print(f"=== exit {done.returncode} after {time.time() - start:.0f} s", flush=True)
        failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
